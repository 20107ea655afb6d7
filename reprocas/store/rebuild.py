"""Rebuild the LMDB index from what the repository is made of: packs and the ref log.

Packs carry their own chunk tables and every object; the ref log records every ref
change, in commit order, in two phases (see ``Repository.ref_transaction``). The index
is rebuilt *in place*, in one LMDB write transaction taken under the repository's
exclusive lock, so other processes that have the index open keep a valid handle and
never see a half-built index.

Damage stays visible: a pack whose trailer cannot be read is still listed (marked
damaged, so `gc` leaves it and `verify` reports it), and a ref whose snapshot cannot be
found is kept, so `log` and `verify` name the version that is affected.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from reprocas.errors import IntegrityError, ReprocasError
from reprocas.model.objects import Snapshot, object_from_wire
from reprocas.native import core
from reprocas.store import codec, refcounts
from reprocas.store.index import DB_NAMES, ObjectLoc, pack, put_frames
from reprocas.store.packs import read_blob, read_trailer
from reprocas.store.repository import Repository, parse_ref_key, version_ref


@dataclass(frozen=True, slots=True)
class RebuildReport:
    packs: int
    chunks: int
    objects: int
    refs: int
    skipped_packs: tuple[str, ...]
    missing_snapshots: tuple[str, ...]
    runs: int = 0
    missing_runs: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        return not self.skipped_packs and not self.missing_snapshots and not self.missing_runs

    def to_json(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "packs": self.packs,
            "chunks": self.chunks,
            "objects": self.objects,
            "refs": self.refs,
            "skipped_packs": list(self.skipped_packs),
            "missing_snapshots": list(self.missing_snapshots),
            "runs": self.runs,
            "missing_runs": list(self.missing_runs),
        }


def _reflog_entries(repo: Repository) -> list[dict[str, Any]] | None:
    """The ref log's change lines of committed transactions, in order; None without a
    log or without any change line. A line without a ``txn`` (written before the
    two-phase log) counts as committed."""
    if not repo.reflog_path.exists():
        return None
    entries: list[dict[str, Any]] = []
    committed: set[str] = set()
    for line in repo.reflog_path.read_text().splitlines():
        try:
            e = json.loads(line)
        except ValueError:
            continue  # a torn last line from a crash
        if not isinstance(e, dict):
            continue
        if e.get("op") == "commit":
            committed.add(str(e.get("txn")))
        else:
            entries.append(e)
    if not entries:
        return None
    # Only transactions that committed: the process may have died before the index
    # moved these refs.
    return [e for e in entries if e.get("txn") is None or e.get("txn") in committed]


def _replay_reflog(entries: list[dict[str, Any]] | None) -> dict[str, bytes] | None:
    """Refs from the ref log's committed changes; None without a ref log."""
    if entries is None:
        return None
    refs: dict[str, bytes] = {}
    for e in entries:
        try:
            if e.get("op") == "delete":
                refs.pop(str(e["ref"]), None)
            elif e.get("op") == "set":
                refs[str(e["ref"])] = bytes.fromhex(e["id"])
        except (KeyError, ValueError):
            continue
    return refs


def _replay_forgotten(
    entries: list[dict[str, Any]] | None,
    refs: dict[str, bytes],
    snapshots: dict[bytes, Snapshot],
) -> dict[bytes, dict[str, Any]]:
    """The ``forgotten`` table: the records ``forget`` logged (``"op": "forget"``
    lines). A version ref deleted by an older reprocas, which logged no record (only
    ``forget`` deletes refs), gets one from its snapshot when that is still stored
    (no reasons: they were not logged)."""
    out: dict[bytes, dict[str, Any]] = {}
    deleted: dict[bytes, tuple[str, int, int]] = {}
    tags: dict[bytes, list[str]] = {}
    for e in entries or ():
        op = e.get("op")
        try:
            if op == "forget" and isinstance(e.get("forgotten"), dict):
                out[bytes.fromhex(str(e["id"]))] = dict(e["forgotten"])
            elif op == "delete":
                parsed = parse_ref_key(str(e["ref"]))
                sid = bytes.fromhex(str(e["id"]))
                if parsed is not None and parsed[1] == "v" and parsed[2].isdigit():
                    deleted[sid] = (parsed[0], int(parsed[2]), int(e.get("time_ns") or 0))
                elif parsed is not None and parsed[1] == "tag":
                    tags.setdefault(sid, []).append(parsed[2])
        except (KeyError, ValueError, TypeError):
            continue
    for sid, (name, number, when) in deleted.items():
        if sid in out or refs.get(version_ref(name, number)) == sid:
            continue
        snap = snapshots.get(sid)
        out[sid] = {
            "ref": f"{name}@v{number}",
            "name": name,
            "number": number,
            "kind": snap.kind if snap is not None else "unknown",
            "time_ns": snap.time_ns if snap is not None else 0,
            "logical_bytes": snap.logical_bytes if snap is not None else 0,
            "forgotten_ns": when,
            "reasons": [],
            "tags": sorted(set(tags.get(sid, []))),
        }
    return out


