"""Throughput of the native core against reference libraries, measured in one run.

``python -m benchmarks.bench_core [--size-mib 1024] [--data-dir bench-data] [--json]``

On one seeded, realistic file (:func:`benchmarks.generate.random_file`, read once so
the page cache is warm and the bytes are in memory) this measures, with one thread and
with all cores:

* cut only (``_core.cut_buffer``, once it exists) and cut + hash (``chunk_buffer`` in
  memory, ``chunk_file`` from the file);
* cut + hash + compress: ``FileChunker`` over the file, every chunk treated as new and
  compressed in frames of up to 1 MiB at zstd levels 1 and 3;
* decompress: every frame of that run through ``decompress_chunks``.

Beside them it measures, in the same process and on the same bytes, the reference
rates of the ``blake3`` package (one thread) and the ``zstandard`` package (one
thread, 1 MiB pieces, same levels), and prints each of ours as a ratio to its
reference, next to the target ratio. It also times the whole ``reprocas debug chunk``
process and measures the peak RSS of chunking + compressing a 4 GiB file in a child
process. Targets are printed, never asserted: this is a measuring tool, not a test.

Rates are MB/s of input (raw) bytes, 1 MB = 10**6 bytes; every figure is the best
of ``--repeat`` runs.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import resource
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, ParamSpec, TypeVar

import blake3
import zstandard

from benchmarks.generate import MiB, ensure_random_file
from reprocas import _core
from reprocas.model.chunking import DEFAULT_AVG_SIZE, DEFAULT_MAX_SIZE, DEFAULT_MIN_SIZE

T = TypeVar("T")
P = ParamSpec("P")

MB = 1_000_000
FRAME_SIZE = 1 << 20
"""Frame size of our compression and piece size of the zstandard reference."""
DECOMPRESS_BATCH = 16 << 20
"""Raw bytes decoded per ``decompress_chunks`` call (the size of a ``FileChunker`` batch)."""

THREADS = (1, 0)
"""``threads`` values measured: the calling thread only, and one worker per core."""

TARGET_CUT_HASH = 0.5
"""cut + hash with all threads, as a fraction of blake3 with one thread."""
TARGET_CLI = 0.4
"""the whole ``reprocas debug chunk`` process, as a fraction of blake3 with one thread."""
TARGET_COMPRESS = 1.6
"""cut + hash + compress with all threads, as a multiple of zstd with one thread."""
TARGET_RSS_MIB = 256
"""peak RSS of chunking + compressing a 4 GiB file."""


@dataclass
class Row:
    """One line of the result table."""

    measurement: str
    threads: str
    mb_per_s: float | None
    reference: str = ""
    ratio: float | None = None
    target: str = ""
    meets: bool | None = None
    note: str = ""
    seconds: list[float] = field(default_factory=list)


class OtherLoad:
    """CPU time used by everything except this process and its children, since creation.

    The figures are only as good as the machine was quiet: with 2 cores one busy
    neighbour halves every "all threads" figure. This reads the busy jiffies of
    ``/proc/stat`` (Linux only; elsewhere it reports nothing) and subtracts our own
    CPU time, so the output can say how much of the machine others took.
    """

    def __init__(self) -> None:
        self.start = self._sample()

    @staticmethod
    def _sample() -> tuple[float, float, float] | None:
        try:
            fields = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
        except (OSError, IndexError):
            return None
        user, nice, system, _idle, _iowait, irq, softirq, steal = (int(x) for x in fields[:8])
        hz = os.sysconf("SC_CLK_TCK")
        own = sum(
            u.ru_utime + u.ru_stime
            for u in (resource.getrusage(resource.RUSAGE_SELF),
                      resource.getrusage(resource.RUSAGE_CHILDREN))
        )  # fmt: skip
        busy = (user + nice + system + irq + softirq) / hz
        return time.monotonic(), busy - own, steal / hz

    def report(self) -> dict[str, float] | None:
        """Average cores used by other processes, and stolen by the hypervisor."""
        end = self._sample()
        if self.start is None or end is None:
            return None
        wall = end[0] - self.start[0]
        return {
            "wall_seconds": wall,
            "other_cores": max(0.0, (end[1] - self.start[1]) / wall),
            "steal_cores": (end[2] - self.start[2]) / wall,
        }


@dataclass
class Quiet:
    """How :func:`best_of` copes with other processes competing for the cores.

    A measurement that uses ``c`` of the machine's ``n`` cores tolerates others using
    the ``n - c`` idle cores plus ``max_other_cores``: one-thread figures are only
    disturbed when others need more than the spare cores, all-thread figures as soon
    as others need anything.
    """

    wait_seconds: float = 10.0
    """Before each run, wait up to this long for a quiet half-second (0: do not wait)."""
    max_other_cores: float = 0.25
    """Other processes' load (beyond the spare cores) that makes a run be redone."""
    max_retries: int = 3
    """Disturbed runs redone per figure; after that disturbed runs are kept."""
    budget_seconds: float = 180.0
    """Total time the whole benchmark may spend waiting and redoing runs; once spent,
    runs are neither waited for nor redone (on a machine that is never quiet)."""
    spent: float = 0.0
    discarded: int = 0
    """Disturbed runs discarded so far."""
    kept_disturbed: int = 0
    """Disturbed runs kept (retries or budget ran out)."""


