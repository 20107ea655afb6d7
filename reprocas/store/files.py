"""From a tree's file entry to the file's stored chunk list, in every format.

Format 1/2 trees name a file by its *manifest* id (the manifest lists the chunks), so a
tree id depends on how the repository cut the file. Format 3 trees name a file by its
*digest* (BLAKE3-256 of its whole content) and the chunk list is a storage-layer
*chunk map* found through the ``chunkmaps`` sub-database (key: file digest ‖ chunking
id); a file's table record is found through ``tables`` (key: file digest). Every reader
of file data goes through this module, so that it works on both (docs/FORMAT.md,
"Format 3").

The chunk map a key names is a function of the key (the same bytes cut with the same
settings give the same chunks, hence the same chunk-map object), so the ``chunkmaps``
answer never changes while it is live: reference counts may follow it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import lmdb

from reprocas.errors import IntegrityError, ReprocasError
from reprocas.model.ids import ObjectId
from reprocas.model.objects import CHUNKMAP, TABLE, ChunkMap, FileManifest, TableRecord, TreeEntry
from reprocas.store import codec

if TYPE_CHECKING:
    from reprocas.store.repository import Repository
    from reprocas.store.writer import Writer

CHUNKMAPS = "chunkmaps"
TABLES = "tables"


def chunkmap_key(digest: bytes, chunking: bytes) -> bytes:
    """The ``chunkmaps`` key: file digest ‖ chunking id (64 bytes)."""
    return digest + chunking


def lookup_chunkmap(repo: Repository, txn: lmdb.Transaction, digest: bytes) -> bytes | None:
    """The id of the chunk map of the file with ``digest`` under this repository's
    chunking, or None when the index has none."""
    raw = txn.get(chunkmap_key(digest, repo.chunking_id), db=repo.index.db[CHUNKMAPS])
    return None if raw is None else bytes(raw)


def file_object(repo: Repository, txn: lmdb.Transaction, entry: TreeEntry) -> ObjectId:
    """The id of the object that holds a file entry's chunk list: the manifest (format
    1/2) or the chunk map (format 3)."""
    return target_object(repo, txn, entry.target, entry.name)


def target_object(
    repo: Repository, txn: lmdb.Transaction, target: bytes, name: str = ""
) -> ObjectId:
    """:func:`file_object` for a file entry's ``target`` alone."""
    if not repo.content_ids:
        return ObjectId(target)
    found = lookup_chunkmap(repo, txn, target)
    if found is None and _is_manifest(repo, txn, target):
        return ObjectId(target)  # a format-2 tree kept by an upgraded repository
    if found is None:
        what = f"file {name!r}" if name else "a file"
        raise IntegrityError(
            f"no chunk map for {what} (digest {target.hex()}) in the index; run "
            "`reprocas index rebuild` to recreate it from the packs",
            object=target.hex(),
        )
    return ObjectId(found)


def _is_manifest(repo: Repository, txn: lmdb.Transaction, target: bytes) -> bool:
    """Whether ``target`` names a stored format-1/2 file manifest. An upgraded
    repository (reprocas.store.upgrade) still holds format-2 trees that nothing
    rewrote — the trees of runs recorded before it (logs, code diffs) — whose file
    entries name manifests; a manifest id and a file digest are BLAKE3 digests of
    different bytes, so the two readings never meet."""
    loc = repo.index.get_object(txn, target)
    # Canonical msgpack sorts the keys: a manifest ends with "type": "file".
    return loc is not None and loc.data.endswith(b"\xa4type\xa4file")


def file_manifest(repo: Repository, txn: lmdb.Transaction, entry: TreeEntry) -> FileManifest:
    """A file entry's size, whole-file digest and chunks in order, in every format."""
    oid = file_object(repo, txn, entry)
    m = repo.load_manifest(txn, oid)
    if repo.content_ids and oid.raw == entry.target:
        return m  # a format-2 entry (see _is_manifest)
    if repo.content_ids and (m.digest != entry.target or m.size != entry.size):
        raise IntegrityError(
            f"the chunk map of {entry.name!r} is for another file (index damaged; run "
            "`reprocas index rebuild`)",
            object=entry.target.hex(),
        )
    return m


