"""Build the report file (and the PROV-JSON and data files) from a repository."""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from reprocas.errors import InvalidParameterError
from reprocas.provenance.lineage import lineage
from reprocas.provenance.rundiff import diff_runs
from reprocas.report import compare, data, html, prov
from reprocas.report import lineage as lin
from reprocas.store.repository import Repository


@dataclass
class ReportResult:
    """What :func:`build` wrote: the HTML file (``path``, ``bytes``), how many versions
    and runs it shows, the PROV-JSON and data files when asked for, and ``data``: the
    data embedded in the page (the same as ``--json-data`` writes)."""

    path: Path
    bytes: int
    versions: int
    runs: int
    prov: Path | None = None
    json_data: Path | None = None
    data: dict[str, Any] = field(default_factory=dict, repr=False)

    def to_json(self) -> dict[str, Any]:
        return {
            "path": str(self.path),
            "bytes": self.bytes,
            "versions": self.versions,
            "runs": self.runs,
            "prov": str(self.prov) if self.prov is not None else None,
            "json_data": str(self.json_data) if self.json_data is not None else None,
        }


def parse_since(since: str | dt.datetime | None) -> int | None:
    """``--since``: an ISO 8601 date or time (UTC when it names no zone), in ns."""
    if since is None:
        return None
    if isinstance(since, str):
        try:
            d = dt.datetime.fromisoformat(since)
        except ValueError as exc:
            raise InvalidParameterError(f"--since: not an ISO date: {since!r}") from exc
    else:
        d = since
    if d.tzinfo is None:
        d = d.replace(tzinfo=dt.UTC)
    # exact, in integers (a float timestamp * 1e9 is off by up to ~200 ns)
    delta = d - dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
    return (delta.days * 86_400 + delta.seconds) * 1_000_000_000 + delta.microseconds * 1000


def data_json(model: dict[str, Any]) -> str:
    """The report's data as a JSON document (what ``--json-data`` writes)."""
    return json.dumps(model, indent=1, default=str, sort_keys=True) + "\n"


def build(
    repo: Repository,
    names: list[str],
    to: Path,
    *,
    since_ns: int | None = None,
    compare_refs: tuple[str, str] | None = None,
    prov_path: Path | None = None,
    json_data_path: Path | None = None,
) -> ReportResult:
    model = data.collect(repo, names, since_ns)
    runs = model["runs"]
    g = lineage(repo, runs[-1]).to_json() if runs else {"nodes": [], "edges": []}
    if compare_refs is None and len(runs) >= 2:
        compare_refs = (runs[-2], runs[-1])
    cmp = compare.table(diff_runs(repo, *compare_refs)) if compare_refs else "<p>-</p>"
    text = html.page(model, lin.svg(g), cmp)
    if prov_path is not None:
        prov_path.write_text(json.dumps(prov.prov(model["events"]), indent=1) + "\n")
    if json_data_path is not None:
        json_data_path.write_text(data_json(model), encoding="utf-8")
    to.write_text(text, encoding="utf-8")
    return ReportResult(
        path=to,
        bytes=len(text.encode()),
        versions=len(model["versions"]),
        runs=len(runs),
        prov=prov_path,
        json_data=json_data_path,
        data=model,
    )