QUIET = Quiet()
CORES = os.cpu_count() or 1


def others_busy(load: dict[str, float] | None) -> float:
    return 0.0 if load is None else load["other_cores"] + load["steal_cores"]


def wait_until_quiet(spare_cores: float) -> None:
    """Block until others use under ``spare_cores + 0.1`` cores for 0.5 s, or time out."""
    started = time.monotonic()
    deadline = started + min(QUIET.wait_seconds, QUIET.budget_seconds - QUIET.spent)
    try:
        while time.monotonic() < deadline:
            probe = OtherLoad()
            time.sleep(0.5)
            if others_busy(probe.report()) < spare_cores + 0.1:
                return
    finally:
        QUIET.spent += time.monotonic() - started


def best_of(
    repeat: int, uses: int, fn: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs
) -> tuple[float, list[float], T]:
    """Call ``fn`` ``repeat`` times; the shortest time, all kept times, the last result.

    ``uses`` is the number of threads the call runs (0: every core), to judge how
    much load from other processes disturbs it (see :class:`Quiet`). The previous result is dropped
    before the next call so that two copies of a large result never coexist.
    """
    spare = max(0, CORES - (uses or CORES))
    times: list[float] = []
    result: list[T] = []
    retries = 0
    while len(times) < repeat:
        result.clear()
        gc.collect()
        if QUIET.wait_seconds > 0:
            wait_until_quiet(spare)
        load = OtherLoad()
        started = time.perf_counter()
        result.append(fn(*args, **kwargs))
        elapsed = time.perf_counter() - started
        if others_busy(load.report()) > spare + QUIET.max_other_cores:
            if retries < QUIET.max_retries and QUIET.spent < QUIET.budget_seconds:
                retries += 1
                QUIET.discarded += 1
                QUIET.spent += elapsed
                continue
            QUIET.kept_disturbed += 1
        times.append(elapsed)
    return min(times), times, result[0]


def rate(size: int, seconds: float) -> float:
    return size / MB / seconds


def progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def threads_label(threads: int) -> str:
    return "1" if threads == 1 else f"all ({_core.default_threads()})"


# --- the measurements -----------------------------------------------------------------

Frames = list[tuple[int, bytes, int]]
"""``(codec, payload, raw_len)`` of every frame of a file, as ``decompress_chunks`` takes."""


def chunk_and_compress(path: Path, params: _core.ChunkerParams, level: int, threads: int) -> Frames:
    """Everything ``reprocas add`` does to a file of new data, minus the index lookups."""
    frames: Frames = []
    for batch in _core.FileChunker(path, params, threads=threads):
        for codec, payload, _first, _count, raw_len in batch.compress(
            list(range(len(batch))), level, frame_size=FRAME_SIZE
        ):
            frames.append((codec, payload, raw_len))
    return frames


