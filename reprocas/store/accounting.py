"""What the store costs: logical vs stored bytes, dedup, and what each version alone holds."""

from __future__ import annotations

import contextlib
import math
import os
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import lmdb

from reprocas.errors import StorageIOError
from reprocas.model.ids import ID_BYTES, ObjectId
from reprocas.model.objects import Run, Snapshot
from reprocas.store import refcounts
from reprocas.store.index import ChunkLoc, unpack
from reprocas.store.reachability import (
    Reach,
    add_bases,
    all_versions,
    reach_snapshot,
    reach_tree,
    run_snapshots,
)
from reprocas.store.repository import Repository


@dataclass(frozen=True, slots=True)
class VersionUsage:
    ref: str
    id: str
    logical_bytes: int
    exclusive_bytes: int

    def to_json(self) -> dict[str, Any]:
        return {
            "ref": self.ref,
            "id": self.id,
            "logical_bytes": self.logical_bytes,
            "exclusive_bytes": self.exclusive_bytes,
        }


@dataclass
class DuReport:
    logical_bytes: int
    stored_bytes: int
    unique_bytes: int
    chunk_stored_bytes: int
    versions: list[VersionUsage] = field(default_factory=list)
    stored: StoredBytes | None = None

    @property
    def dedup_ratio(self) -> float:
        return self.logical_bytes / self.unique_bytes if self.unique_bytes else 1.0

    @property
    def compression_ratio(self) -> float:
        return self.unique_bytes / self.chunk_stored_bytes if self.chunk_stored_bytes else 1.0

    def to_json(self) -> dict[str, Any]:
        return {
            "logical_bytes": self.logical_bytes,
            "stored_bytes": self.stored_bytes,
            "unique_bytes": self.unique_bytes,
            "dedup_ratio": round(self.dedup_ratio, 4),
            "compression_ratio": round(self.compression_ratio, 4),
            "versions": [v.to_json() for v in self.versions],
            "stored": self.stored.to_json() if self.stored else None,
        }


@dataclass(frozen=True, slots=True)
class StoredBytes:
    """What "stored" means everywhere (`du`, `forget`, `prune`): the bytes of the
    repository directory, in its parts — the packs (the data), the LMDB index, and the
    rest (ref log, config, temporary files)."""

    packs: int
    index: int
    other: int

    @property
    def total(self) -> int:
        return self.packs + self.index + self.other

    def after_freeing(self, pack_bytes: int) -> StoredBytes:
        """The same store with ``pack_bytes`` fewer bytes of packs (what prune frees;
        the index is assumed unchanged, which it nearly is)."""
        return StoredBytes(max(0, self.packs - pack_bytes), self.index, self.other)

    def to_json(self) -> dict[str, int]:
        return {"total": self.total, "packs": self.packs, "index": self.index, "other": self.other}


def stored_parts(root: Path) -> StoredBytes:
    """Apparent sizes of the files of the repository at ``root``, by part."""
    parts = {"packs": 0, "index": 0, "other": 0}
    for dirpath, _, files in os.walk(root):
        rel = os.path.relpath(dirpath, root).split(os.sep)[0]
        part = rel if rel in ("packs", "index") else "other"
        for f in files:
            with contextlib.suppress(FileNotFoundError):
                parts[part] += os.lstat(os.path.join(dirpath, f)).st_size
    return StoredBytes(**parts)


def disk_usage(root: Path) -> int:
    """Bytes the repository directory occupies (apparent sizes of its files)."""
    total = 0
    for dirpath, _, files in os.walk(root):
        for f in files:
            with contextlib.suppress(FileNotFoundError):
                total += os.lstat(os.path.join(dirpath, f)).st_size
    return total


def stored_cost(loc: ChunkLoc) -> float:
    """A chunk's share of its frame's stored bytes."""
    return _share(loc.stored_len, loc.length, loc.raw_len)


def _share(stored_len: int, length: int, raw_len: int) -> float:
    return stored_len * length / raw_len if raw_len else 0.0


def du(repo: Repository, *, recompute: bool = False) -> DuReport:
    """Usage of the whole repository, with every version's exclusive bytes.

    A version's exclusive bytes are the stored cost (:func:`stored_cost`) of the chunks
    it reaches that no other live root reaches — no other version, and no run (a run
    keeps its own files and every snapshot it names, as prune does; a version a run
    names therefore holds nothing alone). They are read from the reference counts
    (reprocas.store.refcounts), walking only what each version alone holds; the counts
    are made once if the repository has none. ``recompute`` walks every root instead
    (the reference computation, and the fallback when the counts cannot be written).
    """
    if recompute or not refcounts.ensure_current(repo):
        return _du_walk(repo)
    try:
        return _du_counted(repo)
    except refcounts.StaleCountsError:
        # Counts that disagree with the objects (damage, or a writer that bypassed the
        # ref transaction): recount once, then fall back to the walk.
        try:
            with repo.index.write() as txn:
                refcounts.recompute(repo, txn)
            return _du_counted(repo)
        except (refcounts.StaleCountsError, StorageIOError):
            return _du_walk(repo)


