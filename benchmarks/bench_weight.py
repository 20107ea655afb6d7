"""The store's own weight and speed (issue 17): a profile per stage, the index, memory.

One run measures, on this machine and in this run:

1. the machine's own rates on v1 of the clinical CSV series: the ``zstd`` command at
   the repository's level with one and two threads (``-T1``, ``-T2``), ``zstd -d``, and
   BLAKE3 on one thread;
2. a profile of a first commit of v1 and of a checkout of it, in this process, with
   time and share per stage: chunking and hashing (``FileChunker``, fused in Rust),
   compression (``ChunkBatch.compress``, and delta compression), table records
   (``count_csv_records`` and the schema; on a worker thread for large files, so it
   overlaps), index lookups, pack writes, index writes, checkout planning and
   assembling (read, verify, decompress, write); and first commits with the table
   record taken serially and overlapped, alternating;
3. the five versions committed and v1, v5 checked out through the CLI (a subprocess
   per command, peak RSS from ``ru_maxrss``), each rate beside the reference rates as
   a ratio;
4. the LMDB index after v1 and after v5: the file on disk, the pages in use, and per
   sub-database its entries and bytes, as bytes per unique chunk.

Nothing asserts (speed is measured, never asserted). Run from the project root::

    .venv/bin/python -m benchmarks.bench_weight [--scale 1.0] [--data-dir bench-data]
        [--repeat 1] [--json]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import blake3
import lmdb

from benchmarks import generate
from benchmarks.bench_repo import (
    DATASET,
    Cli,
    Noise,
    Runner,
    best_of,
    file_digest,
    place,
    rate,
    remove,
)
from reprocas.model.chunking import DEFAULT_LEVEL
from reprocas.store.index_usage import index_usage

MB = 1_000_000
INDEX_BUDGET = 64
"""Issue 17's target: index bytes on disk per unique chunk after five versions."""


# --- reference rates ------------------------------------------------------------------


def references(v1: Path, repeat: int) -> dict[str, Any]:
    """zstd -T1/-T2/-d (the command) and BLAKE3 one thread on ``v1``."""
    size = v1.stat().st_size
    out: dict[str, Any] = {"file": str(v1), "bytes": size, "level": DEFAULT_LEVEL}
    exe = shutil.which("zstd")
    if exe is not None:
        with tempfile.TemporaryDirectory() as tmp:
            packed = Path(tmp) / "v1.zst"
            for threads in (1, 2):
                argv = [exe, f"-{DEFAULT_LEVEL}", f"-T{threads}", "-q", "-f", str(v1)]
                argv += ["-o", str(packed)]

                def _run(a: list[str] = argv) -> int:
                    return subprocess.run(a, check=True).returncode

                seconds, _ = best_of(repeat, _run)
                out[f"zstd_t{threads}_mbps"] = rate(size, seconds)
            out["zstd_bytes"] = packed.stat().st_size
            seconds, _ = best_of(
                repeat,
                lambda: subprocess.run(
                    [exe, "-d", "-q", "-c", str(packed)], stdout=subprocess.DEVNULL, check=True
                ),
            )
            out["zstd_d_mbps"] = rate(size, seconds)
    data = v1.read_bytes()
    seconds, _ = best_of(repeat, lambda: blake3.blake3(data, max_threads=1).digest())
    out["blake3_t1_mbps"] = rate(size, seconds)
    return out


# --- the in-process profile -----------------------------------------------------------


