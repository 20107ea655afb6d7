"""The native CSV record counter (rust_ext/src/csv.rs, memchr jumps) against pyarrow's
reader on generated CSVs: quoted values with newlines, doubled quotes, stray quotes in
unquoted values, CRLF and CR line ends, empty lines."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pacsv
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from reprocas.native import core
from reprocas.tabular.inspect import CSV_PARSE

plain = st.text(alphabet='abc x"', min_size=0, max_size=12).filter(lambda s: not s.startswith('"'))
quoted = st.text(alphabet='ab,\n\r"', min_size=0, max_size=12).map(
    lambda s: '"' + s.replace('"', '""') + '"'
)
field = st.one_of(plain, quoted)


@settings(
    max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    rows=st.lists(st.tuples(field, field, field), min_size=0, max_size=40),
    ending=st.sampled_from(["\n", "\r\n", "\r"]),
    blank_every=st.integers(min_value=0, max_value=5),
    final_newline=st.booleans(),
)
def test_records_are_what_pyarrow_reads(
    tmp_path: Path,
    rows: list[tuple[str, str, str]],
    ending: str,
    blank_every: int,
    final_newline: bool,
) -> None:
    lines = ["a,b,c"]
    for i, r in enumerate(rows):
        if blank_every and i % blank_every == 0:
            lines.append("")
        lines.append(",".join(r))
    text = ending.join(lines) + (ending if final_newline else "")
    path = tmp_path / "t.csv"
    path.write_bytes(text.encode())
    try:
        table = pacsv.read_csv(
            str(path),
            parse_options=CSV_PARSE,
            convert_options=pacsv.ConvertOptions(column_types=dict.fromkeys("abc", pa.string())),
        )
    except pa.ArrowInvalid:
        return  # not a CSV pyarrow reads (a row of one empty field, for one): no claim
    assert core.count_csv_records(path) == table.num_rows + 1
