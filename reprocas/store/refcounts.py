"""Reference counts: what keeps each object and chunk alive, kept up to date as refs move.

The store is a graph of *holders*: a ref holds the object it names (a snapshot or a run);
a run holds its own tree and every snapshot it names (inputs, outputs, environment); a
snapshot holds its root tree; a tree holds each distinct subtree and file manifest it
lists; a manifest holds each distinct chunk; a chunk of a delta frame holds the *base
set* of its frame (the list of chunks it decodes against, ``Children``), and a
base set holds each of its chunks — so the ~16 chunks of one delta frame add one
holder to one node, not to each of ~16 bases. The ``refcounts`` sub-database keeps,
for every *live* node, how many live holders it has:

* key ``b"o" + object id``, ``b"c" + chunk digest`` or ``b"b" + base-set hash`` (the
  ``deltas`` sub-database names its chunks), value the count (msgpack int);
* a node is live while its count is above zero; dead nodes have no entry.

Counts change only when a ref moves (:class:`Maintainer`, called by
``Repository.ref_transaction``'s ``set``/``delete`` inside the same LMDB write
transaction, so concurrent writers are serialised and a crash loses nothing): when a
node's count goes 0 -> 1 each of its children gains one, when it goes 1 -> 0 each loses
one, and so on down. The cost of a commit is therefore proportional to what is new in
it (unchanged subtrees are already live: they only gain one), and a forget to what it
frees.

What only one version holds (:func:`exclusive_chunks`) follows from the counts without
looking at any other version: a node is exclusive to a version when every one of its
holders is, i.e. when the number of its holders met on a walk down the version's
exclusive nodes equals its count. The walk descends only through exclusive nodes, so it
costs what the version alone holds.

The meta key ``refcounts`` says the counts are current: ``{"version", "refs"}`` where
``refs`` is a fingerprint (XOR of a hash of every ``(ref name, id)``) of the refs the
counts were made for, updated with each change. A repository written before counts
existed, or by a reprocas that does not maintain them, lacks the key or has a
fingerprint that no longer matches its refs; :func:`ensure_current` then recounts from
scratch (:func:`recompute`, also run by ``index rebuild``).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING, Any, Protocol

import lmdb

from reprocas.errors import ReprocasError, StorageIOError
from reprocas.model.ids import ID_BYTES, ObjectId
from reprocas.model.objects import CHUNKMAP, FILE, RUN, SNAPSHOT, TREE, Run
from reprocas.store import codec
from reprocas.store.index import ChunkLoc, baseset_key, delta_key, pack, unpack
from reprocas.store.packs import CODEC_DELTA

if TYPE_CHECKING:
    from reprocas.store.repository import Repository

DB = "refcounts"
META = "refcounts"
VERSION = 2  # 2: delta chunks hold their frame's base set, not each base
CHUNK = b"c"
OBJECT = b"o"
BASESET = b"b"


class StaleCountsError(ReprocasError):
    """The counts cannot be updated exactly (an object is missing, a count would go
    below zero): they are dropped and recomputed when next needed."""


def chunk_key(digest: bytes) -> bytes:
    return CHUNK + digest


def object_key(oid: bytes) -> bytes:
    return OBJECT + oid


def _fingerprint_of(name: bytes, value: bytes) -> int:
    return int.from_bytes(hashlib.blake2b(name + b"\0" + value, digest_size=16).digest(), "big")


def refs_fingerprint(repo: Repository, txn: lmdb.Transaction) -> int:
    """The XOR over all refs of a hash of (name, id): order-free and updatable."""
    fp = 0
    cur = txn.cursor(db=repo.index.db["refs"])
    for k, v in cur:
        fp ^= _fingerprint_of(bytes(k), bytes(v))
    return fp


# -- the graph ------------------------------------------------------------------------


class Children:
    """The nodes a node holds, read from the index (objects are verified on load).

    With ``tolerant``, a missing or unreadable object holds nothing (a recount of a
    damaged repository); otherwise it raises :class:`StaleCountsError`.
    """

    def __init__(self, repo: Repository, txn: lmdb.Transaction, *, tolerant: bool = False):
        self.repo = repo
        self.txn = txn
        self.tolerant = tolerant
        # Without delta frames no chunk has bases: skip the look-ups.
        self.deltas = txn.stat(repo.index.db["deltas"])["entries"] > 0
        self._frames: dict[bytes, list[bytes]] = {}  # delta frame -> its bases' keys

    def __call__(self, key: bytes) -> list[bytes]:
        if key[:1] == CHUNK:
            if not self.deltas:
                return []
            return self._chunk_children(key[1:])
        if key[:1] == BASESET:
            bases = self.repo.index.get_baseset(self.txn, key)
            if bases is None:
                if self.tolerant:
                    return []
                raise StaleCountsError(f"base set {key.hex()} has no record")
            return [chunk_key(b) for b in bases]
        oid = key[1:]
        try:
            w = codec.decode(self.repo.load_raw(self.txn, ObjectId(oid)))
        except (ReprocasError, ValueError) as exc:
            if self.tolerant:
                return []
            raise StaleCountsError(f"object {oid.hex()} is unreadable: {exc}") from exc
        try:
            if isinstance(w, dict) and w.get("type") == TREE and w.get("v", 2) >= 3:
                return self._tree3_children(w)
            if isinstance(w, dict) and w.get("type") == RUN:
                return self._aliased(_children_of_wire(w))
            return _children_of_wire(w)
        except (KeyError, TypeError, ValueError, AttributeError):
            return []  # not an object kind that holds data (or one this version ignores)

    def _aliased(self, keys: list[bytes]) -> list[bytes]:
        """A run recorded before `reprocas upgrade` holds the snapshots its format-2 ids
        were upgraded to (the ``aliases`` sub-database; written once, by the upgrade
        that recounts, so the answer does not change while the run is live)."""
        db = self.repo.index.db["aliases"]
        out: dict[bytes, None] = {}
        for k in keys:
            new = self.txn.get(k[1:], db=db) if k[:1] == OBJECT else None
            out[k if new is None else OBJECT + bytes(new)] = None
        return list(out)

    def _tree3_children(self, w: dict[str, Any]) -> list[bytes]:
        """A format-3 tree holds each distinct subtree and the chunk map each file
        digest has under this repository's chunking (reprocas.store.files: the answer
        is a function of the key, so it cannot change while the tree is live)."""
        from reprocas.store.files import lookup_chunkmap

        seen: dict[bytes, None] = {}
        for e in w["entries"]:
            if e[1] == "dir":
                seen[OBJECT + bytes(e[3])] = None
            elif e[1] == "file":
                cm = lookup_chunkmap(self.repo, self.txn, bytes(e[3]))
                if cm is None:
                    if self.tolerant:
                        continue
                    raise StaleCountsError(f"file digest {bytes(e[3]).hex()} has no chunk map")
                seen[OBJECT + cm] = None
        return list(seen)

    def _chunk_children(self, digest: bytes) -> list[bytes]:
        """A delta chunk's base-set node; the chunks of one delta frame share it, so
        each frame's record is read once. The answer must not change while the chunk
        is live: the first stored copy of a chunk is the one indexed, and repacking
        copies a frame with its bases; an operation that re-encodes a live chunk
        against other bases must call :func:`invalidate` in its transaction."""
        index = self.repo.index
        raw = self.txn.get(digest, db=index.db["chunks"])
        if raw is None:
            return []
        loc = ChunkLoc.from_value(raw)
        if loc.codec != CODEC_DELTA:
            return []
        fkey = delta_key(loc.pack, loc.frame_offset)
        got = self._frames.get(fkey)
        if got is None:
            info = index.get_delta(self.txn, loc)
            got = [baseset_key(info.bases)] if info is not None and info.bases else []
            self._frames[fkey] = got
        return got


def _children_of_wire(w: Any) -> list[bytes]:
    if not isinstance(w, dict):
        return []
    t = w.get("type")
    if t == TREE:
        seen: dict[bytes, None] = {}
        for e in w["entries"]:
            if e[1] == "dir" or e[1] == "file":
                seen[OBJECT + bytes(e[3])] = None
        return list(seen)
    if t in (FILE, CHUNKMAP):
        return list(dict.fromkeys(CHUNK + bytes(c[0]) for c in w["chunks"]))
    if t == SNAPSHOT:
        return [OBJECT + bytes(w["root"])]
    if t == RUN:
        run = Run.from_wire(w)
        out: dict[bytes, None] = {}
        if run.root is not None:
            out[OBJECT + run.root.raw] = None
        for sid in run.snapshot_ids():
            out[OBJECT + sid.raw] = None
        return list(out)
    return []  # table records, environment facts, notes: no chunks


class _Counts(Protocol):
    """Counts read from and written to a store: LMDB or an in-memory dict."""

    def get(self, key: bytes) -> int: ...

    def set(self, key: bytes, n: int) -> None: ...


class _DictCounts:
    def __init__(self) -> None:
        self.d: dict[bytes, int] = {}

    def get(self, key: bytes) -> int:
        return self.d.get(key, 0)

    def set(self, key: bytes, n: int) -> None:
        if n:
            self.d[key] = n
        else:
            self.d.pop(key, None)


class _LmdbCounts:
    def __init__(self, txn: lmdb.Transaction, db: Any) -> None:
        self.txn = txn
        self.db = db

    def get(self, key: bytes) -> int:
        raw = self.txn.get(key, db=self.db)
        return 0 if raw is None else int(unpack(raw))

    def set(self, key: bytes, n: int) -> None:
        if n:
            self.txn.put(key, pack(n), db=self.db)
        else:
            self.txn.delete(key, db=self.db)


def _hold(counts: _Counts, children: Callable[[bytes], list[bytes]], key: bytes) -> None:
    stack = [key]
    while stack:
        k = stack.pop()
        n = counts.get(k) + 1
        counts.set(k, n)
        if n == 1:
            stack.extend(children(k))


def _release(counts: _Counts, children: Callable[[bytes], list[bytes]], key: bytes) -> None:
    stack = [key]
    while stack:
        k = stack.pop()
        n = counts.get(k) - 1
        if n < 0:
            raise StaleCountsError(f"count of {k.hex()} would go below zero")
        counts.set(k, n)
        if n == 0:
            stack.extend(children(k))


# -- from scratch -------------------------------------------------------------------------


def compute(repo: Repository, txn: lmdb.Transaction) -> dict[bytes, int]:
    """Every live node's count, from the refs (in memory; missing objects hold nothing)."""
    counts = _DictCounts()
    children = Children(repo, txn, tolerant=True)
    for _, value in repo.index.iter_refs(txn):
        if len(value) == ID_BYTES:
            _hold(counts, children, object_key(value))
    return counts.d


