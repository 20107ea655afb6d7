"""Deduplication and stored size against chunk size, to choose the default chunk sizes.

``python -m benchmarks.chunk_sweep [--scale 0.1] [--data-dir bench-data] [--json]``

For every chunker setting (average 4 KiB .. 1 MiB; minimum = avg/4 and avg/2;
maximum = 4 x avg) the five versions of the encounters series
(:func:`benchmarks.generate.write_series`: v2 appends 2% rows, v3 edits 0.5% of rows
in place, v4 deletes 1%, v5 inserts 1%; CSV and Parquet) are committed one after the
other into an in-memory set of chunk digests, as ``reprocas`` would store them. Per
setting it reports:

* ``v1 chunks`` / ``mean``: chunk count and mean chunk size of v1;
* ``v2..v5 new``: bytes of chunks not seen before, as % of v1's size. The lower
  bound is what really changed: about 2% for v2, 0.5% for v3 (edited rows), 0% for v4
  (deletions add nothing), 1% for v5;
* ``unique``: bytes of distinct chunks over the whole series (what is stored before
  compression), and ``uniq chunks``, which drives index size and per-chunk overheads;
* ``v1 indiv`` / ``v1 framed``: v1 stored with every chunk compressed on its own at
  zstd level 3, or with consecutive new chunks compressed together in frames of up to
  1 MiB (``ChunkBatch.compress(frame_size=...)``), as a multiple of v1 compressed
  whole with zstd -3. Above 1.00x is the compression context lost to small chunks;
* ``series indiv`` / ``series framed``: the same for the whole series, in MB;
* ``cut+hash 1T`` / ``all``: ``chunk_file`` throughput on v1 with one thread and all
  threads, best of ``--repeat`` runs (redone when other processes disturb them, see
  :class:`benchmarks.bench_core.Quiet`).

The compressed sizes come from a second pass with ``FileChunker``; its new-byte
counts are checked against the ``chunk_file`` pass.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import zstandard

from benchmarks.bench_core import (
    CORE_BUILD,
    QUIET,
    OtherLoad,
    best_of,
    core_build,
    progress,
    text_table,
)
from benchmarks.generate import VERSIONS, ensure_series, rows_for_scale
from reprocas import _core

KiB = 1024
MB = 1_000_000
FRAME_SIZE = 1 << 20
DEFAULT_AVGS_KIB = (4, 8, 16, 32, 64, 128, 1024)
DEFAULT_MIN_DIVISORS = (4, 2)


@dataclass
class Setting:
    """Results of one chunker setting on one series."""

    min_size: int
    avg_size: int
    max_size: int
    v1_chunks: int = 0
    v1_mean: float = 0.0
    new_bytes: list[int] = field(default_factory=list)
    """Bytes of never-seen chunks in each version (v1 first)."""
    unique_bytes: int = 0
    unique_chunks: int = 0
    stored_indiv: list[int] = field(default_factory=list)
    """Compressed bytes of each version's new chunks, one frame per chunk."""
    stored_framed: list[int] = field(default_factory=list)
    """Compressed bytes of each version's new chunks, frames of up to 1 MiB."""
    cut_hash_mb_s: float = 0.0
    """``chunk_file`` on v1, all threads: best of ``--repeat``, MB/s."""
    cut_hash_1t_mb_s: float = 0.0
    """``chunk_file`` on v1, one thread: best of ``--repeat``, MB/s."""
    seconds: float = 0.0


@dataclass
class SeriesResult:
    """A series (CSV or Parquet) and every setting measured on it."""

    fmt: str
    sizes: list[int]
    whole_zstd: list[int]
    """Each version compressed whole with zstd -3 (one thread, one frame)."""
    settings: list[Setting] = field(default_factory=list)


def whole_file_zstd(path: Path, level: int) -> int:
    """Size of ``path`` compressed as one zstd frame at ``level`` (one thread)."""
    cctx = zstandard.ZstdCompressor(level=level, threads=0)
    return len(cctx.compress(path.read_bytes()))


def dedup_pass(paths: Sequence[Path], params: _core.ChunkerParams, threads: int) -> Setting:
    """Commit every version into a digest set with ``chunk_file``; new bytes per version."""
    s = Setting(params.min_size, params.avg_size, params.max_size)
    seen: set[bytes] = set()
    for n, path in enumerate(paths):
        table = _core.chunk_file(path, params, threads=threads)
        if n == 0:
            s.v1_chunks = len(table)
            s.v1_mean = table.size / max(1, len(table))
        new = 0
        for digest, length in zip(table.digests, table.lengths, strict=True):
            if digest not in seen:
                seen.add(digest)
                new += length
        s.new_bytes.append(new)
    s.unique_bytes = sum(s.new_bytes)
    s.unique_chunks = len(seen)
    return s


