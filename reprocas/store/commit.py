"""Commit a directory or a file as the next version of a named dataset."""

from __future__ import annotations

import contextlib
import errno
import getpass
import os
import socket
import stat
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

import lmdb

from reprocas.errors import (
    ReprocasError,
    SourceChangedError,
    SourceError,
    SourceIsDirectoryError,
    SourceNotFoundError,
    SourcePermissionError,
)
from reprocas.model.chunking import SMALL_FILE
from reprocas.model.ids import ObjectId
from reprocas.model.objects import FileManifest, Snapshot, TableRecord, TreeEntry
from reprocas.native import core
from reprocas.progress import Progress
from reprocas.store.deltas import GIVE_UP_AFTER, DeltaBatch, DeltaEncoder, DeltaRun, FileDeltas
from reprocas.store.files import TABLES, lookup_chunkmap, store_file
from reprocas.store.index import pack, unpack
from reprocas.store.overlap import refuse as refuse_overlap
from reprocas.store.packs import CODEC_DELTA
from reprocas.store.reachability import iter_tree
from reprocas.store.repository import (
    Repository,
    check_dataset_name,
    check_tag_name,
    tag_ref,
    version_ref,
)
from reprocas.store.writer import Writer


@dataclass(frozen=True, slots=True)
class CommitResult:
    """What a commit did. ``created`` is False when the content equalled the latest."""

    ref: str
    id: ObjectId
    name: str
    number: int
    files: int
    logical_bytes: int
    new_bytes: int
    created: bool
    skipped: tuple[str, ...] = ()
    # Files that changed while they were read, stored as read (``allow_changing``).
    changed: tuple[str, ...] = ()


Frame = tuple[int, bytes, int, int, int]  # (codec, payload, first, count, raw_len)

# Bytes per batch read from a file (None: the native default, 4 MiB); tests make it
# small to exercise many batches on small files.
BLOCK_SIZE: int | None = None

# After this many delta groups of a file, its deltas are compressed on a worker thread
# while the next batch is planned.
PIPELINE_AFTER = 48

# Files at least this large have their table record taken on a worker thread while
# they are chunked and compressed (smaller ones inline: a thread hop costs more).
INSPECT_ASYNC_BYTES = 4 << 20

# The key under which a single-file version's one file is found (see load_parent).
SINGLE_FILE = ""

Inspector = Callable[[Path], TableRecord | None]
"""Given a committed file, its table record (schema, rows) or None; see reprocas.tabular."""


@dataclass
class _Source:
    path: Path
    rel: str
    st: os.stat_result


@dataclass
class _Stats:
    files: int = 0
    logical_bytes: int = 0
    skipped: list[str] = field(default_factory=list)


@dataclass
class _Dir:
    """A directory being committed: what is left of its listing, its entries so far."""

    path: Path
    rel: str
    name: str
    mode: int
    items: Iterator[os.DirEntry[str]]
    entries: list[TreeEntry] = field(default_factory=list)


@dataclass
class _Read:
    """One read of a source file and whether it changed meanwhile."""

    chunks: list[tuple[bytes, int]]
    size: int
    digest: bytes
    record: TableRecord | None
    before: os.stat_result
    changed: bool


def _same_file(a: os.stat_result, b: os.stat_result) -> bool:
    """Same inode, size and times: nothing wrote to it in between."""
    return (a.st_dev, a.st_ino, a.st_size, a.st_mtime_ns, a.st_ctime_ns) == (
        b.st_dev,
        b.st_ino,
        b.st_size,
        b.st_mtime_ns,
        b.st_ctime_ns,
    )


def _utf8_name(name: str, path: str) -> str:
    try:
        name.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise SourceError(
            f"{path!r} has a name that is not valid UTF-8; rename it to commit it", path=path
        ) from exc
    return name


def _cache_key(path: bytes) -> bytes:
    """The files cache key of an absolute path: the path, or for one longer than an
    LMDB key may be (deep trees) a NUL (in no path) and the path's digest."""
    return path if len(path) <= 400 else b"\0" + core.blake3_digest(path)