def batches(frames: Frames, batch_bytes: int) -> list[Frames]:
    """Consecutive frames grouped into calls of about ``batch_bytes`` raw bytes."""
    groups: list[Frames] = [[]]
    acc = 0
    for frame in frames:
        if acc >= batch_bytes:
            groups.append([])
            acc = 0
        groups[-1].append(frame)
        acc += frame[2]
    return groups


def decompress_batches(groups: list[Frames], threads: int) -> int:
    """Decompress group by group, dropping each group's output before the next.

    This is how a restore runs (decode a batch, write it, let it go) and what the
    zstandard reference does piece by piece; one call over a whole 1 GiB file would
    mostly measure the kernel handing out fresh pages for a 1 GiB result.
    """
    return sum(sum(map(len, _core.decompress_chunks(g, threads=threads))) for g in groups)


def zstd_pieces(data: memoryview, level: int) -> list[bytes]:
    """The zstandard reference: one thread, the data in independent 1 MiB frames."""
    cctx = zstandard.ZstdCompressor(level=level, threads=0)
    return [cctx.compress(data[i : i + FRAME_SIZE]) for i in range(0, len(data), FRAME_SIZE)]


def zstd_unpieces(pieces: list[bytes]) -> int:
    dctx = zstandard.ZstdDecompressor()
    return sum(len(dctx.decompress(p)) for p in pieces)


class CliError(Exception):
    """The CLI run failed or printed something that is not JSON."""


def run_cli_once(cmd: Sequence[str]) -> None:
    """Run the CLI once; :class:`CliError` unless it exits 0 and prints JSON."""
    proc = subprocess.run(cmd, capture_output=True, check=False)
    if proc.returncode != 0:
        lines = proc.stderr.decode(errors="replace").strip().splitlines()
        raise CliError(f"exit {proc.returncode}: {lines[-1] if lines else ''}"[:120])
    try:
        json.loads(proc.stdout)
    except ValueError as e:
        raise CliError("output is not JSON") from e


def time_cli(
    path: Path, params: _core.ChunkerParams, repeat: int
) -> tuple[float | None, list[float], str]:
    """Wall time of ``reprocas debug chunk FILE --json`` as a whole process.

    Start-up, import, chunking and printing the JSON all count. The chunker sizes are
    passed as ``--min/--avg/--max``; a CLI that rejects those options (exit 2) is run
    with its own. A first, untimed run checks that the command works.
    """
    script = Path(sys.executable).parent / "reprocas"
    if not script.exists():
        return None, [], f"{script} not found"
    cmd = [str(script), "debug", "chunk", str(path), "--json", "--min", str(params.min_size),
           "--avg", str(params.avg_size), "--max", str(params.max_size)]  # fmt: skip
    note = "start-up included"
    try:
        run_cli_once(cmd)
    except CliError as e:
        if not str(e).startswith("exit 2"):
            return None, [], str(e)
        cmd, note = cmd[:6], "start-up included; the CLI's default sizes"
        try:
            run_cli_once(cmd)
        except CliError as e2:
            return None, [], str(e2)
    s, times, _ = best_of(repeat, 0, run_cli_once, cmd)
    return s, times, note


RSS_CHILD = """
import resource, sys
from reprocas import _core
path, lo, avg, hi, level = sys.argv[1:6]
params = _core.ChunkerParams(int(lo), int(avg), int(hi))
raw = stored = 0
if path != "-":
    for batch in _core.FileChunker(path, params, threads=0):
        frames = batch.compress(list(range(len(batch))), int(level), frame_size=1 << 20)
        raw += sum(f[4] for f in frames)
        stored += sum(len(f[1]) for f in frames)
try:
    with open("/proc/self/status") as f:
        peak = next(int(l.split()[1]) for l in f if l.startswith("VmHWM:"))
except (OSError, StopIteration):
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(raw, stored, peak * 1024)
"""


