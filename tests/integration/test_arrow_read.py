"""Arrow from the store: tables read back exactly as committed (schema and metadata
included), projection and filters as on local files, table records at commit, schema
checks, export-table, and clear errors for bad input and damaged data.

Every table is built here with pyarrow from a fixed seed; "the original" is always the
table pyarrow reads from the local file that was committed.
"""

from __future__ import annotations

import decimal
import json
import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.dataset as ds
import pyarrow.feather as feather
import pyarrow.ipc as ipc
import pyarrow.parquet as pq
import pytest

import reprocas
import reprocas.tabular.inspect as inspect_mod
import reprocas.tabular.read as read_mod
from reprocas.cli.main import run
from reprocas.errors import (
    CorruptDataError,
    IntegrityError,
    PathNotInVersionError,
    ReprocasError,
)
from reprocas.model.objects import TableRecord
from reprocas.store.checkout import find_entry
from reprocas.store.reader import FrameCache
from reprocas.tabular.fs import VersionFileSystem
from reprocas.tabular.read import NotATableError, SchemaMismatchError, open_dataset
from tests.integration._helpers import assert_ok, assert_one_line_error, run_cli

SEED = 20261125
REF = "tables@v1"

# --- building the tables ---------------------------------------------------------------


def _maybe(rng: random.Random, value: Any, p: float = 0.12) -> Any:
    return None if rng.random() < p else value


def nested_table(n: int, seed: int) -> pa.Table:
    """Every kind of column the round trip must keep: nested (list, list of struct,
    struct, map), dictionaries, decimals, time-zoned timestamps, large strings (some of
    them hundreds of KiB, so that values span chunks), binary, and nulls everywhere.
    Schema- and field-level metadata too."""
    rng = random.Random(seed)

    def m(value: Any, p: float = 0.12) -> Any:
        return _maybe(rng, value, p)

    words = ["alpha", "beta", "gamma", "delta", "epsilon", "zeta", "ηλιος", "日本"]

    def big_string(i: int) -> str:
        if i % 397 == 5:
            return "".join(rng.choice(words) for _ in range(40_000))  # ~250 KiB
        return " ".join(rng.choice(words) for _ in range(rng.randrange(0, 12)))

    struct_t = pa.struct(
        [
            pa.field("x", pa.float64()),
            pa.field("y", pa.string()),
            pa.field("z", pa.list_(pa.int16())),
        ]
    )
    item_t = pa.struct([pa.field("a", pa.int8()), pa.field("b", pa.string())])
    columns: dict[str, pa.Array] = {
        "id": pa.array(range(n), pa.int64()),
        "i8": pa.array([m(rng.randrange(-128, 128)) for _ in range(n)], pa.int8()),
        "u32": pa.array([m(rng.randrange(1 << 32)) for _ in range(n)], pa.uint32()),
        "f64": pa.array([m(rng.uniform(-1e6, 1e6)) for _ in range(n)], pa.float64()),
        "flag": pa.array([m(rng.random() < 0.5) for _ in range(n)], pa.bool_()),
        "s": pa.array([m(rng.choice(words) * rng.randrange(1, 4)) for _ in range(n)]),
        "big": pa.array([m(big_string(i), 0.05) for i in range(n)], pa.large_string()),
        "raw": pa.array([m(rng.randbytes(rng.randrange(0, 40))) for _ in range(n)], pa.binary()),
        "lst": pa.array(
            [m([rng.randrange(1000) for _ in range(rng.randrange(0, 5))]) for _ in range(n)],
            pa.list_(pa.int32()),
        ),
        "items": pa.array(
            [
                m([{"a": rng.randrange(-9, 9), "b": m(rng.choice(words))} for _ in range(2)])
                for _ in range(n)
            ],
            pa.list_(item_t),
        ),
        "st": pa.array(
            [
                m({"x": rng.random(), "y": m(rng.choice(words)), "z": [rng.randrange(9)] * 2})
                for _ in range(n)
            ],
            struct_t,
        ),
        "mp": pa.array(
            [
                m([(rng.choice(words), rng.randrange(100)) for _ in range(rng.randrange(0, 3))])
                for _ in range(n)
            ],
            pa.map_(pa.string(), pa.int64()),
        ),
        "ward": pa.array([m(rng.choice(["ICU", "MED-A", "SURG"])) for _ in range(n)])
        .cast(pa.string())
        .dictionary_encode(),
        "dec": pa.array(
            [m(decimal.Decimal(rng.randrange(-(10**12), 10**12)).scaleb(-4)) for _ in range(n)],
            pa.decimal128(18, 4),
        ),
        "dec256": pa.array(
            [m(decimal.Decimal(rng.randrange(-(10**30), 10**30)).scaleb(-10)) for _ in range(n)],
            pa.decimal256(40, 10),
        ),
        "ts_berlin": pa.array(
            [m(1_600_000_000_000_000 + rng.randrange(10**14)) for _ in range(n)],
            pa.timestamp("us", tz="Europe/Berlin"),
        ),
        "ts_offset": pa.array(
            [m(1_600_000_000_000 + rng.randrange(10**11)) for _ in range(n)],
            pa.timestamp("ms", tz="+05:30"),
        ),
        "ts_naive": pa.array(
            [m(1_600_000_000 + rng.randrange(10**8)) for _ in range(n)], pa.timestamp("s")
        ),
        "day": pa.array([m(18000 + rng.randrange(3000)) for _ in range(n)], pa.date32()),
    }
    schema = pa.schema(
        [
            pa.field(name, arr.type, metadata={"doc": f"column {name}"} if name == "id" else None)
            for name, arr in columns.items()
        ],
        metadata={"producer": "reprocas-tests", "seed": str(seed)},
    )
    return pa.table(list(columns.values()), schema=schema)


