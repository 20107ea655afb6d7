"""Integrity checks: structure always, stored data when asked."""

from __future__ import annotations

import random
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from reprocas.errors import IntegrityError, ReprocasError
from reprocas.native import core
from reprocas.progress import Progress
from reprocas.remote.lazy import CacheUse, cache_path
from reprocas.store.frames import FrameCache, FrameDecoder
from reprocas.store.index import ChunkLoc, unpack
from reprocas.store.packs import CODEC_DELTA, FrameInfo, read_blob, read_trailer
from reprocas.store.reachability import BaseResolver, all_versions, reach_snapshot
from reprocas.store.repository import Repository


@dataclass(frozen=True, slots=True)
class Problem:
    """One thing wrong, with where it is and which versions it affects."""

    kind: str
    message: str
    pack: str | None = None
    offset: int | None = None
    versions: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "message": self.message,
            "pack": self.pack,
            "offset": self.offset,
            "versions": list(self.versions),
        }


@dataclass
class VerifyReport:
    ok: bool
    problems: list[Problem] = field(default_factory=list)
    versions: int = 0
    packs: int = 0
    chunks: int = 0
    chunks_read: int = 0
    #: Packs a lazy pull left on a remote (no local file): checked only with read_data,
    #: through the cache.
    remote_packs: int = 0

    def to_json(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "problems": [p.to_json() for p in self.problems],
            "versions": self.versions,
            "packs": self.packs,
            "chunks": self.chunks,
            "chunks_read": self.chunks_read,
            "remote_packs": self.remote_packs,
        }


