"""Arrow benchmark: tables read straight from the store, and diffs by key.

One run measures, on this machine and in this run:

1. **scan**: a ~500 MB, 20-column Parquet version (the encounters table of
   :mod:`benchmarks.generate`, 5 M rows at ``--scale 1``, widened with seven computed
   columns) read with ``pyarrow.dataset ... to_table()`` over all columns, from the
   store (``repo.dataset``) and from the same file on local disk with the page cache
   warm: MB/s of file bytes and the ratio (target >= 0.7x);
2. **projection**: 3 of the 20 columns read through the store's pyarrow filesystem:
   the bytes the store returned to Arrow (``VersionFileSystem.bytes_read``) against
   the bytes those column chunks (and the footer) occupy in the file, and against the
   file size; also the frame bytes the store decoded (its read granularity);
3. **diff**: ``reprocas diff v1 v2 --key encounter_id --json`` on two 5-million-row
   versions (generator v1 and v5: appended, edited, deleted and inserted rows) as a
   separate process: seconds and peak RSS (GNU time, else fork + wait4).

Targets are printed beside the figures; nothing asserts. Run from the project root::

    .venv/bin/python -m benchmarks.bench_arrow [--data-dir bench-data] [--scale 1.0]
        [--repeat 3] [--json] [--keep]

See the "Arrow benchmark" section of ``benchmarks/README.md``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import shutil
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
import pyarrow.parquet as pq

import reprocas
from benchmarks import generate
from benchmarks.bench_repo import (
    MB,
    Noise,
    Runner,
    StepError,
    best_of,
    cores,
    f_mb,
    f_rate,
    f_s,
    progress,
    rate,
    step,
    text_table,
)
from reprocas.store.reader import FrameCache
from reprocas.tabular.fs import VersionFileSystem
from reprocas.tabular.read import open_dataset

ROWS_AT_SCALE_1 = 5_000_000
"""Rows of v1 at ``--scale 1`` (the issue's "two 5-million-row versions")."""

SCAN_RATIO_MIN = 0.7
"""Store scan >= this x the local scan (page cache warm)."""
PROJECTION_MAX = 1.1
"""Bytes read for 3 of 20 columns <= this x what those column chunks + footer occupy."""
DIFF_RSS_MAX = 4 << 30
"""Peak RSS of a diff of 10 M rows (the issue's bound)."""
BOUND_ROWS = 10_000_000
"""The rows that bound is stated for."""

PROJECTED = ("encounter_id", "creatinine", "ward")
TABLE = "wide.parquet"
DIFF_PATH = "encounters.parquet"
KEY = "encounter_id"


# --- data -----------------------------------------------------------------------------


@dataclass(frozen=True)
class ArrowData:
    rows: int
    v1: Path
    v2: Path
    """The later version the diff compares with (the generator's v5)."""
    wide: Path


def widen(table: pa.Table, seed: int) -> pa.Table:
    """The encounters table (13 columns) plus seven computed ones: 20 columns in all."""
    rng = generate.Rng(f"bench_arrow:wide:{seed}")
    n = table.num_rows
    seconds = pc.cast(
        pc.subtract(
            pc.cast(table["discharge_time"], pa.int64()), pc.cast(table["admit_time"], pa.int64())
        ),
        pa.float64(),
    )
    columns: dict[str, Any] = {
        "los_hours": pc.divide(seconds, 3600.0),
        "admit_hour": pc.cast(pc.hour(table["admit_time"]), pa.int8()),
        "stay_days": pc.cast(pc.floor(pc.divide(seconds, 86400.0)), pa.int16()),
    }
    for name in ("risk_a", "risk_b", "risk_c", "embedding_0"):
        columns[name] = pc.divide(pc.cast(rng.uints(n, 1 << 32), pa.float64()), float(1 << 32))
    for name, values in columns.items():
        table = table.append_column(name, values)
    assert table.num_columns == 20, table.schema
    return table


def ensure_data(data_dir: Path, scale: float, seed: int) -> ArrowData:
    """The cached Parquet series (v1, v5) and the widened v1; generated if missing."""
    rows = max(1000, round(ROWS_AT_SCALE_1 * scale))
    directory = data_dir / f"arrow-g{generate.GENERATOR_VERSION}-s{seed}-r{rows}"
    marker = directory / "complete"
    data = ArrowData(rows, directory / "v1.parquet", directory / "v5.parquet", directory / TABLE)
    if marker.exists():
        return data
    started = time.perf_counter()
    progress(f"generating {directory} ({rows} rows in v1; once, then cached) ...")
    generate.write_series(directory, rows, seed, csv=False, parquet=True)
    for extra in ("v2", "v3", "v4"):
        (directory / f"{extra}.parquet").unlink(missing_ok=True)
    wide = widen(pq.read_table(data.v1), seed)
    tmp = data.wide.with_name(TABLE + ".tmp")
    pq.write_table(wide, tmp, compression=generate.PARQUET_COMPRESSION)
    os.replace(tmp, data.wide)
    del wide
    marker.write_text(f"rows={rows} seed={seed}\n")
    progress(f"  generated in {time.perf_counter() - started:.1f} s")
    return data


def place(source: Path, target: Path) -> None:
    """``target`` becomes a hard link to ``source`` (a copy across filesystems)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.link(source, target)
    except OSError:
        shutil.copyfile(source, target)


def warm(path: Path) -> None:
    """Read a file once so that it is in the page cache."""
    with open(path, "rb", buffering=0) as f:
        while f.read(8 << 20):
            pass


def warm_tree(root: Path) -> None:
    for p in root.rglob("*"):
        if p.is_file():
            warm(p)


class CountingCache(FrameCache):
    """A frame cache that adds up the raw bytes of every frame it is given (decoded)."""

    def __init__(self) -> None:
        super().__init__()
        self.decoded = 0

    def put(self, key: tuple[bytes, int], data: bytes) -> None:
        if self.get(key) is None:
            self.decoded += len(data)
        super().put(key, data)


# --- the steps ------------------------------------------------------------------------


def commit_all(repo: reprocas.Repo, data: ArrowData, work: Path, out: dict[str, Any]) -> None:
    """wide@v1 holds the widened table; enc@v1 / enc@v2 hold v1 / v5 under one name."""
    src = work / "wide-src"
    place(data.wide, src / TABLE)
    started = time.perf_counter()
    repo.commit(src, "wide")
    seconds = time.perf_counter() - started
    size = data.wide.stat().st_size
    out["wide"] = {"bytes": size, "commit_seconds": seconds, "commit_mbps": rate(size, seconds)}
    for ref, source in (("enc@v1", data.v1), ("enc@v2", data.v2)):
        d = work / f"enc-{ref[-2:]}"
        place(source, d / DIFF_PATH)
        started = time.perf_counter()
        r = repo.commit(d, "enc")
        if r.ref != ref:
            raise StepError(f"committed {r.ref}, expected {ref}")
        out[ref] = {"bytes": source.stat().st_size, "commit_seconds": time.perf_counter() - started}


def bench_scan(
    repo: reprocas.Repo, data: ArrowData, repo_path: Path, repeat: int, out: dict[str, Any]
) -> None:
    """All 20 columns to a table: the local file (page cache warm) and the store."""
    size = data.wide.stat().st_size
    md = pq.ParquetFile(data.wide).metadata
    out.update(bytes=size, rows=md.num_rows, columns=md.num_columns, row_groups=md.num_row_groups)

    def local() -> int:
        return int(ds.dataset(data.wide, format="parquet").to_table().num_rows)

    def store() -> int:
        return int(repo.dataset("wide", TABLE).to_table().num_rows)

    warm(data.wide)
    local()  # warm-up: imports, thread pool, page cache
    seconds, rows = best_of(repeat, local)
    out["local"] = {"seconds": seconds, "mbps": rate(size, seconds), "rows": rows}

    warm_tree(repo_path / "packs")
    store()
    seconds, rows = best_of(repeat, store)
    out["store"] = {"seconds": seconds, "mbps": rate(size, seconds), "rows": rows}
    if rows != md.num_rows:
        raise StepError(f"the store scan returned {rows} rows, the file has {md.num_rows}")
    out["ratio"] = out["store"]["mbps"] / out["local"]["mbps"]

    store_obj = repo.store
    version = repo.resolve("wide")
    handler = VersionFileSystem(store_obj, version, CountingCache())
    open_dataset(store_obj, version, TABLE, "parquet", handler).to_table()
    cache = handler.cache
    assert isinstance(cache, CountingCache)
    out["store"]["bytes_read"] = handler.bytes_read
    out["store"]["frames_decoded_bytes"] = cache.decoded


def column_chunk_bytes(path: Path, columns: Sequence[str]) -> tuple[int, int]:
    """(bytes of the named columns' chunks over all row groups, footer bytes)."""
    pf = pq.ParquetFile(path)
    md = pf.metadata
    names = [md.schema.column(i).path for i in range(md.num_columns)]
    wanted = [i for i, name in enumerate(names) if name.split(".")[0] in columns]
    total = 0
    for g in range(md.num_row_groups):
        rg = md.row_group(g)
        total += sum(rg.column(i).total_compressed_size for i in wanted)
    return total, int(md.serialized_size) + 8


def bench_projection(
    repo: reprocas.Repo, data: ArrowData, repeat: int, out: dict[str, Any]
) -> None:
    """3 of 20 columns: bytes read from the store against what the columns need."""
    columns = list(PROJECTED)
    size = data.wide.stat().st_size
    needed, footer = column_chunk_bytes(data.wide, columns)
    store_obj = repo.store
    version = repo.resolve("wide")
    handler = VersionFileSystem(store_obj, version, CountingCache())
    got = open_dataset(store_obj, version, TABLE, "parquet", handler).to_table(columns=columns)
    want = ds.dataset(data.wide, format="parquet").to_table(columns=columns)
    if not got.equals(want):
        raise StepError("the projected table read from the store differs from the local one")
    cache = handler.cache
    assert isinstance(cache, CountingCache)
    out.update(
        columns=columns,
        file_bytes=size,
        needed_bytes=needed + footer,
        column_chunk_bytes=needed,
        footer_bytes=footer,
        bytes_read=handler.bytes_read,
        frames_decoded_bytes=cache.decoded,
        read_vs_needed=handler.bytes_read / (needed + footer),
        read_vs_file=handler.bytes_read / size,
    )
    seconds, _ = best_of(
        repeat, lambda: ds.dataset(data.wide, format="parquet").to_table(columns=columns).num_rows
    )
    out["local_seconds"] = seconds
    seconds, _ = best_of(
        repeat, lambda: repo.dataset("wide", TABLE).to_table(columns=columns).num_rows
    )
    out["store_seconds"] = seconds


def bench_diff(runner: Runner, exe: Path, repo_path: Path, rows: int, out: dict[str, Any]) -> None:
    """``reprocas diff`` by key of two 5 M-row versions, as its own process."""
    base = runner.run([str(exe), "--repo", str(repo_path), "log", "--json"], "reprocas log")
    out["startup"] = {"seconds": base.seconds, "peak_rss": base.peak_rss}
    argv = [
        str(exe), "--repo", str(repo_path), "diff", "enc@v1", "enc@v2",
        "--path", DIFF_PATH, "--key", KEY, "--json",
    ]  # fmt: skip
    timed = runner.run(argv, "reprocas diff --key")
    result = timed.json()
    # The bound is for 10 M rows: scale what the diff added above start-up.
    projected = None
    if timed.peak_rss is not None and base.peak_rss is not None and rows:
        extra = max(0, timed.peak_rss - base.peak_rss)
        projected = base.peak_rss + round(extra * BOUND_ROWS / rows)
    f = result["files"][DIFF_PATH]
    by_key = f.get("rows") or {}
    out.update(
        command=" ".join(["reprocas", *argv[1:]]),
        seconds=timed.seconds,
        peak_rss=timed.peak_rss,
        row_counts=f.get("row_counts"),
        projected_rss_at_bound=projected,
        added=by_key.get("added"),
        removed=by_key.get("removed"),
        changed=by_key.get("changed"),
        columns=by_key.get("columns"),
    )


# --- targets and the report -----------------------------------------------------------


def compute_targets(result: dict[str, Any]) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []

    def add(what: str, value: float | None, unit: str, op: str, limit: float) -> None:
        meets = None if value is None else (value >= limit if op == ">=" else value <= limit)
        rows.append(
            {"what": what, "value": value, "unit": unit, "op": op, "limit": limit, "meets": meets}
        )

    scan = result.get("scan") or {}
    if "ratio" in scan:
        add("scan, store / local", scan["ratio"], "x", ">=", SCAN_RATIO_MIN)
    proj = result.get("projection") or {}
    if "read_vs_needed" in proj:
        add("3 of 20 columns, read / needed", proj["read_vs_needed"], "x", "<=", PROJECTION_MAX)
    diff = result.get("diff") or {}
    rows_v1 = result["context"].get("rows")
    gib = 1 << 30
    if diff.get("peak_rss") is not None and rows_v1 and rows_v1 >= BOUND_ROWS:
        add(
            f"diff peak RSS, {rows_v1} rows",
            diff["peak_rss"] / gib,
            "GiB",
            "<=",
            DIFF_RSS_MAX / gib,
        )
    elif diff.get("projected_rss_at_bound") is not None:
        add(
            "diff peak RSS projected to 10 M rows",
            diff["projected_rss_at_bound"] / gib,
            "GiB",
            "<=",
            DIFF_RSS_MAX / gib,
        )
    return rows


def format_report(result: dict[str, Any]) -> str:
    c = result["context"]
    lines = [
        "reprocas Arrow benchmark",
        f"{c['date']}  {c['cpu']}  {c['cores']} cores  python {c['python']}  "
        f"pyarrow {c['pyarrow']}  scale {c['scale']:g} ({c.get('rows', '?')} rows)",
    ]
    noise = c.get("noise")
    if noise:
        flag = "  NOISY" if noise["other_cores"] > 0.1 else ""
        lines.append(
            f"other processes used {noise['other_cores']:.2f} cores, steal "
            f"{noise['steal_cores']:.2f}, over {noise['seconds']:.0f} s{flag}"
        )
    commits = result.get("commits") or {}
    if "wide" in commits:
        w = commits["wide"]
        lines.append(
            f"commit of {TABLE}: {f_mb(w['bytes'])} MB in {f_s(w['commit_seconds'])} s "
            f"({f_rate(w['commit_mbps'])} MB/s)"
        )
    scan = result.get("scan") or {}
    if "store" in scan:
        lines += [
            "",
            f"1. scan all {scan['columns']} columns of a {f_mb(scan['bytes'])} MB Parquet "
            f"file ({scan['rows']} rows, {scan['row_groups']} row groups) to a table",
            text_table(
                ["source", "seconds", "MB/s", "ratio", "target"],
                [
                    [
                        "local file, page cache warm",
                        f_s(scan["local"]["seconds"]),
                        f_rate(scan["local"]["mbps"]),
                        "1.00",
                        "",
                    ],
                    [
                        "store (repo.dataset)",
                        f_s(scan["store"]["seconds"]),
                        f_rate(scan["store"]["mbps"]),
                        f"{scan['ratio']:.2f}",
                        f">= {SCAN_RATIO_MIN}x",
                    ],
                ],
            ),
            f"   store: {f_mb(scan['store']['bytes_read'])} MB returned to Arrow, "
            f"{f_mb(scan['store']['frames_decoded_bytes'])} MB of frames decoded",
        ]
    proj = result.get("projection") or {}
    if "bytes_read" in proj:
        lines += [
            "",
            f"2. read {len(proj['columns'])} of 20 columns ({', '.join(proj['columns'])})",
            text_table(
                ["figure", "MB", "of file", "target"],
                [
                    ["file", f_mb(proj["file_bytes"]), "100%", ""],
                    [
                        "those column chunks + footer",
                        f_mb(proj["needed_bytes"]),
                        f"{100 * proj['needed_bytes'] / proj['file_bytes']:.1f}%",
                        "",
                    ],
                    [
                        "read from the store (bytes_read)",
                        f_mb(proj["bytes_read"]),
                        f"{100 * proj['read_vs_file']:.1f}%",
                        f"<= {PROJECTION_MAX}x needed ({proj['read_vs_needed']:.2f}x)",
                    ],
                    [
                        "frames decoded by the store",
                        f_mb(proj["frames_decoded_bytes"]),
                        f"{100 * proj['frames_decoded_bytes'] / proj['file_bytes']:.1f}%",
                        "",
                    ],
                ],
            ),
            f"   time: local {f_s(proj['local_seconds'])} s, store {f_s(proj['store_seconds'])} s",
        ]
    diff = result.get("diff") or {}
    if "seconds" in diff:
        rss = diff.get("peak_rss")
        projected = diff.get("projected_rss_at_bound")
        start = (diff.get("startup") or {}).get("peak_rss")
        lines += [
            "",
            f"3. diff by {KEY}: rows {diff['row_counts']}",
            text_table(
                ["figure", "value", "target"],
                [
                    ["seconds (whole process)", f_s(diff["seconds"]), ""],
                    [
                        "peak RSS, MB",
                        f_mb(rss) if rss else "-",
                        f"4 GiB = {DIFF_RSS_MAX / MB:.0f} MB at 10 M rows",
                    ],
                    [
                        "peak RSS projected to 10 M rows, MB",
                        f_mb(projected) if projected else "-",
                        "(start-up + the rest scaled by rows; linear estimate)",
                    ],
                    ["start-up peak RSS (log --json), MB", f_mb(start) if start else "-", ""],
                    [
                        "rows added / removed / changed",
                        f"{diff['added']} / {diff['removed']} / {diff['changed']}",
                        "",
                    ],
                ],
            ),
            f"   changed columns: {diff.get('columns')}",
            f"   RSS measured with {c.get('rss_method')}",
        ]
    targets = result.get("targets") or []
    if targets:
        lines += ["", "targets"]
        lines.append(
            text_table(
                ["what", "value", "target", "meets"],
                [
                    [
                        t["what"],
                        "-" if t["value"] is None else f"{t['value']:.2f} {t['unit']}",
                        f"{t['op']} {t['limit']:g} {t['unit']}",
                        {True: "yes", False: "NO", None: "?"}[t["meets"]],
                    ]
                    for t in targets
                ],
            )
        )
    for e in result.get("errors") or []:
        lines.append(f"ERROR: {e}")
    return "\n".join(lines)


# --- driver ---------------------------------------------------------------------------


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def run(args: argparse.Namespace) -> dict[str, Any]:
    data_dir = Path(args.data_dir)
    data_dir.mkdir(parents=True, exist_ok=True)
    exe = Path(sys.executable).with_name("reprocas")
    work = Path(tempfile.mkdtemp(prefix="bench-arrow-", dir=data_dir)).resolve()
    runner = Runner(work)
    result: dict[str, Any] = {
        "context": {
            "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
            "cpu": _cpu_model(),
            "cores": cores(),
            "python": platform.python_version(),
            "pyarrow": pa.__version__,
            "scale": args.scale,
            "seed": args.seed,
            "repeat": args.repeat,
            "rss_method": runner.rss_method,
            "work_dir": str(work),
        },
        "commits": {},
        "scan": {},
        "projection": {},
        "diff": {},
        "errors": [],
    }
    noise = Noise()
    started = time.perf_counter()
    repo_path = work / "repo"
    try:
        data: ArrowData | None = None
        with step(result, f"data: encounters at scale {args.scale:g}"):
            data = ensure_data(data_dir, args.scale, args.seed)
            result["context"]["rows"] = data.rows
        if data is None:
            raise StepError("no data")
        with reprocas.Repo.init(repo_path) as repo:
            with step(result, "commit the wide table and two versions for the diff"):
                commit_all(repo, data, work, result["commits"])
            with step(result, "scan all columns: local vs store"):
                bench_scan(repo, data, repo_path, args.repeat, result["scan"])
            with step(result, "3 of 20 columns: bytes read"):
                bench_projection(repo, data, args.repeat, result["projection"])
        with step(result, "diff two versions by key (child process)"):
            if not exe.exists():
                raise StepError(f"{exe} does not exist: install the project (make build)")
            bench_diff(runner, exe, repo_path, data.rows, result["diff"])
    except StepError as exc:
        result["errors"].append(str(exc))
    finally:
        result["context"]["noise"] = noise.report()
        result["context"]["wall_seconds"] = time.perf_counter() - started
        if args.keep:
            progress(f"kept the repository in {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    result["targets"] = compute_targets(result)
    return result


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python -m benchmarks.bench_arrow",
        description="Benchmark reading tables from the store (scan, projection) and "
        "diffing two versions by key.",
    )
    p.add_argument("--data-dir", default="bench-data", help="generated data and scratch repos")
    p.add_argument("--scale", type=float, default=1.0, help=f"1.0: {ROWS_AT_SCALE_1} rows")
    p.add_argument("--seed", type=int, default=1, help="generator seed")
    p.add_argument("--repeat", type=int, default=3, help="runs of each scan (best is reported)")
    p.add_argument("--json", action="store_true", help="print the results as JSON")
    p.add_argument("--keep", action="store_true", help="keep the repository made")
    p.add_argument("--from-json", metavar="FILE", help="print the report of an earlier --json run")
    args = p.parse_args(argv)
    if args.scale <= 0 or args.repeat < 1:
        p.error("--scale and --repeat must be positive")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if args.from_json:
        print(format_report(json.loads(Path(args.from_json).read_text())))
        return 0
    try:
        result = run(args)
    except KeyboardInterrupt:
        progress("interrupted")
        return 130
    print(json.dumps(result, indent=2) if args.json else format_report(result))
    return 1 if result["errors"] else 0


if __name__ == "__main__":
    sys.exit(main())
