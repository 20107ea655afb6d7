"""Which files are tables, and in which format."""

from __future__ import annotations

FORMATS = ("parquet", "arrow", "csv")

_SUFFIXES = {
    ".parquet": "parquet",
    ".pq": "parquet",
    ".arrow": "arrow",
    ".feather": "arrow",
    ".ipc": "arrow",
    ".arrows": "arrow",
    ".csv": "csv",
}


def format_of(name: str) -> str | None:
    """The tabular format of a file name, by its suffix; None if it is not a table."""
    lower = name.lower()
    for suffix, fmt in _SUFFIXES.items():
        if lower.endswith(suffix):
            return fmt
    return None
