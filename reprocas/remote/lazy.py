"""Reads of remote-backed packs: fetch only the frames a read needs, into a bounded cache.

A lazy pull (``reprocas pull --lazy``, ``clone --lazy``) indexes a remote's packs from
their footers, trailers and objects without downloading their frames; their ``packs``
entries name the remote (``"remote": NAME``) and no file exists in ``packs/``. A read of
such a pack resolves its path here: the frames the read needs (delta bases included, as
the read plan lists them) are fetched by range GETs — adjacent and near ranges
coalesced, several GETs in parallel — into a sparse cache file at the same offsets,
``cache/remote-packs/<id>.pack``, whose ``<id>.ranges`` record (JSON, replaced
atomically, written only after the bytes are synced) says which ranges it holds. Plain
frames are decoded and their chunks re-hashed before they are recorded, so the cache
holds no damaged frame and a damaged remote fails a checkout before it writes anything;
the native read re-hashes every chunk again in any case.

The cache is bounded by the setting ``remote.cache-size`` (default 2 GiB): when a read
is done, the least recently used cache files are removed until the cache is under the
bound. A file in use is never removed: its user holds a shared ``flock`` on it, and the
evictor takes each file's lock exclusively without waiting (a file another process
reads is skipped); record writes and evictions are serialised by ``.lock`` in the cache.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path
from typing import TYPE_CHECKING, Any

from reprocas.errors import CorruptDataError, IntegrityError, RefNotFoundError, StorageIOError
from reprocas.native import core
from reprocas.store.index import unpack
from reprocas.store.packs import CODEC_DELTA
from reprocas.store.repository import Repository

if TYPE_CHECKING:
    from reprocas.remote.backend import Backend
    from reprocas.store.checkout import ReadPlan

CACHE_DIR = ("cache", "remote-packs")
DEFAULT_CACHE_SIZE = 2 << 30
#: Ranges closer than this are fetched by one GET (the gap is read and discarded).
GAP = 256 << 10
#: No single GET is longer than this (long runs are split, and fetched in parallel).
MAX_GET = 16 << 20
PARALLEL = 8

Range = tuple[int, int]  # [start, end)
# (offset, stored_len, codec, raw_len, [(offset in frame, length, digest)])
Frame = tuple[int, int, int, int, list[tuple[int, int, bytes]]]


def cache_dir(repo: Repository) -> Path:
    return repo.root.joinpath(*CACHE_DIR)


def cache_path(repo: Repository, pid: bytes) -> Path:
    return cache_dir(repo) / f"{pid.hex()}.pack"


def _record_path(path: Path) -> Path:
    return path.with_suffix(".ranges")


def cache_size(repo: Repository) -> int:
    """The bound of the cache, from the setting ``remote.cache-size``."""
    from reprocas.remote.config import get_setting
    from reprocas.retention.policy import parse_size

    value = get_setting(repo, "remote.cache-size")
    return DEFAULT_CACHE_SIZE if value is None else parse_size(str(value))


# -- ranges ---------------------------------------------------------------------------------


def merge(ranges: Iterable[Range]) -> list[Range]:
    out: list[Range] = []
    for s, e in sorted(r for r in ranges if r[1] > r[0]):
        if out and s <= out[-1][1]:
            out[-1] = (out[-1][0], max(out[-1][1], e))
        else:
            out.append((s, e))
    return out


def covered(have: list[Range], want: Range) -> bool:
    s, e = want
    return any(hs <= s and e <= he for hs, he in have)


def coalesce(ranges: Iterable[Range], gap: int = GAP, cap: int = MAX_GET) -> list[Range]:
    """Few GETs for many ranges: neighbours less than ``gap`` apart are joined, and no
    GET is longer than ``cap`` (unless one range alone is)."""
    out: list[Range] = []
    for s, e in merge(ranges):
        if out and s - out[-1][1] < gap and e - out[-1][0] <= cap:
            out[-1] = (out[-1][0], e)
        else:
            out.append((s, e))
    split: list[Range] = []
    for s, e in out:
        while e - s > cap:
            split.append((s, s + cap))
            s += cap
        split.append((s, e))
    return split


def read_record(path: Path) -> list[Range]:
    try:
        raw = json.loads(_record_path(path).read_text())
        return merge((int(s), int(e)) for s, e in raw["ranges"])
    except (OSError, ValueError, KeyError, TypeError):
        return []  # none yet, or damaged: those ranges are fetched again


def _write_record(path: Path, pid: bytes, ranges: list[Range]) -> None:
    rec = _record_path(path)
    tmp = rec.with_name(f".{rec.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps({"pack": pid.hex(), "ranges": [list(r) for r in ranges]}))
    os.replace(tmp, rec)


def present_bytes(repo: Repository) -> int:
    """How many pack bytes the cache holds (the sum of its records)."""
    d = cache_dir(repo)
    if not d.is_dir():
        return 0
    return sum(e - s for p in d.glob("*.pack") for s, e in read_record(p))


def disk_usage(repo: Repository) -> int:
    """Bytes the cache takes on disk (sparse files count their allocated blocks)."""
    d = cache_dir(repo)
    if not d.is_dir():
        return 0
    total = 0
    for p in d.iterdir():
        with contextlib.suppress(OSError):
            total += p.stat().st_blocks * 512
    return total


@contextmanager
def _cache_lock(repo: Repository) -> Iterator[None]:
    d = cache_dir(repo)
    d.mkdir(parents=True, exist_ok=True)
    fd = os.open(d / ".lock", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def evict(repo: Repository, bound: int, keep: Iterable[bytes] = ()) -> int:
    """Remove least recently used cache files until the cache is under ``bound``; never
    one in ``keep`` nor one another process holds. Returns the bytes freed."""
    d = cache_dir(repo)
    if not d.is_dir():
        return 0
    kept = set(keep)
    freed = 0
    with _cache_lock(repo):
        files = []
        for p in d.glob("*.pack"):
            try:
                st = p.stat()
                pid = bytes.fromhex(p.stem)
            except (OSError, ValueError):
                continue
            files.append((st.st_mtime_ns, pid, p, st.st_blocks * 512))
        total = disk_usage(repo)
        for _, pid, p, size in sorted(files):
            if total <= bound:
                break
            if pid in kept:
                continue
            try:
                fd = os.open(p, os.O_RDONLY)
            except OSError:
                continue
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                continue  # another reader uses it
            try:
                rec = _record_path(p)
                rsize = rec.stat().st_blocks * 512 if rec.exists() else 0
                rec.unlink(missing_ok=True)  # the claim goes before the bytes
                p.unlink(missing_ok=True)
            finally:
                os.close(fd)
            total -= size + rsize
            freed += size + rsize
    return freed


def discard(repo: Repository, pid: bytes) -> bool:
    """Drop a pack's cache copy (after a full pull, or damaged) unless someone uses it."""
    p = cache_path(repo, pid)
    if not p.exists():
        return False
    with _cache_lock(repo):
        try:
            fd = os.open(p, os.O_RDONLY)
        except OSError:
            return False
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return False  # in use: a later eviction takes it
        try:
            _record_path(p).unlink(missing_ok=True)
            p.unlink(missing_ok=True)
        finally:
            os.close(fd)
    return True


