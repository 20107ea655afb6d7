"""Pack files: immutable, self-describing containers of frames and objects.

Layout (docs/FORMAT.md has the authoritative description)::

    magic      8 bytes   b"RPCPACK" + format byte 0x01
    blobs      frames (zstd or raw) and encoded objects, back to back
    trailer    canonical msgpack: {"version", "frames", "objects"}
    footer     56 bytes: trailer offset u64le | trailer length u64le |
               BLAKE3-256(trailer) | b"RPCEND" + 0x00 + 0x01

A pack is written under a temporary name, fsynced, renamed into place and its
directory fsynced; its id (and file name) is the BLAKE3 of its trailer.
"""

from __future__ import annotations

import contextlib
import errno
import os
import struct
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from reprocas.errors import IntegrityError, StorageFullError, StorageIOError
from reprocas.model.ids import ObjectId
from reprocas.native import core
from reprocas.store import codec

PACK_MAGIC = b"RPCPACK\x01"
FOOTER_MAGIC = b"RPCEND\x00\x01"
FOOTER = struct.Struct("<QQ32s8s")
PACK_VERSION = 1
# Trailers of packs holding delta frames (whose entries carry bases and depth) say 2.
PACK_VERSION_DELTA = 2
PACK_VERSIONS = (PACK_VERSION, PACK_VERSION_DELTA)
CODEC_RAW = 0
CODEC_ZSTD = 1
CODEC_DELTA = 2


@dataclass(frozen=True, slots=True)
class FrameInfo:
    """A stored frame and the chunks inside it: (digest, offset in frame, length).

    A delta frame (codec 2) also names its ``bases`` — the chunks whose bytes,
    concatenated in this order, were its zstd reference prefix — and its chain
    ``depth`` (1 + the deepest base's depth; a chunk in an ordinary frame has depth 0).
    """

    offset: int
    stored_len: int
    codec: int
    raw_len: int
    chunks: tuple[tuple[bytes, int, int], ...]
    bases: tuple[bytes, ...] = ()
    depth: int = 0

    def to_wire(self) -> list[Any]:
        w: list[Any] = [
            self.offset,
            self.stored_len,
            self.codec,
            self.raw_len,
            [[d, o, n] for d, o, n in self.chunks],
        ]
        if self.codec == CODEC_DELTA:
            w += [list(self.bases), self.depth]
        return w

    @classmethod
    def from_wire(cls, w: list[Any]) -> FrameInfo:
        off, slen, cdc, rlen, chunks = w[:5]
        bases: tuple[bytes, ...] = ()
        depth = 0
        if int(cdc) == CODEC_DELTA:
            bases = tuple(bytes(b) for b in w[5])
            depth = int(w[6])
        return cls(
            int(off),
            int(slen),
            int(cdc),
            int(rlen),
            tuple((bytes(d), int(o), int(n)) for d, o, n in chunks),
            bases,
            depth,
        )


@dataclass(frozen=True, slots=True)
class ObjectInfo:
    """A stored object: its id and where its (possibly compressed) encoding lies."""

    id: bytes
    offset: int
    stored_len: int
    codec: int
    raw_len: int

    def to_wire(self) -> list[Any]:
        return [self.id, self.offset, self.stored_len, self.codec, self.raw_len]

    @classmethod
    def from_wire(cls, w: list[Any]) -> ObjectInfo:
        oid, off, slen, cdc, rlen = w
        return cls(bytes(oid), int(off), int(slen), int(cdc), int(rlen))


@dataclass(frozen=True, slots=True)
class PackTrailer:
    frames: tuple[FrameInfo, ...]
    objects: tuple[ObjectInfo, ...]

    def encode(self) -> bytes:
        return codec.encode(
            {
                "version": PACK_VERSION_DELTA
                if any(f.codec == CODEC_DELTA for f in self.frames)
                else PACK_VERSION,
                "frames": [f.to_wire() for f in self.frames],
                "objects": [o.to_wire() for o in self.objects],
            }
        )


@dataclass(frozen=True, slots=True)
class SealedPack:
    id: ObjectId
    path: Path
    size: int
    trailer: PackTrailer


def pack_path(packs_dir: Path, pack_id: ObjectId) -> Path:
    return packs_dir / pack_id.hex[:2] / f"{pack_id.hex}.pack"


