"""Delta chunks benchmark: the five-version clinical series with and without deltas.

For the CSV series and its Parquet twin (benchmarks/generate.py, seeded), commits
v1..v5 into two fresh repositories — deltas on (the default) and off — and prints per
version the bytes each commit added (packs written), later versions as a percentage of
v1, the commit rate with deltas on vs off, and the checkout rate of v5 (deltas on vs
off), beside the machine's own single-core BLAKE3 and zstd -3 rates measured in the
same run.

Targets (issue 8): CSV later versions under 10% of v1 on average (restic: 76%); total
stored under 1.3x (compressed v1 + compressed changed rows); commit with deltas no
worse than 0.8x without; checkout no worse than 0.7x.

    python -m benchmarks.bench_deltas [--scale 0.2] [--seed 7] [--json]
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

import blake3
import pyarrow as pa
import pyarrow.csv as pacsv
import zstandard

from benchmarks.generate import encounter_versions, rows_for_scale, write_series
from reprocas.model.chunking import DeltaConfig
from reprocas.native import core
from reprocas.store import checkout as checkout_mod
from reprocas.store.commit import commit
from reprocas.store.repository import Repository

MB = 1e6


def machine_limits(sample: bytes) -> dict[str, float]:
    """Single-core BLAKE3 and zstd -3 rates (MB/s) on ``sample``, best of three."""

    def best(fn: Any) -> float:
        times = []
        for _ in range(3):
            t = time.perf_counter()
            fn()
            times.append(time.perf_counter() - t)
        return len(sample) / min(times) / MB

    cctx = zstandard.ZstdCompressor(level=3)
    return {
        "blake3_1t_mb_s": best(lambda: blake3.blake3(sample, max_threads=1).digest()),
        "zstd3_1t_mb_s": best(lambda: cctx.compress(sample)),
    }


def changed_rows_bytes(rows: int, seed: int) -> int:
    """zstd -3 size of the rows each version adds or changes, as CSV (the information
    the series really holds beyond v1)."""
    prev: pa.Table | None = None
    total = 0
    cctx = zstandard.ZstdCompressor(level=3)
    for _, table in encounter_versions(rows, seed):
        if prev is not None:
            old = set(_row_keys(prev))
            new_rows = [i for i, k in enumerate(_row_keys(table)) if k not in old]
            if new_rows:
                sub = table.take(pa.array(new_rows, pa.int64()))
                sink = pa.BufferOutputStream()
                pacsv.write_csv(sub, sink)
                total += len(cctx.compress(sink.getvalue().to_pybytes()))
        prev = table
    return total


def _row_keys(table: pa.Table) -> list[tuple[Any, ...]]:
    cols = [table.column(i).to_pylist() for i in range(table.num_columns)]
    return list(zip(*cols, strict=True))


def run_series(files: list[Path], work: Path, deltas: bool) -> dict[str, Any]:
    root = work / ("repo-deltas" if deltas else "repo-plain")
    repo = Repository.init(root, deltas=DeltaConfig(enabled=deltas))
    src = work / "src"
    per: list[dict[str, Any]] = []
    try:
        for i, f in enumerate(files, 1):
            if src.exists():
                shutil.rmtree(src)
            src.mkdir()
            os.link(f, src / f"encounters{f.suffix}")
            t = time.perf_counter()
            r = commit(repo, src, "encounters", message=f"v{i}")
            secs = time.perf_counter() - t
            per.append(
                {"version": i, "logical": r.logical_bytes, "stored": r.new_bytes, "seconds": secs}
            )
        out = work / "out"
        times = []
        for _ in range(2):
            if out.exists():
                shutil.rmtree(out)
            t = time.perf_counter()
            checkout_mod.checkout(repo, f"encounters@v{len(files)}", out)
            times.append(time.perf_counter() - t)
        got = core.blake3_digest((out / f"encounters{files[-1].suffix}").read_bytes())
        if got != core.blake3_digest(files[-1].read_bytes()):
            raise RuntimeError("checkout of the last version differs from its source")
    finally:
        repo.close()
    later = [p["stored"] / per[0]["stored"] for p in per[1:]]
    commit_bytes = sum(p["logical"] for p in per[1:])
    commit_secs = sum(p["seconds"] for p in per[1:])
    return {
        "versions": per,
        "later_pct_of_v1": [round(100 * x, 2) for x in later],
        "later_mean_pct": round(100 * sum(later) / len(later), 2),
        "total_stored": sum(p["stored"] for p in per),
        "commit_later_mb_s": commit_bytes / commit_secs / MB,
        "checkout_last_mb_s": per[-1]["logical"] / min(times) / MB,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--scale", type=float, default=0.2, help="1.0 = ~500 MB of CSV per version")
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    rows = rows_for_scale(args.scale)
    result: dict[str, Any] = {"scale": args.scale, "rows_v1": rows}
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        print(f"generating the five-version series ({rows:,} rows in v1) ...", flush=True)
        series = write_series(work / "data", rows, args.seed)
        sample = series["csv"][0].read_bytes()[: 64 << 20]
        result["machine"] = machine_limits(sample)
        result["changed_rows_zstd_bytes"] = changed_rows_bytes(rows, args.seed)
        for fmt in ("csv", "parquet"):
            for deltas in (True, False):
                print(f"{fmt}: committing v1..v5, deltas {'on' if deltas else 'off'} ...")
                w = work / f"{fmt}-{deltas}"
                w.mkdir()
                result[f"{fmt}_{'deltas' if deltas else 'plain'}"] = run_series(
                    series[fmt], w, deltas
                )
                shutil.rmtree(w)
    if args.json:
        print(json.dumps(result, indent=2))
        return
    m = result["machine"]
    print(
        f"\nmachine: blake3 1 core {m['blake3_1t_mb_s']:.0f} MB/s, "
        f"zstd -3 1 core {m['zstd3_1t_mb_s']:.0f} MB/s"
    )
    for fmt in ("csv", "parquet"):
        on, off = result[f"{fmt}_deltas"], result[f"{fmt}_plain"]
        print(f"\n{fmt.upper()} series (v1 {on['versions'][0]['logical'] / MB:.1f} MB logical)")
        print(f"  {'version':<8}{'deltas on':>14}{'% of v1':>10}{'deltas off':>14}{'% of v1':>10}")
        for a, b in zip(on["versions"], off["versions"], strict=True):
            print(
                f"  v{a['version']:<7}{a['stored']:>14,}"
                f"{100 * a['stored'] / on['versions'][0]['stored']:>9.1f}%"
                f"{b['stored']:>14,}{100 * b['stored'] / off['versions'][0]['stored']:>9.1f}%"
            )
        print(
            f"  later versions, mean % of v1: {on['later_mean_pct']:.1f}% with deltas, "
            f"{off['later_mean_pct']:.1f}% without"
            + ("  (target < 10%; restic 76%)" if fmt == "csv" else "")
        )
        if fmt == "csv":
            bound = on["versions"][0]["stored"] + result["changed_rows_zstd_bytes"]
            print(
                f"  total stored {on['total_stored']:,} = "
                f"{on['total_stored'] / bound:.2f}x (v1 stored + zstd of changed rows "
                f"{result['changed_rows_zstd_bytes']:,})  (target < 1.3x)"
            )
        cr = on["commit_later_mb_s"] / off["commit_later_mb_s"]
        kr = on["checkout_last_mb_s"] / off["checkout_last_mb_s"]
        print(
            f"  commit v2..v5: {on['commit_later_mb_s']:.0f} MB/s with deltas, "
            f"{off['commit_later_mb_s']:.0f} MB/s without = {cr:.2f}x (target >= 0.8x); "
            f"{on['commit_later_mb_s'] / m['zstd3_1t_mb_s']:.2f}x zstd 1 core"
        )
        print(
            f"  checkout v5: {on['checkout_last_mb_s']:.0f} MB/s with deltas, "
            f"{off['checkout_last_mb_s']:.0f} MB/s without = {kr:.2f}x (target >= 0.7x); "
            f"{on['checkout_last_mb_s'] / m['blake3_1t_mb_s']:.2f}x blake3 1 core"
        )


if __name__ == "__main__":
    main()
