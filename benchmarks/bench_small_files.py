"""Small files (issue 17): a site-packages tree stored, beside ``tar | zstd`` of it.

One run, on this machine:

1. the reference: ``tar -cf - TREE | zstd -3 -T1`` (bytes and time; the stream
   compresses neighbouring files together, the floor small files are held to);
2. ``reprocas commit TREE`` through the CLI into a fresh repository: time, peak RSS, the
   packs and the LMDB index on disk, and packs + index as a ratio of the tar stream
   (target <= 1.05x);
3. the same tree committed again (every file found in the files cache);
4. ``reprocas checkout`` of it: time, peak RSS, and every file compared by BLAKE3.

The tree is this interpreter's site-packages unless ``--source DIR`` names another.
Nothing asserts. Run from the project root::

    .venv/bin/python -m benchmarks.bench_small_files [--source DIR] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import sysconfig
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from benchmarks.bench_repo import Cli, Noise, Runner, file_digest, rate, remove
from benchmarks.bench_weight import index_stat, packs_bytes

MB = 1e6
TARGET_TAR = 1.05


def tree_files(root: Path) -> dict[str, int]:
    """Regular files below ``root`` (no symlinks followed): relative path -> size."""
    out: dict[str, int] = {}
    for d, dirs, files in os.walk(root):
        dirs[:] = [x for x in dirs if not os.path.islink(os.path.join(d, x))]
        for f in files:
            p = os.path.join(d, f)
            if os.path.isfile(p) and not os.path.islink(p):
                out[os.path.relpath(p, root)] = os.path.getsize(p)
    return out


def tar_zstd(root: Path) -> dict[str, Any]:
    """Bytes and seconds of ``tar -cf - root | zstd -3 -T1``."""
    if shutil.which("zstd") is None or shutil.which("tar") is None:
        return {"note": "tar or zstd missing"}
    t0 = time.perf_counter()
    tar = subprocess.Popen(
        ["tar", "-cf", "-", "-C", str(root.parent), root.name], stdout=subprocess.PIPE
    )
    z = subprocess.Popen(
        ["zstd", "-3", "-T1", "-q", "-c"], stdin=tar.stdout, stdout=subprocess.PIPE
    )
    assert tar.stdout is not None and z.stdout is not None
    tar.stdout.close()
    n = 0
    while chunk := z.stdout.read(1 << 20):
        n += len(chunk)
    z.wait()
    tar.wait()
    return {"bytes": n, "seconds": time.perf_counter() - t0}


def run(source: Path, work: Path) -> dict[str, Any]:
    files = tree_files(source)
    logical = sum(files.values())
    out: dict[str, Any] = {"source": str(source), "files": len(files), "bytes": logical}
    print(f"tar | zstd -3 of {len(files)} files ...", file=sys.stderr, flush=True)
    out["tar_zstd"] = tar_zstd(source)
    cli = Cli(Runner(work), Path(sys.executable).with_name("reprocas"))
    repo = work / "small-repo"
    cli.init(repo)
    print("commit ...", file=sys.stderr, flush=True)
    timed, res = cli.run(repo, "commit", str(source), "-d", "sp", "--json", what="commit")
    out["commit"] = {
        "seconds": timed.seconds,
        "mbps": rate(logical, timed.seconds),
        "peak_rss": timed.peak_rss,
        "new_bytes": res["new_bytes"],
    }
    out["packs_bytes"] = packs_bytes(repo)
    out["index"] = index_stat(repo)
    timed, _ = cli.run(repo, "commit", str(source), "-d", "sp", "--json", what="commit again")
    out["recommit"] = {"seconds": timed.seconds, "peak_rss": timed.peak_rss}
    print("checkout ...", file=sys.stderr, flush=True)
    dest = work / "small-out"
    timed, _ = cli.run(repo, "checkout", "sp@v1", str(dest), "--json", what="checkout")
    out["checkout"] = {
        "seconds": timed.seconds,
        "mbps": rate(logical, timed.seconds),
        "peak_rss": timed.peak_rss,
    }
    got = tree_files(dest)
    differ = [p for p in files if got.get(p) != files[p]]
    if not differ:
        differ = [p for p in files if file_digest(dest / p) != file_digest(source / p)]
    out["checkout"]["differ"] = len(differ) + len(set(got) - set(files))
    remove(dest)
    remove(repo)
    return out


def report(r: dict[str, Any]) -> str:
    tz = r["tar_zstd"]
    c = r["commit"]
    ix = r["index"]["disk_bytes"]
    total = r["packs_bytes"] + ix
    lines = [
        f"bench_small_files: {r['files']} files, {r['bytes'] / MB:.1f} MB ({r['source']}),"
        f" noise {r.get('noise', {}).get('other_cores', 0):.2f} other cores busy",
    ]
    if "bytes" in tz:
        lines.append(
            f"  tar | zstd -3:   {tz['bytes'] / MB:7.1f} MB in {tz['seconds']:.1f} s"
            f" ({rate(r['bytes'], tz['seconds']):.0f} MB/s)"
        )
    ratio = (
        f" = {total / tz['bytes']:.2f}x tar+zstd (target <= {TARGET_TAR}x)" if "bytes" in tz else ""
    )
    lines += [
        f"  reprocas stored: {total / MB:7.1f} MB = packs {r['packs_bytes'] / MB:.1f} + index"
        f" {ix / MB:.1f}{ratio}",
        f"  commit   {c['seconds']:6.1f} s ({c['mbps']:.0f} MB/s), peak RSS"
        f" {(c['peak_rss'] or 0) / 2**20:.0f} MiB; again (files cache)"
        f" {r['recommit']['seconds']:.1f} s",
        f"  checkout {r['checkout']['seconds']:6.1f} s ({r['checkout']['mbps']:.0f} MB/s), peak RSS"
        f" {(r['checkout']['peak_rss'] or 0) / 2**20:.0f} MiB, files differing:"
        f" {r['checkout']['differ']}",
        "  index per sub-database: "
        + ", ".join(
            f"{k} {d['bytes'] / MB:.1f} MB"
            for k, d in sorted(r["index"]["dbs"].items(), key=lambda kv: -kv[1]["bytes"])
            if d["bytes"] > 100_000
        ),
    ]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0] if __doc__ else None)
    p.add_argument("--source", type=Path, default=Path(sysconfig.get_paths()["purelib"]))
    p.add_argument("--json", action="store_true", help="the figures as JSON too")
    args = p.parse_args(argv)
    noise = Noise()
    with tempfile.TemporaryDirectory(prefix="reprocas-small-") as tmp:
        result = run(args.source.resolve(), Path(tmp))
    result["noise"] = noise.report() or {}
    print(report(result))
    if args.json:
        print(json.dumps(result, indent=1, default=str))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
