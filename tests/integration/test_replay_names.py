"""Which run a name replays, how replays are listed, and where an input that is a run's
output lands (issue 14, items 6 and 7): real scripts in a real git repository."""

from __future__ import annotations

import json
import sys
import textwrap
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.csv as pacsv
import pytest

from tests.integration._helpers import assert_ok, verify_ok
from tests.integration._helpers import git as _git
from tests.integration.conftest import Cli

PY = sys.executable

TRAIN = textwrap.dedent(
    """
    import json
    with open("result.txt", "w") as f:
        f.write("trained\\n")
    with open("metrics.json", "w") as f:
        json.dump({"score": 1.0}, f)
    """
)

# A run whose output is a file deep in its working directory.
FEATURIZE = textwrap.dedent(
    """
    import os
    import pyarrow as pa, pyarrow.csv as csv
    os.makedirs("out/features", exist_ok=True)
    csv.write_csv(pa.table({"id": [1, 2, 3], "f": [0.5, 1.5, 2.5]}), "out/features/features.csv")
    """
)

# A run whose output is a directory.
EMBED = textwrap.dedent(
    """
    import os
    os.makedirs("out/embeddings/parts", exist_ok=True)
    open("out/embeddings/parts/0.txt", "w").write("e0\\n")
    open("out/embeddings/index.txt", "w").write("0\\n")
    """
)

# Reads the features from their own path, and the embeddings' directory.
USE = textwrap.dedent(
    """
    import sys
    import pyarrow.csv as csv
    t = csv.read_csv(sys.argv[1])
    index = open(sys.argv[2]).read().strip()
    with open("total.txt", "w") as f:
        f.write(f"{sum(t.column('f').to_pylist())} {index}\\n")
    """
)


@pytest.fixture
def project(tmp_path: Path, cli: Cli) -> Path:
    proj = tmp_path / "proj"
    proj.mkdir()
    for name, text in (
        ("train.py", TRAIN),
        ("featurize.py", FEATURIZE),
        ("embed.py", EMBED),
        ("use.py", USE),
    ):
        (proj / name).write_text(text)
    (proj / ".gitignore").write_text("out/\ninputs/\ndata/\n*.txt\nmetrics.json\n")
    _git(proj, "init", "-q")
    _git(proj, "add", "-A")
    _git(proj, "commit", "-q", "-m", "scripts")
    assert_ok(cli("init"))
    return proj


def _run(cli: Cli, cwd: Path, *args: str | Path) -> Any:
    res = cli("run", "--json", "--env", "none", *args, cwd=cwd)
    assert_ok(res)
    return json.loads(res.stdout)


def _replay(cli: Cli, *args: str | Path) -> Any:
    res = cli("replay", "--json", *args)
    assert res.returncode == 0, res.describe()
    return json.loads(res.stdout)


TRAIN_ARGS = ["-n", "train", "-o", "result.txt", "--metrics", "metrics.json", "--", PY, "train.py"]


def test_a_bare_name_replays_the_latest_original_run(cli: Cli, project: Path) -> None:
    first = _run(cli, project, *TRAIN_ARGS)
    r = _replay(cli, "train#1")
    assert r["ref"] == "train#2" and r["original"]["ref"] == "train#1"
    # the bare name is the latest original run, not the replay train#2
    res = cli("replay", "train", "--json")
    assert res.returncode == 0, res.describe()
    again = json.loads(res.stdout)
    assert again["original"] == {"id": first["id"], "ref": "train#1", "exit_code": 0}
    assert again["ref"] == "train#3" and again["run"]["replay_of"] == first["id"]
    assert "latest original run, train#1" in res.err and "give train#2" in res.err
    # NAME#N still names any run, a replay too
    rr = _replay(cli, "train#2")
    assert rr["original"]["ref"] == "train#2" and rr["ref"] == "train#4"
    # a new original run becomes what the bare name replays
    second = _run(cli, project, *TRAIN_ARGS)
    assert second["ref"] == "train#5"
    latest = _replay(cli, "train")
    assert latest["original"]["ref"] == "train#5" and latest["ref"] == "train#6"
    assert latest["notes"] == []  # nothing skipped: no note
    # other commands keep NAME as the latest run of any kind
    assert [x["ref"] for x in assert_ok(cli("runs", "--json", "-n", "train")).json()][-1] == (
        "train#6"
    )


