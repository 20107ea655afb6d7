"""The LMDB index: where every chunk and object lives, the refs, and the files cache.

Sub-databases (keys and values are written down in docs/FORMAT.md; values msgpack):

========== ============================ ===============================================
name       key                          value
========== ============================ ===============================================
meta       ascii name                   format version, chunking, compression, repo id
chunks     chunk digest (32 bytes)      [pack id, frame offset, frame stored length,
                                         codec, frame raw length, offset in frame,
                                         length]
packs      pack id (32 bytes)           {"size", "frames", "chunks", "objects"}
objects    object id (32 bytes)         [pack id, offset, stored length, codec,
                                         raw length, encoded object]
refs       ref name (utf-8)             object id (32 bytes)
snapshots  snapshot id (32 bytes)       [kind, name, version]
filecache  absolute path (bytes)        [inode, mtime_ns, size, manifest id]
forgotten  snapshot id (32 bytes)       {"ref", "name", "number", "kind", "time_ns",
                                         "logical_bytes", "forgotten_ns", "reasons",
                                         "tags"}
runs       run id (32 bytes)            summary {"name", "number", "start_ns", ...}
edges_out  from id + kind byte + to id  {"path", ...} (provenance, docs/RUNS.md)
edges_in   to id + kind byte + from id  same value as in edges_out
deltas     pack id + frame offset u64be [depth, [base chunk digest, ...]] (codec-2 frames);
           b"b" + BLAKE3(bases)         [base chunk digest, ...] (a base set, see refcounts)
aliases    format-2 snapshot id         format-3 snapshot id it was upgraded to (raw)
notes      note id (32 bytes)           {"time_ns"} (when the note was recorded)
========== ============================ ===============================================
"""

from __future__ import annotations

import errno
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import lmdb
import msgpack

from reprocas.errors import IndexDamagedError, StorageFullError, StorageIOError
from reprocas.store.lmdb_file import header_damage

DB_NAMES = (
    "meta",
    "chunks",
    "packs",
    "objects",
    "refs",
    "snapshots",
    "filecache",
    "forgotten",
    "runs",
    "edges_out",
    "edges_in",
    "refcounts",
    "deltas",
    "chunkmaps",  # format 3: file digest ‖ chunking id -> chunk map id
    "tables",  # format 3: file digest -> table record id
    "aliases",  # upgraded: format-2 snapshot id -> format-3 snapshot id
    "notes",  # note id -> {"time_ns"} (when it was recorded; reprocas.notes.store)
)
MAP_SIZE = 1 << 40  # address space only: the file grows as data is written


def pack(value: Any) -> bytes:
    return msgpack.packb(value, use_bin_type=True)  # type: ignore[no-any-return]


def unpack(data: bytes | memoryview) -> Any:
    return msgpack.unpackb(data, raw=False, strict_map_key=False)


@dataclass(frozen=True, slots=True)
class ChunkLoc:
    """Where a chunk lives: a frame in a pack, and the chunk's slice of that frame."""

    pack: bytes
    frame_offset: int
    stored_len: int
    codec: int
    raw_len: int
    offset: int
    length: int

    def to_value(self) -> bytes:
        return pack(
            [
                self.pack,
                self.frame_offset,
                self.stored_len,
                self.codec,
                self.raw_len,
                self.offset,
                self.length,
            ]
        )

    @classmethod
    def from_value(cls, data: bytes | memoryview) -> ChunkLoc:
        p, fo, sl, c, rl, o, n = unpack(data)[:7]
        return cls(bytes(p), fo, sl, c, rl, o, n)

    @property
    def frame_key(self) -> tuple[bytes, int]:
        return (self.pack, self.frame_offset)


def delta_key(pack_id: bytes, frame_offset: int) -> bytes:
    """The ``deltas`` key of a frame: pack id and frame offset (u64, big-endian)."""
    return bytes(pack_id) + frame_offset.to_bytes(8, "big")


def baseset_key(bases: tuple[bytes, ...] | list[bytes]) -> bytes:
    """The ``deltas`` key of a list of bases (``b"b"`` + BLAKE3 of the digests in
    order): the reference counts' node for "these bases, held by the chunks of delta
    frames coded against them"."""
    from reprocas.native import core

    return b"b" + core.blake3_digest(b"".join(bases))


