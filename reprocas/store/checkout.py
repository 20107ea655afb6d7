"""Read versions back: check out exact bytes and modes, or stream one file."""

from __future__ import annotations

import os
import stat
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import lmdb

from reprocas.errors import (
    CorruptDataError,
    DestinationError,
    IntegrityError,
    PathNotInVersionError,
    SpecialModeError,
    StorageIOError,
    UnsafePathError,
)
from reprocas.model.ids import ObjectId
from reprocas.model.objects import FileManifest, TreeEntry
from reprocas.native import core
from reprocas.progress import Progress
from reprocas.remote.lazy import localize as remote_localize
from reprocas.remote.lazy import reading as remote_reads
from reprocas.store import grouped, lease
from reprocas.store.index import ChunkLoc, DeltaInfo
from reprocas.store.overlap import refuse as refuse_overlap
from reprocas.store.packs import CODEC_DELTA
from reprocas.store.repository import Repository, Version
from reprocas.store.stale import Stale, find_stale, remove


@dataclass(frozen=True, slots=True)
class ReadPlan:
    """Everything the native core needs to assemble one file: packs, frames, the
    file's chunks as slices of frames, and for delta frames their bases (slices of
    other frames of the plan, decoded first)."""

    packs: list[Path]
    frames: list[tuple[int, int, int, int, int]]
    chunks: list[tuple[int, int, int, bytes]]
    bases: dict[int, list[tuple[int, int, int]]] = field(default_factory=dict)


def read_plan(
    repo: Repository, txn: lmdb.Transaction, manifest: FileManifest, label: str
) -> ReadPlan:
    return chunks_plan(repo, txn, manifest.chunks, label)


def read_chunks(
    repo: Repository, txn: lmdb.Transaction, chunks: Sequence[tuple[bytes, int]], label: str
) -> list[bytes]:
    """The verified bytes of stored chunks, in order, decoded natively (delta frames
    after their bases, every frame once)."""
    if not chunks:
        return []
    plan = chunks_plan(repo, txn, chunks, label)
    try:
        with remote_reads(repo) as use:
            use.localize([plan])
            try:
                return core.read_chunks(plan.packs, plan.frames, plan.chunks, bases=plan.bases)
            except CorruptDataError:
                use.forget(plan.packs)  # a damaged cache copy is fetched again next time
                raise
    except CorruptDataError as exc:
        raise CorruptDataError(
            f"{label}: stored data is damaged ({exc}); run `reprocas verify --read-data`"
        ) from exc


def chunks_plan(
    repo: Repository,
    txn: lmdb.Transaction,
    chunk_list: Sequence[tuple[bytes, int]],
    label: str,
    known: dict[bytes, ChunkLoc] | None = None,
    deltas: dict[tuple[bytes, int], DeltaInfo] | None = None,
) -> ReadPlan:
    """The read plan of any chunks (a file's, or bases for a delta). ``known`` and
    ``deltas`` are caches of index look-ups a caller keeps across plans (filled here)."""
    known = {} if known is None else known
    deltas = {} if deltas is None else deltas

    def loc_of(digest: bytes) -> ChunkLoc | None:
        loc = known.get(digest)
        if loc is None:
            loc = repo.index.get_chunk(txn, digest)
            if loc is not None:
                known[digest] = loc
        return loc

    packs: list[Path] = []
    pack_ix: dict[bytes, int] = {}
    frames: list[tuple[int, int, int, int, int]] = []
    frame_ix: dict[tuple[bytes, int], int] = {}
    chunks: list[tuple[int, int, int, bytes]] = []
    bases: dict[int, list[tuple[int, int, int]]] = {}

    def frame_of(loc: ChunkLoc) -> int:
        fkey = loc.frame_key
        fi = frame_ix.get(fkey)
        if fi is not None:
            return fi
        pi = pack_ix.get(loc.pack)
        if pi is None:
            pi = pack_ix[loc.pack] = len(packs)
            packs.append(repo.pack_path(loc.pack))
        fi = frame_ix[fkey] = len(frames)
        frames.append((pi, loc.frame_offset, loc.stored_len, loc.codec, loc.raw_len))
        if loc.codec == CODEC_DELTA:
            info = deltas.get(fkey)
            if info is None:
                info = repo.index.get_delta(txn, loc)
                if info is not None:
                    deltas[fkey] = info
            if info is None:
                raise IntegrityError(
                    f"{label}: a delta frame in pack {repo.pack_path(loc.pack)} has no "
                    "record of its bases; run `reprocas index rebuild`",
                    pack=str(repo.pack_path(loc.pack)),
                )
            refs: list[tuple[int, int, int]] = []
            for b in info.bases:
                bl = loc_of(b)
                if bl is None:
                    raise IntegrityError(
                        f"{label}: base chunk {b.hex()[:16]} of a delta frame is missing "
                        "from the store (damaged repository); run `reprocas verify`",
                        chunk=b.hex(),
                    )
                refs.append((frame_of(bl), bl.offset, bl.length))
            bases[fi] = refs
        return fi

    for n, (digest, length) in enumerate(chunk_list):
        loc = loc_of(digest)
        if loc is None:
            raise IntegrityError(
                f"{label}: chunk {n} ({digest.hex()[:16]}) is missing from the index; "
                "run `reprocas verify`",
                chunk=digest.hex(),
            )
        if loc.length != length:
            raise IntegrityError(f"{label}: chunk {n} has the wrong length in the index")
        chunks.append((frame_of(loc), loc.offset, loc.length, digest))
    return ReadPlan(packs, frames, chunks, bases)


