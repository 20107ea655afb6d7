"""A read-only pyarrow filesystem over one version: Arrow reads straight from the packs.

Paths are relative to the version's root (``"tables/encounters.parquet"``). Opening a
file gives a :class:`reprocas.store.reader.StoreFile` — real random access through the
file's chunk table, verified reads, and a shared, bounded cache of decoded frames — so
a Parquet reader that wants three columns of twenty reads only their column chunks.
"""

from __future__ import annotations

from typing import Any

import lmdb
import pyarrow as pa
import pyarrow.fs as pafs

from reprocas.errors import PathNotInVersionError
from reprocas.model.ids import ObjectId
from reprocas.model.objects import FileManifest, TreeEntry
from reprocas.store.checkout import find_entry
from reprocas.store.lease import Lease
from reprocas.store.reachability import iter_tree
from reprocas.store.reader import ChunkTable, FrameCache, StoreFile, chunk_table
from reprocas.store.repository import Repository, Version


class VersionFileSystem(pafs.FileSystemHandler):  # type: ignore[misc]
    """Serves the files of one version to pyarrow (wrap it in ``pyarrow.fs.PyFileSystem``)."""

    def __init__(self, repo: Repository, version: Version, cache: FrameCache | None = None) -> None:
        self.repo = repo
        self.version = version
        self.cache = cache or FrameCache()
        # Held for the filesystem's lifetime (a pyarrow dataset keeps it alive): the
        # chunk tables below are cached, so their packs must outlive any one open file.
        self.lease = Lease(repo)
        self.bytes_read = 0
        # Chunk tables by manifest id: a scan opens each file several times (discovery,
        # schema check, reading) and the table costs one index lookup per chunk.
        self._tables: dict[bytes, ChunkTable] = {}
        # Entries and manifests read while the lease was held (see preload).
        self._entries: dict[str, TreeEntry] = {}
        self._manifests: dict[bytes, FileManifest] = {}

    def preload(self, paths: list[str]) -> None:
        """Resolve these files (and the directories above them) and their chunk
        locations now, under this filesystem's lease: reading them later needs no
        index entry, so a prune that starts in between cannot break the read."""
        with self.repo.index.read() as txn:
            for path in paths:
                norm = self.normalize_path(path)
                parts = norm.split("/") if norm else []
                for i in range(len(parts) + 1):
                    sub = "/".join(parts[:i])
                    if sub not in self._entries:
                        self._entries[sub] = find_entry(self.repo, txn, self.version, sub)
                entry = self._entries[norm]
                if entry.kind == "file" and entry.target not in self._manifests:
                    m = self.repo.entry_manifest(txn, entry)
                    self._manifests[entry.target] = m
                    self._tables[entry.target] = chunk_table(self.repo, m, norm)

    # -- helpers ---------------------------------------------------------------------

    def _entry(self, txn: lmdb.Transaction, path: str) -> TreeEntry:
        cached = self._entries.get(path)
        if cached is not None:
            return cached
        return find_entry(self.repo, txn, self.version, path)

    def _info(self, path: str, entry: TreeEntry) -> pafs.FileInfo:
        if entry.kind == "dir":
            return pafs.FileInfo(path, pafs.FileType.Directory)
        return pafs.FileInfo(path, pafs.FileType.File, size=entry.size)

    def open_store_file(self, path: str) -> StoreFile:
        path = self.normalize_path(path)
        with self.repo.index.read() as txn:
            entry = self._entry(txn, path)
            if entry.kind != "file":
                raise PathNotInVersionError(
                    f"{path!r} is not a file in {self.version.ref}", path=path
                )
            manifest = self._manifests.get(entry.target) or self.repo.entry_manifest(txn, entry)
        table = self._tables.get(entry.target)
        if table is None:
            table = self._tables[entry.target] = chunk_table(self.repo, manifest, path)
        return _CountingFile(self, manifest, path, table)

    # -- FileSystemHandler -------------------------------------------------------------

    def get_type_name(self) -> str:
        return "reprocas"

    def normalize_path(self, path: str) -> str:
        return path.strip("/")

    def equals(self, other: Any) -> bool:
        return (
            isinstance(other, VersionFileSystem)
            and other.repo is self.repo
            and other.version.id == self.version.id
        )

    def get_file_info(self, paths: list[str]) -> list[pafs.FileInfo]:
        out = []
        with self.repo.index.read() as txn:
            for p in paths:
                norm = self.normalize_path(p)
                try:
                    out.append(self._info(norm, self._entry(txn, norm)))
                except PathNotInVersionError:
                    out.append(pafs.FileInfo(norm, pafs.FileType.NotFound))
        return out

    def get_file_info_selector(self, selector: pafs.FileSelector) -> list[pafs.FileInfo]:
        base = self.normalize_path(selector.base_dir)
        out: list[pafs.FileInfo] = []
        with self.repo.index.read() as txn:
            try:
                root = self._entry(txn, base)
            except PathNotInVersionError:
                if selector.allow_not_found:
                    return []
                raise FileNotFoundError(base) from None
            if root.kind != "dir":
                raise NotADirectoryError(base)

            prefix = f"{base}/" if base else ""
            found = (
                iter_tree(self.repo, txn, root.target, prefix)
                if selector.recursive
                else (
                    (prefix + e.name, e)
                    for e in self.repo.load_tree(txn, ObjectId(root.target)).entries
                )
            )
            out.extend(self._info(p, e) for p, e in found if e.kind != "symlink")
        return out

    def open_input_file(self, path: str) -> pa.NativeFile:
        return pa.PythonFile(self.open_store_file(path), mode="r")

    def open_input_stream(self, path: str) -> pa.NativeFile:
        return pa.PythonFile(self.open_store_file(path), mode="r")

    def _read_only(self, *args: Any, **kwargs: Any) -> Any:
        raise OSError(f"the files of {self.version.ref} are read-only")

    create_dir = delete_dir = delete_dir_contents = delete_root_dir_contents = _read_only
    delete_file = move = copy_file = open_output_stream = open_append_stream = _read_only


class _CountingFile(StoreFile):
    """A StoreFile that adds what it returns to its filesystem's ``bytes_read``."""

    def __init__(self, fs: VersionFileSystem, manifest: Any, path: str, table: ChunkTable) -> None:
        super().__init__(fs.repo, manifest, f"{fs.version.ref}:{path}", fs.cache, table)
        self._fs = fs

    def pread(self, offset: int, length: int) -> bytes:
        data = super().pread(offset, length)
        self._fs.bytes_read += len(data)
        return data
