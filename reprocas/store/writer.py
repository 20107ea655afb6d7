"""The write side of one commit: new chunks and objects into packs, then the index.

Order (DESIGN.md): data into a pack, seal the pack (fsync, rename), commit that
pack's index entries in one LMDB transaction; objects likewise; the ref moves last.
A crash leaves at most temporary files and packs nothing references, which `gc`
reclaims.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from reprocas.model.ids import ObjectId
from reprocas.native import core
from reprocas.store import codec
from reprocas.store.index import ChunkLoc, ObjectLoc, pack
from reprocas.store.packs import PackWriter, SealedPack
from reprocas.store.repository import Repository


@dataclass
class Writer:
    """Accumulates new chunks and objects of one operation into packs."""

    repo: Repository
    pack_writer: PackWriter | None = None
    inflight_chunks: set[bytes] = field(default_factory=set)
    inflight_objects: dict[bytes, bytes] = field(default_factory=dict)
    sealed: list[SealedPack] = field(default_factory=list)

    @property
    def new_bytes(self) -> int:
        """Bytes added to the store so far: the sizes of the packs written."""
        current = self.pack_writer.size if self.pack_writer and not self.pack_writer.empty else 0
        return sum(p.size for p in self.sealed) + current

    def _pack(self) -> PackWriter:
        if self.pack_writer is None:
            self.pack_writer = PackWriter(self.repo.tmp_dir, self.repo.packs_dir)
        return self.pack_writer

    def is_known_chunk(self, txn: object, digest: bytes) -> bool:
        return digest in self.inflight_chunks or self.repo.index.has_chunk(txn, digest)  # type: ignore[arg-type]

    def add_frame(
        self, codec_id: int, payload: bytes, raw_len: int, chunks: list[tuple[bytes, int, int]]
    ) -> None:
        self._pack().add_frame(codec_id, payload, raw_len, chunks)
        for digest, _, _ in chunks:
            self.inflight_chunks.add(digest)
        self._maybe_rotate()

    def add_object(self, wire: object) -> ObjectId:
        """Encode, name and (when new) store an object; returns its id."""
        encoded = codec.encode(wire)
        oid = codec.object_id(encoded)
        if oid.raw in self.inflight_objects:
            return oid
        with self.repo.index.read() as txn:
            if self.repo.index.has_object(txn, oid.raw):
                return oid
        [(codec_id, payload)] = core.compress_chunks([encoded], self.repo.config.compression.level)
        self._pack().add_object(oid.raw, codec_id, payload, len(encoded))
        self.inflight_objects[oid.raw] = encoded
        self._maybe_rotate()
        return oid

    def _maybe_rotate(self) -> None:
        if self.pack_writer is not None and self.pack_writer.size >= self.repo.config.pack_size:
            self.seal()

    def seal(self) -> None:
        """Seal the open pack (if any) and index what it holds, in one transaction."""
        pw = self.pack_writer
        if pw is None:
            return
        self.pack_writer = None
        if pw.empty:
            pw.abort()
            return
        sealed = pw.seal()
        self.sealed.append(sealed)
        index = self.repo.index
        n_chunks = 0
        with index.write() as txn:
            for f in sealed.trailer.frames:
                for digest, off, length in f.chunks:
                    loc = ChunkLoc(
                        sealed.id.raw, f.offset, f.stored_len, f.codec, f.raw_len, off, length
                    )
                    txn.put(digest, loc.to_value(), db=index.db["chunks"], overwrite=False)
                    n_chunks += 1
            for o in sealed.trailer.objects:
                data = self.inflight_objects[o.id]
                oloc = ObjectLoc(sealed.id.raw, o.offset, o.stored_len, o.codec, o.raw_len, data)
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
        # Indexed now: later lookups find them in LMDB.
        self.inflight_chunks.clear()
        self.inflight_objects.clear()

    def abort(self) -> None:
        """Drop the open pack; sealed and indexed packs stay for gc to judge."""
        if self.pack_writer is not None:
            self.pack_writer.abort()
            self.pack_writer = None
