"""What changed in a working directory since the version it was committed as.

A commit records where it came from (``extra.source``: the path and host, docs/FORMAT.md),
so a directory finds its dataset without being told. Files are compared cheaply first:
a different size is a change; a files-cache hit (same inode, mtime and size as when a
commit read it) gives the manifest without reading the file; only the rest are hashed
(BLAKE3, as the manifest's whole-file digest). Tables that changed also get their row
counts and schema compared (from the committed table record and the file's metadata).
"""

from __future__ import annotations

import mmap
import os
import socket
import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from reprocas import _core as core
from reprocas.errors import (
    InvalidParameterError,
    RefNotFoundError,
    SourceNotFoundError,
    known_names,
)
from reprocas.model.ids import ObjectId
from reprocas.model.objects import FileManifest, Snapshot, TableRecord, TreeEntry
from reprocas.progress import Progress
from reprocas.store.reachability import iter_tree
from reprocas.store.repository import Repository


@dataclass
class TableChange:
    """A changed table: row counts before and after, and whether the schema changed."""

    rows: tuple[int | None, int | None]
    schema_changed: bool

    def to_json(self) -> dict[str, Any]:
        return {"rows": list(self.rows), "schema_changed": self.schema_changed}


@dataclass
class Status:
    """The differences between PATH and a version (``ref`` None: nothing committed yet)."""

    path: str
    dataset: str
    ref: str | None
    id: str | None
    added: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    changed: list[str] = field(default_factory=list)
    tables: dict[str, TableChange] = field(default_factory=dict)
    sizes: dict[str, int] = field(default_factory=dict)  # working-copy sizes of added/changed
    hashed: int = 0  # files read to compare them
    cached: int = 0  # files the files cache vouched for
    pin: dict[str, Any] | None = None  # the dataset's pin (reprocas.notes.pins), if any

    @property
    def clean(self) -> bool:
        return not (self.added or self.removed or self.changed)

    @property
    def new_bytes_estimate(self) -> int:
        """At most this many bytes are new: the added and changed files' sizes (before
        deduplication against the store and compression)."""
        return sum(self.sizes.get(p, 0) for p in (*self.added, *self.changed))

    def to_json(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "dataset": self.dataset,
            "ref": self.ref,
            "id": self.id,
            "clean": self.clean,
            "added": self.added,
            "removed": self.removed,
            "changed": self.changed,
            "tables": {p: t.to_json() for p, t in self.tables.items()},
            "files_hashed": self.hashed,
            "files_cached": self.cached,
            "new_bytes_estimate": self.new_bytes_estimate,
            "pin": self.pin,
        }


def _source_of(snap: Snapshot) -> tuple[str, str] | None:
    src = snap.extra.get("source")
    if isinstance(src, dict) and isinstance(src.get("path"), str):
        return str(src["path"]), str(src.get("host") or "")
    return None


def datasets_from(repo: Repository, path: Path) -> list[str]:
    """Datasets whose latest version was committed from ``path`` on this host."""
    want = (os.fsdecode(path.resolve()), socket.gethostname())
    out: list[str] = []
    with repo.index.read() as txn:
        for name in repo.datasets(txn):
            latest = repo.latest(txn, name)
            if latest is None:
                continue
            snap = repo.load_snapshot(txn, latest[1])
            if snap.kind == "dataset" and _source_of(snap) == want:
                out.append(name)
    return out


def dataset_for(repo: Repository, path: Path) -> str:
    """The one dataset ``path`` was committed as; a clear error when there is none or
    more than one."""
    found = datasets_from(repo, path)
    if not found:
        raise RefNotFoundError(
            f"no dataset was committed from {path.resolve()} on this host; "
            "name it with --dataset NAME",
            ref=str(path),
        )
    if len(found) > 1:
        raise InvalidParameterError(
            f"{path.resolve()} was committed as {len(found)} datasets "
            f"({', '.join(found[:5])}); choose one with --dataset NAME"
        )
    return found[0]


def _working_entries(
    root: Path, st: os.stat_result, own: tuple[int, int]
) -> dict[str, tuple[Path, os.stat_result]]:
    """Every file and link below ``root`` (or ``root`` itself for a file) by relative
    path, with its stat; without recursion (trees can be deep)."""
    if stat.S_ISREG(st.st_mode):
        return {root.name: (root, st)}
    out: dict[str, tuple[Path, os.stat_result]] = {}
    stack = [(root, "")]
    while stack:
        d, rel = stack.pop()
        with os.scandir(d) as it:
            items = list(it)
        for de in items:
            s = de.stat(follow_symlinks=False)
            if stat.S_ISDIR(s.st_mode):
                if (s.st_dev, s.st_ino) != own:
                    stack.append((Path(de.path), f"{rel}{de.name}/"))
            elif stat.S_ISREG(s.st_mode) or stat.S_ISLNK(s.st_mode):
                out[rel + de.name] = (Path(de.path), s)
    return out


