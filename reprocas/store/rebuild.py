"""Rebuild the LMDB index from what the repository is made of: packs and the ref log.

Packs carry their own chunk tables and every object; snapshots carry their dataset
name and version number; the ref log records tags. The new index is built beside the
old one and swapped in only when complete.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from typing import Any

from reprocas.errors import IntegrityError
from reprocas.model.objects import Snapshot, object_from_wire
from reprocas.native import core
from reprocas.store import codec
from reprocas.store.index import ChunkLoc, Index, ObjectLoc, pack
from reprocas.store.packs import read_blob, read_trailer
from reprocas.store.repository import Repository, version_ref


@dataclass(frozen=True, slots=True)
class RebuildReport:
    packs: int
    chunks: int
    objects: int
    refs: int
    skipped_packs: tuple[str, ...]

    def to_json(self) -> dict[str, Any]:
        return {
            "packs": self.packs,
            "chunks": self.chunks,
            "objects": self.objects,
            "refs": self.refs,
            "skipped_packs": list(self.skipped_packs),
        }


def rebuild(repo: Repository) -> RebuildReport:
    """Replace the index with one rebuilt from packs and the ref log."""
    with repo.lock("gc", exclusive=True):
        new_path = repo.root / "index.rebuild"
        if new_path.exists():
            shutil.rmtree(new_path)
        new_path.mkdir()
        new = Index(new_path)
        n_chunks = n_objects = n_refs = 0
        skipped: list[str] = []
        snapshots: dict[bytes, Snapshot] = {}
        packs = sorted(repo.packs_dir.glob("*/*.pack")) if repo.packs_dir.exists() else []
        for path in packs:
            try:
                trailer = read_trailer(path)
                pid = bytes.fromhex(path.stem)
            except (IntegrityError, ValueError):
                skipped.append(str(path))
                continue
            with new.write() as txn:
                chunk_count = 0
                for f in trailer.frames:
                    for d, off, length in f.chunks:
                        loc = ChunkLoc(pid, f.offset, f.stored_len, f.codec, f.raw_len, off, length)
                        if txn.put(d, loc.to_value(), db=new.db["chunks"], overwrite=False):
                            n_chunks += 1
                        chunk_count += 1
                for o in trailer.objects:
                    blob = read_blob(path, o.offset, o.stored_len)
                    [data] = core.decompress_chunks([(o.codec, blob, o.raw_len)])
                    if core.blake3_digest(data) != o.id:
                        continue  # damaged copy: another pack may hold a good one
                    oloc = ObjectLoc(pid, o.offset, o.stored_len, o.codec, o.raw_len, data)
                    if txn.put(o.id, oloc.to_value(), db=new.db["objects"], overwrite=False):
                        n_objects += 1
                    obj = object_from_wire(codec.decode(data))
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
                    db=new.db["packs"],
                )
        refs: dict[str, bytes] = {}
        # Versions come from the snapshots themselves; the ref log adds tags and is
        # authoritative where the two agree on an object that exists.
        for sid, snap in snapshots.items():
            number = int(snap.extra.get("version", 0))
            if number > 0:
                key = version_ref(snap.name, number)
                prev = refs.get(key)
                if prev is None or snapshots[prev].time_ns < snap.time_ns:
                    refs[key] = sid
        if repo.reflog_path.exists():
            for line in repo.reflog_path.read_text().splitlines():
                try:
                    e = json.loads(line)
                    oid = bytes.fromhex(e["id"])
                except (ValueError, KeyError):
                    continue
                if e.get("op") == "delete":
                    refs.pop(e["ref"], None)
                elif oid in snapshots:
                    refs[e["ref"]] = oid
        with new.write() as txn:
            for k, v in refs.items():
                txn.put(k.encode(), v, db=new.db["refs"])
                n_refs += 1
                if k.startswith("ds/") and "/v/" in k:
                    snap = snapshots[v]
                    number = int(k.rsplit("/", 1)[1])
                    txn.put(v, pack([snap.kind, snap.name, number]), db=new.db["snapshots"])
            # The marker file is the source of truth for the repository's settings.
            new.put_meta(txn, "format_version", repo.marker["version"])
            new.put_meta(txn, "chunking", repo.marker["chunking"])
            new.put_meta(txn, "compression", repo.marker["compression"])
            new.put_meta(txn, "repo_id", repo.marker["repo_id"])
        new.close()
        repo.index.close()
        old_path = repo.root / "index"
        trash = repo.root / "index.old"
        if trash.exists():
            shutil.rmtree(trash)
        old_path.rename(trash)
        new_path.rename(old_path)
        shutil.rmtree(trash)
        repo.index = Index(old_path)
    return RebuildReport(len(packs) - len(skipped), n_chunks, n_objects, n_refs, tuple(skipped))
