"""reprocas: a deduplicating, content-addressed store that makes ML work reproducible.

>>> import reprocas
>>> repo = reprocas.Repo.init("/tmp/store")          # doctest: +SKIP
>>> repo.commit("data/", dataset="clinical", message="first cut")  # doctest: +SKIP
"""

from __future__ import annotations

from reprocas import errors
from reprocas.api import LogEntry, LsEntry, Repo

__version__ = "0.1.0"

__all__ = ["LogEntry", "LsEntry", "Repo", "__version__", "errors"]
