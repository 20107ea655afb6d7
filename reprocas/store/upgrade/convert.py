"""Writing the format-3 form of format-2 snapshots: trees, chunk maps, table records.

Bottom up, each object once: a format-2 tree becomes a format-3 tree (files named by
their digest, table records out of the tree), each file manifest a chunk map with the
same chunk list (no chunk is read or written), each table record a copy that carries
its file's digest (the ``tables`` key). A snapshot becomes a snapshot with the same
fields over the new root, its parent and ``derived_from`` mapped to their new ids, and
``extra.upgraded_from`` naming the format-2 id (so ``index rebuild`` can recreate the
``aliases`` sub-database from the packs). Everything new goes through one
:class:`~reprocas.store.writer.Writer`, into new packs.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace

import lmdb

from reprocas.errors import IntegrityError
from reprocas.model.ids import ID_BYTES, ObjectId
from reprocas.model.objects import (
    ChunkMap,
    FileManifest,
    Snapshot,
    TableRecord,
    Tree,
    TreeEntry,
)
from reprocas.store.files import chunkmap_key
from reprocas.store.repository import Repository
from reprocas.store.writer import Writer

UPGRADED_FROM = "upgraded_from"


@dataclass
class FileMap:
    """A format-2 manifest's format-3 form: digest, chunk map id, table record id."""

    digest: bytes
    chunkmap: bytes
    table: bytes | None


@dataclass
class Converter:
    """Converts format-2 objects (read in ``txn``) into new format-3 objects."""

    repo: Repository
    writer: Writer
    txn: lmdb.Transaction
    trees: dict[bytes, bytes] = field(default_factory=dict)  # old tree -> new tree
    files: dict[tuple[bytes, bytes | None], FileMap] = field(default_factory=dict)
    snapshots: dict[bytes, bytes] = field(default_factory=dict)  # old -> new snapshot
    manifests: dict[bytes, FileMap] = field(default_factory=dict)  # manifest id -> form

    # -- files ---------------------------------------------------------------------------

    def file(self, e: TreeEntry) -> TreeEntry:
        key = (e.target, e.meta)
        got = self.files.get(key)
        if got is None:
            got = self._file(e)
            self.files[key] = got
            self.manifests.setdefault(e.target, got)
        return TreeEntry(e.name, "file", e.mode, got.digest, e.size)

    def _file(self, e: TreeEntry) -> FileMap:
        obj = self.repo.load(self.txn, ObjectId(e.target))
        if not isinstance(obj, FileManifest):
            raise IntegrityError(
                f"file {e.name!r} names object {e.target.hex()}, which is not a file manifest",
                object=e.target.hex(),
            )
        if len(obj.digest) != ID_BYTES or obj.size != e.size:
            raise IntegrityError(
                f"the manifest of {e.name!r} ({e.target.hex()}) has no whole-file digest or "
                "another size than its tree entry; run `reprocas verify --read-data`",
                object=e.target.hex(),
            )
        chunking = self.repo.chunking_id
        cm = ChunkMap(obj.size, obj.digest, chunking, obj.chunks)
        cid = self.writer.add_object(cm.to_wire()).raw
        # The same content cut the same way is the same chunk map; should two manifests
        # of one digest differ (never made by one chunking), the first is kept: both
        # lists decode to the same bytes.
        cid = self.writer.file_keys.setdefault(chunkmap_key(obj.digest, chunking), cid)
        table = None
        if e.meta is not None:
            rec = self.repo.load(self.txn, ObjectId(e.meta))
            if not isinstance(rec, TableRecord):
                raise IntegrityError(
                    f"file {e.name!r} names table record {e.meta.hex()}, which is not one",
                    object=e.meta.hex(),
                )
            rid = self.writer.add_object(replace(rec, digest=obj.digest).to_wire()).raw
            table = self.writer.table_keys.setdefault(obj.digest, rid)
        return FileMap(obj.digest, cid, table)

    # -- trees ---------------------------------------------------------------------------

    def tree(self, root: bytes) -> bytes:
        """The format-3 id of format-2 tree ``root`` (written with its subtrees).
        Without recursion: a tree may be thousands of levels deep."""
        done = self.trees.get(root)
        if done is not None:
            return done
        # Frames: [tree id, its entries, next entry, new entries so far].
        stack: list[tuple[bytes, tuple[TreeEntry, ...], list[int], list[TreeEntry]]] = []

        def push(tid: bytes) -> None:
            tree = self.repo.load_tree(self.txn, ObjectId(tid))
            stack.append((tid, tree.entries, [0], []))

        push(root)
        while stack:
            tid, entries, at, out = stack[-1]
            if at[0] == len(entries):
                tree3 = Tree.sorted(out, 3)
                self.trees[tid] = self.writer.add_object(tree3.to_wire()).raw
                stack.pop()
                continue
            e = entries[at[0]]
            if e.kind == "dir":
                sub = self.trees.get(e.target)
                if sub is None:
                    push(e.target)  # this entry is taken again once its tree is done
                    continue
                out.append(TreeEntry(e.name, "dir", e.mode, sub))
            elif e.kind == "file":
                out.append(self.file(e))
            else:
                out.append(TreeEntry(e.name, e.kind, e.mode, e.target, e.size))
            at[0] += 1
        return self.trees[root]

    # -- snapshots -----------------------------------------------------------------------

    def snapshot(self, sid: bytes, snap: Snapshot) -> bytes:
        """The new id of snapshot ``sid`` (its parent and sources converted first)."""
        root = self.tree(snap.root.raw)
        extra = dict(snap.extra)
        derived = extra.get("derived_from")
        if isinstance(derived, list):
            extra["derived_from"] = [
                self._mapped(d) if isinstance(d, bytes) else d for d in derived
            ]
        extra[UPGRADED_FROM] = sid
        parent = ObjectId(self._mapped(snap.parent.raw)) if snap.parent is not None else None
        new = replace(snap, root=ObjectId(root), parent=parent, extra=extra)
        nid = self.writer.add_object(new.to_wire()).raw
        self.snapshots[sid] = nid
        return nid

    def _mapped(self, sid: bytes) -> bytes:
        """A snapshot id's new id; one not upgraded (gone, or nothing keeps it) as is."""
        return self.snapshots.get(sid, sid)


def dependencies(snap: Snapshot) -> list[bytes]:
    """The snapshots whose new ids ``snap``'s new form names: parent, derived-from."""
    out = [snap.parent.raw] if snap.parent is not None else []
    for d in snap.extra.get("derived_from") or ():
        if isinstance(d, bytes):
            out.append(d)
    return out


def in_order(
    wanted: dict[bytes, Snapshot], each: Callable[[bytes, Snapshot], object]
) -> Iterable[bytes]:
    """Call ``each`` on every wanted snapshot, the ones it depends on first (parents,
    derived-from sources). Yields each id once done (for a progress bar)."""
    done: set[bytes] = set()
    for start in sorted(wanted):
        stack = [start]
        while stack:
            sid = stack[-1]
            if sid in done:
                stack.pop()
                continue
            todo = [d for d in dependencies(wanted[sid]) if d in wanted and d not in done]
            if todo:
                stack.extend(todo)
                continue
            each(sid, wanted[sid])
            done.add(sid)
            stack.pop()
            yield sid