def stored(repo: Repository, txn: lmdb.Transaction) -> dict[bytes, int]:
    """The counts as the index holds them."""
    return {bytes(k): int(unpack(v)) for k, v in txn.cursor(db=repo.index.db[DB]).iternext()}


def recompute(repo: Repository, txn: lmdb.Transaction) -> int:
    """Recount from scratch inside ``txn`` (a write transaction) and mark the counts
    current; returns the number of live nodes."""
    counts = compute(repo, txn)
    db = repo.index.db[DB]
    txn.drop(db, delete=False)
    if counts:
        cur = txn.cursor(db=db)
        cur.putmulti(((k, pack(n)) for k, n in sorted(counts.items())), append=True)
    _mark(repo, txn, refs_fingerprint(repo, txn))
    return len(counts)


def _mark(repo: Repository, txn: lmdb.Transaction, fp: int) -> None:
    repo.index.put_meta(txn, META, {"version": VERSION, "refs": fp.to_bytes(16, "big")})


def _marked_fingerprint(repo: Repository, txn: lmdb.Transaction) -> int | None:
    m = repo.index.get_meta(txn, META)
    if not isinstance(m, dict) or m.get("version") != VERSION:
        return None
    raw = m.get("refs")
    return int.from_bytes(raw, "big") if isinstance(raw, bytes) else None