def compress_pass(
    s: Setting, paths: Sequence[Path], params: _core.ChunkerParams, level: int, threads: int
) -> None:
    """Stored size of each version's new chunks: per chunk, and in frames of <= 1 MiB."""
    seen: set[bytes] = set()
    for n, path in enumerate(paths):
        indiv = framed = new = 0
        for batch in _core.FileChunker(path, params, threads=threads):
            fresh: list[int] = []
            for i, digest in enumerate(batch.digests):
                if digest not in seen:
                    seen.add(digest)
                    fresh.append(i)
            if not fresh:
                continue
            one = batch.compress(fresh, level, frame_size=0)
            indiv += sum(len(f[1]) for f in one)
            new += sum(f[4] for f in one)
            framed += sum(len(f[1]) for f in batch.compress(fresh, level, frame_size=FRAME_SIZE))
        if new != s.new_bytes[n]:
            raise RuntimeError(
                f"{path}: FileChunker found {new} new bytes, chunk_file {s.new_bytes[n]}"
            )
        s.stored_indiv.append(indiv)
        s.stored_framed.append(framed)


def cut_hash_rate(
    s: Setting, path: Path, params: _core.ChunkerParams, threads: int, repeat: int
) -> None:
    """``chunk_file`` throughput on v1 in MB/s (best of ``repeat`` quiet runs) into ``s``."""
    for t in dict.fromkeys((threads, 1)):
        seconds, _, table = best_of(repeat, t, _core.chunk_file, path, params, threads=t)
        if t == 1:
            s.cut_hash_1t_mb_s = table.size / MB / seconds
        if t == threads:
            s.cut_hash_mb_s = table.size / MB / seconds
        s.v1_chunks = len(table)
        s.v1_mean = table.size / max(1, len(table))


def sweep(
    fmt: str,
    paths: Sequence[Path],
    settings: Sequence[tuple[int, int, int]],
    level: int,
    threads: int,
    repeat: int,
    throughput_only: bool = False,
) -> SeriesResult:
    """Measure every setting on one series (only the cut+hash rates if ``throughput_only``)."""
    sizes = [p.stat().st_size for p in paths]
    if throughput_only:
        result = SeriesResult(fmt, sizes, [])
        for lo, avg, hi in settings:
            progress(f"{fmt}: cut+hash rate, min {lo} avg {avg} max {hi}")
            s = Setting(lo, avg, hi)
            cut_hash_rate(s, paths[0], _core.ChunkerParams(lo, avg, hi), threads, repeat)
            result.settings.append(s)
        return result
    progress(f"{fmt}: whole-file zstd -{level} of each version")
    result = SeriesResult(fmt, sizes, [whole_file_zstd(p, level) for p in paths])
    for lo, avg, hi in settings:
        progress(f"{fmt}: min {lo} avg {avg} max {hi}")
        started = time.perf_counter()
        params = _core.ChunkerParams(lo, avg, hi)
        s = dedup_pass(paths, params, threads)
        compress_pass(s, paths, params, level, threads)
        cut_hash_rate(s, paths[0], params, threads, repeat)
        s.seconds = time.perf_counter() - started
        result.settings.append(s)
    return result


def size_label(n: int) -> str:
    return f"{n // (1 << 20)}M" if n % (1 << 20) == 0 else f"{n // KiB}K"


def format_throughput(r: SeriesResult) -> str:
    """A ``--throughput-only`` run: chunk counts and cut+hash rates on v1."""
    header = ("min", "avg", "max", "v1 chunks", "mean", "cut+hash 1T MB/s", "cut+hash all MB/s")
    lines = [
        (
            size_label(s.min_size),
            size_label(s.avg_size),
            size_label(s.max_size),
            str(s.v1_chunks),
            f"{s.v1_mean / KiB:.1f}K",
            f"{s.cut_hash_1t_mb_s:.0f}",
            f"{s.cut_hash_mb_s:.0f}",
        )
        for s in r.settings
    ]
    head = f"{r.fmt}: chunk_file on v1 ({r.sizes[0] / MB:.1f} MB)\n"
    return head + text_table(header, lines, right=set(range(3, len(header))))


