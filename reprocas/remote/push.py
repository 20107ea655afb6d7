"""Push: upload the packs a remote lacks, then one index segment, then move its refs by
compare-and-swap (docs/FORMAT.md, "Remotes"). Packs, segment, refs — in that order, so
the remote never shows a ref whose data is missing."""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from reprocas.errors import ReprocasError, UsageError
from reprocas.progress import Progress
from reprocas.remote import protocol as P
from reprocas.remote.backend import (
    Backend,
    PreconditionFailed,
    RemoteNotFound,
    probe_conditional_writes,
)
from reprocas.remote.config import RemoteConfig
from reprocas.remote.refs import (
    apply_local,
    classify,
    is_ancestor,
    numbered_prefix,
    numbered_ref,
    order_key,
    select,
)
from reprocas.remote.registry import open_backend
from reprocas.store.packs import read_trailer
from reprocas.store.repository import Repository

#: A push older than this stops before it writes its segment (half the default grace).
MAX_PUSH_S = 12 * 3600.0
_CAS_TRIES = 1000
_BATCH = 64
#: Up to this many ``packs/ab/`` prefixes are listed one by one, beyond it all packs/.
_LIST_PREFIXES = 32


class NonFastForwardError(UsageError):
    """A push or pull would move a ref backwards or sideways (use --force)."""


@dataclass
class RefResult:
    ref: str
    id: str
    status: str  # created | up-to-date | renumbered | moved | rejected
    remote_ref: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "ref": self.ref,
            "id": self.id,
            "status": self.status,
            "remote_ref": self.remote_ref,
        }


@dataclass
class PushReport:
    remote: str
    url: str
    uploaded_bytes: int = 0
    uploaded_packs: int = 0
    skipped_packs: int = 0
    #: Packs already on the remote though no segment listed them (a killed push's).
    present_packs: int = 0
    segment: str | None = None
    refs: list[RefResult] = field(default_factory=list)

    @property
    def rejected(self) -> list[RefResult]:
        return [r for r in self.refs if r.status == "rejected"]

    def to_json(self) -> dict[str, Any]:
        return {
            "remote": self.remote,
            "url": self.url,
            "uploaded_bytes": self.uploaded_bytes,
            "uploaded_packs": self.uploaded_packs,
            "skipped_packs": self.skipped_packs,
            "present_packs": self.present_packs,
            "segment": self.segment,
            "refs": [r.to_json() for r in self.refs],
        }


def probe(backend: Backend, rc: RemoteConfig, state: P.LocalState, token: str) -> None:
    """The conditional-write probe, once per repository and remote (not single-writer)."""
    if rc.single_writer or state.probed:
        return
    probe_conditional_writes(backend, token)
    state.mark_probed()


def _local_packs(repo: Repository) -> dict[bytes, Path]:
    with repo.index.read() as txn:
        cur = txn.cursor(db=repo.index.db["packs"])
        ids = [bytes(k) for k in cur.iternext(values=False)]
    return {pid: repo.pack_path(pid) for pid in ids}


def _plan(repo: Repository, cat: P.Catalogue, report: PushReport) -> list[tuple[P.SegPack, Path]]:
    """The local packs the remote lacks (not listed, and not covered chunk by chunk)."""
    todo: list[tuple[P.SegPack, Path]] = []
    for pid, path in sorted(_local_packs(repo).items()):
        if pid in cat.packs:
            report.skipped_packs += 1
            continue
        if not path.exists():
            continue  # indexed but not on disk (a remote-only pack): nothing to send
        chunks, objects = P.trailer_contents(read_trailer(path))
        if cat.chunks.issuperset(chunks) and cat.objects.issuperset(objects):
            report.skipped_packs += 1  # everything in it is on the remote already
            continue
        todo.append((P.SegPack(pid, path.stat().st_size, chunks, objects), path))
    return todo


