"""The provenance graph: edges in LMDB, indexed both ways.

``edges_out`` keys are ``<from id 32 bytes><kind 1 byte><to id 32 bytes>`` and
``edges_in`` keys ``<to id><kind><from id>``, both with the same msgpack value, so
"what did run R use" and "which runs used snapshot S" are each one prefix scan, never
a scan of all runs. A code commit is a node whose id is the git commit's object name
(20 bytes for SHA-1, right-padded with zeros to 32; SHA-256 names fill 32).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import lmdb

from reprocas.model.ids import ObjectId
from reprocas.model.objects import Run, Snapshot
from reprocas.store.index import pack, unpack
from reprocas.store.reachability import all_versions
from reprocas.store.repository import Repository

USED = b"u"  # run -> input snapshot
GENERATED = b"g"  # run -> output snapshot
ENVIRONMENT = b"e"  # run -> environment snapshot
CODE = b"c"  # run -> code commit node
DERIVED = b"d"  # output snapshot -> input snapshot it was derived from
REPLAYED = b"r"  # replay run -> original run
ABOUT = b"n"  # note -> what it is about (version, run, environment, note)
SUPERSEDES = b"s"  # note -> the older note it retires

KIND_NAMES = {
    USED: "used",
    GENERATED: "generated",
    ENVIRONMENT: "environment",
    CODE: "code",
    DERIVED: "derived-from",
    REPLAYED: "replay-of",
    ABOUT: "about",
    SUPERSEDES: "supersedes",
}


@dataclass(frozen=True, slots=True)
class Edge:
    """One edge ``src --kind--> dst`` with its details (an input's path, say)."""

    src: bytes
    kind: bytes
    dst: bytes
    value: dict[str, Any]

    @property
    def kind_name(self) -> str:
        return KIND_NAMES.get(self.kind, self.kind.decode(errors="replace"))


def code_node(commit: str) -> bytes:
    """The graph node id of a git commit (hex object name)."""
    raw = bytes.fromhex(commit)
    return raw.ljust(32, b"\0")[:32]


def code_commit(node: bytes) -> str:
    """The git commit hex of a code node."""
    return (node[:20] if node[20:] == b"\0" * 12 else node).hex()


def run_edges(rid: ObjectId, run: Run) -> list[Edge]:
    """The edges a recorded run adds to the graph."""
    r = rid.raw
    out: list[Edge] = []
    for i in run.inputs:
        out.append(Edge(r, USED, bytes(i["snapshot"]), {"path": i.get("path")}))
    for o in run.outputs:
        if o.get("snapshot"):
            out.append(Edge(r, GENERATED, bytes(o["snapshot"]), {}))
            for i in run.inputs:
                out.append(
                    Edge(
                        bytes(o["snapshot"]),
                        DERIVED,
                        bytes(i["snapshot"]),
                        {"step": f"{run.name}#{run.number}", "run": r},
                    )
                )
    if run.environment is not None:
        out.append(Edge(r, ENVIRONMENT, run.environment.raw, {}))
    commit = (run.code or {}).get("commit")
    if commit:
        out.append(Edge(r, CODE, code_node(str(commit)), {"commit": commit}))
    of = run.extra.get("replay_of")
    if isinstance(of, bytes):
        out.append(Edge(r, REPLAYED, of, {"verdict": run.extra.get("verdict")}))
    return out


def derived_edges(sid: bytes, snap: Snapshot) -> list[Edge]:
    """The ``derived-from`` edges of a version committed with ``--from`` (recorded in
    its snapshot's ``extra.derived_from``, with ``step`` saying how)."""
    out: list[Edge] = []
    for src in snap.extra.get("derived_from") or ():
        if isinstance(src, bytes) and len(src) == 32:
            out.append(Edge(sid, DERIVED, src, {"step": snap.step}))
    return out


def aliased_edges(repo: Repository, txn: lmdb.Transaction, edges: list[Edge]) -> list[Edge]:
    """Edges of a run recorded before `reprocas upgrade`, naming the snapshots its
    format-2 ids became (the ``aliases`` sub-database)."""
    out = []
    for e in edges:
        src = repo.current_id(txn, ObjectId(e.src)).raw if len(e.src) == 32 else e.src
        dst = repo.current_id(txn, ObjectId(e.dst)).raw if len(e.dst) == 32 else e.dst
        out.append(Edge(src, e.kind, dst, e.value))
    return out


def put_edges(repo: Repository, txn: lmdb.Transaction, edges: list[Edge]) -> None:
    """Write edges both ways, inside the caller's (ref-moving) write transaction."""
    dbo, dbi = repo.index.db["edges_out"], repo.index.db["edges_in"]
    for e in edges:
        v = pack(e.value)
        txn.put(e.src + e.kind + e.dst, v, db=dbo)
        txn.put(e.dst + e.kind + e.src, v, db=dbi)


def _scan(
    repo: Repository, txn: lmdb.Transaction, db: str, node: bytes, kind: bytes | None
) -> Iterator[tuple[bytes, bytes, dict[str, Any]]]:
    prefix = node + (kind or b"")
    cur = txn.cursor(db=repo.index.db[db])
    if not cur.set_range(prefix):
        return
    for k, v in cur:
        key = bytes(k)
        if not key.startswith(prefix):
            break
        yield key[32:33], key[33:], dict(unpack(v))


def out_edges(
    repo: Repository, txn: lmdb.Transaction, node: bytes, kind: bytes | None = None
) -> list[Edge]:
    """Edges leaving ``node`` (of one kind when given)."""
    return [Edge(node, k, other, v) for k, other, v in _scan(repo, txn, "edges_out", node, kind)]


def in_edges(
    repo: Repository, txn: lmdb.Transaction, node: bytes, kind: bytes | None = None
) -> list[Edge]:
    """Edges arriving at ``node`` (of one kind when given)."""
    return [Edge(other, k, node, v) for k, other, v in _scan(repo, txn, "edges_in", node, kind)]


def protected_ids(repo: Repository) -> frozenset[str]:
    """Snapshot ids (hex) that a recorded run used, generated or ran in (one scan of
    ``edges_in``), for ``Policy.protected_ids``. ``forget`` itself looks each version
    up instead (``reprocas.retention.forget.run_reasons``), to name the runs."""
    out: set[str] = set()
    with repo.index.read() as txn:
        cur = txn.cursor(db=repo.index.db["edges_in"])
        for k in cur.iternext(keys=True, values=False):
            key = bytes(k)
            if key[32:33] in (USED, GENERATED, ENVIRONMENT):
                out.add(key[:32].hex())
    return frozenset(out)


def reindex(repo: Repository, txn: lmdb.Transaction | None = None) -> tuple[int, list[str]]:
    """Recreate the ``runs`` summaries and every run's edges from the run objects (the
    last step of ``reprocas index rebuild``, inside its write transaction when ``txn``
    is given). Returns the number of runs indexed and the runs (``NAME#N``) whose
    object could not be read (they keep their ref, so the damage stays visible)."""
    from reprocas.errors import ReprocasError
    from reprocas.provenance.names import iter_runs, load_run, put_summary

    if txn is None:
        with repo.index.write() as own:
            return reindex(repo, own)
    n = 0
    missing: list[str] = []
    for h in list(iter_runs(repo, txn)):
        try:
            run = load_run(repo, txn, h.id)
        except ReprocasError:
            missing.append(h.ref)
            continue
        put_summary(repo, txn, h.id, run)
        put_edges(repo, txn, aliased_edges(repo, txn, run_edges(h.id, run)))
        n += 1
    for _, _, sid in all_versions(repo, txn):
        try:
            snap = repo.load_snapshot(txn, sid)
        except ReprocasError:
            continue  # rebuild reports versions whose snapshot is unreadable
        put_edges(repo, txn, derived_edges(sid.raw, snap))
    return n, missing
