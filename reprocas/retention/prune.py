"""Prune: delete packs nothing kept needs, repack packs that are mostly unused.

``plan = plan_prune(repo, max_unused)`` reads a consistent snapshot of the index (no
lock) and says what it would do; ``plan.execute()`` does it. Execution is safe while
commits run (docs/RETENTION.md has the argument):

1. under the ``gc`` lock *shared* (as commits hold it), each pack to repack is copied:
   its live blobs, byte for byte, into a new pack that is sealed (fsync, rename) and
   indexed; in that same LMDB transaction the index entries that still point at the old
   pack's blobs move to the new one;
2. under the ``gc`` lock *exclusive* (no commit in flight, held briefly), the versions
   that appeared since the plan was made are walked; an old pack that any of them
   reaches through the index is spared (the next prune takes it); every other doomed
   pack loses its index entries;
3. after that lock is released, the readers that started before (read leases,
   reprocas.store.lease) are waited for, for at most ``lease_wait`` seconds, and then
   the doomed files are deleted; a reader still reading after the wait keeps them on
   disk (reported as ``leased``; unindexed, so the next prune or gc removes them).

A SIGKILL at any point leaves every kept version readable: old packs are deleted only
after their live content is durable elsewhere and indexed; a pack renamed but never
indexed, or a temporary file, is garbage that the next prune (or gc) removes.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import lmdb

from reprocas.errors import ReprocasError
from reprocas.progress import Progress
from reprocas.retention.budget import (
    DEFAULT_MAX_UNUSED,
    CostModel,
    Walker,
    all_roots,
    build_model,
)
from reprocas.store import lease
from reprocas.store.gc import unindex_pack
from reprocas.store.index import ChunkLoc, ObjectLoc, delta_key, pack, put_delta, unpack
from reprocas.store.packs import FrameInfo, PackWriter, read_blob
from reprocas.store.repository import Repository
from reprocas.store.soundness import check_sound


@dataclass(frozen=True, slots=True)
class PackStep:
    """One pack and what prune does with it."""

    pack: bytes
    action: str  # "delete" | "repack"
    size: int
    new_size: int  # 0 for delete
    units: tuple[int, ...]  # live blob units (repack)

    def to_json(self) -> dict[str, Any]:
        return {
            "pack": self.pack.hex(),
            "action": self.action,
            "size": self.size,
            "new_size": self.new_size,
            "freed_bytes": self.size - self.new_size,
        }


@dataclass
class PruneReport:
    """What an executed prune did. ``freed_bytes`` is measured from the packs removed
    and written, and equals the plan's prediction unless commits raced it."""

    deleted: list[str] = field(default_factory=list)
    repacked: list[str] = field(default_factory=list)
    new_packs: list[str] = field(default_factory=list)
    spared: list[str] = field(default_factory=list)
    freed_bytes: int = 0
    garbage_bytes: int = 0
    # Unindexed but left on disk, because readers that started before the prune still
    # held read leases after the wait: the next prune (or gc) removes them.
    leased: list[str] = field(default_factory=list)
    leased_bytes: int = 0
    leased_readers: int = 0

    def to_json(self) -> dict[str, Any]:
        return {
            "deleted": self.deleted,
            "repacked": self.repacked,
            "new_packs": self.new_packs,
            "spared": self.spared,
            "freed_bytes": self.freed_bytes,
            "garbage_bytes": self.garbage_bytes,
            "leased": self.leased,
            "leased_bytes": self.leased_bytes,
            "leased_readers": self.leased_readers,
        }


@dataclass
class PrunePlan:
    """What prune will do; print it, then :meth:`execute` it (or not, for --dry-run)."""

    repo: Repository
    model: CostModel
    roots: frozenset[bytes]
    steps: list[PackStep]
    garbage: list[Path]
    garbage_bytes: int
    max_unused: float

    @property
    def delete(self) -> list[PackStep]:
        return [s for s in self.steps if s.action == "delete"]

    @property
    def repack(self) -> list[PackStep]:
        return [s for s in self.steps if s.action == "repack"]

    @property
    def freed_bytes(self) -> int:
        return sum(s.size - s.new_size for s in self.steps)

    @property
    def size_before(self) -> int:
        return self.model.size_before

    def to_json(self) -> dict[str, Any]:
        return {
            "max_unused": self.max_unused,
            "delete": [s.to_json() for s in self.delete],
            "repack": [s.to_json() for s in self.repack],
            "garbage": [str(p) for p in self.garbage],
            "garbage_bytes": self.garbage_bytes,
            "size_before": self.size_before,
            "size_after": self.size_before - self.freed_bytes,
            "freed_bytes": self.freed_bytes,
            "repack_min_free": {
                "bytes": self.model.min_free[0],
                "share": self.model.min_free[1],
            },
            "not_worth_repacking": [
                {"size": n, "unused_bytes": d} for n, d in self.model.not_worth_repacking()
            ],
        }

    def execute(
        self, *, lease_wait: float = lease.DEFAULT_LEASE_WAIT, progress: Progress | None = None
    ) -> PruneReport:
        """Carry the plan out (see the module docstring for why this is safe);
        ``lease_wait`` bounds the wait for readers that started before."""
        return _execute(self, lease_wait, progress)


