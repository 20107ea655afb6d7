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
TABLE = "table"
ENVIRONMENT = "environment"
RUN = "run"
CHUNKMAP = "chunkmap"
NOTE = "note"
NOTE_KINDS = ("decision", "observation", "question", "answer")

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
class ChunkMap:
    """Format 3: how one repository cut a file — its chunks under one chunking setting.

    Storage-layer data that enters no content id: the tree names the file by its
    ``digest``; the index's ``chunkmaps`` sub-database maps ``digest ‖ chunking`` to this
    object, and since the object carries both halves, ``index rebuild`` recreates it.
    """

    size: int
    digest: bytes
    chunking: bytes  # BLAKE3 of the canonical encoding of the chunking settings
    chunks: tuple[tuple[bytes, int], ...]

    def to_wire(self) -> dict[str, Any]:
        return {
            "type": CHUNKMAP,
            "size": self.size,
            "digest": self.digest,
            "chunking": self.chunking,
            "chunks": [[d, n] for d, n in self.chunks],
        }

    @classmethod
    def from_wire(cls, w: dict[str, Any]) -> ChunkMap:
        return cls(
            size=int(w["size"]),
            digest=bytes(w["digest"]),
            chunking=bytes(w["chunking"]),
            chunks=tuple((bytes(d), int(n)) for d, n in w["chunks"]),
        )

    def manifest(self) -> FileManifest:
        """The chunk list as every reader of file data takes it."""
        return FileManifest(self.size, self.digest, self.chunks)


@dataclass(frozen=True, slots=True)
class TreeEntry:
    """One name in a directory.

    ``target`` is the manifest id (file; in format 3 the file digest, see
    reprocas.store.files), the subtree id (dir) or the link text as UTF-8 bytes
    (symlink). ``mode`` holds the permission bits. ``size`` is the file
    size (0 for directories and links).
    """

    name: str
    kind: EntryKind
    mode: int
    target: bytes
    size: int = 0
    meta: bytes | None = None  # id of a TableRecord for tabular files

    def to_wire(self) -> list[Any]:
        w: list[Any] = [self.name, self.kind, self.mode, self.target, self.size]
        if self.meta is not None:
            w.append(self.meta)
        return w

    @classmethod
    def from_wire(cls, w: list[Any]) -> TreeEntry:
        name, kind, mode, target, size = w[:5]
        if kind not in ("file", "dir", "symlink"):
            raise ValueError(f"unknown tree entry kind {kind!r}")
        meta = bytes(w[5]) if len(w) > 5 and w[5] is not None else None
        return cls(str(name), kind, int(mode), bytes(target), int(size), meta)


@dataclass(frozen=True, slots=True)
class Tree:
    """A directory: entries sorted by the UTF-8 bytes of their names.

    ``version`` 3 (format 3) names files by their digest and has no table field; its
    wire form says ``"v": 3``, so its id is a content id (docs/FORMAT.md).
    """

    entries: tuple[TreeEntry, ...]
    version: int = 2

    def to_wire(self) -> dict[str, Any]:
        w: dict[str, Any] = {"type": TREE, "entries": [e.to_wire() for e in self.entries]}
        if self.version >= 3:
            w["v"] = self.version
        return w

    @classmethod
    def from_wire(cls, w: dict[str, Any]) -> Tree:
        version = w.get("v", 2)
        if type(version) is not int or version not in (2, 3):
            raise ValueError(f"unknown tree version {version!r}")
        return cls(tuple(TreeEntry.from_wire(e) for e in w["entries"]), version)

    @staticmethod
    def sorted(entries: list[TreeEntry], version: int = 2) -> Tree:
        return Tree(
            tuple(sorted(entries, key=lambda e: e.name.encode("utf-8", "surrogateescape"))),
            version,
        )


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


