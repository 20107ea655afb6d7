"""The structured objects of the store, as frozen values.

Each object converts to and from a *wire* form made only of maps with string keys,
lists, strings, bytes, integers, booleans and None; ``reprocas.store.codec`` encodes
that canonically with msgpack, and the object's id is the BLAKE3 of the encoding.
The schemas are written down in docs/FORMAT.md.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from reprocas.model.ids import ObjectId

FILE = "file"
TREE = "tree"
SNAPSHOT = "snapshot"

EntryKind = Literal["file", "dir", "symlink"]


def _id(value: Any) -> ObjectId:
    if not isinstance(value, bytes):
        raise ValueError(f"expected an id (bytes), got {type(value).__name__}")
    return ObjectId(value)


@dataclass(frozen=True, slots=True)
class FileManifest:
    """A file's content: its size, whole-file digest, and its chunks in order."""

    size: int
    digest: bytes
    chunks: tuple[tuple[bytes, int], ...]  # (chunk digest, length)

    def to_wire(self) -> dict[str, Any]:
        return {
            "type": FILE,
            "size": self.size,
            "digest": self.digest,
            "chunks": [[d, n] for d, n in self.chunks],
        }

    @classmethod
    def from_wire(cls, w: dict[str, Any]) -> FileManifest:
        return cls(
            size=int(w["size"]),
            digest=bytes(w["digest"]),
            chunks=tuple((bytes(d), int(n)) for d, n in w["chunks"]),
        )


@dataclass(frozen=True, slots=True)
class TreeEntry:
    """One name in a directory.

    ``target`` is the manifest id (file), the subtree id (dir) or the link text as
    UTF-8 bytes (symlink). ``mode`` holds the permission bits. ``size`` is the file
    size (0 for directories and links).
    """

    name: str
    kind: EntryKind
    mode: int
    target: bytes
    size: int = 0

    def to_wire(self) -> list[Any]:
        return [self.name, self.kind, self.mode, self.target, self.size]

    @classmethod
    def from_wire(cls, w: list[Any]) -> TreeEntry:
        name, kind, mode, target, size = w
        if kind not in ("file", "dir", "symlink"):
            raise ValueError(f"unknown tree entry kind {kind!r}")
        return cls(str(name), kind, int(mode), bytes(target), int(size))


@dataclass(frozen=True, slots=True)
class Tree:
    """A directory: entries sorted by the UTF-8 bytes of their names."""

    entries: tuple[TreeEntry, ...]

    def to_wire(self) -> dict[str, Any]:
        return {"type": TREE, "entries": [e.to_wire() for e in self.entries]}

    @classmethod
    def from_wire(cls, w: dict[str, Any]) -> Tree:
        return cls(tuple(TreeEntry.from_wire(e) for e in w["entries"]))

    @staticmethod
    def sorted(entries: list[TreeEntry]) -> Tree:
        return Tree(tuple(sorted(entries, key=lambda e: e.name.encode("utf-8", "surrogateescape"))))


@dataclass(frozen=True, slots=True)
class Snapshot:
    """One version of something: a dataset version, an environment, a run's output.

    ``root`` is the tree of the version. ``source`` says whether a directory
    (``"dir"``) or a single file (``"file"``; the tree then holds that one file) was
    committed.
    """

    kind: str
    name: str
    root: ObjectId
    parent: ObjectId | None
    time_ns: int
    author: str
    message: str
    step: str | None
    source: str
    files: int
    logical_bytes: int
    extra: dict[str, Any] = field(default_factory=dict)

    def to_wire(self) -> dict[str, Any]:
        return {
            "type": SNAPSHOT,
            "kind": self.kind,
            "name": self.name,
            "root": self.root.raw,
            "parent": self.parent.raw if self.parent else None,
            "time_ns": self.time_ns,
            "author": self.author,
            "message": self.message,
            "step": self.step,
            "source": self.source,
            "files": self.files,
            "logical_bytes": self.logical_bytes,
            "extra": self.extra,
        }

    @classmethod
    def from_wire(cls, w: dict[str, Any]) -> Snapshot:
        parent = w.get("parent")
        return cls(
            kind=str(w["kind"]),
            name=str(w["name"]),
            root=_id(w["root"]),
            parent=_id(parent) if parent is not None else None,
            time_ns=int(w["time_ns"]),
            author=str(w["author"]),
            message=str(w["message"]),
            step=w.get("step"),
            source=str(w["source"]),
            files=int(w["files"]),
            logical_bytes=int(w["logical_bytes"]),
            extra=dict(w.get("extra") or {}),
        )


AnyObject = FileManifest | Tree | Snapshot


def object_from_wire(w: dict[str, Any]) -> AnyObject:
    """Decode any object by its ``type`` field."""
    t = w.get("type")
    if t == FILE:
        return FileManifest.from_wire(w)
    if t == TREE:
        return Tree.from_wire(w)
    if t == SNAPSHOT:
        return Snapshot.from_wire(w)
    raise ValueError(f"unknown object type {t!r}")
