"""Remove: forget versions by name (``reprocas rm``), not by policy.

``rm`` is ``forget`` with the decision made by the user: each named version loses its
version ref and its tags, leaves the ``snapshots`` table and gets a ``forgotten``
record, logged to the ref log exactly as ``forget`` logs it
(:func:`reprocas.retention.forget.forgotten_line`), so prune, gc and ``index rebuild``
treat both alike (a rebuild never brings a removed version back).

What other things still need is refused unless ``force``: a version that a kept run
used, produced or ran in (``force`` orphans those runs, and names them), and a version
that a tag names (``force`` deletes the tag, and says so). The check runs inside the
one write transaction that removes, so a run or a tag recorded meanwhile is seen.

With ``purge`` the record says the version's bytes must go now
(``"purge_ns"``): :mod:`reprocas.retention.purge` then deletes them, and from then
on the runs it orphaned no longer keep them alive.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import lmdb

from reprocas.errors import UsageError
from reprocas.model.ids import ObjectId
from reprocas.retention.forget import forgotten_line, run_label, run_users
from reprocas.store.repository import Repository, tag_ref, version_ref


class RemovalRefusedError(UsageError):
    """A version to remove is still needed (a kept run or a tag); ``--force`` removes
    it anyway. Nothing was changed."""


@dataclass(frozen=True, slots=True)
class Target:
    """One version ``rm`` removes, with what still needs it."""

    ref: str
    id: str
    dataset: str
    number: int
    kind: str
    time_ns: int
    tags: tuple[str, ...]
    runs: tuple[tuple[str, tuple[str, ...]], ...]  # (verb, run labels)

    @property
    def run_names(self) -> list[str]:
        return sorted({r for _, names in self.runs for r in names})

    def needs(self) -> list[str]:
        """What still needs it, in words: ``used by run train#1``, ``tagged final``."""
        out = [f"{verb} run{'s' if len(ns) > 1 else ''} {', '.join(ns)}" for verb, ns in self.runs]
        if self.tags:
            out.append(f"tagged {', '.join(self.tags)}")
        return out

    def to_json(self) -> dict[str, Any]:
        return {
            "ref": self.ref,
            "id": self.id,
            "dataset": self.dataset,
            "number": self.number,
            "kind": self.kind,
            "tags": list(self.tags),
            "runs": self.run_names,
            "needed_by": self.needs(),
        }


@dataclass
class RemoveResult:
    """What ``rm`` did (or, with ``dry_run``, would do)."""

    targets: list[Target]
    dry_run: bool
    force: bool
    purge: bool
    removed: list[str] = field(default_factory=list)
    purge_report: Any = None  # reprocas.retention.purge.PurgeReport

    @property
    def deleted_tags(self) -> list[str]:
        return sorted(f"{t.dataset}@{tag}" for t in self.targets for tag in t.tags)

    @property
    def orphaned_runs(self) -> list[str]:
        return sorted({r for t in self.targets for r in t.run_names})

    def to_json(self) -> dict[str, Any]:
        return {
            "dry_run": self.dry_run,
            "force": self.force,
            "purge": self.purge,
            "versions": [t.to_json() for t in self.targets],
            "removed": self.removed,
            "deleted_tags": self.deleted_tags,
            "orphaned_runs": self.orphaned_runs,
            "purged": None if self.purge_report is None else self.purge_report.to_json(),
        }


def _target(
    repo: Repository, txn: lmdb.Transaction, name: str, number: int, sid: ObjectId
) -> Target:
    snap = repo.load_snapshot(txn, sid)
    tags = tuple(sorted(repo.tags_of(txn, name).get(sid.raw, [])))
    runs = tuple(
        (verb, tuple(run_label(n, k) for n, k in refs))
        for verb, refs in run_users(repo, txn, sid.raw)
    )
    return Target(f"{name}@v{number}", sid.hex, name, number, snap.kind, snap.time_ns, tags, runs)


