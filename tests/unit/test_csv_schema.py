"""csv_schema reads two blocks of a CSV, not the whole file: the schema it gives must be
the one pyarrow's streaming reader infers from the whole file, wherever the types of
a column change and however rows straddle the first block's end."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pacsv
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from reprocas.tabular.inspect import _SCHEMA_PREFIX, CSV_PARSE, _block_holds_a_row, csv_schema

BLOCK = pacsv.ReadOptions().block_size


def whole_file_schema(path: Path) -> pa.Schema:
    reader = pacsv.open_csv(str(path), parse_options=CSV_PARSE)
    try:
        return reader.schema
    finally:
        reader.close()


def schema_or_error(read: Callable[[Path], pa.Schema], path: Path) -> object:
    """The schema ``read`` gives, or the type of the error it raises."""
    try:
        return read(path)
    except pa.ArrowInvalid as exc:
        return type(exc)


def write_rows(path: Path, first: str, later: str, switch_at: int, total: int) -> None:
    """``id,value,note`` rows: ``value`` is ``first`` until byte ``switch_at``, then
    ``later``; every 7th note is quoted and holds a newline."""
    with open(path, "w", newline="") as f:
        f.write("id,value,note\n")
        n = 0
        written = len("id,value,note\n")
        while written < total:
            kind = first if written < switch_at else later
            value = {"int": str(n % 1000), "float": f"{n % 1000}.5", "text": f"x{n}"}[kind]
            note = f'"line {n}\nnext"' if n % 7 == 0 else f"plain {n}"
            row = f"{n},{value},{note}\n"
            f.write(row)
            written += len(row)
            n += 1


def test_the_prefix_is_two_blocks() -> None:
    assert _SCHEMA_PREFIX == 2 * BLOCK


@pytest.mark.parametrize(
    "switch_at",
    [BLOCK // 2, BLOCK - 40, BLOCK, BLOCK + 40, BLOCK + BLOCK // 2, 2 * BLOCK + 10, 10 * BLOCK],
)
@pytest.mark.parametrize("later", ["float", "text"])
def test_a_type_change_anywhere_gives_the_whole_files_schema(
    tmp_path: Path, switch_at: int, later: str
) -> None:
    path = tmp_path / "t.csv"
    write_rows(path, "int", later, switch_at, 3 * BLOCK)
    assert csv_schema(str(path)) == whole_file_schema(path)
    assert csv_schema(path) == whole_file_schema(path)


@pytest.mark.parametrize(
    "size", [100, BLOCK - 1, BLOCK, BLOCK + 1, _SCHEMA_PREFIX, _SCHEMA_PREFIX + 1]
)
def test_files_around_the_prefix_length(tmp_path: Path, size: int) -> None:
    path = tmp_path / "t.csv"
    write_rows(path, "int", "text", size // 2, size)
    assert csv_schema(str(path)) == whole_file_schema(path)


def test_an_open_file_is_read_from_where_it_is(tmp_path: Path) -> None:
    path = tmp_path / "t.csv"
    write_rows(path, "int", "float", BLOCK + 3, 3 * BLOCK)
    with pa.OSFile(str(path)) as f:
        assert csv_schema(f) == whole_file_schema(path)


def test_a_first_row_longer_than_a_block_fails_as_the_whole_file_does(tmp_path: Path) -> None:
    path = tmp_path / "t.csv"
    path.write_text('a,b\n1,"' + "y" * (2 * BLOCK + 100) + '"\n2,z\n')
    with pytest.raises(pa.ArrowInvalid) as whole:
        whole_file_schema(path)
    with pytest.raises(pa.ArrowInvalid) as prefix:
        csv_schema(str(path))
    assert type(prefix.value) is type(whole.value)


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    switch=st.integers(min_value=BLOCK - 4096, max_value=BLOCK + 4096),
    later=st.sampled_from(["float", "text"]),
    total=st.integers(min_value=BLOCK - 1024, max_value=_SCHEMA_PREFIX + 4096),
)
def test_property_prefix_schema_equals_whole_file_schema(
    tmp_path: Path, switch: int, later: str, total: int
) -> None:
    path = tmp_path / "p.csv"
    write_rows(path, "int", later, switch, total)
    assert csv_schema(str(path)) == whole_file_schema(path)


@pytest.mark.parametrize("long_row", [BLOCK // 2, BLOCK + 10, 2 * BLOCK - 10, 2 * BLOCK + 10])
@pytest.mark.parametrize("before", [0, 100])
@pytest.mark.parametrize("blank_lines", [0, 3])
def test_long_first_rows_give_what_the_whole_file_gives(
    tmp_path: Path, long_row: int, before: int, blank_lines: int
) -> None:
    """A first row that does not end in the first block makes the reader read on."""
    path = tmp_path / "t.csv"
    body = "a,b\n" + "\n" * blank_lines + "1,x\n" * before
    body += '1,"' + "y" * long_row + '"\n2,z\n' + "3,w\n" * (BLOCK // 2)
    path.write_text(body)
    assert schema_or_error(csv_schema, path) == schema_or_error(whole_file_schema, path)


def test_quoted_newlines_and_doubled_quotes_in_the_header_row(tmp_path: Path) -> None:
    path = tmp_path / "t.csv"
    head = '"multi\nline ""name""",b\n'
    path.write_text(head + "".join(f"{i},{i}.5\n" for i in range(300_000)))
    assert csv_schema(str(path)) == whole_file_schema(path)


@pytest.mark.parametrize(
    "head",
    [
        'a,b\nx"y,"z\nw"\n',  # a quote inside a plain value does not open quoting
        'a,b\n"x""y\nz",2\n',
        "a,b\r1,2\r",
        "a,b\r\n\r\n1,2\r\n",
        "a,b\n\n\n1,2\n",
        '"a\nb",c\n1,2\n',
    ],
)
@pytest.mark.parametrize("long_row", [10, BLOCK + 10])
def test_quoting_rules_of_the_first_rows(tmp_path: Path, head: str, long_row: int) -> None:
    path = tmp_path / "t.csv"
    path.write_text(head + '3,"' + "y\n" * (long_row // 2) + '"\n' + "4,w\n" * (BLOCK // 2))
    assert schema_or_error(csv_schema, path) == schema_or_error(whole_file_schema, path)


def test_an_ordinary_csv_is_read_two_blocks_only(tmp_path: Path) -> None:
    """The point of the prefix: the reader does not go through the file."""
    path = tmp_path / "t.csv"
    write_rows(path, "int", "float", 5 * BLOCK, 8 * BLOCK)
    with pa.OSFile(str(path)) as f:
        assert csv_schema(f) == whole_file_schema(path)
        assert f.tell() == _SCHEMA_PREFIX


@pytest.mark.parametrize(
    ("block", "holds"),
    [
        (b"a,b\n1,2\n", True),
        (b"a,b\n1,2", False),
        (b"a,b\n\n1,2\n", True),
        (b'a,b\n1,"x\ny"\n', True),
        (b'a,b\n1,"x\ny\n', False),
        (b'a,"b\n1,2\n', False),
        (b'a,b\nx"y,"z\nw"\n', True),
        (b"a,b\r1,2\r", True),
    ],
)
def test_which_first_blocks_hold_a_row(block: bytes, holds: bool) -> None:
    assert _block_holds_a_row(block) is holds