class Stages:
    """Wall time per named stage (thread-safe; a stage on a worker thread overlaps)."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}
        self.calls: dict[str, int] = {}
        self.lock = threading.Lock()

    def add(self, name: str, seconds: float) -> None:
        with self.lock:
            self.seconds[name] = self.seconds.get(name, 0.0) + seconds
            self.calls[name] = self.calls.get(name, 0) + 1

    def wrap(self, name: str, fn: Callable[..., Any]) -> Callable[..., Any]:
        def timed(*args: Any, **kwargs: Any) -> Any:
            t = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                self.add(name, time.perf_counter() - t)

        return timed


class _Batch:
    """A ``ChunkBatch`` whose compression is timed."""

    def __init__(self, batch: Any, stages: Stages) -> None:
        self._b = batch
        self.compress = stages.wrap("compression", batch.compress)
        self.compress_delta_stored = stages.wrap("delta compression", batch.compress_delta_stored)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._b, name)


class _Chunker:
    """A ``FileChunker`` whose iteration (read, chunk, hash) is timed."""

    def __init__(self, stages: Stages, *args: Any, **kwargs: Any) -> None:
        from reprocas.native import core

        self._stages = stages
        self._fc = core.FileChunker(*args, **kwargs)

    def __iter__(self) -> Iterator[_Batch]:
        it = iter(self._fc)
        while True:
            t = time.perf_counter()
            batch = next(it, None)
            self._stages.add("chunking + hashing", time.perf_counter() - t)
            if batch is None:
                return
            yield _Batch(batch, self._stages)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._fc, name)


class _Core:
    def __init__(self, core: Any, stages: Stages) -> None:
        self._core = core
        self.FileChunker = lambda *a, **k: _Chunker(stages, *a, **k)
        self.assemble_file = stages.wrap(
            "assemble (read, verify, decompress, write)", core.assemble_file
        )

    def __getattr__(self, name: str) -> Any:
        return getattr(self._core, name)


@contextlib.contextmanager
def instrumented(stages: Stages) -> Iterator[None]:
    """Time the stages of commit and checkout by wrapping their entry points."""
    from reprocas.store import checkout, commit, writer
    from reprocas.tabular import inspect

    saved: list[tuple[Any, str, Any]] = []

    def patch(obj: Any, name: str, value: Any) -> None:
        saved.append((obj, name, getattr(obj, name)))
        setattr(obj, name, value)

    from reprocas.native import core

    patch(commit, "core", _Core(core, stages))
    patch(checkout, "core", _Core(core, stages))
    patch(inspect, "inspect_file", stages.wrap("table records", inspect.inspect_file))
    w = writer.Writer
    patch(w, "is_known_chunk", stages.wrap("index lookups", w.is_known_chunk))
    patch(w, "add_frame", stages.wrap("pack writes", w.add_frame))
    patch(w, "add_object", stages.wrap("pack writes (objects)", w.add_object))
    patch(w, "seal_packs", stages.wrap("pack seal (fsync)", w.seal_packs))
    patch(w, "index_into", stages.wrap("index writes", w.index_into))
    patch(checkout, "read_plan", stages.wrap("checkout plan (index reads)", checkout.read_plan))
    try:
        yield
    finally:
        for obj, name, value in reversed(saved):
            setattr(obj, name, value)


def profile(v1: Path, work: Path) -> dict[str, Any]:
    """A first commit of ``v1`` and its checkout, in this process, stage by stage."""
    from reprocas.api import Repo

    repo_dir = work / "profile-repo"
    dest = work / "profile-checkout"
    src = work / "profile-src"
    remove(repo_dir)
    remove(dest)
    place(v1, src / "encounters.csv")
    out: dict[str, Any] = {}
    for what in ("commit", "checkout"):
        stages = Stages()
        opened = Repo.init(repo_dir) if what == "commit" else Repo.open_repo(repo_dir)
        with opened as repo, instrumented(stages):
            t = time.perf_counter()
            if what == "commit":
                repo.commit(src, DATASET)
            else:
                repo.checkout(f"{DATASET}@v1", dest)
            total = time.perf_counter() - t
        out[what] = {
            "seconds": total,
            "mbps": rate(v1.stat().st_size, total),
            "stages": stages.seconds,
        }
    if file_digest(dest / "encounters.csv") != file_digest(v1):
        raise SystemExit("profile checkout differs from the original")
    for p in (dest, src, repo_dir):
        remove(p)
    return out


def overlap_ab(v1: Path, work: Path, rounds: int) -> dict[str, Any]:
    """First commits of ``v1`` (in process, fresh repositories) with the table record
    taken serially after the read and overlapped with it, alternating, so that both
    see the same machine: the best and median wall time of each."""
    from reprocas.api import Repo
    from reprocas.store import commit

    src = work / "ab-src"
    place(v1, src / "encounters.csv")
    default = commit.INSPECT_ASYNC_BYTES
    times: dict[str, list[float]] = {"serial": [], "overlapped": []}
    try:
        for r in range(rounds):
            for mode in ("serial", "overlapped") if r % 2 == 0 else ("overlapped", "serial"):
                commit.INSPECT_ASYNC_BYTES = 1 << 62 if mode == "serial" else default
                repo_dir = work / "ab-repo"
                remove(repo_dir)
                with Repo.init(repo_dir) as repo:
                    t = time.perf_counter()
                    repo.commit(src, DATASET)
                    times[mode].append(time.perf_counter() - t)
                remove(repo_dir)
    finally:
        commit.INSPECT_ASYNC_BYTES = default
        remove(src)
    size = v1.stat().st_size
    out: dict[str, Any] = {"rounds": rounds}
    for mode, ts in times.items():
        ts.sort()
        out[mode] = {"best_mbps": rate(size, ts[0]), "median_mbps": rate(size, ts[len(ts) // 2])}
    return out


# --- the index ------------------------------------------------------------------------


def index_stat(repo: Path) -> dict[str, Any]:
    """The index file on disk, its pages in use, and every sub-database's size."""
    path = repo / "index"
    env = lmdb.open(str(path), readonly=True, lock=False, max_dbs=64, subdir=True)
    try:
        u = index_usage(env, path)
    finally:
        env.close()
    return {
        "disk_bytes": u.disk_bytes,
        "file_bytes": u.file_bytes,
        "used_bytes": u.used_bytes,
        "live_bytes": u.live_bytes,
        "unique_chunks": u.unique_chunks,
        "disk_per_chunk": u.per_chunk(u.disk_bytes),
        "live_per_chunk": u.per_chunk(u.live_bytes),
        "dbs": {k: {"entries": d.entries, "bytes": d.bytes} for k, d in u.dbs.items()},
    }


