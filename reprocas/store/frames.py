"""Decoding stored frames on the Python side, delta frames included.

A delta frame (codec 2) decodes only with its bases: the chunks whose bytes,
concatenated, were its zstd reference prefix. :class:`FrameDecoder` resolves a set of
frames to everything they need (bases, and the bases' own bases — chains are bounded
by ``deltas.max_depth``), decodes them in rounds (each round one parallel native call;
a round's frames need only frames decoded before), checks every base chunk against its
digest before using it, and keeps decoded frames in a bounded LRU cache.

The checkout hot path does the same natively (``core.assemble_file`` with ``bases``).
"""

from __future__ import annotations

import contextlib
import os
from collections import OrderedDict
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

import lmdb

from reprocas.errors import CorruptDataError, IntegrityError, ReprocasError
from reprocas.native import core
from reprocas.store.index import ChunkLoc, DeltaInfo
from reprocas.store.packs import CODEC_DELTA, read_blob
from reprocas.store.repository import Repository

if TYPE_CHECKING:
    from reprocas.remote.lazy import CacheUse

DEFAULT_CACHE_BYTES = 64 << 20
MAX_OPEN_PACKS = 64

FrameKey = tuple[bytes, int]


class FrameCache:
    """Decoded frames by (pack, frame offset), least recently used out first."""

    def __init__(self, budget: int = DEFAULT_CACHE_BYTES) -> None:
        self.budget = budget
        self.used = 0
        self._frames: OrderedDict[FrameKey, bytes] = OrderedDict()
        self.verified: set[bytes] = set()

    def get(self, key: FrameKey) -> bytes | None:
        data = self._frames.get(key)
        if data is not None:
            self._frames.move_to_end(key)
        return data

    def put(self, key: FrameKey, data: bytes) -> None:
        if key in self._frames:
            return
        self._frames[key] = data
        self.used += len(data)
        while self.used > self.budget and len(self._frames) > 1:
            _, old = self._frames.popitem(last=False)
            self.used -= len(old)


def _short(d: bytes) -> str:
    return d.hex()[:16]


