"""Diff two versions of a dataset: files, table schemas, row counts, and rows by key.

The row diff is computed with Arrow in bounded memory: only the key columns (and a row
number) of both tables are joined; then each other column is read on its own — from a
temporary Parquet copy when the table is CSV or Arrow IPC, so that reading one column
does not parse the whole file again — taken at the matched rows and compared. Memory
is therefore about the keys plus two columns, not two whole tables.
"""

from __future__ import annotations

import bisect
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
import pyarrow.parquet as pq

from reprocas.errors import PathNotInVersionError, UsageError
from reprocas.model.ids import ObjectId
from reprocas.model.objects import TableRecord, TreeEntry
from reprocas.progress import Progress
from reprocas.store.checkout import find_entry
from reprocas.store.reachability import iter_tree
from reprocas.store.repository import Repository, Version
from reprocas.tabular.read import open_dataset


class KeyError_(UsageError):
    """A diff key that is missing from a table or not unique in it."""


@dataclass
class FileDiff:
    path: str
    status: str  # added | removed | changed | same
    bytes: tuple[int | None, int | None]
    tabular: bool = False
    schema: dict[str, Any] | None = None
    row_counts: tuple[int | None, int | None] | None = None
    rows: dict[str, Any] | None = None
    note: str | None = None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"status": self.status, "bytes": list(self.bytes)}
        if self.schema is not None:
            out["schema"] = self.schema
        if self.row_counts is not None:
            out["row_counts"] = list(self.row_counts)
        if self.rows is not None:
            out["rows"] = self.rows
        if self.note:
            out["note"] = self.note
        return out


@dataclass
class DatasetDiff:
    a: str
    b: str
    files: dict[str, FileDiff] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {"a": self.a, "b": self.b, "files": {p: f.to_json() for p, f in self.files.items()}}


def _walk(
    repo: Repository, txn: Any, entry: TreeEntry, base: str
) -> Iterator[tuple[str, TreeEntry]]:
    if entry.kind != "dir":
        yield base, entry
        return
    for p, e in iter_tree(repo, txn, entry.target, f"{base}/" if base else ""):
        if e.kind != "dir":
            yield p, e


def _files(repo: Repository, txn: Any, v: Version, base: str) -> dict[str, TreeEntry] | None:
    """Files at or below ``base`` in a version; None when the version has no such path."""
    try:
        entry = find_entry(repo, txn, v, base)
    except PathNotInVersionError:
        return None
    return dict(_walk(repo, txn, entry, base))


def _record(repo: Repository, txn: Any, e: TreeEntry) -> TableRecord | None:
    meta = repo.entry_table(txn, e)
    if meta is None:
        return None
    obj = repo.load(txn, ObjectId(meta))
    return obj if isinstance(obj, TableRecord) else None


def _schema_diff(ra: TableRecord, rb: TableRecord) -> dict[str, Any]:
    sa = pa.ipc.read_schema(pa.py_buffer(ra.schema))
    sb = pa.ipc.read_schema(pa.py_buffer(rb.schema))
    ta = {f.name: str(f.type) for f in sa}
    tb = {f.name: str(f.type) for f in sb}
    return {
        "added": [c for c in tb if c not in ta],
        "removed": [c for c in ta if c not in tb],
        "retyped": {c: [ta[c], tb[c]] for c in ta if c in tb and ta[c] != tb[c]},
    }


def diff_versions(
    repo: Repository,
    va: Version,
    vb: Version,
    *,
    path: str | None = None,
    key: list[str] | None = None,
    limit: int = 5,
    progress: Progress | None = None,
) -> DatasetDiff:
    """Files added, removed and changed between two versions; for tables present in both,
    schema and row counts; with ``key``, rows added, removed and changed."""
    out = DatasetDiff(va.ref, vb.ref)
    with repo.index.read() as txn:
        base = (path or "").strip("/")
        fa = _files(repo, txn, va, base)
        fb = _files(repo, txn, vb, base)
        if fa is None and fb is None:
            # Neither has it: the same error a lookup in one version gives.
            find_entry(repo, txn, va, base)
        fa = fa or {}
        fb = fb or {}
        records = {
            p: (
                _record(repo, txn, fa[p]) if p in fa else None,
                _record(repo, txn, fb[p]) if p in fb else None,
            )
            for p in sorted(set(fa) | set(fb))
        }
    for p in sorted(set(fa) | set(fb)):
        a, b = fa.get(p), fb.get(p)
        if a is None:
            out.files[p] = FileDiff(p, "added", (None, b.size if b else None))
            continue
        if b is None:
            out.files[p] = FileDiff(p, "removed", (a.size, None))
            continue
        same = (a.kind, a.target, a.mode) == (b.kind, b.target, b.mode)
        d = FileDiff(p, "same" if same else "changed", (a.size, b.size))
        ra, rb = records[p]
        if ra is not None and rb is not None:
            d.tabular = True
            d.schema = _schema_diff(ra, rb)
            d.row_counts = (ra.rows, rb.rows)
            if key and not same:
                d.rows = diff_rows(repo, va, vb, p, key, limit, progress)
            elif key:
                d.rows = {"added": 0, "removed": 0, "changed": 0, "columns": {}, "samples": []}
        elif not same and a.kind == "file":
            d.note = "not a table: compared by bytes only"
        out.files[p] = d
    return out


