"""A replay verdict that means what it says (issue 14, item 5): real scripts in a real
git repository, recorded with `reprocas run` and replayed with `reprocas replay`.

`identical` only when nothing differs; `within-tolerance` only when an explicit rule
covers every difference (`--tolerance`, `--allow-differ` on the replay or recorded
with the run, a table compared by value); anything else is `diverged` (exit 10),
naming each file and metric."""

from __future__ import annotations

import json
import math
import sys
import textwrap
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from tests.integration._helpers import assert_ok, assert_one_line_error, verify_ok
from tests.integration._helpers import git as _git
from tests.integration.conftest import Cli

PY = sys.executable
DIVERGED = 10

# The case of the issue: a deterministic accuracy, and a bootstrap confidence interval
# drawn from an unseeded generator, written to a file that is an output.
EVALUATE = textwrap.dedent(
    """
    import json, os, random, statistics
    y = [0, 1, 1, 0, 1, 1, 0, 1, 0, 1] * 5
    pred = [0, 1, 0, 0, 1, 1, 1, 1, 0, 1] * 5
    correct = [float(a == b) for a, b in zip(y, pred)]
    accuracy = statistics.fmean(correct)
    rng = random.Random()  # unseeded: the interval moves from run to run
    boot = sorted(statistics.fmean(rng.choices(correct, k=len(correct))) for _ in range(200))
    os.makedirs("out", exist_ok=True)
    with open("out/ci.json", "w") as f:
        json.dump({"low": boot[5], "high": boot[194], "draws": boot}, f)
    with open("out/predictions.txt", "w") as f:
        f.write(" ".join(map(str, pred)) + "\\n")
    with open("metrics.json", "w") as f:
        json.dump({"accuracy": accuracy}, f)
    """
)

# A log with a timestamp beside a deterministic result.
LOGGED = textwrap.dedent(
    """
    import json, os, time
    os.makedirs("logs", exist_ok=True)
    os.makedirs("out", exist_ok=True)
    with open("logs/run.log", "w") as f:
        f.write(f"started at {time.time_ns()}\\n")
    with open("out/result.txt", "w") as f:
        f.write("42\\n")
    with open("metrics.json", "w") as f:
        json.dump({"answer": 42}, f)
    """
)

# Tables whose cells move by at most 1e-12 relative (so their bytes differ); with
# argument "shuffle", the replays (the second run on) write the rows in another order.
TABLES = textwrap.dedent(
    """
    import os, random, sys
    import pyarrow as pa, pyarrow.csv as csv, pyarrow.parquet as pq
    counter = sys.argv[1]
    n = int(open(counter).read()) + 1 if os.path.exists(counter) else 1
    open(counter, "w").write(str(n))
    rows = 50
    x = [float(i) * (1 + random.uniform(-1e-12, 1e-12)) + 0.5 for i in range(rows)]
    t = pa.table({"id": list(range(rows)), "name": [f"r{i}" for i in range(rows)], "x": x})
    if len(sys.argv) > 2 and sys.argv[2] == "shuffle" and n > 1:
        t = t.take(list(reversed(range(rows))))
    os.makedirs("out", exist_ok=True)
    pq.write_table(t, "out/table.parquet")
    csv.write_csv(t, "out/table.csv")
    """
)

# A metric that moves by 10% on every run after the first (counted outside the tree).
DRIFTING = textwrap.dedent(
    """
    import json, os, sys
    counter = sys.argv[1]
    n = int(open(counter).read()) + 1 if os.path.exists(counter) else 1
    open(counter, "w").write(str(n))
    with open("result.txt", "w") as f:
        f.write("same\\n")
    with open("metrics.json", "w") as f:
        json.dump({"loss": 1.0 if n == 1 else 1.1, "epochs": 3}, f)
    """
)

# Files that come and go: on replays (the second run on) out/b.txt is not written and
# out/extra.txt is.
COMES_AND_GOES = textwrap.dedent(
    """
    import os, sys
    counter = sys.argv[1]
    n = int(open(counter).read()) + 1 if os.path.exists(counter) else 1
    open(counter, "w").write(str(n))
    os.makedirs("out", exist_ok=True)
    open("out/a.txt", "w").write("a\\n")
    open("out/b.txt" if n == 1 else "out/extra.txt", "w").write("b\\n")
    """
)

DETERMINISTIC = textwrap.dedent(
    """
    import json, os
    os.makedirs("out", exist_ok=True)
    with open("out/model.txt", "w") as f:
        f.write("weights 1 2 3\\n")
    with open("metrics.json", "w") as f:
        json.dump({"score": 0.75, "curve": [1.0, 0.5, 0.25]}, f)
    """
)