def child_peak_rss(args: Sequence[str]) -> tuple[int, float, int]:
    """Run :data:`RSS_CHILD` in a fresh interpreter: its peak RSS, wall time, raw bytes.

    The child reports its own high-water mark (``VmHWM``: the peak RSS of its address
    space since ``exec``). ``ru_maxrss`` from ``wait4`` or ``RUSAGE_CHILDREN`` is not
    used because Linux carries the parent's RSS at fork time into the child's
    ``ru_maxrss`` across ``exec``, which here would report the benchmark's own
    gigabytes of buffers instead of the child's.
    """
    started = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-c", RSS_CHILD, *args], capture_output=True, text=True, check=False
    )
    elapsed = time.perf_counter() - started
    if proc.returncode != 0:
        raise RuntimeError(f"RSS child failed ({proc.returncode}): {proc.stderr.strip()[-400:]}")
    raw, _stored, peak = (int(x) for x in proc.stdout.split())
    return peak, elapsed, raw


def verdict(ratio: float | None, target: float) -> bool | None:
    return None if ratio is None else ratio >= target


def measure_hashing(
    data: memoryview, path: Path, params: _core.ChunkerParams, repeat: int
) -> tuple[float, list[Row]]:
    """blake3 reference, cut only, cut + hash; returns blake3's rate and the rows."""
    size = len(data)
    rows: list[Row] = []
    progress("blake3 reference")
    s, times, _ = best_of(repeat, 1, lambda: blake3.blake3(data, max_threads=1).digest())
    b3_rate = rate(size, s)
    rows.append(Row("blake3 pkg (reference)", "1", b3_rate, seconds=times))

    cut_buffer: Callable[..., list[int]] | None = getattr(_core, "cut_buffer", None)
    for t in THREADS:
        if cut_buffer is None:
            rows.append(Row("cut only (cut_buffer)", threads_label(t), None,
                            note="TODO: _core.cut_buffer is not in this build"))  # fmt: skip
            continue
        progress(f"cut only, threads={t}")
        s, times, ends = best_of(repeat, t, cut_buffer, data, params, threads=t)
        r = rate(size, s)
        rows.append(Row("cut only (cut_buffer)", threads_label(t), r, "blake3 1T", r / b3_rate,
                        note=f"{len(ends)} chunks", seconds=times))  # fmt: skip

    for t in THREADS:
        progress(f"cut+hash in memory, threads={t}")
        s, times, table = best_of(repeat, t, _core.chunk_buffer, data, params, threads=t)
        r = rate(size, s)
        rows.append(Row("cut+hash (chunk_buffer, in memory)", threads_label(t), r, "blake3 1T",
                        r / b3_rate, note=f"{len(table)} chunks", seconds=times))  # fmt: skip
    for t in THREADS:
        progress(f"cut+hash from file, threads={t}")
        s, times, table = best_of(repeat, t, _core.chunk_file, path, params, threads=t)
        r = rate(size, s)
        rows.append(Row("cut+hash (chunk_file)", threads_label(t), r, "blake3 1T", r / b3_rate,
                        f">= {TARGET_CUT_HASH}x" if t == 0 else "",
                        verdict(r / b3_rate, TARGET_CUT_HASH) if t == 0 else None,
                        note=f"{len(table)} chunks, mean {size / len(table) / 1024:.1f} KiB",
                        seconds=times))  # fmt: skip
    return b3_rate, rows


