"""Reading a package's zip in bounded memory, refusing hostile archives.

Before a byte is read, the central directory is held to bounds: how many members
(``max_members``), each name (no escape from the bag, no links or devices, no member
that is both a file and a directory, nothing outside ``data/`` but the bag's own tag
files), how each is stored (stored or deflated, not encrypted), the compression ratio a
member declares (a zip bomb declares a huge size for a few bytes), and the total size
declared against the free space where the members are staged. Then each member is
read in pieces: metadata members are held (each at most :data:`HELD_MAX`), data members
are written to a staging file; all are hashed (SHA-256, SHA-512, BLAKE3) on the way,
and a member that reads back another size than it declares is refused. Every refusal
names the member, and the caller removes the staging directory.
"""

from __future__ import annotations

import errno
import shutil
import stat
import zipfile
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from reprocas.errors import (
    IntegrityError,
    SourceNotFoundError,
    StorageFullError,
    StorageIOError,
    UnsafePathError,
)
from reprocas.package.streams import PIECE, Hashing

MAX_MEMBERS = 1_000_000
MAX_RATIO = 1000  # uncompressed : compressed, for members over RATIO_FROM bytes
RATIO_FROM = 1 << 20
HELD_MAX = 256 << 20  # a metadata member (an object, the index, a manifest) held in memory
MAX_NAME = 4096
MAX_DEPTH = 128
# Top-level names a bag of ours has (RFC 8493 tag files); nothing else outside data/.
TAG_FILES = ("bagit.txt", "bag-info.txt")
TAG_PREFIXES = ("manifest-", "tagmanifest-")
HELD_PREFIX = "data/reprocas/"
STAGED_PREFIX = "data/reprocas/blobs/"


class PackageError(IntegrityError):
    """A package that is damaged, lies about its content, or is not a reprocas package
    (exit code 6); ``file`` names the file of the package at fault."""


class HostileArchiveError(PackageError):
    """A zip that breaks the import's bounds (too many members, a zip bomb's ratio, a
    size that lies, an odd entry); ``file`` names the member."""


def safe_name(name: str) -> str:
    """Refuse a zip entry whose name could land outside the bag (zip-slip)."""
    pure = PurePosixPath(name)
    bad = (
        not name
        or "\\" in name
        or "\0" in name
        or pure.is_absolute()
        or name.startswith("/")
        or any(p in ("..", ".") for p in pure.parts)
        or (len(name) > 1 and name[1] == ":")
    )
    if bad:
        raise UnsafePathError(f"package: entry {name!r} would land outside the bag", file=name)
    return name


@dataclass
class ZipRead:
    """What a package's zip holds: tag files (bytes), and per payload file (relative
    to ``data/``) its size, BLAKE3, bytes if held, staging file if staged; the bag's
    digests (SHA-256, SHA-512) of every member, by its name in the zip."""

    tags: dict[str, bytes] = field(default_factory=dict)
    payload: dict[str, tuple[int, bytes, bytes | None, Path | None]] = field(default_factory=dict)
    digests: dict[str, dict[str, str]] = field(default_factory=dict)


def _hostile(name: str, why: str) -> HostileArchiveError:
    return HostileArchiveError(f"package: entry {name} {why}; nothing was imported", file=name)


def _held(name: str) -> bool:
    return (
        not name.startswith("data/")
        or (name.startswith(HELD_PREFIX) and not name.startswith(STAGED_PREFIX))
        or name == "data/ro-crate-metadata.json"
    )


# A central directory record is 46 bytes and its name, extra field and comment; more
# than this per declared member means the end record's count lies.
MAX_RECORD = 46 + MAX_NAME + 2048


def _declared_members(path: Path, max_members: int) -> None:
    """The member count the end-of-central-directory record declares, checked before
    zipfile parses the central directory (which it holds whole, an object per member):
    too many members, or a directory too big for the count it declares, is refused."""
    with path.open("rb") as f:
        end = zipfile._EndRecData(f)  # type: ignore[attr-defined]
    if not end:
        return  # not a zip: zipfile says so next
    count, size = int(end[zipfile._ECD_ENTRIES_TOTAL]), int(end[zipfile._ECD_SIZE])  # type: ignore[attr-defined]
    if count > max_members:
        raise HostileArchiveError(
            f"package: {path} has {count} members, more than the {max_members} an import "
            "takes (--max-members); nothing was imported",
            file=str(path),
        )
    if size > max(count, 1) * MAX_RECORD:
        raise HostileArchiveError(
            f"package: {path} declares {count} members in a central directory of {size} "
            "bytes (room for far more: the count lies); nothing was imported",
            file=str(path),
        )


