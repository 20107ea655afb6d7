"""Reading a package back: the zip's entries (no path may escape the bag), the bag's
checksums, the BLAKE3 list, and the canonical objects, each refused naming the file."""

from __future__ import annotations

import json
import stat
import zipfile
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from reprocas.errors import IntegrityError, SourceError, SourceNotFoundError, UnsafePathError
from reprocas.native import core
from reprocas.package import bagit
from reprocas.package.export import (
    BLOBS,
    DIGESTS,
    INDEX,
    OBJECTS,
    PACKAGE_FORMAT,
    PACKAGE_VERSION,
    UNLISTED,
)
from reprocas.store import codec


class PackageError(IntegrityError):
    """A package that is damaged, lies about its content, or is not a reprocas package
    (exit code 6); ``file`` names the file of the package at fault."""


@dataclass
class Package:
    """A package read whole and checked: payload paths are relative to ``data/``."""

    path: Path
    payload: dict[str, bytes]
    index: dict[str, Any]
    objects: dict[bytes, Any] = field(default_factory=dict)  # id -> decoded wire
    raw: dict[bytes, bytes] = field(default_factory=dict)  # id -> canonical bytes

    def blob(self, digest: bytes) -> bytes | None:
        return self.payload.get(f"{BLOBS}{digest.hex()}")


def _safe_name(name: str) -> str:
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


def read_zip(path: Path) -> dict[str, bytes]:
    """Every file of the zip by name; directories skipped; links, duplicates and
    unsafe names refused."""
    if not path.exists():
        raise SourceNotFoundError(f"no such package: {path}", path=str(path))
    try:
        z = zipfile.ZipFile(path)
    except (OSError, zipfile.BadZipFile) as exc:
        raise PackageError(
            f"package: {path} is not a readable zip file ({exc})", file=str(path)
        ) from exc
    out: dict[str, bytes] = {}
    with z:
        for info in z.infolist():
            name = _safe_name(info.filename)
            if info.is_dir():
                continue
            mode = info.external_attr >> 16
            if stat.S_ISLNK(mode):
                raise UnsafePathError(f"package: entry {name} is a symbolic link", file=name)
            if name in out:
                raise PackageError(f"package: entry {name} appears twice", file=name)
            try:
                out[name] = z.read(info)
            except (zipfile.BadZipFile, OSError, ValueError) as exc:
                raise PackageError(f"package: {name} cannot be read ({exc})", file=name) from exc
    return out


def _check_blake3(payload: dict[str, bytes]) -> None:
    listed_raw = payload.get(DIGESTS)
    if listed_raw is None:
        raise PackageError(f"package: data/{DIGESTS} is missing", file=f"data/{DIGESTS}")
    listed = bagit._parse(listed_raw, f"data/{DIGESTS}")
    for p, digest in sorted(listed.items()):
        _safe_name(p)
        data = payload.get(p)
        if data is None:
            raise PackageError(f"package: data/{p} is listed in {DIGESTS} but missing", file=p)
        if core.blake3_digest(data).hex() != digest:
            raise PackageError(f"package: data/{p} does not match its BLAKE3 digest", file=p)
    for p in sorted(set(payload) - set(listed) - set(UNLISTED)):
        raise PackageError(f"package: data/{p} is not listed in {DIGESTS}", file=p)


def _objects(pkg: Package) -> None:
    for p, raw in sorted(pkg.payload.items()):
        if not p.startswith(OBJECTS):
            continue
        name = p[len(OBJECTS) :]
        try:
            oid = bytes.fromhex(name)
        except ValueError:
            oid = b""
        if len(oid) != 32:
            raise PackageError(f"package: data/{p} is not named by an object id", file=p)
        if core.blake3_digest(raw) != oid:
            raise PackageError(f"package: data/{p} does not hash to its name", file=p)
        try:
            wire = codec.decode(raw)
        except IntegrityError as exc:
            raise PackageError(f"package: data/{p} does not decode ({exc})", file=p) from exc
        if codec.encode(wire) != raw:
            raise PackageError(f"package: data/{p} is not in canonical form", file=p)
        pkg.objects[oid] = wire
        pkg.raw[oid] = raw


def read_package(path: Path) -> Package:
    """Read ``path`` and check it whole: the bag (every SHA-256 and SHA-512), the
    BLAKE3 list, the index, and every object against its id."""
    bag = read_zip(path)
    bagit.check_bag(bag)
    payload = {p[5:]: b for p, b in bag.items() if p.startswith("data/")}
    _check_blake3(payload)
    try:
        index = json.loads(payload[INDEX])
    except (KeyError, ValueError) as exc:
        raise PackageError(
            f"package: data/{INDEX} is missing or not JSON; not a reprocas package",
            file=f"data/{INDEX}",
        ) from exc
    if not isinstance(index, dict) or index.get("format") != PACKAGE_FORMAT:
        raise PackageError(f"package: data/{INDEX} is not a reprocas package index", file=INDEX)
    if index.get("version") != PACKAGE_VERSION:
        raise PackageError(
            f"package: version {index.get('version')!r} is not one this reprocas reads "
            f"(it reads {PACKAGE_VERSION})",
            file=INDEX,
        )
    pkg = Package(path, payload, index)
    _objects(pkg)
    return pkg


def read_data_file(data_dir: Path, ref: str, rel: str) -> bytes | None:
    """A version's file supplied separately (``--data-dir DIR``: ``DIR/NAME@vN/PATH``)."""
    p = data_dir / ref / rel
    try:
        if p.is_symlink() or not p.is_file():
            return None
        return p.read_bytes()
    except OSError as exc:
        raise SourceError(f"cannot read {p}: {exc.strerror or exc}", path=str(p)) from exc