def _present(backend: Backend, todo: list[tuple[P.SegPack, Path]]) -> set[str]:
    """The keys of TODO's packs that are on the remote already though no segment lists
    them (a killed push's): found by listing (their ``packs/ab/`` prefixes, or all of
    ``packs/`` for many), so they are not sent again only to be refused."""
    prefixes = sorted({P.pack_key(p.id).rsplit("/", 1)[0] + "/" for p, _ in todo})
    wanted = {P.pack_key(p.id) for p, _ in todo}
    found: set[str] = set()
    for prefix in prefixes if len(prefixes) <= _LIST_PREFIXES else [P.PACKS]:
        found.update(i.key for i in backend.list(prefix) if i.key in wanted)
    return found


def _upload(
    backend: Backend,
    todo: list[tuple[P.SegPack, Path]],
    report: PushReport,
    progress: Progress,
) -> list[tuple[str, Path]]:
    """Upload the packs the remote lacks; returns those it had already (orphans).

    An orphan is not sent again: the segment this push writes lists it, the sweep of a
    remote prune re-reads the segments before each delete, and each orphan is HEADed
    again after the segment is written (:func:`_recheck`)."""
    progress.start(sum(p.size for p, _ in todo), len(todo))
    present = _present(backend, todo) if todo else set()
    reused: list[tuple[str, Path]] = []
    send: list[tuple[P.SegPack, Path]] = []
    for p, path in todo:
        if P.pack_key(p.id) in present:
            report.present_packs += 1
            reused.append((P.pack_key(p.id), path))
            progress.advance(p.size)
            progress.file_done()
        else:
            send.append((p, path))
    for i in range(0, len(send), _BATCH):
        batch = send[i : i + _BATCH]
        items = [(P.pack_key(p.id), path) for p, path in batch]
        created = backend.put_files_if_absent(items)
        for (p, _), (key, path), new in zip(batch, items, created, strict=True):
            if new:
                report.uploaded_packs += 1
                report.uploaded_bytes += p.size
            else:  # created meanwhile by another writer (same name, same bytes)
                report.present_packs += 1
                reused.append((key, path))
            progress.advance(p.size)
            progress.file_done()
    return reused


def _recheck(backend: Backend, reused: list[tuple[str, Path]]) -> None:
    for key, path in reused:
        try:
            backend.head(key)
        except RemoteNotFound:
            with contextlib.suppress(PreconditionFailed):  # put back by another writer
                backend.put_if_absent(key, path.read_bytes())


def _create_numbered(
    backend: Backend,
    ref: str,
    oid: bytes,
    session: str,
    remote: dict[str, P.RemoteRef],
    state: P.LocalState,
) -> tuple[str, str]:
    """Create a version or run ref: at its own number when free, else at the next free
    number of the remote (re-listed after every lost create). Returns (ref, status)."""
    k = classify(ref)
    want: str | None = ref
    for _ in range(_CAS_TRIES):
        if want is not None:
            try:
                backend.put_if_match(P.ref_key(want), P.ref_body(want, oid, session), None)
                return want, "created" if want == ref else "renumbered"
            except PreconditionFailed:
                pass
        fresh = P.read_refs(backend, numbered_prefix(k), state)
        remote.update(fresh)
        mine = [r for r, v in fresh.items() if v.id == oid]
        if mine:  # a retry of ours (or the same snapshot pushed from elsewhere) landed
            return mine[0], "up-to-date" if mine[0] == ref else "renumbered"
        top = max((classify(r).number for r in fresh), default=0)
        want = numbered_ref(k, top + 1)
    raise ReprocasError(f"could not place {ref} on {backend.url}: too many concurrent writers")


def _move_tag(
    repo: Repository,
    backend: Backend,
    ref: str,
    oid: bytes,
    session: str,
    force: bool,
) -> str:
    for _ in range(_CAS_TRIES):
        cur = P.read_ref(backend, ref)
        if cur is not None and cur.id == oid:
            return "up-to-date"
        if cur is not None and not force:
            with repo.index.read() as txn:
                if not is_ancestor(repo, txn, cur.id, oid):
                    return "rejected"
        try:
            backend.put_if_match(
                P.ref_key(ref), P.ref_body(ref, oid, session), None if cur is None else cur.etag
            )
            return "created" if cur is None else "moved"
        except PreconditionFailed:
            continue
    raise ReprocasError(f"could not move {ref} on {backend.url}: too many concurrent writers")