def write_file_to_fd(repo: Repository, plan: ReadPlan, fd: int, label: str) -> int:
    """Assemble into ``fd``; corruption is reported with its pack and offset. Packs a
    lazy pull left on a remote are read through the cache (reprocas.remote.lazy)."""
    try:
        with remote_reads(repo) as use:
            use.localize([plan])
            try:
                return core.assemble_file(
                    fd, plan.packs, plan.frames, plan.chunks, bases=plan.bases
                )
            except CorruptDataError:
                use.forget(plan.packs)  # a damaged cache copy is fetched again next time
                raise
    except CorruptDataError as exc:
        fi = getattr(exc, "frame_index", None)
        where = ""
        if fi is not None and 0 <= fi < len(plan.frames):
            pi, off, _, _, _ = plan.frames[fi]
            where = f" in pack {plan.packs[pi]} at offset {off}"
        raise CorruptDataError(
            f"{label}: stored data is damaged{where} ({exc}); nothing wrong was written. "
            "Run `reprocas verify --read-data` to see everything affected",
            pack=str(plan.packs[plan.frames[fi][0]]) if where and fi is not None else None,
            offset=plan.frames[fi][1] if where and fi is not None else None,
        ) from exc


def _check_name(name: str, where: str) -> None:
    # POSIX names may hold anything but "/" and NUL (a backslash is an ordinary byte).
    if not name or name in (".", "..") or "/" in name or "\0" in name:
        raise UnsafePathError(
            f"refusing to check out: tree entry {where + name!r} would land outside the "
            "destination (hostile or damaged tree); nothing was written",
            entry=where + name,
        )


@dataclass(frozen=True, slots=True)
class _Op:
    rel: tuple[str, ...]
    entry: TreeEntry


def find_entry(
    repo: Repository, txn: lmdb.Transaction, version: Version, subpath: str
) -> TreeEntry:
    """The tree entry at ``subpath`` ('a/b.csv') of a version."""
    parts = [p for p in subpath.strip("/").split("/") if p not in ("", ".")]
    if any(p == ".." for p in parts):
        raise PathNotInVersionError(f"path {subpath!r} may not contain '..'", path=subpath)
    entry = TreeEntry("", "dir", 0o755, version.snapshot.root.raw)
    for i, part in enumerate(parts):
        if entry.kind != "dir":
            raise PathNotInVersionError(
                f"{'/'.join(parts[:i])} is not a directory in {version.ref}", path=subpath
            )
        tree = repo.load_tree(txn, ObjectId(entry.target))
        found = next((e for e in tree.entries if e.name == part), None)
        if found is None:
            names = ", ".join(e.name for e in tree.entries[:20])
            raise PathNotInVersionError(
                f"{version.ref} has no {'/'.join(parts[: i + 1])!r}"
                + (f" (that directory holds: {names})" if names else ""),
                path=subpath,
            )
        entry = found
    return entry


def _plan(repo: Repository, txn: lmdb.Transaction, entry: TreeEntry) -> list[_Op]:
    """Every entry to write, a directory before what it holds, in name order; without
    recursion, as a tree may be thousands of levels deep."""
    ops: list[_Op] = []
    stack: list[tuple[TreeEntry, tuple[str, ...]]] = [(entry, ())]
    while stack:
        e, rel = stack.pop()
        ops.append(_Op(rel, e))
        if e.kind != "dir":
            continue
        tree = repo.load_tree(txn, ObjectId(e.target))
        where = "/".join(rel) + "/" if rel else ""
        seen: set[str] = set()
        for child in tree.entries:
            _check_name(child.name, where)
            if child.name in seen:
                raise UnsafePathError(f"tree entry {where + child.name!r} appears twice")
            seen.add(child.name)
        stack.extend((child, (*rel, child.name)) for child in reversed(tree.entries))
    return ops