def invalidate(repo: Repository, txn: lmdb.Transaction) -> None:
    """Say the counts are not current (the next :func:`ensure_current` recounts)."""
    txn.delete(META.encode(), db=repo.index.db["meta"])


def is_current(repo: Repository, txn: lmdb.Transaction) -> bool:
    """The counts match the refs: maintained by every ref change since they were made."""
    fp = _marked_fingerprint(repo, txn)
    return fp is not None and fp == refs_fingerprint(repo, txn)


def ensure_current(repo: Repository) -> bool:
    """Recount if the counts are missing or stale (an older repository, or refs moved
    by a writer that does not maintain them). Returns False if they cannot be written
    (a read-only index): the caller then computes without them."""
    with repo.index.read() as txn:
        if is_current(repo, txn):
            return True
    try:
        with repo.index.write() as txn:
            if not is_current(repo, txn):
                recompute(repo, txn)
    except (StorageIOError, lmdb.Error):
        return False
    return True


# -- kept up to date by ref transactions ----------------------------------------------------


class Maintainer:
    """Updates the counts for ref changes inside one LMDB write transaction.

    Does nothing when the counts are not current (they are recomputed from scratch when
    next needed). If an update cannot be made exactly (an object it must read is
    missing), the counts are marked stale instead of being left wrong.
    """

    def __init__(self, repo: Repository, txn: lmdb.Transaction) -> None:
        self.repo = repo
        self.txn = txn
        fp = _marked_fingerprint(repo, txn)
        if fp is None and not txn.cursor(db=repo.index.db["refs"]).first():
            # No refs yet (a new repository): nothing is live, so counting starts here.
            txn.drop(repo.index.db[DB], delete=False)
            fp = 0
            _mark(repo, txn, fp)
        self.fp = fp
        self.counts = _LmdbCounts(txn, repo.index.db[DB])
        self.children = Children(repo, txn)

    def moved(self, name: bytes, old: bytes | None, new: bytes | None) -> None:
        """Ref ``name`` went from ``old`` to ``new`` (either None: absent)."""
        if self.fp is None or old == new:
            return
        fp = self.fp
        try:
            if new is not None:
                fp ^= _fingerprint_of(name, new)
                if len(new) == ID_BYTES:
                    _hold(self.counts, self.children, object_key(new))
            if old is not None:
                fp ^= _fingerprint_of(name, old)
                if len(old) == ID_BYTES:
                    _release(self.counts, self.children, object_key(old))
        except StaleCountsError:
            invalidate(self.repo, self.txn)
            self.fp = None
            return
        self.fp = fp
        _mark(self.repo, self.txn, fp)


