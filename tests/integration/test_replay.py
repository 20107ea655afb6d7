"""`reprocas replay`: real git repositories, real scripts reading committed tables with
pyarrow, replayed through the real command to a verdict."""

from __future__ import annotations

import json
import shutil
import sys
import textwrap
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import reprocas
from reprocas.provenance.names import load_run, resolve_run
from tests.integration._helpers import assert_ok, assert_one_line_error, verify_ok
from tests.integration._helpers import git as _git
from tests.integration.conftest import Cli

PY = sys.executable
DIVERGED = 10

TRAIN = textwrap.dedent(
    """
    import json, os, sys
    import pyarrow.parquet as pq
    t = pq.read_table("inputs/clinical/data.parquet")
    lr = float(sys.argv[1])
    os.makedirs("out", exist_ok=True)
    score = sum(t.column("x").to_pylist()) * lr
    with open("out/model.txt", "w") as f:
        f.write(f"{score}\\n")
    with open("metrics.json", "w") as f:
        json.dump({"score": score, "loss": [1.0, 0.5], "val": {"rows": t.num_rows}}, f)
    print("trained", score)
    """
)

# Random bytes in the output; the metric moves by at most 1e-9 relative.
NOISY = textwrap.dedent(
    """
    import json, os, random
    import pyarrow.parquet as pq
    t = pq.read_table("inputs/clinical/data.parquet")
    os.makedirs("out", exist_ok=True)
    with open("out/weights.bin", "wb") as f:
        f.write(os.urandom(256))
    score = float(t.num_rows) * (1 + random.uniform(-1e-9, 1e-9))
    with open("metrics.json", "w") as f:
        json.dump({"score": score}, f)
    """
)

# A metric that changes beyond any small tolerance, output bytes that stay the same.
UNSTABLE = textwrap.dedent(
    """
    import json, random
    with open("result.txt", "w") as f:
        f.write("same\\n")
    with open("metrics.json", "w") as f:
        json.dump({"score": random.random(), "steady": 1.0}, f)
    """
)

# Needs a file that is not committed: it exists where the run was recorded only.
NEEDS_LOCAL = textwrap.dedent(
    """
    with open("local.txt") as f:
        data = f.read()
    with open("result.txt", "w") as f:
        f.write(data)
    """
)


def _table(d: Path, rows: int) -> Path:
    d.mkdir(parents=True, exist_ok=True)
    pq.write_table(
        pa.table({"id": list(range(rows)), "x": [float(i) for i in range(rows)]}),
        d / "data.parquet",
    )
    return d


@pytest.fixture
def project(tmp_path: Path, cli: Cli) -> Path:
    """A git repository with the scripts committed (in sub-directory ``ml``, the runs'
    working directory) and dataset clinical@v1 (3 rows) in the reprocas repository."""
    proj = tmp_path / "proj"
    ml = proj / "ml"
    ml.mkdir(parents=True)
    for name, text in (
        ("train.py", TRAIN),
        ("noisy.py", NOISY),
        ("unstable.py", UNSTABLE),
        ("needs_local.py", NEEDS_LOCAL),
    ):
        (ml / name).write_text(text)
    (proj / ".gitignore").write_text("inputs/\nout/\nmetrics.json\nresult.txt\nlocal.txt\n")
    (proj / "README").write_text("a project\n")
    _git(proj, "init", "-q")
    _git(proj, "add", "-A")
    _git(proj, "commit", "-q", "-m", "scripts")
    assert_ok(cli("init"))
    assert_ok(cli("commit", _table(tmp_path / "v1", 3), "-d", "clinical"))
    return proj


def _run(cli: Cli, cwd: Path, *args: str) -> Any:
    res = cli("run", "--json", *args, cwd=cwd)
    assert_ok(res)
    return json.loads(res.stdout)


def _replay(cli: Cli, *args: str | Path, cwd: Path | None = None, code: int = 0) -> Any:
    res = cli("replay", "--json", *args, cwd=cwd)
    assert res.returncode == code, res.describe()
    assert "Traceback" not in res.err, res.describe()
    return json.loads(res.stdout)


TRAIN_ARGS = ["-n", "train", "-i", "clinical@v1", "-o", "out", "--metrics", "metrics.json"]