def _push_refs(
    repo: Repository,
    backend: Backend,
    local: dict[str, bytes],
    session: str,
    force: bool,
    report: PushReport,
    state: P.LocalState,
) -> dict[str, bytes]:
    remote = P.read_refs(backend, state=state)
    by_id: dict[tuple[str, str], dict[bytes, str]] = {}
    for r, v in remote.items():
        k = classify(r)
        if k.kind in ("version", "run"):
            by_id.setdefault((k.kind, k.name), {})[v.id] = r
    renumber: list[tuple[str, bytes]] = []  # (old local ref, id) -> moves to remote name
    targets: dict[str, str] = {}
    for ref in sorted(local, key=order_key):
        oid = local[ref]
        k = classify(ref)
        if k.kind in ("version", "run"):
            have = by_id.get((k.kind, k.name), {}).get(oid)
            if have is not None:
                status, placed = ("up-to-date" if have == ref else "renumbered"), have
            else:
                placed, status = _create_numbered(backend, ref, oid, session, remote, state)
                by_id.setdefault((k.kind, k.name), {})[oid] = placed
            if placed != ref:
                renumber.append((ref, oid))
                targets[ref] = placed
            report.refs.append(RefResult(ref, oid.hex(), status, placed))
        else:
            listed = remote.get(ref)
            if listed is not None and listed.id == oid:
                status = "up-to-date"  # as listed just now: no need to read it again
            else:
                status = _move_tag(repo, backend, ref, oid, session, force)
            report.refs.append(RefResult(ref, oid.hex(), status, ref))
    if renumber:
        _renumber_local(repo, renumber, targets)
    return {
        r.remote_ref or r.ref: bytes.fromhex(r.id) for r in report.refs if r.status != "rejected"
    }


def _renumber_local(
    repo: Repository, renumber: list[tuple[str, bytes]], targets: dict[str, str]
) -> None:
    """Give renumbered versions (and runs) here the numbers they have on the remote."""
    with repo.index.read() as txn:
        current = dict(repo.index.iter_refs(txn))
    leaving = {r for r, _ in renumber}
    moves: list[tuple[str, bytes | None, bytes]] = []
    for ref, oid in renumber:
        new = targets[ref]
        held = current.get(new)
        if held is not None and held != oid and new not in leaving:
            continue  # the number is taken here by a version not pushed now: left as is
        moves.append((ref, oid, b""))
        moves.append((new, held, oid))
    apply_local(repo, moves)


def push(
    repo: Repository,
    rc: RemoteConfig,
    refs: list[str] | None = None,
    *,
    force: bool = False,
    progress: Progress | None = None,
    backend: Backend | None = None,
) -> PushReport:
    """Push REFS (all when None) of REPO to the remote RC."""
    P.check_format(repo)
    progress = progress or Progress()
    report = PushReport(rc.name, rc.url)
    own = backend is None
    b = backend or open_backend(rc.url, rc.options)
    state = P.LocalState(repo, rc.name)
    try:
        with repo.lock("gc", exclusive=False):
            with repo.index.read() as txn:
                local = select(repo, txn, refs)
            P.ensure_marker(b, repo, create=True)
            with P.Session(b, "push") as session:
                probe(b, rc, state, session.id)
                cat = state.load()
                P.sync_segments(b, state, cat)
                todo = _plan(repo, cat, report)
                reused = _upload(b, todo, report, progress)
                if todo:
                    if time.monotonic() - session.started > MAX_PUSH_S:
                        raise ReprocasError(
                            "push took longer than half the prune grace period; run it again "
                            "(what it uploaded counts)"
                        )
                    key, data = P.encode_segment([p for p, _ in todo], session.id)
                    b.put_if_absent(key, data)
                    report.uploaded_bytes += len(data)
                    state.save_segment(key, data)
                    report.segment = key
                    _recheck(b, reused)
                pushed = _push_refs(repo, b, local, session.id, force, report, state)
        known = state.load_refs()
        known.update(pushed)
        state.save_refs(known)
    finally:
        if own:
            b.close()
    return report
