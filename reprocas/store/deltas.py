"""Delta chunks: store a new chunk of a changed file as a zstd frame compressed against
the parent version's chunks at the same place (docs/FORMAT.md, codec 2).

A commit that re-reads a file which existed in the parent version aligns the two chunk
sequences: every chunk the parent also has is an *anchor* that fixes how offsets in the
new file map to offsets in the parent. A run of consecutive new chunks then maps to a
region of the parent file; the parent's chunks overlapping that region (plus one chunk
of slack on each side for rows inserted or deleted) are the run's *bases*, and their
bytes, concatenated, are the zstd reference prefix the run is compressed against. The
native core keeps the delta only when it is clearly smaller than the chunks compressed
alone.

A chunk's id never changes — it is still the BLAKE3 of its own bytes — so only the
stored encoding names bases. Chains are bounded: a base already at ``max_depth`` is not
used, so reading any chunk decodes at most ``max_depth`` frames beneath it.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass, field

import lmdb

from reprocas.model.objects import FileManifest
from reprocas.native import core
from reprocas.store.checkout import ReadPlan, chunks_plan
from reprocas.store.index import ChunkLoc, DeltaInfo
from reprocas.store.packs import CODEC_DELTA
from reprocas.store.repository import Repository

# How far around a run's mapped region parent chunks still count as its bases.
SLACK = 4096
# A run's prefix holds at most this much more than the run itself.
MAX_EXTRA_PREFIX = 128 << 10
# Delta groups are tried in slices of this many; after a slice that did not pay, the
# rest of the file is compressed plainly.
GIVE_UP_AFTER = 16


@dataclass
class DeltaGroup:
    """Consecutive new chunks of one batch and the parent chunks they are coded against."""

    first: int
    count: int
    bases: tuple[bytes, ...]
    depth: int


@dataclass
class DeltaRun:
    first: int
    count: int
    lo: int  # mapped start in the parent file
    hi: int  # mapped end
    raw: int
    exact_lo: bool = False  # lo is the end of the unchanged chunk just before the run
    exact_hi: bool = False  # hi is the start of the unchanged chunk just after it


@dataclass
class FileDeltas:
    """Aligns one file's new chunks with its parent version's chunks, batch by batch."""

    parent: FileManifest
    max_depth: int
    frame_size: int
    offsets: list[int] = field(init=False)
    where: dict[bytes, int] = field(init=False)
    new_off: int = 0  # end of the last anchor in the new file
    par_off: int = 0  # ... and where it ends in the parent
    pos: int = 0  # file offset of the next batch's first chunk
    tried: int = 0  # delta groups compressed so far
    raw: int = 0  # raw bytes of the last slice of groups ...
    stored: int = 0  # ... and what they were stored in (delta or not)

    @property
    def paying(self) -> bool:
        """False once deltas stop paying for this file — the last slice of groups still
        cost over half its raw size (the file's encoding reshuffles bytes, as compressed
        columnar files do after rows are deleted or inserted): the rest is compressed
        plainly, so a file that gains little costs no second compression."""
        return self.stored * 2 < self.raw or self.tried == 0

    def record(self, frames: list[tuple[int, bytes, int, int, int]]) -> None:
        """Note how a slice of groups came out: (codec, payload, first, count,
        raw_len) as the native core returns them."""
        self.tried += len(frames)
        self.raw = sum(f[4] for f in frames)
        self.stored = sum(len(f[1]) for f in frames)

    def __post_init__(self) -> None:
        self.offsets = []
        off = 0
        for _, n in self.parent.chunks:
            self.offsets.append(off)
            off += n
        self.where = {}
        for j, (d, _) in enumerate(self.parent.chunks):
            self.where.setdefault(d, j)

    def plan(
        self, digests: list[bytes], lengths: list[int], new: list[int]
    ) -> tuple[list[DeltaRun], list[int]]:
        """Runs of new chunks that map into the parent (candidates for deltas), and the
        new chunks that do not (appended past the parent's end, or no parent data)."""
        size = self.parent.size
        is_new = set(new)
        runs: list[DeltaRun] = []
        plain: list[int] = []
        x = self.pos
        prev = -2
        anchored = x == 0  # the previous chunk was unchanged (or this is the start)
        for i, (d, n) in enumerate(zip(digests, lengths, strict=True)):
            j = self.where.get(d)
            if j is not None:
                self.new_off = x + n
                self.par_off = self.offsets[j] + self.parent.chunks[j][1]
                if runs and prev == i - 1:
                    # The run just before ends where this unchanged chunk starts.
                    runs[-1].hi = self.offsets[j]
                    runs[-1].exact_hi = True
                anchored = True
            elif i in is_new:
                y = self.par_off + (x - self.new_off)
                if y >= size or size == 0:
                    plain.append(i)
                else:
                    r = runs[-1] if runs else None
                    if r is not None and prev == i - 1 and r.raw + n <= self.frame_size:
                        r.count += 1
                        r.hi = y + n
                        r.raw += n
                    else:
                        runs.append(DeltaRun(i, 1, y, y + n, n, exact_lo=anchored))
                    prev = i
                anchored = False
            else:
                anchored = False
            x += n
        self.pos = x
        return runs, plain

    def bases_of(self, run: DeltaRun) -> list[bytes]:
        """The parent chunks overlapping the run's mapped region: exactly the chunks
        between the unchanged neighbours when the run has them, else with slack."""
        lo = run.lo if run.exact_lo else max(0, run.lo - SLACK)
        hi = run.hi if run.exact_hi else min(self.parent.size, run.hi + SLACK)
        j = max(0, bisect.bisect_right(self.offsets, lo) - 1)
        out: list[bytes] = []
        total = 0
        limit = run.raw + MAX_EXTRA_PREFIX
        while j < len(self.offsets) and self.offsets[j] < hi and total < limit:
            d, n = self.parent.chunks[j]
            if self.offsets[j] + n > lo and d not in out:
                out.append(d)
                total += n
            j += 1
        return out


class DeltaEncoder:
    """Per commit: which chunks may serve as bases (their depth), and the read plans
    of the bases a batch's delta groups need (look-ups cached across batches)."""

    def __init__(self, repo: Repository) -> None:
        self.repo = repo
        self.max_depth = repo.config.deltas.max_depth
        self.frame_size = repo.config.deltas.frame_size
        self._depth: dict[bytes, int | None] = {}
        self._loc: dict[bytes, ChunkLoc] = {}
        self._frames: dict[tuple[bytes, int], DeltaInfo] = {}

    def for_file(self, parent: FileManifest) -> FileDeltas:
        return FileDeltas(parent, self.max_depth, self.frame_size)

    def groups(self, txn: lmdb.Transaction, fd: FileDeltas, runs: list[DeltaRun]) -> DeltaBatch:
        """Delta groups (only bases under the depth bound) with the read plan of their
        bases, and the new chunks left without any usable base."""
        out = DeltaBatch()
        for r in runs:
            usable: list[bytes] = []
            deepest = 0
            for b in fd.bases_of(r):
                d = self.depth(txn, b)
                if d is None or d >= self.max_depth:
                    continue
                usable.append(b)
                deepest = max(deepest, d)
            if usable:
                out.groups.append(DeltaGroup(r.first, r.count, tuple(usable), deepest + 1))
            else:
                out.plain.extend(range(r.first, r.first + r.count))
        wanted = list(dict.fromkeys(b for g in out.groups for b in g.bases))
        if not wanted:
            return out
        where = {b: i for i, b in enumerate(wanted)}
        out.joins = [[where[b] for b in g.bases] for g in out.groups]
        out.plan = chunks_plan(
            self.repo,
            txn,
            [(b, self._loc[b].length) for b in wanted],
            "delta bases",
            self._loc,
            self._frames,
        )
        from reprocas.remote.lazy import localize

        localize(self.repo, [out.plan])  # bases a lazy pull left on a remote: fetched
        return out

    def depth(self, txn: lmdb.Transaction, digest: bytes) -> int | None:
        if digest not in self._depth:
            loc = self.repo.index.get_chunk(txn, digest)
            if loc is None:
                self._depth[digest] = None
            else:
                self._loc[digest] = loc
                if loc.codec == CODEC_DELTA:
                    info = self._frames.get(loc.frame_key)
                    if info is None:
                        info = self.repo.index.get_delta(txn, loc)
                        if info is not None:
                            self._frames[loc.frame_key] = info
                    self._depth[digest] = info.depth if info is not None else None
                else:
                    self._depth[digest] = 0
        return self._depth[digest]


@dataclass
class DeltaBatch:
    """What :meth:`DeltaEncoder.groups` found: delta groups, for each the indices of
    its bases in ``plan`` (a read plan of every base), and chunks with no base."""

    groups: list[DeltaGroup] = field(default_factory=list)
    joins: list[list[int]] = field(default_factory=list)
    plan: ReadPlan | None = None
    plain: list[int] = field(default_factory=list)

    def prefixes(self) -> list[list[bytes]]:
        """Each group's bases' verified bytes (for callers outside a chunk batch)."""
        if self.plan is None:
            return [[] for _ in self.groups]
        p = self.plan
        data = core.read_chunks(p.packs, p.frames, p.chunks, bases=p.bases)
        return [[data[i] for i in j] for j in self.joins]
