"""Reproducible packages: export and import rates of the five-version clinical series,
beside the checkout rate of the same versions, in one run.

Commits v1..v5 of the CSV series (benchmarks/generate.py, seeded) into a format-3
repository, then times, best of three rounds: checking out all five versions;
``export`` of the five versions into one package (the BagIt zip, deflated, every
SHA-256/SHA-512/BLAKE3 digest computed); ``import`` of that package into a fresh
repository with other chunk sizes (every checksum checked, every content id
re-derived, the files cut and stored again). Rates are logical bytes (the five
versions' files) per second. Nothing asserts; an export does strictly more than a
checkout (it reads the same bytes twice, in bounded batches: once for the SHA-256 the
documents list, once into the zip while hashing SHA-256/SHA-512 and deflating; import
stages the data members to tmp/ before storing them), so the figures say what that
costs. On 2 shared cores (Dec 2026, scale 0.1, back to back): checkout ~355 MB/s,
export ~51 MB/s, import ~75 MB/s, the same as the whole-in-memory version before.

    python -m benchmarks.bench_package [--scale 0.1] [--seed 1] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks.generate import ensure_series
from reprocas.model.chunking import ChunkingConfig
from reprocas.package.export import export
from reprocas.package.importer import import_package
from reprocas.store import checkout as checkout_mod
from reprocas.store.commit import commit
from reprocas.store.repository import Repository

MB = 1e6
ROUNDS = 3
OTHER_CHUNKING = ChunkingConfig(min_size=8192, avg_size=32768, max_size=131072)


def measure(files: list[Path], work: Path) -> dict[str, Any]:
    repo = Repository.init(work / "origin", format=3)
    src = work / "src"
    src.mkdir()
    refs = []
    for f in files:
        shutil.copyfile(f, src / "encounters.csv")
        refs.append(commit(repo, src, "clinical").ref)
    logical = sum(f.stat().st_size for f in files)
    best: dict[str, float] = {}
    pkg_bytes = 0
    for r in range(ROUNDS):
        out = work / f"co{r}"
        t = time.perf_counter()
        for ref in refs:
            checkout_mod.checkout(repo, ref, out / ref)
        best["checkout"] = min(best.get("checkout", 1e9), time.perf_counter() - t)
        shutil.rmtree(out)
        pkg = work / f"p{r}.zip"
        t = time.perf_counter()
        export(repo, refs, pkg)
        best["export"] = min(best.get("export", 1e9), time.perf_counter() - t)
        pkg_bytes = pkg.stat().st_size
        os.sync()
        target = Repository.init(work / f"target{r}", chunking=OTHER_CHUNKING, format=3)
        try:
            t = time.perf_counter()
            import_package(target, pkg)
            best["import"] = min(best.get("import", 1e9), time.perf_counter() - t)
        finally:
            target.close()
        shutil.rmtree(work / f"target{r}")
        pkg.unlink()
        os.sync()
    repo.close()
    return {
        "versions": len(files),
        "logical_bytes": logical,
        "package_bytes": pkg_bytes,
        **{f"{k}_mb_s": logical / v / MB for k, v in best.items()},
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scale", type=float, default=0.1)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--data-dir", default=str(Path(tempfile.gettempdir()) / "reprocas-bench"))
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    files = ensure_series(args.data_dir, args.scale, args.seed)["csv"]
    with tempfile.TemporaryDirectory() as tmp:
        row = measure(files, Path(tmp))
    if args.json:
        print(json.dumps({"scale": args.scale, **row}, indent=1))
        return
    print(
        f"clinical CSV series, {row['versions']} versions, {row['logical_bytes'] / MB:.0f} MB; "
        f"package {row['package_bytes'] / MB:.1f} MB (zip)"
    )
    print(f"{'checkout MB/s':>16}{'export MB/s':>14}{'import MB/s':>14}")
    print(f"{row['checkout_mb_s']:>16.1f}{row['export_mb_s']:>14.1f}{row['import_mb_s']:>14.1f}")


if __name__ == "__main__":
    main()
