"""Prune a remote in two phases (docs/FORMAT.md, "Prune"): mark the packs no segment
lists, and sweep a mark only after the grace period has passed on the server's clock,
never deleting what a segment lists or a live session may still reference."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from reprocas.errors import IntegrityError
from reprocas.remote import protocol as P
from reprocas.remote.backend import Backend, PreconditionFailed, RemoteNotFound
from reprocas.remote.config import RemoteConfig
from reprocas.remote.registry import open_backend
from reprocas.store.repository import Repository

DEFAULT_GRACE_NS = 24 * 3600 * 10**9
MARK = P.PRUNE + "mark-"


@dataclass
class PruneReport:
    marked: list[str] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)
    deleted_bytes: int = 0
    kept: list[str] = field(default_factory=list)  # candidates a segment now lists
    waiting: list[str] = field(default_factory=list)  # marks inside the grace period
    postponed: list[str] = field(default_factory=list)
    stale_sessions: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "marked": self.marked,
            "deleted": self.deleted,
            "deleted_bytes": self.deleted_bytes,
            "kept": self.kept,
            "waiting": self.waiting,
            "postponed": self.postponed,
            "stale_sessions": self.stale_sessions,
        }


def _listed(backend: Backend, state: P.LocalState) -> set[bytes]:
    cat = state.load()
    P.sync_segments(backend, state, cat, full=True)
    return set(cat.packs)


def _pack_id(key: str) -> bytes | None:
    name = key.rsplit("/", 1)[-1]
    if not name.endswith(".pack"):
        return None
    try:
        pid = bytes.fromhex(name[: -len(".pack")])
    except ValueError:
        return None
    return pid if len(pid) == 32 and key == P.pack_key(pid) else None


def _sweep(
    backend: Backend,
    session: P.Session,
    state: P.LocalState,
    grace_ns: int,
    report: PruneReport,
) -> None:
    now = session.server_now()
    for info in list(backend.list(MARK)):
        if now - info.last_modified_ns < grace_ns:
            report.waiting.append(info.key)
            continue
        live = P.live_sessions(backend, now, exclude=session.key)
        if live:
            report.postponed.append(f"{info.key}: live sessions {', '.join(live)}")
            continue
        try:
            mark = json.loads(backend.get(info.key))
            candidates = [(bytes.fromhex(h), int(n)) for h, n in mark["candidates"]]
        except (ValueError, KeyError, TypeError) as exc:
            raise IntegrityError(f"prune mark {info.key} is damaged: {exc}") from exc
        except RemoteNotFound:
            continue  # another pruner swept it
        cat = state.load()
        P.sync_segments(backend, state, cat, full=True)  # read after the sessions were listed
        for pid, _ in candidates:
            key = P.pack_key(pid)
            # Right before each delete: no live session (a push that may be about to
            # list the pack) and no segment written since the last look lists it.
            if P.live_sessions(backend, now, exclude=session.key):
                report.postponed.append(f"{info.key}: a session started during the sweep")
                return
            P.sync_segments(backend, state, cat, full=True)  # any clock: list them all
            if pid in cat.packs:
                report.kept.append(key)
                continue
            try:
                head = backend.head(key)
            except RemoteNotFound:
                continue
            backend.delete(key)
            report.deleted.append(key)
            report.deleted_bytes += head.size
        backend.delete(info.key)


def _mark(backend: Backend, session: P.Session, state: P.LocalState, report: PruneReport) -> None:
    pending: set[str] = set()
    for info in backend.list(MARK):
        try:
            pending.update(h for h, _ in json.loads(backend.get(info.key))["candidates"])
        except (RemoteNotFound, ValueError, KeyError, TypeError):
            continue
    listed = _listed(backend, state)
    candidates: list[tuple[str, int]] = []
    for info in backend.list(P.PACKS):
        pid = _pack_id(info.key)
        if pid is None or pid in listed or pid.hex() in pending:
            continue
        candidates.append((pid.hex(), info.size))
    if not candidates:
        return
    body = {"version": 1, "session": session.id, "candidates": candidates}
    now = session.server_now()
    key = f"{MARK}{now:020d}-{session.id}"
    try:
        backend.put_if_absent(key, json.dumps(body, sort_keys=True).encode())
    except PreconditionFailed:
        return
    report.marked.extend(P.pack_key(bytes.fromhex(h)) for h, _ in candidates)


def _stale_sessions(backend: Backend, session: P.Session, report: PruneReport) -> None:
    now = session.server_now()
    for info in backend.list(P.SESSIONS):
        if info.key != session.key and now - info.last_modified_ns >= P.SESSION_TIMEOUT_NS:
            backend.delete(info.key)
            report.stale_sessions.append(info.key)


def prune(
    repo: Repository,
    rc: RemoteConfig,
    *,
    grace_ns: int = DEFAULT_GRACE_NS,
    backend: Backend | None = None,
) -> PruneReport:
    """Sweep the marks older than GRACE_NS (server clock), then mark today's orphans."""
    report = PruneReport()
    own = backend is None
    b = backend or open_backend(rc.url, rc.options)
    state = P.LocalState(repo, rc.name)
    try:
        P.ensure_marker(b, repo, create=False)
        with P.Session(b, "prune") as session:
            _stale_sessions(b, session, report)
            _sweep(b, session, state, grace_ns, report)
            _mark(b, session, state, report)
    finally:
        if own:
            b.close()
    return report
