"""Build the report file (and the PROV-JSON file) from a repository."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from reprocas.provenance.lineage import lineage
from reprocas.provenance.rundiff import diff_runs
from reprocas.report import compare, data, html, prov
from reprocas.report import lineage as lin
from reprocas.store.repository import Repository


def build(
    repo: Repository,
    names: list[str],
    to: Path,
    *,
    since_ns: int | None = None,
    compare_refs: tuple[str, str] | None = None,
    prov_path: Path | None = None,
) -> dict[str, Any]:
    model = data.collect(repo, names, since_ns)
    runs = model["runs"]
    g = lineage(repo, runs[-1]).to_json() if runs else {"nodes": [], "edges": []}
    if compare_refs is None and len(runs) >= 2:
        compare_refs = (runs[-2], runs[-1])
    cmp = compare.table(diff_runs(repo, *compare_refs)) if compare_refs else "<p>-</p>"
    text = html.page(model, lin.svg(g), cmp)
    to.write_text(text, encoding="utf-8")
    if prov_path is not None:
        prov_path.write_text(json.dumps(prov.prov(model["events"]), indent=1))
    return {
        "path": str(to),
        "bytes": len(text.encode()),
        "versions": len(model["versions"]),
        "runs": len(runs),
    }