def test_identical_after_the_working_copy_changed(
    cli: Cli, project: Path, repo_path: Path, tmp_path: Path
) -> None:
    ml = project / "ml"
    commit = _git(project, "rev-parse", "HEAD")
    orig = _run(cli, ml, *TRAIN_ARGS, "--env", "light", "--", PY, "train.py", "0.5")
    assert orig["code"]["commit"] == commit and not orig["code"]["dirty"]
    # the working copy moves on: an edit, a new commit, the input directory gone
    (ml / "train.py").write_text(TRAIN.replace("* lr", "* lr * 2"))
    _git(project, "commit", "-q", "-am", "double it")
    (ml / "train.py").write_text("raise SystemExit('the working copy is not what ran')\n")
    shutil.rmtree(ml / "inputs")

    res = cli("replay", "train", "--json", cwd=tmp_path)  # anywhere: the run knows its cwd
    assert res.returncode == 0, res.describe()
    r = json.loads(res.stdout)
    assert r["verdict"] == "identical" and r["differences"] == []
    assert r["original"] == {"id": orig["id"], "ref": "train#1", "exit_code": 0}
    assert r["ref"] == "train#2" and r["exit_code"] == 0
    assert r["code"]["source"] == "git" and r["code"]["commit"] == commit
    assert r["code"]["cwd"] == "ml" and not r["code"]["patch_applied"]
    workdir = Path(r["workdir"])
    assert Path(r["cwd"]) == workdir / "ml"
    # the recorded commit was restored, not the working copy
    assert (workdir / "ml/train.py").read_text() == TRAIN
    assert (workdir / "README").read_text() == "a project\n"
    assert (workdir / "ml/out/model.txt").read_text() == "1.5\n"
    assert pq.read_table(workdir / "ml/inputs/clinical/data.parquet").num_rows == 3
    # the environment was checked against the recorded one, and did not drift
    assert r["drift"]["same"] is True and r["drift"]["against"] == orig["environment"]["ref"]
    assert r["run"]["environment"]["id"] == orig["environment"]["id"]
    assert r["run"]["replay_of"] == orig["id"] and r["run"]["verdict"] == "identical"
    assert r["run"]["metrics"] == orig["metrics"]
    assert r["run"]["outputs"][0]["id"] == orig["outputs"][0]["id"]
    # progress on stderr, the command's stdout streamed there too (stdout is the JSON)
    assert "replaying run train#1" in res.err and str(workdir) in res.err
    assert "trained 1.5" in res.err
    shutil.rmtree(workdir)

    # the replay is a run of the same name, listed with its verdict, linked in lineage
    runs = assert_ok(cli("runs", "--json")).json()
    assert [(x["ref"], x["replay_of"], x["verdict"]) for x in runs] == [
        ("train#1", None, None),
        ("train#2", orig["id"], "identical"),
    ]
    assert "replay of train#1: identical" in assert_ok(cli("runs")).out
    up = assert_ok(cli("lineage", "train#2", "--up", "--json")).json()
    labels = {n["id"]: n["label"] for n in up["nodes"]}
    replays = [
        (labels[e["from"]], labels[e["to"]]) for e in up["edges"] if e["kind"] == "replay-of"
    ]
    assert replays == [("train#2", "train#1")]
    down = assert_ok(cli("lineage", "train#1", "--down", "--json")).json()
    assert any(e["kind"] == "replay-of" for e in down["edges"])
    assert "replay-of" in assert_ok(cli("lineage", "train#2", "--up")).out
    verify_ok(repo_path)


def test_the_uncommitted_diff_is_reapplied(cli: Cli, project: Path, tmp_path: Path) -> None:
    ml = project / "ml"
    edited = TRAIN.replace('print("trained", score)', 'print("trained (edited)", score)')
    edited = edited.replace("* lr", "* lr + 1")
    (ml / "train.py").write_text(edited)
    (ml / "extra.py").write_text("FACTOR = 3\n")
    _git(project, "add", "ml/extra.py")  # a new tracked file, not committed
    orig = _run(cli, ml, *TRAIN_ARGS, "--env", "none", "--", PY, "train.py", "1")
    assert orig["code"]["dirty"] and orig["code"]["patch"] == "code/diff.patch"
    assert orig["metrics"]["score"] == 4.0
    _git(project, "reset", "-q", "--hard")  # the uncommitted changes are gone here
    assert (ml / "train.py").read_text() == TRAIN

    workdir = tmp_path / "replay-here"
    res = cli("replay", "train#1", "--workdir", workdir)
    assert res.returncode == 0, res.describe()
    assert "trained (edited) 4.0" in res.out  # the command's stdout streams to stdout
    assert "verdict: identical" in res.err and "train#2" in res.err
    assert "uncommitted diff" in res.err
    assert (workdir / "ml/train.py").read_text() == edited
    assert (workdir / "ml/extra.py").read_text() == "FACTOR = 3\n"
    [_, rep] = assert_ok(cli("runs", "--json")).json()
    assert rep["verdict"] == "identical" and rep["metrics"] == {"score": 4.0, "val/rows": 3}
    # a replay of the replay: the same code state, carried by the replay's record
    again = _replay(cli, "train#2", "--workdir", tmp_path / "again")
    assert again["verdict"] == "identical" and again["code"]["patch_applied"]
    assert again["original"]["ref"] == "train#2" and again["ref"] == "train#3"


