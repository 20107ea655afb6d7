"""Open committed tables as Arrow: datasets, tables, exports — schema-checked."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.dataset as ds
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from reprocas.errors import (
    IntegrityError,
    InvalidParameterError,
    PathNotInVersionError,
    ReprocasError,
    UsageError,
)
from reprocas.model.ids import ObjectId
from reprocas.model.objects import TableRecord, TreeEntry
from reprocas.progress import Progress
from reprocas.store.checkout import find_entry
from reprocas.store.reachability import iter_tree
from reprocas.store.repository import Repository, Version
from reprocas.tabular.formats import FORMATS, format_of
from reprocas.tabular.fs import VersionFileSystem
from reprocas.tabular.inspect import CSV_PARSE, csv_schema, fingerprint


@contextmanager
def arrow_errors(what: str) -> Iterator[None]:
    """pyarrow's own errors become reprocas errors (ours pass through untouched)."""
    try:
        yield
    except ReprocasError:
        raise
    except pa.ArrowException as exc:
        raise NotATableError(f"{what}: cannot be read as a table: {exc}") from exc


class NotATableError(UsageError):
    """A file asked for as a table that is not one (or not of the format asked)."""


class SchemaMismatchError(IntegrityError):
    """A table read back does not have the schema that was committed."""


@dataclass(frozen=True, slots=True)
class TableFile:
    path: str
    size: int
    record: TableRecord | None


def _tables_under(repo: Repository, version: Version, path: str) -> list[TableFile]:
    """Tabular files at or below ``path`` of a version, with their records."""
    out: list[TableFile] = []
    with repo.index.read() as txn:
        entry = find_entry(repo, txn, version, path)
        base = path.strip("/")

        def record_of(e: TreeEntry) -> TableRecord | None:
            meta = repo.entry_table(txn, e)
            if meta is None:
                return None
            obj = repo.load(txn, ObjectId(meta))
            return obj if isinstance(obj, TableRecord) else None

        if entry.kind == "file":
            return [TableFile(base, entry.size, record_of(entry))]
        if entry.kind != "dir":
            raise NotATableError(f"{path!r} is a symbolic link in {version.ref}")

        for p, e in iter_tree(repo, txn, entry.target, f"{base}/" if base else ""):
            if e.kind == "file" and format_of(e.name):
                out.append(TableFile(p, e.size, record_of(e)))
    return out


def _pick_format(files: list[TableFile], fmt: str | None, where: str) -> str:
    if fmt is not None:
        if fmt not in FORMATS:
            raise InvalidParameterError(f"unknown format {fmt!r}; use one of {', '.join(FORMATS)}")
        return fmt
    found = sorted({f.record.format if f.record else (format_of(f.path) or "?") for f in files})
    if len(found) != 1:
        raise NotATableError(
            f"{where} holds tables of several formats ({', '.join(found)}); pass format=… "
            "or a path to one of them"
        )
    return found[0]


def _check_schema(tf: TableFile, schema: pa.Schema, ref: str) -> None:
    if tf.record is None:
        return
    if fingerprint(schema) != tf.record.fingerprint:
        committed = pa.ipc.read_schema(pa.py_buffer(tf.record.schema))
        raise SchemaMismatchError(
            f"{ref}:{tf.path} reads back with a different schema than was committed "
            f"(committed {committed.names}, read {schema.names}); refusing to return a "
            "silently different table",
            path=tf.path,
        )


def open_dataset(
    repo: Repository,
    version: Version,
    path: str | None = None,
    fmt: str | None = None,
    fs_handler: VersionFileSystem | None = None,
) -> ds.Dataset:
    """A pyarrow dataset over the tabular files of a version (or of one path in it)."""
    where = f"{version.ref}:{path or '/'}"
    files = _tables_under(repo, version, path or "")
    if not files:
        raise NotATableError(f"{where} holds no Parquet, Arrow IPC or CSV files")
    if len(files) == 1 and files[0].record is None and fmt is None:
        raise NotATableError(
            f"{where} is not a table reprocas recognised at commit (not Parquet, Arrow IPC or "
            "CSV, or it did not parse); pass format=… to read it anyway"
        )
    if fmt is None:
        # Files with a table suffix that did not parse at commit are not tables.
        files = [f for f in files if f.record is not None] or files
    chosen = _pick_format(files, fmt, where)
    files = [f for f in files if (f.record.format if f.record else format_of(f.path)) == chosen]
    handler = fs_handler or VersionFileSystem(repo, version)
    handler.preload([f.path for f in files])
    fs = pafs.PyFileSystem(handler)
    if chosen == "arrow" and any(_is_ipc_stream(handler, f.path) for f in files):
        # pyarrow datasets read IPC files, not IPC streams: read streams whole.
        tables = []
        for f in files:
            with handler.open_input_file(f.path) as src:
                t = _read_ipc(src)
            _check_schema(f, t.schema, version.ref)
            tables.append(t)
        return ds.dataset(tables)
    ds_format: Any = {
        "parquet": "parquet",
        "arrow": "ipc",
        "csv": ds.CsvFileFormat(parse_options=CSV_PARSE),
    }[chosen]
    dataset = ds.dataset([f.path for f in files], filesystem=fs, format=ds_format)
    for tf, fragment in zip(files, dataset.get_fragments(), strict=True):
        _check_schema(tf, fragment.physical_schema, version.ref)
    return dataset