def flat_table(n: int, seed: int) -> pa.Table:
    """What CSV can hold: numbers with nulls, text with commas, quotes and unicode,
    time-zoned timestamps, decimals, booleans; a few long strings."""
    rng = random.Random(seed)

    def m(value: Any, p: float = 0.12) -> Any:
        return _maybe(rng, value, p)

    text = ["plain", 'has "quotes"', "has, comma", "ünïcödé", "tab\tinside", ""]
    return pa.table(
        {
            "id": pa.array(range(n), pa.int64()),
            "amount": pa.array([m(rng.randrange(-(10**6), 10**6) / 8) for _ in range(n)]),
            "count": pa.array([m(rng.randrange(1000)) for _ in range(n)], pa.int64()),
            "label": pa.array(
                ["x" * 150_000 if i % 1000 == 7 else f"{rng.choice(text)} {i}" for i in range(n)],
                pa.large_string(),
            ),
            "ok": pa.array([m(rng.random() < 0.5) for _ in range(n)], pa.bool_()),
            "when": pa.array(
                [m(1_600_000_000 + rng.randrange(10**8)) for _ in range(n)],
                pa.timestamp("s", tz="UTC"),
            ),
            "price": pa.array(
                [m(decimal.Decimal(rng.randrange(10**7)).scaleb(-2)) for _ in range(n)],
                pa.decimal128(10, 2),
            ),
        }
    )


def write_stream(table: pa.Table, path: Path, batch_rows: int = 700) -> None:
    with ipc.new_stream(path, table.schema) as writer:
        for batch in table.to_batches(max_chunksize=batch_rows):
            writer.write_batch(batch)
        if table.num_rows == 0:
            writer.write_table(table)


# How pyarrow reads each committed file locally: "the original".
LocalReader = Callable[[Path], pa.Table]


def _read_stream(p: Path) -> pa.Table:
    with ipc.open_stream(p) as reader:
        return reader.read_all()


LOCAL_READ: dict[str, LocalReader] = {
    "parquet": lambda p: pq.read_table(p),
    "feather": lambda p: feather.read_table(p),
    "arrows": _read_stream,
    "csv": lambda p: pacsv.read_csv(p),
}
DS_FORMAT = {"parquet": "parquet", "feather": "ipc", "csv": "csv"}


def local_read(path: Path) -> pa.Table:
    return LOCAL_READ[path.suffix.lstrip(".")](path)


def local_dataset(path: Path) -> ds.Dataset:
    return ds.dataset(path, format=DS_FORMAT[path.suffix.lstrip(".")])


def assert_same_table(got: pa.Table, want: pa.Table, what: str) -> None:
    assert got.schema.equals(want.schema, check_metadata=True), (
        f"{what}: schema differs\n--- got\n{got.schema}\n--- want\n{want.schema}"
    )
    assert got.num_rows == want.num_rows, f"{what}: {got.num_rows} rows, want {want.num_rows}"
    assert got.equals(want, check_metadata=True), f"{what}: values differ"


# --- the shared repository -------------------------------------------------------------


@dataclass(frozen=True)
class Committed:
    repo: reprocas.Repo
    root: Path
    src: Path


ROUND_TRIP_FILES = [
    "nested.parquet",
    "nested.feather",
    "nested.arrows",
    "flat.csv",
    "flat.parquet",
    "empty.parquet",
    "empty.feather",
    "empty.arrows",
    "empty.csv",
]


def _write_sources(src: Path) -> None:
    nested = nested_table(3000, SEED)
    flat = flat_table(4000, SEED + 1)
    # Five row groups, and data pages small enough that there are many of them.
    pq.write_table(nested, src / "nested.parquet", row_group_size=600, data_page_size=64 << 10)
    feather.write_feather(nested, src / "nested.feather")  # Feather v2 (lz4)
    write_stream(nested, src / "nested.arrows")
    pacsv.write_csv(flat, src / "flat.csv")
    pq.write_table(flat, src / "flat.parquet", row_group_size=1000)
    pq.write_table(nested.slice(0, 0), src / "empty.parquet")
    feather.write_feather(nested.slice(0, 0), src / "empty.feather")
    write_stream(nested.slice(0, 0), src / "empty.arrows")
    (src / "empty.csv").write_bytes(b"id,amount,label\n")
    # A directory of Parquet parts (one dataset), and other files beside the tables.
    parts = src / "parts"
    parts.mkdir()
    for i in range(3):
        pq.write_table(flat.slice(i * 1300, 1300), parts / f"part-{i}.parquet")
    (src / "notes.txt").write_text("not a table\n")
    bad = src / "bad"
    bad.mkdir()
    (bad / "garbage.parquet").write_bytes(random.Random(3).randbytes(5000))
    (bad / "garbage.feather").write_bytes(b"ARROW1" + random.Random(4).randbytes(3000))
    (bad / "ragged.csv").write_bytes(b"a,b\n1,2,3\n4\n")
    (bad / "empty.parquet").write_bytes(b"")
    # A directory with one good Parquet part and one that does not parse.
    (src / "mixed").mkdir()
    pq.write_table(flat.slice(0, 100), src / "mixed" / "good.parquet")
    (src / "mixed" / "junk.parquet").write_bytes(b"PAR1" + bytes(200))
    # A 20-column Parquet table for the projection test.
    wide = wide_table(60_000, SEED + 2)
    pq.write_table(wide, src / "wide.parquet", row_group_size=30_000)


