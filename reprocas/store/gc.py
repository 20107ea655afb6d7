"""Reclaim what crashed or abandoned writes left: temporary files and packs nothing needs.

gc takes the repository's writer lock exclusively, so no commit is in flight while it
decides; a pack is deleted only when no version reaches anything in it: its index
entries first, then — once the readers that may still use it are done (read leases,
reprocas.store.lease) — its file.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from reprocas.store import lease
from reprocas.store.index import unpack
from reprocas.store.packs import read_trailer
from reprocas.store.reachability import (
    Reach,
    add_bases,
    all_versions,
    reach_runs,
    reach_snapshot,
)
from reprocas.store.repository import Repository


@dataclass
class GcReport:
    removed_tmp: list[str] = field(default_factory=list)
    removed_packs: list[str] = field(default_factory=list)
    freed_bytes: int = 0
    # Unindexed but left on disk: readers that started before still held leases.
    leased_packs: list[str] = field(default_factory=list)
    leased_bytes: int = 0

    def to_json(self) -> dict[str, Any]:
        return {
            "removed_tmp": self.removed_tmp,
            "removed_packs": self.removed_packs,
            "freed_bytes": self.freed_bytes,
            "leased_packs": self.leased_packs,
            "leased_bytes": self.leased_bytes,
        }


def gc(
    repo: Repository, *, dry_run: bool = False, lease_wait: float = lease.DEFAULT_LEASE_WAIT
) -> GcReport:
    report = GcReport()
    index = repo.index
    with repo.lock("gc", exclusive=True):
        for p in sorted(repo.tmp_dir.iterdir()) if repo.tmp_dir.exists() else []:
            report.removed_tmp.append(str(p))
            report.freed_bytes += p.stat().st_size
            if not dry_run:
                p.unlink()
        reach = Reach()
        with index.read() as txn:
            for _, _, sid in all_versions(repo, txn):
                reach_snapshot(repo, txn, sid, reach)
            reach_runs(repo, txn, reach)  # run records and what they name
            add_bases(repo, txn, reach)  # what delta chunks decode against
            indexed = {bytes(k): unpack(v) for k, v in txn.cursor(db=index.db["packs"])}
        on_disk: dict[bytes, Path] = {}
        if repo.packs_dir.exists():
            for sub in repo.packs_dir.iterdir():
                for pack_file in sub.glob("*.pack"):
                    try:
                        on_disk[bytes.fromhex(pack_file.stem)] = pack_file
                    except ValueError:
                        continue
        doomed: list[bytes] = []
        for pid, path in sorted(on_disk.items()):
            if pid not in indexed:
                doomed.append(pid)  # sealed by a writer that died before indexing it
                continue
            try:
                trailer = read_trailer(path)
            except Exception:
                continue
            used = any(d in reach.chunks for f in trailer.frames for d, _, _ in f.chunks) or any(
                o.id in reach.objects for o in trailer.objects
            )
            if not used:
                doomed.append(pid)
        if dry_run:
            for pid in doomed:
                report.removed_packs.append(str(on_disk[pid]))
                report.freed_bytes += on_disk[pid].stat().st_size
            return report
        for pid in doomed:
            if pid in indexed:
                unindex_pack(repo, pid)
    # The files go after the lock is released (commits need not wait for readers).
    removal = lease.remove_unindexed_packs(repo, [on_disk[p] for p in doomed], lease_wait)
    report.removed_packs += [str(p) for p in removal.removed]
    report.freed_bytes += removal.freed_bytes
    report.leased_packs = [str(p) for p in removal.leased]
    report.leased_bytes = removal.leased_bytes
    return report


def unindex_pack(repo: Repository, pid: bytes) -> int:
    """Remove a pack's index entries (those still pointing at it) in one transaction;
    returns its size. Its file goes later, through
    :func:`reprocas.store.lease.remove_unindexed_packs`, once no reader needs it."""
    path = repo.pack_path(pid)
    index = repo.index
    try:
        trailer = read_trailer(path)
    except Exception:
        trailer = None
    with index.write() as txn:
        raw = txn.get(pid, db=index.db["packs"])
        size = int(unpack(raw).get("size", 0)) if raw is not None else 0
        if trailer is not None:
            for f in trailer.frames:
                for d, _, _ in f.chunks:
                    loc = index.get_chunk(txn, d)
                    if loc is not None and loc.pack == pid:
                        txn.delete(d, db=index.db["chunks"])
            for o in trailer.objects:
                oloc = index.get_object(txn, o.id)
                if oloc is not None and oloc.pack == pid:
                    txn.delete(o.id, db=index.db["objects"])
        txn.delete(pid, db=index.db["packs"])
    with contextlib.suppress(OSError):
        size = size or path.stat().st_size
    return size
