"""Reading an LMDB data file's own structure before LMDB maps it.

LMDB maps ``data.mdb`` and trusts its two meta pages: a page it reaches that lies past
the end of the file ends the process with SIGBUS. A sound file may still be shorter
than the pages its newest meta page counts (``mm_last_pg``): pages a transaction
allocated and freed again ("loose" pages) are never written, and they are the ones at
the top. So a short file is sound exactly when every page past its end is on the
free list; that is what :func:`header_damage` checks, reading the free list itself
and refusing any page it would have to follow past the end.

Layout (lmdb 0.9, 64-bit): a page starts with a 16-byte header (pgno u64, pad u16,
flags u16, lower u16, upper u16 — or pages u32 for an overflow page); a meta page's
body follows it (magic, version, address, mapsize, the FREE and MAIN database records
of 48 bytes each, last_pg, txnid); a B-tree page's node offsets follow the header.
"""

from __future__ import annotations

import os
import struct
from pathlib import Path
from typing import BinaryIO

META_MAGIC = 0xBEEFC0DE
_P_BRANCH, _P_LEAF, _P_OVERFLOW, _P_LEAF2 = 0x01, 0x02, 0x04, 0x20
_F_BIGDATA = 0x01
_INVALID = 0xFFFFFFFFFFFFFFFF
_MAX_SHORT_CHECK = 1 << 20  # pages past the end worth proving free (4 GiB at 4 KiB)


class _Bad(Exception):
    pass


def header_damage(path: Path) -> str | None:
    """Why ``path/data.mdb`` cannot be opened safely, or None when it can (or is
    absent)."""
    data_file = path / "data.mdb"
    try:
        with open(data_file, "rb") as f:
            return _check(f)
    except FileNotFoundError:
        return None
    except OSError as exc:
        return f"data.mdb is unreadable: {exc.strerror or exc}"


def _check(f: BinaryIO) -> str | None:
    size = os.fstat(f.fileno()).st_size
    head = f.read(16 + 160)
    if len(head) < 160:
        return f"data.mdb is only {size} bytes"
    psize = struct.unpack_from("<I", head, 40)[0]
    if psize < 512 or psize & (psize - 1) or psize > 1 << 16:
        return "bad page size in its header"
    f.seek(psize)
    second = f.read(160)
    best: tuple[int, int, bytes] | None = None
    for meta in (head, second):
        if len(meta) < 160:
            continue
        magic, version = struct.unpack_from("<II", meta, 16)
        last_pg, txnid = struct.unpack_from("<QQ", meta, 136)
        if magic == META_MAGIC and version == 1 and (best is None or txnid > best[0]):
            best = (txnid, last_pg, meta)
    if best is None:
        return "MDB_INVALID: no valid meta page"
    _, last_pg, meta = best
    in_file = size // psize
    if last_pg + 1 <= in_file:
        return None
    cut = f"data.mdb is cut short: {size} bytes, its header names {(last_pg + 1) * psize}"
    missing = last_pg + 1 - in_file
    if missing > _MAX_SHORT_CHECK:
        return cut
    free_root, main_root = (struct.unpack_from("<Q", meta, off)[0] for off in (80, 128))
    if max(r for r in (free_root, main_root, 0) if r != _INVALID) >= in_file:
        return cut
    try:
        free = _free_pages(f, psize, in_file, free_root)
    except _Bad:
        return cut
    if any(pg not in free for pg in range(in_file, last_pg + 1)):
        return cut
    return None


def _page(f: BinaryIO, psize: int, in_file: int, pgno: int) -> bytes:
    if pgno < 2 or pgno >= in_file:
        raise _Bad
    f.seek(pgno * psize)
    page = f.read(psize)
    if len(page) < psize or struct.unpack_from("<Q", page, 0)[0] != pgno:
        raise _Bad
    return page


def _free_pages(f: BinaryIO, psize: int, in_file: int, root: int) -> set[int]:
    """Every page number on the free list whose root is ``root``."""
    free: set[int] = set()
    if root == _INVALID:
        return free
    todo, seen = [root], set[int]()
    while todo:
        pgno = todo.pop()
        if pgno in seen or len(seen) > in_file:
            raise _Bad
        seen.add(pgno)
        page = _page(f, psize, in_file, pgno)
        flags, lower = struct.unpack_from("<HH", page, 10)
        if flags & _P_LEAF2 or not flags & (_P_BRANCH | _P_LEAF) or lower < 16:
            raise _Bad
        for i in range((lower - 16) // 2):
            off = struct.unpack_from("<H", page, 16 + 2 * i)[0]
            if off + 8 > psize:
                raise _Bad
            lo, hi, nflags, ksize = struct.unpack_from("<HHHH", page, off)
            if flags & _P_BRANCH:
                todo.append(lo | hi << 16 | nflags << 32)
                continue
            dsize, body = lo | hi << 16, off + 8 + ksize
            if nflags & _F_BIGDATA:
                (ovpg,) = struct.unpack_from("<Q", page, body)
                data = _overflow(f, psize, in_file, ovpg, dsize)
            else:
                if body + dsize > psize:
                    raise _Bad
                data = page[body : body + dsize]
            if len(data) < 8:
                raise _Bad
            (count,) = struct.unpack_from("<Q", data, 0)
            if 8 * (count + 1) > len(data):
                raise _Bad
            free.update(struct.unpack_from(f"<{count}Q", data, 8))
    return free


def _overflow(f: BinaryIO, psize: int, in_file: int, pgno: int, dsize: int) -> bytes:
    page = _page(f, psize, in_file, pgno)
    flags, pages = struct.unpack_from("<HI", page, 10)
    if not flags & _P_OVERFLOW or pgno + pages > in_file or 16 + dsize > pages * psize:
        raise _Bad
    f.seek(pgno * psize + 16)
    data = f.read(dsize)
    if len(data) < dsize:
        raise _Bad
    return data
