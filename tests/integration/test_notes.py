"""Decision notes: identity, supersession, gc and index rebuild (issue 20, part)."""

from __future__ import annotations

from pathlib import Path

import pytest

from reprocas.api import Repo
from reprocas.errors import InvalidParameterError, RefNotFoundError
from reprocas.notes import store
from reprocas.store.gc import gc
from reprocas.store.rebuild import rebuild


@pytest.fixture
def repo(tmp_path: Path) -> Repo:
    data = tmp_path / "d"
    data.mkdir()
    (data / "encounters.csv").write_text("id,age\n1,40\n2,51\n")
    r = Repo.init(tmp_path / "repo", format=3)
    r.commit(data, "clinical")
    (data / "encounters.csv").write_text("id,age\n1,40\n2,51\n3,62\n")
    r.commit(data, "clinical")
    return r


def test_same_text_and_links_same_id_time_kept(repo: Repo) -> None:
    a = store.add_note(repo.store, "train on v2", ["clinical@v2"], kind="decision", by="ana")
    b = store.add_note(repo.store, "train on v2", ["clinical@v2"], kind="decision", by="ana")
    assert a.id == b.id and a.time_ns == b.time_ns > 0
    other = store.add_note(repo.store, "train on v2", ["clinical@v1"], kind="decision", by="ana")
    assert other.id != a.id
    shown = store.show_note(repo.store, a.id.hex[:10]).to_json()
    assert shown["text"] == "train on v2" and shown["about"][0]["label"] == "clinical@v2"


def test_supersession_hides_from_listing(repo: Repo) -> None:
    old = store.add_note(repo.store, "use v1", ["clinical@v1"], kind="decision", by="ana")
    new = store.add_note(
        repo.store, "use v2", ["clinical@v2"], kind="decision", by="ana", supersedes=[old.id.hex]
    )
    assert [r.id for r in store.list_notes(repo.store)] == [new.id]
    every = store.list_notes(repo.store, include_superseded=True)
    assert {r.id for r in every} == {old.id, new.id}
    assert store.list_notes(repo.store, about="clinical@v1") == []
    hist = store.list_notes(repo.store, about="clinical@v1", include_superseded=True)
    assert [r.superseded_by for r in hist] == [[new.id.hex]]


def test_bad_input_is_refused(repo: Repo) -> None:
    with pytest.raises(InvalidParameterError):
        store.add_note(repo.store, "  ", ["clinical@v1"])
    with pytest.raises(InvalidParameterError):
        store.add_note(repo.store, "x", ["clinical@v1"], kind="rumour")
    with pytest.raises(RefNotFoundError):
        store.add_note(repo.store, "x", ["clinical@v9"])
    assert store.list_notes(repo.store, include_superseded=True) == []


def test_gc_keeps_notes_and_rebuild_restores_them(repo: Repo) -> None:
    old = store.add_note(repo.store, "use v1", ["clinical@v1"], by="ana")
    new = store.add_note(repo.store, "use v2", ["clinical@v2"], by="ana", supersedes=[old.id.hex])
    gc(repo.store)
    before = [r.to_json() for r in store.list_notes(repo.store, include_superseded=True)]
    rebuild(repo.store)
    after = [r.to_json() for r in store.list_notes(repo.store, include_superseded=True)]
    assert after == before
    assert [r.id for r in store.list_notes(repo.store)] == [new.id]


def test_rebuild_without_ref_log_keeps_notes(repo: Repo) -> None:
    n = store.add_note(repo.store, "use v2", ["clinical@v2"], by="ana")
    repo.store.reflog_path.unlink()
    rebuild(repo.store)
    got = store.list_notes(repo.store)
    assert [r.id for r in got] == [n.id] and got[0].time_ns == 0  # time is in the log only
