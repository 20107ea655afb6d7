"""Canonical versions: `reprocas pin`, the run warning, `status`, and index rebuild."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest

import reprocas
from reprocas.notes import pins
from tests.integration._helpers import assert_ok, assert_one_line_error
from tests.integration.conftest import Cli

PY = sys.executable


@pytest.fixture
def data(tmp_path: Path, cli: Cli) -> Path:
    """clinical@v1..v3, all committed from the same working directory."""
    assert_ok(cli("init"))
    d = tmp_path / "data"
    d.mkdir()
    for n in (1, 2, 3):
        (d / "rows.txt").write_text("".join(f"{i}\n" for i in range(10 * n)))
        assert_ok(cli("commit", d, "-d", "clinical", "-m", f"{10 * n} rows"))
    return d


def _pins(cli: Cli) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = assert_ok(cli("pin", "ls", "--json")).json()
    return out


def test_pin_records_a_decision_note(cli: Cli, data: Path) -> None:
    p = assert_ok(cli("pin", "clinical@v2", "--reason", "the cleaned export", "--json")).json()
    assert p["ref"] == "clinical@v2" and p["reason"] == "the cleaned export"
    assert _pins(cli) == [p]
    assert "clinical@v2 pinned" in assert_ok(cli("pin")).out
    [note] = assert_ok(cli("note", "ls", "--json")).json()
    assert note["id"] == p["note"] and note["kind"] == "decision"
    assert note["text"] == "pin clinical@v2: the cleaned export"
    assert note["about"][0]["label"] == "clinical@v2"
    # the same pin again changes nothing; another version supersedes the old note
    assert assert_ok(cli("pin", "clinical@v2", "-r", "the cleaned export", "--json")).json() == p
    q = assert_ok(cli("pin", "clinical@v3", "-r", "more rows", "--json")).json()
    assert [x["ref"] for x in _pins(cli)] == ["clinical@v3"]
    every = assert_ok(cli("note", "ls", "--all", "--json")).json()
    assert {n["id"]: n["current"] for n in every} == {p["note"]: False, q["note"]: True}
    assert assert_ok(cli("unpin", "clinical", "-r", "back to free choice")).out.strip() == (
        "unpinned clinical@v3"
    )
    assert _pins(cli) == []
    [last] = assert_ok(cli("note", "ls", "--json")).json()
    assert last["text"] == "unpin clinical: back to free choice"
    assert last["supersedes"] == [q["note"]]


def test_bad_input(cli: Cli, data: Path) -> None:
    assert_one_line_error(cli("pin", "clinical", "--reason", "x"), 2, "clinical@vN")
    assert_one_line_error(cli("pin", "clinical@v2"), 2, "--reason")
    assert_one_line_error(cli("pin", "clinical@v9", "--reason", "x"), 4, "'v9'")
    assert_one_line_error(cli("unpin", "clinical"), 4, "not pinned")
    assert _pins(cli) == [] and assert_ok(cli("note", "ls", "--json")).json() == []


def test_run_warns_on_an_input_that_is_not_pinned(cli: Cli, data: Path, tmp_path: Path) -> None:
    proj = tmp_path / "proj"
    proj.mkdir()
    p = assert_ok(cli("pin", "clinical@v2", "-r", "agreed", "--json")).json()
    bad = cli("run", "--json", "-n", "train", "--env", "none", "-i", "clinical@v3",
              "--", PY, "-c", "0", cwd=proj)  # fmt: skip
    run = bad.json()
    assert (
        "warning: input clinical@v3 is not the pinned version of clinical: clinical@v2 "
        f"(note {p['note'][:12]}: agreed)"
    ) in bad.err
    assert run["unpinned_inputs"] == [
        {"ref": "clinical@v3", "dataset": "clinical", "pinned": "clinical@v2",
         "note": p["note"], "reason": "agreed"}
    ]  # fmt: skip
    good = cli("run", "--json", "-n", "train", "--env", "none", "-i", "clinical@v2",
               "--", PY, "-c", "0", cwd=proj)  # fmt: skip
    assert good.json()["unpinned_inputs"] == [] and "pinned" not in good.err


def test_status_shows_the_pin(cli: Cli, data: Path) -> None:
    assert_ok(cli("pin", "clinical@v2", "-r", "agreed"))
    st = assert_ok(cli("status", data, "--json")).json()
    assert st["clean"] and st["pin"]["ref"] == "clinical@v2"
    assert st["pin"]["latest_is_pinned"] is False
    text = assert_ok(cli("status", data)).out
    assert "pinned: clinical@v2" in text
    assert "warning: clinical@v3 is not the pinned version clinical@v2" in text
    assert_ok(cli("pin", "clinical@v3", "-r", "newest"))
    assert "warning" not in assert_ok(cli("status", data)).out


@pytest.mark.parametrize("lose_log", [False, True])
def test_rebuild_restores_pins(cli: Cli, data: Path, repo_path: Path, lose_log: bool) -> None:
    assert_ok(cli("pin", "clinical@v1", "-r", "first"))
    assert_ok(cli("pin", "clinical@v2", "-r", "second"))
    before = _pins(cli)
    with reprocas.Repo.open(repo_path) as repo:
        if lose_log:
            repo.store.reflog_path.unlink()
        repo.rebuild_index()
        after = [p.to_json() for p in pins.list_pins(repo.store)]
    if lose_log:  # times live in the ref log only
        assert [{**p, "time_ns": 0, "time": None} for p in before] == after
    else:
        assert after == before
    assert [p["ref"] for p in _pins(cli)] == ["clinical@v2"]
