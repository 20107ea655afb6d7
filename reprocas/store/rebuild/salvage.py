"""Salvage a pack whose footer or trailer is damaged, without a format change.

Everything a pack holds can be checked by its own content: a chunk by its digest, an
object by its id. So a damaged pack is read in two steps (docs/FORMAT.md, "Salvaging
a damaged pack"):

1. the trailer itself, when only the footer is damaged: it is canonical msgpack that
   starts with ``{"frames": ...`` — found by searching backwards, decoded, and then
   trusted for nothing but *where* blobs are: each blob is checked by content;
2. the blobs the trailer does not cover (or all of them): walked from the 8-byte
   magic. A zstd frame is self-delimiting (its header and block headers give its
   length, its header its decoded size); a run of bytes that is no zstd frame is a
   raw frame or a raw object (codec 0), up to the next zstd frame. A decoded blob that
   is a canonical object is indexed as that object (id = BLAKE3 of its bytes); any
   other bytes are cut into chunks again with the repository's chunker — a frame
   always starts at a chunk boundary and the cut points depend only on the bytes
   since it, so the cuts are the ones the writer made.

What cannot be checked is reported as lost, with its offset: a delta frame found by
the walk (its bases were named only by the trailer), a truncated frame.
"""

from __future__ import annotations

import contextlib
import re
from dataclasses import dataclass, field

import msgpack

from reprocas.errors import ReprocasError
from reprocas.model.objects import object_from_wire
from reprocas.native import core
from reprocas.store import codec
from reprocas.store.packs import (
    CODEC_DELTA,
    CODEC_RAW,
    CODEC_ZSTD,
    PACK_MAGIC,
    PACK_VERSIONS,
    FrameInfo,
    ObjectInfo,
)

ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
TRAILER_START = b"\x83\xa6frames"  # canonical trailer: a 3-key map, "frames" first
_MAP_START = re.compile(rb"[\x80-\x8f\xde\xdf]")  # where a msgpack map may begin


@dataclass
class Salvage:
    """What a damaged pack still gives: verified frames and objects, and the byte
    ranges that could not be used (offset, length, why)."""

    frames: list[FrameInfo] = field(default_factory=list)
    objects: list[tuple[ObjectInfo, bytes]] = field(default_factory=list)
    lost: list[tuple[int, int, str]] = field(default_factory=list)
    trailer_found: bool = False


def zstd_extent(buf: bytes, pos: int, end: int) -> tuple[int, int | None] | None:
    """Length of the zstd frame at ``pos`` and its declared decoded size (None when the
    header does not say), or None when no whole frame lies in ``[pos, end)``."""
    p = pos + 4
    if p >= end:
        return None
    fhd = buf[p]
    p += 1
    fcs_flag, single, checksum, did_flag = fhd >> 6, (fhd >> 5) & 1, (fhd >> 2) & 1, fhd & 3
    if (fhd >> 3) & 1:
        return None  # reserved bit
    if not single:
        p += 1  # window descriptor
    p += (0, 1, 2, 4)[did_flag]
    fcs_size = (1 if single else 0, 2, 4, 8)[fcs_flag]
    if p + fcs_size > end:
        return None
    fcs: int | None = None
    if fcs_size:
        fcs = int.from_bytes(buf[p : p + fcs_size], "little") + (256 if fcs_size == 2 else 0)
    p += fcs_size
    while True:
        if p + 3 > end:
            return None
        bh = int.from_bytes(buf[p : p + 3], "little")
        p += 3
        btype, bsize = (bh >> 1) & 3, bh >> 3
        if btype == 3:
            return None
        p += 1 if btype == 1 else bsize
        if p > end:
            return None
        if bh & 1:
            break
    p += 4 if checksum else 0
    return (p - pos, fcs) if p <= end else None


def _as_object(data: bytes) -> bool:
    """Whether ``data`` is exactly one canonical reprocas object."""
    if not data or data[0] & 0xF0 not in (0x80, 0xD0):  # a msgpack map starts so
        return False
    try:
        w = codec.decode(data)
        if not isinstance(w, dict) or "type" not in w:
            return False
        object_from_wire(w)
        return codec.encode(w) == data
    except Exception:  # untrusted bytes: any failure means "not an object"
        return False