SPECIAL_BITS = stat.S_ISUID | stat.S_ISGID | stat.S_ISVTX


def _check_modes(ops: list[_Op], ref: str, top: str) -> None:
    """Refuse setuid, setgid and sticky bits: restoring them from a store (a file
    someone else committed) is a privilege a checkout grants only when asked."""
    special = [op for op in ops if op.entry.kind != "symlink" and op.entry.mode & SPECIAL_BITS]
    if not special:
        return
    op = special[0]
    bits = [
        n
        for b, n in ((stat.S_ISUID, "setuid"), (stat.S_ISGID, "setgid"), (stat.S_ISVTX, "sticky"))
        if op.entry.mode & b
    ]
    path = "/".join((top, *op.rel) if top else op.rel) or "."
    more = f" (and {len(special) - 1} more)" if len(special) > 1 else ""
    raise SpecialModeError(
        f"refusing to check out {ref}: {path} has mode {op.entry.mode:04o} "
        f"({', '.join(bits)}){more}; pass --special-modes to restore such bits; "
        "nothing was written",
        path=path,
        mode=op.entry.mode,
    )


@dataclass(frozen=True, slots=True)
class CheckoutResult:
    """``dest`` is the directory written, or the file for a single file; ``removed``
    what --force removed from the destination because the version lacks it."""

    ref: str
    id: ObjectId
    dest: Path
    files: int
    bytes: int
    removed: tuple[str, ...] = ()


def _prepare_dest(dest: Path, force: bool, single_file: bool) -> None:
    if dest.is_symlink():
        raise DestinationError(f"destination {dest} is a symbolic link; give a real directory")
    if dest.exists():
        if single_file and dest.is_file():
            if not force:
                raise DestinationError(f"{dest} exists; use --force to overwrite it")
            return
        if not dest.is_dir():
            raise DestinationError(f"destination {dest} exists and is not a directory")
        if any(dest.iterdir()) and not force:
            raise DestinationError(
                f"destination {dest} is not empty; choose a new directory or use --force"
            )


def _mkdir(path: Path, force: bool) -> None:
    try:
        os.mkdir(path, 0o700)
    except FileExistsError:
        st = os.lstat(path)
        if stat.S_ISDIR(st.st_mode):
            return
        if not force:
            raise DestinationError(
                f"{path} exists and is not a directory (or is a link); refusing to write through it"
            ) from None
        os.unlink(path)  # a file or link where the version has a directory
        os.mkdir(path, 0o700)