def _report(
    repo: Repository,
    logical: int,
    live: dict[bytes, tuple[int, float]],
    versions: list[VersionUsage],
) -> DuReport:
    stored = stored_parts(repo.root)
    return DuReport(
        logical_bytes=logical,
        stored_bytes=stored.total,
        stored=stored,
        unique_bytes=sum(n for n, _ in live.values()),
        chunk_stored_bytes=round(math.fsum(c for _, c in live.values())),
        versions=versions,
    )


def _costs(
    repo: Repository, txn: lmdb.Transaction, digests: Iterable[bytes]
) -> dict[bytes, tuple[int, float]]:
    """Each indexed chunk's length and stored cost (chunks missing from the index, as
    after damage, cost nothing)."""
    db = repo.index.db["chunks"]
    get = txn.get
    out: dict[bytes, tuple[int, float]] = {}
    for d in digests:
        raw = get(d, db=db)
        if raw is not None:
            v = unpack(raw)  # ChunkLoc's fields, decoded without building one
            out[d] = (v[6], _share(v[2], v[6], v[4]))
    return out


def _du_counted(repo: Repository) -> DuReport:
    index = repo.index
    with index.read() as txn:
        if not refcounts.is_current(repo, txn):
            raise refcounts.StaleCountsError("the reference counts moved on")
        live = _costs(repo, txn, refcounts.live_chunks(repo, txn))
        named = Counter(v for _, v in index.iter_refs(txn))
        count = refcounts.lmdb_reader(repo, txn)
        children = refcounts.Children(repo, txn)
        versions: list[VersionUsage] = []
        logical = 0
        for name, number, sid in all_versions(repo, txn):
            snap = repo.load_snapshot(txn, sid)
            exclusive = refcounts.exclusive_chunks(count, children, sid.raw, named[sid.raw])
            cost = math.fsum(live[d][1] for d in exclusive if d in live)
            versions.append(
                VersionUsage(f"{name}@v{number}", sid.hex, snap.logical_bytes, round(cost))
            )
            logical += snap.logical_bytes
    return _report(repo, logical, live, versions)


def root_chunks(
    repo: Repository, txn: lmdb.Transaction, oid: ObjectId, cache: dict[bytes, Any]
) -> set[bytes]:
    """The chunks one root (the object a ref names) keeps alive, by walking it: a
    snapshot's tree; a run's own tree and the snapshots it names; and the bases the
    delta chunks among them decode against."""
    obj = repo.load(txn, oid)
    r = Reach()
    if isinstance(obj, Snapshot):
        reach_snapshot(repo, txn, oid, r, manifest_cache=cache)
    elif isinstance(obj, Run):
        if obj.root is not None:
            reach_tree(repo, txn, obj.root.raw, r, manifest_cache=cache)
        for sid in run_snapshots(repo, txn, obj):
            reach_snapshot(repo, txn, sid, r, manifest_cache=cache)
    return set(add_bases(repo, txn, r).chunks)


def _du_walk(repo: Repository) -> DuReport:
    """``du`` by walking every root: no counts (the reference computation)."""
    index = repo.index
    per_version: list[tuple[str, str, int, set[bytes]]] = []
    refcount: Counter[bytes] = Counter()
    cache: dict[bytes, Any] = {}
    logical = 0
    with index.read() as txn:
        of_root: dict[bytes, set[bytes]] = {}
        for _, value in index.iter_refs(txn):
            if value not in of_root and len(value) == ID_BYTES:
                of_root[value] = root_chunks(repo, txn, ObjectId(value), cache)
                refcount.update(of_root[value])
        for name, number, sid in all_versions(repo, txn):
            snap = repo.load_snapshot(txn, sid)
            per_version.append((f"{name}@v{number}", sid.hex, snap.logical_bytes, of_root[sid.raw]))
            logical += snap.logical_bytes
        live = _costs(repo, txn, refcount)
    out = [
        VersionUsage(
            ref,
            sid,
            lb,
            round(math.fsum(live[d][1] for d in chunks if refcount[d] == 1 and d in live)),
        )
        for ref, sid, lb, chunks in per_version
    ]
    return _report(repo, logical, live, out)