def test_replays_are_listed_as_replays_of_their_run(
    cli: Cli, project: Path, repo_path: Path
) -> None:
    first = _run(cli, project, *TRAIN_ARGS)
    _replay(cli, "train#1")
    rep = _replay(cli, "train#2")  # a replay of the replay
    runs = assert_ok(cli("runs", "--json")).json()
    assert [(x["ref"], x["replay_of"], x["replay_of_ref"], x["verdict"]) for x in runs] == [
        ("train#1", None, None, None),
        ("train#2", first["id"], "train#1", "identical"),
        ("train#3", runs[1]["id"], "train#2", "identical"),
    ]
    assert rep["ref"] == "train#3"
    lines = assert_ok(cli("runs")).out.splitlines()
    assert "replay" not in lines[0]
    assert lines[1].startswith("train#2") and lines[1].endswith("replay of train#1: identical")
    assert lines[2].endswith("replay of train#2: identical")
    # the timeline, for people and as JSON
    human = assert_ok(cli("log", "--timeline", "train")).out.splitlines()
    run_lines = [ln for ln in human if " run " in ln]
    assert len(run_lines) == 3
    assert "replay of" not in run_lines[0]
    assert "replay of train#1: identical" in run_lines[1]
    assert "replay of train#2: identical" in run_lines[2]
    events = assert_ok(cli("log", "--timeline", "train", "--json")).json()
    got = [(e["ref"], e["replay_of"], e["replay_of_ref"]) for e in events if e["kind"] == "run"]
    assert got == [
        ("train#1", None, None),
        ("train#2", first["id"], "train#1"),
        ("train#3", runs[1]["id"], "train#2"),
    ]
    verify_ok(repo_path)


def test_an_input_that_is_a_run_output_is_given_at_its_own_path(
    cli: Cli, project: Path, repo_path: Path, tmp_path: Path
) -> None:
    _run(cli, project, "-n", "features", "-o", "out/features/features.csv", "--",
         PY, "featurize.py")  # fmt: skip
    _run(cli, project, "-n", "embed", "-o", "out/embeddings", "--", PY, "embed.py")
    use = _run(cli, project, "-n", "use", "-i", "runs/features", "-i", "runs/embed@v1",
               "-o", "total.txt", "--", PY, "use.py",
               "inputs/features/features.csv", "inputs/embed/index.txt")  # fmt: skip
    assert use["status"] == "ok"
    assert [i["path"] for i in use["inputs"]] == ["inputs/features", "inputs/embed"]
    assert (project / "total.txt").read_text() == "4.5 0\n"
    # the file at its own name; the output directory's contents at the input's path
    assert sorted(p.relative_to(project / "inputs").as_posix()
                  for p in (project / "inputs").rglob("*") if p.is_file()) == [
        "embed/index.txt", "embed/parts/0.txt", "features/features.csv",
    ]  # fmt: skip
    t = pacsv.read_csv(project / "inputs/features/features.csv")
    assert t.equals(pa.table({"id": [1, 2, 3], "f": [0.5, 1.5, 2.5]}))
    # a second run with the inputs in place keeps them (verified, not checked out again)
    res = cli("run", "--env", "none", "-n", "use", "-i", "runs/features", "-o", "total.txt",
              "--", PY, "use.py", "inputs/features/features.csv", "inputs/embed/index.txt",
              cwd=project)  # fmt: skip
    assert_ok(res)
    assert "already checked out (verified)" in res.err
    # an explicit PATH gets the same layout
    _run(cli, project, "-n", "other", "-i", "runs/features=data/feat", "-o", "total.txt",
         "--", PY, "use.py", "data/feat/features.csv", "inputs/embed/index.txt")  # fmt: skip
    assert (project / "data/feat/features.csv").is_file()
    assert not (project / "data/feat/out").exists()
    # a replay lays the inputs out as the run did
    r = _replay(cli, "use#1", "--workdir", tmp_path / "wd")
    assert r["verdict"] == "identical", r["differences"]
    assert (tmp_path / "wd/inputs/features/features.csv").is_file()
    assert not (tmp_path / "wd/inputs/features/out").exists()
    verify_ok(repo_path)
