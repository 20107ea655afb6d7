"""Compare two tables by value: the same schema, the same rows in the same order, and
numeric cells equal within a relative tolerance (what a replay accepts for a table
output whose bytes changed but whose values did not)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc


@dataclass(frozen=True, slots=True)
class TableComparison:
    """The outcome: ``equal`` when every cell agrees (within the tolerance); else
    ``reason`` names the first thing that differs."""

    equal: bool
    rows: int
    reason: str | None = None
    column: str | None = None
    max_rel_diff: float | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "equal": self.equal,
            "rows": self.rows,
            "reason": self.reason,
            "column": self.column,
            "max_rel_diff": self.max_rel_diff,
        }


def _numeric(t: pa.DataType) -> bool:
    return bool(pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_decimal(t))


def _numeric_column(
    a: pa.ChunkedArray, b: pa.ChunkedArray, tolerance: float
) -> tuple[bool, float, int | None]:
    """Whether two numeric columns agree within ``tolerance`` (nulls at the same rows,
    NaN equal to NaN, infinities only equal to themselves), the largest relative
    difference, and the first row beyond the tolerance."""
    if pa.types.is_integer(a.type) and tolerance == 0:
        # Exact, with no detour through float64 (which rounds integers above 2**53).
        same = pc.fill_null(pc.equal(a, b), True)
        bad = pc.invert(same)
        first = pc.index(bad, True).as_py()
        return first < 0, 0.0 if first < 0 else math.inf, None if first < 0 else first
    fa, fb = pc.cast(a, pa.float64()), pc.cast(b, pa.float64())
    eq = pc.fill_null(pc.equal(fa, fb), True)
    both_nan = pc.fill_null(pc.and_(pc.is_nan(fa), pc.is_nan(fb)), False)
    finite = pc.fill_null(pc.and_(pc.is_finite(fa), pc.is_finite(fb)), False)
    diff = pc.abs(pc.subtract(fa, fb))
    scale = pc.max_element_wise(pc.abs(fa), pc.abs(fb))
    near = pc.fill_null(pc.and_(finite, pc.less_equal(diff, pc.multiply(scale, tolerance))), False)
    ok = pc.or_(pc.or_(eq, both_nan), near)
    moved = pc.and_(finite, pc.invert(eq))
    rel = pc.max(pc.filter(pc.divide(diff, scale), pc.fill_null(moved, False))).as_py()
    bad = pc.invert(ok)
    first = pc.index(bad, True).as_py()
    worst = 0.0 if rel is None else float(rel)
    if first >= 0 and not pc.any(pc.and_(bad, finite)).as_py():
        worst = math.inf  # the difference is a NaN or an infinity
    return first < 0, worst, None if first < 0 else first


def compare_tables(a: pa.Table, b: pa.Table, tolerance: float) -> TableComparison:
    """Compare table ``b`` (the replay's) with ``a`` (the original's), cell by cell."""
    if not a.schema.equals(b.schema, check_metadata=False):
        names_a, names_b = a.schema.names, b.schema.names
        if names_a != names_b:
            why = f"columns differ ({names_a} -> {names_b})"
        else:
            col = next(n for n in names_a if a.schema.field(n).type != b.schema.field(n).type)
            why = f"column {col} changed type ({a.schema.field(col).type} -> "
            why += f"{b.schema.field(col).type})"
        return TableComparison(False, a.num_rows, f"schema differs: {why}")
    if a.num_rows != b.num_rows:
        why = f"row count differs ({a.num_rows} -> {b.num_rows})"
        return TableComparison(False, a.num_rows, why)
    worst = 0.0
    for name in a.schema.names:
        ca, cb = a.column(name), b.column(name)
        if not pc.all(pc.equal(pc.is_null(ca), pc.is_null(cb))).as_py() and a.num_rows:
            return TableComparison(False, a.num_rows, f"nulls differ in column {name}", name)
        if _numeric(ca.type):
            ok, rel, row = _numeric_column(ca, cb, tolerance)
            worst = max(worst, rel)
            if not ok:
                return TableComparison(
                    False,
                    a.num_rows,
                    f"column {name} differs beyond tolerance {tolerance:g} (first at row {row})",
                    name,
                    None if math.isinf(worst) else worst,
                )
        elif not ca.equals(cb):
            return TableComparison(False, a.num_rows, f"column {name} differs", name)
    return TableComparison(True, a.num_rows, max_rel_diff=worst)