def verify(
    repo: Repository,
    *,
    read_data: bool = False,
    subset_pct: float | None = None,
    progress: Progress | None = None,
) -> VerifyReport:
    """Check every version's objects and chunks are indexed, every pack exists and has a
    sound trailer; with ``read_data`` (or a ``subset_pct`` of packs) re-hash stored chunks."""
    problems: list[Problem] = []
    chunk_versions: dict[bytes, set[str]] = defaultdict(set)
    index = repo.index
    n_versions = 0
    cache: dict[bytes, Any] = {}
    with index.read() as txn:
        for name, number, sid in all_versions(repo, txn):
            n_versions += 1
            label = f"{name}@v{number}"
            try:
                r = reach_snapshot(repo, txn, sid, manifest_cache=cache)
            except ReprocasError as exc:
                problems.append(Problem("object", f"{label}: {exc}", versions=(label,)))
                continue
            for d in r.chunks:
                chunk_versions[d].add(label)
        # A delta chunk's versions depend on its bases too: a missing or damaged base
        # is reported with every version that needs it.
        bases = BaseResolver(repo, txn)
        if bases.active:
            for d, users in list(chunk_versions.items()):
                for b in bases.closure(d):
                    chunk_versions[b] |= users
        packs_db = {bytes(k): unpack(v) for k, v in txn.cursor(db=index.db["packs"])}
        locs: dict[bytes, ChunkLoc] = {}
        for d in chunk_versions:
            loc = index.get_chunk(txn, d)
            if loc is None:
                problems.append(
                    Problem(
                        "chunk",
                        f"chunk {d.hex()} is missing from the index",
                        versions=tuple(sorted(chunk_versions[d])),
                    )
                )
            else:
                locs[d] = loc
                if loc.pack not in packs_db:
                    problems.append(
                        Problem(
                            "pack",
                            f"chunk {d.hex()[:16]} lies in pack {loc.pack.hex()}, "
                            "which is not indexed",
                            pack=loc.pack.hex(),
                            versions=tuple(sorted(chunk_versions[d])),
                        )
                    )
    # Which versions each pack serves, for naming what a damaged pack affects.
    pack_versions: dict[bytes, set[str]] = defaultdict(set)
    for d, loc in locs.items():
        pack_versions[loc.pack] |= chunk_versions[d]

    pack_ids = sorted(packs_db)
    if subset_pct is not None:
        k = max(1, round(len(pack_ids) * subset_pct / 100)) if pack_ids else 0
        to_read = set(random.sample(pack_ids, k))
    elif read_data:
        to_read = set(pack_ids)
    else:
        to_read = set()
    chunks_read = 0
    decoder = FrameDecoder(repo, FrameCache(256 << 20))
    prog = progress or Progress()
    prog.start(sum(int(packs_db[p].get("size", 0)) for p in to_read), len(to_read))
    n_remote = 0
    n_problems = len(problems)
    held: CacheUse | None = None
    for pid in pack_ids:
        if held is not None:
            if len(problems) > n_problems:  # damage seen: its cache copy is not kept
                held.forget([cache_path(repo, p) for p in held.pins])
            held.close()  # the previous remote pack's cache copy may be evicted now
            held = None
        n_problems = len(problems)
        if pid in to_read:
            prog.advance(int(packs_db[pid].get("size", 0)))
            prog.file_done()
        path = repo.pack_path(pid)
        affected = tuple(sorted(pack_versions.get(pid, ())))
        remote = packs_db[pid].get("remote") if isinstance(packs_db[pid], dict) else None
        if remote and not path.exists():
            n_remote += 1
            if pid not in to_read:
                continue  # its trailer and frames are on the remote: --read-data reads them
            held = CacheUse(repo)
            try:
                path = held.resolve(path)
                held.ensure_whole(pid)
            except ReprocasError as exc:
                problems.append(
                    Problem(
                        "pack",
                        f"pack {pid.hex()} (on the remote {remote}) could not be read: {exc}",
                        pack=pid.hex(),
                        versions=affected,
                    )
                )
                continue
        try:
            trailer = read_trailer(path)
        except IntegrityError as exc:
            problems.append(
                Problem(
                    "pack",
                    str(exc),
                    pack=str(path),
                    offset=exc.fields.get("offset"),
                    versions=affected,
                )
            )
            continue
        if pid not in to_read:
            continue
        plain = [f for f in trailer.frames if f.codec != CODEC_DELTA]
        frames = [
            (f.offset, f.stored_len, f.codec, f.raw_len, [(o, n, d) for d, o, n in f.chunks])
            for f in plain
        ]
        found = [(plain[fi], ci, msg) for fi, ci, msg in core.verify_frames(path, frames)]
        found += _verify_deltas(repo, decoder, pid, trailer.frames)
        for f, ci, msg in found:
            if ci is None:
                digests = [d for d, _, _ in f.chunks]
                where = f"frame at offset {f.offset}"
            else:
                digests = [f.chunks[ci][0]]
                where = f"chunk {f.chunks[ci][0].hex()[:16]} in frame at offset {f.offset}"
            vs = sorted({v for d in digests for v in chunk_versions.get(d, ())})
            problems.append(
                Problem(
                    "data",
                    f"pack {path}: {where}: {msg}",
                    pack=str(path),
                    offset=f.offset,
                    versions=tuple(vs),
                )
            )
        chunks_read += sum(len(f.chunks) for f in trailer.frames)
        for o in trailer.objects:
            # Objects are checked against their ids from the pack copy too.
            blob = read_blob(path, o.offset, o.stored_len)
            try:
                [raw] = core.decompress_chunks([(o.codec, blob, o.raw_len)])
                bad = core.blake3_digest(raw) != o.id
            except ReprocasError:
                bad = True
            if bad:
                problems.append(
                    Problem(
                        "data",
                        f"pack {path}: object {o.id.hex()[:16]} at offset {o.offset} is damaged",
                        pack=str(path),
                        offset=o.offset,
                        versions=affected,
                    )
                )
    if held is not None:
        if len(problems) > n_problems:
            held.forget([cache_path(repo, p) for p in held.pins])
        held.close()
    decoder.close()
    return VerifyReport(
        ok=not problems,
        problems=problems,
        versions=n_versions,
        packs=len(pack_ids),
        chunks=len(chunk_versions),
        chunks_read=chunks_read,
        remote_packs=n_remote,
    )


def _verify_deltas(
    repo: Repository, decoder: FrameDecoder, pid: bytes, frames: tuple[FrameInfo, ...]
) -> list[tuple[FrameInfo, int | None, str]]:
    """Decode a pack's delta frames against their bases and re-hash their chunks. A
    damaged or missing base is reported for each frame that depends on it."""
    deltas = [f for f in frames if f.codec == CODEC_DELTA]
    found: list[tuple[FrameInfo, int | None, str]] = []
    batch = 64
    for at in range(0, len(deltas), batch):
        group = deltas[at : at + batch]
        locs = [ChunkLoc(pid, f.offset, f.stored_len, f.codec, f.raw_len, 0, 0) for f in group]
        with repo.index.read() as txn:
            try:
                decoded = decoder.load(txn, locs)
            except ReprocasError:
                decoded = {}
                for f, loc in zip(group, locs, strict=True):  # one by one, to say which
                    try:
                        decoded.update(decoder.load(txn, [loc]))
                    except ReprocasError as exc:
                        found.append((f, None, f"delta frame does not decode: {exc}"))
        for f, loc in zip(group, locs, strict=True):
            data = decoded.get(loc.frame_key)
            if data is None:
                continue
            view = memoryview(data)
            for ci, (d, o, n) in enumerate(f.chunks):
                if o + n > len(view):
                    found.append((f, ci, "chunk lies outside its frame"))
                elif core.blake3_digest(view[o : o + n]) != d:
                    found.append((f, ci, "chunk does not match its digest"))
    return found