def cached_target(
    repo: Repository, txn: lmdb.Transaction, path: Path, st: os.stat_result
) -> bytes | None:
    """What the files cache says a tree entry for ``path`` (as ``st`` finds it) names:
    the manifest id (format 1/2) or the file digest (format 3); None when the cache has
    no entry or the file changed since (inode, mtime, size). The value's layout is
    ``[inode, mtime_ns, size, manifest or chunk map id, table record id, file digest]``."""
    raw = txn.get(_cache_key(os.fsencode(path)), db=repo.index.db["filecache"])
    if raw is None:
        return None
    ino, mtime_ns, size, mid, *rest = unpack(raw)
    if (ino, mtime_ns, size) != (st.st_ino, st.st_mtime_ns, st.st_size):
        return None
    if not repo.content_ids:
        return bytes(mid)
    return bytes(rest[1]) if len(rest) > 1 and rest[1] is not None else None


def _oserror(exc: OSError, path: str) -> SourceError:
    if isinstance(exc, FileNotFoundError):
        return SourceNotFoundError(f"{path} vanished while it was being committed", path=path)
    if isinstance(exc, PermissionError):
        return SourcePermissionError(
            f"permission denied reading {path}: check its permissions", path=path
        )
    return SourceError(f"cannot read {path}: {exc.strerror or exc}", path=path)


