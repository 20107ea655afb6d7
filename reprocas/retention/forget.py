"""Forget: gather the versions, decide (pure), then apply the decision to the refs.

Applying is one ref transaction: each forgotten version loses its version ref and the
tags that named it, leaves the ``snapshots`` table, and is recorded in ``forgotten``
(its metadata stays listed; its bytes go at the next prune) and, durably, in the ref log
(an ``"op": "forget"`` line, so that ``index rebuild`` restores the list). The decision
is re-checked inside that transaction, so a tag added, a ref moved or a run recorded
since the decision wins: such a version is kept and reported as ``skipped``.

Versions that a kept run used, produced or ran in are protected, with the run named in
the reason (:func:`run_reasons`, from the provenance edges).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import lmdb

from reprocas.errors import RefNotFoundError, ReprocasError, known_names
from reprocas.model.ids import ObjectId
from reprocas.provenance import graph
from reprocas.provenance.names import get_summary, run_ref
from reprocas.retention.budget import DEFAULT_MAX_UNUSED, build_model
from reprocas.retention.policy import Decision, Policy, SnapshotRecord, apply_policy
from reprocas.store.index import pack, unpack
from reprocas.store.reachability import all_versions
from reprocas.store.repository import RefTransaction, Repository, tag_ref, version_ref


class BudgetNotMetError(ReprocasError):
    """The budget cannot be met without forgetting protected versions (exit code 9)."""

    exit_code = 9


@dataclass
class ForgetResult:
    decision: Decision
    dry_run: bool
    forgotten: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            **self.decision.to_json(),
            "dry_run": self.dry_run,
            "forgotten": self.forgotten,
            "skipped": self.skipped,
        }


def records(
    repo: Repository,
    txn: lmdb.Transaction,
    datasets: Sequence[str] = (),
    kinds: Sequence[str] = (),
) -> list[SnapshotRecord]:
    """The versions a policy decides on, oldest first per dataset."""
    known = set(repo.datasets(txn))
    for name in datasets:
        if name not in known:
            raise RefNotFoundError(
                f"unknown dataset {name!r}; "
                + known_names(sorted(known), empty="the repository is empty"),
                ref=name,
            )
    wanted = set(datasets)
    out: list[SnapshotRecord] = []
    tags_cache: dict[str, dict[bytes, list[str]]] = {}
    for name, number, sid in all_versions(repo, txn):
        if wanted and name not in wanted:
            continue
        snap = repo.load_snapshot(txn, sid)
        if kinds and snap.kind not in kinds:
            continue
        if name not in tags_cache:
            tags_cache[name] = repo.tags_of(txn, name)
        by_runs = run_reasons(repo, txn, sid.raw) + protecting_notes(repo, txn, sid.raw)
        out.append(
            SnapshotRecord(
                ref=f"{name}@v{number}",
                id=sid.hex,
                dataset=name,
                number=number,
                kind=snap.kind,
                time_ns=snap.time_ns,
                tags=tuple(sorted(tags_cache[name].get(sid.raw, []))),
                protected_by_run=bool(by_runs),
                run_reasons=by_runs,
            )
        )
    return out


_RUN_EDGES = (
    (graph.USED, "used by"),
    (graph.GENERATED, "produced by"),
    (graph.ENVIRONMENT, "environment of"),
)


def run_users(
    repo: Repository, txn: lmdb.Transaction, sid: bytes
) -> list[tuple[str, list[tuple[str, int]]]]:
    """The kept runs that used, produced or ran in a version, per edge kind:
    ``[("used by", [("train", 3)]), ...]`` (a run whose record is unreadable is named by
    its id's start, number 0). One prefix scan of ``edges_in`` per edge kind, never a
    scan of all runs. A run is kept while its ref names it (no command forgets runs
    yet, so every recorded run is kept)."""
    out: list[tuple[str, list[tuple[str, int]]]] = []
    for kind, verb in _RUN_EDGES:
        refs: list[tuple[str, int]] = []
        for e in graph.in_edges(repo, txn, sid, kind):
            try:
                s = get_summary(repo, txn, ObjectId(e.src))
            except ReprocasError:
                refs.append((e.src.hex()[:12], 0))  # its record is unreadable: still kept
                continue
            name, number = str(s["name"]), int(s["number"])
            if repo.index.get_ref(txn, run_ref(name, number)) == e.src:
                refs.append((name, number))
        if refs:
            out.append((verb, sorted(refs)))
    return out


def run_label(name: str, number: int) -> str:
    return f"{name}#{number}" if number else name


def run_reasons(
    repo: Repository, txn: lmdb.Transaction, sid: bytes, *, shown: int = 3
) -> tuple[str, ...]:
    """Why kept runs protect a version: ``used by run train#3``, ``produced by run
    train#4``, ``environment of runs a#1, b#2 and 3 more`` (:func:`run_users`)."""
    out: list[str] = []
    for verb, refs in run_users(repo, txn, sid):
        names = [run_label(n, k) for n, k in refs[:shown]]
        more = f" and {len(refs) - shown} more" if len(refs) > shown else ""
        out.append(f"{verb} run{'s' if len(refs) > 1 else ''} {', '.join(names)}{more}")
    return tuple(out)


def protecting_notes(repo: Repository, txn: lmdb.Transaction, sid: bytes) -> tuple[str, ...]:
    """Why current ``note add --protect`` notes keep a version: ``protected by note
    1a2b3c4d5e6f`` (a note without ``--protect`` keeps nothing)."""
    from reprocas.notes.store import protecting_notes as by_notes

    return by_notes(repo, txn, sid)


def decide(
    repo: Repository,
    policy: Policy,
    *,
    datasets: Sequence[str] = (),
    kinds: Sequence[str] = (),
    now: dt.datetime | int | None = None,
    max_unused: float = DEFAULT_MAX_UNUSED,
) -> Decision:
    """Gather the versions and the cost model from one read of the index, then decide."""
    policy.check()
    with repo.index.read() as txn:
        recs = records(repo, txn, datasets, kinds)
        model = build_model(repo, txn, [bytes.fromhex(r.id) for r in recs], max_unused=max_unused)
    return apply_policy(recs, policy, now if now is not None else time.time_ns(), model)


def apply_decision(
    repo: Repository, decision: Decision, policy: Policy
) -> tuple[list[str], list[str]]:
    """Forget the removed versions in one ref transaction; returns (forgotten, skipped)."""
    done: list[str] = []
    skipped: list[str] = []
    if not decision.remove:
        return done, skipped
    index = repo.index
    now = time.time_ns()
    with repo.ref_transaction() as rt:
        txn = rt.txn
        deletes: list[tuple[str, ObjectId]] = []
        logged: list[dict[str, Any]] = []
        for r in decision.remove:
            sid = ObjectId(bytes.fromhex(r.id))
            vref = version_ref(r.dataset, r.number)
            latest = repo.latest(txn, r.dataset)
            tags = repo.tags_of(txn, r.dataset).get(sid.raw, [])
            protecting = set(policy.protecting_tags) | set(policy.rules_for(r.dataset).keep_tags)
            if (
                index.get_ref(txn, vref) != sid.raw
                or latest is None
                or latest[1] == sid
                or protecting & set(tags)
                or r.id in policy.protected_ids
                or run_reasons(repo, txn, sid.raw)  # a run used it since the decision
                or protecting_notes(repo, txn, sid.raw)  # or a --protect note names it
            ):
                skipped.append(r.ref)  # changed since the decision: keep it
                continue
            deletes += [(vref, sid)] + [(tag_ref(r.dataset, t), sid) for t in tags]
            logged.append(
                forgotten_line(
                    repo,
                    rt,
                    sid,
                    ref=r.ref,
                    name=r.dataset,
                    number=r.number,
                    kind=r.kind,
                    time_ns=r.time_ns,
                    reasons=list(decision.reasons[r.id]),
                    tags=list(tags),
                    now=now,
                )
            )
            done.append(r.ref)
        if deletes:
            # Both logged (fsynced) before LMDB commits, in this ref transaction: the ref
            # deletes, and the forgotten records, which `index rebuild` restores from the
            # ref log (docs/FORMAT.md).
            rt.delete(deletes)
            repo.append_reflog(logged)
    return done, skipped


def forgotten_line(
    repo: Repository,
    rt: RefTransaction,
    sid: ObjectId,
    *,
    ref: str,
    name: str,
    number: int,
    kind: str,
    time_ns: int,
    reasons: list[str],
    tags: list[str],
    now: int,
    **extra: Any,
) -> dict[str, Any]:
    """Mark one version forgotten inside ``rt``: it leaves the ``snapshots`` table and
    gets its ``forgotten`` record; returns the ref-log line (``"op": "forget"``) that
    makes ``index rebuild`` restore the record. The caller deletes the version's refs
    and appends the lines (``forget`` by policy and ``rm`` by name both go through
    here). ``extra`` fields join the record (``rm`` adds ``"by": "rm"``)."""
    index = repo.index
    txn = rt.txn
    logical = 0
    with contextlib.suppress(ReprocasError):
        logical = repo.load_snapshot(txn, sid).logical_bytes
    if txn.get(sid.raw, db=index.db["snapshots"]) is not None:
        txn.delete(sid.raw, db=index.db["snapshots"])
    record = {
        "ref": ref,
        "name": name,
        "number": number,
        "kind": kind,
        "time_ns": time_ns,
        "logical_bytes": logical,
        "forgotten_ns": now,
        "reasons": reasons,
        "tags": tags,
        **extra,
    }
    txn.put(sid.raw, pack(record), db=index.db["forgotten"])
    return {"op": "forget", "id": sid.hex, "txn": rt.id, "time_ns": now, "forgotten": record}


def forget(
    repo: Repository,
    policy: Policy,
    *,
    datasets: Sequence[str] = (),
    kinds: Sequence[str] = (),
    dry_run: bool = False,
    now: dt.datetime | int | None = None,
    max_unused: float = DEFAULT_MAX_UNUSED,
) -> ForgetResult:
    """Decide and (unless ``dry_run``) apply. A budget that cannot be met is reported
    in the result (``budget_met``); the caller turns it into an exit code after
    printing, so the user sees what was forgotten."""
    decision = decide(repo, policy, datasets=datasets, kinds=kinds, now=now, max_unused=max_unused)
    result = ForgetResult(decision, dry_run)
    if not dry_run:
        result.forgotten, result.skipped = apply_decision(repo, decision, policy)
    return result


def list_forgotten(repo: Repository) -> list[dict[str, Any]]:
    """Forgotten versions, oldest first, with their metadata (ids in hex)."""
    out: list[dict[str, Any]] = []
    with repo.index.read() as txn:
        for k, v in txn.cursor(db=repo.index.db["forgotten"]):
            d = dict(unpack(v))
            d["id"] = bytes(k).hex()
            out.append(d)
    out.sort(key=lambda d: (d.get("time_ns", 0), d.get("ref", "")))
    return out
