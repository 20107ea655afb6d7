"""Fetch (the remote's refs and segments) and pull (download the packs this repository
lacks, check them by their names, index them, then move local refs)."""

from __future__ import annotations

import contextlib
import os
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import lmdb

from reprocas.errors import IntegrityError, ReprocasError
from reprocas.model.objects import ChunkMap, TableRecord, object_from_wire
from reprocas.native import core
from reprocas.progress import Progress
from reprocas.remote import protocol as P
from reprocas.remote.backend import Backend
from reprocas.remote.config import RemoteConfig
from reprocas.remote.push import RefResult
from reprocas.remote.refs import apply_local, classify, is_ancestor, order_key
from reprocas.remote.registry import open_backend
from reprocas.store import codec
from reprocas.store.files import CHUNKMAPS, TABLES, chunkmap_key, put_file_keys
from reprocas.store.index import ObjectLoc, pack, put_frames
from reprocas.store.packs import (
    CODEC_DELTA,
    FOOTER,
    PackTrailer,
    fsync_dir,
    read_blob,
    read_trailer,
)
from reprocas.store.repository import Repository


@dataclass
class FetchReport:
    remote: str
    url: str
    segments: int = 0
    refs: dict[str, bytes] = field(default_factory=dict)
    missing: list[str] = field(default_factory=list)  # remote refs whose data it lacks

    def to_json(self) -> dict[str, Any]:
        return {
            "remote": self.remote,
            "url": self.url,
            "new_segments": self.segments,
            "refs": {k: v.hex() for k, v in sorted(self.refs.items())},
            "missing": self.missing,
        }


@dataclass
class PullReport:
    remote: str
    url: str
    downloaded_bytes: int = 0
    downloaded_packs: int = 0
    skipped_packs: int = 0
    #: Packs indexed by a lazy pull: their frames stay on the remote until read.
    lazy_packs: int = 0
    refs: list[RefResult] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)

    @property
    def conflicts(self) -> list[RefResult]:
        return [r for r in self.refs if r.status in ("conflict", "rejected")]

    def to_json(self) -> dict[str, Any]:
        return {
            "remote": self.remote,
            "url": self.url,
            "downloaded_bytes": self.downloaded_bytes,
            "downloaded_packs": self.downloaded_packs,
            "skipped_packs": self.skipped_packs,
            "lazy_packs": self.lazy_packs,
            "refs": [r.to_json() for r in self.refs],
            "missing": self.missing,
        }


#: Packs downloaded at once by a pull or clone.
DOWNLOADS = 4


def fetch_into(
    backend: Backend, repo: Repository, rc: RemoteConfig
) -> tuple[FetchReport, P.Catalogue]:
    """Refs first, then segments (any ref seen was written after the segment covering
    it); a ref naming an object no segment lists triggers one full listing."""
    P.ensure_marker(backend, repo, create=False)
    report = FetchReport(rc.name, rc.url)
    state = P.LocalState(repo, rc.name)
    remote = P.read_refs(backend, state=state)
    cat = state.load()
    report.segments = len(P.sync_segments(backend, state, cat))
    if any(r.id not in cat.objects for r in remote.values()):
        report.segments += len(P.sync_segments(backend, state, cat, full=True))
    report.refs = {k: v.id for k, v in remote.items()}
    report.missing = sorted(k for k, v in report.refs.items() if v not in cat.objects)
    state.save_refs(report.refs)
    return report, cat


def fetch(repo: Repository, rc: RemoteConfig) -> FetchReport:
    P.check_format(repo)
    b = open_backend(rc.url, rc.options)
    try:
        return fetch_into(b, repo, rc)[0]
    finally:
        b.close()


def _check_pack(path: Path, pid: bytes) -> tuple[PackTrailer, dict[bytes, bytes]]:
    """A downloaded pack must be the pack its name says: the footer's trailer checksum
    is its id, every plain frame decodes to the chunks its trailer lists (re-hashed),
    and every object hashes to its own id. (Delta frames are checked when read, against
    bases that may be in other packs.)"""
    with open(path, "rb") as f:
        size = os.fstat(f.fileno()).st_size
        f.seek(max(0, size - FOOTER.size))
        tail = f.read(FOOTER.size)
    if len(tail) != FOOTER.size or FOOTER.unpack(tail)[2] != pid:
        raise IntegrityError(f"downloaded pack {pid.hex()} does not match its name")
    trailer = read_trailer(path)
    frames = [
        (f.offset, f.stored_len, f.codec, f.raw_len, [(o, n, d) for d, o, n in f.chunks])
        for f in trailer.frames
        if f.codec != CODEC_DELTA
    ]
    for _, _, msg in core.verify_frames(path, frames)[:1]:
        raise IntegrityError(f"downloaded pack {pid.hex()} is damaged: {msg}")
    objects: dict[bytes, bytes] = {}
    for o in trailer.objects:
        [data] = core.decompress_chunks(
            [(o.codec, read_blob(path, o.offset, o.stored_len), o.raw_len)]
        )
        if core.blake3_digest(data) != o.id:
            raise IntegrityError(f"downloaded pack {pid.hex()}: object {o.id.hex()} is damaged")
        objects[o.id] = data
    return trailer, objects


