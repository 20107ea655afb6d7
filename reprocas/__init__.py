"""reprocas: a deduplicating, content-addressed store that makes ML work reproducible."""

from __future__ import annotations

__version__ = "0.1.0"