def _digest(path: Path) -> bytes:
    with open(path, "rb") as f:
        size = os.fstat(f.fileno()).st_size
        if size == 0:
            return core.blake3_digest(b"")
        with mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as m:
            return core.blake3_digest(m)


def status(
    repo: Repository,
    path: Path,
    dataset: str | None = None,
    *,
    progress: Progress | None = None,
    allow_new: bool = False,
) -> Status:
    """Compare ``path`` with the latest version of ``dataset`` (by default, the dataset
    ``path`` was committed as). ``progress`` hears of each file compared and the bytes
    hashed. ``allow_new``: a dataset without versions compares
    as empty (what `commit --dry-run` of a new dataset shows) instead of an error."""
    from reprocas.store.commit import cached_target
    from reprocas.tabular.formats import format_of
    from reprocas.tabular.inspect import inspect_file

    try:
        st = os.stat(path)
    except FileNotFoundError as exc:
        raise SourceNotFoundError(f"no such file or directory: {path}", path=str(path)) from exc
    name = dataset or dataset_for(repo, path)
    rst = os.stat(repo.root)
    work = _working_entries(path.resolve(), st, (rst.st_dev, rst.st_ino))
    prog = progress or Progress()
    prog.start(0, len(work))  # the bytes to hash are known only as files are compared
    index = repo.index
    with index.read() as txn:
        latest = repo.latest(txn, name)
        if latest is None and not allow_new:
            raise RefNotFoundError(
                f"unknown dataset {name!r}; {known_names(repo.datasets(txn))}", ref=name
            )
        committed: dict[str, TreeEntry] = {}
        if latest is not None:
            snap = repo.load_snapshot(txn, latest[1])
            for rel, e in iter_tree(repo, txn, snap.root.raw):
                if e.kind != "dir":
                    committed[rel] = e
            if snap.source == "file" and len(committed) == 1 and len(work) == 1:
                # A single-file version compares with the file whatever its name now.
                [only] = committed.values()
                committed = {next(iter(work)): only}
        out = Status(
            path=os.fsdecode(path.resolve()),
            dataset=name,
            ref=f"{name}@v{latest[0]}" if latest else None,
            id=latest[1].hex if latest else None,
        )
        from reprocas.notes.pins import get_pin

        p = get_pin(repo, txn, name)
        if p is not None:
            out.pin = {
                **p.to_json(),
                "latest_is_pinned": latest is not None and latest[1] == p.version,
            }
        for rel in sorted(set(work) | set(committed)):
            w, found = work.get(rel), committed.get(rel)
            if w is not None:
                prog.file_done()
            if found is None:
                assert w is not None  # in one of the two
                out.added.append(rel)
                out.sizes[rel] = w[1].st_size
                continue
            if w is None:
                out.removed.append(rel)
                continue
            e = found
            wpath, ws = w
            if stat.S_ISLNK(ws.st_mode):
                same = e.kind == "symlink" and os.fsencode(os.readlink(wpath)) == e.target
            elif e.kind != "file" or ws.st_size != e.size or stat.S_IMODE(ws.st_mode) != e.mode:
                same = False
            else:
                hit = cached_target(repo, txn, wpath, ws)
                if hit is not None:
                    out.cached += 1
                    same = hit == e.target
                else:
                    out.hashed += 1
                    if repo.content_ids:
                        same = e.target == _digest(wpath)
                    else:
                        obj = repo.load(txn, ObjectId(e.target))
                        same = isinstance(obj, FileManifest) and obj.digest == _digest(wpath)
                    prog.advance(ws.st_size)
            if same:
                continue
            out.changed.append(rel)
            out.sizes[rel] = ws.st_size
            table = repo.entry_table(txn, e) if e.kind == "file" else None
            if table is not None and format_of(rel) is not None:
                before = repo.load(txn, ObjectId(table))
                after = inspect_file(wpath) if stat.S_ISREG(ws.st_mode) else None
                if isinstance(before, TableRecord):
                    out.tables[rel] = TableChange(
                        rows=(before.rows, after.rows if after else None),
                        schema_changed=after is None or after.fingerprint != before.fingerprint,
                    )
    return out