def file_table(repo: Repository, txn: lmdb.Transaction, entry: TreeEntry) -> bytes | None:
    """The id of a file entry's table record (schema, rows), if one was recorded."""
    if not repo.content_ids or entry.meta is not None:
        return entry.meta  # format 1/2 trees name the record (format 3 never does)
    raw = txn.get(entry.target, db=repo.index.db[TABLES])
    return None if raw is None else bytes(raw)


def file_digest(repo: Repository, txn: lmdb.Transaction, entry: TreeEntry) -> bytes:
    """The BLAKE3-256 of a file entry's whole content (format 3: the entry itself)."""
    return target_digest(repo, txn, entry.target)


def target_digest(repo: Repository, txn: lmdb.Transaction, target: bytes) -> bytes:
    """:func:`file_digest` for a file entry's ``target`` alone."""
    if repo.content_ids and not _is_manifest(repo, txn, target):
        return target
    return repo.load_manifest(txn, ObjectId(target)).digest


def store_file(
    repo: Repository, writer: Writer, manifest: FileManifest, record: TableRecord | None = None
) -> tuple[bytes, ObjectId, bytes | None]:
    """Write a file's chunk list (and table record) the way this repository's format
    names them; returns (the tree entry's target, the chunk list's object id, the
    entry's table field). The chunk list and ``chunkmaps``/``tables`` entries become
    visible with the writer's packs (:meth:`Writer.index_into`)."""
    if not repo.content_ids:
        oid = writer.add_object(manifest.to_wire())
        meta = writer.add_object(record.to_wire()).raw if record is not None else None
        return oid.raw, oid, meta
    chunking = repo.chunking_id
    cm = ChunkMap(manifest.size, manifest.digest, chunking, manifest.chunks)
    oid = writer.add_object(cm.to_wire())
    writer.file_keys[chunkmap_key(manifest.digest, chunking)] = oid.raw
    if record is not None:
        rec = TableRecord(
            record.format,
            record.schema,
            record.fingerprint,
            record.rows,
            record.columns,
            record.row_groups,
            digest=manifest.digest,
        )
        writer.table_keys[manifest.digest] = writer.add_object(rec.to_wire()).raw
    return manifest.digest, oid, None


def unindex_object(repo: Repository, txn: lmdb.Transaction, oid: bytes, data: bytes) -> None:
    """Drop the ``chunkmaps``/``tables`` entry that names object ``oid`` (whose encoding
    is ``data``), if it is a chunk map or a table record: called when gc or prune
    removes the object from the index."""
    if b"chunkmap" not in data and b"digest" not in data:
        return  # cheap test first: most objects are neither
    try:
        w = codec.decode(data)
    except (ReprocasError, ValueError):
        return
    if not isinstance(w, dict):
        return
    db = repo.index.db
    if w.get("type") == CHUNKMAP:
        key, name = chunkmap_key(bytes(w["digest"]), bytes(w["chunking"])), CHUNKMAPS
    elif w.get("type") == TABLE and w.get("digest") is not None:
        key, name = bytes(w["digest"]), TABLES
    else:
        return
    found = txn.get(key, db=db[name])
    if found is not None and bytes(found) == oid:
        txn.delete(key, db=db[name])


def put_file_keys(
    repo: Repository,
    txn: lmdb.Transaction,
    chunkmaps: dict[bytes, bytes],
    tables: dict[bytes, bytes],
) -> None:
    """Index chunk maps and table records (a commit's, or those `index rebuild` found)."""
    db = repo.index.db
    for key, oid in chunkmaps.items():
        txn.put(key, oid, db=db[CHUNKMAPS])
    for digest, rid in tables.items():
        txn.put(digest, rid, db=db[TABLES])
