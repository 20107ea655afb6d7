"""Format 3 vs format 2 on the five-version clinical series, side by side in one run.

For the CSV series (benchmarks/generate.py, seeded), commits v1..v5 into a fresh
format-2 and a fresh format-3 repository (same settings otherwise) and prints, per
format, the commit rate over the five commits, the checkout rate of all five versions,
and the bytes stored (packs): best of three rounds, the formats interleaved. Target
(issue 16): format 3 no worse than format 2 — its trees name files by digest and its
chunk maps replace manifests, so it should be the same within noise.

    python -m benchmarks.bench_formats [--scale 0.1] [--seed 1] [--json]
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
from reprocas.store import checkout as checkout_mod
from reprocas.store.commit import commit
from reprocas.store.repository import Repository

MB = 1e6


ROUNDS = 3


def _commit_series(fmt: int, files: list[Path], work: Path) -> float:
    """Commit the series into a new repository of format ``fmt``; the seconds it took."""
    repo = Repository.init(work / f"repo{fmt}", format=fmt)
    try:
        src = work / f"src{fmt}"
        src.mkdir()
        commit_s = 0.0
        for f in files:
            # A new inode per version, as a new export would be: every commit reads.
            shutil.copyfile(f, src / "encounters.csv")
            t = time.perf_counter()
            commit(repo, src, "clinical")
            commit_s += time.perf_counter() - t
    finally:
        repo.close()
    return commit_s


def _checkout_series(fmt: int, n: int, work: Path) -> float:
    """Check out every version of the format-``fmt`` repository; the seconds it took.
    The checkouts are removed and flushed after, so no round pays for another's
    write-back (whichever format ran second used to look slower)."""
    out = work / f"out{fmt}"
    with Repository.open(work / f"repo{fmt}") as repo:
        t = time.perf_counter()
        for v in range(1, n + 1):
            checkout_mod.checkout(repo, f"clinical@v{v}", out / str(v))
        seconds = time.perf_counter() - t
    shutil.rmtree(out)
    os.sync()
    return seconds


def compare_formats(files: list[Path], work: Path) -> list[dict[str, Any]]:
    """Both formats, interleaved round by round (commits and checkouts), best of
    ROUNDS for each, so that the machine's drift and write-back hit both alike."""
    best: dict[int, dict[str, float]] = {2: {}, 3: {}}
    logical = sum(f.stat().st_size for f in files)
    for r in range(ROUNDS):
        for fmt in (2, 3) if r % 2 == 0 else (3, 2):
            rw = work / f"round{r}"
            rw.mkdir(exist_ok=True)
            c = _commit_series(fmt, files, rw)
            os.sync()
            k = _checkout_series(fmt, len(files), rw)
            b = best[fmt]
            b["commit"] = min(b.get("commit", c), c)
            b["checkout"] = min(b.get("checkout", k), k)
            if r < ROUNDS - 1:
                shutil.rmtree(rw / f"repo{fmt}")
                shutil.rmtree(rw / f"src{fmt}")
    rows = []
    last = work / f"round{ROUNDS - 1}"
    for fmt in (2, 3):
        with Repository.open(last / f"repo{fmt}") as repo, repo.index.read() as txn:
            content = repo.resolve(txn, "clinical@latest").snapshot.root.hex
        stored = sum(p.stat().st_size for p in (last / f"repo{fmt}" / "packs").rglob("*.pack"))
        rows.append(
            {
                "format": fmt,
                "commit_mb_s": logical / best[fmt]["commit"] / MB,
                "checkout_mb_s": logical / best[fmt]["checkout"] / MB,
                "stored_bytes": stored,
                "latest_root": content,
            }
        )
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scale", type=float, default=0.1)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--data-dir", default=str(Path(tempfile.gettempdir()) / "reprocas-bench"))
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    files = ensure_series(args.data_dir, args.scale, args.seed)["csv"]
    with tempfile.TemporaryDirectory() as tmp:
        rows = compare_formats(files, Path(tmp))
    if args.json:
        print(json.dumps({"scale": args.scale, "formats": rows}, indent=1))
        return
    print(f"clinical CSV series, 5 versions, {sum(f.stat().st_size for f in files) / MB:.0f} MB")
    print(f"{'':10}{'commit MB/s':>14}{'checkout MB/s':>16}{'stored bytes':>16}")
    for r in rows:
        print(
            f"format {r['format']:<3}{r['commit_mb_s']:>14.1f}{r['checkout_mb_s']:>16.1f}"
            f"{r['stored_bytes']:>16,}"
        )
    two, three = rows
    print(
        f"format 3 / format 2: commit {three['commit_mb_s'] / two['commit_mb_s']:.2f}x, "
        f"checkout {three['checkout_mb_s'] / two['checkout_mb_s']:.2f}x, "
        f"stored {three['stored_bytes'] / two['stored_bytes']:.4f}x"
    )


if __name__ == "__main__":
    main()
