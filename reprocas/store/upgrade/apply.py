"""Step 2 of `reprocas upgrade`: the one LMDB transaction that makes the index format 3.

In :meth:`Repository.ref_transaction` (so the ref moves are in the ref log, two-phase,
and a crash before the commit leaves the index as it was): the new packs with their
``chunkmaps``/``tables`` entries, ``aliases``, every ref that names an upgraded
snapshot, the ``snapshots`` and ``forgotten`` records (each forgotten record also
logged as an ``"op": "forget"`` line under its new id, for ``index rebuild``), the
provenance edges, the files cache, the reference counts (recounted: runs now hold the
snapshots their old ids alias), ``meta.format_version = 3`` and
``meta.upgrade = "marker-pending"``.
"""

from __future__ import annotations

import time

import lmdb

from reprocas.model.ids import ID_BYTES, ObjectId
from reprocas.store import refcounts
from reprocas.store.index import pack, unpack
from reprocas.store.repository import FORMAT_VERSION_CONTENT_IDS, Repository
from reprocas.store.upgrade.convert import Converter
from reprocas.store.upgrade.marker import PENDING
from reprocas.store.writer import Writer

ALIASES = "aliases"


def apply(repo: Repository, writer: Writer, conv: Converter) -> int:
    """Commit the upgrade's index transaction; returns the number of refs moved."""
    amap = conv.snapshots
    index = repo.index
    db = index.db
    with repo.ref_transaction() as rt:
        txn = rt.txn
        writer.index_into(txn)
        for old, new in sorted(amap.items()):
            txn.put(old, new, db=db[ALIASES])
        moves = [
            (key, ObjectId(amap[value]))
            for key, value in index.iter_refs(txn)
            if len(value) == ID_BYTES and value in amap
        ]
        if moves:
            rt.set(moves)
        _move_records(repo, txn, amap, rt.id)
        _move_edges(repo, txn, amap)
        _move_filecache(repo, txn, conv)
        index.put_meta(txn, "format_version", FORMAT_VERSION_CONTENT_IDS)
        index.put_meta(txn, "upgrade", PENDING)
        # The counts were kept through the moves; recounted all the same, since the
        # runs' holdings changed (their old ids now alias the new snapshots).
        refcounts.recompute(repo, txn)
        rt.changed = True
    return len(moves)


def _move_records(
    repo: Repository, txn: lmdb.Transaction, amap: dict[bytes, bytes], tx: str
) -> None:
    """``snapshots`` and ``forgotten`` records follow their snapshot to its new id."""
    db = repo.index.db
    lines = []
    now = time.time_ns()
    for old, new in sorted(amap.items()):
        raw = txn.get(old, db=db["snapshots"])
        if raw is not None:
            txn.delete(old, db=db["snapshots"])
            txn.put(new, raw, db=db["snapshots"])
        raw = txn.get(old, db=db["forgotten"])
        if raw is not None:
            txn.delete(old, db=db["forgotten"])
            txn.put(new, raw, db=db["forgotten"])
            record = unpack(raw)
            lines.append(
                {"op": "forget", "id": new.hex(), "txn": tx, "time_ns": now, "forgotten": record}
            )
    if lines:
        repo.append_reflog(lines)


def _move_edges(repo: Repository, txn: lmdb.Transaction, amap: dict[bytes, bytes]) -> None:
    """Provenance edges (``src ‖ kind ‖ dst``, both ways) name the new snapshot ids."""
    db = repo.index.db
    changed = []
    for k, v in txn.cursor(db=db["edges_out"]):
        key = bytes(k)
        src, kind, dst = key[:32], key[32:33], key[33:]
        nsrc, ndst = amap.get(src, src), amap.get(dst, dst)
        if (nsrc, ndst) != (src, dst):
            changed.append((src, kind, dst, nsrc, ndst, bytes(v)))
    for src, kind, dst, _, _, _ in changed:
        txn.delete(src + kind + dst, db=db["edges_out"])
        txn.delete(dst + kind + src, db=db["edges_in"])
    for _, kind, _, nsrc, ndst, v in changed:
        txn.put(nsrc + kind + ndst, v, db=db["edges_out"])
        txn.put(ndst + kind + nsrc, v, db=db["edges_in"])


def _move_filecache(repo: Repository, txn: lmdb.Transaction, conv: Converter) -> None:
    """Files-cache entries take their format-3 form (``[inode, mtime_ns, size, chunk
    map id, table record id, file digest]``); one whose manifest was not converted is
    dropped (the file is read again at its next commit)."""
    db = repo.index.db["filecache"]
    updates: list[tuple[bytes, bytes | None]] = []
    for k, v in txn.cursor(db=db):
        try:
            ino, mtime_ns, size, mid, *_ = unpack(v)
            got = conv.manifests.get(bytes(mid))
        except (ValueError, TypeError):
            got = None
        if got is None:
            updates.append((bytes(k), None))
        else:
            updates.append(
                (bytes(k), pack([ino, mtime_ns, size, got.chunkmap, got.table, got.digest]))
            )
    for key, value in updates:
        if value is None:
            txn.delete(key, db=db)
        else:
            txn.put(key, value, db=db)
