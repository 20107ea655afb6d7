"""How values read in text output: one formatter for numbers, so `runs`, the timeline and
diffs print the same metric the same way (``n=100000``, never ``n=1e+05``)."""

from __future__ import annotations

import datetime as dt
import math
from typing import Any

# Below this magnitude a whole float prints as the integer it is; above, %g is shorter.
_WHOLE_LIMIT = 1e15


def format_number(value: Any, *, sign: bool = False) -> str:
    """A number for people: integers and whole floats in full (``100000``), other floats
    with four significant digits (``0.1235``, ``123456.7`` not ``1.235e+05``); anything
    that is not a number as ``str``."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return str(value)
    plus = "+" if sign else ""
    if isinstance(value, int):
        return f"{value:{plus}d}"
    if not math.isfinite(value):
        return f"{value:{plus}}"
    if value.is_integer() and abs(value) < _WHOLE_LIMIT:
        return f"{int(value):{plus}d}"
    if 1e4 <= abs(value) < _WHOLE_LIMIT:
        return f"{value:{plus}.1f}"
    return f"{value:{plus}.4g}"


def format_scalar(value: Any) -> str:
    """A value of a sample row or a parameter: numbers by :func:`format_number`, text and
    everything else as written, ``null`` for a missing value."""
    if value is None:
        return "null"
    if isinstance(value, bytes):
        return value.hex()
    return format_number(value)


def iso_time(time_ns: int) -> str:
    """A time in nanoseconds since the epoch as ISO 8601 in UTC, to the second."""
    return dt.datetime.fromtimestamp(time_ns / 1e9, tz=dt.UTC).isoformat(timespec="seconds")
