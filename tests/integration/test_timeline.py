"""`reprocas log --timeline`: versions, environment, code and parameter changes and run
results in one time-ordered stream, through real `reprocas run` processes in a real git
project."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from tests.integration._helpers import assert_ok, assert_one_line_error
from tests.integration.conftest import Cli

PY = sys.executable

TRAIN = textwrap.dedent(
    """
    import json, sys
    rows = open("inputs/clinical/rows.txt").read().split()
    lr = float(sys.argv[1])
    score = len(rows) * lr
    open("model.txt", "w").write(f"{score}\\n")
    json.dump({"score": score, "loss": [1.0, 1.0 / len(rows)]}, open("metrics.json", "w"))
    """
)


def _git(proj: Path, *args: str) -> None:
    subprocess.run(
        ["git", "-c", "user.email=t@example.org", "-c", "user.name=t", *args],
        cwd=proj, check=True, capture_output=True,
    )  # fmt: skip


def _commit_rows(cli: Cli, tmp_path: Path, n: int, message: str) -> None:
    d = tmp_path / f"rows{n}"
    d.mkdir()
    (d / "rows.txt").write_text("\n".join(str(i) for i in range(n)) + "\n")
    assert_ok(cli("commit", d, "-d", "clinical", "-m", message))


def _run(cli: Cli, proj: Path, *args: str) -> dict[str, Any]:
    res = assert_ok(
        cli("run", "--json", "-n", "train", "-o", "model.txt", "--metrics", "metrics.json",
            *args, cwd=proj)
    )  # fmt: skip
    out: dict[str, Any] = json.loads(res.stdout)
    return out


def _timeline(cli: Cli, *name: str) -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = assert_ok(cli("log", "--timeline", *name, "--json")).json()
    return events


@pytest.fixture
def history(tmp_path: Path, cli: Cli) -> Path:
    """clinical@v1 (3 rows), train#1; clinical@v2 (5 rows) and lr changed, train#2;
    a lock file added, train#3; a code commit, train#4; uncommitted changes, train#5."""
    proj = tmp_path / "proj"
    proj.mkdir()
    (proj / "train.py").write_text(TRAIN)
    (proj / ".gitignore").write_text("inputs/\nmodel.txt\nmetrics.json\n")
    _git(proj, "init", "-q")
    _git(proj, "add", "-A")
    _git(proj, "commit", "-q", "-m", "first")
    assert_ok(cli("init"))
    _commit_rows(cli, tmp_path, 3, "three rows")
    _run(cli, proj, "-i", "clinical@v1", "-p", "lr=0.5", "--", PY, "train.py", "0.5")
    _commit_rows(cli, tmp_path, 5, "five rows")
    _run(cli, proj, "-i", "clinical@v2", "-p", "lr=1", "-p", "epochs=2", "--", PY, "train.py", "1")
    (proj / "requirements.txt").write_text("numpy==1.0\n")
    _git(proj, "add", "requirements.txt")
    _git(proj, "commit", "-q", "-m", "lock file")
    _run(cli, proj, "-i", "clinical@v2", "-p", "lr=1", "-p", "epochs=2", "--", PY, "train.py", "1")
    (proj / "train.py").write_text(TRAIN + "# tuned\n")
    _git(proj, "commit", "-q", "-am", "tune")
    _run(cli, proj, "-i", "clinical@v2", "-p", "lr=1", "-p", "epochs=2", "--", PY, "train.py", "1")
    (proj / "train.py").write_text(TRAIN + "# tuned again, not committed\n")
    _run(cli, proj, "-i", "clinical@v2", "-p", "lr=1", "-p", "epochs=2", "--", PY, "train.py", "1")
    return proj


def _keys(events: list[dict[str, Any]]) -> list[tuple[str, str]]:
    return [(e["kind"], e["ref"]) for e in events]