def test_noise_in_the_outputs_is_within_tolerance(cli: Cli, project: Path) -> None:
    ml = project / "ml"
    args = ["-n", "noisy", "--env", "none", "-i", "clinical@v1", "-o", "out"]
    orig = _run(cli, ml, *args, "--metrics", "metrics.json", "--", PY, "noisy.py")
    # A metric within tolerance no longer vouches for changed bytes (issue 14, item 5):
    # the random weights are a difference no rule covers until --allow-differ names them.
    bare = _replay(cli, "noisy", code=DIVERGED)
    assert [d["path"] for d in bare["differences"] if d["covered_by"] is None] == [
        "out/weights.bin"
    ]
    r = _replay(cli, "noisy#1", "--allow-differ", "out/*.bin")
    assert r["verdict"] == "within-tolerance", r["differences"]
    outs = [d for d in r["differences"] if d["kind"] == "output"]
    assert [(d["path"], d["output"], d["status"]) for d in outs] == [
        ("out/weights.bin", "out", "changed")
    ]
    assert outs[0]["original"] != outs[0]["replay"] and len(outs[0]["original"]) == 64
    for d in r["differences"]:
        if d["kind"] == "metric":
            assert d["metric"] == "score" and d["within_tolerance"]
            assert d["rel_diff"] <= 1e-6
    assert r["tolerance"] == 1e-6
    assert r["run"]["replay_of"] == orig["id"]
    # a tolerance tighter than the noise: the same replay diverges (when the metric moved)
    tight = cli("replay", "noisy#1", "--json", "--tolerance", "0", "--allow-differ", "out")
    assert tight.returncode in (0, DIVERGED), tight.describe()
    t = json.loads(tight.stdout)
    moved = any(d["kind"] == "metric" for d in t["differences"])
    assert t["verdict"] == ("diverged" if moved else "within-tolerance")
    assert tight.returncode == (DIVERGED if moved else 0)


def test_a_metric_beyond_tolerance_diverges(cli: Cli, project: Path) -> None:
    ml = project / "ml"
    args = ["-n", "unstable", "--env", "none", "-o", "result.txt", "--metrics", "metrics.json"]
    _run(cli, ml, *args, "--", PY, "unstable.py")
    r = _replay(cli, "unstable", code=DIVERGED)
    assert r["verdict"] == "diverged"
    [d] = r["differences"]  # the output is byte-identical, "steady" agrees: not listed
    assert d["kind"] == "metric" and d["metric"] == "score" and d["status"] == "changed"
    assert d["within_tolerance"] is False and d["rel_diff"] > 1e-6
    res = cli("replay", "unstable#1", cwd=ml)
    assert res.returncode == DIVERGED, res.describe()
    assert "metric score:" in res.err and "beyond tolerance" in res.err
    assert "verdict: diverged" in res.err
    runs = assert_ok(cli("runs", "--json")).json()
    assert [x["verdict"] for x in runs] == [None, "diverged", "diverged"]
    # a huge tolerance accepts it
    assert _replay(cli, "unstable#1", "--tolerance", "1e9")["verdict"] == "within-tolerance"


def test_a_failing_replay_diverges_on_its_exit_status(
    cli: Cli, project: Path, repo_path: Path
) -> None:
    ml = project / "ml"
    (ml / "local.txt").write_text("only here\n")  # ignored by git: not stored, not restored
    _run(cli, ml, "-n", "local", "--env", "none", "-o", "result.txt", "--", PY, "needs_local.py")
    res = cli("replay", "local", "--json")
    assert res.returncode == DIVERGED, res.describe()
    r = json.loads(res.stdout)
    assert r["verdict"] == "diverged" and r["exit_code"] == 1
    kinds = {d["kind"]: d for d in r["differences"]}
    assert kinds["exit_status"] == {
        "kind": "exit_status",
        "original": 0,
        "replay": 1,
        "covered_by": None,  # every difference names its rule (issue 14, item 5)
    }
    assert kinds["output"]["path"] == "result.txt" and kinds["output"]["status"] == "missing"
    assert "local.txt" in res.err  # the command's own error, streamed
    assert r["run"]["code"].get("files") is None  # an ignored file is not code
    [_, rep] = assert_ok(cli("runs", "--json")).json()
    assert rep["status"] == "failed" and rep["exit_code"] == 1 and rep["verdict"] == "diverged"
    with reprocas.Repo.open(repo_path) as repo, repo.store.index.read() as txn:
        run = load_run(repo.store, txn, resolve_run(repo.store, txn, "local#2").id)
        assert "output result.txt was never created" in run.errors
        assert run.extra["differences_count"] == 2


