"""The range arithmetic of remote reads (reprocas.remote.lazy): merge, coverage,
coalescing into few GETs, and the gaps a whole-pack read fetches."""

from __future__ import annotations

import itertools
import random

from reprocas.remote.lazy import GAP, MAX_GET, CacheUse, coalesce, covered, merge


def test_merge_and_cover() -> None:
    assert merge([(5, 9), (0, 3), (3, 4), (8, 12), (20, 20)]) == [(0, 4), (5, 12)]
    have = merge([(0, 10), (20, 30)])
    assert covered(have, (2, 9)) and covered(have, (20, 30))
    assert not covered(have, (9, 21)) and not covered(have, (30, 31))


def test_coalesce_joins_near_ranges_and_caps_each_get() -> None:
    assert coalesce([(0, 10), (10 + GAP - 1, 2 * GAP)]) == [(0, 2 * GAP)]
    assert coalesce([(0, 10), (10 + GAP, 2 * GAP + 10)]) == [(0, 10), (10 + GAP, 2 * GAP + 10)]
    big = coalesce([(0, 3 * MAX_GET + 5)])
    assert big == [
        (0, MAX_GET),
        (MAX_GET, 2 * MAX_GET),
        (2 * MAX_GET, 3 * MAX_GET),
        (3 * MAX_GET, 3 * MAX_GET + 5),
    ]


def test_coalesced_gets_cover_every_range_and_nothing_far() -> None:
    r = random.Random(7)
    for _ in range(200):
        ranges = []
        for _ in range(r.randrange(1, 30)):
            s = r.randrange(0, 50 * GAP)
            ranges.append((s, s + r.randrange(1, 2 * GAP)))
        gets = coalesce(ranges)
        assert all(covered(gets, x) for x in ranges)
        assert all(e - s <= MAX_GET for s, e in gets)
        # Every GET byte is within GAP of a wanted range.
        for s, e in gets:
            assert any(ws < e and s < we for ws, we in ranges)
        assert gets == sorted(gets) and all(a[1] <= b[0] for a, b in itertools.pairwise(gets))


def test_gaps_of_a_whole_pack() -> None:
    assert CacheUse._gaps([], (0, 100)) == [(0, 100)]
    assert CacheUse._gaps([(0, 10), (20, 30)], (0, 100)) == [(10, 20), (30, 100)]
    assert CacheUse._gaps([(0, 100)], (0, 100)) == []
    assert CacheUse._gaps([(5, 100)], (0, 100)) == [(0, 5)]
