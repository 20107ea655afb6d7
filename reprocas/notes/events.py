"""Notes as ``log --timeline`` events (kind ``note``; reprocas.provenance.timeline)."""

from __future__ import annotations

import lmdb

from reprocas.errors import ReprocasError
from reprocas.notes.store import NoteRecord, iter_note_ids, notes_about, record
from reprocas.provenance.timeline import Event
from reprocas.store.repository import Repository


def note_events(repo: Repository, txn: lmdb.Transaction, scope: list[bytes] | None) -> list[Event]:
    """The current notes about the objects in ``scope`` (every current note when None),
    at the time each was recorded; ``ref`` is the labels of what it is about."""
    records: list[NoteRecord] = []
    if scope is None:
        for nid in iter_note_ids(repo, txn):
            try:
                records.append(record(repo, txn, nid))
            except ReprocasError:
                continue
        records = [r for r in records if r.current]
    else:
        seen: dict[bytes, NoteRecord] = {}
        for raw in scope:
            for r in notes_about(repo, txn, raw):
                seen.setdefault(r.id.raw, r)
        records = list(seen.values())
    out = []
    for r in records:
        j = r.to_json()
        ref = ", ".join(a["label"] for a in j["about"]) or "-"
        details = {k: j[k] for k in ("id", "text", "by", "about", "supersedes")}
        details["note_kind"] = j["kind"]
        out.append(Event(j["time_ns"], "note", ref, details))
    return out
