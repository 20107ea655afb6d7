"""Inspect a tabular file at commit: schema, fingerprint, rows, Parquet row groups.

Cheap by design: Parquet is read from its footer only; Arrow IPC from its footer and
batch headers (memory-mapped, zero-copy); CSV's schema from its first block and its
record count by the native quote-aware newline counter. A file that does not parse as
its suffix says is simply not recorded as a table (commit never fails for that).
"""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.ipc as ipc
import pyarrow.parquet as pq

from reprocas.model.objects import TableRecord
from reprocas.native import core
from reprocas.tabular.formats import format_of


def schema_bytes(schema: pa.Schema) -> bytes:
    """The canonical bytes of a schema: its Arrow IPC serialisation."""
    return bytes(schema.serialize().to_pybytes())


def fingerprint(schema: pa.Schema) -> bytes:
    return core.blake3_digest(schema_bytes(schema))


def _record(
    fmt: str, schema: pa.Schema, rows: int, groups: tuple[tuple[int, int], ...] = ()
) -> TableRecord:
    return TableRecord(
        format=fmt,
        schema=schema_bytes(schema),
        fingerprint=fingerprint(schema),
        rows=rows,
        columns=tuple(schema.names),
        row_groups=groups,
    )


def inspect_parquet(path: Path) -> TableRecord:
    pf = pq.ParquetFile(path)
    md = pf.metadata
    groups = tuple(
        (md.row_group(i).num_rows, md.row_group(i).total_byte_size)
        for i in range(md.num_row_groups)
    )
    return _record("parquet", pf.schema_arrow, md.num_rows, groups)


def inspect_arrow(path: Path) -> TableRecord:
    with pa.memory_map(str(path)) as source:
        try:
            reader = ipc.open_file(source)
            rows = sum(reader.get_batch(i).num_rows for i in range(reader.num_record_batches))
            return _record("arrow", reader.schema, rows)
        except pa.ArrowInvalid:
            source.seek(0)
            stream = ipc.open_stream(source)
            rows = sum(b.num_rows for b in stream)
            return _record("arrow", stream.schema, rows)


# Quoted values may hold newlines (RFC 4180); the record counter and every reader agree.
CSV_PARSE = pacsv.ParseOptions(newlines_in_values=True)


# pyarrow's streaming reader infers the types from its first block (ReadOptions'
# block_size) when that block holds the header and at least one whole row; beyond the
# block it only needs to see that the input goes on. So two blocks of the file give the
# same schema as the whole file, without the reader's read-ahead through the file
# (about 40 MB of buffers at commit, for a schema). When the first row does not end in
# the first block, the reader reads on to find its end: then the whole file is read.
_BLOCK = pacsv.ReadOptions().block_size
_SCHEMA_PREFIX = 2 * _BLOCK


def _block_holds_a_row(block: bytes) -> bool:
    """Whether ``block`` holds the header and one whole row, as pyarrow delimits records
    (the native record counter's rules, rust_ext/src/csv.rs)."""
    return core.csv_complete_records(block) >= 2


def _schema_of(source: object) -> pa.Schema:
    reader = pacsv.open_csv(source, parse_options=CSV_PARSE)
    try:
        return reader.schema
    finally:
        reader.close()


def csv_schema(source: str | Path | pa.NativeFile) -> pa.Schema:
    """The schema pyarrow infers for a CSV (from its first block), as read_table gets it.

    ``source`` is a path or an open file positioned at the start."""
    if isinstance(source, (str, Path)):
        with open(source, "rb") as f:
            head = f.read(_SCHEMA_PREFIX)
    else:
        head = bytes(source.read(_SCHEMA_PREFIX))
    if len(head) < _SCHEMA_PREFIX or _block_holds_a_row(head[:_BLOCK]):
        return _schema_of(pa.BufferReader(head))
    if isinstance(source, (str, Path)):
        return _schema_of(str(source))
    source.seek(0)
    return _schema_of(source)


def inspect_csv(path: Path) -> TableRecord:
    schema = csv_schema(str(path))
    # One thread of its own: the scan is serial, and at commit it runs beside the
    # compression, which keeps the all-cores pool busy.
    records = core.count_csv_records(path, threads=1)
    return _record("csv", schema, max(0, records - 1))


def inspect_file(path: Path) -> TableRecord | None:
    """The table record of ``path``, or None when it is not a (readable) table."""
    fmt = format_of(path.name)
    if fmt is None:
        return None
    try:
        if fmt == "parquet":
            return inspect_parquet(path)
        if fmt == "arrow":
            return inspect_arrow(path)
        return inspect_csv(path)
    except (pa.ArrowException, OSError, ValueError):
        return None
