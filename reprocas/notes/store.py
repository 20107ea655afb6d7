"""Writing, reading and restoring notes.

A note is an object in the packs (``reprocas.model.objects.Note``), kept by the ref
``note:<id>``; the ``notes`` sub-database holds when it was recorded
(``{"time_ns": ...}``), and the provenance graph its ``about`` (``n``) and
``supersedes`` (``s``) edges. Everything but the object is restored by ``index
rebuild`` (:func:`reindex`), the time from the ref log's ``set`` line of its ref.
"""

from __future__ import annotations

import getpass
import time
from dataclasses import dataclass, field
from typing import Any

import lmdb

from reprocas.errors import IntegrityError, InvalidParameterError, ReprocasError
from reprocas.model.display import iso_time
from reprocas.model.ids import ObjectId
from reprocas.model.objects import NOTE_KINDS, Note
from reprocas.notes.subjects import (
    NOTE_PREFIX,
    Subject,
    describe,
    note_ref,
    resolve_note,
    resolve_subject,
)
from reprocas.provenance import graph
from reprocas.store.index import pack, unpack
from reprocas.store.repository import Repository
from reprocas.store.writer import Writer

MAX_TEXT = 64 * 1024


@dataclass
class NoteRecord:
    """A stored note with what the record adds: when, and which notes retire it."""

    id: ObjectId
    note: Note
    time_ns: int
    about: list[Subject] = field(default_factory=list)
    superseded_by: list[str] = field(default_factory=list)  # note ids (hex)

    @property
    def current(self) -> bool:
        return not self.superseded_by

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id.hex,
            "kind": self.note.kind,
            "text": self.note.text,
            "by": self.note.by,
            "time_ns": self.time_ns,
            "time": iso_time(self.time_ns) if self.time_ns else None,
            "about": [s.to_json() for s in self.about],
            "supersedes": [s.hex for s in self.note.supersedes],
            "superseded_by": list(self.superseded_by),
            "protect": self.note.protect,
            "current": self.current,
        }

    def line(self) -> str:
        """One line for listings: ``1a2b3c4d5e6f decision (ana) about clinical@v4: …``."""
        about = ", ".join(s.label for s in self.about) or "nothing"
        who = f" by {self.note.by}" if self.note.by else ""
        old = " [superseded]" if self.superseded_by else ""
        return f"{self.id.hex[:12]} {self.note.kind}{who} about {about}{old}: {self.note.text}"


def _user() -> str:
    try:
        return getpass.getuser()
    except Exception:
        return "unknown"


def _time_of(repo: Repository, txn: lmdb.Transaction, nid: bytes) -> int:
    raw = txn.get(nid, db=repo.index.db["notes"])
    if raw is None:
        return 0
    rec = unpack(raw)
    return int(rec.get("time_ns") or 0) if isinstance(rec, dict) else 0


def load_note(repo: Repository, txn: lmdb.Transaction, nid: ObjectId) -> Note:
    obj = repo.load(txn, nid)
    if not isinstance(obj, Note):
        raise IntegrityError(f"object {nid.hex} is not a note", object=nid.hex)
    return obj


def is_note(repo: Repository, txn: lmdb.Transaction, raw: bytes) -> bool:
    return repo.index.get_ref(txn, note_ref(raw)) is not None


def superseded_by(repo: Repository, txn: lmdb.Transaction, raw: bytes) -> list[str]:
    """The stored notes that supersede note ``raw`` (hex ids)."""
    return [
        e.src.hex()
        for e in graph.in_edges(repo, txn, raw, graph.SUPERSEDES)
        if is_note(repo, txn, e.src)
    ]


def record(repo: Repository, txn: lmdb.Transaction, nid: ObjectId) -> NoteRecord:
    note = load_note(repo, txn, nid)
    return NoteRecord(
        id=nid,
        note=note,
        time_ns=_time_of(repo, txn, nid.raw),
        about=[describe(repo, txn, a.raw) for a in note.about],
        superseded_by=superseded_by(repo, txn, nid.raw),
    )


def note_edges(nid: ObjectId, note: Note) -> list[graph.Edge]:
    out = [graph.Edge(nid.raw, graph.ABOUT, a.raw, {}) for a in note.about]
    out += [graph.Edge(nid.raw, graph.SUPERSEDES, s.raw, {}) for s in note.supersedes]
    return out