def _on_disk_packs(repo: Repository) -> dict[bytes, Path]:
    out: dict[bytes, Path] = {}
    if repo.packs_dir.exists():
        for p in repo.packs_dir.glob("*/*.pack"):
            with contextlib.suppress(ValueError):
                out[bytes.fromhex(p.stem)] = p
    return out


def plan_prune(repo: Repository, max_unused: float = DEFAULT_MAX_UNUSED) -> PrunePlan:
    """Decide which packs to delete and to repack, from one read of the index.

    ``max_unused`` is a fraction (0.1 = 10%): a pack whose unused blobs exceed it is
    repacked; a pack holding anything a forgotten version used is repacked regardless.
    """
    with repo.index.read() as txn:
        # Never delete by an index that lost versions; keep what unfinished commits wrote.
        drafts = check_sound(repo, txn, "prune")
        spare = set(drafts.values())
        with contextlib.suppress(ReprocasError):
            spare |= _needed_packs(repo, txn, set(drafts))
        roots = frozenset(all_roots(repo, txn))
        model = build_model(repo, txn, (), max_unused=max_unused)
        indexed = {bytes(k) for k in txn.cursor(db=repo.index.db["packs"]).iternext(values=False)}
    live = model._live(frozenset())
    forgotten = model._forgotten(frozenset())
    steps: list[PackStep] = []
    for p, pid in enumerate(model.pack_ids):
        if pid in spare:
            continue
        action, live_here = model.pack_action(p, live, forgotten)
        size = model.pack_sizes[p]
        if action == "delete":
            steps.append(PackStep(pid, "delete", size, 0, ()))
        elif action == "repack":
            new = model.repacked_size(p, live_here)
            steps.append(PackStep(pid, "repack", size, new, tuple(live_here)))
    garbage: list[Path] = []
    for pid, path in sorted(_on_disk_packs(repo).items()):
        if pid not in indexed:
            garbage.append(path)  # renamed by a writer (or prune) that died before indexing
    if repo.tmp_dir.exists():
        garbage.extend(sorted(repo.tmp_dir.iterdir()))
    gbytes = 0
    for g in garbage:
        with contextlib.suppress(FileNotFoundError):
            gbytes += g.stat().st_size
    return PrunePlan(repo, model, roots, steps, garbage, gbytes, max_unused)


def _repack_one(repo: Repository, plan: PrunePlan, step: PackStep) -> tuple[bytes, int] | None:
    """Copy a pack's live blobs into a new pack and move their index entries to it."""
    old = repo.pack_path(step.pack)
    if not old.exists():
        return None  # another prune (or gc) already took it
    blobs = [plan.model.unit_blob[u] for u in step.units]
    pw = PackWriter(repo.tmp_dir, repo.packs_dir)
    try:
        for b in blobs:
            payload = read_blob(old, b.offset, b.stored_len)
            if isinstance(b, FrameInfo):
                pw.add_frame(b.codec, payload, b.raw_len, list(b.chunks), b.bases, b.depth)
            else:
                pw.add_object(b.id, b.codec, payload, b.raw_len)
        sealed = pw.seal()
    except BaseException:
        pw.abort()
        raise
    index = repo.index
    new_frames = iter(sealed.trailer.frames)
    new_objects = iter(sealed.trailer.objects)
    with index.write() as txn:
        n_chunks = 0
        for b in blobs:
            if isinstance(b, FrameInfo):
                nf = next(new_frames)
                if b.bases:
                    txn.delete(delta_key(step.pack, b.offset), db=index.db["deltas"])
                    put_delta(txn, index.db, sealed.id.raw, nf)
                for d, off, length in b.chunks:
                    n_chunks += 1
                    loc = index.get_chunk(txn, d)
                    if loc is not None and loc.pack == step.pack and loc.frame_offset == b.offset:
                        moved = ChunkLoc(
                            sealed.id.raw,
                            nf.offset,
                            nf.stored_len,
                            nf.codec,
                            nf.raw_len,
                            off,
                            length,
                        )
                        txn.put(d, moved.to_value(), db=index.db["chunks"])
            else:
                no = next(new_objects)
                oloc = index.get_object(txn, b.id)
                if oloc is not None and oloc.pack == step.pack and oloc.offset == b.offset:
                    txn.put(
                        b.id,
                        ObjectLoc(
                            sealed.id.raw, no.offset, no.stored_len, no.codec, no.raw_len, oloc.data
                        ).to_value(),
                        db=index.db["objects"],
                    )
        txn.put(
            sealed.id.raw,
            pack(
                {
                    "size": sealed.size,
                    "frames": len(sealed.trailer.frames),
                    "chunks": n_chunks,
                    "objects": len(sealed.trailer.objects),
                }
            ),
            db=index.db["packs"],
        )
    return sealed.id.raw, sealed.size


