"""Walking what refs reach: versions → trees → manifests → chunks."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

import lmdb

from reprocas.model.ids import ObjectId
from reprocas.model.objects import FileManifest, Run, Tree, TreeEntry
from reprocas.store.index import ChunkLoc, delta_key
from reprocas.store.packs import CODEC_DELTA
from reprocas.store.repository import Repository


@dataclass
class Reach:
    """Objects and chunks reachable from a set of snapshots."""

    objects: set[bytes] = field(default_factory=set)
    chunks: dict[bytes, int] = field(default_factory=dict)  # digest -> length


def all_versions(repo: Repository, txn: lmdb.Transaction) -> Iterator[tuple[str, int, ObjectId]]:
    for name in repo.datasets(txn):
        for number, sid in repo.versions(txn, name):
            yield name, number, sid


def iter_tree(
    repo: Repository, txn: lmdb.Transaction, tid: bytes, prefix: str = ""
) -> Iterator[tuple[str, TreeEntry]]:
    """Every entry below tree ``tid`` as (``prefix`` + path, entry), depth first in name
    order (a directory before what it holds). Without recursion: a tree may be
    thousands of levels deep."""
    stack = [(iter(repo.load_tree(txn, ObjectId(tid)).entries), prefix)]
    while stack:
        entries, at = stack[-1]
        e = next(entries, None)
        if e is None:
            stack.pop()
            continue
        path = at + e.name
        yield path, e
        if e.kind == "dir":
            stack.append((iter(repo.load_tree(txn, ObjectId(e.target)).entries), path + "/"))


def reach_snapshot(
    repo: Repository,
    txn: lmdb.Transaction,
    sid: ObjectId,
    into: Reach | None = None,
    *,
    manifest_cache: dict[bytes, FileManifest] | None = None,
) -> Reach:
    """Everything one snapshot needs (added to ``into`` when given)."""
    r = into if into is not None else Reach()
    r.objects.add(sid.raw)
    snap = repo.load_snapshot(txn, sid)
    env = snap.extra.get("environment")
    if isinstance(env, bytes):
        r.objects.add(env)  # an environment snapshot's facts object
    # The root is walked even when another snapshot already reached it, so that a
    # fresh Reach always holds all of this snapshot's chunks.
    return reach_tree(repo, txn, snap.root.raw, r, manifest_cache=manifest_cache, force=True)


def purged_ids(repo: Repository, txn: lmdb.Transaction) -> frozenset[bytes]:
    """Snapshots removed with ``rm --purge`` (their ``forgotten`` record has a
    ``purge_ns``): their bytes must go, so runs that name them no longer keep them."""
    from reprocas.store.index import unpack

    out: set[bytes] = set()
    for k, v in txn.cursor(db=repo.index.db["forgotten"]):
        try:
            rec = unpack(v)
        except ValueError:
            continue
        if isinstance(rec, dict) and rec.get("purge_ns"):
            out.add(bytes(k))
    return frozenset(out)


def is_purged(repo: Repository, txn: lmdb.Transaction, sid: bytes) -> bool:
    """Whether ``sid`` was removed with ``rm --purge`` (one look-up)."""
    from reprocas.store.index import unpack

    raw = txn.get(sid, db=repo.index.db["forgotten"])
    if raw is None:
        return False
    try:
        rec = unpack(raw)
    except ValueError:
        return False
    return isinstance(rec, dict) and bool(rec.get("purge_ns"))


def run_snapshots(repo: Repository, txn: lmdb.Transaction, run: Run) -> list[ObjectId]:
    """The snapshots a run keeps alive: those it names, less the purged ones. An id
    that `reprocas upgrade` aliased keeps the snapshot it became, not the old one."""
    ids = dict.fromkeys(repo.current_id(txn, s) for s in run.snapshot_ids())
    return [s for s in ids if not is_purged(repo, txn, s.raw)]


def reach_runs(repo: Repository, txn: lmdb.Transaction, into: Reach) -> Reach:
    """Everything recorded runs need (added to ``into``): each run object (refs
    ``run:<name>:<N>``), the tree of its own files (logs, code diff), and the snapshots
    it used, generated and ran in — kept even when their versions were forgotten, but
    not once purged (``rm --purge``)."""
    for _, value in repo.index.iter_refs(txn, "run:"):
        run = repo.load(txn, ObjectId(value))
        if not isinstance(run, Run):
            continue
        into.objects.add(value)
        if run.root is not None:
            reach_tree(repo, txn, run.root.raw, into)
        for sid in run_snapshots(repo, txn, run):
            if sid.raw not in into.objects:
                reach_snapshot(repo, txn, sid, into)
    return into


def reach_tree(
    repo: Repository,
    txn: lmdb.Transaction,
    tid: bytes,
    into: Reach,
    *,
    manifest_cache: dict[bytes, FileManifest] | None = None,
    force: bool = False,
) -> Reach:
    """A tree, its subtrees, manifests, table records and chunks (added to ``into``);
    with ``force`` the root is walked even if ``into`` already holds it."""
    stack = [tid]
    while stack:
        t = stack.pop()
        if t in into.objects and not (force and t == tid):
            continue
        into.objects.add(t)
        tree = repo.load(txn, ObjectId(t))
        if not isinstance(tree, Tree):
            continue
        for e in tree.entries:
            if e.kind == "dir":
                stack.append(e.target)
            elif e.kind == "file":
                table = repo.entry_table(txn, e)
                if table is not None:
                    into.objects.add(table)  # the file's table record
                # The manifest (format 1/2) or chunk map (format 3) holding its chunks.
                oid = repo.entry_object(txn, e).raw
                if oid in into.objects:
                    continue
                into.objects.add(oid)
                m = manifest_cache.get(oid) if manifest_cache is not None else None
                if m is None:
                    m = repo.load_manifest(txn, ObjectId(oid))
                    if manifest_cache is not None:
                        manifest_cache[oid] = m
                for d, n in m.chunks:
                    into.chunks[d] = n
    return into


class BaseResolver:
    """The chunks a stored chunk needs besides itself: for a chunk in a delta frame,
    the frame's bases and, transitively, theirs (bounded by the chain depth). Whatever
    keeps a chunk alive keeps these alive too."""

    def __init__(self, repo: Repository, txn: lmdb.Transaction) -> None:
        self.repo = repo
        self.txn = txn
        self.active = txn.stat(repo.index.db["deltas"])["entries"] > 0
        self._frames: dict[bytes, tuple[bytes, ...]] = {}

    def _loc(self, digest: bytes) -> tuple[bytes, ChunkLoc] | None:
        """The delta frame a chunk lies in and its location (None: not a delta chunk)."""
        loc = self.repo.index.get_chunk(self.txn, digest)
        if loc is None or loc.codec != CODEC_DELTA:
            return None
        return delta_key(loc.pack, loc.frame_offset), loc

    def _bases(self, loc: ChunkLoc) -> tuple[bytes, ...]:
        info = self.repo.index.get_delta(self.txn, loc)
        return info.bases if info is not None else ()

    def closure(self, digest: bytes) -> tuple[bytes, ...]:
        if not self.active:
            return ()
        found = self._loc(digest)
        if found is None:
            return ()
        key, loc = found
        got = self._frames.get(key)
        if got is not None:
            return got
        # Without recursion, and each base once: a damaged index might hold a cycle.
        out: dict[bytes, None] = {}
        stack = list(reversed(self._bases(loc)))
        while stack:
            b = stack.pop()
            if b in out:
                continue
            out[b] = None
            bfound = self._loc(b)
            if bfound is None:
                continue
            known = self._frames.get(bfound[0])
            if known is not None:
                out.update(dict.fromkeys(known))
            else:
                stack.extend(reversed(self._bases(bfound[1])))
        got = tuple(out)
        self._frames[key] = got
        return got


def add_bases(repo: Repository, txn: lmdb.Transaction, into: Reach) -> Reach:
    """Add to ``into`` the base chunks its delta chunks decode against."""
    res = BaseResolver(repo, txn)
    if not res.active:
        return into
    extra: dict[bytes, int] = {}
    for d in list(into.chunks):
        for b in res.closure(d):
            if b not in into.chunks and b not in extra:
                loc = repo.index.get_chunk(txn, b)
                extra[b] = loc.length if loc is not None else 0
    into.chunks.update(extra)
    return into


def reach_notes(repo: Repository, txn: lmdb.Transaction, into: Reach) -> Reach:
    """Note objects (refs ``note:<id>``, and ``pin:<dataset>`` naming a pin's note):
    a note is never collected. What a note is about is kept by its own refs, or by the
    note only through retention (``--protect``), never here."""
    for prefix in ("note:", "pin:"):
        for _, value in repo.index.iter_refs(txn, prefix):
            into.objects.add(value)
    return into
