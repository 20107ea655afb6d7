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
from reprocas.store import codec
from reprocas.store.index import DB_NAMES, ChunkLoc, ObjectLoc, pack
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

    @property
    def ok(self) -> bool:
        return not self.skipped_packs and not self.missing_snapshots

    def to_json(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "packs": self.packs,
            "chunks": self.chunks,
            "objects": self.objects,
            "refs": self.refs,
            "skipped_packs": list(self.skipped_packs),
            "missing_snapshots": list(self.missing_snapshots),
        }


def _replay_reflog(repo: Repository) -> dict[str, bytes] | None:
    """Refs from the ref log, applying only committed transactions; None without a log."""
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
    refs: dict[str, bytes] = {}
    for e in entries:
        txn = e.get("txn")
        if txn is not None and txn not in committed:
            continue  # the process died before the index moved this ref
        try:
            if e.get("op") == "delete":
                refs.pop(str(e["ref"]), None)
            elif e.get("op") == "set":
                refs[str(e["ref"])] = bytes.fromhex(e["id"])
        except (KeyError, ValueError):
            continue
    return refs


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
            chunk_count = 0
            for f in trailer.frames:
                for d, off, length in f.chunks:
                    loc = ChunkLoc(pid, f.offset, f.stored_len, f.codec, f.raw_len, off, length)
                    if txn.put(d, loc.to_value(), db=index.db["chunks"], overwrite=False):
                        n_chunks += 1
                    chunk_count += 1
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
        refs = _replay_reflog(repo)
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
        # The marker file is the source of truth for the repository's settings.
        index.put_meta(txn, "format_version", repo.marker["version"])
        index.put_meta(txn, "chunking", repo.marker["chunking"])
        index.put_meta(txn, "compression", repo.marker["compression"])
        index.put_meta(txn, "repo_id", repo.marker["repo_id"])
    return RebuildReport(
        packs=len(packs) - len(skipped),
        chunks=n_chunks,
        objects=n_objects,
        refs=len(refs),
        skipped_packs=tuple(skipped),
        missing_snapshots=tuple(sorted(missing)),
    )
