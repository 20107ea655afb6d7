"""`reprocas why`: a three-run history (one param change, then one dataset version
change) answered in expected sentences, each citing the ids it rests on."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest

from tests.integration._helpers import assert_ok, assert_one_line_error
from tests.integration.conftest import Cli

PY = sys.executable
TRAIN = (
    "import json, os; n = len(open('inputs/clinical/rows.txt').read().split()); "
    "json.dump({'score': n * float(os.environ['REPROCAS_PARAM_LR'])}, open('m.json', 'w'))"
)


@pytest.fixture
def history(tmp_path: Path, cli: Cli) -> dict[str, Any]:
    """clinical@v1 (10 rows), @v2 (20 rows); train#1 (v1, lr 0.1) -> train#2 (v1, lr
    0.2) -> train#3 (v2, lr 0.2): scores 1, 2, 4."""
    assert_ok(cli("init"))
    d = tmp_path / "data"
    d.mkdir()
    ids: dict[str, Any] = {}
    for n in (1, 2):
        (d / "rows.txt").write_text("".join(f"{i}\n" for i in range(10 * n)))
        ids[f"v{n}"] = assert_ok(cli("commit", d, "-d", "clinical", "--json")).json()["id"]
    proj = tmp_path / "proj"
    proj.mkdir()
    for k, (ref, lr) in enumerate((("clinical@v1", "0.1"), ("clinical@v1", "0.2"),
                                   ("clinical@v2", "0.2")), 1):  # fmt: skip
        run = assert_ok(cli("run", "--json", "-n", "train", "--env", "none", "-i", ref,
                            "-p", f"lr={lr}", "--metrics", "m.json",
                            "--", PY, "-c", TRAIN, cwd=proj)).json()  # fmt: skip
        assert run["metrics"] == {"score": 10 * int(ref[-1]) * float(lr)}
        ids[f"r{k}"] = run["id"]
    return ids


def _why(cli: Cli, *args: str) -> dict[str, Any]:
    out: dict[str, Any] = assert_ok(cli("why", *args, "--json")).json()
    return out


def _said(answer: dict[str, Any]) -> list[tuple[str, list[str]]]:
    return [(s["text"], s["cites"]) for s in answer["statements"]]


def test_why_a_run_is_the_run_diff_with_notes(cli: Cli, history: dict[str, Any]) -> None:
    h = history
    old = assert_ok(cli("note", "add", "v2 looks wrong", "--about", "clinical@v2",
                        "--by", "bo", "--json")).json()  # fmt: skip
    new = assert_ok(cli("note", "add", "use v2: twice the rows", "--about", "clinical@v2",
                        "--kind", "decision", "--by", "ana", "--supersedes", old["id"][:12],
                        "--json")).json()  # fmt: skip
    said = _said(_why(cli, "train#3"))
    assert said[1:] == [
        ("input clinical changed from clinical@v1 to clinical@v2 (files: 1 changed)",
         [h["v1"], h["v2"]]),
        ("metric score went from 2 to 4 (+2) between train#2 and train#3", [h["r2"], h["r3"]]),
        ("a decision by ana about clinical@v2 says: use v2: twice the rows", [new["id"]]),
    ]  # fmt: skip
    assert said[0][0].startswith("train#3 ran `") and said[0][0].endswith("`: ok, exit 0")
    assert said[0][1] == [h["r3"]]
    assert all(old["id"] not in cites for _, cites in said)  # superseded: never cited
    said2 = _said(_why(cli, "train#2"))
    assert said2[1:] == [
        ("parameter lr changed from 0.1 to 0.2 since train#1", [h["r1"], h["r2"]]),
        ("metric score went from 1 to 2 (+1) between train#1 and train#2", [h["r1"], h["r2"]]),
    ]
    first = _said(_why(cli, "train#1"))
    assert first[1:] == [
        ("it is the first run of train", [h["r1"]]),
        ("its metrics: score=1", [h["r1"]]),
    ]
    text = assert_ok(cli("why", "train#3")).out.splitlines()
    assert text[0] == "why train#3?"
    assert (
        f"- metric score went from 2 to 4 (+2) between train#2 and train#3 "
        f"[{h['r2'][:12]}, {h['r3'][:12]}]"
    ) in text


def test_why_the_metric_jumped_lists_the_changes_in_order(
    cli: Cli, history: dict[str, Any]
) -> None:
    h = history
    n = assert_ok(cli("note", "add", "lr 0.2 is the paper's", "--about", "train#2",
                      "--by", "ana", "--json")).json()  # fmt: skip
    expected = [
        ("metric score went from 1 to 4 (+3) between train#1 and train#3", [h["r1"], h["r3"]]),
        ("parameter lr changed from 0.1 to 0.2 since train#1", [h["r1"], h["r2"]]),
        ("metric score went from 1 to 2 (+1) between train#1 and train#2", [h["r1"], h["r2"]]),
        ("input clinical changed from clinical@v1 to clinical@v2 (files: 1 changed)",
         [h["v1"], h["v2"]]),
        ("metric score went from 2 to 4 (+2) between train#2 and train#3", [h["r2"], h["r3"]]),
        ("a observation by ana about train#2 says: lr 0.2 is the paper's", [n["id"]]),
    ]  # fmt: skip
    ans = _why(cli, "train#1", "train#3", "--metric", "score")
    assert ans["question"] == "why did metric score change from train#1 to train#3?"
    assert _said(ans) == expected
    assert _said(_why(cli, "train#3", "train#1", "--metric", "score")) == expected  # any order
    times = [s["time_ns"] for s in ans["statements"][1:-1]]
    assert times == sorted(times)
    # --metric alone: against the previous run of the name
    assert _said(_why(cli, "train#3", "--metric", "score"))[:3] == [
        ("metric score went from 2 to 4 (+2) between train#2 and train#3", [h["r2"], h["r3"]]),
        ("input clinical changed from clinical@v1 to clinical@v2 (files: 1 changed)",
         [h["v1"], h["v2"]]),
        ("a observation by ana about train#2 says: lr 0.2 is the paper's", [n["id"]]),
    ]  # fmt: skip


def test_why_a_version(cli: Cli, history: dict[str, Any]) -> None:
    h = history
    assert_ok(cli("pin", "clinical@v1", "-r", "validated"))
    ans = _why(cli, "clinical@v1")
    kinds = [s["kind"] for s in ans["statements"]]
    said = dict(zip(kinds, _said(ans), strict=True))
    assert said["parent"] == ("it is the first version of clinical", [h["v1"]])
    assert [t for k, (t, _) in zip(kinds, _said(ans), strict=True) if k == "used-by"] == [
        "run train#1 used it", "run train#2 used it",
    ]  # fmt: skip
    assert said["pin"][0] == "it is the pinned version of clinical: validated"
    v2 = _said(_why(cli, "clinical@v2"))
    assert ("its parent is clinical@v1", [h["v1"], h["v2"]]) in v2
    assert ("run train#3 used it", [h["r3"], h["v2"]]) in v2
    assert any(t.startswith("it is not the pinned version of clinical (clinical@v1") for t, _ in v2)


def test_bad_questions(cli: Cli, history: dict[str, Any]) -> None:
    assert_one_line_error(cli("why", "clinical@v9"), 4)
    assert_one_line_error(cli("why", "clinical@v1", "train#1"), 2, "compares two runs")
    assert_one_line_error(cli("why", "train#1", "train#3", "--metric", "acc"), 2, "acc", "score")