class _Committer:
    def __init__(
        self,
        repo: Repository,
        writer: Writer,
        progress: Progress | None,
        inspect: Inspector | None = None,
        allow_changing: bool = False,
    ) -> None:
        self.repo = repo
        self.inspect = inspect
        self.allow_changing = allow_changing
        self.changed: list[str] = []
        self.writer = writer
        self.progress = progress or Progress()
        self.stats = _Stats()
        self.start_ns = time.time_ns()
        self.cache_updates: list[tuple[bytes, list[object]]] = []
        self.level = repo.config.compression.level
        self.frame_size = repo.config.compression.frame_size
        self.deltas: DeltaEncoder | None = None
        self._executor: ThreadPoolExecutor | None = None
        self._job: tuple[Future[list[Frame]], core.ChunkBatch, FileDeltas, DeltaBatch] | None = None
        self._inflight: set[bytes] = set()  # chunks of the job in flight
        self._inspector: ThreadPoolExecutor | None = None  # table records of large files
        self.parent_files: dict[str, bytes] = {}
        self.parent_sizes: dict[str, int] = {}
        self.parent_source = ""
        self.source_path = ""  # recorded in the snapshot, for `reprocas status`
        # The repository itself is never part of what it stores (`commit .` in a project
        # whose .reprocas/ lives inside it).
        rst = os.stat(repo.root)
        self.own = (rst.st_dev, rst.st_ino)

    # -- files cache ---------------------------------------------------------------------

    def cached_manifest(
        self, path: Path, st: os.stat_result
    ) -> tuple[bytes, int, bytes | None] | None:
        key = _cache_key(os.fsencode(path))
        index = self.repo.index
        with index.read() as txn:
            raw = txn.get(key, db=index.db["filecache"])
            if raw is None:
                return None
            ino, mtime_ns, size, mid, *rest = unpack(raw)
            meta = bytes(rest[0]) if rest and rest[0] is not None else None
            if (ino, mtime_ns, size) != (st.st_ino, st.st_mtime_ns, st.st_size):
                return None
            if not index.has_object(txn, mid):
                return None
            if self.inspect is not None and rest == []:
                return None  # cached before tables were inspected: read it again
            if meta is not None and not index.has_object(txn, meta):
                return None
            if self.repo.content_ids:
                # Format 3: the entry names the digest; its chunk map (and table
                # record) must still be what the index finds for it.
                digest = bytes(rest[1]) if len(rest) > 1 and rest[1] is not None else None
                if digest is None or lookup_chunkmap(self.repo, txn, digest) != bytes(mid):
                    return None
                if meta is not None and txn.get(digest, db=index.db[TABLES]) != meta:
                    return None
                return digest, size, None
        return bytes(mid), size, meta

    # -- the data ------------------------------------------------------------------------

    def _file_deltas(self, rel: str) -> FileDeltas | None:
        """The aligner against the parent version's copy of this file, if any."""
        if self.deltas is None:
            return None
        mid = self.parent_files.get(rel)
        if mid is None:
            return None
        with self.repo.index.read() as txn:
            try:
                parent = self.repo.load_manifest(txn, ObjectId(mid))
            except ReprocasError:
                return None  # the parent's data is gone or damaged: store plainly
        return self.deltas.for_file(parent)

    def _deltas(
        self,
        txn: lmdb.Transaction,
        batch: core.ChunkBatch,
        fd: FileDeltas,
        runs: list[DeltaRun],
    ) -> list[int]:
        """Store runs of new chunks as delta frames where that pays; returns the
        chunks left to compress plainly. A file's first runs go in small slices, so
        that a file deltas do not help (fd.paying) stops trying early."""
        assert self.deltas is not None
        rest: list[int] = []
        at = 0
        if fd.tried >= PIPELINE_AFTER and fd.paying:
            # Proven to pay: this batch's deltas are compressed on a worker thread
            # (GIL-free) while the next batch is read, looked up and planned.
            found = self.deltas.groups(txn, fd, runs)
            if found.plan is not None:
                self._submit_job(batch, fd, found)
            return found.plain
        while at < len(runs):
            if not fd.paying:
                rest += [i for r in runs[at:] for i in range(r.first, r.first + r.count)]
                break
            # Small slices while a file's deltas are unproven, then growing ones.
            part = runs[at : at + max(GIVE_UP_AFTER, fd.tried)]
            at += len(part)
            found = self.deltas.groups(txn, fd, part)
            rest += found.plain
            if found.plan is not None:
                self._submit_job(batch, fd, found)
                self._finish_job()  # its outcome decides whether to go on
        return rest

    def _submit_job(self, batch: core.ChunkBatch, fd: FileDeltas, found: DeltaBatch) -> None:
        """Compress a batch's delta groups on the worker thread (after storing the
        frames of the job before it)."""
        self._finish_job()
        if self._executor is None:
            self._executor = ThreadPoolExecutor(1, thread_name_prefix="reprocas-delta")
        p = found.plan
        assert p is not None
        future = self._executor.submit(
            batch.compress_delta_stored,
            p.packs,
            p.frames,
            p.chunks,
            [(g.first, g.count, j) for g, j in zip(found.groups, found.joins, strict=True)],
            self.level,
            p.bases,
        )
        digests = batch.digests
        for g in found.groups:
            self._inflight.update(digests[g.first : g.first + g.count])
        self._job = (future, batch, fd, found)

    def _finish_job(self) -> None:
        """Store the frames of the delta job in flight, if any (re-raising its error)."""
        if self._job is None:
            return
        future, batch, fd, found = self._job
        self._job = None
        self._inflight.clear()
        frames = future.result()
        for g, frame in zip(found.groups, frames, strict=True):
            self._add_frame(batch.digests, batch.lengths, *frame, bases=g.bases, depth=g.depth)
        fd.record(frames)

    def close(self) -> None:
        """Wait for the delta job in flight (its result is not wanted after an error)."""
        if self._job is not None:
            self._job[0].exception()
            self._job = None
        if self._executor is not None:
            self._executor.shutdown(wait=True)
            self._executor = None
        if self._inspector is not None:
            self._inspector.shutdown(wait=True)
            self._inspector = None

    def _add_frame(
        self,
        digests: list[bytes],
        lengths: list[int],
        codec_id: int,
        payload: bytes,
        first: int,
        count: int,
        raw_len: int,
        bases: tuple[bytes, ...] = (),
        depth: int = 0,
    ) -> None:
        entries = []
        off = 0
        for i in range(first, first + count):
            entries.append((digests[i], off, lengths[i]))
            off += lengths[i]
        if codec_id == CODEC_DELTA:
            self.writer.add_frame(codec_id, payload, raw_len, entries, bases, depth)
        else:
            self.writer.add_frame(codec_id, payload, raw_len, entries)

    def match_moved(self, files: list[_Source]) -> None:
        """A file that is new at its path but looks like one the parent version had and
        this one lacks (renamed or moved: same suffix, size within 2x — the closest
        size wins) takes that file as its parent, so its chunks can still be deltas."""
        if not self.parent_files:
            return
        here = {f.rel for f in files}
        gone = {p: self.parent_sizes.get(p, 0) for p in self.parent_files if p not in here}
        for f in files:
            if f.rel in self.parent_files or not gone:
                continue
            suffix = PurePosixPath(f.rel).suffix
            size = f.st.st_size
            best = min(
                (
                    (abs(n - size), p)
                    for p, n in gone.items()
                    if PurePosixPath(p).suffix == suffix and n and size and 0.5 <= size / n <= 2
                ),
                default=None,
            )
            if best is not None:
                self.parent_files[f.rel] = self.parent_files[best[1]]
                del gone[best[1]]

    def load_parent(self, parent: ObjectId | None) -> None:
        """Remember which manifest each path had in the parent version (delta bases)."""
        if parent is None or not self.repo.config.deltas.enabled:
            return
        self.deltas = DeltaEncoder(self.repo)
        with self.repo.index.read() as txn:
            try:
                snap = self.repo.load_snapshot(txn, parent)
                self.parent_source = snap.source
                self._walk_parent(txn, snap.root.raw, "")
            except ReprocasError:
                self.parent_files.clear()

    def _walk_parent(self, txn: lmdb.Transaction, tid: bytes, prefix: str) -> None:
        tree = self.repo.load_tree(txn, ObjectId(tid))
        for path, e in iter_tree(self.repo, txn, tid, prefix):
            if e.kind == "file":
                self.parent_files[path] = self.repo.entry_object(txn, e).raw
                self.parent_sizes[path] = e.size
        if prefix == "" and self.parent_source == "file" and len(tree.entries) == 1:
            # A single-file version: its one file is the parent of whatever file is
            # committed next under this name, renamed or not.
            self.parent_files[SINGLE_FILE] = self.repo.entry_object(txn, tree.entries[0]).raw

    def ingest_file(
        self, path: Path, st: os.stat_result, rel: str = SINGLE_FILE
    ) -> tuple[bytes, int, bytes | None]:
        """Store the file's new chunks; returns its manifest id and the size read.

        A file that changes while it is read (size, times or inode differ before and
        after, as borg and restic check) is read once more; if it changes again the
        commit fails (SourceChangedError), unless ``allow_changing``, which stores the
        second read and records the file in the snapshot's ``changed_during_read``."""
        cached = self.cached_manifest(path, st)
        self.progress.file_done()
        if cached is not None:
            return cached
        read = self._read_file(path, rel)
        if read.changed:
            read = self._read_file(path, rel)
        if read.changed:
            if not self.allow_changing:
                raise SourceChangedError(
                    f"{path} changed while it was being read (twice: its size, times or "
                    "inode differ before and after the read); nothing was committed. "
                    "Commit it when nothing writes to it, or pass --allow-changing to "
                    "store what was read",
                    path=str(path),
                )
            self.changed.append(rel or path.name)
        manifest = FileManifest(read.size, read.digest, tuple(read.chunks))
        target, oid, meta = store_file(self.repo, self.writer, manifest, read.record)
        table = meta if not self.repo.content_ids else self.writer.table_keys.get(read.digest)
        # Cache only what cannot have changed since we read it: same stat afterwards,
        # and not modified after this commit began (ns-precision mtimes).
        if (
            not read.changed
            and _same_file(read.before, st)
            and st.st_mtime_ns < self.start_ns
            and read.size == st.st_size
        ):
            value: list[object] = [st.st_ino, st.st_mtime_ns, st.st_size, oid.raw, table]
            if self.repo.content_ids:
                value.append(read.digest)
            self.cache_updates.append((os.fsencode(path), value))
        return target, read.size, meta

    def _read_file(self, path: Path, rel: str) -> _Read:
        """Chunk and store one file, with its stat taken before (on an open descriptor)
        and after (descriptor and path) the read and the table inspection."""
        try:
            # O_NONBLOCK: a regular file swapped for a FIFO since the scan must not hang.
            fd_ = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOFOLLOW)
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                raise SourceError(f"{path} became a symbolic link while being committed") from exc
            raise _oserror(exc, str(path)) from exc
        try:
            before = os.fstat(fd_)
            if not stat.S_ISREG(before.st_mode):
                raise SourceError(
                    f"{path} is no longer a regular file; nothing was committed", path=str(path)
                )
            # The table record (a CSV's record count is a pass over the whole file) is
            # taken on a worker thread while the file is chunked and compressed.
            pending = self._inspect_async(path, before.st_size)
            try:
                chunks, size, digest = self._chunk_file(path, rel, before.st_size)
            except BaseException:
                if pending is not None and not pending.cancel():
                    pending.exception()  # wait for it; the read's error is the one raised
                raise
            if pending is not None:
                record = pending.result()
            else:
                record = self.inspect(path) if self.inspect is not None else None
            after_fd = os.fstat(fd_)
        finally:
            os.close(fd_)
        try:
            after: os.stat_result | None = os.stat(path)
        except OSError:
            after = None  # gone or replaced: the next read says what it is now
        changed = (
            size != before.st_size
            or not _same_file(before, after_fd)
            or after is None
            or not _same_file(before, after)
        )
        return _Read(chunks, size, digest, record, before, changed)

    def _inspect_async(self, path: Path, size: int) -> Future[TableRecord | None] | None:
        """Start the table inspection of a large file on the inspect thread (None:
        inspect inline, as a thread hop costs more than a small file's inspection)."""
        if self.inspect is None or size < INSPECT_ASYNC_BYTES:
            return None
        if self._inspector is None:
            self._inspector = ThreadPoolExecutor(1, thread_name_prefix="reprocas-inspect")
        return self._inspector.submit(self.inspect, path)

    def _chunk_file(
        self, path: Path, rel: str, size_hint: int
    ) -> tuple[list[tuple[bytes, int]], int, bytes]:
        index = self.repo.index
        # Small files share frames with their neighbours (Writer.add_shared).
        small = size_hint < SMALL_FILE
        chunks: list[tuple[bytes, int]] = []
        fd = self._file_deltas(rel)
        try:
            fc = (
                core.FileChunker(path, self.repo.params, block_size=BLOCK_SIZE)
                if BLOCK_SIZE
                else core.FileChunker(path, self.repo.params)
            )
            for batch in fc:
                digests = batch.digests
                lengths = batch.lengths
                new: list[int] = []
                seen: set[bytes] = set()
                with index.read() as txn:
                    for i, d in enumerate(digests):
                        if d in seen or d in self._inflight or self.writer.is_known_chunk(txn, d):
                            continue
                        seen.add(d)
                        new.append(i)
                    if new and fd is not None and fd.paying:
                        runs, plain = fd.plan(digests, lengths, new)
                        new = sorted(plain + self._deltas(txn, batch, fd, runs))
                    elif fd is not None:
                        fd.plan(digests, lengths, [])
                if new and small:
                    for i in new:
                        self.writer.add_shared(digests[i], batch.chunk(i))
                elif new:
                    for frame in batch.compress(new, self.level, self.frame_size):
                        self._add_frame(digests, lengths, *frame)
                chunks.extend(zip(digests, lengths, strict=True))
                self.progress.advance(batch.size)
            self._finish_job()
        except SourceIsDirectoryError:
            raise
        except (SourceNotFoundError, SourcePermissionError) as exc:
            raise type(exc)(str(exc), path=str(path)) from exc
        assert fc.file_digest is not None and fc.size is not None
        return chunks, fc.size, fc.file_digest

    # -- the tree ------------------------------------------------------------------------

    def scan(self, root: Path) -> list[_Source]:
        """Every regular file below ``root`` (for the progress total); without
        recursion, as a tree may be thousands of levels deep."""
        out: list[_Source] = []
        stack = [(root, "")]
        while stack:
            d, rel = stack.pop()
            try:
                with os.scandir(d) as it:
                    items = list(it)
            except OSError as exc:
                raise _oserror(exc, str(d)) from exc
            for de in items:
                try:
                    st = de.stat(follow_symlinks=False)
                except OSError as exc:
                    raise _oserror(exc, de.path) from exc
                if stat.S_ISDIR(st.st_mode):
                    if (st.st_dev, st.st_ino) != self.own:
                        stack.append((Path(de.path), f"{rel}{de.name}/"))
                elif stat.S_ISREG(st.st_mode):
                    out.append(_Source(Path(de.path), rel + de.name, st))
        return out

    def to_read(self, files: list[_Source]) -> int:
        return sum(s.st.st_size for s in files if self.cached_manifest(s.path, s.st) is None)

    def commit_dir(self, root: Path) -> bytes:
        """The tree of directory ``root``: files stored depth first in name order, each
        directory's tree written once what it holds is. Without recursion, as a tree
        may be thousands of levels deep."""
        stack = [_Dir(root, "", "", 0, self._listing(root))]
        while True:
            top = stack[-1]
            de = next(top.items, None)
            if de is None:
                tid = self.writer.add_object(self.repo.new_tree(top.entries).to_wire()).raw
                stack.pop()
                if not stack:
                    return tid
                stack[-1].entries.append(TreeEntry(top.name, "dir", top.mode, tid))
                continue
            name = _utf8_name(de.name, de.path)
            try:
                st = de.stat(follow_symlinks=False)
            except OSError as exc:
                raise _oserror(exc, de.path) from exc
            mode = stat.S_IMODE(st.st_mode)
            if stat.S_ISLNK(st.st_mode):
                target = os.readlink(de.path)
                top.entries.append(TreeEntry(name, "symlink", 0o777, os.fsencode(target)))
            elif stat.S_ISDIR(st.st_mode):
                if (st.st_dev, st.st_ino) == self.own:
                    continue
                sub = Path(de.path)
                stack.append(_Dir(sub, f"{top.rel}{name}/", name, mode, self._listing(sub)))
            elif stat.S_ISREG(st.st_mode):
                mid, size, meta = self.ingest_file(Path(de.path), st, top.rel + name)
                top.entries.append(TreeEntry(name, "file", mode, mid, size, meta))
                self.stats.files += 1
                self.stats.logical_bytes += size
            else:
                self.stats.skipped.append(de.path)

    @staticmethod
    def _listing(d: Path) -> Iterator[os.DirEntry[str]]:
        try:
            with os.scandir(d) as it:
                items = sorted(it, key=lambda e: e.name.encode("utf-8", "surrogateescape"))
        except OSError as exc:
            raise _oserror(exc, str(d)) from exc
        return iter(items)

    def commit_file(self, path: Path, st: os.stat_result) -> bytes:
        mid, size, meta = self.ingest_file(path, st)
        self.stats.files = 1
        self.stats.logical_bytes = size
        name = _utf8_name(path.name, str(path))
        entry = TreeEntry(name, "file", stat.S_IMODE(st.st_mode), mid, size, meta)
        return self.writer.add_object(self.repo.new_tree([entry]).to_wire()).raw

    def save_cache(self) -> None:
        """Remember what was read; best effort, since the commit itself is complete."""
        if not self.cache_updates:
            return
        index = self.repo.index
        with index.write() as txn:
            for key, value in self.cache_updates:
                txn.put(_cache_key(key), pack(value), db=index.db["filecache"])