def packs_bytes(repo: Path) -> int:
    total = 0
    for dirpath, _, names in os.walk(repo / "packs"):
        for n in names:
            total += os.lstat(os.path.join(dirpath, n)).st_size
    return total


# --- the series through the CLI -------------------------------------------------------


def series(files: Sequence[Path], work: Path, cli: Cli) -> dict[str, Any]:
    repo = work / "weight-repo"
    src = work / "weight-src"
    remove(repo)
    remove(src)
    target = src / "data" / "encounters.csv"
    cli.init(repo)
    out: dict[str, Any] = {"commits": [], "checkouts": []}
    for i, path in enumerate(files):
        place(path, target)
        timed, res = cli.commit(repo, src, f"v{i + 1}", f"commit v{i + 1}")
        size = path.stat().st_size
        out["commits"].append(
            {
                "version": f"v{i + 1}",
                "bytes": size,
                "seconds": timed.seconds,
                "mbps": rate(size, timed.seconds),
                "new_bytes": res["new_bytes"],
                "peak_rss": timed.peak_rss,
            }
        )
        if i == 0:
            out["index_v1"] = index_stat(repo)
    out["index_v5"] = index_stat(repo)
    out["packs_bytes"] = packs_bytes(repo)
    for i in (0, len(files) - 1):
        dest = work / "weight-checkout"
        remove(dest)
        timed, res = cli.run(
            repo, "checkout", f"{DATASET}@v{i + 1}", str(dest), "--json", what=f"checkout v{i + 1}"
        )
        if file_digest(dest / "data" / "encounters.csv") != file_digest(files[i]):
            raise SystemExit(f"checkout of v{i + 1} differs from the original")
        size = files[i].stat().st_size
        out["checkouts"].append(
            {
                "version": f"v{i + 1}",
                "seconds": timed.seconds,
                "mbps": rate(size, timed.seconds),
                "peak_rss": timed.peak_rss,
            }
        )
        remove(dest)
    remove(repo)
    remove(src)
    return out


# --- the report -----------------------------------------------------------------------


def _ratio(a: float | None, b: float | None) -> str:
    return f"{a / b:.2f}x" if a and b else "-"