def measure_compression(
    data: memoryview, path: Path, params: _core.ChunkerParams, level: int, repeat: int
) -> list[Row]:
    """zstandard references, cut + hash + compress and decompress at one level."""
    size = len(data)
    rows: list[Row] = []
    progress(f"zstandard reference, level {level}")
    s, times, pieces = best_of(repeat, 1, zstd_pieces, data, level)
    z_rate = rate(size, s)
    z_stored = sum(len(p) for p in pieces)
    rows.append(Row(f"zstd pkg -{level} (reference)", "1", z_rate, seconds=times,
                    note=f"1 MiB pieces, ratio {size / z_stored:.2f}"))  # fmt: skip
    s, times, _ = best_of(repeat, 1, zstd_unpieces, pieces)
    zd_rate = rate(size, s)
    rows.append(Row(f"zstd pkg decompress -{level} (reference)", "1", zd_rate, seconds=times))
    del pieces

    frames: Frames = []
    for t in THREADS:
        progress(f"cut+hash+compress level {level}, threads={t}")
        frames = []
        s, times, frames = best_of(repeat, t, chunk_and_compress, path, params, level, t)
        r = rate(size, s)
        stored = sum(len(f[1]) for f in frames)
        if sum(f[2] for f in frames) != size:
            raise RuntimeError(f"level {level}: the frames do not cover the file")
        rows.append(Row(f"cut+hash+compress -{level}", threads_label(t), r,
                        f"zstd -{level} 1T", r / z_rate,
                        f">= {TARGET_COMPRESS}x" if t == 0 else "",
                        verdict(r / z_rate, TARGET_COMPRESS) if t == 0 else None,
                        note=f"{len(frames)} frames, ratio {size / stored:.2f}",
                        seconds=times))  # fmt: skip

    if b"".join(_core.decompress_chunks(frames, threads=0)) != data:
        raise RuntimeError(f"level {level}: decompressed bytes differ from the input")
    groups = batches(frames, DECOMPRESS_BATCH)
    for t in THREADS:
        progress(f"decompress level {level}, threads={t}")
        s, times, _ = best_of(repeat, t, decompress_batches, groups, t)
        r = rate(size, s)
        rows.append(Row(f"decompress -{level} (decompress_chunks)", threads_label(t), r,
                        f"zstd -{level} dec 1T", r / zd_rate, seconds=times,
                        note=f"{DECOMPRESS_BATCH >> 20} MiB per call"))  # fmt: skip
    progress(f"decompress level {level}, whole file in one call")
    s, times, _ = best_of(repeat, 0, _core.decompress_chunks, frames, threads=0)
    r = rate(size, s)
    rows.append(Row(f"decompress -{level}, one call", threads_label(0), r, f"zstd -{level} dec 1T",
                    r / zd_rate, seconds=times,
                    note="all frames at once: the whole output fresh"))  # fmt: skip
    return rows


def measure_cli(path: Path, params: _core.ChunkerParams, b3_rate: float, repeat: int) -> Row:
    """The ``reprocas debug chunk --json`` process as a whole, against blake3."""
    progress("CLI: reprocas debug chunk --json")
    name, target = "CLI reprocas debug chunk --json", f">= {TARGET_CLI}x"
    cli_s, times, note = time_cli(path, params, repeat)
    if cli_s is None:
        return Row(name, "all", None, "blake3 1T", target=target, note=f"n/a: {note}")
    r = rate(path.stat().st_size, cli_s)
    return Row(name, "all", r, "blake3 1T", r / b3_rate, target,
               verdict(r / b3_rate, TARGET_CLI), note, times)  # fmt: skip


