"""Canonical versions: ``reprocas pin DATASET@vN --reason TEXT``.

A pin is a decision note about the version (text ``pin NAME@vN: REASON``) and the ref
``pin:<dataset>`` naming that note, moved in the note's own ref transaction. Pinning
another version supersedes the old pin's note; ``unpin`` records a note (``unpin NAME:
REASON``) that supersedes it and deletes the ref. The ref log restores pins at ``index
rebuild``; without a ref log, :func:`recover_pins` derives them from the current pin
notes (their text says which dataset and version).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import lmdb

from reprocas.errors import InvalidParameterError, RefNotFoundError, ReprocasError
from reprocas.model.display import iso_time
from reprocas.model.ids import ObjectId
from reprocas.model.objects import Note
from reprocas.notes.store import NoteRecord, make_note, record, store_note
from reprocas.store.repository import Repository

PIN_PREFIX = "pin:"
_PIN_TEXT = re.compile(r"^pin (?P<name>[^\s@]+)@v(?P<number>\d+): ")


def pin_ref(dataset: str) -> str:
    return PIN_PREFIX + dataset


@dataclass
class Pin:
    """A dataset's canonical version and the note that made it so."""

    dataset: str
    number: int | None  # None: the pinned version was forgotten
    version: ObjectId
    note: NoteRecord

    @property
    def ref(self) -> str:
        return f"{self.dataset}@v{self.number}" if self.number else f"{self.dataset} (forgotten)"

    @property
    def reason(self) -> str:
        m = _PIN_TEXT.match(self.note.note.text)
        return self.note.note.text[m.end() :] if m else self.note.note.text

    def to_json(self) -> dict[str, Any]:
        return {
            "dataset": self.dataset,
            "ref": self.ref,
            "version": self.version.hex,
            "note": self.note.id.hex,
            "reason": self.reason,
            "by": self.note.note.by,
            "time_ns": self.note.time_ns,
            "time": iso_time(self.note.time_ns) if self.note.time_ns else None,
        }

    def line(self) -> str:
        by = f" by {self.note.note.by}" if self.note.note.by else ""
        return f"{self.ref} pinned{by} (note {self.note.id.hex[:12]}): {self.reason}"


def _pin_of(repo: Repository, txn: lmdb.Transaction, dataset: str, nid: bytes) -> Pin | None:
    try:
        rec = record(repo, txn, ObjectId(nid))
    except ReprocasError:
        return None
    if not rec.note.about:
        return None
    sid = rec.note.about[0]
    info = repo.version_info(txn, sid)
    return Pin(dataset, info[1] if info and info[0] == dataset else None, sid, rec)


def get_pin(repo: Repository, txn: lmdb.Transaction, dataset: str) -> Pin | None:
    nid = repo.index.get_ref(txn, pin_ref(dataset))
    return None if nid is None else _pin_of(repo, txn, dataset, nid)


def list_pins(repo: Repository) -> list[Pin]:
    with repo.index.read() as txn:
        out = []
        for key, nid in repo.index.iter_refs(txn, PIN_PREFIX):
            p = _pin_of(repo, txn, key[len(PIN_PREFIX) :], nid)
            if p is not None:
                out.append(p)
    return out


def pin(repo: Repository, ref: str, reason: str, *, by: str | None = None) -> Pin:
    """Make ``ref`` (``NAME@vN`` or ``NAME@TAG``) the canonical version of its dataset."""
    if "@" not in ref:
        raise InvalidParameterError(
            f"pin a version, not a dataset: {ref}@vN (or {ref}@TAG; `reprocas log {ref}`)"
        )
    if not reason.strip():
        raise InvalidParameterError("say why: --reason TEXT")
    with repo.index.read() as txn:
        v = repo.resolve(txn, ref)
        old = get_pin(repo, txn, v.name)
    if v.snapshot.kind != "dataset":
        raise InvalidParameterError(
            f"{v.ref} is a {v.snapshot.kind} snapshot; pin dataset versions"
        )
    text = f"pin {v.name}@v{v.number}: {reason.strip()}"
    if old is not None and old.version == v.id and old.note.note.text == text:
        return old  # the same pin again
    supersedes = [old.note.id.hex] if old is not None else []
    note = make_note(repo, text, [v.id.hex], kind="decision", by=by, supersedes=supersedes)
    rec = store_note(repo, note, also=[(pin_ref(v.name), None)])
    return Pin(v.name, v.number, v.id, rec)


def unpin(repo: Repository, dataset: str, reason: str = "", *, by: str | None = None) -> Pin:
    """Remove ``dataset``'s pin; a note ``unpin NAME: REASON`` retires the pin's note."""
    name = dataset.partition("@")[0]
    with repo.index.read() as txn:
        old = get_pin(repo, txn, name)
    if old is None:
        raise RefNotFoundError(f"{name} is not pinned; `reprocas pin ls` lists pins", ref=name)
    text = f"unpin {name}: {reason.strip() or 'no reason given'}"
    note = make_note(
        repo, text, [old.version.hex], kind="decision", by=by, supersedes=[old.note.id.hex]
    )
    store_note(repo, note, drop=[pin_ref(name)])
    return old


def unpinned_inputs(
    repo: Repository, txn: lmdb.Transaction, inputs: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    """The inputs that are not the pinned version of their dataset:
    ``[{"ref", "dataset", "pinned", "note", "reason"}]`` (inputs of unpinned datasets
    are fine)."""
    out = []
    for i in inputs:
        p = get_pin(repo, txn, str(i["dataset"]))
        if p is None or bytes(i["snapshot"]) == p.version.raw:
            continue
        out.append(
            {
                "ref": str(i.get("ref") or f"{i['dataset']}@v{i['number']}"),
                "dataset": p.dataset,
                "pinned": p.ref,
                "note": p.note.id.hex,
                "reason": p.reason,
            }
        )
    return out


def warning_text(u: dict[str, Any]) -> str:
    return (
        f"input {u['ref']} is not the pinned version of {u['dataset']}: {u['pinned']} "
        f"(note {u['note'][:12]}: {u['reason']})"
    )


def recover_pins(refs: dict[str, bytes], notes: dict[bytes, Note]) -> list[str]:
    """Pin refs from the current pin notes, for a rebuild without a ref log (when the
    refs hold no ``pin:`` ref at all). Returns the refs added."""
    if any(k.startswith(PIN_PREFIX) for k in refs):
        return []
    retired = {s.raw for n in notes.values() for s in n.supersedes}
    added = []
    for nid, n in sorted(notes.items()):
        m = _PIN_TEXT.match(n.text)
        if nid in retired or m is None or n.kind != "decision" or len(n.about) != 1:
            continue
        key = pin_ref(m.group("name"))
        refs[key] = nid
        added.append(key)
    return added
