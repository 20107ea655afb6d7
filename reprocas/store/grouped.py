"""Small files read back in groups: one native read per group of neighbours.

A commit stores the new chunks of small files side by side in shared frames
(``Writer.add_shared``), so the files of a directory share a frame. Assembling each
file on its own would decode that frame once per file; a checkout instead plans the
small files that follow one another in the tree as one read (every frame of the group
decoded once, every chunk verified against its digest) and writes each file from it.
A group whose read finds damage is written file by file after all, so the error names
the file and says where the damage is, as it does for a file read alone."""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import lmdb

from reprocas.errors import CorruptDataError
from reprocas.model.chunking import SMALL_FILE
from reprocas.model.objects import FileManifest
from reprocas.native import core
from reprocas.remote.lazy import reading as remote_reads
from reprocas.store.index import ChunkLoc, DeltaInfo
from reprocas.store.repository import Repository

if TYPE_CHECKING:
    from reprocas.store.checkout import ReadPlan

#: Files smaller than SMALL_FILE (the commit's shared-frame bound) are read in groups.
#: A group holds at most this many bytes of files and this many files.
GROUP_BYTES = 4 << 20
GROUP_FILES = 1024

Rel = tuple[str, ...]


@dataclass
class Group:
    """Neighbouring small files planned as one read."""

    plan: ReadPlan
    spans: dict[Rel, tuple[int, int]]  # each file's chunks: a range of the plan's chunks
    data: dict[Rel, bytes] | None = None
    failed: bool = False

    def take(self, repo: Repository, rel: Rel) -> bytes | None:
        """The verified bytes of ``rel``, read with the whole group the first time one
        is asked for; None when the group's read found damage (read it alone)."""
        if self.failed:
            return None
        if self.data is None:
            self.data = _read(repo, self)
            if self.data is None:
                self.failed = True
                return None
        return self.data.pop(rel, None)


def plan_groups(
    repo: Repository,
    txn: lmdb.Transaction,
    files: Iterable[tuple[Rel, FileManifest]],
    label: str,
) -> dict[Rel, Group]:
    """Groups of the small files among ``files`` (in checkout order): file -> group.
    A file alone in its group is left out (it is read on its own as before)."""
    from reprocas.store.checkout import chunks_plan

    known: dict[bytes, ChunkLoc] = {}
    deltas: dict[tuple[bytes, int], DeltaInfo] = {}
    out: dict[Rel, Group] = {}
    run: list[tuple[Rel, FileManifest]] = []
    size = 0

    def close() -> None:
        nonlocal size
        if len(run) >= 2:
            chunk_list: list[tuple[bytes, int]] = []
            spans: dict[Rel, tuple[int, int]] = {}
            for rel, m in run:
                start = len(chunk_list)
                chunk_list.extend(m.chunks)
                spans[rel] = (start, len(chunk_list))
            first = "/".join(run[0][0])
            plan = chunks_plan(
                repo,
                txn,
                chunk_list,
                f"{label}: {len(run)} small files from {first}",
                known,
                deltas,
            )
            g = Group(plan, spans)
            for rel, _ in run:
                out[rel] = g
        run.clear()
        size = 0

    for rel, m in files:
        if m.size >= SMALL_FILE or not m.chunks:
            continue
        if run and (size + m.size > GROUP_BYTES or len(run) >= GROUP_FILES):
            close()
        run.append((rel, m))
        size += m.size
    close()
    return out


def unique(groups: dict[Rel, Group]) -> list[Group]:
    seen: dict[int, Group] = {}
    for g in groups.values():
        seen.setdefault(id(g), g)
    return list(seen.values())


def _read(repo: Repository, g: Group) -> dict[Rel, bytes] | None:
    plan = g.plan
    with remote_reads(repo) as use:
        use.localize([plan])
        try:
            chunks = core.read_chunks(plan.packs, plan.frames, plan.chunks, bases=plan.bases)
        except CorruptDataError:
            use.forget(plan.packs)  # a damaged cache copy is fetched again next time
            return None
    return {rel: b"".join(chunks[a:b]) for rel, (a, b) in g.spans.items()}


def plan_alone(repo: Repository, manifest: FileManifest, label: str) -> ReadPlan:
    """The read plan of one file of a group whose read found damage (so that its error
    names the file and where the damage is)."""
    from reprocas.remote.lazy import localize
    from reprocas.store.checkout import read_plan

    with repo.index.read() as txn:
        plan = read_plan(repo, txn, manifest, label)
    localize(repo, [plan])
    return plan


def write_all(fd: int, data: bytes) -> int:
    """Write ``data`` to ``fd`` whole (os.write may write less than asked)."""
    view = memoryview(data)
    while view:
        n = os.write(fd, view)
        view = view[n:]
    return len(data)
