"""The write side of one commit: new chunks and objects into packs, then the index.

Order (DESIGN.md): data into packs, each sealed (fsync, rename) as it fills; at the end
every pack's index entries are committed in one LMDB transaction — for a commit, the
same transaction that moves the ref (:meth:`Writer.index_into`). Until then nothing
but this writer knows its packs, so a failed write removes them all (:meth:`abort`)
and leaves no orphan; a crash leaves packs nothing references, which `gc` reclaims.

Sealing a full pack (its fsync above all) runs on a background thread while the next
pack fills; seals happen one at a time, in order, and :meth:`Writer.seal` waits for all
of them, so nothing that refers to a pack is written before the pack is durable and
indexed.
"""

from __future__ import annotations

import contextlib
import os
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import lmdb

from reprocas.model.ids import ObjectId
from reprocas.native import core
from reprocas.store import codec
from reprocas.store.index import ObjectLoc, pack, put_frames
from reprocas.store.packs import PackWriter, SealedPack, fsync_dir
from reprocas.store.repository import Repository


@dataclass
class _Pending:
    """A pack being sealed in the background, and what it holds until it is indexed."""

    future: Future[SealedPack]
    chunks: set[bytes]
    objects: dict[bytes, bytes]


@dataclass
class _Sealed:
    """A sealed pack this writer has not indexed yet, and what it holds."""

    pack: SealedPack
    chunks: set[bytes]
    objects: dict[bytes, bytes]