def read_table(
    repo: Repository,
    version: Version,
    path: str,
    columns: list[str] | None = None,
    filter: Any = None,
) -> pa.Table:
    """One table of a version, exactly as committed (schema checked)."""
    files = _tables_under(repo, version, path)
    if len(files) != 1 or files[0].path != path.strip("/"):
        raise NotATableError(f"{version.ref}:{path} is not one table file; use dataset()")
    tf = files[0]
    if tf.record is None:
        raise NotATableError(
            f"{version.ref}:{path} is not a table (not Parquet, Arrow IPC or CSV, or it did "
            "not parse when it was committed)"
        )
    handler = VersionFileSystem(repo, version)
    handler.preload([tf.path])
    # The file's own schema is checked first, so a projected or filtered read can never
    # quietly return columns of a table other than the one committed.
    _check_schema(tf, _physical_schema(handler, tf.path, tf.record.format), version.ref)
    if tf.record.format == "parquet" and filter is None:
        with handler.open_input_file(tf.path) as f:
            table = pq.read_table(f, columns=columns)
    elif tf.record.format == "csv" and columns is None and filter is None:
        with handler.open_input_stream(tf.path) as f:
            table = pacsv.read_csv(f, parse_options=CSV_PARSE)
    elif tf.record.format == "arrow" and columns is None and filter is None:
        with handler.open_input_file(tf.path) as f:
            table = _read_ipc(f)
    else:
        table = open_dataset(repo, version, path, tf.record.format, handler).to_table(
            columns=columns, filter=filter
        )
    if columns is None:
        _check_schema(tf, table.schema, version.ref)
    if table.num_rows != tf.record.rows and filter is None:
        raise SchemaMismatchError(
            f"{version.ref}:{path} reads back {table.num_rows} rows, committed {tf.record.rows}"
        )
    return table


def _is_ipc_stream(handler: VersionFileSystem, path: str) -> bool:
    with handler.open_input_file(path) as f:
        head = bytes(f.read(6))
    return head != b"ARROW1"


def _physical_schema(handler: VersionFileSystem, path: str, fmt: str) -> pa.Schema:
    """The schema stored in (or, for CSV, inferred from the start of) a file."""
    with handler.open_input_file(path) as f:
        if fmt == "parquet":
            return pq.ParquetFile(f).schema_arrow
        if fmt == "csv":
            return csv_schema(f)
        try:
            return pa.ipc.open_file(f).schema
        except pa.ArrowInvalid:
            f.seek(0)
            return pa.ipc.open_stream(f).schema


def _read_ipc(f: pa.NativeFile) -> pa.Table:
    """An Arrow IPC file (Feather v2) or stream, whole."""
    try:
        return pa.ipc.open_file(f).read_all()
    except pa.ArrowInvalid:
        f.seek(0)
        return pa.ipc.open_stream(f).read_all()


_EXPORT_ROWS = 1 << 20  # rows per write: Parquet's default row group


def export_table(table: pa.Table, out: Path, fmt: str, progress: Progress | None = None) -> None:
    """Write one table to a local file as Parquet, Arrow IPC (Feather v2) or CSV, a
    million rows at a time (``progress`` hears the bytes of each)."""
    if fmt not in FORMATS:
        raise InvalidParameterError(f"unknown format {fmt!r}; use one of {', '.join(FORMATS)}")
    tmp = out.with_name(out.name + ".tmp")
    if progress is not None:
        progress.start(table.nbytes, 1)
    try:
        writer: Any
        if fmt == "parquet":
            writer = pq.ParquetWriter(tmp, table.schema)
        elif fmt == "arrow":
            writer = pa.ipc.new_file(
                tmp, table.schema, options=pa.ipc.IpcWriteOptions(compression=None)
            )
        else:
            writer = pacsv.CSVWriter(tmp, table.schema)
        with writer:
            for lo in range(0, max(table.num_rows, 1), _EXPORT_ROWS):
                part = table.slice(lo, _EXPORT_ROWS)
                writer.write_table(part)
                if progress is not None:
                    progress.advance(part.nbytes)
        if progress is not None:
            progress.file_done()
        tmp.replace(out)
    except pa.ArrowException as exc:
        tmp.unlink(missing_ok=True)
        raise InvalidParameterError(f"cannot write this table as {fmt}: {exc}") from exc
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise InvalidParameterError(f"cannot write {out}: {exc.strerror or exc}") from exc


def table_record(repo: Repository, version: Version, path: str) -> TableRecord | None:
    with repo.index.read() as txn:
        entry = find_entry(repo, txn, version, path)
        if entry.kind != "file":
            raise PathNotInVersionError(f"{path!r} is not a file in {version.ref}", path=path)
        meta = repo.entry_table(txn, entry)
        if meta is None:
            return None
        obj = repo.load(txn, ObjectId(meta))
    return obj if isinstance(obj, TableRecord) else None