# -- what one version alone holds ---------------------------------------------------------


def exclusive_chunks(
    counts: Callable[[bytes], int],
    children: Callable[[bytes], list[bytes]],
    oid: bytes,
    own: int,
) -> Iterator[bytes]:
    """The chunks only object ``oid`` keeps alive, given that ``own`` of its holders
    are its own refs (a version's ref and tags): nothing when anything else holds it
    (a run that used it). ``counts`` reads a node's count."""
    root = object_key(oid)
    if own <= 0 or counts(root) != own:
        return
    met: dict[bytes, int] = {}
    stack = [root]
    while stack:
        node = stack.pop()
        for c in children(node):
            n = met.get(c, 0) + 1
            met[c] = n
            total = counts(c)
            if n == total:
                if c[:1] == CHUNK:
                    yield c[1:]
                stack.append(c)
            elif n > total:
                raise StaleCountsError(f"count of {c.hex()} is lower than its holders")


def lmdb_reader(repo: Repository, txn: lmdb.Transaction) -> Callable[[bytes], int]:
    """A fast reader of the counts in ``txn``."""
    db = repo.index.db[DB]
    get = txn.get

    def count(key: bytes) -> int:
        raw = get(key, db=db)
        if raw is None:
            return 0
        return raw[0] if raw[0] < 0x80 else int(unpack(raw))  # msgpack positive fixint

    return count


def live_chunks(repo: Repository, txn: lmdb.Transaction) -> Iterable[bytes]:
    """Digests of every live chunk."""
    cur = txn.cursor(db=repo.index.db[DB])
    if not cur.set_range(CHUNK):
        return
    for k in cur.iternext(keys=True, values=False):
        key = bytes(k)
        if key[:1] != CHUNK:
            break
        yield key[1:]
