"""`reprocas adopt`: a result made outside the system recorded as a declared run; `status`
lists outputs in a working directory that no run produced."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from tests.integration._helpers import assert_ok, assert_one_line_error
from tests.integration.conftest import Cli

PY = sys.executable
COPY = "import shutil; shutil.copy('inputs/clinical/rows.txt', 'out.txt')"


@pytest.fixture
def proj(tmp_path: Path, cli: Cli) -> Path:
    assert_ok(cli("init"))
    d = tmp_path / "data"
    d.mkdir()
    (d / "rows.txt").write_text("1\n2\n3\n")
    assert_ok(cli("commit", d, "-d", "clinical"))
    p = tmp_path / "proj"
    p.mkdir()
    return p


def test_adopt_then_why(cli: Cli, proj: Path) -> None:
    model = proj / "model"
    model.mkdir()
    (model / "weights.bin").write_bytes(b"\x00\x01" * 100)
    (model / "card.md").write_text("trained in a notebook\n")
    how = "trained in a notebook on the laptop"
    run = assert_ok(cli("adopt", "model", "--from", "clinical@v1", "-m", how, "--json",
                        cwd=proj)).json()  # fmt: skip
    assert run["ref"] == "model#1" and run["provenance"] == "declared"
    assert run["command"] == [] and run["environment"] is None and run["code"] is None
    assert [i["ref"] for i in run["inputs"]] == ["clinical@v1"]
    assert [o["version"] for o in run["outputs"]] == ["runs/model@v1"]
    listed = assert_ok(cli("runs", "--json")).json()
    assert [r["provenance"] for r in listed] == ["declared"]
    assert "declared (adopt)" in assert_ok(cli("runs")).out
    files = assert_ok(cli("ls", "runs/model@v1", "-r", "--json")).json()
    assert {f["path"] for f in files} >= {"model/weights.bin", "model/card.md"}
    note = assert_ok(cli("note", "add", "baseline for the paper", "--about", "model#1",
                         "--json")).json()  # fmt: skip
    v1 = assert_ok(cli("show", "clinical@v1", "--json")).json()["id"]
    said = [(s["text"], s["cites"]) for s in assert_ok(cli("why", "model#1", "--json")).json()[
        "statements"]]  # fmt: skip
    assert said == [
        ("model#1 was not observed: it was declared with `reprocas adopt` "
         "(trained in a notebook on the laptop)", [run["id"]]),
        ("it was declared to be made from clinical@v1", [v1, run["id"]]),
        ("it is the first run of model", [run["id"]]),
        (f"a observation by {note['by']} about model#1 says: baseline for the paper",
         [note["id"]]),
    ]  # fmt: skip
    g = assert_ok(cli("lineage", "model#1", "--json")).json()
    assert {n["label"] for n in g["nodes"]} >= {"model#1", "clinical@v1", "runs/model@v1"}
    assert_one_line_error(cli("replay", "model#1"), 2, "declared", "reprocas run")


def test_bad_input(cli: Cli, proj: Path) -> None:
    (proj / "out.txt").write_text("x\n")
    assert_one_line_error(cli("adopt", "out.txt", "--from", "clinical@v1", cwd=proj), 2, "-m")
    assert_one_line_error(cli("adopt", "out.txt", "-m", "by hand", cwd=proj), 2, "--from")
    assert_one_line_error(
        cli("adopt", "nothing", "--from", "clinical@v1", "-m", "x", cwd=proj), 3, "nothing"
    )
    assert_one_line_error(cli("adopt", "out.txt", "--from", "clinical@v7", "-m", "x", cwd=proj), 4)
    assert assert_ok(cli("runs", "--json")).json() == []


def test_status_lists_outputs_no_run_produced(cli: Cli, proj: Path) -> None:
    assert_ok(cli("run", "-n", "train", "--env", "none", "-i", "clinical@v1", "-o", "out.txt",
                  "--", PY, "-c", COPY, cwd=proj))  # fmt: skip
    clean = cli("status", proj, "--json")
    assert clean.returncode == 0, clean.describe()
    assert clean.json()["unrecorded_outputs"] == []
    (proj / "out.txt").write_text("edited by hand\n")
    res = cli("status", proj, "--json")
    assert res.returncode == 1
    assert json.loads(res.stdout)["unrecorded_outputs"] == [
        {"path": "out.txt", "last_run": "train#1"}
    ]
    text = cli("status", proj).out
    assert "unrecorded out.txt" in text and "train#1" in text
    assert_ok(cli("adopt", "out.txt", "--from", "clinical@v1", "-n", "train",
                  "-m", "edited by hand", cwd=proj))  # fmt: skip
    after = cli("status", proj, "--json")
    assert after.returncode == 0 and after.json()["unrecorded_outputs"] == []