def rebuild(repo: Repository) -> RebuildReport:
    """Recreate the index from the packs and the ref log."""
    index = repo.index
    n_chunks = n_objects = 0
    skipped: list[str] = []
    snapshots: dict[bytes, Snapshot] = {}
    packs = sorted(repo.packs_dir.glob("*/*.pack")) if repo.packs_dir.exists() else []
    with repo.lock("gc", exclusive=True), index.write() as txn:
        for name in DB_NAMES:
            txn.drop(index.db[name], delete=False)
        for path in packs:
            try:
                pid = bytes.fromhex(path.stem)
            except ValueError:
                continue
            try:
                trailer = read_trailer(path)
            except IntegrityError:
                skipped.append(str(path))
                txn.put(
                    pid,
                    pack({"size": path.stat().st_size, "damaged": True}),
                    db=index.db["packs"],
                )
                continue
            before = txn.stat(index.db["chunks"])["entries"]
            chunk_count = put_frames(txn, index.db, pid, trailer.frames)
            n_chunks += txn.stat(index.db["chunks"])["entries"] - before
            for o in trailer.objects:
                try:
                    blob = read_blob(path, o.offset, o.stored_len)
                    [data] = core.decompress_chunks([(o.codec, blob, o.raw_len)])
                except ReprocasError:
                    continue  # a damaged copy: verify reports the pack
                if core.blake3_digest(data) != o.id:
                    continue
                oloc = ObjectLoc(pid, o.offset, o.stored_len, o.codec, o.raw_len, data)
                if txn.put(o.id, oloc.to_value(), db=index.db["objects"], overwrite=False):
                    n_objects += 1
                try:
                    obj = object_from_wire(codec.decode(data))
                except (ReprocasError, ValueError, KeyError, TypeError):
                    continue
                if isinstance(obj, Snapshot):
                    snapshots[o.id] = obj
            txn.put(
                pid,
                pack(
                    {
                        "size": path.stat().st_size,
                        "frames": len(trailer.frames),
                        "chunks": chunk_count,
                        "objects": len(trailer.objects),
                    }
                ),
                db=index.db["packs"],
            )
        logged = _reflog_entries(repo)
        refs = _replay_reflog(logged)
        if refs is None:
            # No ref log (lost): the versions the snapshots say they were.
            refs = {}
            latest_time: dict[str, int] = {}
            for sid, snap in snapshots.items():
                number = int(snap.extra.get("version", 0))
                if number > 0:
                    key = version_ref(snap.name, number)
                    if snap.time_ns >= latest_time.get(key, -1):
                        refs[key] = sid
                        latest_time[key] = snap.time_ns
        missing: list[str] = []
        for k, v in refs.items():
            txn.put(k.encode(), v, db=index.db["refs"])
            parsed = parse_ref_key(k)
            if parsed is None or parsed[1] != "v":
                continue
            name, _, digits = parsed
            found = snapshots.get(v)
            if found is None:
                missing.append(f"{name}@v{int(digits)}")
            kind = found.kind if found is not None else "unknown"
            txn.put(v, pack([kind, name, int(digits)]), db=index.db["snapshots"])
        for sid, record in _replay_forgotten(logged, refs, snapshots).items():
            txn.put(sid, pack(record), db=index.db["forgotten"])
        # Run summaries and provenance edges are caches of the run objects: recreate
        # them from the run refs just restored (lazily imported: the store layer does
        # not depend on provenance).
        from reprocas.provenance import graph

        n_runs, missing_runs = graph.reindex(repo, txn)
        # The marker file is the source of truth for the repository's settings.
        index.put_meta(txn, "format_version", repo.marker["version"])
        index.put_meta(txn, "chunking", repo.marker["chunking"])
        index.put_meta(txn, "compression", repo.marker["compression"])
        index.put_meta(txn, "repo_id", repo.marker["repo_id"])
        refcounts.recompute(repo, txn)  # what keeps each chunk alive, for du
    return RebuildReport(
        packs=len(packs) - len(skipped),
        chunks=n_chunks,
        objects=n_objects,
        refs=len(refs),
        skipped_packs=tuple(skipped),
        missing_snapshots=tuple(sorted(missing)),
        runs=n_runs,
        missing_runs=tuple(sorted(missing_runs)),
    )
