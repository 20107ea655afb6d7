"""Environment-snapshot benchmark: what ``reprocas env snapshot`` costs.

One run measures, on this machine:

1. a metadata snapshot of a venv with ~200 installed distributions. The venv is real
   (``python -m venv --without-pip``) but its distributions are *simulated*: 200
   ``*.dist-info`` directories (METADATA, INSTALLER, RECORD, WHEEL, direct_url.json for
   a few) beside a small module each, written directly — no network, no pip. Timed
   through the CLI (a process per run, start-up included) and through the API
   (capture, then save), first snapshot and unchanged re-snapshot. Target: < 1 s.
2. ``--full`` snapshots of a large site-packages: a venv whose site-packages is a copy
   of the project venv's plus the base interpreter's (by default; ``--source DIR`` to
   choose). First snapshot, then one package changed (a real ``pip install`` of
   another version of a pure-Python package from the index when it can be reached,
   else a simulated upgrade: its modules rewritten and recompiled, its dist-info
   renamed), then the second snapshot: time and bytes added by each. Target: the
   second adds < 15% of the first.

Nothing asserts; targets are printed beside the figures. Run from the project root::

    .venv/bin/python -m benchmarks.bench_env [--packages 200] [--source DIR ...]
        [--skip-full] [--json] [--keep]
"""

from __future__ import annotations

import argparse
import compileall
import json
import os
import shutil
import statistics
import subprocess
import sys
import sysconfig
import tempfile
import time
from pathlib import Path
from typing import Any

import reprocas
from reprocas.environment.capture import capture
from reprocas.environment.store import save

MB = 1_000_000
METADATA_TARGET_S = 1.0
SECOND_FULL_TARGET = 0.15
REPROCAS = Path(sys.executable).with_name("reprocas")
UPGRADE = ("pygments", "2.19.1")
"""The package changed between the two full snapshots, and the version pip installs."""


def _venv(path: Path) -> tuple[Path, Path]:
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(path)], check=True)
    python = path / "bin" / "python"
    site = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    return python, Path(site)


def simulate_packages(site: Path, n: int) -> None:
    """``n`` installed distributions, as pip would leave them (without pip)."""
    for i in range(n):
        name = f"simpkg{i:03d}"
        mod = site / name
        mod.mkdir()
        (mod / "__init__.py").write_text(f"VERSION = '1.{i}.0'\n" + "# padding\n" * 40)
        dist = site / f"{name}-1.{i}.0.dist-info"
        dist.mkdir()
        (dist / "METADATA").write_text(
            f"Metadata-Version: 2.1\nName: {name}\nVersion: 1.{i}.0\nSummary: simulated\n"
            f"Requires-Dist: simpkg{(i + 1) % n:03d}\n\n" + "Long description.\n" * 200
        )
        (dist / "INSTALLER").write_text("pip\n")
        (dist / "WHEEL").write_text(
            "Wheel-Version: 1.0\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
        )
        (dist / "RECORD").write_text(f"{name}/__init__.py,,\n{dist.name}/METADATA,,\n")
        if i % 20 == 0:
            (dist / "direct_url.json").write_text(
                json.dumps(
                    {
                        "url": f"https://github.com/example/{name}",
                        "vcs_info": {"vcs": "git", "commit_id": f"{i:040x}"},
                    }
                )
            )


def _cli(repo: Path, *args: str) -> tuple[float, dict[str, Any]]:
    t0 = time.perf_counter()
    out = subprocess.run(
        [str(REPROCAS), "--repo", str(repo), *args, "--json"],
        capture_output=True,
        text=True,
        check=True,
    )
    return time.perf_counter() - t0, json.loads(out.stdout)


def bench_metadata(work: Path, n: int) -> dict[str, Any]:
    python, site = _venv(work / "meta-venv")
    simulate_packages(site, n)
    project = work / "meta-project"
    project.mkdir()
    (project / "requirements.txt").write_text("".join(f"simpkg{i:03d}\n" for i in range(n)))
    repo = work / "meta-repo"
    reprocas.Repo.init(repo).close()
    args = ("env", "snapshot", "--python", str(python), "--project", str(project))
    first_s, first = _cli(repo, *args)
    again = [_cli(repo, *args) for _ in range(5)]
    api_capture: list[float] = []
    api_save: list[float] = []
    with reprocas.Repo.open(repo) as r:
        for _ in range(5):
            t0 = time.perf_counter()
            cap = capture(str(python), project)
            t1 = time.perf_counter()
            save(r.store, cap, "env/meta-project")
            api_capture.append(t1 - t0)
            api_save.append(time.perf_counter() - t1)
    return {
        "packages": first["packages"],
        "simulated": True,
        "cli_first_s": round(first_s, 3),
        "cli_first_new_bytes": first["new_bytes"],
        "cli_unchanged_median_s": round(statistics.median(t for t, _ in again), 3),
        "unchanged_reused": all(not j["created"] for _, j in again),
        "api_capture_median_s": round(statistics.median(api_capture), 3),
        "api_save_median_s": round(statistics.median(api_save), 4),
        "target_s": METADATA_TARGET_S,
    }