@pytest.fixture
def project(tmp_path: Path, cli: Cli) -> Path:
    """A git repository with the scripts committed, and an empty reprocas repository."""
    proj = tmp_path / "proj"
    proj.mkdir()
    scripts = {
        "evaluate.py": EVALUATE,
        "logged.py": LOGGED,
        "tables.py": TABLES,
        "drifting.py": DRIFTING,
        "comes_and_goes.py": COMES_AND_GOES,
        "deterministic.py": DETERMINISTIC,
    }
    for name, text in scripts.items():
        (proj / name).write_text(text)
    (proj / ".gitignore").write_text("out/\nlogs/\nmetrics.json\nresult.txt\n")
    _git(proj, "init", "-q")
    _git(proj, "add", "-A")
    _git(proj, "commit", "-q", "-m", "scripts")
    assert_ok(cli("init"))
    return proj


def _run(cli: Cli, cwd: Path, *args: str | Path) -> Any:
    res = cli("run", "--json", "--env", "none", *args, cwd=cwd)
    assert_ok(res)
    return json.loads(res.stdout)


def _replay(cli: Cli, *args: str | Path, code: int = 0) -> Any:
    res = cli("replay", "--json", *args)
    assert res.returncode == code, res.describe()
    assert "Traceback" not in res.err, res.describe()
    return json.loads(res.stdout)


def _uncovered(r: Any) -> list[str]:
    return [d.get("path") or d.get("metric") or d["kind"] for d in r["differences"]
            if d["covered_by"] is None]  # fmt: skip


def test_an_unseeded_interval_file_that_changed_diverges(cli: Cli, project: Path) -> None:
    args = ["-n", "evaluate", "-o", "out", "--metrics", "metrics.json"]
    orig = _run(cli, project, *args, "--", PY, "evaluate.py")
    assert orig["metrics"] == {"accuracy": 0.8}
    r = _replay(cli, "evaluate", code=DIVERGED)
    assert r["verdict"] == "diverged"
    # the metric reproduced exactly (not a difference); the interval file did not, and
    # no metric vouches for it
    [d] = r["differences"]
    assert d["kind"] == "output" and d["path"] == "out/ci.json" and d["status"] == "changed"
    assert d["covered_by"] is None and d["original"] != d["replay"]
    assert r["run"]["verdict"] == "diverged" and r["run"]["metrics"] == {"accuracy": 0.8}
    # people see the file named, and that no rule covered it
    res = cli("replay", "evaluate#1")
    assert res.returncode == DIVERGED, res.describe()
    assert "output out/ci.json: changed (not covered)" in res.err
    assert "verdict: diverged" in res.err

    # --allow-differ names the file that may differ: within-tolerance, saying why
    ok = _replay(cli, "evaluate#1", "--allow-differ", "out/ci.json")
    assert ok["verdict"] == "within-tolerance"
    [d] = ok["differences"]
    assert d["path"] == "out/ci.json" and d["covered_by"] == "--allow-differ out/ci.json"
    assert ok["rules"]["allow_differ"] == ["out/ci.json"]
    # a glob that matches something else covers nothing
    other = _replay(cli, "evaluate#1", "--allow-differ", "out/*.txt", code=DIVERGED)
    assert _uncovered(other) == ["out/ci.json"]
    runs = assert_ok(cli("runs", "--json")).json()
    assert [x["verdict"] for x in runs] == [
        None,
        "diverged",
        "diverged",
        "within-tolerance",
        "diverged",
    ]


