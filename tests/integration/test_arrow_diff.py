"""``reprocas diff``: files, table schemas and row counts, and rows by key.

Row counts are checked against a brute-force diff - plain Python dicts keyed by the key,
built from the tables pyarrow reads from the committed files - on generated versions
with known appends, deletions, insertions, moved rows and scattered edits (null to
value and value to null included), for Parquet and CSV.
"""

from __future__ import annotations

import datetime as dt
import io
import json
import os
import random
import traceback
from collections.abc import Iterator
from contextlib import redirect_stderr, redirect_stdout
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest

import reprocas
from reprocas.cli.main import run
from reprocas.errors import PathNotInVersionError, UsageError
from tests.integration._helpers import (
    CliResult,
    assert_ok,
    assert_one_line_error,
    run_cli,
)

SEED = 4242
EDITABLE = ("name", "score", "qty", "flag", "when")
WORDS = ("amber", "birch", "cedar", "delta", "ember", "fjord", "grove", "heath")
T0 = dt.datetime(2024, 1, 1)

Row = dict[str, Any]


def cli(*args: str | os.PathLike[str], repo: Path) -> CliResult:
    """``reprocas --repo REPO ARGS`` run in this process (faster than a process per call;
    ``run_cli`` is used where the real process matters). An exception escaping ``run``
    is recorded as the traceback a process would print, with exit code 1."""
    argv = ["--repo", str(repo), *(os.fspath(a) for a in args)]
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        try:
            code = run(argv)
        except Exception:
            traceback.print_exc()
            code = 1
    return CliResult(tuple(argv), code, out.getvalue().encode(), err.getvalue().encode())


# --- generating versions with known changes ---------------------------------------------


def _value(rng: random.Random, col: str) -> Any:
    if col == "name":
        return f"{rng.choice(WORDS)}-{rng.randrange(1000)}"
    if col == "score":
        return rng.randrange(-40_000, 40_000) / 4 + 0.25  # never integral: stays float in CSV
    if col == "qty":
        return rng.randrange(0, 10_000)
    if col == "flag":
        return rng.random() < 0.5
    if col == "when":
        return T0 + dt.timedelta(seconds=rng.randrange(10**8))
    raise AssertionError(col)


def _row(rng: random.Random, key: int) -> Row:
    row: Row = {"id": key}
    for col in EDITABLE:
        row[col] = None if rng.random() < 0.1 else _value(rng, col)
    return row


SCHEMA = pa.schema(
    [
        ("id", pa.int64()),
        ("name", pa.string()),
        ("score", pa.float64()),
        ("qty", pa.int64()),
        ("flag", pa.bool_()),
        ("when", pa.timestamp("s")),
    ]
)


@dataclass
class Truth:
    """What the generator did: the changes a correct diff must find."""

    added: set[int] = field(default_factory=set)
    removed: set[int] = field(default_factory=set)
    changed: dict[int, set[str]] = field(default_factory=dict)


