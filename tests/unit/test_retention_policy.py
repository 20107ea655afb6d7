"""Golden tests of the pure retention decision: calendar boundaries, ties, tags, budget.

The expected decisions live in tests/golden/retention/*.json. A missing golden is a
failure; only ``.venv/bin/python -m tests.golden.regenerate_retention`` rewrites them,
after an intended change (review the diff).
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

import pytest

from reprocas.errors import InvalidParameterError, UsageError
from reprocas.retention.policy import (
    Policy,
    Rules,
    SnapshotRecord,
    apply_policy,
    bucket_key,
    parse_duration,
    parse_size,
)

GOLDEN = Path(__file__).resolve().parents[1] / "golden" / "retention"


def _ns(iso: str) -> int:
    return int(dt.datetime.fromisoformat(iso).replace(tzinfo=dt.UTC).timestamp()) * 10**9


def _records(spec: list[list[Any]]) -> list[SnapshotRecord]:
    out = []
    counters: dict[str, int] = {}
    for row in spec:
        name, iso, *rest = row
        tags = tuple(rest[0]) if rest else ()
        counters[name] = counters.get(name, 0) + 1
        n = counters[name]
        out.append(
            SnapshotRecord(f"{name}@v{n}", f"{name}-{n:04d}", name, n, "dataset", _ns(iso), tags)
        )
    return out


def _rules(d: dict[str, Any]) -> Rules:
    return Rules(
        keep_last=d.get("keep_last"),
        keep_hourly=d.get("keep_hourly"),
        keep_daily=d.get("keep_daily"),
        keep_weekly=d.get("keep_weekly"),
        keep_monthly=d.get("keep_monthly"),
        keep_yearly=d.get("keep_yearly"),
        keep_within_ns=parse_duration(d["keep_within"]) if "keep_within" in d else None,
        keep_tags=tuple(d.get("keep_tags", ())),
    )


# Versions spanning week, month and year boundaries (2025-12-29 is a Monday of ISO week
# 2026-W01), ties in time, and tags.
SERIES: list[list[Any]] = [
    ["a", "2024-12-31T23:00:00"],
    ["a", "2025-01-01T00:30:00"],
    ["a", "2025-06-15T12:00:00", ["published"]],
    ["a", "2025-12-28T10:00:00"],
    ["a", "2025-12-29T09:00:00"],
    ["a", "2025-12-31T23:59:59"],
    ["a", "2026-01-01T00:00:00"],
    ["a", "2026-01-01T00:00:00"],
    ["a", "2026-01-04T08:00:00", ["candidate"]],
    ["a", "2026-01-05T08:00:00"],
    ["a", "2026-01-05T09:15:00"],
    ["a", "2026-01-05T09:45:00"],
    ["b", "2025-03-01T00:00:00"],
    ["b", "2025-11-30T23:59:59"],
    ["b", "2025-12-01T00:00:00"],
]
NOW = "2026-01-05T12:00:00"

CASES: dict[str, dict[str, Any]] = {
    "keep_last_2": {"rules": {"keep_last": 2}},
    "hourly_3": {"rules": {"keep_hourly": 3}},
    "daily_4": {"rules": {"keep_daily": 4}},
    "weekly_3": {"rules": {"keep_weekly": 3}},
    "monthly_3": {"rules": {"keep_monthly": 3}},
    "yearly_3": {"rules": {"keep_yearly": 3}},
    "within_7d": {"rules": {"keep_within": "7d"}},
    "keep_tag_candidate": {"rules": {"keep_last": 1, "keep_tags": ["candidate"]}},
    "combined": {"rules": {"keep_daily": 2, "keep_weekly": 2, "keep_monthly": 2}},
    "per_dataset": {"rules": {"keep_last": 1}, "per_dataset": {"b": {"keep_monthly": 2}}},
    "protected_by_run": {"rules": {"keep_last": 1}, "protected": ["a-0001"]},
}


def _decide(case: dict[str, Any]) -> dict[str, Any]:
    policy = Policy(
        rules=_rules(case["rules"]),
        per_dataset=tuple((k, _rules(v)) for k, v in case.get("per_dataset", {}).items()),
        protected_ids=frozenset(case.get("protected", ())),
    )
    d = apply_policy(_records(SERIES), policy, dt.datetime.fromisoformat(NOW + "+00:00"))
    return {
        "keep": {r.ref: list(d.reasons[r.id]) for r in d.keep},
        "remove": {r.ref: list(d.reasons[r.id]) for r in d.remove},
    }


@pytest.mark.parametrize("name", sorted(CASES))
def test_golden_policy(name: str) -> None:
    got = _decide(CASES[name])
    path = GOLDEN / f"{name}.json"
    assert path.exists(), (
        f"golden {path} is missing; write it with "
        "`python -m tests.golden.regenerate_retention` and review it"
    )
    assert got == json.loads(path.read_text())


def test_every_golden_belongs_to_a_case() -> None:
    assert sorted(p.stem for p in GOLDEN.glob("*.json")) == sorted(CASES)


def test_latest_and_published_always_kept() -> None:
    for case in CASES.values():
        got = _decide(case)
        assert "a@v12" in got["keep"] and "b@v3" in got["keep"]
        assert "a@v3" in got["keep"]  # tagged published


def test_week_and_year_buckets_cross_boundaries() -> None:
    assert bucket_key("weekly", _ns("2025-12-29T09:00:00")) == "2026-W01"
    assert bucket_key("weekly", _ns("2025-12-28T09:00:00")) == "2025-W52"
    assert bucket_key("yearly", _ns("2025-12-31T23:59:59")) == "2025"
    assert bucket_key("monthly", _ns("2026-01-01T00:00:00")) == "2026-01"


def test_ties_do_not_depend_on_input_order() -> None:
    recs = _records(SERIES)
    policy = Policy(rules=Rules(keep_daily=3))
    a = apply_policy(recs, policy, _ns(NOW))
    b = apply_policy(list(reversed(recs)), policy, _ns(NOW))
    assert {r.id for r in a.keep} == {r.id for r in b.keep}
    assert a.reasons == b.reasons


def test_every_version_has_a_reason() -> None:
    d = apply_policy(_records(SERIES), Policy(rules=Rules(keep_last=1)), _ns(NOW))
    assert len(d.keep) + len(d.remove) == len(SERIES)
    assert all(d.reasons[r.id] for r in (*d.keep, *d.remove))


@pytest.mark.parametrize(
    ("text", "expected"),
    [("50GB", 50 * 10**9), ("500MiB", 500 * 2**20), ("1234", 1234), ("1.5 KiB", 1536)],
)
def test_parse_size(text: str, expected: int) -> None:
    assert parse_size(text) == expected


@pytest.mark.parametrize("text", ["0", "", "12QB", "-5MB", "GB", "0.0GB"])
def test_parse_size_rejects(text: str) -> None:
    with pytest.raises(InvalidParameterError):
        parse_size(text)


def test_parse_duration() -> None:
    assert parse_duration("1y2m3d4h") == ((365 + 60 + 3) * 86400 + 4 * 3600) * 10**9
    for bad in ("", "7", "7x", "d7", "0d"):
        with pytest.raises(InvalidParameterError):
            parse_duration(bad)


def test_policy_check() -> None:
    with pytest.raises(UsageError, match="no retention policy"):
        Policy().check()
    with pytest.raises(UsageError, match="keep nothing"):
        Policy(rules=Rules(keep_last=0)).check()
    with pytest.raises(InvalidParameterError):
        Policy(rules=Rules(keep_daily=-1)).check()
    Policy(budget=10).check()
