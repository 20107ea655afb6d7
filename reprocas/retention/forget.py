"""Forget: gather the versions, decide (pure), then apply the decision to the refs.

Applying is one ref transaction: each forgotten version loses its version ref and the
tags that named it, leaves the ``snapshots`` table, and is recorded in ``forgotten``
(its metadata stays listed; its bytes go at the next prune). The decision is re-checked
inside that transaction, so a tag added or a ref moved since the decision wins: such a
version is kept and reported as ``skipped``.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import lmdb

from reprocas.errors import RefNotFoundError, ReprocasError
from reprocas.model.ids import ObjectId
from reprocas.retention.budget import DEFAULT_MAX_UNUSED, build_model
from reprocas.retention.policy import Decision, Policy, SnapshotRecord, apply_policy
from reprocas.store.index import pack, unpack
from reprocas.store.reachability import all_versions
from reprocas.store.repository import Repository, tag_ref, version_ref


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
                + (f"datasets: {', '.join(sorted(known))}" if known else "the repository is empty"),
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
        out.append(
            SnapshotRecord(
                ref=f"{name}@v{number}",
                id=sid.hex,
                dataset=name,
                number=number,
                kind=snap.kind,
                time_ns=snap.time_ns,
                tags=tuple(sorted(tags_cache[name].get(sid.raw, []))),
            )
        )
    return out


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
            ):
                skipped.append(r.ref)  # changed since the decision: keep it
                continue
            raw = txn.get(sid.raw, db=index.db["snapshots"])
            logical = 0
            with contextlib.suppress(ReprocasError):
                logical = repo.load_snapshot(txn, sid).logical_bytes
            rt.delete([(vref, sid)] + [(tag_ref(r.dataset, t), sid) for t in tags])
            if raw is not None:
                txn.delete(sid.raw, db=index.db["snapshots"])
            txn.put(
                sid.raw,
                pack(
                    {
                        "ref": r.ref,
                        "name": r.dataset,
                        "number": r.number,
                        "kind": r.kind,
                        "time_ns": r.time_ns,
                        "logical_bytes": logical,
                        "forgotten_ns": now,
                        "reasons": list(decision.reasons[r.id]),
                        "tags": list(tags),
                    }
                ),
                db=index.db["forgotten"],
            )
            done.append(r.ref)
    return done, skipped


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