def measure_rss(args: argparse.Namespace) -> tuple[Row, dict[str, Any]]:
    """Peak RSS of chunking + compressing (level 3) a big file, in a child process."""
    rss_size = int(args.rss_size_mib * MiB)
    rss_path = ensure_random_file(args.data_dir, rss_size, args.seed)
    progress(f"peak RSS: FileChunker + compress -3 over {rss_path} in a child process")
    with open(rss_path, "rb") as f:  # warm the page cache, 16 MiB at a time
        while f.read(16 << 20):
            pass
    sizes = [str(args.min), str(args.avg), str(args.max), "3"]
    base, _, _ = child_peak_rss(["-", *sizes])
    peak, elapsed, raw = child_peak_rss([str(rss_path), *sizes])
    if raw != rss_size:
        raise RuntimeError(f"RSS child compressed {raw} bytes, expected {rss_size}")
    row = Row(f"peak RSS, {rss_size / MiB / 1024:g} GiB chunk+compress -3", "all",
              rate(rss_size, elapsed), target=f"< {TARGET_RSS_MIB} MiB",
              meets=peak < TARGET_RSS_MIB * MiB,
              note=f"peak {peak / MiB:.0f} MiB (interpreter + import alone: {base / MiB:.0f} MiB)",
              seconds=[elapsed])  # fmt: skip
    return row, {"file_bytes": rss_size, "peak_rss": peak, "baseline_rss": base,
                 "seconds": elapsed}  # fmt: skip


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Take every measurement; returns the rows and the context they were taken in."""
    params = _core.ChunkerParams(args.min, args.avg, args.max)
    size = int(args.size_mib * MiB)
    path = ensure_random_file(args.data_dir, size, args.seed)
    load = OtherLoad()
    rows: list[Row] = []
    if not args.only_4g:
        progress(f"reading {path} into memory (warms the page cache)")
        data = memoryview(path.read_bytes())
        b3_rate, rows = measure_hashing(data, path, params, args.repeat)
        for level in args.levels:
            rows += measure_compression(data, path, params, level, args.repeat)
        data.release()
        rows.append(measure_cli(path, params, b3_rate, args.repeat))
    rss: dict[str, Any] | None = None
    if not args.skip_4g:
        row, rss = measure_rss(args)
        rows.append(row)
    ctx = context(args, path, size)
    ctx["load"] = load.report()
    ctx["core_rebuilt_during_run"] = core_build() != CORE_BUILD
    return {"context": ctx, "rows": [asdict(r) for r in rows], "rss": rss}


def core_build() -> dict[str, Any]:
    """Which build of the extension this process loaded: file, mtime, digest prefix.

    The extension is rebuilt while benchmarks run on a shared machine; this tells two
    runs' builds apart (a rebuild during a run only affects child processes).
    """
    so = Path(_core.__file__ or "")
    try:
        stat = so.stat()
        digest = blake3.blake3(so.read_bytes()).hexdigest()[:12]
    except OSError:
        return {"file": str(so)}
    mtime = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(stat.st_mtime))
    return {"file": str(so), "mtime": mtime, "blake3": digest}


CORE_BUILD = core_build()
"""Taken at import, when the extension was loaded."""


def context(args: argparse.Namespace, path: Path, size: int) -> dict[str, Any]:
    """What the figures depend on: machine, builds, library versions, parameters."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "default_threads": _core.default_threads(),
        "release_build": _core.is_release_build(),
        "core_version": _core.__version__,
        "core_build": CORE_BUILD,
        "python": platform.python_version(),
        "blake3_pkg": blake3.__version__,
        "zstandard_pkg": zstandard.__version__,
        "file": str(path),
        "file_bytes": size,
        "params": {"min": args.min, "avg": args.avg, "max": args.max},
        "frame_size": FRAME_SIZE,
        "repeat": args.repeat,
        "quiet": {
            "wait_seconds": QUIET.wait_seconds,
            "max_other_cores": QUIET.max_other_cores,
            "max_retries": QUIET.max_retries,
            "budget_seconds": QUIET.budget_seconds,
            "spent_seconds": QUIET.spent,
            "discarded_runs": QUIET.discarded,
            "kept_disturbed_runs": QUIET.kept_disturbed,
        },
    }


# --- output ---------------------------------------------------------------------------


def text_table(header: Sequence[str], lines: Sequence[Sequence[str]], right: set[int]) -> str:
    """An aligned plain-text table; columns in ``right`` are right-aligned."""
    rows = [tuple(header), *(tuple(line) for line in lines)]
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    out: list[str] = []
    for n, row in enumerate(rows):
        cells = [
            c.rjust(w) if i in right else c.ljust(w)
            for i, (c, w) in enumerate(zip(row, widths, strict=True))
        ]
        out.append("  ".join(cells).rstrip())
        if n == 0:
            out.append("  ".join("-" * w for w in widths))
    return "\n".join(out)