def _clear_for(path: Path, force: bool) -> None:
    """Make room for a file or link at ``path`` (only with --force); never follows links."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return
    if not force:
        raise DestinationError(f"{path} already exists; use --force to overwrite it")
    if stat.S_ISDIR(st.st_mode):
        raise DestinationError(
            f"{path} is a directory where the version has a file or link; remove it first"
        )
    os.unlink(path)


def checkout(
    repo: Repository,
    ref: str,
    dest: Path,
    *,
    subpath: str | None = None,
    force: bool = False,
    special_modes: bool = False,
    remove_stale: bool = True,
    progress: Progress | None = None,
) -> CheckoutResult:
    """Write version ``ref`` (or its ``subpath``) to ``dest``, byte for byte, with modes.

    With ``force`` a non-empty ``dest`` is made exactly the version: what it holds that
    the version lacks is removed (and listed). A single file checked out into an
    existing directory lands in it under its own name. ``dest`` may not be, hold or lie
    inside the repository; setuid, setgid and sticky bits are refused unless
    ``special_modes``. ``remove_stale=False`` overlays instead (``force`` then only
    overwrites): for callers that merge several trees into one directory. A read lease
    is held throughout, so a prune that starts meanwhile keeps the packs this checkout
    found in the index until it is done."""
    with lease.reading(repo), remote_reads(repo):
        return _checkout(
            repo,
            ref,
            dest,
            subpath=subpath,
            force=force,
            special_modes=special_modes,
            remove_stale=remove_stale,
            progress=progress,
        )


def _checkout(
    repo: Repository,
    ref: str,
    dest: Path,
    *,
    subpath: str | None = None,
    force: bool = False,
    special_modes: bool = False,
    remove_stale: bool = True,
    progress: Progress | None = None,
) -> CheckoutResult:
    progress = progress or Progress()
    with repo.index.read() as txn:
        version = repo.resolve(txn, ref)
        entry = find_entry(repo, txn, version, subpath or "")
        ops = _plan(repo, txn, entry)
        manifests = {
            op.rel: repo.entry_manifest(txn, op.entry) for op in ops if op.entry.kind == "file"
        }
        # Every location is read in this one transaction, under the lease: a prune
        # that starts later removes those index entries, never the packs they name.
        # Small neighbouring files are planned as one read per group (their frames are
        # shared), every other file on its own.
        groups = grouped.plan_groups(repo, txn, manifests.items(), version.ref)
        plans = {
            rel: read_plan(repo, txn, m, f"{version.ref}:{'/'.join(rel) or entry.name}")
            for rel, m in manifests.items()
            if rel not in groups
        }
    # Every remote frame fetched before writing.
    remote_localize(repo, [*plans.values(), *(g.plan for g in grouped.unique(groups))])
    single_file = entry.kind != "dir"
    top = (subpath or "").strip("/")
    if not special_modes:
        _check_modes(ops, version.ref, top)
    refuse_overlap(repo.root, dest, "check out to", ("is", "inside", "holds"))
    if single_file and dest.is_dir() and not dest.is_symlink():
        dest = dest / top.rsplit("/", 1)[-1]  # into the directory, as cp does
        refuse_overlap(repo.root, dest, "check out to", ("is", "inside", "holds"))
    _prepare_dest(dest, force, single_file)
    stale: list[Stale] = []
    if force and remove_stale and not single_file and dest.is_dir():
        wanted = {op.rel: op.entry.kind == "dir" for op in ops if op.rel}
        try:
            stale = find_stale(dest, wanted, repo.root)
        except OSError as exc:
            raise DestinationError(f"cannot read the destination {dest}: {exc}") from exc
    total = sum(m.size for m in manifests.values())
    progress.start(total, len(manifests))
    files = 0
    written = 0
    dir_modes: list[tuple[Path, int]] = []
    try:
        for s in stale:
            remove(s)
        if not single_file:
            dest.mkdir(parents=True, exist_ok=True)
        for op in ops:
            target = dest.joinpath(*op.rel) if op.rel else dest
            e = op.entry
            if e.kind == "dir":
                if op.rel:
                    _mkdir(target, force)
                dir_modes.append((target, e.mode))
            elif e.kind == "symlink":
                _clear_for(target, force)
                os.symlink(os.fsdecode(e.target), target)
            else:
                label = f"{version.ref}:{'/'.join(op.rel) or e.name}"
                plan = plans.get(op.rel)
                _clear_for(target, force)
                flags = os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW | os.O_EXCL
                fd = os.open(target, flags, 0o600)
                try:
                    group = groups.get(op.rel)
                    data = group.take(repo, op.rel) if group is not None else None
                    if data is not None:
                        n = grouped.write_all(fd, data)
                    else:
                        if plan is None:  # its group's read found damage: read it alone
                            plan = grouped.plan_alone(repo, manifests[op.rel], label)
                        n = write_file_to_fd(repo, plan, fd, label)
                    os.fchmod(fd, e.mode)
                except BaseException:
                    os.close(fd)
                    target.unlink(missing_ok=True)
                    raise
                os.close(fd)
                files += 1
                written += n
                progress.advance(n)
                progress.file_done()
        for path, mode in reversed(dir_modes):
            os.chmod(path, mode)
    except OSError as exc:
        from reprocas.store.packs import _os_error

        if isinstance(exc, FileExistsError):
            raise DestinationError(f"{exc.filename} already exists; use --force") from exc
        raise _os_error(exc, Path(exc.filename or dest), "writing") from exc
    return CheckoutResult(
        version.ref, version.id, dest, files, written, tuple(s.label for s in stale)
    )


def cat(repo: Repository, ref: str, path: str, fd: int) -> int:
    """Write one file of a version to the open descriptor ``fd`` (under a read lease)."""
    with lease.reading(repo), remote_reads(repo):
        return _cat(repo, ref, path, fd)


def _cat(repo: Repository, ref: str, path: str, fd: int) -> int:
    with repo.index.read() as txn:
        version = repo.resolve(txn, ref)
        entry = find_entry(repo, txn, version, path)
        if entry.kind == "dir":
            raise PathNotInVersionError(f"{path!r} is a directory in {version.ref}", path=path)
        if entry.kind == "symlink":
            raise PathNotInVersionError(
                f"{path!r} is a symbolic link to {os.fsdecode(entry.target)!r} in {version.ref}",
                path=path,
            )
        manifest = repo.entry_manifest(txn, entry)
        plan = read_plan(repo, txn, manifest, f"{version.ref}:{path}")
    try:
        return write_file_to_fd(repo, plan, fd, f"{version.ref}:{path}")
    except StorageIOError:
        raise
