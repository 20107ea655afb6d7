"""Exact accounting: what the store weighs after pruning, for any set of kept versions.

The store is made of *blobs* — frames (one or more chunks compressed together) and
objects — inside packs. A blob is live when a kept version reaches it through the
index (a chunk's entry names its frame, an object's entry names its blob). Prune
(reprocas.retention.prune) treats each indexed pack the same way this model does:

* no live blob: the pack is deleted;
* some dead blob that a forgotten version used, or dead blobs above ``max_unused`` of
  the pack: the pack is *repacked* — its live blobs are copied, byte for byte and in
  order, into one new pack (a frame is copied whole, with all its chunks, if any of its
  chunks is live);
* otherwise the pack stays as it is.

Because blobs are copied unchanged and the new trailer is built the same way in both
places (:func:`layout`), the size after pruning is computed exactly, not estimated:
``freed_bytes`` predicted by ``forget`` equals what ``prune`` removes, as long as nobody
commits or forgets in between. A frame that holds both kept and forgotten chunks stays
whole (its bytes go when its last chunk does); that is what the model counts.

:class:`CostModel` is plain data plus pure computation, so the policy stays pure;
:func:`build_model` is the part that reads the repository.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Hashable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Generic, TypeVar

import lmdb

from reprocas.errors import IntegrityError, ReprocasError
from reprocas.model.ids import ObjectId
from reprocas.model.objects import ChunkMap, FileManifest, Note, Run, Snapshot, Tree
from reprocas.store.index import unpack
from reprocas.store.packs import FOOTER, PACK_MAGIC, FrameInfo, ObjectInfo, PackTrailer
from reprocas.store.packs import read_trailer as _read_trailer
from reprocas.store.reachability import BaseResolver, run_snapshots
from reprocas.store.repository import Repository

DEFAULT_MAX_UNUSED = 0.10

K = TypeVar("K", bound=Hashable)

Blob = FrameInfo | ObjectInfo


def layout(blobs: Sequence[Blob]) -> tuple[PackTrailer, list[int], int]:
    """A new pack holding ``blobs`` in order: its trailer, each blob's new offset, and
    the pack's exact size in bytes."""
    pos = len(PACK_MAGIC)
    frames: list[FrameInfo] = []
    objects: list[ObjectInfo] = []
    offsets: list[int] = []
    for b in blobs:
        offsets.append(pos)
        if isinstance(b, FrameInfo):
            frames.append(
                FrameInfo(pos, b.stored_len, b.codec, b.raw_len, b.chunks, b.bases, b.depth)
            )
        else:
            objects.append(ObjectInfo(b.id, pos, b.stored_len, b.codec, b.raw_len))
        pos += b.stored_len
    trailer = PackTrailer(tuple(frames), tuple(objects))
    return trailer, offsets, pos + len(trailer.encode()) + FOOTER.size