def format_table(result: dict[str, Any]) -> str:
    """The rows as an aligned text table, with the context above it."""
    ctx = result["context"]
    p = ctx["params"]
    head = [
        f"file: {ctx['file']} ({ctx['file_bytes'] / MiB:.0f} MiB, page cache warm)",
        f"cpu: {ctx['cpu']}, {ctx['cores']} cores; release build: {ctx['release_build']} "
        f"(built {ctx.get('core_build', {}).get('mtime', '?')}, "
        f"blake3 {ctx.get('core_build', {}).get('blake3', '?')}); "
        f"python {ctx['python']}, blake3 {ctx['blake3_pkg']}, zstandard {ctx['zstandard_pkg']}",
        f"chunker: min {p['min']} / avg {p['avg']} / max {p['max']}; frames up to "
        f"{ctx['frame_size'] >> 20} MiB; best of {ctx['repeat']}; MB = 10^6 bytes of input",
    ]
    if ctx.get("core_rebuilt_during_run"):
        head.append(
            "WARNING: the extension was rebuilt during the run; the CLI and RSS child "
            "processes may have used the new build"
        )
    load, quiet = ctx.get("load"), ctx.get("quiet")
    if load is not None:
        head.append(
            f"other processes used {load['other_cores']:.2f} cores on average during the "
            f"{load['wall_seconds']:.0f} s run (hypervisor steal {load['steal_cores']:.2f})"
        )
    if quiet is not None:
        head.append(
            f"runs disturbed by other processes (> {quiet['max_other_cores']} core beyond "
            f"the spare ones): {quiet['discarded_runs']} redone, "
            f"{quiet.get('kept_disturbed_runs', 0)} kept (retries or time budget spent: "
            f"{quiet.get('spent_seconds', 0):.0f} of {quiet.get('budget_seconds', 0):.0f} s)"
            + (" - NOISY, rerun on a quiet machine" if quiet.get("kept_disturbed_runs") else "")
        )
    head.append("")
    header = ("measurement", "threads", "MB/s", "vs", "ratio", "target", "meets", "note")
    lines = [
        (
            r["measurement"],
            r["threads"],
            "n/a" if r["mb_per_s"] is None else f"{r['mb_per_s']:.0f}",
            r["reference"],
            "" if r["ratio"] is None else f"{r['ratio']:.2f}x",
            r["target"],
            {None: "", True: "yes", False: "NO"}[r["meets"]],
            r["note"],
        )
        for r in result["rows"]
    ]
    return "\n".join(head) + "\n" + text_table(header, lines, right={2, 4})


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.bench_core",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--size-mib", type=float, default=1024.0, help="test file size")
    parser.add_argument("--data-dir", type=Path, default=Path("bench-data"))
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--min", type=int, default=DEFAULT_MIN_SIZE, help="chunker min size")
    parser.add_argument("--avg", type=int, default=DEFAULT_AVG_SIZE, help="chunker average size")
    parser.add_argument("--max", type=int, default=DEFAULT_MAX_SIZE, help="chunker max size")
    parser.add_argument("--levels", type=lambda s: [int(x) for x in s.split(",")], default=[1, 3],
                        help="zstd levels, comma-separated (default 1,3)")  # fmt: skip
    parser.add_argument("--repeat", type=int, default=3, help="runs per figure (best is kept)")
    parser.add_argument("--skip-4g", action="store_true", help="skip the 4 GiB peak-RSS run")
    parser.add_argument("--only-4g", action="store_true", help="only the 4 GiB peak-RSS run")
    parser.add_argument("--rss-size-mib", type=float, default=4096.0, help=argparse.SUPPRESS)
    parser.add_argument(
        "--quiet-wait",
        type=float,
        default=QUIET.wait_seconds,
        help="seconds to wait for a quiet machine before each run (0: do not wait)",
    )
    parser.add_argument(
        "--max-other-cores",
        type=float,
        default=QUIET.max_other_cores,
        help="redo a run if other processes used more cores than this during it",
    )
    parser.add_argument(
        "--max-retries",
        type=int,
        default=QUIET.max_retries,
        help="disturbed runs redone per figure before disturbed runs are kept",
    )
    parser.add_argument(
        "--quiet-budget",
        type=float,
        default=QUIET.budget_seconds,
        help="total seconds to spend waiting for quiet and redoing disturbed runs",
    )
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    parser.add_argument(
        "--from-json",
        type=Path,
        metavar="FILE",
        help="print the table of an earlier --json run; measure nothing",
    )
    args = parser.parse_args(argv)

    if args.from_json is not None:
        print(format_table(json.loads(args.from_json.read_text())))
        return 0
    QUIET.wait_seconds = args.quiet_wait
    QUIET.max_other_cores = args.max_other_cores
    QUIET.max_retries = args.max_retries
    QUIET.budget_seconds = args.quiet_budget
    result = run(args)
    print(json.dumps(result, indent=2) if args.json else format_table(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