@dataclass(frozen=True, slots=True)
class DeltaInfo:
    """A delta frame's chain depth and its base chunks (prefix order)."""

    depth: int
    bases: tuple[bytes, ...]


def put_frames(
    txn: lmdb.Transaction,
    db: dict[str, Any],
    pack_id: bytes,
    frames: Any,
    *,
    overwrite: bool = False,
) -> int:
    """Index a sealed pack's frames (``FrameInfo``s): every chunk's location and, for
    delta frames, the frame's bases. An existing chunk entry is kept (the first copy
    wins) unless ``overwrite``. Returns the number of chunks."""
    n = 0
    for f in frames:
        for digest, off, length in f.chunks:
            loc = ChunkLoc(pack_id, f.offset, f.stored_len, f.codec, f.raw_len, off, length)
            txn.put(digest, loc.to_value(), db=db["chunks"], overwrite=overwrite)
            n += 1
        if f.bases:
            put_delta(txn, db, pack_id, f)
    return n


def put_delta(txn: lmdb.Transaction, db: dict[str, Any], pack_id: bytes, f: Any) -> None:
    """Index a delta frame (a ``FrameInfo`` with bases): its depth and bases by
    location, and its base set (for the reference counts)."""
    txn.put(delta_key(pack_id, f.offset), pack([f.depth, list(f.bases)]), db=db["deltas"])
    txn.put(baseset_key(f.bases), pack(list(f.bases)), db=db["deltas"])


@dataclass(frozen=True, slots=True)
class ObjectLoc:
    pack: bytes
    offset: int
    stored_len: int
    codec: int
    raw_len: int
    data: bytes

    def to_value(self) -> bytes:
        return pack([self.pack, self.offset, self.stored_len, self.codec, self.raw_len, self.data])

    @classmethod
    def from_value(cls, data: bytes | memoryview) -> ObjectLoc:
        p, o, sl, c, rl, d = unpack(data)
        return cls(bytes(p), o, sl, c, rl, bytes(d))


def _disk_nearly_full(path: Path) -> bool:
    try:
        st = os.statvfs(path)
    except OSError:
        return False
    return st.f_bavail * st.f_frsize < (4 << 20)


# LMDB errors that mean the files are not a sound environment (not a full disk).
_DAMAGE = (
    lmdb.InvalidError,
    lmdb.CorruptedError,
    lmdb.PageNotFoundError,
    lmdb.VersionMismatchError,
)


def damaged(path: Path, why: str) -> IndexDamagedError:
    return IndexDamagedError(
        f"the index at {path} is damaged ({why}); run `reprocas index rebuild` to set it "
        "aside and recreate it from the packs",
        path=str(path),
    )


def lmdb_error(exc: lmdb.Error, path: Path) -> StorageIOError | IndexDamagedError:
    if isinstance(exc, _DAMAGE):
        return damaged(path, str(exc).split(": ", 1)[-1])
    text = str(exc)
    # LMDB reports a failed write of its pages as EIO as often as ENOSPC; when the disk
    # holding the index is (nearly) full, that is the cause worth telling the user.
    if (
        "No space" in text
        or getattr(exc, "errno", None) == errno.ENOSPC
        or (
            (isinstance(exc, (lmdb.DiskError, lmdb.MapFullError)) or "Input/output" in text)
            and _disk_nearly_full(path)
        )
    ):
        return StorageFullError(
            f"disk full while writing the index at {path}; nothing committed before is "
            "affected, free some space and run the command again",
            path=str(path),
        )
    return StorageIOError(f"index error at {path}: {text}", path=str(path))


# LMDB allows one open environment per file per process: handles to the same index
# within a process share it, and the last one to close closes it.
_OPEN: dict[str, tuple[lmdb.Environment, dict[str, Any], list[int]]] = {}
_OPEN_LOCK = threading.Lock()