@dataclass(frozen=True, slots=True)
class Environment:
    """The facts of an environment snapshot: interpreter, platform, packages, allowlisted
    variables, code state (schema in docs/ENVIRONMENT.md).

    Facts hold no timestamps or host-volatile values, so equal environments are one
    object with one id; a snapshot names its facts in ``extra["environment"]``.
    """

    facts: dict[str, Any]

    def to_wire(self) -> dict[str, Any]:
        return {"type": ENVIRONMENT, "facts": self.facts}

    @classmethod
    def from_wire(cls, w: dict[str, Any]) -> Environment:
        facts = w.get("facts")
        if not isinstance(facts, dict):
            raise ValueError("an environment object needs a 'facts' map")
        return cls(dict(facts))


@dataclass(frozen=True, slots=True)
class TableRecord:
    """What a tabular file holds, recorded at commit beside its manifest.

    ``schema`` is the Arrow schema serialised as an IPC message; ``fingerprint`` the
    BLAKE3 of those bytes (reading the table back must give the same fingerprint).
    ``row_groups`` lists ``(rows, compressed bytes)`` per Parquet row group.
    """

    format: str  # "parquet" | "arrow" | "csv"
    schema: bytes
    fingerprint: bytes
    rows: int
    columns: tuple[str, ...]
    row_groups: tuple[tuple[int, int], ...] = ()
    # Format 3: the digest of the file it describes (the ``tables`` sub-database's key,
    # so that ``index rebuild`` recreates it); format 2 names the record in the tree.
    digest: bytes | None = None

    def to_wire(self) -> dict[str, Any]:
        w = self._wire()
        if self.digest is not None:
            w["digest"] = self.digest
        return w

    def _wire(self) -> dict[str, Any]:
        return {
            "type": TABLE,
            "format": self.format,
            "schema": self.schema,
            "fingerprint": self.fingerprint,
            "rows": self.rows,
            "columns": list(self.columns),
            "row_groups": [[r, b] for r, b in self.row_groups],
        }

    @classmethod
    def from_wire(cls, w: dict[str, Any]) -> TableRecord:
        return cls(
            format=str(w["format"]),
            schema=bytes(w["schema"]),
            fingerprint=bytes(w["fingerprint"]),
            rows=int(w["rows"]),
            columns=tuple(str(c) for c in w["columns"]),
            row_groups=tuple((int(r), int(b)) for r, b in w.get("row_groups") or ()),
            digest=bytes(w["digest"]) if w.get("digest") is not None else None,
        )


@dataclass(frozen=True, slots=True)
class Run:
    """One recorded run: what was executed, with which inputs, environment, code and
    parameters, and what it produced (schema in docs/FORMAT.md, meaning in docs/RUNS.md).

    ``inputs`` and ``outputs`` are maps with the resolved snapshot id under
    ``"snapshot"``; ``root`` is the tree of the run's own files (stdout, stderr, the
    uncommitted code diff). ``metrics`` maps a name to ``{"kind": "scalar", "value": x}``
    or ``{"kind": "series", "values": [...]}``.
    """

    name: str
    number: int
    command: tuple[str, ...]
    cwd: str
    host: str
    user: str
    start_ns: int
    end_ns: int
    exit_code: int
    status: str  # "ok" | "failed"
    params: dict[str, Any]
    inputs: tuple[dict[str, Any], ...]
    outputs: tuple[dict[str, Any], ...]
    metrics: dict[str, Any]
    environment: ObjectId | None
    code: dict[str, Any] | None
    root: ObjectId | None
    errors: tuple[str, ...] = ()
    extra: dict[str, Any] = field(default_factory=dict)

    def to_wire(self) -> dict[str, Any]:
        return {
            "type": RUN,
            "name": self.name,
            "number": self.number,
            "command": list(self.command),
            "cwd": self.cwd,
            "host": self.host,
            "user": self.user,
            "start_ns": self.start_ns,
            "end_ns": self.end_ns,
            "exit_code": self.exit_code,
            "status": self.status,
            "params": self.params,
            "inputs": list(self.inputs),
            "outputs": list(self.outputs),
            "metrics": self.metrics,
            "environment": self.environment.raw if self.environment else None,
            "code": self.code,
            "root": self.root.raw if self.root else None,
            "errors": list(self.errors),
            "extra": self.extra,
        }

    @classmethod
    def from_wire(cls, w: dict[str, Any]) -> Run:
        env = w.get("environment")
        root = w.get("root")
        return cls(
            name=str(w["name"]),
            number=int(w["number"]),
            command=tuple(str(c) for c in w["command"]),
            cwd=str(w["cwd"]),
            host=str(w["host"]),
            user=str(w["user"]),
            start_ns=int(w["start_ns"]),
            end_ns=int(w["end_ns"]),
            exit_code=int(w["exit_code"]),
            status=str(w["status"]),
            params=dict(w.get("params") or {}),
            inputs=tuple(dict(i) for i in w.get("inputs") or ()),
            outputs=tuple(dict(o) for o in w.get("outputs") or ()),
            metrics=dict(w.get("metrics") or {}),
            environment=_id(env) if env is not None else None,
            code=dict(w["code"]) if w.get("code") is not None else None,
            root=_id(root) if root is not None else None,
            errors=tuple(str(e) for e in w.get("errors") or ()),
            extra=dict(w.get("extra") or {}),
        )

    def snapshot_ids(self) -> list[ObjectId]:
        """Every snapshot the run names: inputs, outputs and its environment."""
        out = [_id(x["snapshot"]) for x in (*self.inputs, *self.outputs) if x.get("snapshot")]
        if self.environment is not None:
            out.append(self.environment)
        return out