def _os_error(exc: OSError, path: Path, doing: str) -> StorageIOError:
    if exc.errno == errno.ENOSPC:
        return StorageFullError(
            f"disk full while {doing} {path}; nothing committed before is affected, "
            "free some space and run the command again",
            path=str(path),
        )
    return StorageIOError(f"{doing} {path} failed: {exc.strerror or exc}", path=str(path))


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@dataclass
class PackWriter:
    """Appends blobs to a temporary file; :meth:`seal` makes it a pack."""

    tmp_dir: Path
    packs_dir: Path
    path: Path = field(init=False)
    _fd: int = field(init=False)
    _pos: int = field(init=False)
    _frames: list[FrameInfo] = field(init=False, default_factory=list)
    _objects: list[ObjectInfo] = field(init=False, default_factory=list)

    def __post_init__(self) -> None:
        self.path = self.tmp_dir / f"pack-{uuid.uuid4().hex}.tmp"
        try:
            self._fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        except OSError as exc:
            raise _os_error(exc, self.path, "creating") from exc
        self._pos = 0
        self._write(PACK_MAGIC)

    def _write(self, data: bytes) -> int:
        offset = self._pos
        view = memoryview(data)
        try:
            while view:
                n = os.write(self._fd, view)
                view = view[n:]
        except OSError as exc:
            raise _os_error(exc, self.path, "writing") from exc
        self._pos += len(data)
        return offset

    @property
    def size(self) -> int:
        return self._pos

    @property
    def empty(self) -> bool:
        return not self._frames and not self._objects

    def add_frame(
        self,
        codec_id: int,
        payload: bytes,
        raw_len: int,
        chunks: list[tuple[bytes, int, int]],
        bases: tuple[bytes, ...] = (),
        depth: int = 0,
    ) -> FrameInfo:
        offset = self._write(payload)
        info = FrameInfo(offset, len(payload), codec_id, raw_len, tuple(chunks), bases, depth)
        self._frames.append(info)
        return info

    def add_object(self, oid: bytes, codec_id: int, payload: bytes, raw_len: int) -> ObjectInfo:
        offset = self._write(payload)
        info = ObjectInfo(oid, offset, len(payload), codec_id, raw_len)
        self._objects.append(info)
        return info

    def seal(self) -> SealedPack:
        """Write the trailer, fsync, and rename into ``packs/``; returns the pack."""
        trailer = PackTrailer(tuple(self._frames), tuple(self._objects))
        blob = trailer.encode()
        digest = core.blake3_digest(blob)
        try:
            t_off = self._write(blob)
            self._write(FOOTER.pack(t_off, len(blob), digest, FOOTER_MAGIC))
            try:
                os.fsync(self._fd)
            except OSError as exc:
                raise _os_error(exc, self.path, "syncing") from exc
            finally:
                os.close(self._fd)
                self._fd = -1
        except BaseException:
            self.abort()  # a pack that failed to seal leaves no temporary file behind
            raise
        pack_id = ObjectId(digest)
        final = pack_path(self.packs_dir, pack_id)
        try:
            final.parent.mkdir(parents=True, exist_ok=True)
            os.rename(self.path, final)
            fsync_dir(final.parent)
        except OSError as exc:
            # Not indexed, so no one else knows it: remove it wherever it landed.
            renamed = not self.path.exists()
            self.abort()
            if renamed:
                with contextlib.suppress(OSError):
                    os.unlink(final)
            raise _os_error(exc, final, "placing pack") from exc
        return SealedPack(pack_id, final, self._pos, trailer)

    def abort(self) -> int:
        """Drop the temporary file (nothing references it); returns the bytes left
        behind when it cannot be removed."""
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
        try:
            self.path.unlink()
        except FileNotFoundError:
            pass
        except OSError:
            return self._pos
        return 0


def read_trailer(path: Path) -> PackTrailer:
    """Read and check a pack's trailer; damage raises IntegrityError naming the pack."""
    try:
        with open(path, "rb") as f:
            size = os.fstat(f.fileno()).st_size
            if size < len(PACK_MAGIC) + FOOTER.size:
                raise IntegrityError(f"pack {path} is truncated ({size} bytes)", pack=str(path))
            if f.read(len(PACK_MAGIC)) != PACK_MAGIC:
                raise IntegrityError(f"pack {path} has a bad header", pack=str(path))
            f.seek(size - FOOTER.size)
            t_off, t_len, digest, magic = FOOTER.unpack(f.read(FOOTER.size))
            if magic != FOOTER_MAGIC or t_off + t_len + FOOTER.size != size:
                raise IntegrityError(f"pack {path} has a bad footer", pack=str(path), offset=size)
            f.seek(t_off)
            blob = f.read(t_len)
    except FileNotFoundError as exc:
        raise IntegrityError(f"pack {path} is missing", pack=str(path)) from exc
    except OSError as exc:
        raise _os_error(exc, path, "reading") from exc
    return parse_trailer(blob, digest, t_off, str(path))


def parse_trailer(blob: bytes, digest: bytes, t_off: int, where: str) -> PackTrailer:
    """Check a trailer's bytes against the footer's checksum and decode them (``where``
    names the pack in errors: a path, or a remote's key)."""
    if core.blake3_digest(blob) != digest:
        raise IntegrityError(
            f"pack {where}: trailer at offset {t_off} does not match its checksum",
            pack=where,
            offset=t_off,
        )
    w = codec.decode(blob)
    if not isinstance(w, dict) or w.get("version") not in PACK_VERSIONS:
        raise IntegrityError(f"pack {where}: unknown trailer version", pack=where)
    return PackTrailer(
        tuple(FrameInfo.from_wire(x) for x in w["frames"]),
        tuple(ObjectInfo.from_wire(x) for x in w["objects"]),
    )


def read_blob(path: Path, offset: int, length: int) -> bytes:
    """Read ``length`` stored bytes at ``offset`` of a pack."""
    try:
        with open(path, "rb") as f:
            data = os.pread(f.fileno(), length, offset)
    except FileNotFoundError as exc:
        raise IntegrityError(f"pack {path} is missing", pack=str(path)) from exc
    except OSError as exc:
        raise _os_error(exc, path, "reading") from exc
    if len(data) != length:
        raise IntegrityError(
            f"pack {path} ends before offset {offset + length}", pack=str(path), offset=offset
        )
    return data
