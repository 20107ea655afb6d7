"""The timeline view: one lane per kind of change and one SVG chart per metric, computed
in Python; unchanged stretches of runs are grouped; details in ``<details>``."""

from __future__ import annotations

import json
from html import escape
from typing import Any

LANES = (
    ("version", "Dataset versions"),
    ("code", "Code"),
    ("params", "Parameters"),
    ("environment", "Environment"),
    ("note", "Notes and decisions"),
)
W, H = 900, 120
MAX_POINTS = 500  # a chart draws a point per run up to this many runs
LANE_SHOWN = 10  # a lane lists its latest changes; the earlier ones fold away
VERDICT_COLOUR = {"identical": "#2a7", "within-tolerance": "#27a", "diverged": "#c33"}


def _last(v: Any) -> Any:
    return v[-1] if isinstance(v, list) and v else v


def _x(t: int, t0: int, t1: int) -> float:
    return 10 + (W - 20) * ((t - t0) / (t1 - t0) if t1 > t0 else 0.5)


def _summary(e: dict[str, Any]) -> str:
    k = e["kind"]
    if k == "version":
        step = f" (step: {e['step']})" if e.get("step") else ""
        return f"{e['ref']} {e.get('message') or ''}{step} {' '.join(e.get('tags') or [])}"
    if k == "params":
        parts = [f"+{a}={v!r}" for a, v in e["added"].items()]
        parts += [f"-{a}" for a in e["removed"]]
        parts += [f"{a}: {c['from']!r} -> {c['to']!r}" for a, c in e["changed"].items()]
        return f"{e['run']}: " + ", ".join(parts)
    if k == "environment":
        return f"{e['run']}: {e['from']} -> {e['to']} {e.get('summary') or ''}"
    if k == "code":
        return f"{e['run']}: {e['ref']}"
    return f"{e['ref']}: {e.get('text', '')}"


def lanes(events: list[dict[str, Any]]) -> str:
    if not events:
        return "<p>nothing recorded yet</p>"
    t0, t1 = int(events[0]["time_ns"]), int(events[-1]["time_ns"])
    out = []
    for kind, title in LANES:
        items = [e for e in events if e["kind"] == kind]
        marks = "".join(
            f'<circle cx="{_x(int(e["time_ns"]), t0, t1):.1f}" cy="12" r="5">'
            f"<title>{escape(_summary(e))}</title></circle>"
            for e in items
        )
        rows = [
            f"<li><details><summary>{escape(e.get('time', ''))} "
            f"{escape(_summary(e))}</summary><pre>{escape(json.dumps(e, indent=1, default=str))}"
            "</pre></details></li>"
            for e in items
        ]
        # a long lane: the latest changes in view, the earlier ones one click away
        listing = f"<ul>{''.join(rows)}</ul>"
        if len(rows) > LANE_SHOWN:
            earlier = len(rows) - LANE_SHOWN
            listing = (
                f"<details class='earlier'><summary>{earlier} earlier changes</summary>"
                f"<ul>{''.join(rows[:earlier])}</ul></details>"
                f"<ul>{''.join(rows[earlier:])}</ul>"
            )
        out.append(
            f'<section class="lane lane-{kind}"><h3>{title} ({len(items)})</h3>'
            f'<svg width="{W}" height="24" viewBox="0 0 {W} 24">'
            f'<line x1="0" y1="12" x2="{W}" y2="12" stroke="#ccc"/>{marks}</svg>'
            f"{listing}</section>"
        )
    return "".join(out)


def charts(events: list[dict[str, Any]]) -> str:
    runs = [e for e in events if e["kind"] == "run"]
    if not runs:
        return "<p>no runs</p>"
    t0, t1 = int(events[0]["time_ns"]), int(events[-1]["time_ns"])
    metrics = sorted({k for r in runs for k, v in r["metrics"].items()})
    out = []
    for m in metrics:
        pts = [
            (int(r["time_ns"]), float(_last(r["metrics"][m])), r)
            for r in runs
            if isinstance(_last(r["metrics"].get(m)), int | float)
        ]
        if not pts:
            continue
        lo, hi = min(p[1] for p in pts), max(p[1] for p in pts)
        span = hi - lo or 1.0

        def y(v: float, lo: float = lo, span: float = span) -> float:
            return H - 10 - (H - 20) * (v - lo) / span

        path = " ".join(f"{_x(t, t0, t1):.1f},{y(v):.1f}" for t, v, _ in pts)
        # every run a point (a long history: the line alone, the replays marked)
        runs_dots = (
            "".join(
                f'<circle class="run" cx="{_x(t, t0, t1):.1f}" cy="{y(v):.1f}" r="2.5" '
                f'fill="#36c"><title>{escape(r["ref"])} {escape(m)}={v:g}</title></circle>'
                for t, v, r in pts
                if not r.get("replay_of")
            )
            if len(pts) <= MAX_POINTS
            else ""
        )
        dots = runs_dots + "".join(
            f'<circle class="replay" cx="{_x(t, t0, t1):.1f}" cy="{y(v):.1f}" r="5" '
            f'fill="{VERDICT_COLOUR.get(str(r.get("verdict")), "#888")}"><title>'
            f"{escape(r['ref'])} {escape(m)}={v:g} replay: {escape(str(r.get('verdict')))}"
            "</title></circle>"
            for t, v, r in pts
            if r.get("replay_of")
        )
        out.append(
            f'<figure class="chart"><figcaption>{escape(m)} (min {lo:g}, max {hi:g})'
            f'</figcaption><svg width="{W}" height="{H}" viewBox="0 0 {W} {H}">'
            f'<polyline fill="none" stroke="#36c" points="{path}"/>{dots}</svg></figure>'
        )
    return "".join(out)


def run_table(events: list[dict[str, Any]]) -> str:
    """Runs grouped into stretches: a new stretch starts at every change event."""
    groups: list[list[dict[str, Any]]] = [[]]
    for e in events:
        if e["kind"] == "run":
            groups[-1].append(e)
        elif groups[-1]:
            groups.append([])
    rows = []
    for g in (g for g in groups if g):
        first, last = g[0], g[-1]
        head = first["ref"] if len(g) == 1 else f"{first['ref']} … {last['ref']} ({len(g)} runs)"
        body = "".join(
            f"<tr><td>{escape(r['ref'])}</td><td>{escape(r['time'])}</td>"
            f"<td>{escape(r['status'])}</td><td>"
            + escape(", ".join(f"{k}={_last(v)}" for k, v in r["metrics"].items()))
            + "</td><td>"
            + escape(
                f"replay of {r.get('replay_of_ref')}: {r.get('verdict')}"
                if r.get("replay_of")
                else ""
            )
            + "</td></tr>"
            for r in (g if len(g) <= 20 else [g[0], *g[-3:]])
        )
        rows.append(
            f"<details class='stretch'><summary>{escape(head)}</summary><table><tr><th>run</th>"
            f"<th>time</th><th>status</th><th>metrics</th><th>replay</th></tr>{body}</table>"
            "</details>"
        )
    return "".join(rows)