def _default_sources() -> list[Path]:
    here = Path(sysconfig.get_paths()["purelib"])
    base = Path(
        sysconfig.get_paths(vars={"base": sys.base_prefix, "platbase": sys.base_prefix})["purelib"]
    )
    return [p for p in dict.fromkeys([base, here]) if p.is_dir()]


def _tree_bytes(root: Path) -> tuple[int, int]:
    files = size = 0
    for dirpath, _, names in os.walk(root):
        for name in names:
            p = Path(dirpath, name)
            if p.is_file() and not p.is_symlink():
                files += 1
                size += p.stat().st_size
    return files, size


def change_one_package(python: Path, site: Path) -> str:
    """Upgrade (or downgrade) one package; returns what was done."""
    name, version = UPGRADE
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "--python",
            str(python),
            "install",
            "-q",
            "--no-deps",
            "--disable-pip-version-check",
            f"{name}=={version}",
        ],
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )
    if proc.returncode == 0:
        return f"pip install {name}=={version} (real, from the index)"
    # Offline: a simulated upgrade of the same package.
    pkg = site / name
    for py in pkg.rglob("*.py"):
        py.write_text(f"# upgraded by bench_env\n{py.read_text()}")
    compileall.compile_dir(str(pkg), quiet=1)
    for dist in site.glob(f"{name}-*.dist-info"):
        dist.rename(site / f"{name}-99.0.dist-info")
    return f"simulated upgrade of {name} (index unreachable: {proc.stderr.strip()[-80:]})"


def bench_full(work: Path, sources: list[Path]) -> dict[str, Any]:
    python, site = _venv(work / "full-venv")
    for src in sources:
        subprocess.run(["cp", "-a", f"{src}/.", str(site)], check=True)
    files, size = _tree_bytes(site)
    project = work / "full-project"
    project.mkdir()
    repo = work / "full-repo"
    reprocas.Repo.init(repo).close()
    args = ("env", "snapshot", "--full", "--python", str(python), "--project", str(project))
    t1, first = _cli(repo, *args)
    change = change_one_package(python, site)
    t2, second = _cli(repo, *args)
    t3, third = _cli(repo, *args)
    ratio = second["new_bytes"] / first["new_bytes"] if first["new_bytes"] else 0.0
    return {
        "sources": [str(s) for s in sources],
        "site_packages_files": files,
        "site_packages_bytes": size,
        "first_s": round(t1, 2),
        "first_new_bytes": first["new_bytes"],
        "first_mb_per_s": round(size / MB / t1, 1),
        "change": change,
        "second_s": round(t2, 2),
        "second_new_bytes": second["new_bytes"],
        "second_over_first": round(ratio, 4),
        "target_second_over_first": SECOND_FULL_TARGET,
        "unchanged_s": round(t3, 2),
        "unchanged_new_bytes": third["new_bytes"],
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--packages", type=int, default=200)
    ap.add_argument("--source", type=Path, action="append", help="site-packages to copy")
    ap.add_argument("--skip-full", action="store_true")
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--keep", action="store_true", help="keep the work directory")
    args = ap.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="reprocas-bench-env-"))
    try:
        result: dict[str, Any] = {"metadata": bench_metadata(work, args.packages)}
        if not args.skip_full:
            result["full"] = bench_full(work, args.source or _default_sources())
    finally:
        if args.keep:
            print(f"work directory kept: {work}", file=sys.stderr)
        else:
            shutil.rmtree(work, ignore_errors=True)
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    m = result["metadata"]
    print(f"metadata snapshot, {m['packages']} packages (simulated dist-info directories)")
    print(
        f"  CLI, first          {m['cli_first_s']:.3f} s  "
        f"(target < {METADATA_TARGET_S:.0f} s), {m['cli_first_new_bytes']} bytes added"
    )
    print(
        f"  CLI, unchanged      {m['cli_unchanged_median_s']:.3f} s median of 5 "
        f"(reused the latest: {m['unchanged_reused']})"
    )
    print(
        f"  API capture / save  {m['api_capture_median_s']:.3f} s / "
        f"{m['api_save_median_s']:.4f} s median of 5"
    )
    if "full" in result:
        f = result["full"]
        print(
            f"full snapshot of {f['site_packages_bytes'] / MB:.0f} MB site-packages "
            f"({f['site_packages_files']} files) copied from {', '.join(f['sources'])}"
        )
        print(
            f"  first               {f['first_s']:.2f} s ({f['first_mb_per_s']} MB/s), "
            f"{f['first_new_bytes'] / MB:.1f} MB added"
        )
        print(f"  change              {f['change']}")
        print(
            f"  second              {f['second_s']:.2f} s, {f['second_new_bytes'] / MB:.2f} MB "
            f"added = {100 * f['second_over_first']:.2f}% of the first "
            f"(target < {100 * SECOND_FULL_TARGET:.0f}%)"
        )
        print(
            f"  unchanged           {f['unchanged_s']:.2f} s, "
            f"{f['unchanged_new_bytes']} bytes added"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