class FrameDecoder:
    """Decode frames by location, bases first, through a :class:`FrameCache`."""

    def __init__(self, repo: Repository, cache: FrameCache | None = None) -> None:
        self.repo = repo
        self.cache = cache or FrameCache()
        self._fds: dict[bytes, int] = {}
        # Delta bases resolved ahead (a reader's chunk table, read under its lease):
        # consulted before the index, which a prune may have emptied meanwhile.
        self.known_deltas: dict[FrameKey, DeltaInfo] = {}
        self.known_locs: dict[bytes, ChunkLoc] = {}
        # Packs a lazy pull left on a remote are read from the cache (remote.lazy).
        self._paths: dict[bytes, Path] = {}
        self._remote: CacheUse | None = None

    def _delta(self, txn: lmdb.Transaction | None, loc: ChunkLoc) -> DeltaInfo | None:
        info = self.known_deltas.get(loc.frame_key)
        if info is not None:
            return info
        if txn is None:
            with self.repo.index.read() as own:
                return self.repo.index.get_delta(own, loc)
        return self.repo.index.get_delta(txn, loc)

    def _base(self, txn: lmdb.Transaction | None, digest: bytes) -> ChunkLoc | None:
        loc = self.known_locs.get(digest)
        if loc is not None:
            return loc
        if txn is None:
            with self.repo.index.read() as own:
                return self.repo.index.get_chunk(own, digest)
        return self.repo.index.get_chunk(txn, digest)

    def _prefetch(self, locs: Iterable[ChunkLoc]) -> None:
        """Resolve each pack once; fetch the frames of remote-backed ones together."""
        need: dict[bytes, dict[int, tuple[int, int, int, int, list[tuple[int, int, bytes]]]]]
        need = {}
        for loc in locs:
            path = self._paths.get(loc.pack)
            if path is None:
                path = self.repo.pack_path(loc.pack)
                if not path.exists():
                    if self._remote is None:
                        from reprocas.remote.lazy import CacheUse

                        self._remote = CacheUse(self.repo)
                    path = self._remote.resolve(path)
                self._paths[loc.pack] = path
            if self._remote is not None and loc.pack in self._remote.pins:
                need.setdefault(loc.pack, {})[loc.frame_offset] = (
                    loc.frame_offset,
                    loc.stored_len,
                    loc.codec,
                    loc.raw_len,
                    [],
                )
        for pid, frames in need.items():
            assert self._remote is not None
            self._remote.ensure(pid, list(frames.values()))

    def _forget(self, packs: Iterable[bytes]) -> None:
        """Damage seen in remote-backed packs: their cache copies are fetched again."""
        if self._remote is not None:
            self._remote.forget(self._paths[p] for p in packs if p in self._paths)

    def _path(self, pid: bytes) -> Path:
        return self._paths.get(pid) or self.repo.pack_path(pid)

    def _read(self, loc: ChunkLoc) -> bytes:
        """A frame's stored bytes (pack files stay open for the decoder's lifetime);
        any trouble is left to ``read_blob``, which names it clearly."""
        try:
            fd = self._fds.get(loc.pack)
            if fd is None:
                if len(self._fds) >= MAX_OPEN_PACKS:
                    self._close_fds()
                fd = self._fds[loc.pack] = os.open(self._path(loc.pack), os.O_RDONLY)
            data = os.pread(fd, loc.stored_len, loc.frame_offset)
            if len(data) == loc.stored_len:
                return data
        except OSError:
            pass
        return read_blob(self._path(loc.pack), loc.frame_offset, loc.stored_len)

    def _close_fds(self) -> None:
        for fd in self._fds.values():
            with contextlib.suppress(OSError):
                os.close(fd)
        self._fds.clear()

    def close(self) -> None:
        self._close_fds()
        if self._remote is not None:
            remote, self._remote = self._remote, None
            self._paths.clear()
            remote.close()

    def __del__(self) -> None:
        with contextlib.suppress(Exception):
            self.close()

    def verified_chunk(self, frame: bytes, loc: ChunkLoc, digest: bytes) -> memoryview:
        """A chunk's bytes out of its decoded frame, checked against its digest once."""
        chunk = memoryview(frame)[loc.offset : loc.offset + loc.length]
        if digest not in self.cache.verified:
            if len(chunk) != loc.length or core.blake3_digest(chunk) != digest:
                self._forget([loc.pack])
                raise CorruptDataError(
                    f"chunk {_short(digest)} (pack {self.repo.pack_path(loc.pack)}, frame at "
                    f"offset {loc.frame_offset}) does not match its digest; run "
                    "`reprocas verify --read-data`",
                    pack=str(self.repo.pack_path(loc.pack)),
                    offset=loc.frame_offset,
                    chunk=digest.hex(),
                )
            self.cache.verified.add(digest)
        return chunk

    def load(self, txn: lmdb.Transaction | None, locs: Iterable[ChunkLoc]) -> dict[FrameKey, bytes]:
        """Decode (or find in the cache) the frames of ``locs`` and everything they
        need; returns them all by frame key (pinned for the caller, whatever the cache
        evicts). Without ``txn``, one is opened if a delta frame needs the index."""
        locs = list(locs)
        pinned: dict[FrameKey, bytes] = {}
        want: dict[FrameKey, ChunkLoc] = {}
        deltas: dict[FrameKey, DeltaInfo] = {}
        base_locs: dict[bytes, ChunkLoc] = {}
        stack = list(locs)
        while stack:
            loc = stack.pop()
            key = loc.frame_key
            if key in want or key in pinned:
                continue
            data = self.cache.get(key)
            if data is not None:
                pinned[key] = data
                continue
            want[key] = loc
            if loc.codec != CODEC_DELTA:
                continue
            info = self._delta(txn, loc)
            if info is None:
                raise IntegrityError(
                    f"delta frame at offset {loc.frame_offset} of pack "
                    f"{self.repo.pack_path(loc.pack)} has no record of its bases; run "
                    "`reprocas index rebuild`",
                    pack=str(self.repo.pack_path(loc.pack)),
                    offset=loc.frame_offset,
                )
            deltas[key] = info
            for b in info.bases:
                bl = self._base(txn, b)
                if bl is None:
                    raise IntegrityError(
                        f"base chunk {_short(b)} of a delta frame (pack "
                        f"{self.repo.pack_path(loc.pack)}, offset {loc.frame_offset}) is "
                        "missing from the store",
                        chunk=b.hex(),
                        pack=str(self.repo.pack_path(loc.pack)),
                    )
                base_locs[b] = bl
                stack.append(bl)
        todo = {k: v for k, v in want.items() if k not in pinned}
        self._prefetch(todo.values())
        while todo:
            ready = [
                k
                for k in todo
                if k not in deltas or all(base_locs[b].frame_key in pinned for b in deltas[k].bases)
            ]
            if not ready:
                raise IntegrityError("delta frames refer to each other in a cycle")
            items: list[tuple[int, bytes, int] | tuple[int, bytes, int, bytes | None]] = []
            for k in ready:
                loc = todo[k]
                blob = self._read(loc)
                if k in deltas:
                    prefix = b"".join(
                        self.verified_chunk(pinned[base_locs[b].frame_key], base_locs[b], b)
                        for b in deltas[k].bases
                    )
                    items.append((loc.codec, blob, loc.raw_len, prefix))
                else:
                    items.append((loc.codec, blob, loc.raw_len))
            try:
                decoded = core.decompress_chunks(items)
            except ReprocasError as exc:
                where = ", ".join(
                    f"{self.repo.pack_path(todo[k].pack)}@{todo[k].frame_offset}" for k in ready[:3]
                )
                self._forget([todo[k].pack for k in ready])
                raise CorruptDataError(
                    f"a stored frame does not decode ({exc}; frames {where}); "
                    "run `reprocas verify --read-data`"
                ) from exc
            for k, data in zip(ready, decoded, strict=True):
                pinned[k] = data
                self.cache.put(k, data)
                del todo[k]
        return pinned
