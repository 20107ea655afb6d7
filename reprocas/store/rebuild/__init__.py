"""Rebuild the LMDB index from what the repository is made of: packs and the ref log.

Packs carry their own chunk tables and every object; the ref log records every ref
change, in commit order, in two phases (see ``Repository.ref_transaction``). Everything
happens under the repository's exclusive lock, taken *before* the packs are listed, so
no commit seals a pack the rebuild would miss. A sound index is rebuilt *in place*, in
one LMDB write transaction, so other processes that have it open keep a valid handle
and never see a half-built index; a damaged one (a bad header, unreadable pages) is
set aside as ``index.broken-<time>/`` and a new one is built and swapped in.

Damage never costs what can still be read: a damaged ref-log line is reported and
skipped; versions the snapshots prove existed are recovered when the ref log cannot
account for them; a pack whose footer or trailer is damaged is salvaged
(:mod:`.salvage`) into a new pack and the damaged file is kept under ``damaged/``.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import time
import uuid
from dataclasses import replace
from pathlib import Path
from typing import Any

import lmdb

from reprocas.errors import IndexDamagedError, IntegrityError, ReprocasError
from reprocas.model.objects import ChunkMap, Note, Snapshot, TableRecord, object_from_wire
from reprocas.native import core
from reprocas.progress import Progress
from reprocas.store import codec, refcounts
from reprocas.store.files import chunkmap_key, put_file_keys
from reprocas.store.index import (
    DB_NAMES,
    ChunkLoc,
    Index,
    ObjectLoc,
    damaged,
    pack,
    put_frames,
)
from reprocas.store.lmdb_file import header_damage
from reprocas.store.packs import (
    CODEC_DELTA,
    FrameInfo,
    ObjectInfo,
    PackTrailer,
    PackWriter,
    SealedPack,
    fsync_dir,
    read_blob,
    read_trailer,
)
from reprocas.store.rebuild.recover import recover_versions
from reprocas.store.rebuild.reflog import read_reflog, replay, replay_forgotten
from reprocas.store.rebuild.report import RebuildReport as RebuildReport
from reprocas.store.rebuild.report import SalvagedPack
from reprocas.store.rebuild.salvage import salvage_pack
from reprocas.store.repository import Repository, parse_ref_key


def _probe(index: Index) -> str | None:
    """Read every key of every sub-database once: pages LMDB cannot follow show up
    as an error here, before the rebuild frees them."""
    try:
        with index.env.begin(write=False) as txn:
            for name in DB_NAMES:
                for _ in txn.cursor(db=index.db[name]).iternext(values=False):
                    pass
    except lmdb.Error as exc:
        return str(exc)
    return None


def _fresh_index(repo: Repository, why: str) -> None:
    """Switch ``repo`` to a new, empty environment beside the damaged one."""
    repo.index.close()
    repo.damaged_index = damaged(repo.root / "index", why)
    repo.index = Index(repo.root / f"index.rebuilding-{uuid.uuid4().hex}")


def _adopt_if_sound(repo: Repository) -> None:
    """Use the live index instead of the scratch one when it opens and reads cleanly."""
    try:
        live = Index(repo.root / "index")
    except IndexDamagedError:
        return
    if _probe(live) is not None:
        live.close()
        return
    scratch = repo.index.path
    repo.index.close()
    shutil.rmtree(scratch, ignore_errors=True)
    repo.index = live
    repo.damaged_index = None


def _swap_in(repo: Repository) -> str:
    """Set the damaged index aside (kept, for inspection) and move the rebuilt one into
    its place; returns where the damaged one went."""
    scratch = repo.index.path
    repo.index.close()
    live = repo.root / "index"
    stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime())
    aside = repo.root / f"index.broken-{stamp}-{uuid.uuid4().hex[:6]}"
    if live.exists():
        os.rename(live, aside)
    os.rename(scratch, live)
    fsync_dir(repo.root)
    repo.index = Index(live)
    repo.damaged_index = None
    return str(aside)


def rebuild(repo: Repository, progress: Progress | None = None) -> RebuildReport:
    """Recreate the index from the packs and the ref log (see the module docstring);
    ``progress`` counts the packs read."""
    with repo.lock("gc", exclusive=True):
        if repo.damaged_index is None:
            why = _probe(repo.index)
            if why is not None:
                _fresh_index(repo, why)
            else:
                _refuse_remote_backed(repo)
        elif header_damage(repo.root / "index") is None:
            _adopt_if_sound(repo)  # another rebuild may have fixed it while we waited
        try:
            report = _build(repo, progress or Progress())
        except BaseException:
            if repo.damaged_index is not None:
                scratch = repo.index.path
                repo.index.close()
                shutil.rmtree(scratch, ignore_errors=True)
            raise
        broken = _swap_in(repo) if repo.damaged_index is not None else None
        return _with_checks(repo, report, broken)


def _refuse_remote_backed(repo: Repository) -> None:
    """Packs a lazy pull left on a remote are known only to the index: rebuilding it
    from the local packs would drop them (and the versions they hold)."""
    from reprocas.errors import UsageError
    from reprocas.remote.lazy import remote_backed

    held = remote_backed(repo)
    if held:
        names = ", ".join(sorted(set(held.values())))
        raise UsageError(
            f"refusing to rebuild the index: {len(held)} of its packs are held only by the "
            f"remote {names} (a lazy pull), and a rebuild from the local packs would lose "
            f"them; run `reprocas pull` first (it downloads them), then rebuild"
        )


def _with_checks(repo: Repository, r: RebuildReport, broken: str | None) -> RebuildReport:
    """Name what the rebuilt index cannot read (structure only: every version's
    objects and chunks indexed)."""
    from reprocas.store.soundness import unfinished
    from reprocas.store.verify import verify

    v = verify(repo)
    unreadable = tuple(p.message for p in v.problems)
    versions = tuple(sorted({x for p in v.problems for x in p.versions}))
    with repo.index.read() as txn:
        drafts = unfinished(repo, txn)
    return replace(
        r,
        unreadable=unreadable,
        unreadable_versions=versions,
        broken_index=broken,
        unfinished=drafts,
    )


Hints = tuple[list[FrameInfo], list[ObjectInfo]]


def _old_entries(txn: lmdb.Transaction, index: Index, damaged: set[Path]) -> dict[bytes, Hints]:
    """The frames and objects the index (before the rebuild) placed in damaged packs."""
    want = set()
    for p in damaged:
        with contextlib.suppress(ValueError):
            want.add(bytes.fromhex(p.stem))
    out: dict[bytes, Hints] = {}
    if not want:
        return out
    try:
        frames: dict[tuple[bytes, int], list[Any]] = {}
        for k, v in txn.cursor(db=index.db["chunks"]):
            loc = ChunkLoc.from_value(v)
            if loc.pack in want:
                f = frames.setdefault(loc.frame_key, [loc, []])
                f[1].append((bytes(k), loc.offset, loc.length))
        for (pid, off), (loc, chunks) in frames.items():
            bases: tuple[bytes, ...] = ()
            depth = 0
            if loc.codec == CODEC_DELTA:
                info = index.get_delta(txn, loc)
                if info is None:
                    continue
                bases, depth = info.bases, info.depth
            fi = FrameInfo(
                off,
                loc.stored_len,
                loc.codec,
                loc.raw_len,
                tuple(sorted(chunks, key=lambda c: c[1])),
                bases,
                depth,
            )
            out.setdefault(pid, ([], []))[0].append(fi)
        for k, v in txn.cursor(db=index.db["objects"]):
            o = ObjectLoc.from_value(v)
            if o.pack in want:
                oi = ObjectInfo(bytes(k), o.offset, o.stored_len, o.codec, o.raw_len)
                out.setdefault(o.pack, ([], []))[1].append(oi)
    except (lmdb.Error, ValueError, TypeError):
        return {}  # an index too damaged to help: the packs are walked instead
    return out


def _salvage(repo: Repository, path: Path, hints: Hints) -> tuple[SealedPack | None, SalvagedPack]:
    """Copy what still verifies in a damaged pack into a new pack (sealed, not yet
    indexed); the damaged file is kept under ``damaged/``. It is copied there first
    (a crash leaves both), and only then replaced: a pack whose every blob survived
    is rewritten with the same trailer, so the new pack may take its very name."""
    buf = path.read_bytes()
    s = salvage_pack(buf, repo.params, repo.config.compression.frame_size, hints)
    dest_dir = repo.root / "damaged"
    dest_dir.mkdir(exist_ok=True)
    dest = dest_dir / f"{path.name}.{time.time_ns()}"
    tmp = dest.with_suffix(".tmp")
    with open(tmp, "wb") as f:
        f.write(buf)
        f.flush()
        os.fsync(f.fileno())
    os.rename(tmp, dest)
    fsync_dir(dest_dir)
    sealed: SealedPack | None = None
    if s.frames or s.objects:
        pw = PackWriter(repo.tmp_dir, repo.packs_dir)
        try:
            for fr in s.frames:
                blob = buf[fr.offset : fr.offset + fr.stored_len]
                pw.add_frame(fr.codec, blob, fr.raw_len, list(fr.chunks), fr.bases, fr.depth)
            for o, _ in s.objects:
                pw.add_object(o.id, o.codec, buf[o.offset : o.offset + o.stored_len], o.raw_len)
            sealed = pw.seal()
        except BaseException:
            pw.abort()
            raise
    if sealed is None or sealed.path != path:
        path.unlink()
        fsync_dir(path.parent)
    info = SalvagedPack(
        path=str(path),
        moved_to=str(dest),
        new_pack=str(sealed.path) if sealed else None,
        chunks=sum(len(f.chunks) for f in s.frames),
        objects=len(s.objects),
        lost=tuple(s.lost),
    )
    return sealed, info


def _check_deltas(
    repo: Repository, txn: lmdb.Transaction, frames: list[tuple[bytes, int, FrameInfo]]
) -> dict[int, list[tuple[int, int, str]]]:
    """Decode the delta frames taken from salvaged packs, now that every base is
    indexed; a frame (or chunk) that does not verify loses its index entries. Returns
    what was lost, by salvaged pack."""
    from reprocas.store.frames import FrameDecoder

    lost: dict[int, list[tuple[int, int, str]]] = {}
    decoder = FrameDecoder(repo)
    try:
        for pid, which, f in frames:
            loc = ChunkLoc(pid, f.offset, f.stored_len, f.codec, f.raw_len, 0, 0)
            try:
                data: bytes | None = decoder.load(txn, [loc])[loc.frame_key]
            except ReprocasError:
                data = None
            bad = [
                d
                for d, o, n in f.chunks
                if data is None or core.blake3_digest(memoryview(data)[o : o + n]) != d
            ]
            for d in bad:
                cur = repo.index.get_chunk(txn, d)
                if cur is not None and cur.frame_key == loc.frame_key:
                    txn.delete(d, db=repo.index.db["chunks"])
            if bad:
                why = f"a delta frame: {len(bad)} of its chunks do not decode to their digest"
                lost.setdefault(which, []).append((f.offset, f.stored_len, why))
    finally:
        decoder.close()
    return lost


def upgrade_aliases(
    repo: Repository,
    refs: dict[str, bytes],
    forgotten: dict[bytes, dict[str, Any]],
    snapshots: dict[bytes, Snapshot],
) -> dict[bytes, bytes]:
    """The ``aliases`` sub-database of an upgraded repository, from the packs: each
    format-3 snapshot `reprocas upgrade` wrote names its format-2 id in
    ``extra.upgraded_from``. A snapshot a ref or forgotten record names wins over one
    an interrupted earlier upgrade left; an old id a ref still names is no alias."""
    from reprocas.store.repository import FORMAT_VERSION_CONTENT_IDS
    from reprocas.store.upgrade.convert import UPGRADED_FROM

    if int(repo.marker.get("version", 1)) < FORMAT_VERSION_CONTENT_IDS:
        return {}
    named = set(refs.values()) | set(forgotten)
    out: dict[bytes, bytes] = {}
    for sid, snap in sorted(snapshots.items()):
        old = snap.extra.get(UPGRADED_FROM)
        if not isinstance(old, bytes) or len(old) != 32 or old in named:
            continue
        if old not in out or (sid in named and out[old] not in named):
            out[old] = sid
    return out


def _build(repo: Repository, progress: Progress) -> RebuildReport:
    index = repo.index
    n_chunks = n_objects = 0
    skipped: list[str] = []
    salvaged: list[SalvagedPack] = []
    snapshots: dict[bytes, Snapshot] = {}
    notes: dict[bytes, Note] = {}
    chunkmaps: dict[bytes, bytes] = {}
    tables: dict[bytes, bytes] = {}
    # Listed under the lock: every pack a commit sealed before is here, none after.
    packs = sorted(repo.packs_dir.glob("*/*.pack")) if repo.packs_dir.exists() else []
    n_packs = 0
    unchecked: list[tuple[bytes, int, FrameInfo]] = []  # salvaged delta frames
    with index.write() as txn:
        trailers: dict[Path, PackTrailer | None] = {}
        for path in packs:
            try:
                trailers[path] = read_trailer(path)
            except IntegrityError:
                trailers[path] = None
        # What the old index says about damaged packs: checked like a trailer.
        hints = _old_entries(txn, index, {p for p, t in trailers.items() if t is None})
        for name in DB_NAMES:
            txn.drop(index.db[name], delete=False)
        sizes = {}
        for path in packs:
            with contextlib.suppress(OSError):
                sizes[path] = path.stat().st_size
        progress.start(sum(sizes.values()), len(packs))
        for path in packs:
            progress.advance(sizes.get(path, 0))
            progress.file_done()
            try:
                pid = bytes.fromhex(path.stem)
            except ValueError:
                continue
            listed = trailers[path]
            if listed is not None:
                trailer = listed
            else:
                try:
                    sealed, info = _salvage(repo, path, hints.get(pid, ([], [])))
                except (OSError, ReprocasError):
                    skipped.append(str(path))  # unreadable even as bytes: kept as is
                    txn.put(
                        pid,
                        pack({"size": path.stat().st_size, "damaged": True}),
                        db=index.db["packs"],
                    )
                    continue
                salvaged.append(info)
                if sealed is None:
                    continue
                pid, path, trailer = sealed.id.raw, sealed.path, sealed.trailer
                unchecked += [(pid, len(salvaged) - 1, f) for f in trailer.frames if f.bases]
            n_packs += 1
            before = txn.stat(index.db["chunks"])["entries"]
            chunk_count = put_frames(txn, index.db, pid, trailer.frames)
            n_chunks += txn.stat(index.db["chunks"])["entries"] - before
            for o in trailer.objects:
                try:
                    blob = read_blob(path, o.offset, o.stored_len)
                    [data] = core.decompress_chunks([(o.codec, blob, o.raw_len)])
                except ReprocasError:
                    continue  # a damaged copy: verify reports the pack
                if core.blake3_digest(data) != o.id:
                    continue
                oloc = ObjectLoc(pid, o.offset, o.stored_len, o.codec, o.raw_len, data)
                if txn.put(o.id, oloc.to_value(), db=index.db["objects"], overwrite=False):
                    n_objects += 1
                try:
                    obj = object_from_wire(codec.decode(data))
                except (ReprocasError, ValueError, KeyError, TypeError):
                    continue
                if isinstance(obj, Snapshot):
                    snapshots[o.id] = obj
                elif isinstance(obj, Note):
                    notes[o.id] = obj
                elif isinstance(obj, ChunkMap):  # format 3: it carries its own key
                    chunkmaps[chunkmap_key(obj.digest, obj.chunking)] = o.id
                elif isinstance(obj, TableRecord) and obj.digest is not None:
                    tables[obj.digest] = min(o.id, tables.get(obj.digest, o.id))
            txn.put(
                pid,
                pack(
                    {
                        "size": path.stat().st_size,
                        "frames": len(trailer.frames),
                        "chunks": chunk_count,
                        "objects": len(trailer.objects),
                    }
                ),
                db=index.db["packs"],
            )
        for i, lost in _check_deltas(repo, txn, unchecked).items():
            salvaged[i] = replace(salvaged[i], lost=salvaged[i].lost + tuple(lost))
        log = read_reflog(repo.reflog_path)
        refs = replay(log.entries)
        forgotten = replay_forgotten(log.entries, refs, snapshots)
        recovered_names: list[str] = []
        lost_tags: list[str] = []
        if not log.sound:
            # The ref log is missing or lost lines: the versions the snapshots say they
            # were, where it cannot account for them.
            rec = recover_versions(refs, forgotten, snapshots)
            refs.update(rec.refs)
            recovered_names, lost_tags = rec.versions, rec.lost_tags
            from reprocas.notes import pins as notes_pins
            from reprocas.notes import store as notes_store

            notes_store.recover_refs(refs, list(notes))
            notes_pins.recover_pins(refs, notes)  # only when the refs hold no pin at all
        missing: list[str] = []
        for k, v in refs.items():
            txn.put(k.encode(), v, db=index.db["refs"])
            parsed = parse_ref_key(k)
            if parsed is None or parsed[1] != "v":
                continue
            name, _, digits = parsed
            found = snapshots.get(v)
            if found is None:
                missing.append(f"{name}@v{int(digits)}")
            kind = found.kind if found is not None else "unknown"
            txn.put(v, pack([kind, name, int(digits)]), db=index.db["snapshots"])
        aliases = upgrade_aliases(repo, refs, forgotten, snapshots)
        for old, new in aliases.items():
            txn.put(old, new, db=index.db["aliases"])
            record = forgotten.pop(old, None)
            if record is not None:
                forgotten.setdefault(new, record)
        for sid, record in forgotten.items():
            txn.put(sid, pack(record), db=index.db["forgotten"])
        # Run summaries and provenance edges are caches of the run objects: recreate
        # them from the run refs just restored (lazily imported: the store layer does
        # not depend on provenance).
        from reprocas.provenance import graph

        n_runs, missing_runs = graph.reindex(repo, txn)
        from reprocas.notes import store as notes_store

        notes_store.reindex(repo, txn, log.entries)  # note times and edges
        # The marker file is the source of truth for the repository's settings.
        index.put_meta(txn, "format_version", repo.marker["version"])
        index.put_meta(txn, "chunking", repo.marker["chunking"])
        index.put_meta(txn, "compression", repo.marker["compression"])
        index.put_meta(txn, "repo_id", repo.marker["repo_id"])
        put_file_keys(repo, txn, chunkmaps, tables)
        refcounts.recompute(repo, txn)  # what keeps each chunk alive, for du
    with contextlib.suppress(OSError):
        fsync_dir(repo.packs_dir)
    return RebuildReport(
        packs=n_packs,
        chunks=n_chunks,
        objects=n_objects,
        refs=len(refs),
        skipped_packs=tuple(skipped),
        missing_snapshots=tuple(sorted(missing)),
        runs=n_runs,
        missing_runs=tuple(sorted(missing_runs)),
        damaged_reflog_lines=tuple(log.damaged),
        recovered_versions=tuple(recovered_names),
        lost_tags=tuple(sorted(set(lost_tags))),
        salvaged_packs=tuple(salvaged),
    )