def wide_table(n: int, seed: int) -> pa.Table:
    """20 columns of random numbers (int64 and float64), generated vectorised."""
    rng = random.Random(seed)
    cols: dict[str, pa.Array] = {}
    for i in range(20):
        raw = pa.Array.from_buffers(pa.int64(), n, [None, pa.py_buffer(rng.randbytes(8 * n))])
        if i % 2:
            cols[f"c{i:02d}"] = raw
        else:
            small = pc.bit_wise_and(raw, (1 << 40) - 1)
            cols[f"c{i:02d}"] = pc.divide(pc.cast(small, pa.float64()), 7.0)
    return pa.table(cols)


@pytest.fixture(scope="module")
def committed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Committed]:
    root = tmp_path_factory.mktemp("arrow-read")
    src = root / "src"
    src.mkdir()
    _write_sources(src)
    repo = reprocas.Repo.init(root / "repo")
    try:
        assert repo.commit(src, "tables").ref == REF
        yield Committed(repo, root, src)
    finally:
        repo.close()


# --- round trip ------------------------------------------------------------------------


@pytest.mark.parametrize("name", ROUND_TRIP_FILES)
def test_read_table_equals_the_original(committed: Committed, name: str) -> None:
    want = local_read(committed.src / name)
    got = committed.repo.read_table(REF, name)
    assert_same_table(got, want, f"read_table({name})")


@pytest.mark.parametrize("name", ROUND_TRIP_FILES)
def test_dataset_to_table_equals_the_original(committed: Committed, name: str) -> None:
    want = local_read(committed.src / name)
    dataset = committed.repo.dataset(REF, name)
    assert isinstance(dataset, ds.Dataset)
    assert dataset.schema.equals(want.schema, check_metadata=True), dataset.schema
    assert_same_table(dataset.to_table(), want, f"dataset({name}).to_table()")
    assert dataset.count_rows() == want.num_rows


def test_the_round_trip_cases_hold_what_they_claim(committed: Committed) -> None:
    """Guard the premise: nested types, dictionaries, decimals, zoned timestamps, large
    strings spanning chunks, nulls, several row groups, empty tables."""
    t = local_read(committed.src / "nested.parquet")
    types = {f.name: f.type for f in t.schema}
    assert pa.types.is_list(types["lst"]) and pa.types.is_struct(types["st"])
    assert pa.types.is_map(types["mp"]) and pa.types.is_dictionary(types["ward"])
    assert pa.types.is_decimal(types["dec"]) and pa.types.is_decimal(types["dec256"])
    assert types["ts_berlin"].tz == "Europe/Berlin" and types["ts_offset"].tz == "+05:30"
    assert types["big"] == pa.large_string()
    assert max(len((s or "").encode()) for s in t["big"].to_pylist()) > 200_000
    assert all(t[c].null_count > 0 for c in t.column_names if c != "id")
    assert pq.ParquetFile(committed.src / "nested.parquet").metadata.num_row_groups == 5
    assert local_read(committed.src / "empty.parquet").num_rows == 0
    assert t.schema.metadata and t.schema.field("id").metadata
    # The CSV keeps its time zone and long text through pyarrow's own reader.
    c = local_read(committed.src / "flat.csv")
    assert c.schema.field("when").type.tz == "UTC"
    assert max(len(s) for s in c["label"].to_pylist()) >= 150_000


def test_open_gives_the_committed_bytes_of_a_table(committed: Committed) -> None:
    for name in ("nested.parquet", "flat.csv", "nested.arrows"):
        with committed.repo.open(REF, name) as f:
            assert f.read() == (committed.src / name).read_bytes()


def test_dataset_over_a_directory_of_parts(committed: Committed) -> None:
    want = ds.dataset(committed.src / "parts", format="parquet").to_table()
    got = committed.repo.dataset(REF, "parts").to_table()
    assert_same_table(got, want, "dataset(parts)")
    expr = pc.field("count") > 500
    assert_same_table(
        committed.repo.dataset(REF, "parts").to_table(filter=expr),
        ds.dataset(committed.src / "parts", format="parquet").to_table(filter=expr),
        "dataset(parts) filtered",
    )


def test_dataset_of_a_version_with_mixed_formats_needs_a_format(committed: Committed) -> None:
    with pytest.raises(NotATableError, match="format"):
        committed.repo.dataset(REF)
    # With a format, only the files of that format are in the dataset.
    dataset = committed.repo.dataset(REF, "parts", format="parquet")
    assert sorted(Path(f).name for f in dataset.files) == [
        "part-0.parquet",
        "part-1.parquet",
        "part-2.parquet",
    ]


