"""Purge: delete now, and provably, every byte nothing kept needs (``rm --purge``).

Prune leaves dead bytes behind on purpose — a frame holding a kept chunk is copied
whole with its dead neighbours, a delta chunk keeps its bases alive, a run keeps what
it used, a pack little used waits for the threshold. Purge leaves nothing: after it,
every pack holds only blobs a kept root reaches *directly*:

* the live set is walked from every ref (versions, tags, runs — a run no longer keeps
  the snapshots removed with ``rm --purge``, reprocas.store.reachability.purged_ids)
  and from unfinished commits' snapshots (kept, as gc keeps them); delta bases are
  *not* added: a chunk only a delta needs is not kept for it;
* a pack whose every blob is live (and whose delta frames decode against live chunks
  only) stays as it is; any other pack is rewritten: live blobs are copied byte for
  byte, and a frame holding a dead chunk, or coded against one, is decoded (its chunks
  checked against their digests) and its live chunks stored anew as one plain frame;
  a pack with nothing live is deleted;
* the index follows in one transaction: moved entries, the old packs' entries gone,
  and every record that still named dead data (chunk and object entries, delta and
  base-set records, files-cache entries whose manifest went) removed; the reference
  counts are recounted;
* the old pack files, leftovers of failed writes and temporary files are deleted
  (directories fsynced) once the readers that started before have finished (read
  leases); a reader still reading after ``lease_wait`` fails the purge with a clear
  error (the files are unindexed; ``rm --purge`` again finishes);
* then every pack file on disk is read again: a chunk, delta base or object outside
  the live set is an error (the proof), and ``verify --read-data`` must pass.

Everything from the walk to the proof runs under the gc lock held exclusively: commits
wait (readers do not), so nothing can become live or dead meanwhile. A SIGKILL leaves
a sound repository: old packs lose their index entries only in the transaction that
indexes their replacement, which are sealed (fsynced) before; files left unindexed are
removed by the next purge, prune or gc.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import lmdb

from reprocas.errors import IntegrityError, LockTimeoutError, ReprocasError
from reprocas.model.ids import ID_BYTES, ObjectId
from reprocas.model.objects import Snapshot
from reprocas.native import core
from reprocas.progress import Progress
from reprocas.store import lease, refcounts
from reprocas.store.files import CHUNKMAPS, TABLES
from reprocas.store.frames import FrameDecoder
from reprocas.store.gc import file_size
from reprocas.store.index import (
    ChunkLoc,
    ObjectLoc,
    baseset_key,
    delta_key,
    pack,
    put_delta,
    unpack,
)
from reprocas.store.packs import (
    CODEC_DELTA,
    FrameInfo,
    ObjectInfo,
    PackTrailer,
    PackWriter,
    fsync_dir,
    read_blob,
    read_trailer,
)
from reprocas.store.reachability import Reach, purged_ids, reach_runs, reach_snapshot
from reprocas.store.repository import Repository
from reprocas.store.soundness import check_sound
from reprocas.store.verify import verify


class PurgeIncompleteError(LockTimeoutError):
    """Readers that started before the purge still held old packs after the wait: the
    purged data is unindexed but its files are still on disk (exit code 8)."""


@dataclass
class PurgeReport:
    """What a purge did, and what proves it."""

    versions: list[str] = field(default_factory=list)  # removed with --purge, ever
    chunks_purged: int = 0  # distinct chunks no longer stored
    objects_purged: int = 0
    removed_chunks: int = 0  # of those, chunks that only purged versions used
    shared_chunks: int = 0  # chunks purged versions used that kept ones hold too: kept
    reencoded_chunks: int = 0  # live chunks of delta frames stored anew
    deleted: list[str] = field(default_factory=list)
    rewritten: list[str] = field(default_factory=list)
    new_packs: list[str] = field(default_factory=list)
    garbage: list[str] = field(default_factory=list)
    freed_bytes: int = 0
    index_records: int = 0  # index entries that named dead data, removed
    filecache_entries: int = 0
    packs_checked: int = 0  # packs read for the proof
    verify: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "versions": self.versions,
            "chunks_purged": self.chunks_purged,
            "objects_purged": self.objects_purged,
            "removed_chunks": self.removed_chunks,
            "shared_chunks": self.shared_chunks,
            "reencoded_chunks": self.reencoded_chunks,
            "deleted_packs": self.deleted,
            "rewritten_packs": self.rewritten,
            "new_packs": self.new_packs,
            "garbage": self.garbage,
            "freed_bytes": self.freed_bytes,
            "index_records": self.index_records,
            "filecache_entries": self.filecache_entries,
            "packs_checked": self.packs_checked,
            "verify": self.verify,
        }


def live_set(repo: Repository, txn: lmdb.Transaction, drafts: dict[bytes, bytes]) -> Reach:
    """Everything a kept root reaches directly (no delta bases). An unreadable root
    raises: nothing is deleted by a walk that could not see everything."""
    reach = Reach()
    for draft in drafts:
        with contextlib.suppress(ReprocasError):
            reach_snapshot(repo, txn, ObjectId(draft), reach)
    for key, value in repo.index.iter_refs(txn, ""):
        if key.startswith("run:") or len(value) != ID_BYTES:
            continue  # runs: below; a value that is no id names nothing stored
        if value in reach.objects:
            continue
        obj = repo.load(txn, ObjectId(value))
        if isinstance(obj, Snapshot):
            reach_snapshot(repo, txn, ObjectId(value), reach)
        else:
            reach.objects.add(value)
    return reach_runs(repo, txn, reach)


def _purged_refs(repo: Repository, txn: lmdb.Transaction) -> tuple[list[str], Reach]:
    """The versions removed with --purge and what they reached (those still stored)."""
    refs: list[str] = []
    reach = Reach()
    ids = purged_ids(repo, txn)
    for sid in sorted(ids):
        raw = txn.get(sid, db=repo.index.db["forgotten"])
        if raw is not None:
            refs.append(str(unpack(raw).get("ref", sid.hex()[:12])))
        with contextlib.suppress(ReprocasError):
            reach_snapshot(repo, txn, ObjectId(sid), reach)
    return sorted(refs), reach


@dataclass
class _Rewrite:
    """One pack to rewrite: the blobs kept (in offset order) — stored frames or
    objects copied as they are, or decoded chunks to store as a new plain frame."""

    pid: bytes
    trailer: PackTrailer
    keep: list[FrameInfo | ObjectInfo | tuple[FrameInfo, list[tuple[bytes, bytes]]]]


def _plan_pack(
    repo: Repository,
    txn: lmdb.Transaction,
    decoder: FrameDecoder,
    pid: bytes,
    trailer: PackTrailer,
    live: Reach,
    report: PurgeReport,
) -> _Rewrite | None:
    """None when the pack holds only live blobs; else what to keep of it."""
    index = repo.index
    changed = False
    keep: list[Any] = []
    blobs: list[FrameInfo | ObjectInfo] = [*trailer.frames, *trailer.objects]
    blobs.sort(key=lambda b: b.offset)
    for b in blobs:
        if isinstance(b, ObjectInfo):
            oloc = index.get_object(txn, b.id)
            here = oloc is not None and oloc.pack == pid and oloc.offset == b.offset
            if b.id in live.objects and here:
                keep.append(b)
            else:
                changed = True
            continue
        mine = []
        for d, off, n in b.chunks:
            loc = index.get_chunk(txn, d)
            if d in live.chunks and loc is not None and loc.frame_key == (pid, b.offset):
                mine.append((d, off, n, loc))
        bases_live = b.codec != CODEC_DELTA or all(x in live.chunks for x in b.bases)
        if len(mine) == len(b.chunks) and bases_live:
            keep.append(b)
            continue
        changed = True
        if not mine:
            continue
        frame = decoder.load(txn, [mine[0][3]])[(pid, b.offset)]
        chunks = [(d, bytes(decoder.verified_chunk(frame, loc, d))) for d, _, _, loc in mine]
        if b.codec == CODEC_DELTA:
            report.reencoded_chunks += len(chunks)
        keep.append((b, chunks))
    return _Rewrite(pid, trailer, keep) if changed else None


def _write(repo: Repository, rw: _Rewrite) -> tuple[Any, list[Any]] | None:
    """Seal the pack of what ``rw`` keeps; returns it and the new blob of each kept one."""
    if not rw.keep:
        return None
    old = repo.pack_path(rw.pid)
    level = repo.config.compression.level
    pw = PackWriter(repo.tmp_dir, repo.packs_dir)
    made: list[Any] = []
    try:
        for k in rw.keep:
            if isinstance(k, ObjectInfo):
                payload = read_blob(old, k.offset, k.stored_len)
                made.append(pw.add_object(k.id, k.codec, payload, k.raw_len))
            elif isinstance(k, FrameInfo):
                payload = read_blob(old, k.offset, k.stored_len)
                made.append(
                    pw.add_frame(k.codec, payload, k.raw_len, list(k.chunks), k.bases, k.depth)
                )
            else:
                _, chunks = k
                data = b"".join(c for _, c in chunks)
                [(codec_id, payload)] = core.compress_chunks([data], level)
                layout: list[tuple[bytes, int, int]] = []
                pos = 0
                for d, c in chunks:
                    layout.append((d, pos, len(c)))
                    pos += len(c)
                made.append(pw.add_frame(codec_id, payload, len(data), layout))
        sealed = pw.seal()
    except BaseException:
        pw.abort()
        raise
    return sealed, made


def _index(
    repo: Repository,
    txn: lmdb.Transaction,
    rw: _Rewrite,
    written: tuple[Any, list[Any]] | None,
) -> None:
    """Move the kept blobs' entries to the new pack; drop the old pack's entries."""
    index = repo.index
    db = index.db
    if written is not None:
        sealed, made = written
        new = sealed.id.raw
        n_chunks = 0
        for k, nb in zip(rw.keep, made, strict=True):
            if isinstance(nb, ObjectInfo):
                oloc = index.get_object(txn, nb.id)
                if oloc is not None and oloc.pack == rw.pid:
                    moved = ObjectLoc(
                        new, nb.offset, nb.stored_len, nb.codec, nb.raw_len, oloc.data
                    )
                    txn.put(nb.id, moved.to_value(), db=db["objects"])
                continue
            if nb.bases:
                put_delta(txn, db, new, nb)
            assert not isinstance(k, ObjectInfo)  # frames map to frames
            old_offset = k.offset if isinstance(k, FrameInfo) else k[0].offset
            for d, off, n in nb.chunks:
                n_chunks += 1
                loc = index.get_chunk(txn, d)
                if loc is not None and loc.frame_key == (rw.pid, old_offset):
                    cl = ChunkLoc(new, nb.offset, nb.stored_len, nb.codec, nb.raw_len, off, n)
                    txn.put(d, cl.to_value(), db=db["chunks"])
        info = {
            "size": sealed.size,
            "frames": len(sealed.trailer.frames),
            "chunks": n_chunks,
            "objects": len(sealed.trailer.objects),
        }
        txn.put(new, pack(info), db=db["packs"])
    for f in rw.trailer.frames:
        txn.delete(delta_key(rw.pid, f.offset), db=db["deltas"])
        for d, _, _ in f.chunks:
            loc = index.get_chunk(txn, d)
            if loc is not None and loc.pack == rw.pid:
                txn.delete(d, db=db["chunks"])
    for o in rw.trailer.objects:
        oloc = index.get_object(txn, o.id)
        if oloc is not None and oloc.pack == rw.pid:
            txn.delete(o.id, db=db["objects"])
    txn.delete(rw.pid, db=db["packs"])


def _sweep(
    repo: Repository,
    txn: lmdb.Transaction,
    live: Reach,
    removed: Reach,
    report: PurgeReport,
) -> None:
    """Remove every index record that still names dead data, and every files-cache
    entry naming a file a purged version held, even one a kept version holds too: its
    key is the path the purged data was committed from, which may itself say too much
    (the cache only saves a re-read)."""
    db = repo.index.db
    packs = {bytes(k) for k in txn.cursor(db=db["packs"]).iternext(values=False)}
    doomed: list[tuple[str, bytes]] = []
    for k in txn.cursor(db=db["chunks"]).iternext(values=False):
        if bytes(k) not in live.chunks:
            doomed.append(("chunks", bytes(k)))
    for k in txn.cursor(db=db["objects"]).iternext(values=False):
        if bytes(k) not in live.objects:
            doomed.append(("objects", bytes(k)))
    frames_bases: set[bytes] = set()
    basesets: list[bytes] = []
    for k, v in txn.cursor(db=db["deltas"]):
        key = bytes(k)
        if key[:1] == b"b" and len(key) == 33:
            basesets.append(key)
        elif key[:32] not in packs:
            doomed.append(("deltas", key))
        else:
            frames_bases.add(baseset_key([bytes(b) for b in unpack(v)[1]]))
    doomed += [("deltas", k) for k in basesets if k not in frames_bases]
    # Format 3: a file digest's chunk map or table record that is gone takes its entry
    # along (a later commit of the same bytes must not find a chunk map that is gone).
    for name in (CHUNKMAPS, TABLES):
        for k, v in txn.cursor(db=db[name]):
            if bytes(v) not in live.objects:
                doomed.append((name, bytes(k)))
    for name, key in doomed:
        txn.delete(key, db=db[name])
    report.index_records += len(doomed)
    stale: list[bytes] = []
    for k, v in txn.cursor(db=db["filecache"]):
        try:
            _, _, _, mid, *rest = unpack(v)
        except (ValueError, TypeError):
            stale.append(bytes(k))
            continue
        meta = rest[0] if rest and rest[0] is not None else None
        ids = [bytes(mid)] + ([bytes(meta)] if meta is not None else [])
        if any(i not in live.objects or i in removed.objects for i in ids):
            stale.append(bytes(k))
    for k in stale:
        txn.delete(k, db=db["filecache"])
    report.filecache_entries = len(stale)
    refcounts.recompute(repo, txn)


def _prove(repo: Repository, live: Reach, removed: Reach, report: PurgeReport) -> None:
    """Read every pack file on disk: nothing outside the live set may remain."""
    bad: list[str] = []
    left_tmp = sorted(repo.tmp_dir.iterdir()) if repo.tmp_dir.exists() else []
    bad += [f"temporary file {p}" for p in left_tmp]
    for path in sorted(repo.packs_dir.glob("*/*.pack")):
        report.packs_checked += 1
        try:
            trailer = read_trailer(path)
        except IntegrityError as exc:
            bad.append(f"{path} cannot be read ({exc})")
            continue
        for f in trailer.frames:
            dead = [d for d, _, _ in f.chunks if d not in live.chunks]
            dead += [b for b in f.bases if b not in live.chunks]
            if dead:
                which = "a removed version's" if any(d in removed.chunks for d in dead) else "a"
                bad.append(f"{path}: frame at {f.offset} holds {which} dead chunk {dead[0].hex()}")
        for o in trailer.objects:
            if o.id not in live.objects:
                bad.append(f"{path}: object {o.id.hex()} is dead")
    if bad:
        raise IntegrityError(
            f"purge could not prove the data gone: {'; '.join(bad[:3])}"
            + (f" and {len(bad) - 3} more" if len(bad) > 3 else ""),
            problems=bad,
        )


def purge(
    repo: Repository, *, lease_wait: float = 60.0, progress: Progress | None = None
) -> PurgeReport:
    """Delete every byte nothing kept needs, now; prove it; verify (see the module
    docstring). Raises when it cannot finish, saying what is left and how to finish."""
    report = PurgeReport()
    index = repo.index
    with repo.lock("prune", exclusive=True), repo.lock("gc", exclusive=True):
        damaged_dir = repo.root / "damaged"
        if damaged_dir.exists() and any(damaged_dir.iterdir()):
            raise IntegrityError(
                f"{damaged_dir} holds damaged packs set aside by `index rebuild`, which purge "
                "cannot read: it could not prove their data gone; delete them (after "
                "checking `reprocas verify`) and run `reprocas rm --purge` again",
                path=str(damaged_dir),
            )
        rewrites: list[_Rewrite] = []
        with index.read() as txn:
            drafts = check_sound(repo, txn, "purge")
            live = live_set(repo, txn, drafts)
            report.versions, removed = _purged_refs(repo, txn)
            stored_chunks: set[bytes] = set()
            stored_objects: set[bytes] = set()
            decoder = FrameDecoder(repo)
            try:
                indexed = {
                    bytes(k) for k in txn.cursor(db=index.db["packs"]).iternext(values=False)
                }
                if progress is not None:
                    progress.start(0, len(indexed))
                for pid in sorted(indexed):
                    path = repo.pack_path(pid)
                    try:
                        trailer = read_trailer(path)
                    except IntegrityError as exc:
                        raise IntegrityError(
                            f"purge cannot read pack {path} ({exc}), so it could not prove "
                            "its data gone; run `reprocas index rebuild`, then "
                            "`reprocas rm --purge` again",
                            pack=str(path),
                        ) from exc
                    stored_chunks.update(d for f in trailer.frames for d, _, _ in f.chunks)
                    stored_objects.update(o.id for o in trailer.objects)
                    rw = _plan_pack(repo, txn, decoder, pid, trailer, live, report)
                    if rw is not None:
                        rewrites.append(rw)
                    if progress is not None:
                        progress.file_done()
            finally:
                decoder.close()
        garbage: list[Path] = []
        for path in sorted(repo.packs_dir.glob("*/*.pack")):
            try:
                pid = bytes.fromhex(path.stem)
            except ValueError:
                continue
            if pid in indexed:
                continue
            try:
                t = read_trailer(path)
            except IntegrityError as exc:
                # gc keeps such a pack for `index rebuild` to salvage; purge cannot
                # tell what it holds, so it cannot prove anything gone.
                raise IntegrityError(
                    f"purge cannot read the unindexed pack {path} ({exc}); run "
                    "`reprocas index rebuild` (it salvages what the pack holds), then "
                    "`reprocas rm --purge` again",
                    pack=str(path),
                ) from exc
            stored_chunks.update(d for f in t.frames for d, _, _ in f.chunks)
            stored_objects.update(o.id for o in t.objects)
            garbage.append(path)  # sealed by a writer that died before indexing it
        report.chunks_purged = len(stored_chunks - live.chunks.keys())
        report.objects_purged = len(stored_objects - live.objects)
        report.removed_chunks = len(removed.chunks.keys() - live.chunks.keys())
        report.shared_chunks = len(removed.chunks.keys() & live.chunks.keys())
        # New packs first (sealed, fsynced), then one transaction moves the index.
        written = [_write(repo, rw) for rw in rewrites]
        sizes = {rw.pid: file_size(repo.pack_path(rw.pid)) for rw in rewrites}
        with index.write() as txn:
            for rw, w in zip(rewrites, written, strict=True):
                _index(repo, txn, rw, w)
            _sweep(repo, txn, live, removed, report)
        for rw, w in zip(rewrites, written, strict=True):
            if w is None:
                report.deleted.append(rw.pid.hex())
            else:
                report.rewritten.append(rw.pid.hex())
                report.new_packs.append(w[0].id.hex)
                report.freed_bytes -= w[0].size
        # Readers that found the old entries finish first; then the files go. A pack
        # written now may be byte for byte a leftover of a killed purge (a pack's name
        # is its trailer's digest): that file is now indexed and stays.
        made = {repo.pack_path(w[0].id.raw) for w in written if w is not None}
        doomed = [p for p in [repo.pack_path(rw.pid) for rw in rewrites] + garbage if p not in made]
        held = lease.wait_for(lease.current_leases(repo), lease_wait)
        if held:
            raise PurgeIncompleteError(
                f"{len(held)} readers that started before the purge still read the old "
                f"packs after {lease_wait:g}s; the purged data is out of the index but "
                f"{len(doomed)} pack files are still on disk: run `reprocas rm --purge` "
                "again once they are done",
                readers=len(held),
            )
        dirs: set[Path] = set()
        for p in doomed:
            size = sizes.get(bytes.fromhex(p.stem), 0) or file_size(p)
            try:
                os.unlink(p)
            except FileNotFoundError:
                continue
            report.freed_bytes += size
            dirs.add(p.parent)
            if p in garbage:
                report.garbage.append(str(p))
        for leftover in sorted(repo.tmp_dir.iterdir()) if repo.tmp_dir.exists() else []:
            report.freed_bytes += file_size(leftover)
            report.garbage.append(str(leftover))
            leftover.unlink()
            dirs.add(leftover.parent)
        for d in dirs:
            fsync_dir(d)
        _prove(repo, live, removed, report)
    checked = verify(repo, read_data=True, progress=progress)
    report.verify = checked.to_json()
    if not checked.ok:
        first = checked.problems[0].message if checked.problems else "?"
        raise IntegrityError(
            f"purge finished but `verify --read-data` found {len(checked.problems)} "
            f"problems (first: {first}); run `reprocas verify` for all of them"
        )
    return report
