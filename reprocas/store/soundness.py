"""Is the index sound enough to delete by? The one check gc and prune make first.

gc and prune delete what the index says nothing reaches. An index that lost versions
(an old or failed rebuild, a damaged ref log, a stale copy) would make them delete
those versions' data. So before deleting, every snapshot object the packs hold must be
accounted for by the index:

* it is a version (the ``snapshots`` table or a ref names it), or forgotten;
* or its (dataset, number) is held by another snapshot — a commit's superseded draft
  (the commit was redone on top of a newer parent);
* or the ref log is sound (no damaged line) and no committed transaction set it — a
  commit that died before moving its ref (a *draft*). A ref log cut at a line boundary
  looks the same, so gc and prune keep a draft's data all the same.

Anything else means the index knows fewer versions than the packs prove existed:
:func:`check_sound` refuses and names ``reprocas index rebuild``.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field

import lmdb

from reprocas.errors import IndexUnsoundError, IntegrityError, ReprocasError
from reprocas.model.objects import Snapshot, object_from_wire
from reprocas.native import core
from reprocas.store import codec
from reprocas.store.index import unpack
from reprocas.store.packs import PackTrailer, read_blob, read_trailer
from reprocas.store.rebuild.recover import snapshot_slot, taken_slots
from reprocas.store.rebuild.reflog import read_reflog
from reprocas.store.repository import Repository

# Every canonical snapshot encoding holds the str "snapshot" (its "type"): a cheap
# filter before decoding an object.
_SNAPSHOT_MARK = b"\xa8snapshot"


def _as_snapshot(data: bytes) -> Snapshot | None:
    if _SNAPSHOT_MARK not in data:
        return None
    try:
        obj = object_from_wire(codec.decode(data))
    except (ReprocasError, ValueError, KeyError, TypeError, AttributeError):
        return None
    return obj if isinstance(obj, Snapshot) else None


def pack_snapshots(
    repo: Repository,
    txn: lmdb.Transaction,
    trailers: Mapping[bytes, PackTrailer] | None = None,
) -> dict[bytes, tuple[Snapshot, bytes]]:
    """Every snapshot object the pack files hold, with the pack it is in: from the
    index where it lists all of a pack's objects, else from the pack itself. A pack
    whose trailer cannot be read is left out (gc and prune never delete such a pack)."""
    index = repo.index
    found: dict[bytes, tuple[Snapshot, bytes]] = {}
    per_pack: Counter[bytes] = Counter()
    for k, v in txn.cursor(db=index.db["objects"]):
        loc = unpack(v)
        per_pack[bytes(loc[0])] += 1
        snap = _as_snapshot(bytes(loc[5]))
        if snap is not None:
            found[bytes(k)] = (snap, bytes(loc[0]))
    complete = set()
    for k, v in txn.cursor(db=index.db["packs"]):
        info = unpack(v)
        whole = isinstance(info, dict) and not info.get("damaged")
        if whole and per_pack[bytes(k)] == int(info.get("objects", -1)):
            complete.add(bytes(k))
    paths = repo.packs_dir.glob("*/*.pack") if repo.packs_dir.exists() else []
    for path in paths:
        try:
            pid = bytes.fromhex(path.stem)
        except ValueError:
            continue
        if pid in complete:
            continue
        trailer = trailers.get(pid) if trailers is not None else None
        if trailer is None:
            try:
                trailer = read_trailer(path)
            except IntegrityError:
                continue
        for o in trailer.objects:
            if o.id in found or txn.get(o.id, db=index.db["objects"]) is not None:
                continue
            try:
                blob = read_blob(path, o.offset, o.stored_len)
                [data] = core.decompress_chunks([(o.codec, blob, o.raw_len)])
            except ReprocasError:
                continue
            snap = _as_snapshot(data) if core.blake3_digest(data) == o.id else None
            if snap is not None:
                found[o.id] = (snap, pid)
    return found


@dataclass
class Soundness:
    """``unaccounted``: versions the packs hold that the index does not know (``name@vN``).
    ``drafts``: snapshots of commits that never moved their ref (id -> pack) — never
    versions, but their data is kept: a ref log cut at a line boundary looks the same."""

    unaccounted: list[str] = field(default_factory=list)
    drafts: dict[bytes, bytes] = field(default_factory=dict)


def assess(
    repo: Repository,
    txn: lmdb.Transaction,
    trailers: Mapping[bytes, PackTrailer] | None = None,
) -> Soundness:
    """Sort the snapshots in the packs that the index does not know (module docstring)."""
    index = repo.index
    out = Soundness()
    snaps = pack_snapshots(repo, txn, trailers)
    known = {bytes(k) for k in txn.cursor(db=index.db["snapshots"]).iternext(values=False)}
    refs = {bytes(k).decode(): bytes(v) for k, v in txn.cursor(db=index.db["refs"])}
    forgotten = {bytes(k): unpack(v) for k, v in txn.cursor(db=index.db["forgotten"])}
    known |= set(refs.values()) | set(forgotten)
    # Format-2 snapshots that `reprocas upgrade` replaced: accounted for by their alias.
    known |= {bytes(k) for k in txn.cursor(db=index.db["aliases"]).iternext(values=False)}
    taken = taken_slots(refs, forgotten)
    todo = [
        (sid, s, pid)
        for sid, (s, pid) in snaps.items()
        if sid not in known and snapshot_slot(s) not in taken
    ]
    if not todo:
        return out
    log = read_reflog(repo.reflog_path)
    for sid, snap, pid in todo:
        if log.sound and sid not in log.committed_ids:
            out.drafts[sid] = pid  # a commit that died (or is still on its way)
            continue
        # The ref log is read after ``txn`` began: a commit that moved its ref since
        # then is a version now, and its data is kept like a draft's.
        with repo.index.read() as now:
            if now.get(sid, db=index.db["snapshots"]) is not None:
                out.drafts[sid] = pid
                continue
        slot = snapshot_slot(snap)
        out.unaccounted.append(f"{slot[0]}@v{slot[1]}" if slot else f"snapshot {sid.hex()[:12]}")
    out.unaccounted.sort()
    return out


def check_sound(
    repo: Repository,
    txn: lmdb.Transaction,
    doing: str,
    trailers: Mapping[bytes, PackTrailer] | None = None,
) -> dict[bytes, bytes]:
    """Raise :class:`IndexUnsoundError` when deleting by this index could lose a
    version the packs hold; else return the drafts (snapshot id -> pack) whose data the
    caller must keep."""
    found = assess(repo, txn, trailers)
    lost = found.unaccounted
    if lost:
        shown = ", ".join(lost[:5]) + (f" and {len(lost) - 5} more" if len(lost) > 5 else "")
        raise IndexUnsoundError(
            f"refusing to {doing}: the index does not know {len(lost)} version(s) that the "
            f"packs hold ({shown}), so it could delete their data; run "
            "`reprocas index rebuild` first",
            versions=lost,
        )
    return found.drafts


def unfinished(repo: Repository, txn: lmdb.Transaction) -> tuple[str, ...]:
    """The drafts, described (``name vN (snapshot <id>)``), for reports."""
    snaps = pack_snapshots(repo, txn)
    out = []
    for sid in assess(repo, txn).drafts:
        slot = snapshot_slot(snaps[sid][0])
        what = f"{slot[0]} v{slot[1]} " if slot else ""
        out.append(f"{what}(snapshot {sid.hex()[:12]})")
    return tuple(sorted(out))
