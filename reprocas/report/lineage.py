"""A lineage graph laid out left to right in layers (longest path from the sources),
drawn as SVG in Python; no graphviz."""

from __future__ import annotations

from html import escape
from typing import Any

NW, NH, GX, GY = 170, 28, 60, 16


def layout(g: dict[str, Any]) -> dict[str, tuple[float, float]]:
    ids = [n["id"] for n in g["nodes"]]
    preds: dict[str, list[str]] = {i: [] for i in ids}
    for e in g["edges"]:
        # data flows from the used version into the run, from the run into its output
        src, dst = (
            (e["to"], e["from"])
            if e["kind"] in ("used", "environment", "code", "replayed", "derived")
            else (e["from"], e["to"])
        )
        if src in preds and dst in preds and src != dst:
            preds[dst].append(src)
    layer: dict[str, int] = {}

    def depth(i: str, stack: frozenset[str] = frozenset()) -> int:
        if i not in layer:
            layer[i] = (
                0
                if i in stack
                else 1
                + max((depth(p, stack | {i}) for p in preds[i] if p not in stack), default=-1)
            )
        return layer[i]

    for i in ids:
        depth(i)
    pos: dict[str, tuple[float, float]] = {}
    count: dict[int, int] = {}
    for i in ids:
        lv = layer[i]
        k = count.get(lv, 0)
        count[lv] = k + 1
        pos[i] = (10 + lv * (NW + GX), 10 + k * (NH + GY))
    return pos


def svg(g: dict[str, Any]) -> str:
    pos = layout(g)
    if not pos:
        return "<p>no lineage</p>"
    w = max(x for x, _ in pos.values()) + NW + 20
    h = max(y for _, y in pos.values()) + NH + 20
    lines = []
    for e in g["edges"]:
        a, b = pos.get(e["from"]), pos.get(e["to"])
        if a and b:
            lines.append(
                f'<line x1="{a[0] + NW / 2}" y1="{a[1] + NH / 2}" x2="{b[0] + NW / 2}" '
                f'y2="{b[1] + NH / 2}" stroke="#999"><title>{escape(e["kind"])}</title></line>'
            )
    fill = {"run": "#def", "version": "#efd", "code": "#fed"}
    boxes = "".join(
        f'<g><rect x="{pos[n["id"]][0]}" y="{pos[n["id"]][1]}" width="{NW}" height="{NH}" '
        f'rx="4" fill="{fill.get(n["type"], "#eee")}" stroke="#666"/>'
        f'<text x="{pos[n["id"]][0] + 6}" y="{pos[n["id"]][1] + 18}">'
        f"{escape(n['label'])}</text></g>"
        for n in g["nodes"]
    )
    svg = f'<svg class="lineage" width="{w}" height="{h}" viewBox="0 0 {w} {h}">'
    return f"{svg}{''.join(lines)}{boxes}</svg>"
