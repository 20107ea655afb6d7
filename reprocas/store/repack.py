"""``reprocas repack --deltas``: re-encode a dataset history's chunks as deltas.

For repositories written before delta chunks (format 1, upgraded to format 2 by this
command) or whose deltas were lost (bases pruned, deltas switched off for a while).
Each dataset's versions are walked in order; in version N, every chunk that first
appears there and is stored on its own is re-encoded against version N-1's chunks at
the same place of the same file (the alignment commits use, reprocas.store.deltas).
The new frames go into new packs; once a version's packs are sealed, one index
transaction points its chunks at them. The old copies become unused — `reprocas
prune` reclaims them. A chunk is never re-encoded against anything that already
depends on it, so no chain ever loops, and chains stay within ``deltas.max_depth``.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from typing import Any

import lmdb

from reprocas.model.chunking import DeltaConfig
from reprocas.model.ids import ObjectId
from reprocas.model.objects import FileManifest, Tree
from reprocas.native import core
from reprocas.progress import Progress
from reprocas.store.checkout import read_chunks
from reprocas.store.deltas import DeltaEncoder
from reprocas.store.packs import CODEC_DELTA, fsync_dir
from reprocas.store.reachability import BaseResolver, iter_tree
from reprocas.store.repository import FORMAT_VERSION_DELTAS, MARKER, Repository
from reprocas.store.writer import Writer


@dataclass
class RepackReport:
    datasets: list[str] = field(default_factory=list)
    chunks_examined: int = 0
    chunks_reencoded: int = 0
    bytes_before: int = 0  # stored bytes of the re-encoded chunks' old frames (share)
    bytes_after: int = 0  # stored bytes of their new delta frames
    upgraded: bool = False

    def to_json(self) -> dict[str, Any]:
        return {
            "datasets": self.datasets,
            "chunks_examined": self.chunks_examined,
            "chunks_reencoded": self.chunks_reencoded,
            "bytes_before": self.bytes_before,
            "bytes_after": self.bytes_after,
            "upgraded_format": self.upgraded,
        }


def upgrade_for_deltas(repo: Repository) -> bool:
    """Mark a format 1 repository as format 2 with deltas on (atomically); False if it
    already was. Older reprocas versions then refuse it instead of misreading it."""
    if repo.format_version >= FORMAT_VERSION_DELTAS and repo.config.deltas.enabled:
        return False
    marker = dict(repo.marker)
    marker["version"] = max(repo.format_version, FORMAT_VERSION_DELTAS)
    marker["deltas"] = {**asdict(DeltaConfig()), **marker.get("deltas", {}), "enabled": True}
    tmp = repo.root / (MARKER + ".tmp")
    tmp.write_text(json.dumps(marker, indent=2, sort_keys=True) + "\n")
    with open(tmp, "rb") as f:
        os.fsync(f.fileno())
    os.replace(tmp, repo.root / MARKER)
    fsync_dir(repo.root)
    repo.marker = marker
    repo.format_version = marker["version"]
    object.__setattr__(repo.config, "deltas", DeltaConfig(**marker["deltas"]))
    return True


def _files(
    repo: Repository, txn: lmdb.Transaction, tid: bytes, prefix: str = ""
) -> dict[str, bytes]:
    if not isinstance(repo.load(txn, ObjectId(tid)), Tree):
        return {}
    return {
        p: repo.entry_object(txn, e).raw
        for p, e in iter_tree(repo, txn, tid, prefix)
        if e.kind == "file"
    }


def repack_deltas(
    repo: Repository, datasets: list[str] | None = None, progress: Progress | None = None
) -> RepackReport:
    report = RepackReport(upgraded=upgrade_for_deltas(repo))
    level = repo.config.compression.level
    done: set[bytes] = set()
    with repo.lock("gc", exclusive=False):
        with repo.index.read() as txn:
            names = datasets or repo.datasets(txn)
            plan = [(n, [sid for _, sid in repo.versions(txn, n)]) for n in names]
            sizes = {
                sid.raw: repo.load_snapshot(txn, sid).logical_bytes for _, v in plan for sid in v
            }
        prog = progress or Progress()
        prog.start(sum(sizes.values()), sum(len(v) for _, v in plan))
        for name, sids in plan:
            report.datasets.append(name)
            seen: set[bytes] = set()
            for prev, sid in zip([None, *sids], sids, strict=False):
                _one_version(repo, prev, sid, seen, done, level, report)
                prog.advance(sizes[sid.raw])
    return report


def _one_version(
    repo: Repository,
    prev: ObjectId | None,
    sid: ObjectId,
    seen: set[bytes],
    done: set[bytes],
    level: int,
    report: RepackReport,
) -> None:
    index = repo.index
    enc = DeltaEncoder(repo)
    writer = Writer(repo, relocate=True)
    try:
        with index.read() as txn:
            snap = repo.load_snapshot(txn, sid)
            files = _files(repo, txn, snap.root.raw)
            parents = _files(repo, txn, repo.load_snapshot(txn, prev).root.raw) if prev else {}
            manifests = {p: repo.load_manifest(txn, ObjectId(m)) for p, m in files.items()}
            bases = BaseResolver(repo, txn)
            for path, m in manifests.items():
                fresh = [d for d, _ in m.chunks if d not in seen]
                seen.update(d for d, _ in m.chunks)
                pm = parents.get(path)
                if pm is None or pm == files[path] or not fresh:
                    continue
                parent = repo.load_manifest(txn, ObjectId(pm))
                _reencode(repo, txn, enc, writer, m, parent, set(fresh), done, bases, level, report)
        writer.seal()
    except BaseException:
        writer.abort()
        raise
    finally:
        writer.close()


def _reencode(
    repo: Repository,
    txn: lmdb.Transaction,
    enc: DeltaEncoder,
    writer: Writer,
    m: FileManifest,
    parent: FileManifest,
    fresh: set[bytes],
    done: set[bytes],
    bases: BaseResolver,
    level: int,
    report: RepackReport,
) -> None:
    index = repo.index
    digests = [d for d, _ in m.chunks]
    lengths = [n for _, n in m.chunks]
    candidates: list[int] = []
    for i, d in enumerate(digests):
        if d not in fresh or d in done:
            continue
        loc = index.get_chunk(txn, d)
        if loc is None or loc.codec == CODEC_DELTA:
            continue
        candidates.append(i)
        report.chunks_examined += 1
    if not candidates:
        return
    fd = enc.for_file(parent)
    runs, _ = fd.plan(digests, lengths, candidates)
    found = enc.groups(txn, fd, runs)
    groups = list(zip(found.groups, found.prefixes(), strict=True))
    # Never code a chunk against something that already depends on it.
    groups = [
        (g, views)
        for g, views in groups
        if not any(
            d in bases.closure(b) or d == b
            for b in g.bases
            for d in digests[g.first : g.first + g.count]
        )
    ]
    if not groups:
        return
    spans = [range(g.first, g.first + g.count) for g, _ in groups]
    data = read_chunks(
        repo, txn, [(digests[i], lengths[i]) for span in spans for i in span], "repack"
    )
    items = []
    at = 0
    for (_, views), span in zip(groups, spans, strict=True):
        items.append((b"".join(data[at : at + len(span)]), views))
        at += len(span)
    for (g, _), span, (codec_id, payload), (raw, _) in zip(
        groups, spans, core.compress_delta_many(items, level), items, strict=True
    ):
        if codec_id != CODEC_DELTA:
            continue  # no gain: the chunks stay where they are
        entries = []
        off = 0
        old = 0.0
        for i in span:
            d, n = digests[i], lengths[i]
            entries.append((d, off, n))
            off += n
            loc = index.get_chunk(txn, d)
            if loc is not None and loc.raw_len:
                old += loc.stored_len * loc.length / loc.raw_len
        writer.add_frame(codec_id, payload, len(raw), entries, g.bases, g.depth)
        done.update(digests[i] for i in span)
        report.chunks_reencoded += len(span)
        report.bytes_before += round(old)
        report.bytes_after += len(payload)