def targets(repo: Repository, txn: lmdb.Transaction, refs: Sequence[str]) -> list[Target]:
    """The versions ``refs`` name, each once, in dataset and number order. A bare
    dataset name means all its versions; anything else is resolved as every command
    resolves a ref (``NAME@vN``, ``NAME@TAG``, ``NAME@latest``, an id prefix)."""
    if not refs:
        raise UsageError("name at least one version to remove (DATASET, DATASET@vN, …)")
    found: dict[bytes, tuple[str, int, ObjectId]] = {}
    for ref in refs:
        v = repo.resolve(txn, ref)  # raises a clear error for an unknown ref
        if "@" not in ref.strip() and v.name == ref.strip():
            for number, sid in repo.versions(txn, v.name):
                found[sid.raw] = (v.name, number, sid)
        else:
            found[v.id.raw] = (v.name, v.number, v.id)
    out = [_target(repo, txn, *found[k]) for k in found]
    out.sort(key=lambda t: (t.dataset, t.number))
    return out


def refuse_needed(found: Sequence[Target]) -> None:
    """Raise :class:`RemovalRefusedError` naming every version still needed."""
    needed = [t for t in found if t.runs or t.tags]
    if not needed:
        return
    what = "; ".join(f"{t.ref} is {' and '.join(t.needs())}" for t in needed[:5])
    more = f"; and {len(needed) - 5} more" if len(needed) > 5 else ""
    runs = any(t.runs for t in needed)
    tags = any(t.tags for t in needed)
    consequence = " and ".join(
        x for x, on in (("orphans those runs", runs), ("deletes those tags", tags)) if on
    )
    raise RemovalRefusedError(
        f"refusing to remove: {what}{more}; nothing was removed (--force removes them "
        f"anyway and {consequence})",
        refs=[t.ref for t in needed],
    )


def _reasons(t: Target, purge: bool) -> list[str]:
    out = ["removed by rm" + (" --purge" if purge else "")]
    if t.runs:
        out.append(f"orphans run{'s' if len(t.run_names) > 1 else ''} {', '.join(t.run_names)}")
    if t.tags:
        out.append(f"tags deleted: {', '.join(t.tags)}")
    return out


def remove(
    repo: Repository,
    refs: Sequence[str],
    *,
    force: bool = False,
    dry_run: bool = False,
    purge: bool = False,
) -> RemoveResult:
    """Forget the versions ``refs`` name (see the module docstring). A dry run decides
    exactly as the real one (and refuses the same way) but changes nothing. Purging
    itself is the caller's next step (:func:`reprocas.retention.purge.purge`)."""
    if dry_run:
        with repo.index.read() as txn:
            found = targets(repo, txn, refs)
        if not force:
            refuse_needed(found)
        return RemoveResult(found, True, force, purge)
    now = time.time_ns()
    with repo.ref_transaction() as rt:
        found = targets(repo, rt.txn, refs)
        if not force:
            refuse_needed(found)
        result = RemoveResult(found, False, force, purge)
        deletes: list[tuple[str, ObjectId]] = []
        logged: list[dict[str, Any]] = []
        extra: dict[str, Any] = {"by": "rm"}
        if purge:
            extra["purge_ns"] = now
        for t in found:
            sid = ObjectId(bytes.fromhex(t.id))
            deletes.append((version_ref(t.dataset, t.number), sid))
            deletes += [(tag_ref(t.dataset, tag), sid) for tag in t.tags]
            logged.append(
                forgotten_line(
                    repo,
                    rt,
                    sid,
                    ref=t.ref,
                    name=t.dataset,
                    number=t.number,
                    kind=t.kind,
                    time_ns=t.time_ns,
                    reasons=_reasons(t, purge),
                    tags=list(t.tags),
                    now=now,
                    **extra,
                )
            )
            result.removed.append(t.ref)
        if deletes:
            # As forget: the ref deletes and the forgotten records, both in the ref log
            # (fsynced) before LMDB commits, so `index rebuild` keeps them removed.
            rt.delete(deletes)
            repo.append_reflog(logged)
    return result