# -- rows by key ------------------------------------------------------------------------


class _Side:
    """One table, readable a column at a time (via a temporary Parquet copy if needed)."""

    def __init__(self, repo: Repository, version: Version, path: str, tmp: Path) -> None:
        self.label = f"{version.ref}:{path}"
        dataset = open_dataset(repo, version, path)
        fmt = dataset.format
        if isinstance(fmt, ds.ParquetFileFormat):
            self.dataset = dataset
        else:
            # One streaming pass turns CSV / IPC into Parquet, so each later column read
            # touches only that column.
            target = tmp / f"{abs(hash(self.label))}.parquet"
            with pq.ParquetWriter(target, dataset.schema) as writer:
                for batch in dataset.to_batches():
                    writer.write_batch(batch)
            self.dataset = ds.dataset(target, format="parquet")
        self.schema = self.dataset.schema
        fragments = list(self.dataset.get_fragments())
        self._fragment: Any = None
        self._starts: list[int] = []
        if len(fragments) == 1 and isinstance(fragments[0], ds.ParquetFileFragment):
            frag = fragments[0]
            md = frag.metadata
            starts, total = [], 0
            for i in range(md.num_row_groups):
                starts.append(total)
                total += md.row_group(i).num_rows
            self._fragment, self._starts, self._rows = frag, starts, total

    def columns(self, names: list[str]) -> pa.Table:
        return self.dataset.to_table(columns=names)

    def rows(self, col: str, lo: int, hi: int) -> tuple[pa.ChunkedArray, int]:
        """Column ``col`` for at least rows ``[lo, hi)``, read by Parquet row groups (so a
        slice of a large table costs a slice of memory); returns it and its first row."""
        if self._fragment is None or hi <= lo:
            return self.columns([col])[col], 0
        first = max(0, bisect.bisect_right(self._starts, lo) - 1)
        last = max(first, bisect.bisect_right(self._starts, hi - 1) - 1)
        groups = list(range(first, last + 1))
        part = self._fragment.subset(row_group_ids=groups).to_table(columns=[col])
        return part[col], self._starts[first]


def _check_key(side: _Side, key: list[str]) -> pa.Table:
    missing = [k for k in key if k not in side.schema.names]
    if missing:
        raise KeyError_(
            f"key column {', '.join(missing)} is not in {side.label} "
            f"(its columns: {', '.join(side.schema.names)})",
            column=missing[0],
        )
    keys = side.columns(key)
    counts = keys.group_by(key).aggregate([([], "count_all")])
    dup = counts.filter(pc.greater(counts["count_all"], 1))
    if dup.num_rows:
        example = {k: dup[k][0].as_py() for k in key}
        raise KeyError_(
            f"key {', '.join(key)} is not unique in {side.label}: {dup.num_rows} values repeat, "
            f"e.g. {example} appears {dup['count_all'][0].as_py()} times",
            column=key[0],
        )
    return keys


def _nested(t: pa.DataType) -> bool:
    return bool(
        pa.types.is_list(t)
        or pa.types.is_large_list(t)
        or pa.types.is_fixed_size_list(t)
        or pa.types.is_struct(t)
        or pa.types.is_map(t)
        or pa.types.is_union(t)
    )


def _changed(ca: pa.ChunkedArray, cb: pa.ChunkedArray) -> pa.Array:
    """Per matched row: whether the two values differ (two nulls are equal)."""
    if _nested(ca.type) or _nested(cb.type):
        # No compute kernel compares nested values: compare them as Python values, in
        # slices so memory stays bounded.
        flags: list[bool] = []
        step = 65536
        for lo in range(0, len(ca), step):
            xs = ca.slice(lo, step).to_pylist()
            ys = cb.slice(lo, step).to_pylist()
            flags.extend(x != y for x, y in zip(xs, ys, strict=True))
        return pa.array(flags, pa.bool_())
    ca2 = _comparable(ca, cb.type)
    cb2 = _comparable(cb, ca.type)
    eq = pc.fill_null(pc.equal(ca2, cb2), False)
    both_null = pc.and_(pc.is_null(ca2), pc.is_null(cb2))
    return pc.invert(pc.or_(eq, both_null))