def test_run_name_timeline_orders_changes_before_results(cli: Cli, history: Path) -> None:
    events = _timeline(cli, "train")
    assert all({"time_ns", "time", "kind", "ref"} <= set(e) for e in events)
    assert [e["time_ns"] for e in events] == sorted(e["time_ns"] for e in events)
    keys = _keys(events)
    # The versions the runs used, each before the run that used it first.
    assert keys.index(("version", "clinical@v1")) < keys.index(("run", "train#1"))
    assert keys.index(("version", "clinical@v2")) < keys.index(("run", "train#2"))
    assert not any(k == "version" and r.startswith(("runs/", "env/")) for k, r in keys)
    runs = {e["ref"]: e for e in events if e["kind"] == "run"}
    assert list(runs) == [f"train#{i}" for i in range(1, 6)]
    assert runs["train#1"]["metrics"]["score"] == 1.5 and runs["train#1"]["previous"] is None
    # train#2: the data version and the parameters changed, and the score jumped.
    r2 = runs["train#2"]
    assert r2["metrics"]["score"] == 5.0 and r2["metric_deltas"]["score"] == 3.5
    assert r2["input_changes"] == [
        {"dataset": "clinical", "from": "clinical@v1", "to": "clinical@v2"}
    ]
    [p] = [e for e in events if e["kind"] == "params"]
    assert p["ref"] == "train#2" and p["previous"] == "train#1"
    assert p["added"] == {"epochs": 2} and p["changed"] == {"lr": {"from": 0.5, "to": 1}}
    assert p["removed"] == {}
    assert keys.index(("params", "train#2")) < keys.index(("run", "train#2"))
    # train#3: the environment changed (a lock file was added); the same commit made the
    # code event too.
    envs = [e for e in events if e["kind"] == "environment"]
    assert [e["run"] for e in envs] == ["train#3"]
    assert envs[0]["ref"] == runs["train#3"]["environment"] == envs[0]["to"]
    assert envs[0]["from"] == runs["train#2"]["environment"]
    assert envs[0]["changes"]["files"] == {"added": 1, "removed": 0, "changed": 0}
    assert "requirements.txt" in envs[0]["summary"]
    # Code: a commit for train#3 and train#4, uncommitted changes for train#5.
    code = {e["run"]: e for e in events if e["kind"] == "code"}
    assert sorted(code) == ["train#3", "train#4", "train#5"]
    assert code["train#4"]["commit_changed"] and not code["train#4"]["diff_changed"]
    assert code["train#4"]["ref"] == "git " + code["train#4"]["to"]["commit"][:12]
    assert not code["train#5"]["commit_changed"] and code["train#5"]["diff_changed"]
    assert code["train#5"]["to"]["dirty"] and code["train#5"]["to"]["diff"]
    for e in code.values():
        assert keys.index(("code", e["ref"])) < keys.index(("run", e["run"]))
    # No change events for runs that changed nothing of that kind.
    assert "train#1" not in code and len([e for e in events if e["kind"] == "params"]) == 1


def test_human_output(cli: Cli, history: Path) -> None:
    text = assert_ok(cli("log", "--timeline", "train")).out
    lines = text.splitlines()
    assert any("params" in ln and "lr: 0.5 -> 1" in ln and "+epochs=2" in ln for ln in lines)
    assert any("run" in ln and "train#2" in ln and "score=5 (+3.5)" in ln for ln in lines)
    assert any("environment" in ln and "requirements.txt" in ln for ln in lines)
    assert any("code" in ln and "uncommitted changes differ" in ln for ln in lines)
    assert any("clinical@v2" in ln and "five rows" in ln for ln in lines)


def test_dataset_timeline_and_everything(cli: Cli, history: Path) -> None:
    events = _timeline(cli, "clinical")
    keys = _keys(events)
    versions = [r for k, r in keys if k == "version"]
    assert versions == ["clinical@v1", "clinical@v2"]
    assert [r for k, r in keys if k == "run"] == [f"train#{i}" for i in range(1, 6)]
    # An output dataset: its versions and the runs that produced them (train#3..5 wrote
    # the same model as train#2, which is therefore their output version too).
    out = _timeline(cli, "runs/train")
    assert [r for k, r in _keys(out) if k == "version"] == ["runs/train@v1", "runs/train@v2"]
    assert {r for k, r in _keys(out) if k == "run"} == {f"train#{i}" for i in range(1, 6)}
    every = _timeline(cli)
    kinds = {e["kind"] for e in every}
    assert kinds == {"version", "environment", "code", "params", "run"}
    refs = {e["ref"] for e in every if e["kind"] == "version"}
    assert {"clinical@v1", "clinical@v2", "runs/train@v1"} <= refs
    assert any(r.startswith("env/") for r in refs)
    assert [e["time_ns"] for e in every] == sorted(e["time_ns"] for e in every)


def test_forgotten_versions_stay_on_the_timeline(cli: Cli, tmp_path: Path) -> None:
    assert_ok(cli("init"))
    for n in (1, 2, 3):
        _commit_rows(cli, tmp_path, n, f"v{n}")
    assert_ok(cli("forget", "--keep-last", "1", "-d", "clinical"))
    events = _timeline(cli, "clinical")
    assert [(e["ref"], e["forgotten"]) for e in events] == [
        ("clinical@v1", True), ("clinical@v2", True), ("clinical@v3", False),
    ]  # fmt: skip
    assert "(forgotten)" in assert_ok(cli("log", "--timeline", "clinical")).out
    # Without --timeline, log still lists only the versions that exist.
    assert [e["ref"] for e in assert_ok(cli("log", "--json")).json()] == ["clinical@v3"]


def test_unknown_name_and_empty_repository(cli: Cli, tmp_path: Path) -> None:
    assert_ok(cli("init"))
    assert _timeline(cli) == []
    assert "nothing recorded yet" in assert_ok(cli("log", "--timeline")).out
    _commit_rows(cli, tmp_path, 2, "two")
    assert_one_line_error(cli("log", "--timeline", "nosuch"), 4, "nosuch", "clinical")