def _index_pack(
    repo: Repository,
    txn: lmdb.Transaction,
    pid: bytes,
    size: int,
    trailer: PackTrailer,
    objects: dict[bytes, bytes],
    remote: str | None = None,
) -> None:
    """Index one pack as `index rebuild` does (chunks, objects, chunk maps, tables);
    REMOTE names the remote holding its data when it has no local file (a lazy pull)."""
    db = repo.index.db
    n_chunks = put_frames(txn, db, pid, trailer.frames)
    chunkmaps: dict[bytes, bytes] = {}
    tables: dict[bytes, bytes] = {}
    for o in trailer.objects:
        data = objects[o.id]
        loc = ObjectLoc(pid, o.offset, o.stored_len, o.codec, o.raw_len, data)
        txn.put(o.id, loc.to_value(), db=db["objects"], overwrite=False)
        try:
            obj = object_from_wire(codec.decode(data))
        except (ReprocasError, ValueError, KeyError, TypeError):
            continue
        if isinstance(obj, ChunkMap):
            key = chunkmap_key(obj.digest, obj.chunking)
            if txn.get(key, db=db[CHUNKMAPS]) is None:
                chunkmaps[key] = o.id
        elif isinstance(obj, TableRecord) and obj.digest is not None:
            old = txn.get(obj.digest, db=db[TABLES])
            best = min(o.id, bytes(old)) if old is not None else o.id
            tables[obj.digest] = min(best, tables.get(obj.digest, best))
    put_file_keys(repo, txn, chunkmaps, tables)
    info: dict[str, Any] = {"size": size, "frames": len(trailer.frames), "chunks": n_chunks}
    if remote is not None:
        info["remote"] = remote
    txn.put(pid, pack({**info, "objects": len(trailer.objects)}), db=db["packs"])


def download_packs(
    backend: Backend,
    repo: Repository,
    cat: P.Catalogue,
    report: PullReport,
    progress: Progress,
    *,
    lazy: str | None = None,
) -> None:
    """Download every listed pack holding something this repository lacks (and every
    remote-backed one, unless LAZY). With LAZY (the remote's name), index them from
    their footers, trailers and objects instead, leaving their frames on the remote."""
    from reprocas.remote import lazy as L

    remote_only = L.remote_backed(repo)
    with repo.index.read() as txn:
        have_packs = {
            bytes(k) for k in txn.cursor(db=repo.index.db["packs"]).iternext(values=False)
        }
        todo = []
        for pid, sp in sorted(cat.packs.items()):
            if pid in have_packs and (lazy is not None or pid not in remote_only):
                report.skipped_packs += 1
                continue
            lacks = any(not repo.index.has_chunk(txn, c) for c in sp.chunks) or any(
                not repo.index.has_object(txn, o) for o in sp.objects
            )
            if lacks or pid in remote_only:
                todo.append(sp)
            else:
                report.skipped_packs += 1
    if lazy is not None:
        _index_remote(backend, repo, todo, report, progress, lazy)
        return
    progress.start(sum(p.size for p in todo), len(todo))
    repo.tmp_dir.mkdir(exist_ok=True)
    # Downloads (and their checks) run a few at a time; each pack is indexed, in order,
    # by this thread once it is in place. An error stops the rest: what is indexed
    # stays (each pack whole), what was only downloaded is unindexed (gc removes it).
    with ThreadPoolExecutor(max_workers=DOWNLOADS, thread_name_prefix="reprocas-pull") as pool:
        futures = [pool.submit(_download_one, backend, repo, sp) for sp in todo]
        try:
            for sp, fut in zip(todo, futures, strict=True):
                n, trailer, objects = fut.result()
                # On disk before the index names it; a crash leaves an unindexed pack (gc).
                with repo.index.write() as wtxn:
                    _index_pack(repo, wtxn, sp.id, n, trailer, objects)
                report.downloaded_packs += 1
                report.downloaded_bytes += n
                progress.advance(n)
                progress.file_done()
                if sp.id in remote_only:
                    L.discard(repo, sp.id)  # the whole pack is here now: its cache copy goes
        finally:
            for fut in futures:
                fut.cancel()