def _decode(codec_id: int, blob: bytes, raw_len: int) -> bytes | None:
    try:
        [data] = core.decompress_chunks([(codec_id, blob, raw_len)])
    except ReprocasError:
        return None
    return data


class _Salvager:
    def __init__(self, buf: bytes, params: core.ChunkerParams, frame_size: int) -> None:
        self.buf = buf
        self.params = params
        self.frame_size = frame_size
        self.out = Salvage()

    def add_decoded(self, offset: int, stored_len: int, codec_id: int, data: bytes) -> None:
        """A blob's decoded bytes: an object, or chunks cut again."""
        if _as_object(data):
            oid = core.blake3_digest(data)
            info = ObjectInfo(oid, offset, stored_len, codec_id, len(data))
            self.out.objects.append((info, data))
            return
        ends = core.cut_buffer(data, self.params)
        chunks: list[tuple[bytes, int, int]] = []
        start = 0
        for e in ends:
            chunks.append((core.blake3_digest(memoryview(data)[start:e]), start, e - start))
            start = e
        self.out.frames.append(FrameInfo(offset, stored_len, codec_id, len(data), tuple(chunks)))

    def _object_at(self, c: int, end: int) -> int:
        """Length of a canonical object encoded (raw) at ``c``, or 0. Windows grow
        only while the bytes keep parsing, so random data costs little."""
        buf = self.buf
        first = buf[c]
        key = c + (3 if first == 0xDE else 5 if first == 0xDF else 1)
        if key >= end or not 0xA0 <= buf[key] <= 0xBF:
            return 0  # every object is a map whose first key is a short str
        window = 4096
        while True:
            stop = min(end, c + window)
            unpacker = msgpack.Unpacker(raw=False, strict_map_key=False, max_buffer_size=0)
            unpacker.feed(buf[c:stop])
            try:
                unpacker.unpack()
            except msgpack.OutOfData:
                if stop >= end:
                    return 0
                window *= 16
                continue
            except Exception:
                return 0
            n = unpacker.tell()
            return n if _as_object(buf[c : c + n]) else 0

    def add_raw_run(self, pos: int, end: int) -> None:
        """Bytes that are no zstd frame: raw objects, found wherever one parses, and
        raw frames (codec 0) between them."""
        c = pos
        while c < end:
            n = self._object_at(c, end)
            if n:
                if c > pos:
                    self.add_raw_chunks(pos, c)
                data = self.buf[c : c + n]
                oid = core.blake3_digest(data)
                self.out.objects.append((ObjectInfo(oid, c, n, CODEC_RAW, n), data))
                c = pos = c + n
                continue
            m = _MAP_START.search(self.buf, c + 1, end)
            c = end if m is None else m.start()
        if pos < end:
            self.add_raw_chunks(pos, end)

    def add_raw_chunks(self, pos: int, end: int) -> None:
        """Raw chunks: frames of at most frame_size bytes, cut at the chunker's cuts."""
        data = self.buf[pos:end]
        ends = core.cut_buffer(data, self.params)
        group: list[tuple[bytes, int, int]] = []
        g0 = start = 0
        for e in ends:
            if group and e - g0 > self.frame_size:
                self.out.frames.append(
                    FrameInfo(pos + g0, start - g0, CODEC_RAW, start - g0, tuple(group))
                )
                group, g0 = [], start
            d = core.blake3_digest(memoryview(data)[start:e])
            group.append((d, start - g0, e - start))
            start = e
        if group:
            self.out.frames.append(
                FrameInfo(pos + g0, start - g0, CODEC_RAW, start - g0, tuple(group))
            )

    def walk(self, pos: int, end: int) -> None:
        """Recover the blobs in ``[pos, end)``."""
        buf = self.buf
        while pos < end:
            if buf.startswith(ZSTD_MAGIC, pos):
                ext = zstd_extent(buf, pos, end)
                if ext is None:
                    self.out.lost.append((pos, end - pos, "a zstd frame that is cut off"))
                    return
                size, fcs = ext
                data = None if fcs is None else _decode(CODEC_ZSTD, buf[pos : pos + size], fcs)
                if data is None:
                    self.out.lost.append(
                        (pos, size, "a frame that does not decode alone (a delta frame)")
                    )
                else:
                    self.add_decoded(pos, size, CODEC_ZSTD, data)
                pos += size
                continue
            nxt = buf.find(ZSTD_MAGIC, pos + 1, end)
            stop = end if nxt < 0 else nxt
            self.add_raw_run(pos, stop)
            pos = stop