def test_a_rule_recorded_with_the_run_is_honoured(cli: Cli, project: Path, repo_path: Path) -> None:
    args = ["-n", "logged", "-o", "logs", "-o", "out", "--metrics", "metrics.json"]
    orig = _run(cli, project, *args, "--allow-differ", "logs/*", "--", PY, "logged.py")
    assert orig["status"] == "ok"
    r = _replay(cli, "logged")
    assert r["verdict"] == "within-tolerance"
    [d] = r["differences"]
    assert d["path"] == "logs/run.log" and d["covered_by"] == "recorded --allow-differ logs/*"
    assert r["rules"]["recorded_allow_differ"] == ["logs/*"] and r["rules"]["allow_differ"] == []
    # the replay carries the outputs' rule: a replay of the replay honours it too
    again = _replay(cli, "logged#2")
    assert again["verdict"] == "within-tolerance"
    assert again["differences"][0]["covered_by"] == "recorded --allow-differ logs/*"
    # the same script recorded without the rule diverges on its log
    _run(cli, project, *[a if a != "logged" else "bare" for a in args], "--", PY, "logged.py")
    bare = _replay(cli, "bare", code=DIVERGED)
    assert _uncovered(bare) == ["logs/run.log"]
    # a bad glob is refused before anything runs
    before = len(assert_ok(cli("runs", "--json")).json())
    for bad in ("/abs/*", "../up", ""):
        res = cli("run", "-n", "x", "--env", "none", "--allow-differ", bad, "--", PY, "-c", "1",
                  cwd=project)  # fmt: skip
        assert_one_line_error(res, 2, "--allow-differ")
        assert_one_line_error(cli("replay", "logged#1", "--allow-differ", bad), 2, "--allow-differ")
    assert len(assert_ok(cli("runs", "--json")).json()) == before
    verify_ok(repo_path)


def test_tables_compared_by_value(cli: Cli, project: Path, tmp_path: Path) -> None:
    counter = tmp_path / "tables.count"
    _run(cli, project, "-n", "tables", "-o", "out", "--", PY, "tables.py", counter)
    # the bytes moved: without a rule, both tables diverge
    bare = _replay(cli, "tables", code=DIVERGED)
    assert _uncovered(bare) == ["out/table.csv", "out/table.parquet"]
    # compared by value: same schema, same rows in order, cells within 1e-9
    r = _replay(cli, "tables#1", "--compare-table", "out/*", "--table-tolerance", "1e-9")
    assert r["verdict"] == "within-tolerance", r["differences"]
    by_path = {d["path"]: d for d in r["differences"]}
    assert set(by_path) == {"out/table.csv", "out/table.parquet"}
    for d in by_path.values():
        assert d["covered_by"] == "--compare-table out/*"
        assert d["table"]["equal"] is True and d["table"]["rows"] == 50
        assert 0 < d["table"]["max_rel_diff"] <= 1e-9
    # --table-tolerance alone compares every table output by value
    alone = _replay(cli, "tables#1", "--table-tolerance", "1e-9")
    assert alone["verdict"] == "within-tolerance"
    assert {d["covered_by"] for d in alone["differences"]} == {"--table-tolerance 1e-09"}
    # a tolerance tighter than the noise: the cells differ, named with the column
    tight = _replay(cli, "tables#1", "--compare-table", "out/*.parquet",
                    "--table-tolerance", "0", code=DIVERGED)  # fmt: skip
    d = {d["path"]: d for d in tight["differences"]}["out/table.parquet"]
    assert d["covered_by"] is None and d["table"]["column"] == "x"
    assert "beyond tolerance" in d["table"]["reason"]


def test_a_table_with_its_rows_in_another_order_diverges(
    cli: Cli, project: Path, tmp_path: Path
) -> None:
    counter = tmp_path / "shuffle.count"
    _run(cli, project, "-n", "shuffled", "-o", "out", "--", PY, "tables.py", counter, "shuffle")
    r = _replay(cli, "shuffled", "--compare-table", "out/*", "--table-tolerance", "1e-6",
                code=DIVERGED)  # fmt: skip
    for d in r["differences"]:
        assert d["covered_by"] is None and d["table"]["equal"] is False
        assert d["table"]["column"] == "id"
    res = cli("replay", "shuffled#1", "--compare-table", "out/table.csv")
    assert res.returncode == DIVERGED, res.describe()
    assert "output out/table.csv: changed (not covered; column id differs" in res.err


def test_a_metric_beyond_tolerance_diverges(cli: Cli, project: Path, tmp_path: Path) -> None:
    counter = tmp_path / "drift.count"
    args = ["-n", "drift", "-o", "result.txt", "--metrics", "metrics.json"]
    _run(cli, project, *args, "--", PY, "drifting.py", counter)
    r = _replay(cli, "drift", "--tolerance", "0.05", code=DIVERGED)
    [d] = r["differences"]
    assert d["metric"] == "loss" and d["status"] == "changed" and d["covered_by"] is None
    assert d["within_tolerance"] is False and math.isclose(d["rel_diff"], 0.1 / 1.1)
    # an --allow-differ on files never covers a metric
    assert _replay(cli, "drift#1", "--allow-differ", "**", code=DIVERGED)["verdict"] == "diverged"
    loose = _replay(cli, "drift#1", "--tolerance", "0.2")
    assert loose["verdict"] == "within-tolerance"
    assert loose["differences"][0]["covered_by"] == "--tolerance 0.2"