@dataclass(frozen=True, slots=True)
class Note:
    """A decision note: what someone said about recorded things (docs/NOTES.md).

    Only what the note *says* enters its id — text, kind, author, what it is about,
    what it supersedes, whether it protects its subjects — so the same note written
    twice is one object. When it was recorded is a fact of the record, kept in the
    ``notes`` sub-database and the ref log (docs/FORMAT.md). ``about`` and
    ``supersedes`` are sets, encoded sorted.
    """

    text: str
    kind: str
    by: str
    about: tuple[ObjectId, ...]
    supersedes: tuple[ObjectId, ...] = ()
    protect: bool = False

    def to_wire(self) -> dict[str, Any]:
        w: dict[str, Any] = {
            "type": NOTE,
            "text": self.text,
            "kind": self.kind,
            "by": self.by,
            "about": sorted({a.raw for a in self.about}),
            "supersedes": sorted({s.raw for s in self.supersedes}),
        }
        if self.protect:
            w["protect"] = True
        return w

    @classmethod
    def from_wire(cls, w: dict[str, Any]) -> Note:
        kind = str(w["kind"])
        if kind not in NOTE_KINDS:
            raise ValueError(f"unknown note kind {kind!r}")
        return cls(
            text=str(w["text"]),
            kind=kind,
            by=str(w.get("by") or ""),
            about=tuple(_id(a) for a in w.get("about") or ()),
            supersedes=tuple(_id(s) for s in w.get("supersedes") or ()),
            protect=bool(w.get("protect", False)),
        )


AnyObject = FileManifest | ChunkMap | Tree | Snapshot | TableRecord | Environment | Run | Note


def object_from_wire(w: dict[str, Any]) -> AnyObject:
    """Decode any object by its ``type`` field."""
    t = w.get("type")
    if t == FILE:
        return FileManifest.from_wire(w)
    if t == TREE:
        return Tree.from_wire(w)
    if t == CHUNKMAP:
        return ChunkMap.from_wire(w)
    if t == SNAPSHOT:
        return Snapshot.from_wire(w)
    if t == TABLE:
        return TableRecord.from_wire(w)
    if t == ENVIRONMENT:
        return Environment.from_wire(w)
    if t == RUN:
        return Run.from_wire(w)
    if t == NOTE:
        return Note.from_wire(w)
    raise ValueError(f"unknown object type {t!r}")