class Walker(Generic[K]):
    """What a snapshot needs, as keys chosen by the caller (blob units, pack ids, ...).

    Subtrees and manifests are memoised, so walking many versions that share most of
    their trees costs little more than walking one. With ``tolerant``, missing objects
    are skipped (forgotten versions whose data is already gone); otherwise they raise.
    """

    def __init__(
        self,
        repo: Repository,
        txn: lmdb.Transaction,
        chunk_key: Callable[[bytes], K | None],
        object_key: Callable[[bytes], K | None],
        *,
        tolerant: bool = False,
    ) -> None:
        self.repo = repo
        self.txn = txn
        self.chunk_key = chunk_key
        self.object_key = object_key
        self.tolerant = tolerant
        self._trees: dict[bytes, frozenset[K]] = {}
        self._manifests: dict[bytes, frozenset[K]] = {}
        self.bases = BaseResolver(repo, txn)

    def _obj(self, oid: bytes, out: set[K]) -> None:
        k = self.object_key(oid)
        if k is not None:
            out.add(k)

    def _manifest(self, mid: bytes) -> frozenset[K]:
        got = self._manifests.get(mid)
        if got is not None:
            return got
        out: set[K] = set()
        self._obj(mid, out)
        try:
            m = self.repo.load(self.txn, ObjectId(mid))
        except ReprocasError:
            if not self.tolerant:
                raise
            m = None
        if isinstance(m, ChunkMap):
            m = m.manifest()
        if isinstance(m, FileManifest):
            for d, _ in m.chunks:
                k = self.chunk_key(d)
                if k is not None:
                    out.add(k)
                for b in self.bases.closure(d):  # what a delta chunk decodes against
                    kb = self.chunk_key(b)
                    if kb is not None:
                        out.add(kb)
        res = frozenset(out)
        self._manifests[mid] = res
        return res

    def _load_tree(self, tid: bytes) -> Tree | None:
        try:
            tree = self.repo.load(self.txn, ObjectId(tid))
        except ReprocasError:
            if not self.tolerant:
                raise
            return None
        return tree if isinstance(tree, Tree) else None

    def _tree(self, tid: bytes) -> frozenset[K]:
        got = self._trees.get(tid)
        if got is not None:
            return got
        # Depth first without recursion (a tree may be thousands of levels deep): a
        # tree's keys are made once its subtrees' are.
        stack: list[tuple[bytes, bool, Tree | None]] = [(tid, False, None)]
        while stack:
            t, loaded, tree = stack[-1]
            if t in self._trees:
                stack.pop()
                continue
            if not loaded:
                tree = self._load_tree(t)
                stack[-1] = (t, True, tree)
                subs = [
                    e.target
                    for e in (tree.entries if tree is not None else ())
                    if e.kind == "dir" and e.target not in self._trees
                ]
                if subs:
                    stack.extend((sub, False, None) for sub in subs)
                    continue
            out: set[K] = set()
            self._obj(t, out)
            for e in tree.entries if tree is not None else ():
                if e.kind == "dir":
                    out |= self._trees[e.target]
                elif e.kind == "file":
                    try:
                        mid = self.repo.entry_object(self.txn, e).raw
                        table = self.repo.entry_table(self.txn, e)
                    except ReprocasError:
                        if not self.tolerant:
                            raise
                        continue
                    out |= self._manifest(mid)
                    if table is not None:
                        self._obj(table, out)
            self._trees[t] = frozenset(out)
            stack.pop()
        return self._trees[tid]

    def snapshot(self, sid: bytes) -> frozenset[K]:
        """Everything one version needs: its snapshot, trees, manifests, table records,
        environment facts, and the chunks' frames."""
        out: set[K] = set()
        self._obj(sid, out)
        try:
            snap = self.repo.load(self.txn, ObjectId(sid))
        except ReprocasError:
            if not self.tolerant:
                raise
            return frozenset(out)
        if isinstance(snap, Run):
            # A run ref (run:<name>:<N>): the run, its own files, and what it names.
            if snap.root is not None:
                out |= self._tree(snap.root.raw)
            for named in run_snapshots(self.repo, self.txn, snap):
                with contextlib.suppress(ReprocasError):
                    out |= self.snapshot(named.raw)
            return frozenset(out)
        if isinstance(snap, Note):
            return frozenset(out)  # a note ref (note:, pin:) keeps the note alone
        if not isinstance(snap, Snapshot):
            raise IntegrityError(f"object {sid.hex()} is not a snapshot", object=sid.hex())
        env = snap.extra.get("environment")
        if isinstance(env, bytes):
            self._obj(env, out)
        out |= self._tree(snap.root.raw)
        return frozenset(out)


