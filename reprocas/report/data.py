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


RUN_COLUMNS = (
    "ref", "time_ns", "status", "exit_code", "inputs", "metrics", "replay_of", "verdict",
    "user", "host",
)  # fmt: skip


def _last(v: Any) -> Any:
    return v[-1] if isinstance(v, list) and v else v


def summary(model: dict[str, Any]) -> dict[str, Any]:
    """The data the page embeds: every change event in full, the runs as one table
    (``run_columns``/``run_rows``; a metric's last value, in ``metrics`` order) — a
    tenth of the size of the full events for a long history. ``--json-data`` writes
    the full model."""
    runs = [e for e in model["events"] if e["kind"] == "run"]
    metrics = sorted({k for r in runs for k in r.get("metrics") or {}})
    rows = [
        [
            r["ref"],
            r["time_ns"],
            r.get("status"),
            r.get("exit_code"),
            [i["ref"] for i in r.get("inputs") or []],
            [_last((r.get("metrics") or {}).get(m)) for m in metrics],
            r.get("replay_of_ref") or r.get("replay_of"),
            r.get("verdict"),
            r.get("user"),
            r.get("host"),
        ]
        for r in runs
    ]
    return {
        "format": "reprocas-report-summary/1",
        "versions": model["versions"],
        "runs": model["runs"],
        "events": [e for e in model["events"] if e["kind"] != "run"],
        "metrics": metrics,
        "run_columns": list(RUN_COLUMNS),
        "run_rows": rows,
    }
