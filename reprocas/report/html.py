"""The one self-contained HTML file: inline CSS and SVG, the summarised data as inert
JSON (``reprocas.report.data.summary``), a CSP that forbids every fetch and every
script."""

from __future__ import annotations

import json
from html import escape
from typing import Any

from reprocas.report import data, timeline

CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:; script-src 'none'"
CSS = (
    "body{font:14px sans-serif;margin:2em}h3{margin:.5em 0}.lane circle{fill:#36c}"
    "table{border-collapse:collapse}td,th{border:1px solid #ddd;padding:2px 6px}"
    "pre{white-space:pre-wrap;font-size:12px}text{font:11px sans-serif}"
)


def embed(data: Any) -> str:
    return json.dumps(data, default=str).replace("<", "\\u003c")


def page(model: dict[str, Any], lineage_svg: str, compare_html: str) -> str:
    ev = model["events"]
    return (
        "<!DOCTYPE html><html><head><meta charset='utf-8'>"
        f'<meta http-equiv="Content-Security-Policy" content="{CSP}">'
        f"<title>reprocas report</title><style>{CSS}</style></head><body>"
        f"<h1>reprocas report</h1><p>{len(model['versions'])} versions, "
        f"{len(model['runs'])} runs</p><h2>Timeline</h2>{timeline.lanes(ev)}"
        f"<h2>Metrics</h2>{timeline.charts(ev)}<h2>Runs</h2>{timeline.run_table(ev)}"
        f"<h2>Lineage</h2>{lineage_svg}<h2>Run comparison</h2>{compare_html}"
        f'<script type="application/json" id="data">{embed(data.summary(model))}</script>'
        "</body></html>"
    )


__all__ = ["escape", "page"]
