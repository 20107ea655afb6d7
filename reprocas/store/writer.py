"""The write side of one commit: new chunks and objects into packs, then the index.

Order (DESIGN.md): data into a pack, seal the pack (fsync, rename), commit that
pack's index entries in one LMDB transaction; objects likewise; the ref moves last.
A crash leaves at most temporary files and packs nothing references, which `gc`
reclaims.

Sealing a full pack (its fsync above all) runs on a background thread while the next
pack fills; seals happen one at a time, in order, and :meth:`Writer.seal` waits for all
of them, so nothing that refers to a pack is written before the pack is durable and
indexed.
"""

from __future__ import annotations

from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field

import lmdb

from reprocas.model.ids import ObjectId
from reprocas.native import core
from reprocas.store import codec
from reprocas.store.index import ObjectLoc, pack, put_frames
from reprocas.store.packs import PackWriter, SealedPack
from reprocas.store.repository import Repository


@dataclass
class _Pending:
    """A pack being sealed in the background, and what it holds until it is indexed."""

    future: Future[SealedPack]
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
    _pending: list[_Pending] = field(default_factory=list)
    _executor: ThreadPoolExecutor | None = None

    @property
    def new_bytes(self) -> int:
        """Bytes added to the store so far: the sizes of the packs written."""
        self._drain(wait=False)
        current = self.pack_writer.size if self.pack_writer and not self.pack_writer.empty else 0
        pending = sum(p.future.result().size for p in self._pending if p.future.done())
        return sum(p.size for p in self.sealed) + pending + current

    def _pack(self) -> PackWriter:
        if self.pack_writer is None:
            self.pack_writer = PackWriter(self.repo.tmp_dir, self.repo.packs_dir)
        return self.pack_writer

    def is_known_chunk(self, txn: lmdb.Transaction, digest: bytes) -> bool:
        if digest in self.open_chunks:
            return True
        if any(digest in p.chunks for p in self._pending):
            return True
        return self.repo.index.has_chunk(txn, digest)

    def _is_known_object(self, oid: bytes) -> bool:
        if oid in self.open_objects or any(oid in p.objects for p in self._pending):
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
                self._executor.submit(self._seal_and_index, pw, self.open_objects),
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
            self.sealed.append(job.future.result())

    def seal(self) -> None:
        """Seal every pack (the open one too) and index what they hold; waits for all."""
        self._drain(wait=True)
        pw = self.pack_writer
        if pw is None:
            return
        self.pack_writer = None
        if pw.empty:
            pw.abort()
            return
        self.sealed.append(self._seal_and_index(pw, self.open_objects))
        self.open_chunks = set()
        self.open_objects = {}

    def _seal_and_index(self, pw: PackWriter, objects: dict[bytes, bytes]) -> SealedPack:
        sealed = pw.seal()
        index = self.repo.index
        with index.write() as txn:
            n_chunks = put_frames(
                txn, index.db, sealed.id.raw, sealed.trailer.frames, overwrite=self.relocate
            )
            if self.relocate:
                # Live chunks now decode against other bases: the reference counts
                # (which count bases as holders) are recounted at the next `du`.
                from reprocas.store import refcounts

                refcounts.invalidate(self.repo, txn)
            for o in sealed.trailer.objects:
                oloc = ObjectLoc(
                    sealed.id.raw, o.offset, o.stored_len, o.codec, o.raw_len, objects[o.id]
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
        return sealed

    def abort(self) -> None:
        """Drop the open pack; packs already sealed stay for gc to judge."""
        for job in self._pending:
            # Wait so no seal runs on after we return; its error is not the one to report.
            job.future.exception()
        self._pending.clear()
        if self._executor is not None:
            self._executor.shutdown(wait=True)
            self._executor = None
        if self.pack_writer is not None:
            self.pack_writer.abort()
            self.pack_writer = None

    def close(self) -> None:
        if self._executor is not None:
            self._executor.shutdown(wait=True)
            self._executor = None
