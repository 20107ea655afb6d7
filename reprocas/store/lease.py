"""Read leases: a reader's promise that the packs it found in the index stay on disk.

A process that reads versions (checkout, cat, an open :class:`StoreFile`, a pyarrow
dataset over a version) holds a lease: a file ``locks/leases/<pid>-<uuid>.lease`` with a
shared ``flock`` on it, taken *before* it reads any location from the index and kept
until its last reader in the process is done. One lease serves every reader of a
process (reference-counted).

Whoever deletes pack files (prune, gc) first removes their index entries, then lists
the leases and waits (bounded) until each one listed is released: a reader that leased
later found no entry for those packs, so nothing it reads is deleted. A lease whose
process died is released by the kernel with the process, so a dead reader never holds
prune up; a live one that outlasts the wait makes prune leave the pack files in place
(unindexed: the next prune or gc removes them) and say so.

A repository whose ``locks/`` cannot be written (read-only media) is read without a
lease: nothing can prune it from here either.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import threading
import time
import uuid
import weakref
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from reprocas.store.packs import fsync_dir
from reprocas.store.repository import Repository

LEASES = "leases"
SUFFIX = ".lease"
# How long prune and gc wait for readers that started before them, by default.
DEFAULT_LEASE_WAIT = 10.0
_POLL = 0.02
# A half-made lease file (its creator died between creating and naming it) older than
# this is removed.
_STALE_TMP_S = 60.0


def leases_dir(repo: Repository) -> Path:
    return repo.locks_dir / LEASES


@dataclass
class _Held:
    """This process's lease on one repository."""

    pid: int
    count: int
    fd: int
    path: Path | None


_mutex = threading.Lock()
_held: dict[str, _Held] = {}


def _create(d: Path) -> tuple[int, Path] | None:
    """A new lease file, locked before it becomes visible under its final name."""
    try:
        d.mkdir(parents=False, exist_ok=True)
        name = f"{os.getpid()}-{uuid.uuid4().hex}"
        tmp = d / f".{name}.tmp"
        fd = os.open(tmp, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o644)
    except OSError:
        return None  # read-only repository: read without a lease
    try:
        fcntl.flock(fd, fcntl.LOCK_SH)
        final = d / f"{name}{SUFFIX}"
        os.rename(tmp, final)
    except OSError:
        os.close(fd)
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        return None
    return fd, final


def _acquire(repo: Repository) -> str:
    key = str(repo.root.resolve())
    with _mutex:
        h = _held.get(key)
        if h is not None and h.pid != os.getpid():
            h = None  # inherited across fork: the parent's lease is not ours to count
        if h is None:
            made = _create(leases_dir(repo))
            h = _held[key] = _Held(os.getpid(), 0, -1, None)
            if made is not None:
                h.fd, h.path = made
        h.count += 1
    return key


def _release(key: str) -> None:
    with _mutex:
        h = _held.get(key)
        if h is None or h.pid != os.getpid():
            return
        h.count -= 1
        if h.count > 0:
            return
        del _held[key]
        if h.path is not None:
            with contextlib.suppress(OSError):
                os.unlink(h.path)
        if h.fd >= 0:
            with contextlib.suppress(OSError):
                os.close(h.fd)


class Lease:
    """One reader's share of the process's lease; :meth:`release` is idempotent and
    also runs when the lease is garbage-collected."""

    def __init__(self, repo: Repository) -> None:
        key = _acquire(repo)
        self._finalizer = weakref.finalize(self, _release, key)

    def release(self) -> None:
        self._finalizer()


@contextmanager
def reading(repo: Repository) -> Iterator[None]:
    """Hold a read lease for the duration of a read."""
    lease = Lease(repo)
    try:
        yield
    finally:
        lease.release()


# -- the deleting side -------------------------------------------------------------------


def _probe(path: Path) -> bool:
    """True while the lease at ``path`` is held; a released or dead one is removed."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return False
    except OSError:
        return True  # cannot tell: assume a reader holds it
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        except OSError:
            return True
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)
        return False
    finally:
        os.close(fd)


def current_leases(repo: Repository) -> list[Path]:
    """The leases present now (half-made ones of dead processes are removed)."""
    d = leases_dir(repo)
    try:
        names = os.listdir(d)
    except OSError:
        return []
    out: list[Path] = []
    now = time.time()
    for n in names:
        p = d / n
        if n.endswith(SUFFIX) and not n.startswith("."):
            out.append(p)
        elif n.startswith(".") and n.endswith(".tmp"):
            with contextlib.suppress(OSError):
                if now - p.stat().st_mtime > _STALE_TMP_S and not _probe(p):
                    pass  # _probe removed it
    return out


def wait_for(leases: Iterable[Path], timeout: float) -> list[Path]:
    """Wait until every lease listed is released (at most ``timeout`` seconds);
    returns those still held."""
    held = [p for p in leases if _probe(p)]
    deadline = time.monotonic() + max(0.0, timeout)
    while held and time.monotonic() < deadline:
        time.sleep(_POLL)
        held = [p for p in held if _probe(p)]
    return held


@dataclass
class Removal:
    """What :func:`remove_unindexed_packs` did."""

    removed: list[Path] = field(default_factory=list)
    freed_bytes: int = 0
    # Left in place: readers that started before still held leases.
    leased: list[Path] = field(default_factory=list)
    leased_bytes: int = 0
    readers: int = 0
    sizes: dict[Path, int] = field(default_factory=dict)


def remove_unindexed_packs(repo: Repository, paths: Iterable[Path], lease_wait: float) -> Removal:
    """Delete pack files whose index entries are gone, once the readers that may still
    use them are done (see the module docstring).

    Call it after the transaction that removed their index entries has committed. The
    files are removed under the writers' lock held *shared* (commits go on; gc and
    rebuild wait), each only if the index still does not know it: a rebuild in between
    may have indexed it again.
    """
    paths = list(paths)
    out = Removal()
    if not paths:
        return out
    held = wait_for(current_leases(repo), lease_wait)
    sizes: dict[Path, int] = {}
    for p in paths:
        with contextlib.suppress(OSError):
            sizes[p] = p.stat().st_size
    out.sizes = sizes
    if held:
        out.readers = len(held)
        out.leased = [p for p in paths if p in sizes]
        out.leased_bytes = sum(sizes.values())
        return out
    index = repo.index
    with repo.lock("gc", exclusive=False):
        with index.read() as txn:
            known = {bytes(k) for k in txn.cursor(db=index.db["packs"]).iternext(values=False)}
        dirs: set[Path] = set()
        for p in paths:
            try:
                if bytes.fromhex(p.stem) in known:
                    continue
            except ValueError:
                continue
            try:
                os.unlink(p)
            except FileNotFoundError:
                continue
            out.removed.append(p)
            out.freed_bytes += sizes.get(p, 0)
            dirs.add(p.parent)
        for d in dirs:
            with contextlib.suppress(OSError):
                fsync_dir(d)
    return out