def make_note(
    repo: Repository,
    text: str,
    about: list[str],
    *,
    kind: str = "observation",
    by: str | None = None,
    supersedes: list[str] = (),  # type: ignore[assignment]
    protect: bool = False,
) -> Note:
    """Check a note's fields and resolve its refs (without writing anything)."""
    text = text.strip()
    if not text:
        raise InvalidParameterError("a note needs some text")
    if len(text.encode()) > MAX_TEXT:
        raise InvalidParameterError(f"a note's text is at most {MAX_TEXT} bytes")
    if kind not in NOTE_KINDS:
        raise InvalidParameterError(
            f"unknown note kind {kind!r}; use one of: {', '.join(NOTE_KINDS)}"
        )
    if not about and not supersedes:
        raise InvalidParameterError(
            "say what the note is about: --about REF (a version, run, environment or note)"
        )
    with repo.index.read() as txn:
        subjects = [resolve_subject(repo, txn, r).id for r in about]
        olds = [resolve_note(repo, txn, r) for r in supersedes]
    return Note(
        text=text,
        kind=kind,
        by=by if by is not None else _user(),
        about=tuple(dict.fromkeys(subjects)),
        supersedes=tuple(dict.fromkeys(olds)),
        protect=protect,
    )


def store_note(
    repo: Repository,
    note: Note,
    *,
    also: list[tuple[str, str | None]] = (),  # type: ignore[assignment]
    drop: list[str] = (),  # type: ignore[assignment]
) -> NoteRecord:
    """Store a note (object, ref, time, edges) in one ref transaction; ``also`` are
    more refs moved with it (``(ref, None)`` points it at the note; used by pins),
    ``drop`` refs deleted with it (``unpin``). Storing a note that is already stored
    keeps the first record's time."""
    with repo.lock("gc", exclusive=False):
        writer = Writer(repo)
        try:
            nid = writer.add_object(note.to_wire())
            writer.seal()
            with repo.ref_transaction() as rt:
                txn = rt.txn
                for a in (*note.about, *note.supersedes):
                    if txn.get(a.raw, db=repo.index.db["objects"]) is None:
                        raise IntegrityError(
                            f"object {a.hex} is gone (removed while the note was written)",
                            object=a.hex,
                        )
                moves = [(r, nid) for r, _ in also if repo.index.get_ref(txn, r) != nid.raw]
                now = time.time_ns()
                if repo.index.get_ref(txn, note_ref(nid)) is None:
                    moves.append((note_ref(nid), nid))
                    txn.put(nid.raw, pack({"time_ns": now}), db=repo.index.db["notes"])
                    graph.put_edges(repo, txn, note_edges(nid, note))
                if moves:
                    rt.set(moves, time_ns=now)
                gone = []
                for r in drop:
                    old = repo.index.get_ref(txn, r)
                    if old is not None:
                        gone.append((r, ObjectId(old)))
                if gone:
                    rt.delete(gone)
        except BaseException:
            writer.abort()
            raise
        finally:
            writer.close()
    with repo.index.read() as txn:
        return record(repo, txn, nid)


def add_note(
    repo: Repository,
    text: str,
    about: list[str],
    *,
    kind: str = "observation",
    by: str | None = None,
    supersedes: list[str] = (),  # type: ignore[assignment]
    protect: bool = False,
) -> NoteRecord:
    """``reprocas note add``: resolve, check, store."""
    note = make_note(
        repo, text, list(about), kind=kind, by=by, supersedes=list(supersedes), protect=protect
    )
    return store_note(repo, note)


def iter_note_ids(repo: Repository, txn: lmdb.Transaction) -> list[ObjectId]:
    return [ObjectId(v) for _, v in repo.index.iter_refs(txn, NOTE_PREFIX)]


def list_notes(
    repo: Repository, *, about: str | None = None, include_superseded: bool = False
) -> list[NoteRecord]:
    """Notes oldest first; only current ones unless ``include_superseded``; only those
    about one subject when ``about`` is given."""
    with repo.index.read() as txn:
        if about is not None:
            subject = resolve_subject(repo, txn, about)
            return notes_about(repo, txn, subject.id.raw, include_superseded=include_superseded)
        out = [record(repo, txn, nid) for nid in iter_note_ids(repo, txn)]
    out = [r for r in out if include_superseded or r.current]
    return sorted(out, key=lambda r: (r.time_ns, r.id.hex))


