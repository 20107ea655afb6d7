"""Refs on both sides: what kind a ref is, fast-forward, choosing refs, and moving
local refs the way a remote asks (renumbered versions, pulled refs)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import lmdb

from reprocas.errors import RefNotFoundError, ReprocasError
from reprocas.model.ids import ObjectId
from reprocas.model.objects import Run, Snapshot
from reprocas.store.index import pack, unpack
from reprocas.store.repository import Repository, tag_ref, version_ref

RUN_PREFIX = "run:"


@dataclass(frozen=True)
class RefKind:
    kind: str  # "version" | "run" | "tag" | "other"
    name: str = ""
    number: int = 0


def classify(ref: str) -> RefKind:
    parts = ref.split(":")
    if len(parts) == 4 and parts[0] == "ds" and parts[2] == "v" and parts[3].isdigit():
        return RefKind("version", parts[1], int(parts[3]))
    if len(parts) == 4 and parts[0] == "ds" and parts[2] == "tag":
        return RefKind("tag", parts[1])
    if len(parts) == 3 and parts[0] == "run" and parts[2].isdigit():
        return RefKind("run", parts[1], int(parts[2]))
    return RefKind("other")


def numbered_ref(k: RefKind, number: int) -> str:
    if k.kind == "version":
        return version_ref(k.name, number)
    return f"{RUN_PREFIX}{k.name}:{number:010d}"


def numbered_prefix(k: RefKind) -> str:
    return f"ds:{k.name}:v:" if k.kind == "version" else f"{RUN_PREFIX}{k.name}:"


def order_key(ref: str) -> tuple[int, str, int, str]:
    """Versions first (by dataset and number), then runs, then tags and the rest: a tag
    is published after the version it names."""
    k = classify(ref)
    rank = {"version": 0, "run": 1, "tag": 2, "other": 3}[k.kind]
    return rank, k.name, k.number, ref


def is_ancestor(repo: Repository, txn: lmdb.Transaction, old: bytes, new: bytes) -> bool:
    """OLD is NEW or an ancestor of it through ``parent`` (local objects only)."""
    seen = 0
    cur: bytes | None = new
    while cur is not None and seen < 1_000_000:
        if cur == old:
            return True
        if repo.index.get_object(txn, cur) is None:
            return False
        try:
            snap = repo.load_snapshot(txn, ObjectId(cur))
        except ReprocasError:
            return False
        cur = snap.parent.raw if snap.parent is not None else None
        seen += 1
    return False


def select(repo: Repository, txn: lmdb.Transaction, specs: list[str] | None) -> dict[str, bytes]:
    """The local refs SPECS name (all refs when none): an exact ref key, a dataset or run
    name (all its refs), or ``NAME@vN`` / ``NAME@TAG`` (that version, and the tag)."""
    every = dict(repo.index.iter_refs(txn))
    if not specs:
        return every
    out: dict[str, bytes] = {}
    for spec in specs:
        if spec in every:
            out[spec] = every[spec]
            continue
        if "@" not in spec:
            found = {
                k: v
                for k, v in every.items()
                if k.startswith((f"ds:{spec}:", f"{RUN_PREFIX}{spec}:"))
            }
            if not found:
                raise RefNotFoundError(f"no dataset or run named {spec!r} here", ref=spec)
            out.update(found)
            continue
        v = repo.resolve(txn, spec)
        out[version_ref(v.name, v.number)] = v.id.raw
        sel = spec.split("@", 1)[1]
        if tag_ref(v.name, sel) in every:
            out[tag_ref(v.name, sel)] = every[tag_ref(v.name, sel)]
    return out


def _put_version(repo: Repository, txn: lmdb.Transaction, sid: bytes, name: str, n: int) -> None:
    snap = repo.load_snapshot(txn, ObjectId(sid))
    txn.put(sid, pack([snap.kind, name, n]), db=repo.index.db["snapshots"])


def apply_local(
    repo: Repository,
    moves: list[tuple[str, bytes | None, bytes]],
) -> None:
    """Move local refs in one ref transaction: ``(ref, old id or None, new id)``; a
    ``(ref, id, b"")`` entry deletes REF. Version refs keep their ``snapshots`` entry,
    run refs their summary and edges."""
    if not moves:
        return
    from reprocas.provenance import graph
    from reprocas.provenance.names import put_summary

    with repo.ref_transaction() as rt:
        deletes = [(r, ObjectId(old)) for r, old, new in moves if new == b"" and old is not None]
        if deletes:
            rt.delete(deletes)
        sets = [(r, new) for r, _, new in moves if new != b""]
        if not sets:
            return
        rt.set([(r, ObjectId(new)) for r, new in sets])
        for r, new in sets:
            k = classify(r)
            if k.kind == "version":
                _put_version(repo, rt.txn, new, k.name, k.number)
                snap = repo.load_snapshot(rt.txn, ObjectId(new))
                graph.put_edges(repo, rt.txn, graph.derived_edges(new, snap))
            elif k.kind == "run":
                obj = repo.load(rt.txn, ObjectId(new))
                if isinstance(obj, Run):
                    put_summary(repo, rt.txn, ObjectId(new), obj)
                    raw = rt.txn.get(new, db=repo.index.db["runs"])
                    summary: dict[str, Any] = unpack(raw)
                    summary["number"] = k.number  # the number it holds here
                    rt.txn.put(new, pack(summary), db=repo.index.db["runs"])
                    graph.put_edges(repo, rt.txn, graph.run_edges(ObjectId(new), obj))
        # Notes that arrived: their record and their edges to what they are about.
        from reprocas.notes.store import index_arrived

        index_arrived(repo, rt.txn, sets)


def kind_of_snapshot(obj: object) -> str | None:
    return obj.kind if isinstance(obj, Snapshot) else None
