"""Which versions to keep: a pure function of the versions, the policy and the time.

``apply_policy`` does no I/O. It receives small frozen records (one per version), the
rules, ``now``, and — for ``--budget`` — a :class:`~reprocas.retention.budget.CostModel`
that answers "how big is the store after pruning if only these versions are kept"
exactly. Every version comes back in ``keep`` or ``remove`` with the rules that decided
it, so the decision can be printed, tested against golden files, and explained.

Rules, in order (docs/RETENTION.md):

1. Protected, never forgotten: a protecting tag (``published`` plus ``--keep-tag``),
   the latest version of each dataset, and versions a kept run used, produced or ran
   in (``SnapshotRecord.run_reasons``, filled by ``forget.records`` from the
   provenance edges).
2. ``keep-last``, ``keep-hourly`` … ``keep-yearly`` and ``keep-within`` keep versions;
   anything no rule keeps is forgotten.
3. ``budget``: while the store after pruning would exceed the budget, the oldest version
   kept only by step 2 is forgotten too. A dataset without keep rules keeps every
   version in step 2 when there is a budget, so a budget alone forgets only what it
   needs (oldest first) and nothing when the store already fits.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from reprocas.errors import InvalidParameterError, UsageError

if TYPE_CHECKING:
    from reprocas.retention.budget import CostModel

DEFAULT_PROTECTING_TAGS = ("published",)
BUCKETS = ("hourly", "daily", "weekly", "monthly", "yearly")
BUDGET_ONLY_REASON = "fits the budget (no keep rules)"


@dataclass(frozen=True, slots=True)
class SnapshotRecord:
    """What the policy needs to know about one version (nothing is loaded later)."""

    ref: str  # "clinical@v3"
    id: str  # snapshot id, hex
    dataset: str
    number: int
    kind: str  # "dataset" | "environment" | "run-output"
    time_ns: int
    tags: tuple[str, ...] = ()
    protected_by_run: bool = False  # an input, output or environment of a kept run
    run_reasons: tuple[str, ...] = ()  # which runs: "used by run train#3", ...

    def to_json(self) -> dict[str, Any]:
        return {
            "ref": self.ref,
            "id": self.id,
            "dataset": self.dataset,
            "number": self.number,
            "kind": self.kind,
            "time_ns": self.time_ns,
            "tags": list(self.tags),
            "protected_by_run": self.protected_by_run,
            "run_reasons": list(self.run_reasons),
        }

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> SnapshotRecord:
        return cls(
            ref=str(d["ref"]),
            id=str(d["id"]),
            dataset=str(d["dataset"]),
            number=int(d["number"]),
            kind=str(d.get("kind", "dataset")),
            time_ns=int(d["time_ns"]),
            tags=tuple(d.get("tags") or ()),
            protected_by_run=bool(d.get("protected_by_run", False)),
            run_reasons=tuple(d.get("run_reasons") or ()),
        )


@dataclass(frozen=True, slots=True)
class Rules:
    """The keep rules of one dataset (or the default for all)."""

    keep_last: int | None = None
    keep_hourly: int | None = None
    keep_daily: int | None = None
    keep_weekly: int | None = None
    keep_monthly: int | None = None
    keep_yearly: int | None = None
    keep_within_ns: int | None = None
    keep_tags: tuple[str, ...] = ()

    def counts(self) -> list[tuple[str, int | None]]:
        return [
            ("last", self.keep_last),
            ("hourly", self.keep_hourly),
            ("daily", self.keep_daily),
            ("weekly", self.keep_weekly),
            ("monthly", self.keep_monthly),
            ("yearly", self.keep_yearly),
        ]

    @property
    def empty(self) -> bool:
        return all(n is None for _, n in self.counts()) and self.keep_within_ns is None

    def check(self) -> None:
        """Reject rules that make no sense: negative counts, a policy keeping nothing."""
        for what, n in self.counts():
            if n is not None and n < 0:
                raise InvalidParameterError(f"--keep-{what} takes a count >= 0, not {n}")
        if self.keep_within_ns is not None and self.keep_within_ns <= 0:
            raise InvalidParameterError("--keep-within takes a positive duration")


@dataclass(frozen=True, slots=True)
class Policy:
    """The whole policy: default rules, per-dataset overrides, tags, runs, budget."""

    rules: Rules = Rules()
    per_dataset: tuple[tuple[str, Rules], ...] = ()
    protecting_tags: tuple[str, ...] = DEFAULT_PROTECTING_TAGS
    protected_ids: frozenset[str] = frozenset()  # more snapshot ids (hex) to protect
    budget: int | None = None

    def rules_for(self, dataset: str) -> Rules:
        return dict(self.per_dataset).get(dataset, self.rules)

    def check(self) -> None:
        """Raise a UsageError for a policy that cannot be applied safely."""
        all_rules = [self.rules, *(r for _, r in self.per_dataset)]
        for r in all_rules:
            r.check()
        if self.budget is not None and self.budget <= 0:
            raise InvalidParameterError("--budget must be a positive size")
        if self.budget is None and all(r.empty for r in all_rules):
            raise UsageError(
                "no retention policy: give a --keep-* option or --budget, or set "
                "retention.* with `reprocas config set`"
            )
        if self.budget is None and all(
            all(not n for _, n in r.counts()) and r.keep_within_ns is None for r in all_rules
        ):
            raise UsageError(
                "this policy would keep nothing (every --keep-* is 0); "
                "only protected versions would remain"
            )


@dataclass(frozen=True, slots=True)
class Decision:
    """The outcome: ids kept and removed (in input order), and why, per id."""

    keep: tuple[SnapshotRecord, ...]
    remove: tuple[SnapshotRecord, ...]
    reasons: Mapping[str, tuple[str, ...]]
    budget: int | None = None
    size_before: int | None = None
    size_after: int | None = None
    budget_met: bool = True
    freed_by: Mapping[str, int] = field(default_factory=dict)  # budget: id -> bytes

    @property
    def freed_bytes(self) -> int | None:
        if self.size_before is None or self.size_after is None:
            return None
        return self.size_before - self.size_after

    def to_json(self) -> dict[str, Any]:
        def item(r: SnapshotRecord) -> dict[str, Any]:
            d: dict[str, Any] = {"ref": r.ref, "id": r.id, "reasons": list(self.reasons[r.id])}
            if r.id in self.freed_by:
                d["frees_bytes"] = self.freed_by[r.id]
            return d

        return {
            "keep": [item(r) for r in self.keep],
            "remove": [item(r) for r in self.remove],
            "freed_bytes": self.freed_bytes,
            "size_before": self.size_before,
            "size_after": self.size_after,
            "budget": self.budget,
            "budget_met": self.budget_met,
        }


# -- time buckets --------------------------------------------------------------------


def _utc(time_ns: int) -> dt.datetime:
    return dt.datetime.fromtimestamp(time_ns // 1_000_000_000, tz=dt.UTC)


def bucket_key(kind: str, time_ns: int) -> str:
    """The calendar bucket (UTC) of a time: ``2026-01-05T14``, ``2026-W02``, ``2026-01``…"""
    t = _utc(time_ns)
    if kind == "hourly":
        return t.strftime("%Y-%m-%dT%H")
    if kind == "daily":
        return t.strftime("%Y-%m-%d")
    if kind == "weekly":
        year, week, _ = t.isocalendar()
        return f"{year}-W{week:02d}"
    if kind == "monthly":
        return t.strftime("%Y-%m")
    if kind == "yearly":
        return t.strftime("%Y")
    raise ValueError(kind)


def _newest_first(records: Iterable[SnapshotRecord]) -> list[SnapshotRecord]:
    # Ties in time are broken by version number, then id, so the result never depends
    # on input order.
    return sorted(records, key=lambda r: (r.time_ns, r.number, r.id), reverse=True)


def _rule_reasons(
    group: Sequence[SnapshotRecord], rules: Rules, now_ns: int
) -> dict[str, list[str]]:
    """Which keep rules keep which versions of one dataset."""
    out: dict[str, list[str]] = {r.id: [] for r in group}
    ordered = _newest_first(group)
    if rules.keep_last:
        for i, r in enumerate(ordered[: rules.keep_last]):
            out[r.id].append(f"last {i + 1}/{rules.keep_last}")
    for kind, n in rules.counts()[1:]:
        if not n:
            continue
        seen: list[str] = []
        for r in ordered:
            key = bucket_key(kind, r.time_ns)
            if key in seen:
                continue
            seen.append(key)
            out[r.id].append(f"{kind} {key}")
            if len(seen) == n:
                break
    if rules.keep_within_ns is not None:
        for r in ordered:
            if now_ns - r.time_ns <= rules.keep_within_ns:
                out[r.id].append(f"within {format_duration(rules.keep_within_ns)}")
    return out


def apply_policy(
    snapshots: Sequence[SnapshotRecord],
    policy: Policy,
    now: dt.datetime | int,
    costs: CostModel | None = None,
) -> Decision:
    """Decide, for every version, keep or remove, and why. Pure: no I/O.

    ``now`` is a datetime or ns since the epoch (for ``keep-within``). ``costs`` is
    needed with a budget; it only ever sees sets of ids.
    """
    now_ns = now if isinstance(now, int) else int(now.timestamp() * 1_000_000_000)
    protecting = set(policy.protecting_tags)
    by_dataset: dict[str, list[SnapshotRecord]] = {}
    for r in snapshots:
        by_dataset.setdefault(r.dataset, []).append(r)
    reasons: dict[str, list[str]] = {}
    protected: set[str] = set()
    for name, group in by_dataset.items():
        rules = policy.rules_for(name)
        tags_here = protecting | set(rules.keep_tags)
        latest = max(group, key=lambda r: r.number)
        kept = _rule_reasons(group, rules, now_ns)
        if rules.empty and policy.budget is not None:
            # A budget without keep rules keeps everything that fits: it forgets only
            # what the budget needs, oldest first, and nothing when the store fits.
            for r in group:
                kept[r.id].append(BUDGET_ONLY_REASON)
        for r in group:
            why: list[str] = []
            if r is latest:
                why.append("latest")
            why.extend(f"tag {t}" for t in sorted(set(r.tags) & tags_here))
            if r.run_reasons:
                why.extend(r.run_reasons)
            elif r.protected_by_run or r.id in policy.protected_ids:
                why.append("used by a kept run")
            if why:
                protected.add(r.id)
            reasons[r.id] = why + kept[r.id]
    keep_ids = {i for i, why in reasons.items() if why}
    for why in reasons.values():
        if not why:
            why.append("no rule keeps it")

    size_before = size_after = None
    budget_met = True
    freed_by: dict[str, int] = {}
    if costs is not None:
        size_before = costs.size_before
        if policy.budget is not None:
            candidates = sorted(
                (r for r in snapshots if r.id in keep_ids and r.id not in protected),
                key=lambda r: (r.time_ns, r.number, r.id),
            )
            keep_ids, freed_by = _apply_budget(keep_ids, candidates, policy.budget, costs)
            for i in freed_by:
                reasons[i] = [f"budget {policy.budget} bytes: oldest unprotected"]
        size_after = costs.size_after(frozenset(keep_ids))
        budget_met = policy.budget is None or size_after <= policy.budget
    keep = tuple(r for r in snapshots if r.id in keep_ids)
    remove = tuple(r for r in snapshots if r.id not in keep_ids)
    return Decision(
        keep=keep,
        remove=remove,
        reasons={i: tuple(w) for i, w in reasons.items()},
        budget=policy.budget,
        size_before=size_before,
        size_after=size_after,
        budget_met=budget_met,
        freed_by=freed_by,
    )


def _apply_budget(
    keep_ids: set[str],
    candidates: list[SnapshotRecord],
    budget: int,
    costs: CostModel,
) -> tuple[set[str], dict[str, int]]:
    """Forget candidates, oldest first, until the exact size after pruning fits.

    A fast additive lower bound on the bytes freed finds the cut; the exact size (which
    also counts the pack trailers that shrink) then moves it back or on by a few.
    """
    keep = frozenset(keep_ids)
    if costs.size_after(keep) <= budget:
        return set(keep), {}
    prefix, marginal = costs.lower_bound_prefix(keep, [c.id for c in candidates], budget)

    def keep_at(k: int) -> frozenset[str]:
        return keep - {c.id for c in candidates[:k]}

    def exact(k: int) -> int:
        return costs.size_after(keep_at(k))

    k = prefix
    while k > 0 and exact(k - 1) <= budget:
        k -= 1
    while k < len(candidates) and exact(k) > budget:
        k += 1
    freed = {candidates[i].id: marginal[i] for i in range(k)}
    return set(keep_at(k)), freed


# -- parsing sizes and durations -----------------------------------------------------

_SIZE_RE = re.compile(r"^\s*([0-9]+(?:\.[0-9]+)?)\s*([A-Za-z]*)\s*$")
_UNITS = {
    "": 1,
    "b": 1,
    "k": 1000,
    "kb": 1000,
    "m": 1000**2,
    "mb": 1000**2,
    "g": 1000**3,
    "gb": 1000**3,
    "t": 1000**4,
    "tb": 1000**4,
    "kib": 1024,
    "mib": 1024**2,
    "gib": 1024**3,
    "tib": 1024**4,
}


def parse_size(text: str) -> int:
    """``50GB`` (10^9), ``500MiB`` (2^20), ``1234`` bytes -> bytes; must be > 0."""
    m = _SIZE_RE.match(str(text))
    unit = m.group(2).lower() if m else ""
    if m is None or unit not in _UNITS:
        raise InvalidParameterError(
            f"cannot read size {text!r}: use bytes or a number with B, KB, MB, GB, TB, "
            "KiB, MiB, GiB or TiB (e.g. 50GB, 500MiB)"
        )
    n = int(float(m.group(1)) * _UNITS[unit])
    if n <= 0:
        raise InvalidParameterError(f"size {text!r} must be greater than zero")
    return n


_DUR_RE = re.compile(r"([0-9]+)([ymwdh])")
_DUR_NS = {
    "y": 365 * 86400,
    "m": 30 * 86400,
    "w": 7 * 86400,
    "d": 86400,
    "h": 3600,
}


def parse_duration(text: str) -> int:
    """``1y2m3d4h`` (y = 365 days, m = 30 days, w = 7 days) -> nanoseconds (> 0)."""
    s = str(text).strip().lower()
    parts = _DUR_RE.findall(s)
    if not s or "".join(n + u for n, u in parts) != s:
        raise InvalidParameterError(
            f"cannot read duration {text!r}: use e.g. 7d, 2w, 1y6m, 36h (y, m = 30 days, w, d, h)"
        )
    ns = sum(int(n) * _DUR_NS[u] for n, u in parts) * 1_000_000_000
    if ns <= 0:
        raise InvalidParameterError(f"duration {text!r} must be greater than zero")
    return ns


def format_duration(ns: int) -> str:
    s = ns // 1_000_000_000
    out = ""
    for u in ("y", "w", "d", "h"):
        n, s = divmod(s, _DUR_NS[u])
        if n:
            out += f"{n}{u}"
    return out or f"{ns // 1_000_000_000}s"


def with_budget(policy: Policy, budget: int | None) -> Policy:
    return replace(policy, budget=budget)