def _comparable(arr: pa.ChunkedArray, other_type: pa.DataType) -> pa.ChunkedArray:
    if arr.type == other_type:
        return arr
    return pc.cast(arr, pa.large_string())


def diff_rows(
    repo: Repository,
    va: Version,
    vb: Version,
    path: str,
    key: list[str],
    limit: int,
    progress: Progress | None = None,
) -> dict[str, Any]:
    """Rows added, removed and changed (per column) between two versions of one table."""
    with tempfile.TemporaryDirectory(prefix="reprocas-diff-") as td:
        tmp = Path(td)
        a = _Side(repo, va, path, tmp)
        b = _Side(repo, vb, path, tmp)
        ka = _check_key(a, key)
        kb = _check_key(b, key)
        ka = ka.append_column("__ia", pa.array(range(ka.num_rows), pa.int64()))
        kb = kb.append_column("__ib", pa.array(range(kb.num_rows), pa.int64()))
        joined = ka.join(kb, keys=key, join_type="full outer")
        ia = joined["__ia"]
        ib = joined["__ib"]
        added_mask = pc.is_null(ia)
        removed_mask = pc.is_null(ib)
        matched = joined.filter(pc.and_(pc.is_valid(ia), pc.is_valid(ib)))
        # Keep matched rows in A's order, so samples read naturally.
        matched = matched.sort_by([("__ia", "ascending")])
        mia, mib = matched["__ia"], matched["__ib"]
        common = [c for c in a.schema.names if c in b.schema.names and c not in key]
        any_changed: pa.ChunkedArray | pa.Array = pa.array([False] * matched.num_rows)
        columns: dict[str, int] = {}
        changed_cols: dict[str, pa.Array] = {}
        # Matched rows are compared a slice at a time, each side reading only the Parquet
        # row groups its slice needs: memory follows the slice, not the table (rows that
        # kept their order between versions — the usual case — need few row groups).
        step = 1 << 20
        pool = pa.default_memory_pool()
        if progress is not None:
            progress.start(0, len(common))
        for col in common:
            parts = []
            for lo in range(0, matched.num_rows, step):
                ia_s = mia.slice(lo, step)
                ib_s = mib.slice(lo, step)
                a0, a1 = pc.min_max(ia_s).values()
                b0, b1 = pc.min_max(ib_s).values()
                col_a, base_a = a.rows(col, a0.as_py(), a1.as_py() + 1)
                col_b, base_b = b.rows(col, b0.as_py(), b1.as_py() + 1)
                ca = col_a.take(pc.subtract(ia_s, base_a))
                cb = col_b.take(pc.subtract(ib_s, base_b))
                del col_a, col_b
                parts.append(_changed(ca, cb))
            pool.release_unused()
            changed = (
                pa.chunked_array(parts, pa.bool_()) if parts else pa.chunked_array([], pa.bool_())
            )
            n = pc.sum(changed).as_py() or 0
            if n:
                columns[col] = n
                changed_cols[col] = changed
                any_changed = pc.or_(any_changed, changed)
            if progress is not None:
                progress.file_done()
        n_changed = (pc.sum(any_changed).as_py() or 0) if matched.num_rows else 0
        samples: list[dict[str, Any]] = []
        if n_changed and limit > 0:
            idx = pc.indices_nonzero(any_changed)[:limit]
            rows_a = mia.take(idx)
            rows_b = mib.take(idx)
            picked = {
                col: (
                    a.columns([col])[col].take(rows_a).to_pylist(),
                    b.columns([col])[col].take(rows_b).to_pylist(),
                    mask.take(idx).to_pylist(),
                )
                for col, mask in changed_cols.items()
            }
            for j, i in enumerate(idx.to_pylist()):
                row: dict[str, Any] = {"key": {k: _jsonable(matched[k][i].as_py()) for k in key}}
                row["changes"] = {
                    col: [_jsonable(va_[j]), _jsonable(vb_[j])]
                    for col, (va_, vb_, m) in picked.items()
                    if m[j]
                }
                samples.append(row)
        return {
            "added": pc.sum(added_mask).as_py() or 0,
            "removed": pc.sum(removed_mask).as_py() or 0,
            "changed": n_changed,
            "columns": columns,
            "samples": samples,
        }


def _jsonable(v: Any) -> Any:
    if v is None or isinstance(v, bool | int | float | str):
        return v
    return str(v)