def check_entries(path: Path, z: zipfile.ZipFile, max_members: int) -> list[zipfile.ZipInfo]:
    """Every member held to the bounds above, before any is read; the files to read."""
    if len(z.infolist()) > max_members:  # the end record said fewer
        raise HostileArchiveError(
            f"package: {path} has {len(z.infolist())} members, more than the {max_members} "
            "an import takes (--max-members); nothing was imported",
            file=str(path),
        )
    files: list[zipfile.ZipInfo] = []
    seen: set[str] = set()
    dirs: set[str] = set()
    for info in z.infolist():
        name = safe_name(info.filename)
        if len(name) > MAX_NAME or name.count("/") > MAX_DEPTH:
            raise _hostile(name[:200] + "...", f"has a name longer or deeper than {MAX_NAME} "
                           f"bytes or {MAX_DEPTH} levels")  # fmt: skip
        mode = info.external_attr >> 16
        if stat.S_ISLNK(mode):
            raise UnsafePathError(f"package: entry {name} is a symbolic link", file=name)
        kind = stat.S_IFMT(mode)
        if info.create_system == 3 and kind and kind not in (stat.S_IFREG, stat.S_IFDIR):
            raise _hostile(name, f"is not a regular file (mode {mode:o})")
        if info.flag_bits & 0x1:
            raise _hostile(name, "is encrypted")
        if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
            raise _hostile(
                name, f"uses compression method {info.compress_type} (only stored and deflated)"
            )
        if info.is_dir():
            if info.file_size or info.compress_size:
                raise _hostile(name, "is a directory that holds data")
            dirs.add(name.rstrip("/"))
            continue
        if name in seen:
            raise PackageError(f"package: entry {name} appears twice", file=name)
        seen.add(name)
        top = "/" not in name
        if not name.startswith("data/") and not (
            top and (name in TAG_FILES or name.startswith(TAG_PREFIXES))
        ):
            raise _hostile(name, "is outside data/ and not a tag file of the bag (a nested "
                           "or foreign layout)")  # fmt: skip
        size, packed = info.file_size, info.compress_size
        if size > RATIO_FROM and size > MAX_RATIO * max(packed, 1):
            raise _hostile(
                name,
                f"declares {size} bytes from {packed} compressed (a ratio over "
                f"{MAX_RATIO}:1: a zip bomb)",
            )
        if info.compress_type == zipfile.ZIP_STORED and size != packed:
            raise _hostile(name, f"is stored uncompressed but declares {size} bytes in {packed}")
        if _held(name) and size > HELD_MAX:
            raise _hostile(name, f"declares {size} bytes, more than a metadata file may hold")
        files.append(info)
    for d in sorted(seen):
        parts = d.split("/")
        for i in range(1, len(parts)):
            if "/".join(parts[:i]) in seen:
                raise _hostile("/".join(parts[:i]), f"is a file and the directory of {d}")
    return files


def _disk(path: Path, stage: Path, files: list[zipfile.ZipInfo]) -> None:
    need = sum(i.file_size for i in files if not _held(i.filename))
    free = shutil.disk_usage(stage).free
    if need > free:
        raise StorageFullError(
            f"package: {path} unpacks to {need} bytes of data, and {stage.parent} has "
            f"{free} bytes free; nothing was imported. Free space (the import then needs "
            "about as much again for the store) and import again",
            path=str(stage),
        )


def _read(
    z: zipfile.ZipFile, info: zipfile.ZipInfo, dest: Path | None, hold: bool
) -> tuple[Hashing, bytes]:
    """Read one member in pieces, hashing it, into ``dest``, or memory (``hold``), or
    nowhere (only its digests are wanted)."""
    h = Hashing()
    held: list[bytes] = []
    name = info.filename
    try:
        with z.open(info) as src, dest.open("xb") if dest is not None else _NoFile() as out:
            while piece := src.read(PIECE):
                h.update(piece)
                if h.size > info.file_size:
                    break
                if hold:
                    held.append(piece)
                elif dest is not None:
                    out.write(piece)
    except (zipfile.BadZipFile, EOFError, ValueError, NotImplementedError) as exc:
        raise _hostile(name, f"does not read back as it declares ({exc})") from exc
    except OSError as exc:
        if exc.errno == errno.ENOSPC:
            raise StorageFullError(
                f"package: the disk filled while {name} was staged; nothing was imported",
                path=str(dest),
            ) from exc
        if dest is None or not str(exc.filename or "").startswith(str(dest)):
            raise _hostile(name, f"cannot be read ({exc})") from exc
        raise StorageIOError(f"package: cannot stage {name}: {exc}", path=str(dest)) from exc
    if h.size != info.file_size:
        raise _hostile(name, f"declares {info.file_size} bytes but holds {h.size}")
    return h, b"".join(held)


class _NoFile:
    def __enter__(self) -> _NoFile:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def write(self, data: bytes) -> int:
        return len(data)


def read_zip(path: Path, stage: Path | None, max_members: int = MAX_MEMBERS) -> ZipRead:
    """Every member of the zip, checked (module docstring); data members staged under
    ``stage`` (an empty directory the caller removes), or only hashed (``None``)."""
    if not path.exists():
        raise SourceNotFoundError(f"no such package: {path}", path=str(path))
    try:
        _declared_members(path, max_members)
        z = zipfile.ZipFile(path)
    except (OSError, zipfile.BadZipFile, ValueError) as exc:
        raise PackageError(
            f"package: {path} is not a readable zip file ({exc})", file=str(path)
        ) from exc
    out = ZipRead()
    with z:
        files = check_entries(path, z, max_members)
        if stage is not None:
            _disk(path, stage, files)
        for n, info in enumerate(files):
            name = info.filename
            hold = _held(name)
            dest = None if hold or stage is None else stage / str(n)
            h, data = _read(z, info, dest, hold)
            d = h.digests()
            out.digests[name] = {"sha256": d.sha256, "sha512": d.sha512, "size": str(d.size)}
            if not name.startswith("data/"):
                out.tags[name] = data
            else:
                b3 = bytes.fromhex(d.blake3)
                out.payload[name[5:]] = (d.size, b3, data if hold else None, dest)
    return out
