"""What the store costs: logical vs stored bytes, dedup, and what each version alone holds."""

from __future__ import annotations

import contextlib
import os
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from reprocas.store.index import ChunkLoc
from reprocas.store.reachability import all_versions, reach_snapshot
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
        }


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
    return loc.stored_len * loc.length / loc.raw_len if loc.raw_len else 0.0


def du(repo: Repository) -> DuReport:
    """Usage of the whole repository, with every version's exclusive bytes."""
    index = repo.index
    per_version: list[tuple[str, str, int, set[bytes]]] = []
    refcount: Counter[bytes] = Counter()
    cache: dict[bytes, Any] = {}
    logical = 0
    with index.read() as txn:
        for name, number, sid in all_versions(repo, txn):
            snap = repo.load_snapshot(txn, sid)
            r = reach_snapshot(repo, txn, sid, manifest_cache=cache)
            chunks = set(r.chunks)
            refcount.update(chunks)
            per_version.append((f"{name}@v{number}", sid.hex, snap.logical_bytes, chunks))
            logical += snap.logical_bytes
        cost: dict[bytes, float] = {}
        unique = 0
        for d in refcount:
            loc = index.get_chunk(txn, d)
            if loc is None:
                continue
            cost[d] = stored_cost(loc)
            unique += loc.length
    versions = [
        VersionUsage(ref, sid, lb, round(sum(cost.get(d, 0.0) for d in chunks if refcount[d] == 1)))
        for ref, sid, lb, chunks in per_version
    ]
    return DuReport(
        logical_bytes=logical,
        stored_bytes=disk_usage(repo.root),
        unique_bytes=unique,
        chunk_stored_bytes=round(sum(cost.values())),
        versions=versions,
    )
