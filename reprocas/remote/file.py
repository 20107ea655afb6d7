"""A remote in a plain directory (``file:///abs/path``): a NAS, a mounted drive, tests.

Every write lands atomically: the bytes go to a temporary file beside the key, are
fsynced, and then become the key by ``os.link`` (create-if-absent: ``link`` fails when
the name exists, so of two writers exactly one wins) or by ``os.rename`` (replace). A
compare-and-swap holds a per-key ``flock`` on ``<key>.lock`` (under ``.locks/``) while it
compares the etag and renames, so two writers on the same file system (or an NFS
server with working locks) serialise. The etag is the BLAKE3 of the bytes; the server
clock is the file system's (``st_mtime_ns``).
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import uuid
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

from reprocas.errors import InvalidParameterError
from reprocas.native import core
from reprocas.remote.backend import (
    Backend,
    ObjectInfo,
    PreconditionFailed,
    RemoteError,
    RemoteNotFound,
    RemoteUnavailable,
)

TMP_DIR = ".tmp"
LOCK_DIR = ".locks"
_COPY = 1 << 20


def _etag(data: bytes) -> str:
    return core.blake3_digest(data).hex()


def _change_tag(st: os.stat_result) -> str:
    """A listing's etag: size, mtime and inode. Every write makes a new file that is
    renamed or linked into place, so any change gives a new inode and a new tag."""
    return f"{st.st_size:x}-{st.st_mtime_ns:x}-{st.st_ino:x}"


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class FileBackend(Backend):
    """Objects as files under a root directory; keys are relative paths."""

    def __init__(self, url: str, options: dict[str, Any] | None = None) -> None:
        parsed = urlparse(url)
        if parsed.scheme != "file" or parsed.netloc not in ("", "localhost"):
            raise InvalidParameterError(
                f"{url!r} is not a file:// URL of this machine (file:///absolute/path)"
            )
        path = unquote(parsed.path)
        if not path.startswith("/"):
            raise InvalidParameterError(f"{url!r}: the path of a file:// URL must be absolute")
        self.url = url
        self.root = Path(path)
        self.options = dict(options or {})
        self.threads = int(self.options.get("threads", 8))

    # -- helpers -----------------------------------------------------------------------

    def _path(self, key: str) -> Path:
        parts = key.split("/")
        if not key or any(p in ("", ".", "..") for p in parts) or parts[0] in (TMP_DIR, LOCK_DIR):
            raise InvalidParameterError(f"invalid remote key {key!r}")
        return self.root.joinpath(*parts)

    def _fail(self, exc: OSError, key: str, doing: str) -> RemoteError:
        if isinstance(exc, FileNotFoundError):
            if not self.root.is_dir():
                return RemoteUnavailable(
                    f"remote {self.url} is unavailable: {self.root} does not exist ({doing} {key})"
                )
            return RemoteNotFound(f"{key} is not on remote {self.url}")
        if isinstance(exc, PermissionError):
            return RemoteUnavailable(
                f"remote {self.url} refused {doing} {key}: permission denied ({exc.filename})"
            )
        return RemoteUnavailable(f"remote {self.url}: {doing} {key} failed: {exc}")

    def _tmp(self, data: bytes | None, src: Path | None = None) -> Path:
        """Write DATA (or copy SRC) into a fresh fsynced temporary file of the remote."""
        tmp_dir = self.root / TMP_DIR
        if not self.root.is_dir():
            raise FileNotFoundError(errno.ENOENT, "remote root missing", str(self.root))
        tmp_dir.mkdir(exist_ok=True)
        tmp = tmp_dir / f"{uuid.uuid4().hex}.tmp"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        try:
            if data is not None:
                view = memoryview(data)
                while view:
                    view = view[os.write(fd, view) :]
            else:
                assert src is not None
                with open(src, "rb") as f:
                    while block := f.read(_COPY):
                        view = memoryview(block)
                        while view:
                            view = view[os.write(fd, view) :]
            os.fsync(fd)
        except BaseException:
            os.close(fd)
            with contextlib.suppress(OSError):
                tmp.unlink()
            raise
        os.close(fd)
        return tmp

    def _link_new(self, tmp: Path, dest: Path) -> bool:
        """Make TMP the file DEST unless DEST exists; True when it was created."""
        dest.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.link(tmp, dest)
        except FileExistsError:
            return False
        finally:
            with contextlib.suppress(OSError):
                tmp.unlink()
        _fsync_dir(dest.parent)
        return True

    def _replace(self, tmp: Path, dest: Path) -> None:
        dest.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.rename(tmp, dest)
        except BaseException:
            with contextlib.suppress(OSError):
                tmp.unlink()
            raise
        _fsync_dir(dest.parent)

    @contextlib.contextmanager
    def _key_lock(self, key: str) -> Iterator[None]:
        lock = self.root / LOCK_DIR / (key.replace("/", "%2F") + ".lock")
        lock.parent.mkdir(exist_ok=True)
        fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)

    # -- the contract ------------------------------------------------------------------

    def put_if_absent(self, key: str, data: bytes) -> str:
        dest = self._path(key)
        try:
            if not self._link_new(self._tmp(data), dest):
                raise PreconditionFailed(f"{key} already exists on remote {self.url}")
        except OSError as exc:
            raise self._fail(exc, key, "writing") from exc
        return _etag(data)

    def put_if_match(self, key: str, data: bytes, etag: str | None) -> str:
        if etag is None:
            return self.put_if_absent(key, data)
        dest = self._path(key)
        try:
            with self._key_lock(key):
                try:
                    current = _etag(dest.read_bytes())
                except FileNotFoundError:
                    current = None
                if current != etag:
                    raise PreconditionFailed(f"{key} changed on remote {self.url}")
                self._replace(self._tmp(data), dest)
        except OSError as exc:
            raise self._fail(exc, key, "writing") from exc
        return _etag(data)

    def put(self, key: str, data: bytes) -> str:
        dest = self._path(key)
        try:
            with self._key_lock(key):
                self._replace(self._tmp(data), dest)
        except OSError as exc:
            raise self._fail(exc, key, "writing") from exc
        return _etag(data)

    def _put_file(self, key: str, path: Path) -> bool:
        dest = self._path(key)
        try:
            return self._link_new(self._tmp(None, path), dest)
        except OSError as exc:
            raise self._fail(exc, key, "uploading") from exc

    def put_files_if_absent(self, items: Sequence[tuple[str, Path]]) -> list[bool]:
        if len(items) <= 1 or self.threads <= 1:
            return [self._put_file(k, p) for k, p in items]
        with ThreadPoolExecutor(max_workers=self.threads) as pool:
            return list(pool.map(lambda kp: self._put_file(*kp), items))

    def get(self, key: str, start: int | None = None, end: int | None = None) -> bytes:
        path = self._path(key)
        try:
            with open(path, "rb") as f:
                if start is None and end is None:
                    return f.read()
                lo = start or 0
                hi = end if end is not None else os.fstat(f.fileno()).st_size
                return os.pread(f.fileno(), max(0, hi - lo), lo)
        except OSError as exc:
            raise self._fail(exc, key, "reading") from exc

    def get_with_etag(self, key: str) -> tuple[bytes, str]:
        data = self.get(key)
        return data, _etag(data)

    def get_to_file(self, key: str, path: Path) -> int:
        src = self._path(key)
        tmp = path.with_name(path.name + f".{uuid.uuid4().hex[:8]}.part")
        n = 0
        try:
            with open(src, "rb") as f, open(tmp, "wb") as out:
                while block := f.read(_COPY):
                    out.write(block)
                    n += len(block)
                out.flush()
                os.fsync(out.fileno())
            os.replace(tmp, path)
        except OSError as exc:
            with contextlib.suppress(OSError):
                tmp.unlink()
            if exc.filename is not None and Path(exc.filename) in (tmp, path):
                raise
            raise self._fail(exc, key, "reading") from exc
        return n

    def head(self, key: str) -> ObjectInfo:
        path = self._path(key)
        try:
            st = path.stat()
            data = path.read_bytes() if not key.startswith("packs/") else None
        except OSError as exc:
            raise self._fail(exc, key, "reading") from exc
        etag = _etag(data) if data is not None else _change_tag(st)
        return ObjectInfo(key, st.st_size, etag, st.st_mtime_ns)

    def list(self, prefix: str, start_after: str | None = None) -> Iterator[ObjectInfo]:
        base = prefix.rsplit("/", 1)[0] if "/" in prefix else ""
        top = self._path(base) if base else self.root
        if not self.root.is_dir():
            raise RemoteUnavailable(f"remote {self.url} is unavailable: {self.root} is missing")
        found: list[tuple[str, os.stat_result]] = []
        try:
            for dirpath, dirnames, filenames in os.walk(top, onerror=_raise):
                rel_dir = os.path.relpath(dirpath, self.root)
                if rel_dir == ".":
                    dirnames[:] = [d for d in dirnames if d not in (TMP_DIR, LOCK_DIR)]
                for name in filenames:
                    key = name if rel_dir == "." else f"{rel_dir}/{name}"
                    if not key.startswith(prefix):
                        continue
                    if start_after is not None and key.encode() <= start_after.encode():
                        continue
                    try:
                        found.append((key, os.stat(os.path.join(dirpath, name))))
                    except FileNotFoundError:
                        continue  # deleted while listing
        except FileNotFoundError:
            return iter(())
        except OSError as exc:
            raise self._fail(exc, prefix, "listing") from exc
        found.sort(key=lambda kv: kv[0].encode())
        return iter(ObjectInfo(k, st.st_size, _change_tag(st), st.st_mtime_ns) for k, st in found)

    def delete(self, key: str) -> None:
        path = self._path(key)
        try:
            path.unlink()
        except FileNotFoundError:
            return
        except OSError as exc:
            raise self._fail(exc, key, "deleting") from exc
        with contextlib.suppress(OSError):
            _fsync_dir(path.parent)


def _raise(exc: OSError) -> None:
    if isinstance(exc, FileNotFoundError):
        return
    raise exc
