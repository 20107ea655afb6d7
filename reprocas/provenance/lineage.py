"""Lineage: what produced a dataset version, run or environment (upstream), and what
used it (downstream), walked over the provenance edges one index lookup at a time."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Any

import lmdb

from reprocas.model.ids import ObjectId
from reprocas.provenance import graph
from reprocas.provenance.names import get_summary, is_run_ref, resolve_run
from reprocas.store.repository import Repository


@dataclass
class Lineage:
    """Nodes (id hex -> {"id", "type", "label"}) and edges of a lineage query."""

    root: str
    nodes: dict[str, dict[str, Any]] = field(default_factory=dict)
    edges: list[dict[str, Any]] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {"root": self.root, "nodes": list(self.nodes.values()), "edges": self.edges}

    def dot(self) -> str:
        """Graphviz DOT: runs as boxes, versions as ellipses, code commits as notes."""
        shapes = {"run": "box", "version": "ellipse", "code": "note", "note": "plaintext"}
        lines = ["digraph lineage {", "  rankdir=LR;"]
        for n in self.nodes.values():
            label = n["label"].replace('"', '\\"')
            extra = ", penwidth=2" if n["id"] == self.root else ""
            lines.append(f'  "{n["id"][:16]}" [label="{label}", shape={shapes[n["type"]]}{extra}];')
        for e in self.edges:
            lines.append(f'  "{e["from"][:16]}" -> "{e["to"][:16]}" [label="{e["kind"]}"];')
        lines.append("}")
        return "\n".join(lines) + "\n"


def _node(repo: Repository, txn: lmdb.Transaction, raw: bytes, kind: str) -> dict[str, Any]:
    if kind == "run":
        s = get_summary(repo, txn, ObjectId(raw))
        label = f"{s['name']}#{s['number']}"
    elif kind == "code":
        label = f"git {graph.code_commit(raw)[:12]}"
    else:
        info = repo.version_info(txn, ObjectId(raw))
        label = f"{info[0]}@v{info[1]}" if info else f"{raw.hex()[:12]} (forgotten)"
    return {"id": raw.hex(), "type": kind, "label": label}


def lineage(repo: Repository, ref: str, *, up: bool = True, down: bool = True) -> Lineage:
    """Walk the graph from ``ref`` (a run, or a dataset/environment version)."""
    with repo.index.read() as txn:
        if is_run_ref(repo, txn, ref):
            start, kind = resolve_run(repo, txn, ref).id.raw, "run"
        else:
            start, kind = repo.resolve(txn, ref).id.raw, "version"
        out = Lineage(start.hex())
        out.nodes[start.hex()] = _node(repo, txn, start, kind)
        seen_edges: set[tuple[bytes, bytes, bytes]] = set()

        def add(e: graph.Edge, src_kind: str, dst_kind: str) -> None:
            key = (e.src, e.kind, e.dst)
            if key in seen_edges:
                return
            seen_edges.add(key)
            for raw, k in ((e.src, src_kind), (e.dst, dst_kind)):
                if raw.hex() not in out.nodes:
                    out.nodes[raw.hex()] = _node(repo, txn, raw, k)
            out.edges.append({"from": e.src.hex(), "kind": e.kind_name, "to": e.dst.hex()})

        for direction in ("up", "down"):
            if (direction == "up" and not up) or (direction == "down" and not down):
                continue
            queue: deque[tuple[bytes, str]] = deque([(start, kind)])
            visited: set[bytes] = {start}
            while queue:
                node, nk = queue.popleft()
                nxt: list[tuple[bytes, str]] = []
                if direction == "up" and nk == "version":
                    for e in graph.in_edges(repo, txn, node, graph.GENERATED):
                        add(e, "run", "version")
                        nxt.append((e.src, "run"))
                    for e in graph.out_edges(repo, txn, node, graph.DERIVED):
                        if "run" not in e.value:  # `commit --from` (runs are walked above)
                            add(e, "version", "version")
                            nxt.append((e.dst, "version"))
                elif direction == "up" and nk == "run":
                    for e in graph.out_edges(repo, txn, node):
                        if e.kind in (graph.USED, graph.ENVIRONMENT):
                            add(e, "run", "version")
                            nxt.append((e.dst, "version"))
                        elif e.kind == graph.CODE:
                            add(e, "run", "code")
                        elif e.kind == graph.REPLAYED:
                            add(e, "run", "run")
                            nxt.append((e.dst, "run"))
                elif direction == "down" and nk == "version":
                    for k in (graph.USED, graph.ENVIRONMENT):
                        for e in graph.in_edges(repo, txn, node, k):
                            add(e, "run", "version")
                            nxt.append((e.src, "run"))
                    for e in graph.in_edges(repo, txn, node, graph.DERIVED):
                        if "run" not in e.value:
                            add(e, "version", "version")
                            nxt.append((e.src, "version"))
                elif direction == "down" and nk == "run":
                    for e in graph.out_edges(repo, txn, node, graph.GENERATED):
                        add(e, "run", "version")
                        nxt.append((e.dst, "version"))
                    for e in graph.in_edges(repo, txn, node, graph.REPLAYED):
                        add(e, "run", "run")
                        nxt.append((e.src, "run"))
                for nid, nkind in nxt:
                    if nid not in visited:
                        visited.add(nid)
                        queue.append((nid, nkind))
        _add_notes(repo, txn, out)
    return out


def _add_notes(repo: Repository, txn: lmdb.Transaction, out: Lineage) -> None:
    """The current notes about the runs and versions found, as ``note`` nodes with
    ``about`` edges (docs/CLI.md, "Notes")."""
    from reprocas.notes.store import notes_about

    for h, node in list(out.nodes.items()):
        if node["type"] not in ("run", "version"):
            continue
        for r in notes_about(repo, txn, bytes.fromhex(h)):
            first = (r.note.text.splitlines() or [""])[0]
            if r.id.hex not in out.nodes:
                out.nodes[r.id.hex] = {
                    "id": r.id.hex,
                    "type": "note",
                    "label": f"note {r.id.hex[:12]} {r.note.kind}: {first}",
                    "text": r.note.text,
                }
            out.edges.append({"from": r.id.hex, "kind": "about", "to": h})
