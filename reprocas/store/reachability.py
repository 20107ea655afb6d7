"""Walking what refs reach: versions → trees → manifests → chunks."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

import lmdb

from reprocas.model.ids import ObjectId
from reprocas.model.objects import FileManifest, Tree
from reprocas.store.repository import Repository


@dataclass
class Reach:
    """Objects and chunks reachable from a set of snapshots."""

    objects: set[bytes] = field(default_factory=set)
    chunks: dict[bytes, int] = field(default_factory=dict)  # digest -> length
    logical_bytes: int = 0
    files: int = 0


def all_versions(repo: Repository, txn: lmdb.Transaction) -> Iterator[tuple[str, int, ObjectId]]:
    for name in repo.datasets(txn):
        for number, sid in repo.versions(txn, name):
            yield name, number, sid


def reach_snapshot(
    repo: Repository,
    txn: lmdb.Transaction,
    sid: ObjectId,
    into: Reach | None = None,
    *,
    manifest_cache: dict[bytes, FileManifest] | None = None,
) -> Reach:
    """Everything one snapshot needs (added to ``into`` when given)."""
    r = into if into is not None else Reach()
    r.objects.add(sid.raw)
    snap = repo.load_snapshot(txn, sid)
    env = snap.extra.get("environment")
    if isinstance(env, bytes):
        r.objects.add(env)  # an environment snapshot's facts object
    stack = [snap.root.raw]
    while stack:
        tid = stack.pop()
        if tid in r.objects and tid != snap.root.raw:
            continue
        r.objects.add(tid)
        tree = repo.load(txn, ObjectId(tid))
        if not isinstance(tree, Tree):
            continue
        for e in tree.entries:
            if e.kind == "dir":
                stack.append(e.target)
            elif e.kind == "file":
                r.files += 1
                r.logical_bytes += e.size
                if e.meta is not None:
                    r.objects.add(e.meta)  # the file's table record
                if e.target in r.objects:
                    continue
                r.objects.add(e.target)
                m = manifest_cache.get(e.target) if manifest_cache is not None else None
                if m is None:
                    m = repo.load_manifest(txn, ObjectId(e.target))
                    if manifest_cache is not None:
                        manifest_cache[e.target] = m
                for d, n in m.chunks:
                    r.chunks[d] = n
    return r