class Index:
    """One LMDB environment with the named sub-databases above."""

    def __init__(self, path: Path, *, create: bool = True) -> None:
        self.path = path
        key = str(path.resolve())
        self._key = key
        self._closed = False
        with _OPEN_LOCK:
            shared = _OPEN.get(key)
            if shared is None:
                why = header_damage(path)
                if why is not None:
                    raise damaged(path, why)
                env = None
                try:
                    env = lmdb.open(
                        str(path),
                        map_size=MAP_SIZE,
                        max_dbs=len(DB_NAMES) + 8,
                        subdir=True,
                        create=create,
                        max_readers=512,
                        lock=True,
                    )
                    dbs = {name: env.open_db(name.encode(), create=True) for name in DB_NAMES}
                    # Free reader slots left by processes that were killed mid-read.
                    env.reader_check()
                except lmdb.Error as exc:
                    if env is not None:
                        env.close()
                    raise lmdb_error(exc, path) from exc
                shared = (env, dbs, [0])
                _OPEN[key] = shared
            shared[2][0] += 1
        self.env, self.db = shared[0], shared[1]

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        with _OPEN_LOCK:
            shared = _OPEN.get(self._key)
            if shared is None:
                return
            shared[2][0] -= 1
            if shared[2][0] == 0:
                del _OPEN[self._key]
                shared[0].close()

    @contextmanager
    def read(self) -> Iterator[lmdb.Transaction]:
        try:
            with self.env.begin(write=False, buffers=False) as txn:
                yield txn
        except lmdb.Error as exc:
            raise lmdb_error(exc, self.path) from exc

    @contextmanager
    def write(self) -> Iterator[lmdb.Transaction]:
        try:
            with self.env.begin(write=True) as txn:
                yield txn
        except lmdb.Error as exc:
            raise lmdb_error(exc, self.path) from exc

    # -- typed access, always inside a transaction -----------------------------------

    def get_meta(self, txn: lmdb.Transaction, name: str) -> Any:
        raw = txn.get(name.encode(), db=self.db["meta"])
        return None if raw is None else unpack(raw)

    def put_meta(self, txn: lmdb.Transaction, name: str, value: Any) -> None:
        txn.put(name.encode(), pack(value), db=self.db["meta"])

    def get_chunk(self, txn: lmdb.Transaction, digest: bytes) -> ChunkLoc | None:
        raw = txn.get(digest, db=self.db["chunks"])
        return None if raw is None else ChunkLoc.from_value(raw)

    def get_delta(self, txn: lmdb.Transaction, loc: ChunkLoc) -> DeltaInfo | None:
        """The bases of a chunk's frame, when it is a delta frame (codec 2)."""
        raw = txn.get(delta_key(loc.pack, loc.frame_offset), db=self.db["deltas"])
        if raw is None:
            return None
        depth, bases = unpack(raw)
        return DeltaInfo(int(depth), tuple(bytes(b) for b in bases))

    def get_baseset(self, txn: lmdb.Transaction, key: bytes) -> tuple[bytes, ...] | None:
        """The bases named by a :func:`baseset_key`."""
        raw = txn.get(key, db=self.db["deltas"])
        return None if raw is None else tuple(bytes(b) for b in unpack(raw))

    def has_chunk(self, txn: lmdb.Transaction, digest: bytes) -> bool:
        return txn.get(digest, db=self.db["chunks"]) is not None

    def get_object(self, txn: lmdb.Transaction, oid: bytes) -> ObjectLoc | None:
        raw = txn.get(oid, db=self.db["objects"])
        return None if raw is None else ObjectLoc.from_value(raw)

    def has_object(self, txn: lmdb.Transaction, oid: bytes) -> bool:
        return txn.get(oid, db=self.db["objects"]) is not None

    def get_ref(self, txn: lmdb.Transaction, name: str) -> bytes | None:
        raw = txn.get(name.encode(), db=self.db["refs"])
        return None if raw is None else bytes(raw)

    def iter_refs(self, txn: lmdb.Transaction, prefix: str = "") -> Iterator[tuple[str, bytes]]:
        cur = txn.cursor(db=self.db["refs"])
        p = prefix.encode()
        if not cur.set_range(p):
            return
        for k, v in cur:
            key = bytes(k)
            if not key.startswith(p):
                break
            yield key.decode(), bytes(v)

    def iter_prefix(
        self, txn: lmdb.Transaction, db: str, lo: bytes, hi: bytes | None
    ) -> Iterator[bytes]:
        """Keys of ``db`` in ``[lo, hi)``."""
        cur = txn.cursor(db=self.db[db])
        if not cur.set_range(lo):
            return
        for k in cur.iternext(keys=True, values=False):
            key = bytes(k)
            if hi is not None and key >= hi:
                break
            yield key
