"""Random access to one stored file: a seekable, read-only binary file object.

A read at offset X finds its first chunk by binary search over the file's chunk
offsets, decodes only the frames it needs (all of a read's frames in one parallel
native call), verifies every chunk against its digest before returning its bytes, and
keeps decoded frames in a bounded LRU cache so neighbouring reads cost nothing.
"""

from __future__ import annotations

import bisect
import io
from dataclasses import dataclass
from typing import Any

import lmdb

from reprocas.errors import CorruptDataError, IntegrityError
from reprocas.model.objects import FileManifest
from reprocas.store.frames import FrameCache as FrameCache
from reprocas.store.frames import FrameDecoder
from reprocas.store.index import ChunkLoc, DeltaInfo
from reprocas.store.lease import Lease
from reprocas.store.packs import CODEC_DELTA
from reprocas.store.repository import Repository


@dataclass(frozen=True, slots=True)
class _Chunk:
    offset: int  # in the file
    length: int
    digest: bytes
    loc: ChunkLoc


@dataclass(frozen=True, slots=True)
class ChunkTable:
    """Every chunk of a file with its location, the chunks' file offsets, and what its
    delta frames decode against (resolved together, so reading needs no index)."""

    chunks: list[_Chunk]
    starts: list[int]
    deltas: dict[tuple[bytes, int], DeltaInfo]
    base_locs: dict[bytes, ChunkLoc]


def _resolve_bases(
    repo: Repository, txn: lmdb.Transaction, locs: list[ChunkLoc], table: ChunkTable
) -> None:
    """Every delta frame's bases, and theirs, down the (bounded) chains."""
    stack = [loc for loc in locs if loc.codec == CODEC_DELTA]
    while stack:
        loc = stack.pop()
        if loc.frame_key in table.deltas:
            continue
        info = repo.index.get_delta(txn, loc)
        if info is None:
            continue  # reported when it is read
        table.deltas[loc.frame_key] = info
        for b in info.bases:
            bl = repo.index.get_chunk(txn, b)
            if bl is not None and b not in table.base_locs:
                table.base_locs[b] = bl
                if bl.codec == CODEC_DELTA:
                    stack.append(bl)


def chunk_table(repo: Repository, manifest: FileManifest, name: str) -> ChunkTable:
    """Every chunk of a file with its location, and the chunks' file offsets."""
    chunks: list[_Chunk] = []
    offset = 0
    with repo.index.read() as txn:
        for n, (digest, length) in enumerate(manifest.chunks):
            loc = repo.index.get_chunk(txn, digest)
            if loc is None:
                raise IntegrityError(
                    f"{name}: chunk {n} ({digest.hex()[:16]}) is missing from the index",
                    chunk=digest.hex(),
                )
            chunks.append(_Chunk(offset, length, digest, loc))
            offset += length
        table = ChunkTable(chunks, [c.offset for c in chunks], {}, {})
        _resolve_bases(repo, txn, [c.loc for c in chunks], table)
    if offset != manifest.size:
        raise IntegrityError(f"{name}: chunk lengths add up to {offset}, not {manifest.size}")
    return table


class StoreFile(io.RawIOBase):
    """A read-only, seekable file over a stored file's chunks."""

    def __init__(
        self,
        repo: Repository,
        manifest: FileManifest,
        name: str,
        cache: FrameCache | None = None,
        table: ChunkTable | None = None,
    ) -> None:
        super().__init__()
        self._repo = repo
        self.name = name
        self.size = manifest.size
        self._pos = 0
        self._cache = cache or FrameCache()
        self._decoder = FrameDecoder(repo, self._cache)
        # Taken before the chunk locations are read, kept until close(): a prune that
        # starts while this file is open leaves the packs it reads in place.
        self._lease = Lease(repo)
        try:
            t = table or chunk_table(repo, manifest, name)
        except BaseException:
            self._lease.release()
            raise
        self._chunks, self._starts = t.chunks, t.starts
        self._decoder.known_deltas = t.deltas
        self._decoder.known_locs = t.base_locs

    def close(self) -> None:
        """Close the file and give its read lease back."""
        try:
            super().close()
        finally:
            self._decoder.close()
            self._lease.release()

    # -- io.RawIOBase ---------------------------------------------------------------------

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        if whence == io.SEEK_SET:
            pos = offset
        elif whence == io.SEEK_CUR:
            pos = self._pos + offset
        elif whence == io.SEEK_END:
            pos = self.size + offset
        else:
            raise ValueError(f"invalid whence {whence}")
        if pos < 0:
            raise ValueError("negative seek position")
        self._pos = pos
        return pos

    def readinto(self, b: Any) -> int:
        view = memoryview(b).cast("B")
        data = self.pread(self._pos, len(view))
        view[: len(data)] = data
        self._pos += len(data)
        return len(data)

    def read(self, size: int = -1) -> bytes:
        if size is None or size < 0:
            size = max(0, self.size - self._pos)
        data = self.pread(self._pos, size)
        self._pos += len(data)
        return data

    def readall(self) -> bytes:
        return self.read(-1)

    # -- the work -------------------------------------------------------------------------

    def pread(self, offset: int, length: int) -> bytes:
        """``length`` bytes at ``offset`` (fewer at the end of the file), verified."""
        if self.closed:
            raise ValueError("I/O operation on closed file")
        if offset < 0 or length < 0:
            raise ValueError(f"negative offset or length ({offset}, {length})")
        end = min(self.size, offset + length)
        if offset >= end:
            return b""
        first = bisect.bisect_right(self._starts, offset) - 1
        last = bisect.bisect_right(self._starts, end - 1) - 1
        wanted = self._chunks[first : last + 1]
        frames = self._decoder.load(None, [c.loc for c in wanted])
        parts: list[memoryview] = []
        for c in wanted:
            frame = frames[c.loc.frame_key]
            try:
                # Views, not copies: the only copy is the final join.
                chunk = self._decoder.verified_chunk(frame, c.loc, c.digest)
            except CorruptDataError as exc:
                raise CorruptDataError(
                    f"{self.name}: chunk at file offset {c.offset} (pack "
                    f"{self._repo.pack_path(c.loc.pack)}, offset {c.loc.frame_offset}) "
                    "does not match its digest; run `reprocas verify --read-data`",
                    pack=str(self._repo.pack_path(c.loc.pack)),
                    offset=c.loc.frame_offset,
                ) from exc
            lo = max(offset, c.offset) - c.offset
            hi = min(end, c.offset + c.length) - c.offset
            parts.append(chunk[lo:hi] if (lo, hi) != (0, c.length) else chunk)
        return b"".join(parts)
