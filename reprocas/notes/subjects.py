"""What a note (or ``why``) can be about, and how a ref names it.

A subject is a stored object: a dataset or environment version (a snapshot), a run, or
another note. Refs are the usual ones — ``NAME@vN``/``NAME@TAG``/``NAME`` for versions,
``NAME#N``/``NAME`` for runs — or an id prefix of any of them.
"""

from __future__ import annotations

from dataclasses import dataclass

import lmdb

from reprocas.errors import AmbiguousRefError, RefNotFoundError, ReprocasError
from reprocas.model.ids import ObjectId, is_hex_prefix
from reprocas.model.objects import Note, Run, Snapshot
from reprocas.provenance.names import RunHandle, get_summary, is_run_ref, resolve_run
from reprocas.store.repository import Repository

NOTE_PREFIX = "note:"


def note_ref(nid: ObjectId | bytes) -> str:
    """The ref key that keeps note ``nid`` (``note:<64 hex digits>``)."""
    raw = nid.raw if isinstance(nid, ObjectId) else bytes(nid)
    return NOTE_PREFIX + raw.hex()


@dataclass(frozen=True, slots=True)
class Subject:
    """A resolved subject: its id, what it is (``version``, ``environment``, ``run``,
    ``note``) and how people call it (``clinical@v3``, ``train#2``, ``note 1a2b…``)."""

    id: ObjectId
    type: str
    label: str

    def to_json(self) -> dict[str, str]:
        return {"id": self.id.hex, "type": self.type, "label": self.label}


def _note_matches(repo: Repository, txn: lmdb.Transaction, prefix: str) -> list[bytes]:
    out = []
    for key, value in repo.index.iter_refs(txn, NOTE_PREFIX + prefix.lower()):
        out.append(value)
        if len(out) > 10:
            break
        del key
    return out


def resolve_note(repo: Repository, txn: lmdb.Transaction, ref: str) -> ObjectId:
    """A note by (a unique prefix of) its id."""
    ref = ref.strip()
    if not is_hex_prefix(ref):
        raise RefNotFoundError(f"{ref!r} is not a note id (hex digits)", ref=ref)
    found = _note_matches(repo, txn, ref)
    if not found:
        raise RefNotFoundError(
            f"no note has an id starting with {ref}; `reprocas note ls --all` lists them",
            ref=ref,
        )
    if len(found) > 1:
        raise AmbiguousRefError(
            f"id prefix {ref} matches {len(found)} notes; give more digits", ref=ref
        )
    return ObjectId(found[0])


def resolve_subject(repo: Repository, txn: lmdb.Transaction, ref: str) -> Subject:
    """A note id prefix, a run ref or a version ref, in that order; a ref that could
    name two different kinds of thing is refused."""
    ref = ref.strip()
    candidates: list[Subject] = []
    if is_hex_prefix(ref) and _note_matches(repo, txn, ref):
        nid = resolve_note(repo, txn, ref)
        candidates.append(Subject(nid, "note", f"note {nid.hex[:12]}"))
    if is_run_ref(repo, txn, ref):
        h = resolve_run(repo, txn, ref)
        candidates.append(Subject(h.id, "run", h.ref))
    if not candidates or is_hex_prefix(ref):
        try:
            v = repo.resolve(txn, ref)
        except RefNotFoundError:
            pass
        else:
            kind = "environment" if v.snapshot.kind == "environment" else "version"
            candidates.append(Subject(v.id, kind, v.ref))
    if not candidates:
        raise RefNotFoundError(f"{ref!r} names no version, run or note in this repository", ref=ref)
    if len({c.id for c in candidates}) > 1:
        raise AmbiguousRefError(
            f"{ref!r} could be " + " or ".join(c.label for c in candidates) + "; be more precise",
            ref=ref,
        )
    return candidates[0]


def describe(repo: Repository, txn: lmdb.Transaction, raw: bytes) -> Subject:
    """A stored id as a subject (for listing what a note is about)."""
    oid = ObjectId(raw)
    try:
        s = get_summary(repo, txn, oid)
    except ReprocasError:
        s = None
    if s:
        return Subject(oid, "run", RunHandle(s["name"], s["number"], oid).ref)
    info = repo.version_info(txn, oid)
    try:
        obj = repo.load(txn, oid)
    except ReprocasError:
        obj = None
    if isinstance(obj, Note):
        return Subject(oid, "note", f"note {oid.hex[:12]}")
    if isinstance(obj, Run):
        return Subject(oid, "run", f"{obj.name}#{obj.number}")
    if isinstance(obj, Snapshot):
        kind = "environment" if obj.kind == "environment" else "version"
        label = f"{info[0]}@v{info[1]}" if info else f"{obj.name} {oid.hex[:12]} (forgotten)"
        return Subject(oid, kind, label)
    return Subject(oid, "missing", f"{oid.hex[:12]} (not stored)")