def format_series(r: SeriesResult, level: int) -> str:
    """One series' settings as a table, with the whole-file baselines above it."""
    if not r.whole_zstd:
        return format_throughput(r)
    v1 = r.sizes[0]
    whole_v1 = r.whole_zstd[0]
    head = (
        f"{r.fmt}: v1 {v1 / MB:.1f} MB, v1..v5 {sum(r.sizes) / MB:.1f} MB; whole-file "
        f"zstd -{level}: v1 {whole_v1 / MB:.1f} MB ({v1 / whole_v1:.2f}x), all five "
        f"{sum(r.whole_zstd) / MB:.1f} MB\n"
        f"new bytes per version as % of v1 (what really changed: v2 ~2, v3 ~0.5, v4 0, "
        f"v5 ~1); indiv/framed = stored / whole-file zstd -{level} of v1\n"
    )
    header = (
        "min", "avg", "max", "v1 chunks", "mean", "v2 new", "v3 new", "v4 new", "v5 new",
        "unique MB", "uniq chunks", "v1 indiv", "v1 framed", "series indiv MB",
        "series framed MB", "cut+hash 1T", "cut+hash all",
    )  # fmt: skip
    lines = []
    for s in r.settings:
        pct = [f"{100 * b / v1:.2f}%" for b in s.new_bytes[1:]]
        lines.append((
            size_label(s.min_size), size_label(s.avg_size), size_label(s.max_size),
            str(s.v1_chunks), f"{s.v1_mean / KiB:.1f}K", *pct,
            f"{s.unique_bytes / MB:.1f}", str(s.unique_chunks),
            f"{s.stored_indiv[0] / whole_v1:.3f}x", f"{s.stored_framed[0] / whole_v1:.3f}x",
            f"{sum(s.stored_indiv) / MB:.1f}", f"{sum(s.stored_framed) / MB:.1f}",
            f"{s.cut_hash_1t_mb_s:.0f}" if s.cut_hash_1t_mb_s else "",
            f"{s.cut_hash_mb_s:.0f}",
        ))  # fmt: skip
    return head + text_table(header, lines, right=set(range(3, len(header))))


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.chunk_sweep",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--scale", type=float, default=1.0, help="1.0: v1 is ~500 MB of CSV")
    parser.add_argument("--data-dir", type=Path, default=Path("bench-data"))
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--series", default="csv,parquet", help="csv, parquet or both")
    parser.add_argument(
        "--avg-kib",
        default=",".join(map(str, DEFAULT_AVGS_KIB)),
        help="average chunk sizes in KiB, comma-separated",
    )
    parser.add_argument(
        "--min-divisors",
        default=",".join(map(str, DEFAULT_MIN_DIVISORS)),
        help="min = avg / d for each d (max is always 4 x avg)",
    )
    parser.add_argument("--level", type=int, default=3, help="zstd level")
    parser.add_argument("--threads", type=int, default=0, help="0: one worker per core")
    parser.add_argument("--repeat", type=int, default=3, help="runs per throughput figure")
    parser.add_argument(
        "--quiet-budget",
        type=float,
        default=QUIET.budget_seconds,
        help="total seconds to spend waiting for a quiet machine and redoing disturbed runs",
    )
    parser.add_argument(
        "--throughput-only",
        action="store_true",
        help="only the cut+hash rates on v1 (no dedup or compression passes)",
    )
    parser.add_argument("--json", action="store_true", help="print JSON instead of tables")
    parser.add_argument(
        "--from-json",
        type=Path,
        metavar="FILE",
        help="print the tables of an earlier --json run; measure nothing",
    )
    args = parser.parse_args(argv)

    if args.from_json is not None:
        print(format_report(json.loads(args.from_json.read_text())))
        return 0
    avgs = [int(x) * KiB for x in args.avg_kib.split(",")]
    divisors = [int(x) for x in args.min_divisors.split(",")]
    settings = [(avg // d, avg, 4 * avg) for avg in avgs for d in divisors]
    QUIET.budget_seconds = args.quiet_budget
    files = ensure_series(args.data_dir, args.scale, args.seed)
    load = OtherLoad()
    results = [
        sweep(
            fmt, files[fmt], settings, args.level, args.threads, args.repeat, args.throughput_only
        )
        for fmt in args.series.split(",")
    ]
    report = {
        "scale": args.scale,
        "seed": args.seed,
        "rows_v1": rows_for_scale(args.scale),
        "versions": list(VERSIONS),
        "level": args.level,
        "repeat": args.repeat,
        "frame_size": FRAME_SIZE,
        "load": load.report(),
        "quiet": asdict(QUIET),
        "core_build": CORE_BUILD,
        "core_rebuilt_during_run": core_build() != CORE_BUILD,
        "series": [asdict(r) for r in results],
    }
    print(json.dumps(report, indent=2) if args.json else format_report(report))
    return 0


def format_report(report: dict[str, Any]) -> str:
    """The tables of a whole run (as produced by ``--json``)."""
    seed = report.get("seed", "?")
    out = [f"scale {report['scale']:g} ({report['rows_v1']} rows in v1), seed {seed}"]
    build = report.get("core_build")
    if build is not None:
        out.append(f"extension built {build.get('mtime', '?')}, blake3 {build.get('blake3', '?')}")
    if report.get("core_rebuilt_during_run"):
        out.append("WARNING: the extension was rebuilt during the run (not used by this run)")
    other = report.get("load")
    if other is not None:
        out.append(
            f"other processes used {other['other_cores']:.2f} cores on average during the "
            f"{other['wall_seconds']:.0f} s run (only the cut+hash columns depend on it)"
        )
    quiet = report.get("quiet")
    if quiet is not None:
        out.append(
            f"cut+hash: chunk_file on v1, best of {report.get('repeat', '?')}; disturbed runs "
            f"{quiet['discarded']} redone, {quiet['kept_disturbed']} kept"
            + (" - NOISY" if quiet["kept_disturbed"] else "")
        )
    for r in report["series"]:
        settings = [Setting(**s) for s in r["settings"]]
        series = SeriesResult(r["fmt"], r["sizes"], r["whole_zstd"], settings)
        out += ["", format_series(series, report["level"])]
    return "\n".join(out)


if __name__ == "__main__":
    sys.exit(main())