def commit(
    repo: Repository,
    src: Path,
    name: str,
    *,
    message: str = "",
    tags: tuple[str, ...] = (),
    step: str | None = None,
    author: str | None = None,
    kind: str = "dataset",
    progress: Progress | None = None,
    inspect: Inspector | None = None,
    derived_from: tuple[ObjectId, ...] = (),
    in_txn: Callable[[lmdb.Transaction, ObjectId], None] | None = None,
    allow_changing: bool = False,
) -> CommitResult:
    """Commit ``src`` (a directory or a file) as the next version of dataset ``name``.

    A file that keeps changing while it is read fails the commit (exit 3) unless
    ``allow_changing``: then what was read is stored and the file is named in the
    snapshot's ``changed_during_read`` (and in the result's ``changed``).

    ``derived_from`` names the versions this one was derived from (``--from``, with
    ``step`` saying how); they are recorded in the snapshot. ``in_txn`` is called inside
    the transaction that moves the refs, when a new version is made (the provenance
    layer writes its edges there)."""
    check_dataset_name(name)
    for t in tags:
        check_tag_name(t)
    try:
        st = os.stat(src)
    except FileNotFoundError as exc:
        raise SourceNotFoundError(f"no such file or directory: {src}", path=str(src)) from exc
    except OSError as exc:
        raise _oserror(exc, str(src)) from exc
    # The repository is never part of what it stores: a source that is it, lies in it
    # or holds it is refused (the walk also skips it, see _Committer.own).
    refuse_overlap(repo.root, src, "commit", ("is", "inside", "holds"))
    src = src.resolve()
    if not (stat.S_ISDIR(st.st_mode) or stat.S_ISREG(st.st_mode)):
        raise SourceError(f"{src} is neither a directory nor a regular file", path=str(src))
    if author is None:
        try:
            author = f"{getpass.getuser()}@{socket.gethostname()}"
        except Exception:
            author = "unknown"

    with repo.lock("gc", exclusive=False):
        writer = Writer(repo)
        c = _Committer(repo, writer, progress, inspect, allow_changing)
        c.source_path = os.fsdecode(src)
        try:
            with repo.index.read() as txn:
                latest = repo.latest(txn, name)
            c.load_parent(latest[1] if latest else None)
            if stat.S_ISDIR(st.st_mode):
                files = c.scan(src)
                c.match_moved(files)
                c.progress.start(c.to_read(files), len(files))
                root = c.commit_dir(src)
                source = "dir"
            else:
                c.progress.start(st.st_size, 1)
                root = c.commit_file(src, st)
                source = "file"
            result = _finish(
                repo,
                writer,
                c,
                name,
                ObjectId(root),
                source,
                message,
                tags,
                step,
                author,
                kind,
                derived_from,
                in_txn,
            )
        except BaseException as exc:
            c.close()
            left = writer.abort()
            if left and isinstance(exc, ReprocasError):
                _note_leftover(exc, left)
            raise
        finally:
            c.close()
            writer.close()
        # The version exists now; the files cache is only an optimisation, so failing to
        # save it (a full disk, say) is no reason to report the commit as failed.
        with contextlib.suppress(ReprocasError):
            c.save_cache()
        return result


