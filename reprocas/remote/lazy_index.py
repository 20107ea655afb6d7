"""A lazy pull's view of one remote pack: its footer, trailer and objects by range reads,
checked as a downloaded pack is (docs/FORMAT.md, "Lazy pulls and the remote pack cache")."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from reprocas.errors import CorruptDataError, IntegrityError
from reprocas.native import core
from reprocas.remote.backend import Backend
from reprocas.remote.lazy import PARALLEL, Range, coalesce
from reprocas.store.packs import FOOTER, FOOTER_MAGIC, PACK_MAGIC, PackTrailer, parse_trailer


def remote_pack_index(
    backend: Backend, pid: bytes, size: int
) -> tuple[PackTrailer, dict[bytes, bytes], int]:
    """Range-read a remote pack's footer, trailer and objects and check them as a
    downloaded pack is checked: the footer's checksum is the pack's id, the trailer
    matches it, every object hashes to its id. Returns trailer, objects, bytes read."""
    from reprocas.remote.protocol import pack_key

    key = pack_key(pid)
    where = f"{backend.url}/{key}"
    if size < len(PACK_MAGIC) + FOOTER.size:
        raise IntegrityError(f"remote pack {where} is too short ({size} bytes)", pack=pid.hex())
    tail = backend.get(key, size - FOOTER.size, size)
    read = len(tail)
    if len(tail) != FOOTER.size:
        raise IntegrityError(f"remote pack {where} is shorter than listed", pack=pid.hex())
    t_off, t_len, digest, magic = FOOTER.unpack(tail)
    if digest != pid or magic != FOOTER_MAGIC or t_off + t_len + FOOTER.size != size:
        raise IntegrityError(f"remote pack {where} does not match its name", pack=pid.hex())
    blob = backend.get(key, t_off, t_off + t_len)
    read += len(blob)
    trailer = parse_trailer(blob, digest, t_off, where)
    # Joined but never split: each object lies whole in one span.
    spans = coalesce([(o.offset, o.offset + o.stored_len) for o in trailer.objects], cap=1 << 62)
    got: dict[int, bytes] = {}

    def one(r: Range) -> tuple[int, bytes]:
        return r[0], backend.get(key, r[0], r[1])

    with ThreadPoolExecutor(max(1, min(PARALLEL, len(spans)))) as ex:
        for start, data in ex.map(one, spans):
            got[start] = data
            read += len(data)
    items: list[tuple[int, bytes, int]] = []
    for o in trailer.objects:
        start = next(s for s, e in spans if s <= o.offset and o.offset + o.stored_len <= e)
        part = got[start][o.offset - start : o.offset - start + o.stored_len]
        if len(part) != o.stored_len:
            raise IntegrityError(f"remote pack {where}: object {o.id.hex()} is cut short")
        items.append((o.codec, part, o.raw_len))
    objects: dict[bytes, bytes] = {}
    try:
        decoded = core.decompress_chunks(items) if items else []
    except CorruptDataError as exc:
        raise IntegrityError(f"remote pack {where}: an object does not decode ({exc})") from exc
    for o, data in zip(trailer.objects, decoded, strict=True):
        if core.blake3_digest(data) != o.id:
            raise IntegrityError(f"remote pack {where}: object {o.id.hex()} is damaged")
        objects[o.id] = data
    return trailer, objects, read
