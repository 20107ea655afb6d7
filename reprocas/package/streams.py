"""Package bytes in bounded memory: stored files read in batches of chunks (export),
zip members written and read in pieces with their SHA-256, SHA-512 and BLAKE3 computed
on the way (export and import), so a package of any size needs a few batches of RAM."""

from __future__ import annotations

import hashlib
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import blake3

from reprocas.model.chunking import SMALL_FILE
from reprocas.model.objects import TreeEntry
from reprocas.store import checkout as checkout_mod
from reprocas.store.files import file_manifest
from reprocas.store.frames import FrameCache
from reprocas.store.reader import StoreFile
from reprocas.store.repository import Repository

# What one read of the store or of a zip member holds at most.
BATCH = 2 << 20
PIECE = 1 << 20


@dataclass(frozen=True)
class Stored:
    """A stored file a package carries: read from the store when the zip is written."""

    entry: TreeEntry
    label: str
    sha256: str

    @property
    def size(self) -> int:
        return int(self.entry.size or 0)

    @property
    def blake3(self) -> str:
        return self.entry.target.hex()


def iter_stored(
    repo: Repository, entry: TreeEntry, label: str, cache: FrameCache | None = None
) -> Iterator[bytes]:
    """The verified bytes of a stored file in pieces of about :data:`BATCH` bytes
    (each batch of chunks decoded natively; every chunk checked against its digest).

    A small file is read through ``cache`` when one is given: small files share frames
    with their neighbours (reprocas.store.writer.Writer.add_shared), and one cache for
    a whole package decodes each shared frame once rather than once per file."""
    if cache is not None and int(entry.size or 0) < SMALL_FILE:
        with repo.index.read() as txn:
            manifest = file_manifest(repo, txn, entry)
        f = StoreFile(repo, manifest, label, cache)
        try:
            yield f.pread(0, manifest.size)
        finally:
            f.close()
        return
    with repo.index.read() as txn:
        chunks = list(file_manifest(repo, txn, entry).chunks)
    batch: list[tuple[bytes, int]] = []
    held = 0
    for ch in [*chunks, (b"", -1)]:
        if ch[1] >= 0:
            batch.append(ch)
            held += ch[1]
        if batch and (held >= BATCH or ch[1] < 0):
            with repo.index.read() as txn:
                pieces = checkout_mod.read_chunks(repo, txn, batch, label)
            while pieces:  # each chunk's bytes let go once used
                yield pieces.pop(0)
            batch, held = [], 0


def sha256_stored(
    repo: Repository, entry: TreeEntry, label: str, cache: FrameCache | None = None
) -> tuple[str, int]:
    """SHA-256 and size of a stored file, read in batches (see :func:`iter_stored`)."""
    h, n = hashlib.sha256(), 0
    for piece in iter_stored(repo, entry, label, cache):
        h.update(piece)
        n += len(piece)
    return h.hexdigest(), n


@dataclass
class Digests:
    size: int = 0
    sha256: str = ""
    sha512: str = ""
    blake3: str = ""


class Hashing:
    """SHA-256, SHA-512 (the bag's manifests) and BLAKE3 (the package's list) at once."""

    def __init__(self, blake: bool = True) -> None:
        self._h = [hashlib.sha256(), hashlib.sha512()]
        self._b = blake3.blake3(max_threads=blake3.blake3.AUTO) if blake else None
        self.size = 0

    def update(self, data: bytes) -> None:
        for h in self._h:
            h.update(data)
        if self._b is not None:
            self._b.update(data)
        self.size += len(data)

    def digests(self) -> Digests:
        b = self._b.hexdigest() if self._b is not None else ""
        return Digests(self.size, self._h[0].hexdigest(), self._h[1].hexdigest(), b)


def zip_info(
    name: str, size: int, when: tuple[int, int, int, int, int, int], level: int
) -> zipfile.ZipInfo:
    """A member's header: fixed time, mode 0644, deflated, its size declared up front
    (so a member over 2 GiB gets its ZIP64 fields, and the header is the same bytes a
    ``writestr`` of the whole member would give)."""
    info = zipfile.ZipInfo(name, when)
    info.external_attr = 0o100644 << 16
    info.create_system = 3
    info.compress_type = zipfile.ZIP_DEFLATED
    info.file_size = size
    setattr(info, "_compresslevel", level)  # noqa: B010 (what writestr(compresslevel=) sets)
    return info


def write_member(
    z: zipfile.ZipFile, info: zipfile.ZipInfo, pieces: Iterator[bytes] | bytes
) -> Digests:
    """Write one member from bytes or from pieces, hashing what is written."""
    h = Hashing(blake=False)
    with z.open(info, "w", force_zip64=info.file_size > zipfile.ZIP64_LIMIT) as out:
        for piece in [pieces] if isinstance(pieces, bytes) else pieces:
            h.update(piece)
            out.write(piece)
    return h.digests()


def file_digest_sha256(path: Path) -> str:
    with path.open("rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()