# -- one operation's use of the cache -------------------------------------------------------


class CacheUse:
    """The cache files one operation reads (pinned by a shared lock until :meth:`close`),
    the backends it opened, and what it fetched."""

    def __init__(self, repo: Repository) -> None:
        self.repo = repo
        self.pins: dict[bytes, int] = {}
        self.resolved: dict[Path, Path] = {}
        self.remote_of: dict[bytes, str] = {}
        self.sizes: dict[bytes, int] = {}
        self.backends: dict[str, Backend] = {}
        self.fetched_bytes = 0
        self.requests = 0
        # What each pinned file holds, as far as this use knows: a pinned file is never
        # evicted, and others only add to it, so this stays true while pinned.
        self.have: dict[bytes, list[Range]] = {}

    # resolving ---------------------------------------------------------------------------

    def resolve(self, path: Path) -> Path:
        """Where to read the pack at ``path`` (a path from ``repo.pack_path``): itself
        when it is on disk or not remote-backed, else its pinned cache file."""
        got = self.resolved.get(path)
        if got is not None:
            return got
        got = path
        if not path.exists():
            try:
                pid = bytes.fromhex(path.stem)
            except ValueError:
                pid = b""
            with self.repo.index.read() as txn:
                raw = txn.get(pid, db=self.repo.index.db["packs"]) if pid else None
            info: Any = unpack(raw) if raw is not None else None
            remote = info.get("remote") if isinstance(info, dict) else None
            if remote and isinstance(info, dict):
                self.remote_of[pid] = str(remote)
                self.sizes[pid] = int(info.get("size", 0))
                got = self._pin(pid)
        self.resolved[path] = got
        return got

    def _pin(self, pid: bytes) -> Path:
        path = cache_path(self.repo, pid)
        if pid in self.pins:
            return path
        path.parent.mkdir(parents=True, exist_ok=True)
        for _ in range(100):
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
            fcntl.flock(fd, fcntl.LOCK_SH)
            try:
                same = os.fstat(fd).st_ino == os.stat(path).st_ino
            except FileNotFoundError:
                same = False
            if same:
                break
            os.close(fd)  # evicted between open and lock: take the new file
        else:
            raise StorageIOError(f"cannot hold the cache file {path}")
        if os.fstat(fd).st_size < self.sizes[pid]:
            os.ftruncate(fd, self.sizes[pid])
        self.pins[pid] = fd
        return path

    def localize(self, plans: Iterable[ReadPlan]) -> None:
        """Point the plans' remote-backed packs at cache files holding every frame the
        plans read (fetched now where missing)."""
        need: dict[bytes, dict[int, Frame]] = {}
        for plan in plans:
            for i, p in enumerate(plan.packs):
                plan.packs[i] = self.resolve(p)
            here = cache_dir(self.repo)
            cached = {
                i: bytes.fromhex(p.stem) for i, p in enumerate(plan.packs) if p.parent == here
            }
            if not cached:
                continue
            by_frame: dict[int, list[tuple[int, int, bytes]]] = {}
            for fi, off, n, digest in plan.chunks:
                by_frame.setdefault(fi, []).append((off, n, digest))
            for fi, (pi, off, slen, cdc, rlen) in enumerate(plan.frames):
                if pi in cached:
                    frames = need.setdefault(cached[pi], {})
                    old = frames.get(off)
                    chunks = by_frame.get(fi, []) + (old[4] if old else [])
                    frames[off] = (off, slen, cdc, rlen, chunks)
        for pid, frames in need.items():
            self.ensure(pid, list(frames.values()))

    # fetching ----------------------------------------------------------------------------

    def backend(self, pid: bytes) -> Backend:
        from reprocas.remote import config as rconf
        from reprocas.remote.registry import open_backend

        name = self.remote_of[pid]
        b = self.backends.get(name)
        if b is None:
            try:
                rc = rconf.get(self.repo, name)
            except RefNotFoundError as exc:
                raise IntegrityError(
                    f"pack {pid.hex()} is held only by the remote {name!r} (a lazy pull), "
                    f"which this repository no longer knows: add it again with `reprocas "
                    f"remote add {name} URL`, then read again (or `reprocas pull {name}`)",
                    pack=pid.hex(),
                ) from exc
            b = self.backends[name] = open_backend(rc.url, rc.options)
        return b

    def _fetch(self, pid: bytes, ranges: list[Range]) -> None:
        """GET the ranges of the remote's pack into the pinned cache file."""
        from reprocas.remote.protocol import pack_key

        backend, key, fd = self.backend(pid), pack_key(pid), self.pins[pid]
        gets = coalesce(ranges)

        def one(r: Range) -> int:
            data = backend.get(key, r[0], r[1])
            if len(data) != r[1] - r[0]:
                raise IntegrityError(
                    f"{backend.url}/{key}: a range read of [{r[0]}, {r[1]}) returned "
                    f"{len(data)} bytes (the remote pack is shorter than its index says)",
                    pack=pid.hex(),
                )
            os.pwrite(fd, data, r[0])
            return len(data)

        if len(gets) == 1:
            got = [one(gets[0])]
        else:
            with ThreadPoolExecutor(min(PARALLEL, len(gets))) as ex:
                got = list(ex.map(one, gets))
        self.fetched_bytes += sum(got)
        self.requests += len(gets)

    def ensure(self, pid: bytes, frames: list[Frame]) -> None:
        """Make the cache file hold ``frames``: fetch the missing ones, check the plain
        ones (decode, re-hash the chunks given), sync, then record them."""
        path = cache_path(self.repo, pid)
        have = self.have.get(pid)
        if have is None:
            have = self.have[pid] = read_record(path)
            with contextlib.suppress(OSError):
                os.utime(path)  # recently used
        todo = [f for f in frames if not covered(have, (f[0], f[0] + f[1]))]
        if not todo:
            return
        self._fetch(pid, [(f[0], f[0] + f[1]) for f in todo])
        plain = [f for f in todo if f[2] != CODEC_DELTA]
        bad = core.verify_frames(path, plain) if plain else []
        if bad:
            fi, _, msg = bad[0]
            off = plain[fi][0]
            raise CorruptDataError(
                f"the remote {self.remote_of[pid]!r} holds a damaged pack {pid.hex()}: the "
                f"frame at offset {off} {msg}; nothing was written. Check the remote "
                f"(`reprocas verify --read-data` in a repository that pushed it)",
                pack=pid.hex(),
                offset=off,
            )
        os.fsync(self.pins[pid])
        self._record(pid, [(f[0], f[0] + f[1]) for f in todo])

    def ensure_whole(self, pid: bytes) -> Path:
        """Fetch all of a remote-backed pack into its cache file (verify --read-data)."""
        path = cache_path(self.repo, pid)
        want = (0, self.sizes[pid])
        missing = self._gaps(read_record(path), want)
        if missing:
            self._fetch(pid, missing)
            os.fsync(self.pins[pid])
            self._record(pid, missing)
        return path

    @staticmethod
    def _gaps(have: list[Range], want: Range) -> list[Range]:
        out, at = [], want[0]
        for s, e in have:
            if s > at:
                out.append((at, min(s, want[1])))
            at = max(at, e)
        if at < want[1]:
            out.append((at, want[1]))
        return [r for r in out if r[1] > r[0]]

    def _record(self, pid: bytes, ranges: list[Range]) -> None:
        path = cache_path(self.repo, pid)
        with _cache_lock(self.repo):
            self.have[pid] = merge(read_record(path) + ranges)
            _write_record(path, pid, self.have[pid])

    def forget(self, paths: Iterable[Path]) -> None:
        """Unclaim what the cache files at ``paths`` hold (a read found damage there):
        the next read fetches those frames again. Other paths are left alone."""
        here = cache_dir(self.repo)
        for p in paths:
            if p.parent == here and p.suffix == ".pack":
                with contextlib.suppress(ValueError):
                    self.have.pop(bytes.fromhex(p.stem), None)
                with _cache_lock(self.repo):
                    _record_path(p).unlink(missing_ok=True)

    # ending ------------------------------------------------------------------------------

    def close(self) -> None:
        """Let go of the files, then evict down to the bound: a file another use (in
        this process or another) still holds is skipped, so the bound can be exceeded
        only while one operation needs more than it."""
        used = bool(self.pins)
        for fd in self.pins.values():
            with contextlib.suppress(OSError):
                os.close(fd)
        self.pins.clear()
        self.resolved.clear()
        self.have.clear()
        for b in self.backends.values():
            with contextlib.suppress(Exception):
                b.close()
        self.backends.clear()
        if used:
            evict(self.repo, cache_size(self.repo))


_current: ContextVar[CacheUse | None] = ContextVar("reprocas_cache_use", default=None)


@contextmanager
def reading(repo: Repository) -> Iterator[CacheUse]:
    """The cache use of the current operation (an outer one is reused: a checkout's
    files share one, so its frames are fetched together and evicted after)."""
    outer = _current.get()
    if outer is not None and outer.repo.root == repo.root:
        yield outer
        return
    use = CacheUse(repo)
    token = _current.set(use)
    try:
        yield use
    finally:
        _current.reset(token)
        use.close()


def localize(repo: Repository, plans: Iterable[ReadPlan]) -> None:
    """Fetch what ``plans`` read of remote-backed packs, within the current use."""
    with reading(repo) as use:
        use.localize(plans)


def remote_backed(repo: Repository) -> dict[bytes, str]:
    """Indexed packs with no local file whose data a remote holds: id -> remote name."""
    out: dict[bytes, str] = {}
    with repo.index.read() as txn:
        for k, v in txn.cursor(db=repo.index.db["packs"]):
            info: Any = unpack(v)
            if isinstance(info, dict) and info.get("remote"):
                out[bytes(k)] = str(info["remote"])
    return {pid: r for pid, r in out.items() if not repo.pack_path(pid).exists()}