@dataclass
class Writer:
    """Accumulates new chunks and objects of one operation into packs."""

    repo: Repository
    # Re-encoding chunks that are stored already (repack): the new copies win in the
    # index, so their old frames become unused.
    relocate: bool = False
    pack_writer: PackWriter | None = None
    open_chunks: set[bytes] = field(default_factory=set)
    open_objects: dict[bytes, bytes] = field(default_factory=dict)
    sealed: list[SealedPack] = field(default_factory=list)
    # Sealed, durable, but not in the index: only this writer knows them.
    unindexed: list[_Sealed] = field(default_factory=list)
    _pending: list[_Pending] = field(default_factory=list)
    _executor: ThreadPoolExecutor | None = None
    # Format 3: ``chunkmaps`` and ``tables`` entries of the files written (or found
    # stored) by this operation, indexed with its packs (reprocas.store.files).
    file_keys: dict[bytes, bytes] = field(default_factory=dict)
    table_keys: dict[bytes, bytes] = field(default_factory=dict)
    # New chunks of small files waiting to share one frame (:meth:`add_shared`).
    _shared: list[tuple[bytes, bytes]] = field(default_factory=list)
    _shared_digests: set[bytes] = field(default_factory=set)
    _shared_bytes: int = 0

    @property
    def new_bytes(self) -> int:
        """Bytes added to the store so far: the sizes of the packs written."""
        self._drain(wait=False)
        current = self.pack_writer.size if self.pack_writer and not self.pack_writer.empty else 0
        pending = sum(p.future.result().size for p in self._pending if p.future.done())
        waiting = sum(u.pack.size for u in self.unindexed)
        return sum(p.size for p in self.sealed) + waiting + pending + current

    def _pack(self) -> PackWriter:
        if self.pack_writer is None:
            self.pack_writer = PackWriter(self.repo.tmp_dir, self.repo.packs_dir)
        return self.pack_writer

    def is_known_chunk(self, txn: lmdb.Transaction, digest: bytes) -> bool:
        if digest in self.open_chunks or digest in self._shared_digests:
            return True
        if any(digest in p.chunks for p in self._pending):
            return True
        if any(digest in u.chunks for u in self.unindexed):
            return True
        return self.repo.index.has_chunk(txn, digest)

    def _is_known_object(self, oid: bytes) -> bool:
        if oid in self.open_objects or any(oid in p.objects for p in self._pending):
            return True
        if any(oid in u.objects for u in self.unindexed):
            return True
        with self.repo.index.read() as txn:
            return self.repo.index.has_object(txn, oid)

    def add_frame(
        self,
        codec_id: int,
        payload: bytes,
        raw_len: int,
        chunks: list[tuple[bytes, int, int]],
        bases: tuple[bytes, ...] = (),
        depth: int = 0,
    ) -> None:
        self._pack().add_frame(codec_id, payload, raw_len, chunks, bases, depth)
        for digest, _, _ in chunks:
            self.open_chunks.add(digest)
        self._maybe_rotate()

    def add_shared(self, digest: bytes, data: bytes) -> None:
        """A new chunk of a small file: compressed in one frame with the chunks of the
        small files written before and after it (in the order given: a directory's
        files side by side), up to the frame size, instead of in a frame of its own.
        Small files compress far better together (shared words, one frame header), and
        reading one back decodes at most one frame. The frame is written when the next
        chunk would not fit, and at the latest by :meth:`seal_packs`."""
        if (
            self._shared
            and self._shared_bytes + len(data) > self.repo.config.compression.frame_size
        ):
            self.flush_shared()
        self._shared.append((digest, data))
        self._shared_digests.add(digest)
        self._shared_bytes += len(data)

    def flush_shared(self) -> None:
        """Write the small files' chunks waiting in :meth:`add_shared` as one frame."""
        if not self._shared:
            return
        shared = self._shared
        raw = b"".join(data for _, data in shared)
        [(codec_id, payload)] = core.compress_chunks([raw], self.repo.config.compression.level)
        entries = []
        off = 0
        for digest, data in shared:
            entries.append((digest, off, len(data)))
            off += len(data)
        self.add_frame(codec_id, payload, len(raw), entries)
        self._drop_shared()

    def _drop_shared(self) -> None:
        self._shared = []
        self._shared_digests = set()
        self._shared_bytes = 0

    def add_object(self, wire: object) -> ObjectId:
        """Encode, name and (when new) store an object; returns its id."""
        encoded = codec.encode(wire)
        oid = codec.object_id(encoded)
        if self._is_known_object(oid.raw):
            return oid
        [(codec_id, payload)] = core.compress_chunks([encoded], self.repo.config.compression.level)
        self._pack().add_object(oid.raw, codec_id, payload, len(encoded))
        self.open_objects[oid.raw] = encoded
        self._maybe_rotate()
        return oid

    def _maybe_rotate(self) -> None:
        pw = self.pack_writer
        if pw is not None and pw.size >= self.repo.config.pack_size:
            self._drain(wait=False)
            if self._executor is None:
                self._executor = ThreadPoolExecutor(1, thread_name_prefix="reprocas-seal")
            job = _Pending(
                self._executor.submit(_seal, pw),
                self.open_chunks,
                self.open_objects,
            )
            self._pending.append(job)
            self.pack_writer = None
            self.open_chunks = set()
            self.open_objects = {}

    def _drain(self, *, wait: bool) -> None:
        """Collect finished background seals (all of them with ``wait``); re-raise errors."""
        while self._pending and (wait or self._pending[0].future.done()):
            job = self._pending.pop(0)
            self.unindexed.append(_Sealed(job.future.result(), job.chunks, job.objects))

    def seal_packs(self) -> None:
        """Seal every pack (the open one too) without indexing them; waits for all."""
        self.flush_shared()
        self._drain(wait=True)
        pw = self.pack_writer
        if pw is None:
            return
        self.pack_writer = None
        if pw.empty:
            pw.abort()
            return
        self.unindexed.append(_Sealed(pw.seal(), self.open_chunks, self.open_objects))
        self.open_chunks = set()
        self.open_objects = {}

    def seal(self) -> None:
        """Seal every pack (the open one too) and index what they hold, in one
        transaction of its own; waits for all."""
        self.seal_packs()
        if self.unindexed or self.file_keys or self.table_keys:
            with self.repo.index.write() as txn:
                self.index_into(txn)

    def index_into(self, txn: lmdb.Transaction) -> None:
        """Index every sealed pack of this writer inside ``txn`` (a commit passes the
        transaction that moves its ref: data and ref become visible together)."""
        index = self.repo.index
        for u in self.unindexed:
            sealed = u.pack
            n_chunks = put_frames(
                txn, index.db, sealed.id.raw, sealed.trailer.frames, overwrite=self.relocate
            )
            for o in sealed.trailer.objects:
                oloc = ObjectLoc(
                    sealed.id.raw, o.offset, o.stored_len, o.codec, o.raw_len, u.objects[o.id]
                )
                txn.put(o.id, oloc.to_value(), db=index.db["objects"], overwrite=False)
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
        if self.file_keys or self.table_keys:
            from reprocas.store.files import put_file_keys

            put_file_keys(self.repo, txn, self.file_keys, self.table_keys)
        if self.relocate and self.unindexed:
            # Live chunks now decode against other bases: the reference counts
            # (which count bases as holders) are recounted at the next `du`.
            from reprocas.store import refcounts

            refcounts.invalidate(self.repo, txn)
        # The transaction may still abort; the caller calls :meth:`indexed` after it
        # committed (until then abort() may remove these packs).

    def indexed(self) -> None:
        """The transaction given to :meth:`index_into` has committed."""
        self.sealed.extend(u.pack for u in self.unindexed)
        self.unindexed.clear()
        self.file_keys.clear()
        self.table_keys.clear()

    def abort(self) -> int:
        """Remove everything this writer wrote that nothing indexed: the open pack's
        temporary file and every sealed pack (no one else knows them, so no lock is
        needed). Returns the bytes it could not remove (left for `gc`)."""
        self._drop_shared()
        for job in self._pending:
            # Wait so no seal runs on after we return; its error is not the one to report.
            if job.future.exception() is None:
                self.unindexed.append(_Sealed(job.future.result(), job.chunks, job.objects))
        self._pending.clear()
        if self._executor is not None:
            self._executor.shutdown(wait=True)
            self._executor = None
        left = 0
        if self.pack_writer is not None:
            left += self.pack_writer.abort()
            self.pack_writer = None
        dirs: set[Path] = set()
        for u in self.unindexed:
            try:
                os.unlink(u.pack.path)
                dirs.add(u.pack.path.parent)
            except FileNotFoundError:
                pass
            except OSError:
                left += u.pack.size
        self.unindexed.clear()
        for d in dirs:
            with contextlib.suppress(OSError):
                fsync_dir(d)
        return left

    def close(self) -> None:
        if self._executor is not None:
            self._executor.shutdown(wait=True)
            self._executor = None


def _seal(pw: PackWriter) -> SealedPack:
    """Seal a full pack on the background thread (its fsync is the slow part)."""
    return pw.seal()