def test_a_missing_or_added_output_diverges_unless_covered(
    cli: Cli, project: Path, tmp_path: Path
) -> None:
    counter = tmp_path / "cg.count"
    _run(cli, project, "-n", "cg", "-o", "out", "--", PY, "comes_and_goes.py", counter)
    r = _replay(cli, "cg", code=DIVERGED)
    assert {(d["path"], d["status"]) for d in r["differences"]} == {
        ("out/b.txt", "missing"),
        ("out/extra.txt", "added"),
    }
    assert _uncovered(r) == ["out/b.txt", "out/extra.txt"]
    half = _replay(cli, "cg#1", "--allow-differ", "out/b.txt", code=DIVERGED)
    assert _uncovered(half) == ["out/extra.txt"]
    both = _replay(cli, "cg#1", "--allow-differ", "out/b.txt", "--allow-differ", "out/extra.*")
    assert both["verdict"] == "within-tolerance"


def test_identical_is_identical(cli: Cli, project: Path) -> None:
    args = ["-n", "det", "-o", "out", "--metrics", "metrics.json"]
    _run(cli, project, *args, "--", PY, "deterministic.py")
    r = _replay(cli, "det", "--tolerance", "0")
    assert r["verdict"] == "identical" and r["differences"] == []
    res = cli("replay", "det#1")
    assert res.returncode == 0 and "verdict: identical" in res.err, res.describe()


def test_metrics_that_cannot_be_compared_are_not_vouched_for(
    cli: Cli, project: Path, tmp_path: Path
) -> None:
    outside = tmp_path / "elsewhere" / "m.json"  # outside the working directory
    outside.parent.mkdir()
    script = f"import json; json.dump({{'n': 1}}, open({str(outside)!r}, 'w'))"
    _run(cli, project, "-n", "m", "--metrics", outside, "--", PY, "-c", script)
    r = _replay(cli, "m", code=DIVERGED)
    assert not r["metrics_compared"]
    [d] = r["differences"]
    assert d["metric"] == "n" and d["status"] == "not-compared" and d["covered_by"] is None
    assert any("outside the working directory" in n for n in r["notes"])


def test_glob_rules() -> None:
    from reprocas.provenance.verdict import glob_matches

    assert glob_matches("logs/*", "logs/run.log")
    assert glob_matches("logs/*", "logs/sub/run.log")  # logs/sub matches; it covers below
    assert not glob_matches("logs/*.log", "logs/sub/run.log")
    assert glob_matches("logs", "logs/sub/run.log")  # a directory covers what is below it
    assert not glob_matches("*.log", "logs/run.log")
    assert glob_matches("**/*.log", "run.log") and glob_matches("**/*.log", "a/b/run.log")
    assert glob_matches("out/[ab].txt", "out/a.txt") and not glob_matches(
        "out/[!ab].txt", "out/a.txt"
    )
    assert not glob_matches("out/ci.json", "out/ci.json.bak")
    assert not glob_matches("out", "outputs/x")


def test_table_comparison_rules() -> None:
    from reprocas.tabular.compare import compare_tables

    a = pa.table({"i": [1, 2, None], "f": [1.0, float("nan"), math.inf], "s": ["a", "b", "c"]})
    assert compare_tables(a, a, 0).equal
    near = pa.table({"i": [1, 2, None], "f": [1.0 + 1e-12, float("nan"), math.inf],
                     "s": ["a", "b", "c"]})  # fmt: skip
    assert not compare_tables(a, near, 0).equal and compare_tables(a, near, 1e-9).equal
    inf = pa.table({"i": [1, 2, None], "f": [1.0, float("nan"), -math.inf], "s": ["a", "b", "c"]})
    r = compare_tables(a, inf, 1e9)
    assert not r.equal and r.column == "f"
    nulls = pa.table({"i": [1, None, 3], "f": a["f"], "s": a["s"]})
    assert compare_tables(a, nulls, 1).reason == "nulls differ in column i"
    big = pa.table({"i": [2**60, 1, 1]})
    assert not compare_tables(big, pa.table({"i": [2**60 + 1, 1, 1]}), 0).equal
    narrow = a.cast(pa.schema([("i", pa.int32()), ("f", pa.float64()), ("s", pa.string())]))
    why = compare_tables(a, narrow, 1).reason or ""
    assert why.startswith("schema differs: column i changed type")
    assert "row count" in (compare_tables(a, a.slice(0, 2), 1).reason or "")