def _needed_packs(repo: Repository, txn: lmdb.Transaction, roots: set[bytes]) -> set[bytes]:
    """The packs the index says these versions' blobs live in."""
    index = repo.index

    def chunk_pack(d: bytes) -> bytes | None:
        loc = index.get_chunk(txn, d)
        return None if loc is None else loc.pack

    def object_pack(oid: bytes) -> bytes | None:
        raw = txn.get(oid, db=index.db["objects"])
        return None if raw is None else bytes(unpack(raw)[0])

    w: Walker[bytes] = Walker(repo, txn, chunk_pack, object_pack)
    out: set[bytes] = set()
    for r in roots:
        out |= w.snapshot(r)
    return out


def _execute(
    plan: PrunePlan,
    lease_wait: float = lease.DEFAULT_LEASE_WAIT,
    progress: Progress | None = None,
) -> PruneReport:
    repo = plan.repo
    report = PruneReport()
    prog = progress or Progress()  # the repacks are the long part: counted in packs
    prog.start(sum(s.size for s in plan.repack), len(plan.repack))
    doomed: dict[bytes, PackStep] = {}
    unindexed: dict[Path, PackStep | None] = {}
    with repo.lock("prune", exclusive=True):
        with repo.lock("gc", exclusive=False):
            for step in plan.steps:
                if step.action == "delete":
                    doomed[step.pack] = step
                    continue
                made = _repack_one(repo, plan, step)
                prog.advance(step.size)
                prog.file_done()
                if made is None:
                    continue
                report.new_packs.append(made[0].hex())
                report.freed_bytes -= made[1]
                doomed[step.pack] = step
        with repo.lock("gc", exclusive=True):
            index = repo.index
            with index.read() as txn:
                new_roots = all_roots(repo, txn) - plan.roots
                needed = _needed_packs(repo, txn, new_roots)
                indexed = {
                    bytes(k) for k in txn.cursor(db=index.db["packs"]).iternext(values=False)
                }
            for pid, step in doomed.items():
                if pid in needed:
                    # A commit made since the plan relies on it: the next prune takes it.
                    report.spared.append(pid.hex())
                    continue
                if pid not in indexed:
                    continue
                unindex_pack(repo, pid)
                unindexed[repo.pack_path(pid)] = step
            for g in plan.garbage:
                if g.suffix == ".pack":
                    with contextlib.suppress(ValueError):
                        if bytes.fromhex(g.stem) not in indexed:
                            unindexed[g] = None  # a reader may still hold it: as above
                    continue
                with contextlib.suppress(FileNotFoundError):
                    report.garbage_bytes += g.stat().st_size
                    g.unlink()
    # Commits go on while prune waits for the readers that started before it.
    removal = lease.remove_unindexed_packs(repo, list(unindexed), lease_wait)
    for path in removal.removed:
        what = unindexed[path]
        size = removal.sizes.get(path, 0)
        if what is None:
            report.garbage_bytes += size
        else:
            report.freed_bytes += size
            (report.deleted if what.action == "delete" else report.repacked).append(path.stem)
    report.leased = [p.stem for p in removal.leased]
    report.leased_bytes = removal.leased_bytes
    report.leased_readers = removal.readers
    return report