def finish_snapshot(
    repo: Repository,
    writer: Writer,
    *,
    name: str,
    root: ObjectId,
    kind: str,
    source: str,
    message: str,
    tags: tuple[str, ...],
    step: str | None,
    author: str,
    files: int,
    logical_bytes: int,
    extra: dict[str, object] | None = None,
    same: Callable[[Snapshot], bool] | None = None,
    in_txn: Callable[[lmdb.Transaction, ObjectId], None] | None = None,
) -> tuple[bool, int, ObjectId, Snapshot]:
    """Write the snapshot and move the refs — the last step of every write.

    When the latest version of ``name`` is the same (by default: the same root tree; a
    caller may judge by more with ``same``), no version is made and the tags move to it.
    Retried if another writer moved the refs first. Returns (created, number, id, the
    snapshot that ``name``'s latest version now is).
    """
    index = repo.index
    is_same = same or (lambda snap: snap.root == root)
    while True:
        with index.read() as txn:
            latest = repo.latest(txn, name)
            if latest is not None:
                latest_snap = repo.load_snapshot(txn, latest[1])
                if is_same(latest_snap):
                    writer.seal()
                    _tag(repo, name, latest[1], tags)
                    return False, latest[0], latest[1], latest_snap
            number = repo.next_number(txn, name)
        snap = Snapshot(
            kind=kind,
            name=name,
            root=root,
            parent=latest[1] if latest else None,
            time_ns=time.time_ns(),
            author=author,
            message=message,
            step=step,
            source=source,
            files=files,
            logical_bytes=logical_bytes,
            extra={"version": number, "tags": list(tags), **(extra or {})},
        )
        sid = writer.add_object(snap.to_wire())
        writer.seal_packs()
        refs = [(version_ref(name, number), sid)] + [(tag_ref(name, t), sid) for t in tags]
        raced = False
        with repo.ref_transaction() as rt:
            if repo.latest(rt.txn, name) != latest or repo.next_number(rt.txn, name) != number:
                raced = True  # another writer of this name won: redo on top of it
            else:
                # The new packs are indexed in the transaction that moves the ref: until
                # it commits no one else can use them, so a failure removes them all.
                writer.index_into(rt.txn)
                # Logged inside the write transaction: the log's order is the commit order.
                rt.set(refs)
                rt.txn.put(sid.raw, pack([kind, name, number]), db=index.db["snapshots"])
                if in_txn is not None:
                    in_txn(rt.txn, sid)
        if not raced:
            writer.indexed()
            return True, number, sid, snap


