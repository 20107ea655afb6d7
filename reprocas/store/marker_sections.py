"""Settings sections of the repository marker (``reprocas.json``): ``retention``,
``prompt``, ``remote``. Read fresh from disk (another process may have changed them);
written by rewriting the whole marker to a temporary file, fsynced, and renamed into
place. Callers hold ``locks/config.lock`` (or the gc lock) around read-modify-write."""

from __future__ import annotations

import json
import os
from typing import Any

from reprocas.store.repository import MARKER, Repository


def read_section(repo: Repository, name: str) -> dict[str, Any]:
    """The marker's NAME section as stored now ({} when absent)."""
    try:
        marker: dict[str, Any] = json.loads((repo.root / MARKER).read_text())
    except (OSError, ValueError):
        marker = dict(repo.marker)
    return dict(marker.get(name) or {})


def write_section(
    repo: Repository, name: str, section: dict[str, Any], *, drop_empty: bool = False
) -> None:
    """Replace the marker's NAME section (removed when empty and DROP_EMPTY)."""
    path = repo.root / MARKER
    marker = json.loads(path.read_text())
    if section or not drop_empty:
        marker[name] = section
    else:
        marker.pop(name, None)
    tmp = repo.root / f"{MARKER}.{name}.tmp"
    tmp.write_text(json.dumps(marker, indent=2, sort_keys=True) + "\n")
    with open(tmp, "rb") as f:
        os.fsync(f.fileno())
    os.replace(tmp, path)
    repo.marker = marker