def notes_about(
    repo: Repository, txn: lmdb.Transaction, raw: bytes, *, include_superseded: bool = False
) -> list[NoteRecord]:
    """The stored notes about one object, oldest first (one prefix scan)."""
    out = []
    for e in graph.in_edges(repo, txn, raw, graph.ABOUT):
        if not is_note(repo, txn, e.src):
            continue
        try:
            r = record(repo, txn, ObjectId(e.src))
        except ReprocasError:
            continue
        if include_superseded or r.current:
            out.append(r)
    return sorted(out, key=lambda r: (r.time_ns, r.id.hex))


def show_note(repo: Repository, ref: str) -> NoteRecord:
    with repo.index.read() as txn:
        return record(repo, txn, resolve_note(repo, txn, ref))


def protecting_notes(repo: Repository, txn: lmdb.Transaction, raw: bytes) -> tuple[str, ...]:
    """Why current ``--protect`` notes keep a version: ``protected by note 1a2b3c4d5e6f``."""
    out = []
    for r in notes_about(repo, txn, raw):
        if r.note.protect:
            out.append(f"protected by note {r.id.hex[:12]}")
    return tuple(out)


def protected_ids(repo: Repository, txn: lmdb.Transaction) -> set[bytes]:
    """Every object a current ``--protect`` note is about."""
    out: set[bytes] = set()
    for nid in iter_note_ids(repo, txn):
        try:
            note = load_note(repo, txn, nid)
        except ReprocasError:
            continue
        if note.protect and not superseded_by(repo, txn, nid.raw):
            out.update(a.raw for a in note.about)
    return out


# -- index rebuild ------------------------------------------------------------------------


def first_set_times(entries: list[dict[str, Any]]) -> dict[str, int]:
    """When each ``note:`` ref was first set, from the ref log's committed lines."""
    out: dict[str, int] = {}
    for e in entries:
        ref = e.get("ref")
        if e.get("op") == "set" and isinstance(ref, str) and ref.startswith(NOTE_PREFIX):
            out.setdefault(ref, int(e.get("time_ns") or 0))
    return out


def recover_refs(refs: dict[str, bytes], found: list[bytes]) -> list[str]:
    """Note refs for notes the packs hold but the refs lack (a lost ref log): a note is
    never deleted, so every stored note is kept. Returns the refs added."""
    added = []
    for nid in found:
        key = note_ref(nid)
        if key not in refs:
            refs[key] = nid
            added.append(key)
    return added


def reindex(repo: Repository, txn: lmdb.Transaction, entries: list[dict[str, Any]]) -> int:
    """Recreate the ``notes`` records and note edges from the note refs (inside
    ``index rebuild``'s transaction). Returns the number of notes indexed."""
    times = first_set_times(entries)
    n = 0
    for nid in iter_note_ids(repo, txn):
        try:
            note = load_note(repo, txn, nid)
        except ReprocasError:
            continue
        txn.put(nid.raw, pack({"time_ns": times.get(note_ref(nid), 0)}), db=repo.index.db["notes"])
        graph.put_edges(repo, txn, note_edges(nid, note))
        n += 1
    return n


def notes_for(repo: Repository, ids: list[str]) -> dict[str, list[NoteRecord]]:
    """The current notes about each of ``ids`` (hex object ids), for `show`, `runs` and
    `lineage`: one read transaction, one prefix scan per id."""
    out: dict[str, list[NoteRecord]] = {}
    with repo.index.read() as txn:
        for h in ids:
            out[h] = notes_about(repo, txn, bytes.fromhex(h))
    return out


def index_arrived(repo: Repository, txn: lmdb.Transaction, moves: list[tuple[str, bytes]]) -> int:
    """Write the ``notes`` record and edges of each note that arrived by a ref move made
    outside :func:`store_note` (``pull``/``clone`` moving ``note:`` refs), inside that
    write transaction; the time is now (when it arrived here). Returns how many."""
    now = time.time_ns()
    n = 0
    for key, nid in moves:
        if not key.startswith(NOTE_PREFIX) or txn.get(nid, db=repo.index.db["notes"]) is not None:
            continue
        try:
            note = load_note(repo, txn, ObjectId(nid))
        except ReprocasError:
            continue
        txn.put(nid, pack({"time_ns": now}), db=repo.index.db["notes"])
        graph.put_edges(repo, txn, note_edges(ObjectId(nid), note))
        n += 1
    return n