def test_unknown_run_bad_workdir_and_tolerance_are_clear_errors(
    cli: Cli, project: Path, tmp_path: Path
) -> None:
    assert_one_line_error(cli("replay", "nosuch"), 4, "nosuch")
    assert_one_line_error(cli("replay", "nosuch#3", "--json"), 4, "nosuch#3")
    assert assert_ok(cli("runs", "--json")).json() == []  # nothing recorded
    _run(cli, project / "ml", "-n", "t", "--env", "none", "--", PY, "-c", "print(1)")
    assert_one_line_error(cli("replay", "t#2"), 4, "t#2", "t has runs #1..#1")
    full = tmp_path / "full"
    full.mkdir()
    (full / "x").write_text("keep me\n")
    assert_one_line_error(cli("replay", "t", "--workdir", full), 2, "not empty", str(full))
    assert (full / "x").read_text() == "keep me\n" and sorted(full.iterdir()) == [full / "x"]
    assert_one_line_error(cli("replay", "t", "--workdir", full / "x"), 2, "not a directory")
    assert_one_line_error(cli("replay", "t", "--tolerance", "-1"), 2, "--tolerance")
    assert_one_line_error(cli("replay", "t", "--tolerance", "nan"), 2, "--tolerance")
    assert [x["ref"] for x in assert_ok(cli("runs", "--json")).json()] == ["t#1"]
    empty = tmp_path / "empty"
    empty.mkdir()
    r = _replay(cli, "t", "--workdir", empty)
    assert r["verdict"] == "identical" and r["workdir"] == str(empty.resolve())


def test_code_that_is_nowhere_to_be_found_is_a_clear_error(
    cli: Cli, project: Path, tmp_path: Path
) -> None:
    ml = project / "ml"
    args = ["-n", "t", "--env", "none", "-i", "clinical@v1", "-o", "out"]
    _run(cli, ml, *args, "--", PY, "train.py", "1")
    clone = tmp_path / "clone"
    _git(tmp_path, "clone", "-q", str(project), str(clone))
    other = tmp_path / "other"
    _git(tmp_path, "init", "-q", str(other))
    shutil.rmtree(project / ".git")  # the recorded repository is gone
    workdir = tmp_path / "wd"
    res = cli("replay", "t", "--workdir", workdir, cwd=tmp_path)
    assert_one_line_error(res, 4, "git commit", "clone")
    assert not workdir.exists()  # what the failed replay created is gone
    assert_one_line_error(cli("replay", "t", cwd=other), 4, "git commit")  # not in this one
    assert [x["ref"] for x in assert_ok(cli("runs", "--json")).json()] == ["t#1"]
    # from inside a clone that has the commit, the replay works (in the same sub-directory)
    r = _replay(cli, "t", cwd=clone / "ml")
    assert r["verdict"] == "identical" and r["code"]["cwd"] == "ml"
    assert r["code"]["git_repository"] == str(clone.resolve())
    assert any("not in that repository" in n for n in r["notes"])


def test_a_run_outside_git_replays_with_a_note(
    cli: Cli, project: Path, repo_path: Path, tmp_path: Path
) -> None:
    plain = tmp_path / "plain"
    plain.mkdir()
    script = "import json; json.dump({'n': 2}, open('m.json', 'w')); open('o.txt', 'w').write('x')"
    orig = _run(cli, plain, "-n", "p", "--env", "none", "-o", "o.txt", "--metrics", "m.json",
                "--", PY, "-c", script)  # fmt: skip
    assert orig["code"] is None
    res = cli("replay", "p", "--json")
    assert res.returncode == 0, res.describe()
    r = json.loads(res.stdout)
    assert r["verdict"] == "identical" and r["code"]["source"] == "none"
    assert r["metrics_compared"] and r["run"]["metrics"] == {"n": 2}
    assert "no code state" in res.err and r["drift"] is None
    # the Python API: the same replay, recorded as the next run
    with reprocas.Repo.open(repo_path) as repo:
        api = repo.replay("p#1", workdir=tmp_path / "api")
        assert api.verdict == "identical" and api.differences == []
        assert api.handle.ref == "p#3" and api.original.ref == "p#1"
        assert (tmp_path / "api/o.txt").read_text() == "x"
        assert api.to_json()["run"]["replay_of"] == orig["id"]