def _find_trailer(buf: bytes) -> tuple[int, dict[str, list[object]]] | None:
    """The trailer of a pack whose footer is damaged: the last place a canonical
    trailer map decodes from."""
    at = len(buf)
    while True:
        at = buf.rfind(TRAILER_START, len(PACK_MAGIC), at)
        if at < 0:
            return None
        unpacker = msgpack.Unpacker(raw=False, strict_map_key=False, max_buffer_size=len(buf))
        unpacker.feed(buf[at:])
        with contextlib.suppress(Exception):
            w = unpacker.unpack()
            if (
                isinstance(w, dict)
                and w.get("version") in PACK_VERSIONS
                and isinstance(w.get("frames"), list)
                and isinstance(w.get("objects"), list)
            ):
                return at, w
        at -= 1
        if at <= len(PACK_MAGIC):
            return None


def salvage_pack(
    buf: bytes,
    params: core.ChunkerParams,
    frame_size: int,
    hints: tuple[list[FrameInfo], list[ObjectInfo]] = ([], []),
) -> Salvage:
    """Everything of a damaged pack (its bytes) that still verifies; see the module
    docstring. ``hints``: where the old index said the pack's frames and objects are
    (checked like the trailer's). Delta frames are returned unverified (their bases
    may be in other packs): the caller checks them once everything is indexed."""
    s = _Salvager(buf, params, frame_size)
    if not buf.startswith(PACK_MAGIC):
        s.out.lost.append((0, len(buf), "not a pack (bad magic)"))
        return s.out
    end = len(buf)
    covered: list[tuple[int, int]] = []
    frames: list[FrameInfo] = list(hints[0])
    objects: list[ObjectInfo] = list(hints[1])
    found = _find_trailer(buf)
    if found is not None:
        end, w = found
        s.out.trailer_found = True
        with contextlib.suppress(Exception):
            tf = [FrameInfo.from_wire(x) for x in w["frames"]]  # type: ignore[arg-type]
            to = [ObjectInfo.from_wire(x) for x in w["objects"]]  # type: ignore[arg-type]
            frames, objects = tf, to  # the trailer lists every blob; hints may not
    if frames or objects:
        seen: set[int] = set()
        for f in frames:
            if not len(PACK_MAGIC) <= f.offset <= f.offset + f.stored_len <= end:
                continue
            if f.offset in seen:
                continue
            seen.add(f.offset)
            blob = buf[f.offset : f.offset + f.stored_len]
            if f.codec == CODEC_DELTA:
                s.out.frames.append(f)
                covered.append((f.offset, f.offset + f.stored_len))
                continue
            data = _decode(f.codec, blob, f.raw_len)
            if data is None:
                continue
            good = tuple(
                (d, o, n)
                for d, o, n in f.chunks
                if o + n <= len(data) and core.blake3_digest(memoryview(data)[o : o + n]) == d
            )
            if good:
                s.out.frames.append(
                    FrameInfo(f.offset, f.stored_len, f.codec, f.raw_len, good, f.bases, f.depth)
                )
            if len(good) == len(f.chunks):
                covered.append((f.offset, f.offset + f.stored_len))
        for o in objects:
            if not len(PACK_MAGIC) <= o.offset <= o.offset + o.stored_len <= end:
                continue
            data = _decode(o.codec, buf[o.offset : o.offset + o.stored_len], o.raw_len)
            if data is not None and core.blake3_digest(data) == o.id:
                s.out.objects.append((o, data))
                covered.append((o.offset, o.offset + o.stored_len))
    # Walk what the trailer did not account for (all of it, without a trailer).
    pos = len(PACK_MAGIC)
    for a, b in sorted(covered):
        if a > pos:
            s.walk(pos, a)
        pos = max(pos, b)
    if pos < end:
        s.walk(pos, end)
    return s.out