@dataclass
class CostModel:
    """Blobs per pack and which versions use which blobs; answers ``size_after``.

    ``uses`` maps a version id (hex) to the blob units it needs; ``base_live`` are units
    needed by refs outside the versions being decided; ``forgotten`` units are used by
    versions forgotten earlier (their packs are repacked at prune whatever the
    threshold).
    """

    pack_ids: list[bytes]
    pack_sizes: list[int]
    pack_units: list[list[int]]
    unit_pack: list[int]
    unit_blob: list[Blob]
    uses: dict[str, frozenset[int]]
    base_live: frozenset[int]
    forgotten: frozenset[int]
    max_unused: float = DEFAULT_MAX_UNUSED
    # A repack must free at least this many blob bytes and this share of the pack.
    min_free: tuple[int, float] = (0, 0.0)
    _cache: dict[tuple[int, frozenset[int], bool], int] = field(default_factory=dict, repr=False)

    @property
    def size_before(self) -> int:
        return sum(self.pack_sizes)

    def _live(self, keep: Iterable[str]) -> set[int]:
        live = set(self.base_live)
        for k in keep:
            live |= self.uses.get(k, frozenset())
        return live

    def _forgotten(self, keep: frozenset[str]) -> set[int]:
        out = set(self.forgotten)
        for vid, units in self.uses.items():
            if vid not in keep:
                out |= units
        return out

    def pack_action(self, p: int, live: set[int], forgotten: set[int]) -> tuple[str, list[int]]:
        """``("delete" | "repack" | "keep", live units)`` for pack ``p``."""
        units = self.pack_units[p]
        live_here = [u for u in units if u in live]
        if not live_here:
            return "delete", []
        if len(live_here) == len(units):
            return "keep", live_here
        dead = [u for u in units if u not in live]
        dead_bytes = sum(self.unit_blob[u].stored_len for u in dead)
        forced = any(u in forgotten for u in dead)
        size = self.pack_sizes[p]
        if (forced or (size and dead_bytes / size > self.max_unused)) and self.pays(
            dead_bytes, size
        ):
            return "repack", live_here
        return "keep", live_here

    def not_worth_repacking(self, keep: frozenset[str] = frozenset()) -> list[tuple[int, int]]:
        """Packs (as (size, unused blob bytes)) that would be repacked but for the
        ``min_free`` threshold: left as they are, shown in the prune plan."""
        live = self._live(keep)
        forgotten = self._forgotten(keep)
        out: list[tuple[int, int]] = []
        for p, units in enumerate(self.pack_units):
            dead = [u for u in units if u not in live]
            if not dead or len(dead) == len(units):
                continue
            dead_bytes = sum(self.unit_blob[u].stored_len for u in dead)
            size = self.pack_sizes[p]
            wanted = any(u in forgotten for u in dead) or (
                size and dead_bytes / size > self.max_unused
            )
            if wanted and not self.pays(dead_bytes, size):
                out.append((size, dead_bytes))
        return out

    def pays(self, dead_bytes: int, size: int) -> bool:
        """Whether repacking a pack of ``size`` bytes to drop ``dead_bytes`` is worth it
        (the ``retention.repack-min-free`` threshold)."""
        min_bytes, min_share = self.min_free
        return dead_bytes >= min_bytes and (not size or dead_bytes / size >= min_share)

    def repacked_size(self, p: int, live_here: list[int]) -> int:
        key = (p, frozenset(live_here), True)
        got = self._cache.get(key)
        if got is None:
            got = layout([self.unit_blob[u] for u in live_here])[2]
            self._cache[key] = got
        return got

    def size_after(self, keep: frozenset[str]) -> int:
        """The exact bytes of packs after ``forget`` keeping ``keep`` and a prune."""
        live = self._live(keep)
        forgotten = self._forgotten(keep)
        total = 0
        for p in range(len(self.pack_ids)):
            action, live_here = self.pack_action(p, live, forgotten)
            if action == "keep":
                total += self.pack_sizes[p]
            elif action == "repack":
                total += self.repacked_size(p, live_here)
        return total

    def lower_bound_prefix(
        self, keep: frozenset[str], order: Sequence[str], budget: int
    ) -> tuple[int, list[int]]:
        """Forgetting ``order`` one by one: the first count at which a lower bound of the
        bytes freed reaches the budget, and each version's marginal blob bytes.

        Only blobs that become unused are counted; trailers that shrink make the exact
        figure a little larger, never smaller.
        """
        refs: dict[int, int] = {}
        for u in self.base_live:
            refs[u] = 1 << 30
        for k in keep:
            for u in self.uses.get(k, frozenset()):
                refs[u] = refs.get(u, 0) + 1
        size = self.size_after(keep)
        marginal: list[int] = []
        found = len(order)
        for i, vid in enumerate(order):
            freed = 0
            for u in self.uses.get(vid, frozenset()):
                refs[u] -= 1
                if refs[u] == 0:
                    freed += self.unit_blob[u].stored_len
            marginal.append(freed)
            size -= freed
            if size <= budget and found == len(order):
                found = i + 1
        return found, marginal