def _download_one(
    backend: Backend, repo: Repository, sp: P.SegPack
) -> tuple[int, PackTrailer, dict[bytes, bytes]]:
    """Download one pack to a temporary file, prove it is the pack its name says, and
    move it into place."""
    tmp = repo.tmp_dir / f"pull-{uuid.uuid4().hex}.tmp"
    try:
        n = backend.get_to_file(P.pack_key(sp.id), tmp)
        trailer, objects = _check_pack(tmp, sp.id)
        final = repo.pack_path(sp.id)
        final.parent.mkdir(parents=True, exist_ok=True)
        os.replace(tmp, final)
        fsync_dir(final.parent)
    finally:
        with contextlib.suppress(OSError):
            tmp.unlink()
    return n, trailer, objects


def _index_remote(
    backend: Backend,
    repo: Repository,
    todo: list[P.SegPack],
    report: PullReport,
    progress: Progress,
    name: str,
) -> None:
    """A lazy pull: index each pack from range reads of its remote copy."""
    from reprocas.remote.lazy_index import remote_pack_index

    progress.start(len(todo), len(todo))
    for sp in todo:
        trailer, objects, n = remote_pack_index(backend, sp.id, sp.size)
        with repo.index.write() as wtxn:
            _index_pack(repo, wtxn, sp.id, sp.size, trailer, objects, remote=name)
        report.lazy_packs += 1
        report.downloaded_bytes += n
        progress.advance(1)
        progress.file_done()


def _wanted(remote: dict[str, bytes], specs: list[str] | None) -> dict[str, bytes]:
    if not specs:
        return remote
    out: dict[str, bytes] = {}
    for spec in specs:
        if spec in remote:
            out[spec] = remote[spec]
            continue
        name = spec.split("@", 1)[0]
        found = {k: v for k, v in remote.items() if k.startswith((f"ds:{name}:", f"run:{name}:"))}
        if not found:
            from reprocas.errors import RefNotFoundError

            raise RefNotFoundError(f"the remote has no dataset or run named {name!r}", ref=spec)
        out.update(found)
    return out


def move_refs(repo: Repository, remote: dict[str, bytes], force: bool, report: PullReport) -> None:
    moves: list[tuple[str, bytes | None, bytes]] = []
    with repo.index.read() as txn:
        local = dict(repo.index.iter_refs(txn))
        local_ids = {(classify(k).kind, classify(k).name, v) for k, v in local.items()}
        for ref in sorted(remote, key=order_key):
            oid = remote[ref]
            if not repo.index.has_object(txn, oid):
                report.missing.append(ref)
                continue
            k = classify(ref)
            cur = local.get(ref)
            if cur == oid:
                status = "up-to-date"
            elif k.kind in ("version", "run"):
                if (k.kind, k.name, oid) in local_ids:
                    status = "conflict"  # held here under another number
                elif cur is None:
                    status = "created"
                else:
                    status = "conflict"  # another version holds the number here: push it
            elif cur is None:
                status = "created"
            elif force or is_ancestor(repo, txn, cur, oid):
                status = "moved"
            else:
                status = "rejected"
            if status in ("created", "moved"):
                moves.append((ref, cur, oid))
            report.refs.append(RefResult(ref, oid.hex(), status, ref))
    apply_local(repo, moves)


def pull(
    repo: Repository,
    rc: RemoteConfig,
    refs: list[str] | None = None,
    *,
    force: bool = False,
    progress: Progress | None = None,
    backend: Backend | None = None,
    lazy: bool = False,
) -> PullReport:
    """Pull REFS (all when None) from the remote RC into REPO; with LAZY only the packs'
    indexes come (their frames are fetched when read, reprocas.remote.lazy)."""
    P.check_format(repo)
    report = PullReport(rc.name, rc.url)
    own = backend is None
    b = backend or open_backend(rc.url, rc.options)
    try:
        fetched, cat = fetch_into(b, repo, rc)
        wanted = _wanted(fetched.refs, refs)
        with repo.lock("gc", exclusive=False):
            download_packs(
                b, repo, cat, report, progress or Progress(), lazy=rc.name if lazy else None
            )
            move_refs(repo, wanted, force, report)
    finally:
        if own:
            b.close()
    return report