def make_versions(
    n: int, seed: int, *, shuffle: bool = False
) -> tuple[list[Row], list[Row], Truth]:
    """Version A (``n`` rows, ids even and ascending) and version B: A with scattered
    deletions, scattered edits (1-3 columns each; some null to value, some value to
    null), rows inserted at scattered positions (odd ids) and rows appended (ids past
    the end). ``shuffle`` also moves rows around in B (which changes nothing)."""
    rng = random.Random(seed)
    a = [_row(rng, 2 * i) for i in range(n)]
    truth = Truth()
    b = [dict(r) for r in a]

    # Scattered edits: every edit really changes the value.
    for idx in rng.sample(range(n), n // 60):
        row = b[idx]
        cols = rng.sample(EDITABLE, rng.randint(1, 3))
        for col in cols:
            old = row[col]
            if old is None:
                new = _value(rng, col)  # null -> value
            elif rng.random() < 0.25:
                new = None  # value -> null
            else:
                new = _value(rng, col)
                while new == old:
                    new = _value(rng, col)
            row[col] = new
        truth.changed[row["id"]] = set(cols)

    # Scattered deletions (of rows not edited).
    unedited = [i for i in range(n) if b[i]["id"] not in truth.changed]
    gone = set(rng.sample(unedited, n // 80))
    truth.removed = {b[i]["id"] for i in gone}
    b = [r for i, r in enumerate(b) if i not in gone]

    # Insertions at scattered positions, with new (odd) ids.
    for _ in range(n // 100):
        key = 2 * rng.randrange(n) + 1
        if key in truth.added:
            continue
        truth.added.add(key)
        b.insert(rng.randrange(len(b) + 1), _row(rng, key))

    # Appends at the end.
    for j in range(n // 70):
        key = 2 * n + 2 * j
        truth.added.add(key)
        b.append(_row(rng, key))

    if shuffle:
        rng.shuffle(b)
    return a, b, truth


def to_table(rows: list[Row], schema: pa.Schema = SCHEMA) -> pa.Table:
    return pa.Table.from_pylist(rows, schema=schema)


def write(table: pa.Table, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix == ".csv":
        pacsv.write_csv(table, path)
    else:
        pq.write_table(table, path, row_group_size=4000)


def read_local(path: Path) -> pa.Table:
    return pacsv.read_csv(path) if path.suffix == ".csv" else pq.read_table(path)


# --- the brute-force oracle ----------------------------------------------------------------


@dataclass
class Brute:
    added: set[tuple[Any, ...]]
    removed: set[tuple[Any, ...]]
    changed: dict[tuple[Any, ...], dict[str, tuple[Any, Any]]]

    @property
    def columns(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for cols in self.changed.values():
            for c in cols:
                out[c] = out.get(c, 0) + 1
        return out

    def rows_json(self) -> dict[str, Any]:
        return {
            "added": len(self.added),
            "removed": len(self.removed),
            "changed": len(self.changed),
            "columns": self.columns,
        }


def brute_force(a: pa.Table, b: pa.Table, key: list[str]) -> Brute:
    """Row diff by key of two tables, with Python dicts and ==."""

    def by_key(t: pa.Table) -> dict[tuple[Any, ...], Row]:
        out: dict[tuple[Any, ...], Row] = {}
        for row in t.to_pylist():
            k = tuple(row[c] for c in key)
            assert k not in out, f"the oracle needs a unique key; {k} repeats"
            out[k] = row
        return out

    ra, rb = by_key(a), by_key(b)
    common = [c for c in a.column_names if c in b.column_names and c not in key]
    changed: dict[tuple[Any, ...], dict[str, tuple[Any, Any]]] = {}
    for k in ra.keys() & rb.keys():
        diff = {c: (ra[k][c], rb[k][c]) for c in common if ra[k][c] != rb[k][c]}
        if diff:
            changed[k] = diff
    return Brute(set(rb) - set(ra), set(ra) - set(rb), changed)


# --- fixtures ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Series:
    """Two versions of a dataset holding the same changes as Parquet and as CSV."""

    repo_path: Path
    src_a: Path
    src_b: Path
    truth: Truth


@pytest.fixture(scope="module")
def series(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Series]:
    root = tmp_path_factory.mktemp("arrow-diff")
    rows_a, rows_b, truth = make_versions(12_000, SEED)
    # The same changes, but B's rows in a different order.
    moved_a, moved_b, moved_truth = make_versions(3000, SEED + 1, shuffle=True)
    src_a, src_b = root / "a", root / "b"
    for src, rows, moved in ((src_a, rows_a, moved_a), (src_b, rows_b, moved_b)):
        write(to_table(rows), src / "tables" / "enc.parquet")
        write(to_table(rows), src / "tables" / "enc.csv")
        write(to_table(moved), src / "tables" / "moved.parquet")
    # Files that are not tables, and files that come and go.
    (src_a / "readme.txt").write_text("version a\n")
    (src_b / "readme.txt").write_text("version b, longer\n")
    (src_a / "same.bin").write_bytes(b"\x00\x01" * 500)
    (src_b / "same.bin").write_bytes(b"\x00\x01" * 500)
    (src_a / "old.csv").write_text("k,v\n1,2\n")
    (src_b / "new.parquet").write_bytes(b"")
    pq.write_table(to_table(rows_a[:10]), src_b / "added.parquet")
    # A table suffix that does not parse, changed.
    (src_a / "broken.csv").write_bytes(b"a,b\n1,2,3\n")
    (src_b / "broken.csv").write_bytes(b"a,b\n1,2,3,4\n")
    repo_path = root / "repo"
    with reprocas.Repo.init(repo_path) as repo:
        assert repo.commit(src_a, "enc").ref == "enc@v1"
        assert repo.commit(src_b, "enc").ref == "enc@v2"
    assert moved_truth.changed
    yield Series(repo_path, src_a, src_b, truth)


_BRUTE: dict[tuple[Path, str], Brute] = {}


def brute_of(series: Series, name: str) -> Brute:
    """The brute-force diff of one table of the series (computed once)."""
    k = (series.repo_path, name)
    if k not in _BRUTE:
        _BRUTE[k] = brute_force(
            read_local(series.src_a / name), read_local(series.src_b / name), ["id"]
        )
    return _BRUTE[k]


def diff_json(series: Series, *args: str) -> dict[str, Any]:
    res = assert_ok(cli("diff", "enc@v1", "enc@v2", *args, "--json", repo=series.repo_path))
    out: dict[str, Any] = res.json()
    return out


def api_diff(series: Series, **kw: Any) -> dict[str, Any]:
    with reprocas.Repo.open(series.repo_path) as repo:
        out: dict[str, Any] = repo.diff("enc@v1", "enc@v2", **kw).to_json()
    return out


# --- rows by key ---------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["tables/enc.parquet", "tables/enc.csv", "tables/moved.parquet"])
def test_row_counts_equal_a_brute_force_diff(series: Series, name: str) -> None:
    a = read_local(series.src_a / name)
    b = read_local(series.src_b / name)
    brute = brute_of(series, name)
    if name.endswith("enc.parquet"):
        # The oracle agrees with what the generator did.
        t = series.truth
        assert {k for (k,) in brute.added} == t.added
        assert {k for (k,) in brute.removed} == t.removed
        assert {k: set(v) for (k,), v in brute.changed.items()} == t.changed
    assert brute.added and brute.removed and brute.changed
    got = api_diff(series, path=name, key=["id"], limit=5)["files"][name]
    rows = got["rows"]
    assert {k: rows[k] for k in ("added", "removed", "changed", "columns")} == brute.rows_json()
    assert got["row_counts"] == [a.num_rows, b.num_rows]
    assert got["status"] == "changed"


def test_every_edit_kind_is_present_in_the_generated_versions(series: Series) -> None:
    """null -> value and value -> null edits exist in several columns, in both formats."""
    for name in ("tables/enc.parquet", "tables/enc.csv"):
        brute = brute_of(series, name)
        null_to_value = {c for d in brute.changed.values() for c, (x, y) in d.items() if x is None}
        value_to_null = {c for d in brute.changed.values() for c, (x, y) in d.items() if y is None}
        assert len(null_to_value) >= 3, null_to_value
        assert len(value_to_null) >= 3, value_to_null
        assert len(brute.columns) == len(EDITABLE)


@pytest.mark.parametrize("name", ["tables/enc.parquet", "tables/enc.csv"])
def test_cli_json_matches_the_api_and_the_brute_force(series: Series, name: str) -> None:
    brute = brute_of(series, name)
    out = diff_json(series, "--path", name, "--key", "id")
    assert out["a"] == "enc@v1" and out["b"] == "enc@v2"
    assert list(out["files"]) == [name]
    f = out["files"][name]
    assert {k: f["rows"][k] for k in ("added", "removed", "changed", "columns")} == (
        brute.rows_json()
    )
    assert f["bytes"] == [
        (series.src_a / name).stat().st_size,
        (series.src_b / name).stat().st_size,
    ]
    assert f["schema"] == {"added": [], "removed": [], "retyped": {}}


def _jsonish(v: Any) -> Any:
    return v if v is None or isinstance(v, bool | int | float | str) else str(v)


@pytest.mark.parametrize("limit", [0, 3])
@pytest.mark.parametrize("name", ["tables/enc.parquet", "tables/enc.csv"])
def test_samples_are_real_changed_rows_and_at_most_limit(
    series: Series, name: str, limit: int
) -> None:
    brute = brute_of(series, name)
    rows = api_diff(series, path=name, key=["id"], limit=limit)["files"][name]["rows"]
    samples = rows["samples"]
    assert len(samples) == min(limit, len(brute.changed))
    seen = set()
    for s in samples:
        k = (s["key"]["id"],)
        assert k in brute.changed, f"sample {s} is not a changed row"
        assert k not in seen
        seen.add(k)
        want = {c: [_jsonish(x), _jsonish(y)] for c, (x, y) in brute.changed[k].items()}
        assert set(s["changes"]) == set(want), s
        for c, (x, y) in s["changes"].items():
            if c != "when":  # timestamps are shown as text; compare the rest exactly
                assert [x, y] == want[c], (k, c)
    # The CLI's --limit is the same knob.
    out = diff_json(series, "--path", name, "--key", "id", "--limit", str(limit))
    assert len(out["files"][name]["rows"]["samples"]) == len(samples)


def test_composite_keys(repo: reprocas.Repo, tmp_path: Path, repo_path: Path) -> None:
    """(site, visit) is unique, site alone is not."""
    rng = random.Random(SEED + 7)
    sites = ["AMS", "BER", "CPH", "DUB"]
    a: list[Row] = [
        {"site": s, "visit": v, "value": rng.randrange(100), "note": rng.choice(WORDS)}
        for s in sites
        for v in range(300)
    ]
    b = [dict(r) for r in a]
    for r in rng.sample(b, 40):
        r["value"] = r["value"] + 1000
    b = [r for r in b if not (r["site"] == "BER" and r["visit"] % 50 == 0)]
    b += [{"site": "EDI", "visit": v, "value": 1, "note": "new"} for v in range(7)]
    b += [{"site": "AMS", "visit": 300 + v, "value": 1, "note": "new"} for v in range(3)]
    for name, rows in (("v1", a), ("v2", b)):
        d = tmp_path / name
        write(pa.Table.from_pylist(rows), d / "visits.parquet")
        write(pa.Table.from_pylist(rows), d / "visits.csv")
        repo.commit(d, "visits")
    for fname in ("visits.parquet", "visits.csv"):
        ta, tb = read_local(tmp_path / "v1" / fname), read_local(tmp_path / "v2" / fname)
        brute = brute_force(ta, tb, ["site", "visit"])
        assert brute.rows_json() == {
            "added": 10,
            "removed": 6,
            "changed": 40,
            "columns": {"value": 40},
        }
        res = assert_ok(
            cli(
                "diff", "visits@v1", "visits@v2", "--path", fname, "--key", "site,visit",
                "--json", repo=repo_path,
            )
        )  # fmt: skip
        rows = res.json()["files"][fname]["rows"]
        assert {k: rows[k] for k in ("added", "removed", "changed", "columns")} == (
            brute.rows_json()
        )
        for s in rows["samples"]:
            assert set(s["key"]) == {"site", "visit"}
            assert (s["key"]["site"], s["key"]["visit"]) in brute.changed
        # One column of the composite key alone is not unique: a clear error.
        res = cli(
            "diff", "visits@v1", "visits@v2", "--path", fname, "--key", "site", repo=repo_path
        )
        line = assert_one_line_error(res, 2, "site", "unique")
        assert any(s in line for s in sites), f"no example duplicate in: {line}"


# --- bad keys ------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["tables/enc.parquet", "tables/enc.csv"])
def test_a_missing_key_column_is_a_clear_error(series: Series, name: str) -> None:
    res = run_cli(
        "diff", "enc@v1", "enc@v2", "--path", name, "--key", "patient", repo=series.repo_path
    )
    assert_one_line_error(res, 2, "patient")
    res = cli(
        "diff", "enc@v1", "enc@v2", "--path", name, "--key", "id,patient", "--json",
        repo=series.repo_path,
    )  # fmt: skip
    assert_one_line_error(res, 2, "patient")
    assert res.stdout == b""
    with pytest.raises(UsageError, match="patient"), reprocas.Repo.open(series.repo_path) as r:
        r.diff("enc@v1", "enc@v2", path=name, key=["patient"])


def _commit_pair(
    repo: reprocas.Repo, tmp_path: Path, dataset: str, a: pa.Table, b: pa.Table, name: str
) -> None:
    for label, t in (("a", a), ("b", b)):
        d = tmp_path / f"{dataset}-{label}"
        write(t, d / name)
        repo.commit(d, dataset)


@pytest.mark.parametrize("name", ["t.parquet", "t.csv"])
def test_a_key_missing_from_one_version_is_a_clear_error(
    repo: reprocas.Repo, repo_path: Path, tmp_path: Path, name: str
) -> None:
    a = pa.table({"id": [1, 2, 3], "v": [1, 2, 3]})
    b = pa.table({"ident": [1, 2, 3], "v": [1, 2, 4]})
    _commit_pair(repo, tmp_path, "k", a, b, name)
    res = cli("diff", "k@v1", "k@v2", "--key", "id", repo=repo_path)
    line = assert_one_line_error(res, 2, "id")
    assert "k@v2" in line, "the error should say which version lacks the key"


@pytest.mark.parametrize("name", ["t.parquet", "t.csv"])
def test_a_non_unique_key_names_the_column_and_a_duplicate(
    repo: reprocas.Repo, repo_path: Path, tmp_path: Path, name: str
) -> None:
    a = pa.table({"id": [1, 2, 3, 4], "v": [1, 2, 3, 4]})
    b = pa.table({"id": [1, 2, 31337, 31337, 5], "v": [1, 2, 3, 4, 5]})
    _commit_pair(repo, tmp_path, "dup", a, b, name)
    res = cli("diff", "dup@v1", "dup@v2", "--key", "id", repo=repo_path)
    assert_one_line_error(res, 2, "id", "31337", "unique")
    res = cli("diff", "dup@v1", "dup@v2", "--key", "id", "--json", repo=repo_path)
    assert_one_line_error(res, 2, "id", "31337")


@pytest.mark.parametrize("name", ["t.parquet", "t.csv"])
def test_a_key_whose_type_changed_is_not_a_crash(
    repo: reprocas.Repo, repo_path: Path, tmp_path: Path, name: str
) -> None:
    """v1 keys are integers, v2 keys are text ("A1", ...): no traceback - either rows
    are compared or a clear one-line error names the key."""
    a = pa.table({"id": [1, 2, 3], "v": [1, 2, 3]})
    b = pa.table({"id": ["A1", "A2", "3"], "v": [1, 2, 3]})
    _commit_pair(repo, tmp_path, "retyped", a, b, name)
    res = run_cli("diff", "retyped@v1", "retyped@v2", "--key", "id", "--json", repo=repo_path)
    assert "Traceback" not in res.err, res.describe()
    if res.returncode != 0:
        assert_one_line_error(res, 2, "id")


# --- files, schemas, non-tables ------------------------------------------------------------------


def test_file_statuses_and_bytes(series: Series) -> None:
    out = diff_json(series)
    files = out["files"]

    def size(src: Path, p: str) -> int:
        return (src / p).stat().st_size

    assert files["added.parquet"]["status"] == "added"
    assert files["added.parquet"]["bytes"] == [None, size(series.src_b, "added.parquet")]
    assert files["new.parquet"]["status"] == "added"
    assert files["old.csv"]["status"] == "removed"
    assert files["old.csv"]["bytes"] == [size(series.src_a, "old.csv"), None]
    assert files["same.bin"]["status"] == "same"
    assert files["same.bin"]["bytes"] == [1000, 1000]
    assert files["readme.txt"]["status"] == "changed"
    assert files["readme.txt"]["bytes"] == [
        size(series.src_a, "readme.txt"),
        size(series.src_b, "readme.txt"),
    ]
    for p in ("tables/enc.parquet", "tables/enc.csv", "tables/moved.parquet"):
        assert files[p]["status"] == "changed"
        assert "rows" not in files[p], "rows only with --key"
        assert files[p]["row_counts"] == [
            read_local(series.src_a / p).num_rows,
            read_local(series.src_b / p).num_rows,
        ]
    want = {
        "added.parquet", "new.parquet", "old.csv", "same.bin", "readme.txt", "broken.csv",
        "tables/enc.parquet", "tables/enc.csv", "tables/moved.parquet",
    }  # fmt: skip
    assert set(files) == want
    assert {f["status"] for f in files.values()} == {"added", "removed", "changed", "same"}


def test_a_file_that_is_not_a_table_is_diffed_by_bytes_and_says_so(series: Series) -> None:
    for args in ((), ("--key", "id")):
        files = diff_json(series, *args)["files"]
        for p in ("readme.txt", "broken.csv"):
            f = files[p]
            assert f["status"] == "changed"
            assert "bytes" in f.get("note", ""), f
            assert "rows" not in f and "schema" not in f
    # The human form says so too.
    res = assert_ok(cli("diff", "enc@v1", "enc@v2", repo=series.repo_path))
    line = next(ln for ln in res.out.splitlines() if "readme.txt" in ln)
    after = res.out.split(line, 1)[1].lstrip("\n").splitlines()[0]
    assert "bytes" in after, res.out


def test_a_version_diffed_with_itself_is_all_same(series: Series) -> None:
    res = assert_ok(cli("diff", "enc@v2", "enc@v2", "--key", "id", "--json", repo=series.repo_path))
    files = res.json()["files"]
    assert {f["status"] for f in files.values()} == {"same"}
    enc = files["tables/enc.parquet"]["rows"]
    assert (enc["added"], enc["removed"], enc["changed"]) == (0, 0, 0)


def test_schema_changes_are_reported(repo: reprocas.Repo, repo_path: Path, tmp_path: Path) -> None:
    rows_a, rows_b, _ = make_versions(3000, SEED + 3)
    a = to_table(rows_a)
    b = to_table(rows_b)
    # B: drops "flag", adds "extra", and "qty" becomes float64 (same numbers).
    b = b.drop_columns(["flag"]).append_column("extra", pa.array(range(b.num_rows)))
    qty = b.schema.get_field_index("qty")
    b = b.set_column(qty, "qty", b["qty"].cast(pa.float64()))
    for name in ("t.parquet", "t.csv"):
        ta, tb = a, b
        if name == "t.csv":
            # CSV would read 3.0 back as an integer: make the retyped column really text.
            tb = b.set_column(qty, "qty", b["qty"].cast(pa.string()))
            tb = tb.set_column(
                qty,
                "qty",
                pa.array([None if v is None else f"q{v}" for v in tb["qty"].to_pylist()]),
            )
        for label, t in (("a", ta), ("b", tb)):
            write(t, tmp_path / f"s-{label}" / name)
    repo.commit(tmp_path / "s-a", "schema")
    repo.commit(tmp_path / "s-b", "schema")
    out = json.loads(
        assert_ok(
            cli("diff", "schema@v1", "schema@v2", "--key", "id", "--json", repo=repo_path)
        ).stdout
    )
    for name, new_type in (("t.parquet", "double"), ("t.csv", "string")):
        f = out["files"][name]
        assert f["schema"]["added"] == ["extra"]
        assert f["schema"]["removed"] == ["flag"]
        assert f["schema"]["retyped"] == {"qty": ["int64", new_type]}
        local_a = read_local(tmp_path / "s-a" / name)
        local_b = read_local(tmp_path / "s-b" / name)
        assert f["row_counts"] == [local_a.num_rows, local_b.num_rows]
        brute = brute_force(local_a, local_b, ["id"])
        rows = f["rows"]
        assert (rows["added"], rows["removed"]) == (len(brute.added), len(brute.removed))
        # The columns both versions have with the same type are compared exactly.
        for col in ("name", "score", "when"):
            assert rows["columns"].get(col, 0) == brute.columns.get(col, 0), col
        assert "flag" not in rows["columns"] and "extra" not in rows["columns"]
        if name == "t.parquet":
            # int64 -> float64 with the same numbers: only the real edits count.
            assert rows["columns"].get("qty", 0) == brute.columns.get("qty", 0)


def test_nested_columns_are_compared_by_value(
    repo: reprocas.Repo, repo_path: Path, tmp_path: Path
) -> None:
    """Lists, structs and maps: rows whose nested values differ are changed rows."""
    rng = random.Random(SEED + 9)
    n = 500
    a = pa.table(
        {
            "id": pa.array(range(n)),
            "tags": pa.array(
                [[rng.randrange(5) for _ in range(rng.randrange(3))] for _ in range(n)]
            ),
            "pt": pa.array([{"x": rng.randrange(9), "y": rng.choice(WORDS)} for _ in range(n)]),
            "attrs": pa.array(
                [[("k", rng.randrange(3))] for _ in range(n)], pa.map_(pa.string(), pa.int64())
            ),
            "plain": pa.array([rng.randrange(100) for _ in range(n)]),
        }
    )
    rows = a.to_pylist()
    edited = rng.sample(range(n), 30)
    for i in edited[:10]:
        rows[i]["tags"] = [*rows[i]["tags"], 99]
    for i in edited[10:20]:
        rows[i]["pt"] = {"x": 100, "y": rows[i]["pt"]["y"]}
    for i in edited[20:]:
        rows[i]["attrs"] = [("k", 100)]
    b = pa.Table.from_pylist(rows, schema=a.schema)
    _commit_pair(repo, tmp_path, "nested", a, b, "t.parquet")
    res = cli("diff", "nested@v1", "nested@v2", "--key", "id", "--json", repo=repo_path)
    assert res.returncode == 0, res.describe()
    got = res.json()["files"]["t.parquet"]["rows"]
    assert got["changed"] == 30
    assert got["columns"] == {"tags": 10, "pt": 10, "attrs": 10}


def test_human_output_summarises_without_a_traceback(series: Series) -> None:
    res = assert_ok(
        cli("diff", "enc@v1", "enc@v2", "--key", "id", "--limit", "2", repo=series.repo_path)
    )
    t = series.truth
    text = res.out
    assert "enc@v1" in text and "enc@v2" in text
    assert f"{len(t.added)} added, {len(t.removed)} removed, {len(t.changed)} changed" in text
    for status in ("added", "removed", "changed"):
        assert status in text


def test_a_path_restricts_the_diff_and_unknown_paths_and_refs_are_not_found(
    series: Series,
) -> None:
    out = diff_json(series, "--path", "readme.txt")
    assert list(out["files"]) == ["readme.txt"]
    out = diff_json(series, "--path", "tables")
    assert sorted(out["files"]) == ["tables/enc.csv", "tables/enc.parquet", "tables/moved.parquet"]
    # A path in neither version, and an unknown version: not found (4), one line.
    assert_one_line_error(
        cli("diff", "enc@v1", "enc@v2", "--path", "nope.parquet", repo=series.repo_path),
        4,
        "nope.parquet",
    )
    assert_one_line_error(
        cli("diff", "enc@v1", "enc@v9", "--key", "id", repo=series.repo_path), 4, "v9"
    )
    with reprocas.Repo.open(series.repo_path) as r, pytest.raises(PathNotInVersionError):
        r.diff("enc@v1", "enc@v2", path="nope.parquet")


def test_a_path_in_only_one_version(series: Series) -> None:
    """A file that only B has is 'added', not an error."""
    files = diff_json(series, "--path", "added.parquet", "--key", "id")["files"]
    assert list(files) == ["added.parquet"]
    assert files["added.parquet"]["status"] == "added"
    assert files["added.parquet"]["bytes"] == [
        None,
        (series.src_b / "added.parquet").stat().st_size,
    ]
