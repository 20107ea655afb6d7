"""The report's data model: the timeline events of the names in scope (from
``reprocas.provenance.timeline``), JSON-able, plus notes when ``reprocas.notes`` exists."""

from __future__ import annotations

import importlib
from typing import Any

from reprocas.provenance.timeline import timeline
from reprocas.store.repository import Repository


def _notes(repo: Repository) -> list[dict[str, Any]]:
    """Decision notes from ``reprocas.notes`` (issue 20) when that package exists; none
    otherwise. Each note: ``time_ns``, ``ref`` (what it is about) and ``text``."""
    try:
        notes = importlib.import_module("reprocas.notes")
    except ImportError:
        return []
    fn = getattr(notes, "report_notes", None)
    if fn is None:
        return []
    return [dict(n) for n in fn(repo)]


def collect(repo: Repository, names: list[str], since_ns: int | None = None) -> dict[str, Any]:
    """Events of ``names`` (all when empty), oldest first, from ``since_ns`` on."""
    seen: set[tuple[str, str, int]] = set()
    events: list[dict[str, Any]] = []
    for name in names or [None]:  # type: ignore[list-item]
        for e in timeline(repo, name):
            key = (e.kind, e.ref, e.time_ns)
            if key in seen or (since_ns is not None and e.time_ns < since_ns):
                continue
            seen.add(key)
            events.append(e.to_json())
    for n in _notes(repo):
        if since_ns is None or int(n.get("time_ns", 0)) >= since_ns:
            events.append({"kind": "note", **n})
    events.sort(key=lambda e: (int(e["time_ns"]), str(e["kind"]), str(e["ref"])))
    runs = [e for e in events if e["kind"] == "run"]
    return {
        "events": events,
        "versions": [e["ref"] for e in events if e["kind"] == "version"],
        "runs": [e["ref"] for e in runs],
    }