def report(r: dict[str, Any]) -> str:
    ref = r["references"]
    t1, t2, dec = ref.get("zstd_t1_mbps"), ref.get("zstd_t2_mbps"), ref.get("zstd_d_mbps")
    lines = [
        f"bench_weight: v1 {ref['bytes'] / MB:.0f} MB, zstd -{ref['level']}, "
        f"noise {r.get('noise', {}).get('other_cores', 0):.2f} other cores busy",
        "reference rates (this run): "
        + ", ".join(
            f"{k} {ref[k]:.0f} MB/s"
            for k in ("zstd_t1_mbps", "zstd_t2_mbps", "zstd_d_mbps", "blake3_t1_mbps")
            if k in ref
        ),
        "",
    ]
    for what in ("commit", "checkout"):
        p = r["profile"][what]
        lines.append(
            f"profile of the first {what} (in process): {p['seconds']:.2f} s, {p['mbps']:.0f} MB/s"
        )
        for name, s in sorted(p["stages"].items(), key=lambda kv: -kv[1]):
            lines.append(f"  {name:<44} {s:7.2f} s  {100 * s / p['seconds']:5.1f} %")
    ab = r["overlap"]
    lines += [
        f"first commit, table records serial vs overlapped ({ab['rounds']} rounds each, "
        "alternating): "
        + ", ".join(
            f"{m} best {ab[m]['best_mbps']:.0f} MB/s = {_ratio(ab[m]['best_mbps'], t2)} -T2"
            f" (median {ab[m]['median_mbps']:.0f})"
            for m in ("serial", "overlapped")
        )
    ]
    s = r["series"]
    lines += ["", "five versions through the CLI:"]
    for c in s["commits"]:
        lines.append(
            f"  commit {c['version']}  {c['mbps']:6.0f} MB/s = {_ratio(c['mbps'], t2)} zstd -T2,"
            f" {_ratio(c['mbps'], t1)} -T1  new {c['new_bytes'] / MB:7.1f} MB"
            f"  peak RSS {(c['peak_rss'] or 0) / 2**20:.0f} MiB"
        )
    for c in s["checkouts"]:
        lines.append(
            f"  checkout {c['version']} {c['mbps']:6.0f} MB/s = "
            f"{_ratio(c['mbps'], 2 * dec if dec else None)} two-thread zstd -d"
            f"  peak RSS {(c['peak_rss'] or 0) / 2**20:.0f} MiB"
        )
    for key in ("index_v1", "index_v5"):
        ix = s[key]
        lines.append(
            f"index after {key[-2:]}: {ix['unique_chunks']} unique chunks; on disk "
            f"{ix['disk_bytes'] / MB:.2f} MB = {ix['disk_per_chunk'] or 0:.0f} B/chunk "
            f"(target <= {INDEX_BUDGET}), live {ix['live_bytes'] / MB:.2f} MB = "
            f"{ix['live_per_chunk'] or 0:.0f} B/chunk"
        )
        for name, d in sorted(ix["dbs"].items(), key=lambda kv: -kv[1]["bytes"]):
            if d["entries"]:
                lines.append(
                    f"    {name:<12} {d['entries']:8d} entries {d['bytes'] / 1e3:9.0f} kB"
                    f"  {d['bytes'] / d['entries']:6.0f} B/entry"
                )
    total = s["packs_bytes"] + s["index_v5"]["disk_bytes"]
    lines.append(
        f"stored after v5: packs {s['packs_bytes'] / MB:.1f} MB + index "
        f"{s['index_v5']['disk_bytes'] / MB:.1f} MB = {total / MB:.1f} MB"
        f" (index {100 * s['index_v5']['disk_bytes'] / total:.0f} %)"
    )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0] if __doc__ else None)
    p.add_argument("--scale", type=float, default=1.0, help="1.0: v1 CSV is ~500 MB")
    p.add_argument("--data-dir", default="bench-data")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--repeat", type=int, default=1, help="best of N for the reference rates")
    p.add_argument(
        "--ab-rounds", type=int, default=3, help="first commits per mode, serial/overlapped"
    )
    p.add_argument("--json", action="store_true", help="the figures as JSON too")
    args = p.parse_args(argv)
    files = generate.ensure_series(args.data_dir, args.scale, args.seed)["csv"]
    noise = Noise()
    result: dict[str, Any] = {"scale": args.scale}
    with tempfile.TemporaryDirectory(dir=args.data_dir, prefix="weight-") as tmp:
        work = Path(tmp)
        print("references ...", file=sys.stderr, flush=True)
        result["references"] = references(files[0], args.repeat)
        print("profile ...", file=sys.stderr, flush=True)
        result["profile"] = profile(files[0], work)
        print("table records serial / overlapped ...", file=sys.stderr, flush=True)
        result["overlap"] = overlap_ab(files[0], work, args.ab_rounds)
        print("series ...", file=sys.stderr, flush=True)
        exe = Path(sys.executable).with_name("reprocas")
        result["series"] = series(files, work, Cli(Runner(work), exe))
    result["noise"] = noise.report() or {}
    print(report(result))
    if args.json:
        print(json.dumps(result, indent=1, default=str))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
