"""Reclaim what crashed or abandoned writes left: temporary files and packs nothing needs.

gc takes the repository's writer lock exclusively, so no commit is in flight while it
decides; a pack is deleted only when no version reaches anything in it, and only by an
index that accounts for every snapshot the packs hold (reprocas.store.soundness): its
index entries first, then — once the readers that may still use it are done (read
leases, reprocas.store.lease) — its file. A pack whose trailer cannot be read is never
deleted.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import lmdb

from reprocas.errors import IntegrityError, ReprocasError
from reprocas.model.ids import ObjectId
from reprocas.progress import Progress
from reprocas.store import lease
from reprocas.store.index import unpack
from reprocas.store.packs import PackTrailer, read_trailer
from reprocas.store.reachability import (
    Reach,
    add_bases,
    all_versions,
    reach_notes,
    reach_runs,
    reach_snapshot,
)
from reprocas.store.repository import Repository
from reprocas.store.soundness import check_sound


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


def file_size(path: Path) -> int:
    """``path``'s size, 0 when it is gone or unreadable."""
    try:
        return path.stat().st_size
    except OSError:
        return 0


def gc(
    repo: Repository,
    *,
    dry_run: bool = False,
    lease_wait: float = lease.DEFAULT_LEASE_WAIT,
    progress: Progress | None = None,
) -> GcReport:
    report = GcReport()
    index = repo.index
    with repo.lock("gc", exclusive=True):
        for p in sorted(repo.tmp_dir.iterdir()) if repo.tmp_dir.exists() else []:
            report.removed_tmp.append(str(p))
            report.freed_bytes += p.stat().st_size
            if not dry_run:
                p.unlink()
        on_disk: dict[bytes, Path] = {}
        if repo.packs_dir.exists():
            for sub in repo.packs_dir.iterdir():
                for pack_file in sub.glob("*.pack"):
                    try:
                        on_disk[bytes.fromhex(pack_file.stem)] = pack_file
                    except ValueError:
                        continue
        trailers: dict[bytes, PackTrailer | None] = {}
        sizes = {pid: file_size(path) for pid, path in on_disk.items()} if progress else {}
        if progress is not None:
            progress.start(sum(sizes.values()), len(on_disk))
        for pid, path in on_disk.items():
            try:
                trailers[pid] = read_trailer(path)
            except IntegrityError:
                trailers[pid] = None  # damaged: never deleted (index rebuild salvages it)
            if progress is not None:
                progress.advance(sizes[pid])
                progress.file_done()
        sound = {k: t for k, t in trailers.items() if t is not None}
        reach = Reach()
        with index.read() as txn:
            # Nothing is deleted by an index that knows fewer versions than the packs.
            drafts = check_sound(repo, txn, "collect garbage", sound)
            for draft in drafts:  # kept: see reprocas.store.soundness
                with contextlib.suppress(ReprocasError):
                    reach_snapshot(repo, txn, ObjectId(draft), reach)
            for _, _, sid in all_versions(repo, txn):
                reach_snapshot(repo, txn, sid, reach)
            reach_runs(repo, txn, reach)  # run records and what they name
            reach_notes(repo, txn, reach)  # decision notes and pins
            add_bases(repo, txn, reach)  # what delta chunks decode against
            indexed = {bytes(k): unpack(v) for k, v in txn.cursor(db=index.db["packs"])}
        doomed: list[bytes] = []
        for pid in sorted(on_disk):
            trailer = trailers[pid]
            if trailer is None:
                if pid not in indexed and not _holds_versions(repo, on_disk[pid]):
                    doomed.append(pid)  # unreadable, unindexed, and no tree or snapshot in it
                continue  # otherwise kept: `index rebuild` salvages it
            if pid in drafts.values():
                continue
            if pid not in indexed:
                doomed.append(pid)  # sealed by a writer that died before indexing it
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


def _holds_versions(repo: Repository, path: Path) -> bool:
    """Whether a pack whose trailer is damaged still holds a tree or snapshot object
    (found by salvaging it, reprocas.store.rebuild.salvage)."""
    from reprocas.model.objects import Snapshot, Tree, object_from_wire
    from reprocas.store import codec
    from reprocas.store.rebuild.salvage import salvage_pack

    try:
        found = salvage_pack(path.read_bytes(), repo.params, repo.config.compression.frame_size)
    except OSError:
        return True
    for _, data in found.objects:
        with contextlib.suppress(Exception):
            if isinstance(object_from_wire(codec.decode(data)), (Snapshot, Tree)):
                return True
    return False


def unindex_file_keys(repo: Repository, txn: lmdb.Transaction, oid: bytes, data: bytes) -> None:
    """A chunk map or table record leaving the index takes its ``chunkmaps``/``tables``
    entry along (format 3), so no entry names an object that is gone."""
    from reprocas.store.files import unindex_object

    unindex_object(repo, txn, oid, data)


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
                    unindex_file_keys(repo, txn, o.id, oloc.data)
        txn.delete(pid, db=index.db["packs"])
    with contextlib.suppress(OSError):
        size = size or path.stat().st_size
    return size
