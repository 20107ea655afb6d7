"""Reading a package back: the zip's entries (no path may escape the bag), the bag's
checksums, the BLAKE3 list, and the canonical objects, each refused naming the file."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import blake3

from reprocas.errors import IntegrityError, SourceError
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
from reprocas.package.limits import MAX_MEMBERS, PackageError, read_zip, safe_name
from reprocas.package.streams import PIECE
from reprocas.store import codec

__all__ = ["Member", "Package", "PackageError", "read_data_file", "read_package"]


@dataclass
class Member:
    """One payload file of a package: its bytes (metadata, kept in memory) or the file
    it was staged to (or, with ``--data-dir``, the file supplied), with its digests."""

    name: str
    size: int
    blake3: bytes
    data: bytes | None = None
    path: Path | None = None
    staged: bool = False

    def read_bytes(self) -> bytes:
        if self.data is not None:
            return self.data
        assert self.path is not None
        return self.path.read_bytes()


@dataclass
class Package:
    """A package read and checked: payload paths are relative to ``data/``; metadata
    members are held (``payload``), data members staged to files (``members``)."""

    path: Path
    payload: dict[str, bytes]
    index: dict[str, Any]
    objects: dict[bytes, Any] = field(default_factory=dict)  # id -> decoded wire
    raw: dict[bytes, bytes] = field(default_factory=dict)  # id -> canonical bytes
    members: dict[str, Member] = field(default_factory=dict)  # every payload file

    def blob(self, digest: bytes) -> Member | None:
        return self.members.get(f"{BLOBS}{digest.hex()}")

    def member(self, name: str) -> Member | None:
        return self.members.get(name)


def _check_blake3(payload: dict[str, bytes], members: dict[str, Member]) -> None:
    listed_raw = payload.get(DIGESTS)
    if listed_raw is None:
        raise PackageError(f"package: data/{DIGESTS} is missing", file=f"data/{DIGESTS}")
    listed = bagit._parse(listed_raw, f"data/{DIGESTS}")
    for p, digest in sorted(listed.items()):
        safe_name(p)
        m = members.get(p)
        if m is None:
            raise PackageError(f"package: data/{p} is listed in {DIGESTS} but missing", file=p)
        if m.blake3.hex() != digest:
            raise PackageError(f"package: data/{p} does not match its BLAKE3 digest", file=p)
    for p in sorted(set(members) - set(listed) - set(UNLISTED)):
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


def read_package(path: Path, stage: Path | None = None, max_members: int = MAX_MEMBERS) -> Package:
    """Read ``path`` in bounded memory (data members staged to files under ``stage``,
    or, without one, only hashed: their bytes are then not to be had)
    and check it whole: the zip's entries and limits (limits.py), the bag (every SHA-256
    and SHA-512), the BLAKE3 list, the index, and every object against its id."""
    read = read_zip(path, stage, max_members)
    bagit.check_digests(read.tags, read.digests)
    members: dict[str, Member] = {}
    for name, (size, b3, data, staged) in read.payload.items():
        members[name] = Member(name, size, b3, data, staged, staged is not None)
    payload = {p: m.data for p, m in members.items() if m.data is not None}
    _check_blake3(payload, members)
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
    pkg = Package(path, payload, index, members=members)
    _objects(pkg)
    return pkg


def read_data_file(data_dir: Path, ref: str, rel: str) -> Member | None:
    """A version's file supplied separately (``--data-dir DIR``: ``DIR/NAME@vN/PATH``),
    hashed in pieces (it is stored from where it is, not copied)."""
    p = data_dir / ref / rel
    try:
        if p.is_symlink() or not p.is_file():
            return None
        h = blake3.blake3(max_threads=blake3.blake3.AUTO)
        size = 0
        with p.open("rb") as f:
            while piece := f.read(PIECE):
                h.update(piece)
                size += len(piece)
        return Member(str(p), size, h.digest(), path=p)
    except OSError as exc:
        raise SourceError(f"cannot read {p}: {exc.strerror or exc}", path=str(p)) from exc