def test_a_directory_with_an_unparseable_part_is_handled_clearly(committed: Committed) -> None:
    """A part that was not recognised as a table at commit is left out of the dataset,
    or named in a reprocas error (not a raw pyarrow exception). With an explicit format
    the user asked for every file of that format: an error naming the file will do."""
    want = local_read(committed.src / "mixed" / "good.parquet")
    try:
        got = committed.repo.dataset(REF, "mixed").to_table()
    except ReprocasError as exc:
        assert "junk.parquet" in str(exc)
    else:
        assert_same_table(got, want, "dataset(mixed)")
    try:
        got = committed.repo.dataset(REF, "mixed", format="parquet").to_table()
    except (ReprocasError, pa.ArrowException) as exc:
        assert "junk.parquet" in str(exc)
    else:
        assert_same_table(got, want, "dataset(mixed, format='parquet')")


def test_module_level_functions_find_the_repository(
    committed: Committed, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    want = local_read(committed.src / "nested.parquet")
    monkeypatch.setenv("REPROCAS_REPO", str(committed.root / "repo"))
    monkeypatch.chdir(tmp_path)
    assert_same_table(reprocas.read_table(REF, "nested.parquet"), want, "reprocas.read_table")
    assert_same_table(reprocas.dataset(REF, "nested.parquet").to_table(), want, "reprocas.dataset")
    # From the current directory, without the variable: a project with .reprocas/.
    monkeypatch.delenv("REPROCAS_REPO")
    project = tmp_path / "project"
    (project / "sub").mkdir(parents=True)
    with reprocas.Repo.init(project / ".reprocas") as other:
        other.commit(committed.src / "flat.csv", "clinical")
    monkeypatch.chdir(project / "sub")
    assert_same_table(
        reprocas.dataset("clinical").to_table(),
        local_read(committed.src / "flat.csv"),
        "reprocas.dataset from cwd",
    )
    assert reprocas.read_table("clinical@v1", "flat.csv", columns=["id"]).num_rows == 4000


# --- projection and filters --------------------------------------------------------------

PROJECTIONS: list[tuple[str, list[str] | None, Any]] = [
    ("nested.parquet", ["id", "st", "ward"], None),
    ("nested.parquet", ["mp", "dec", "ts_berlin"], pc.field("id") >= 2500),
    ("nested.parquet", None, (pc.field("i8") > 0) & pc.field("f64").is_valid()),
    ("nested.parquet", ["id", "s"], pc.field("ward") == "ICU"),
    ("nested.parquet", ["id"], pc.field("id") < 0),
    ("nested.feather", ["lst", "big", "id"], pc.field("flag")),
    ("nested.feather", None, pc.field("ts_naive") > pa.scalar(1_650_000_000, pa.timestamp("s"))),
    ("flat.csv", ["label", "id"], None),
    ("flat.csv", ["id", "amount"], (pc.field("count") < 100) | pc.field("amount").is_null()),
    ("flat.csv", None, pc.field("ok") == False),  # noqa: E712
    ("flat.parquet", ["price", "when"], pc.field("price") > pa.scalar(decimal.Decimal(50_000))),
]


@pytest.mark.parametrize(("name", "columns", "expr"), PROJECTIONS)
def test_projection_and_filters_match_the_local_file(
    committed: Committed, name: str, columns: list[str] | None, expr: Any
) -> None:
    local = local_dataset(committed.src / name)
    want = local.to_table(columns=columns, filter=expr)
    got = committed.repo.dataset(REF, name).to_table(columns=columns, filter=expr)
    assert_same_table(got, want, f"dataset({name}).to_table({columns}, {expr})")
    assert committed.repo.dataset(REF, name).count_rows(filter=expr) == local.count_rows(
        filter=expr
    )
    got = committed.repo.read_table(REF, name, columns=columns, filter=expr)
    assert_same_table(got, want, f"read_table({name}, {columns}, {expr})")


def test_scanner_batches_head_and_take_match(committed: Committed) -> None:
    local = local_dataset(committed.src / "nested.parquet")
    stored = committed.repo.dataset(REF, "nested.parquet")
    assert_same_table(stored.head(17), local.head(17), "head")
    idx = [0, 5, 1999, 2999, 600, 601]
    assert_same_table(stored.take(idx), local.take(idx), "take")
    batches = stored.to_batches(columns=["id", "lst"], batch_size=256)
    got = pa.Table.from_batches(list(batches))
    assert_same_table(got, local.to_table(columns=["id", "lst"]), "to_batches")


class CountingCache(FrameCache):
    """Counts the raw bytes of the frames decoded from the packs."""

    def __init__(self) -> None:
        super().__init__()
        self.decoded = 0

    def put(self, key: tuple[bytes, int], data: bytes) -> None:
        if self.get(key) is None:
            self.decoded += len(data)
        super().put(key, data)


def test_reading_three_of_twenty_columns_reads_only_their_bytes(committed: Committed) -> None:
    path = committed.src / "wide.parquet"
    size = path.stat().st_size
    assert size > 8 << 20
    columns = ["c03", "c08", "c17"]
    store = committed.repo.store
    version = committed.repo.resolve(REF)

    handler = VersionFileSystem(store, version, CountingCache())
    got = open_dataset(store, version, "wide.parquet", "parquet", handler).to_table(columns=columns)
    assert_same_table(got, pq.read_table(path, columns=columns), "3 of 20 columns")
    assert 0 < handler.bytes_read <= 0.25 * size, (
        f"read {handler.bytes_read} bytes of a {size}-byte file for 3 of 20 columns"
    )
    cache = handler.cache
    assert isinstance(cache, CountingCache)
    assert cache.decoded <= 0.5 * size, f"decoded {cache.decoded} of {size} bytes"

    # The whole table reads about the whole file, once.
    full = VersionFileSystem(store, version, CountingCache())
    open_dataset(store, version, "wide.parquet", "parquet", full).to_table()
    assert 0.9 * size <= full.bytes_read <= 1.3 * size, (full.bytes_read, size)


# --- table records at commit -----------------------------------------------------------------


def ipc_normal(schema: pa.Schema) -> pa.Schema:
    return pa.ipc.read_schema(pa.py_buffer(schema.serialize()))


def _record(committed: Committed, name: str) -> TableRecord:
    rec = committed.repo.table_info(REF, name)
    assert isinstance(rec, TableRecord), f"{name} has no table record"
    return rec


@pytest.mark.parametrize(
    ("name", "fmt"),
    [
        ("nested.parquet", "parquet"),
        ("flat.parquet", "parquet"),
        ("nested.feather", "arrow"),
        ("nested.arrows", "arrow"),
        ("flat.csv", "csv"),
        ("empty.parquet", "parquet"),
        ("empty.feather", "arrow"),
        ("empty.arrows", "arrow"),
        ("empty.csv", "csv"),
        ("wide.parquet", "parquet"),
    ],
)
def test_table_record_describes_the_file(committed: Committed, name: str, fmt: str) -> None:
    want = local_read(committed.src / name)
    rec = _record(committed, name)
    assert rec.format == fmt
    assert rec.rows == want.num_rows
    assert list(rec.columns) == want.column_names
    schema = pa.ipc.read_schema(pa.py_buffer(rec.schema))
    # Compared through the IPC form the record stores: it drops a detail of map types
    # that pyarrow's Parquet reader keeps (the name of the map's entries field).
    assert schema.equals(ipc_normal(want.schema), check_metadata=True), schema
    assert len(rec.fingerprint) == 32
    if fmt == "parquet":
        md = pq.ParquetFile(committed.src / name).metadata
        assert len(rec.row_groups) == md.num_row_groups
        assert [r for r, _ in rec.row_groups] == [
            md.row_group(i).num_rows for i in range(md.num_row_groups)
        ]
        assert sum(r for r, _ in rec.row_groups) == rec.rows


def test_schema_fingerprint_depends_on_the_schema_only(committed: Committed) -> None:
    nested = _record(committed, "nested.parquet")
    empty = _record(committed, "empty.parquet")
    assert nested.fingerprint == empty.fingerprint  # same schema, different rows
    assert nested.fingerprint != _record(committed, "flat.parquet").fingerprint
    wide = _record(committed, "wide.parquet")
    assert _record(committed, "flat.parquet").fingerprint != wide.fingerprint


def test_parquet_record_row_groups(committed: Committed) -> None:
    rec = _record(committed, "nested.parquet")
    assert [r for r, _ in rec.row_groups] == [600] * 5
    assert all(b > 0 for _, b in rec.row_groups)
    assert [r for r, _ in _record(committed, "wide.parquet").row_groups] == [30_000, 30_000]


CSV_CASES: dict[str, bytes] = {
    "quoted_newlines": b'id,text\n1,"a\nb"\n2,"c\r\nd"\n3,"x""y\nz"\n',
    "crlf": b"a,b\r\n1,2\r\n3,4\r\n",
    "no_final_newline": b"a,b\n1,2\n3,4",
    "quoted_commas": b'a,b\n"x,y",2\n"",3\n',
    "header_only": b"a,b\n",
    "blank_line_inside": b"a,b\n1,2\n\n3,4\n",
    "blank_lines_at_end": b"a,b\n1,2\n3,4\n\n\n",
    "blank_line_first": b"\na,b\n1,2\n",
    "crlf_blank_line": b"a,b\r\n1,2\r\n\r\n3,4\r\n",
    "bare_cr_newlines": b"a,b\r1,2\r3,4\r",
    "quote_inside_unquoted_field": b'a,b\nx"y,2\n3,4\n',
}


@pytest.mark.parametrize("case", sorted(CSV_CASES))
def test_csv_row_count_at_commit_matches_what_pyarrow_reads(
    repo: reprocas.Repo, tmp_path: Path, case: str
) -> None:
    """The committed row count is the count pyarrow reads, so the table reads back."""
    src = tmp_path / "src"
    src.mkdir()
    path = src / f"{case}.csv"
    path.write_bytes(CSV_CASES[case])
    want = pacsv.read_csv(path)
    repo.commit(src, "csv")
    rec = repo.table_info("csv@v1", path.name)
    assert rec is not None
    assert rec.rows == want.num_rows, f"record says {rec.rows} rows, pyarrow reads {want.num_rows}"
    assert_same_table(repo.read_table("csv@v1", path.name), want, case)


def test_a_large_csv_with_quoted_newlines_counts_rows(repo: reprocas.Repo, tmp_path: Path) -> None:
    """Tens of thousands of records, many of them spanning lines, over several MiB."""
    rng = random.Random(SEED)
    lines = ["id,note,value\n"]
    notes: list[str] = []
    for i in range(40_000):
        note = "line one\nline two" if rng.random() < 0.3 else "single, with comma"
        notes.append(note)
        lines.append(f'{i},"{note}",{rng.randrange(1000)}\n')
    src = tmp_path / "big.csv"
    src.write_text("".join(lines))
    assert src.stat().st_size > 1 << 20  # more than one pyarrow CSV block
    repo.commit(src, "csv")
    rec = repo.table_info("csv@v1", "big.csv")
    assert rec is not None and rec.rows == 40_000
    # Read back, every record is whole: the values are the ones written.
    table = repo.read_table("csv@v1", "big.csv")
    assert table["id"].to_pylist() == list(range(40_000))
    assert table["note"].to_pylist() == notes


def test_show_path_prints_the_table_record(committed: Committed, capsys: Any) -> None:
    repo_path = str(committed.root / "repo")
    assert run(["--repo", repo_path, "show", REF, "--path", "nested.parquet", "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    table = info["table"]
    assert info["path"] == "nested.parquet" and info["ref"] == REF
    assert info["size"] == (committed.src / "nested.parquet").stat().st_size
    assert table["format"] == "parquet" and table["rows"] == 3000
    assert [c["name"] for c in table["columns"]] == local_read(
        committed.src / "nested.parquet"
    ).column_names
    assert len(table["row_groups"]) == 5 and table["row_groups"][0]["rows"] == 600
    assert table["schema_fingerprint"] == _record(committed, "nested.parquet").fingerprint.hex()

    assert run(["--repo", repo_path, "show", REF, "--path", "flat.csv"]) == 0
    human = capsys.readouterr().out
    assert "csv" in human and "4000 rows" in human

    assert run(["--repo", repo_path, "show", REF, "--path", "notes.txt", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["table"] is None


# --- files that are not tables ----------------------------------------------------------------

UNPARSEABLE = ["bad/garbage.parquet", "bad/garbage.feather", "bad/ragged.csv", "bad/empty.parquet"]


@pytest.mark.parametrize("name", UNPARSEABLE)
def test_an_unparseable_table_file_is_committed_without_a_record(
    committed: Committed, name: str, tmp_path: Path
) -> None:
    repo = committed.repo
    assert repo.table_info(REF, name) is None
    with repo.open(REF, name) as f:  # committed exactly, like any file
        assert f.read() == (committed.src / name).read_bytes()
    with pytest.raises(NotATableError) as err:
        repo.read_table(REF, name)
    assert name in str(err.value) and "not a table" in str(err.value)
    with pytest.raises(NotATableError):
        repo.dataset(REF, name)
    with pytest.raises(NotATableError):
        repo.export_table(REF, name, tmp_path / "out.parquet")


def test_a_non_tabular_file_asked_for_as_a_table(committed: Committed, tmp_path: Path) -> None:
    repo = committed.repo
    assert repo.table_info(REF, "notes.txt") is None
    with pytest.raises(NotATableError, match=r"notes\.txt"):
        repo.read_table(REF, "notes.txt")
    with pytest.raises(NotATableError, match=r"notes\.txt"):
        repo.dataset(REF, "notes.txt")
    res = run_cli(
        "export-table",
        REF,
        "notes.txt",
        "--to",
        tmp_path / "x.parquet",
        repo=committed.root / "repo",
    )
    assert_one_line_error(res, 2, "notes.txt")
    assert not (tmp_path / "x.parquet").exists()


def test_unknown_paths_are_not_found(committed: Committed, tmp_path: Path) -> None:
    repo = committed.repo
    calls: list[Callable[[], object]] = [
        lambda: repo.read_table(REF, "missing.parquet"),
        lambda: repo.dataset(REF, "missing.parquet"),
        lambda: repo.dataset(REF, "no/such/dir"),
        lambda: repo.open(REF, "missing.parquet"),
        lambda: repo.table_info(REF, "missing.parquet"),
        lambda: repo.export_table(REF, "missing.parquet", tmp_path / "o.parquet"),
    ]
    for call in calls:
        with pytest.raises(PathNotInVersionError, match=r"missing\.parquet|'no'"):
            call()
    repo_path = committed.root / "repo"
    for args in (
        ("export-table", REF, "missing.parquet", "--to", tmp_path / "o.parquet"),
        ("show", REF, "--path", "missing.parquet"),
        ("show", REF, "--path", "missing.parquet", "--json"),
    ):
        assert_one_line_error(run_cli(*args, repo=repo_path), 4, "missing.parquet")
    assert not (tmp_path / "o.parquet").exists()
    # An unknown version is not found too.
    assert_one_line_error(
        run_cli(
            "export-table", "tables@v9", "nested.parquet", "--to", tmp_path / "o.pq", repo=repo_path
        ),
        4,
    )


def test_a_directory_is_not_a_file(committed: Committed) -> None:
    with pytest.raises(PathNotInVersionError):
        committed.repo.open(REF, "parts")
    with pytest.raises(ReprocasError):
        committed.repo.read_table(REF, "parts")


# --- schema checks ---------------------------------------------------------------------------


def _commit_with_wrong_fingerprint(
    repo: reprocas.Repo, src: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Commit ``src`` with a table record whose fingerprint is not its schema's: the
    store then holds a record that what is read back cannot match."""
    real = inspect_mod.fingerprint
    with monkeypatch.context() as m:
        m.setattr(inspect_mod, "fingerprint", lambda schema: bytes(32))
        repo.commit(src, "tampered")
    assert inspect_mod.fingerprint is real


@pytest.fixture
def tampered(
    repo: reprocas.Repo, repo_path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Path:
    src = tmp_path / "src"
    src.mkdir()
    t = flat_table(500, 7)
    pq.write_table(t, src / "t.parquet")
    feather.write_feather(t, src / "t.feather")
    pacsv.write_csv(t, src / "t.csv")
    _commit_with_wrong_fingerprint(repo, src, monkeypatch)
    rec = repo.table_info("tampered@v1", "t.parquet")
    assert rec is not None and rec.fingerprint == bytes(32)
    return src


@pytest.mark.parametrize("name", ["t.parquet", "t.feather", "t.csv"])
def test_a_committed_fingerprint_that_does_not_match_is_an_error(
    repo: reprocas.Repo, tampered: Path, name: str
) -> None:
    with pytest.raises(SchemaMismatchError) as err:
        repo.read_table("tampered@v1", name)
    assert isinstance(err.value, IntegrityError)
    assert name in str(err.value)
    with pytest.raises(SchemaMismatchError):
        repo.dataset("tampered@v1", name).to_table()
    with pytest.raises(SchemaMismatchError):
        repo.read_table("tampered@v1", name, filter=pc.field("id") > 3)


@pytest.mark.parametrize("name", ["t.parquet", "t.feather", "t.csv"])
def test_a_projected_read_checks_the_fingerprint_too(
    repo: reprocas.Repo, tampered: Path, name: str
) -> None:
    """Reading some columns of a table whose schema does not match what was committed
    must not silently succeed either."""
    with pytest.raises(SchemaMismatchError):
        repo.read_table("tampered@v1", name, columns=["id", "amount"])


def test_export_of_a_mismatching_table_fails_with_exit_6(
    repo: reprocas.Repo, repo_path: Path, tampered: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out.parquet"
    res = run_cli("export-table", "tampered@v1", "t.parquet", "--to", out, repo=repo_path)
    assert_one_line_error(res, 6, "t.parquet")
    assert not out.exists()


@pytest.mark.parametrize("name", ["nested.parquet", "nested.feather", "flat.csv"])
def test_a_fingerprint_mismatch_at_read_time_is_an_error(
    committed: Committed, monkeypatch: pytest.MonkeyPatch, name: str
) -> None:
    """The other way round: the record is right but what is read back hashes
    differently (as if the reader had produced another schema)."""
    monkeypatch.setattr(read_mod, "fingerprint", lambda schema: b"\x01" * 32)
    with pytest.raises(SchemaMismatchError):
        committed.repo.read_table(REF, name)
    with pytest.raises(SchemaMismatchError):
        committed.repo.dataset(REF, name)


def test_a_wrong_committed_row_count_is_an_error(
    repo: reprocas.Repo, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    src = tmp_path / "src"
    src.mkdir()
    pq.write_table(flat_table(300, 9), src / "t.parquet")
    pacsv.write_csv(flat_table(300, 9), src / "t.csv")
    real = inspect_mod._record

    def off_by_one(*args: Any, **kwargs: Any) -> TableRecord:
        rec = real(*args, **kwargs)
        return TableRecord(
            format=rec.format,
            schema=rec.schema,
            fingerprint=rec.fingerprint,
            rows=rec.rows + 1,
            columns=rec.columns,
            row_groups=rec.row_groups,
        )

    with monkeypatch.context() as m:
        m.setattr(inspect_mod, "_record", off_by_one)
        repo.commit(src, "rows")
    for name in ("t.parquet", "t.csv"):
        with pytest.raises(IntegrityError, match="rows"):
            repo.read_table("rows@v1", name)


# --- damaged data ----------------------------------------------------------------------------


def _flip_middle_chunk(repo: reprocas.Repo, ref: str, path: str) -> tuple[Path, int, int]:
    """Flip a byte inside the stored frame that holds the middle chunk of a file.

    Returns (pack, frame offset, file offset of that chunk)."""
    store = repo.store
    with store.index.read() as txn:
        v = store.resolve(txn, ref)
        entry = find_entry(store, txn, v, path)
        manifest = store.entry_manifest(txn, entry)
        mid = len(manifest.chunks) // 2
        file_offset = sum(n for _, n in manifest.chunks[:mid])
        loc = store.index.get_chunk(txn, manifest.chunks[mid][0])
        assert loc is not None
    assert len(manifest.chunks) >= 10, "the file should be many chunks"
    pack = store.pack_path(loc.pack)
    at = loc.frame_offset + loc.stored_len // 2
    with open(pack, "r+b") as f:
        f.seek(at)
        b = f.read(1)
        f.seek(at)
        f.write(bytes([b[0] ^ 0x5A]))
    return pack, loc.frame_offset, file_offset


@pytest.mark.parametrize("compressible", [True, False], ids=["zstd-frame", "raw-frame"])
def test_a_corrupt_chunk_in_the_middle_of_a_parquet_file_is_an_integrity_error(
    repo_path: Path, tmp_path: Path, compressible: bool
) -> None:
    if compressible:
        table = flat_table(30_000, 11).drop_columns(["label"])
        pq.write_table(table, tmp_path / "t.parquet", compression="none")
    else:
        table = wide_table(40_000, 12)
        pq.write_table(table, tmp_path / "t.parquet", row_group_size=10_000)
    with reprocas.Repo.init(repo_path, pack_size=256 << 10) as repo:
        repo.commit(tmp_path / "t.parquet", "d")
        pack, _, _ = _flip_middle_chunk(repo, "d@v1", "t.parquet")
        readers: list[Callable[[], object]] = [
            lambda: repo.read_table("d@v1", "t.parquet"),
            lambda: repo.dataset("d@v1", "t.parquet").to_table(),
            lambda: repo.read_table(
                "d@v1", "t.parquet", filter=pc.field(table.column_names[0]).is_valid()
            ),
            lambda: repo.open("d@v1", "t.parquet").read(),
        ]
        for read in readers:
            with pytest.raises(CorruptDataError) as err:
                read()
            assert "t.parquet" in str(err.value)
    out = tmp_path / "out.csv"
    res = run_cli("export-table", "d@v1", "t.parquet", "--to", out, repo=repo_path)
    line = assert_one_line_error(res, 6, "t.parquet")
    assert str(pack) in line or "verify" in line
    assert not out.exists()


# --- export-table ----------------------------------------------------------------------------

EXPORTS = [
    ("nested.parquet", "parquet"),
    ("nested.parquet", "arrow"),
    ("nested.feather", "parquet"),
    ("nested.feather", "arrow"),
    ("flat.csv", "parquet"),
    ("flat.csv", "arrow"),
    ("flat.csv", "csv"),
    ("flat.parquet", "csv"),
    ("empty.parquet", "parquet"),
    ("empty.feather", "arrow"),
]
WRITE_AND_READ: dict[str, tuple[Callable[[pa.Table, Path], None], LocalReader]] = {
    "parquet": (lambda t, p: pq.write_table(t, p), lambda p: pq.read_table(p)),
    "arrow": (lambda t, p: feather.write_feather(t, p), lambda p: feather.read_table(p)),
    "csv": (lambda t, p: pacsv.write_csv(t, p), lambda p: pacsv.read_csv(p)),
}


@pytest.mark.parametrize(("name", "fmt"), EXPORTS)
def test_export_table_round_trips(
    committed: Committed, tmp_path: Path, name: str, fmt: str
) -> None:
    """The exported file reads back as the original table written by pyarrow itself in
    that format would (a format's own type changes - Parquet has no seconds timestamps,
    CSV no types at all - are the same on both sides)."""
    original = local_read(committed.src / name)
    write, read = WRITE_AND_READ[fmt]
    out = tmp_path / f"out.{fmt}"
    written = committed.repo.export_table(REF, name, out)
    assert Path(written) == out
    reference = tmp_path / f"reference.{fmt}"
    write(original, reference)
    assert_same_table(read(out), read(reference), f"export {name} -> {fmt}")
    if fmt == "csv":
        assert out.read_bytes() == reference.read_bytes()
    if fmt != "csv" and name.endswith(".parquet") == (fmt == "parquet"):
        # Same format in and out: the original table itself comes back.
        assert_same_table(read(out), original, f"export {name} -> {fmt} (same format)")


def test_export_table_cli_formats_and_json(committed: Committed, tmp_path: Path) -> None:
    repo_path = committed.root / "repo"
    original = local_read(committed.src / "nested.feather")
    # --format wins over the suffix.
    out = tmp_path / "table.bin"
    res = assert_ok(
        run_cli(
            "export-table", REF, "nested.feather", "--to", out, "--format", "arrow", "--json",
            repo=repo_path,
        )
    )  # fmt: skip
    info = res.json()
    assert info["rows"] == 3000 and Path(info["to"]) == out
    assert_same_table(feather.read_table(out), original, "export --format arrow")
    # The suffix decides without --format.
    out2 = tmp_path / "table.feather"
    assert_ok(run_cli("export-table", REF, "nested.feather", "--to", out2, repo=repo_path))
    assert_same_table(feather.read_table(out2), original, "export to .feather")
    out3 = tmp_path / "flat.csv"
    assert_ok(run_cli("export-table", REF, "flat.csv", "--to", out3, repo=repo_path))
    assert_same_table(pacsv.read_csv(out3), local_read(committed.src / "flat.csv"), "csv")
    # An unknown format is bad usage.
    assert_one_line_error(
        run_cli(
            "export-table", REF, "flat.csv", "--to", tmp_path / "x", "--format", "xml",
            repo=repo_path,
        ),
        2,
        "xml",
    )  # fmt: skip


def test_export_of_nested_types_to_csv_is_a_clear_error(
    committed: Committed, tmp_path: Path
) -> None:
    """CSV cannot hold lists, structs or maps: a one-line error, and no partial file."""
    out = tmp_path / "nested.csv"
    res = run_cli("export-table", REF, "nested.parquet", "--to", out, repo=committed.root / "repo")
    assert_one_line_error(res, 2, "csv")
    assert not out.exists()


def test_export_into_a_missing_directory_is_a_clear_error(
    committed: Committed, tmp_path: Path
) -> None:
    out = tmp_path / "no" / "such" / "dir" / "t.parquet"
    res = run_cli("export-table", REF, "flat.csv", "--to", out, repo=committed.root / "repo")
    assert res.returncode in (2, 3, 5), res.describe()
    assert_one_line_error(res, res.returncode, str(out.parent.parent.parent))