def _finish(
    repo: Repository,
    writer: Writer,
    c: _Committer,
    name: str,
    root: ObjectId,
    source: str,
    message: str,
    tags: tuple[str, ...],
    step: str | None,
    author: str,
    kind: str,
    derived_from: tuple[ObjectId, ...] = (),
    in_txn: Callable[[lmdb.Transaction, ObjectId], None] | None = None,
) -> CommitResult:
    extra: dict[str, object] = {}
    if derived_from:
        extra["derived_from"] = [d.raw for d in derived_from]
    if c.changed:
        extra["changed_during_read"] = sorted(c.changed)
    if c.source_path:
        # Where the version came from, so `status` and `commit` without --dataset find it.
        extra["source"] = {"path": c.source_path, "host": socket.gethostname()}
    created, number, sid, snap = finish_snapshot(
        repo,
        writer,
        name=name,
        root=root,
        kind=kind,
        source=source,
        message=message,
        tags=tags,
        step=step,
        author=author,
        files=c.stats.files,
        logical_bytes=c.stats.logical_bytes,
        extra=extra or None,
        in_txn=in_txn,
    )
    return CommitResult(
        ref=f"{name}@v{number}",
        id=sid,
        name=name,
        number=number,
        files=snap.files,
        logical_bytes=snap.logical_bytes,
        new_bytes=writer.new_bytes,
        created=created,
        skipped=tuple(c.stats.skipped),
        changed=tuple(sorted(c.changed)),
    )


def _note_leftover(exc: ReprocasError, left: int) -> None:
    """Say in a failed commit's error what it could not remove (gc reclaims it)."""
    exc.message += (
        f" ({left} bytes written by this commit could not be removed; `reprocas gc` reclaims them)"
    )
    exc.args = (exc.message, *exc.args[1:])


def _tag(repo: Repository, name: str, sid: ObjectId, tags: tuple[str, ...]) -> None:
    if not tags:
        return
    with repo.ref_transaction() as rt:
        rt.set([(tag_ref(name, t), sid) for t in tags])


def add_tag(repo: Repository, name: str, sid: ObjectId, tag: str) -> None:
    """Point ``NAME@TAG`` at a version (moving it if it pointed elsewhere)."""
    check_tag_name(tag)
    _tag(repo, name, sid, (tag,))