def read_packs(
    repo: Repository, txn: lmdb.Transaction
) -> tuple[list[bytes], list[int], list[PackTrailer]]:
    """Every indexed pack with its size and trailer (damaged packs are left out: prune
    never touches what it cannot read)."""
    ids: list[bytes] = []
    sizes: list[int] = []
    trailers: list[PackTrailer] = []
    for k, v in txn.cursor(db=repo.index.db["packs"]):
        info = unpack(v)
        if info.get("damaged"):
            continue
        pid = bytes(k)
        try:
            trailer = _read_trailer(repo.pack_path(pid))
        except ReprocasError:
            continue
        ids.append(pid)
        sizes.append(int(info.get("size", 0)))
        trailers.append(trailer)
    return ids, sizes, trailers


def all_roots(repo: Repository, txn: lmdb.Transaction) -> set[bytes]:
    """Every snapshot any ref names (versions, tags, any kind): the live roots."""
    return {v for _, v in repo.index.iter_refs(txn, "")}


def forgotten_ids(repo: Repository, txn: lmdb.Transaction) -> list[bytes]:
    db = repo.index.db.get("forgotten")
    if db is None:
        return []
    return [bytes(k) for k in txn.cursor(db=db).iternext(keys=True, values=False)]


def build_model(
    repo: Repository,
    txn: lmdb.Transaction,
    decided: Iterable[bytes],
    *,
    extra_forgotten: Iterable[bytes] = (),
    max_unused: float = DEFAULT_MAX_UNUSED,
    min_free: tuple[int, float] | None = None,
) -> CostModel:
    """Read the index and pack trailers into a :class:`CostModel`.

    ``decided`` are the snapshot ids the policy decides on; every other ref is live.
    ``min_free`` is the repack threshold; by default the repository's
    ``retention.repack-min-free``, so forget, prune and du count the same way.
    """
    if min_free is None:
        from reprocas.retention.config import repack_min_free

        min_free = repack_min_free(repo)
    ids, sizes, trailers = read_packs(repo, txn)
    unit_of: dict[tuple[bytes, int], int] = {}
    unit_pack: list[int] = []
    unit_blob: list[Blob] = []
    pack_units: list[list[int]] = []
    for p, (pid, trailer) in enumerate(zip(ids, trailers, strict=True)):
        blobs: list[Blob] = [*trailer.frames, *trailer.objects]
        blobs.sort(key=lambda b: b.offset)
        here: list[int] = []
        for b in blobs:
            unit_of[(pid, b.offset)] = len(unit_blob)
            here.append(len(unit_blob))
            unit_pack.append(p)
            unit_blob.append(b)
        pack_units.append(here)
    index = repo.index

    def chunk_key(d: bytes) -> int | None:
        loc = index.get_chunk(txn, d)
        return None if loc is None else unit_of.get((loc.pack, loc.frame_offset))

    def object_key(oid: bytes) -> int | None:
        raw = txn.get(oid, db=index.db["objects"])
        if raw is None:
            return None
        p, off = unpack(raw)[:2]
        return unit_of.get((bytes(p), int(off)))

    strict: Walker[int] = Walker(repo, txn, chunk_key, object_key)
    decided_set = set(decided)
    uses = {sid.hex(): strict.snapshot(sid) for sid in decided_set}
    base: set[int] = set()
    for root in all_roots(repo, txn) - decided_set:
        base |= strict.snapshot(root)
    loose: Walker[int] = Walker(repo, txn, chunk_key, object_key, tolerant=True)
    forgotten: set[int] = set()
    for sid in [*forgotten_ids(repo, txn), *extra_forgotten]:
        forgotten |= loose.snapshot(sid)
    return CostModel(
        pack_ids=ids,
        pack_sizes=sizes,
        pack_units=pack_units,
        unit_pack=unit_pack,
        unit_blob=unit_blob,
        uses=uses,
        base_live=frozenset(base),
        forgotten=frozenset(forgotten),
        max_unused=max_unused,
        min_free=min_free,
    )


def frees_if_forgotten(
    repo: Repository, sid: bytes, *, max_unused: float = DEFAULT_MAX_UNUSED
) -> int:
    """The pack bytes a prune would free if version ``sid`` alone were forgotten now: the
    figure `forget` prints for it, so `du REF` and `forget` agree (blobs no other root
    needs, and the trailers and repacks that follow)."""
    with repo.index.read() as txn:
        model = build_model(repo, txn, [sid], max_unused=max_unused)
    return model.size_before - model.size_after(frozenset())
