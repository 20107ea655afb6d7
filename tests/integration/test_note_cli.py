"""`reprocas note add/ls/show`, notes in `show`, `runs`, `lineage` and `log --timeline`,
notes in retention (only with --protect), and the report hook (issue 20)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest

import reprocas
from reprocas.notes import report_notes
from tests.integration._helpers import assert_ok, assert_one_line_error, verify_ok
from tests.integration.conftest import Cli

PY = sys.executable
SCRIPT = "import shutil; shutil.copy('inputs/clinical/rows.txt', 'out.txt')"


def _commit(cli: Cli, tmp_path: Path, n: int) -> None:
    d = tmp_path / f"v{n}"
    d.mkdir()
    (d / "rows.txt").write_text("".join(f"{i}\n" for i in range(10 * n)))
    assert_ok(cli("commit", d, "-d", "clinical", "-m", f"{10 * n} rows"))


@pytest.fixture
def project(tmp_path: Path, cli: Cli) -> Path:
    assert_ok(cli("init"))
    for n in (1, 2, 3):
        _commit(cli, tmp_path, n)
    proj = tmp_path / "proj"
    proj.mkdir()
    return proj


def _add(cli: Cli, *args: str) -> dict[str, Any]:
    out: dict[str, Any] = assert_ok(cli("note", "add", *args, "--json")).json()
    return out


def test_add_ls_show_round_trip(cli: Cli, project: Path) -> None:
    a = _add(cli, "train on v2", "--about", "clinical@v2", "--kind", "decision", "--by", "ana")
    again = _add(cli, "train on v2", "--about", "clinical@v2", "--kind", "decision", "--by", "ana")
    assert again["id"] == a["id"] and again["time_ns"] == a["time_ns"]
    assert a["about"][0]["label"] == "clinical@v2" and a["about"][0]["type"] == "version"
    assert a["protect"] is False and a["current"] is True
    shown = assert_ok(cli("note", "show", a["id"][:10], "--json")).json()
    assert shown == a
    text = assert_ok(cli("note", "show", a["id"][:10])).out
    assert (
        "kind      decision" in text and "about     clinical@v2" in text and "train on v2" in text
    )
    listed = assert_ok(cli("note", "ls")).out
    assert a["id"][:12] in listed and "decision by ana about clinical@v2: train on v2" in listed
    q = _add(cli, "why is v3 smaller?", "--about", a["id"][:12], "--kind", "question")
    assert q["about"] == [{"id": a["id"], "type": "note", "label": f"note {a['id'][:12]}"}]


def test_supersession_hides_a_note(cli: Cli, project: Path) -> None:
    old = _add(cli, "use v1", "--about", "clinical@v1", "--kind", "decision")
    new = _add(cli, "use v2", "--about", "clinical@v2", "--kind", "decision",
               "--supersedes", old["id"][:12])  # fmt: skip
    ids = [n["id"] for n in assert_ok(cli("note", "ls", "--json")).json()]
    assert ids == [new["id"]]
    every = assert_ok(cli("note", "ls", "--all", "--json")).json()
    assert [n["id"] for n in every] == [old["id"], new["id"]]
    assert every[0]["superseded_by"] == [new["id"]] and every[0]["current"] is False
    assert assert_ok(cli("note", "ls", "--about", "clinical@v1", "--json")).json() == []
    assert "[superseded]" in assert_ok(cli("note", "ls", "--all")).out


def test_bad_input_is_one_clear_line(cli: Cli, project: Path) -> None:
    assert_one_line_error(cli("note", "add", "x", "--about", "clinical@v9"), 4, "clinical@v9")
    assert_one_line_error(cli("note", "add", "x"), 2, "--about")
    assert_one_line_error(
        cli("note", "add", "x", "--about", "clinical@v1", "--kind", "rumour"), 2, "rumour"
    )
    assert_one_line_error(cli("note", "show", "abcdef"), 4, "abcdef")
    assert assert_ok(cli("note", "ls", "--all", "--json")).json() == []


def test_notes_in_show_runs_lineage_and_timeline(cli: Cli, project: Path) -> None:
    assert_ok(cli("run", "-n", "train", "--env", "none", "-i", "clinical@v2", "-o", "out.txt",
                  "--", PY, "-c", SCRIPT, cwd=project))  # fmt: skip
    v = _add(cli, "v2 is the cleaned export", "--about", "clinical@v2")
    r = _add(cli, "first baseline", "--about", "train#1", "--kind", "decision")
    shown = assert_ok(cli("show", "clinical@v2", "--json")).json()
    assert [n["id"] for n in shown["notes"]] == [v["id"]]
    assert f"note {v['id'][:12]} observation" in assert_ok(cli("show", "clinical@v2")).out
    runs = assert_ok(cli("runs", "--json")).json()
    assert [n["id"] for n in runs[0]["notes"]] == [r["id"]]
    assert "first baseline" in assert_ok(cli("runs")).out
    g = assert_ok(cli("lineage", "train#1", "--json")).json()
    notes = {n["id"] for n in g["nodes"] if n["type"] == "note"}
    assert notes == {v["id"], r["id"]}
    assert {"from": v["id"], "kind": "about", "to": shown["id"]} in g["edges"]
    assert "--about--> clinical@v2" in assert_ok(cli("lineage", "train#1")).out
    events = assert_ok(cli("log", "--timeline", "--json")).json()
    kinds = [e["kind"] for e in events]
    assert kinds.count("note") == 2 and kinds[-2:] == ["note", "note"]
    assert events[-1]["text"] == "first baseline" and events[-1]["ref"] == "train#1"
    only = assert_ok(cli("log", "--timeline", "clinical", "--json")).json()
    assert {e["id"] for e in only if e["kind"] == "note"} == {v["id"], r["id"]}
    assert "decision by" in assert_ok(cli("log", "--timeline")).out


def test_retention_keeps_only_with_protect(cli: Cli, project: Path, repo_path: Path) -> None:
    _add(cli, "v1 looked odd", "--about", "clinical@v1")  # does not protect
    p = assert_ok(cli("note", "add", "keep v2: the paper used it", "--about", "clinical@v2",
                      "--protect", "--kind", "decision", "--json")).json()  # fmt: skip
    assert p["protect"] is True
    out = assert_ok(cli("forget", "--keep-last", "1", "--dry-run", "--json")).json()
    reasons = {r["ref"]: r["reasons"] for r in out["keep"] + out["remove"]}
    assert reasons["clinical@v2"] == [f"protected by note {p['id'][:12]}"]
    assert [r["ref"] for r in out["remove"]] == ["clinical@v1"]
    # superseded, the note protects nothing any more
    _add(cli, "v2 no longer needed", "--about", "clinical@v2", "--supersedes", p["id"][:12])
    out = assert_ok(cli("forget", "--keep-last", "1", "--json")).json()
    assert sorted(out["forgotten"]) == ["clinical@v1", "clinical@v2"]
    assert_ok(cli("prune"))
    assert_ok(cli("du"))
    assert_ok(cli("gc"))
    verify_ok(repo_path)
    assert len(assert_ok(cli("note", "ls", "--all", "--json")).json()) == 3


def test_python_api_and_report_hook(repo_path: Path, cli: Cli, project: Path) -> None:
    with reprocas.Repo.open(repo_path) as repo:
        n = repo.note("check v3", "clinical@v3", kind="question", by="bo")
        assert [x.id for x in repo.notes()] == [n.id]
        assert [x.id for x in repo.notes("clinical@v3")] == [n.id]
        assert repo.notes("clinical@v1") == []
        assert repo.show_note(n.id.hex[:8]).note.text == "check v3"
        got = report_notes(repo.store)
    assert got == [
        {
            "time_ns": n.time_ns,
            "time": n.to_json()["time"],
            "ref": "clinical@v3",
            "text": "check v3",
            "id": n.id.hex,
            "kind": "question",
            "by": "bo",
            "about": n.to_json()["about"],
        }
    ]


def test_notes_that_arrive_by_clone_are_indexed(cli: Cli, project: Path, tmp_path: Path) -> None:
    """`clone` (and `pull`) index the `note:` refs they move (`index_arrived`: the notes
    record and the edges to what they are about), as `index rebuild` would."""
    from reprocas.notes import store
    from tests.integration._helpers import run_cli

    n = _add(cli, "v2 is the cleaned export", "--about", "clinical@v2")
    remote = tmp_path / "remote"
    remote.mkdir()
    assert_ok(cli("remote", "add", "origin", remote.as_uri()))
    assert_ok(cli("push"))
    copy = tmp_path / "copy"
    assert_ok(run_cli("clone", remote.as_uri(), copy))
    with reprocas.Repo.open(copy) as repo:
        with repo.store.index.write() as txn:
            moved = list(repo.store.index.iter_refs(txn, "note:"))
            assert len(moved) == 1
            assert store.index_arrived(repo.store, txn, moved) == 0  # clone did it already
        [got] = repo.notes("clinical@v2")
        assert got.id.hex == n["id"] and got.time_ns > 0
    about = assert_ok(run_cli("note", "ls", "--about", "clinical@v2", "--json", repo=copy)).json()
    assert [x["id"] for x in about] == [n["id"]]
