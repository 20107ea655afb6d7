"""A repository on disk: its layout, format check, locks, objects and refs."""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import lmdb

from reprocas.errors import (
    AmbiguousRefError,
    FormatVersionError,
    IndexDamagedError,
    IntegrityError,
    InvalidNameError,
    InvalidParameterError,
    RefNotFoundError,
    RepositoryExistsError,
    RepositoryNotFoundError,
    ReprocasError,
    StorageIOError,
    known_names,
)
from reprocas.model.chunking import ChunkingConfig, CompressionConfig, DeltaConfig
from reprocas.model.ids import ObjectId, is_hex_prefix, prefix_range
from reprocas.model.objects import (
    AnyObject,
    ChunkMap,
    FileManifest,
    Snapshot,
    Tree,
    TreeEntry,
    object_from_wire,
)
from reprocas.native import core
from reprocas.store import codec
from reprocas.store.index import Index, unpack
from reprocas.store.packs import pack_path

FORMAT_NAME = "reprocas"
# The newest format this reprocas reads and writes.
FORMAT_VERSION = 3
# What `init` creates unless asked for another: format 3 (content ids). Format 2 is
# still created on request (`init --format 2`); `reprocas upgrade` brings it to 3.
FORMAT_VERSION_DEFAULT = 3
# Format 1 repositories (no delta frames) are read and written as they are; they get
# delta chunks only once `reprocas repack --deltas` upgrades them to format 2.
FORMAT_VERSION_NO_DELTAS = 1
FORMAT_VERSION_DELTAS = 2
# Format 3: trees name files by content digest, so a root tree id is a content id.
FORMAT_VERSION_CONTENT_IDS = 3
FORMAT_VERSIONS_CREATED = (FORMAT_VERSION_DELTAS, FORMAT_VERSION_CONTENT_IDS)
MARKER = "reprocas.json"
DOT_DIR = ".reprocas"
DEFAULT_PACK_SIZE = 32 << 20

_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*(/[A-Za-z0-9][A-Za-z0-9._-]*)*$")
_TAG_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
_VERSION_RE = re.compile(r"^v([0-9]+)$")


_ID_LIKE_RE = re.compile(r"^[0-9A-Fa-f]{6,}$")


def check_dataset_name(name: str, kind: str = "dataset") -> str:
    """A name a new dataset (or run: ``kind``) may have. One that is 6+ hex digits only
    is refused: it could be read as an id prefix (docs/CLI.md, "Refs")."""
    if not _NAME_RE.match(name) or len(name) > 200:
        raise InvalidNameError(
            f"invalid {kind} name {name!r}: use letters, digits, '.', '_', '-' and '/' "
            "between parts (no '@', spaces or leading punctuation)",
            name=name,
        )
    if _ID_LIKE_RE.match(name):
        raise InvalidNameError(
            f"invalid {kind} name {name!r}: 6 or more hex digits alone read as an id "
            f"prefix; add a letter outside a-f or a '-' (e.g. '{kind}-{name}')",
            name=name,
        )
    return name


def check_tag_name(tag: str) -> str:
    if not _TAG_RE.match(tag) or tag == "latest" or _VERSION_RE.match(tag) or len(tag) > 100:
        raise InvalidNameError(
            f"invalid tag {tag!r}: use letters, digits, '.', '_' and '-'; "
            "'latest' and 'vN' are reserved"
        )
    return tag


# Ref keys use ":" between their parts: it can appear in neither dataset names nor
# tags, so a name like "b/v" or "c/tag" never reads as another name's version or tag.
def version_ref(name: str, n: int) -> str:
    return f"ds:{name}:v:{n:010d}"


def tag_ref(name: str, tag: str) -> str:
    return f"ds:{name}:tag:{tag}"


def parse_ref_key(key: str) -> tuple[str, str, str] | None:
    """``ds:NAME:v:N`` / ``ds:NAME:tag:TAG`` -> (name, "v" | "tag", rest)."""
    parts = key.split(":")
    if len(parts) != 4 or parts[0] != "ds" or parts[2] not in ("v", "tag"):
        return None
    return parts[1], parts[2], parts[3]


@dataclass(frozen=True, slots=True)
class RepoConfig:
    chunking: ChunkingConfig
    compression: CompressionConfig
    pack_size: int = DEFAULT_PACK_SIZE
    deltas: DeltaConfig = field(default_factory=lambda: DeltaConfig(enabled=False))


@dataclass(frozen=True, slots=True)
class Version:
    """A resolved dataset version."""

    name: str
    number: int
    id: ObjectId
    snapshot: Snapshot
    tags: tuple[str, ...]
    # The format-2 id this version was reached by, when that id was upgraded to ``id``
    # (``reprocas upgrade``; the ``aliases`` sub-database).
    aliased_from: ObjectId | None = None

    @property
    def ref(self) -> str:
        return f"{self.name}@v{self.number}"


def find_root(start: Path | None = None, explicit: str | os.PathLike[str] | None = None) -> Path:
    """The repository for a command: ``explicit``, then $REPROCAS_REPO, then walking up."""
    candidates: list[Path] = []
    source = None
    if explicit is not None:
        candidates = [Path(explicit)]
        source = f"--repo {explicit}"
    elif os.environ.get("REPROCAS_REPO"):
        candidates = [Path(os.environ["REPROCAS_REPO"])]
        source = f"REPROCAS_REPO={os.environ['REPROCAS_REPO']}"
    if candidates:
        p = candidates[0]
        for root in (p, p / DOT_DIR):
            if (root / MARKER).is_file():
                return root
        raise RepositoryNotFoundError(
            f"no reprocas repository at {p} (from {source}); create one with `reprocas init`",
            path=str(p),
        )
    here = (start or Path.cwd()).resolve()
    for d in (here, *here.parents):
        if (d / DOT_DIR / MARKER).is_file():
            return d / DOT_DIR
    raise RepositoryNotFoundError(
        f"not inside a reprocas repository (no {DOT_DIR}/ in {here} or above); "
        "run `reprocas init`, or pass --repo PATH or set REPROCAS_REPO",
        path=str(here),
    )


class RefTransaction:
    """Ref changes inside :meth:`Repository.ref_transaction`."""

    def __init__(self, repo: Repository, txid: str) -> None:
        from reprocas.store.refcounts import Maintainer

        self.repo = repo
        self.id = txid
        self.txn: Any = None
        self.changed = False
        self._counts: Maintainer | None = None

    def _moved(self, name: bytes, new: bytes | None) -> None:
        """Move one ref and keep the reference counts (reprocas.store.refcounts) exact:
        the one place every ref change goes through."""
        if self._counts is None:
            from reprocas.store.refcounts import Maintainer

            self._counts = Maintainer(self.repo, self.txn)
        db = self.repo.index.db["refs"]
        old = self.txn.get(name, db=db)
        if new is None:
            self.txn.delete(name, db=db)
        else:
            self.txn.put(name, new, db=db)
        self._counts.moved(name, None if old is None else bytes(old), new)

    def set(self, refs: list[tuple[str, ObjectId]], time_ns: int | None = None) -> None:
        """Move refs, logged with ``time_ns`` (now when not given; a note's recorded
        time is the time its ref was set, so a rebuild restores it from the log)."""
        # A ref is never set to a format-2 id that was upgraded (a process that
        # resolved it before `reprocas upgrade`): it names what that id became.
        refs = [(r, self.repo.current_id(self.txn, oid)) for r, oid in refs]
        now = time.time_ns() if time_ns is None else time_ns
        self.repo.append_reflog(
            [
                {"op": "set", "ref": r, "id": oid.hex, "txn": self.id, "time_ns": now}
                for r, oid in refs
            ]
        )
        for r, oid in refs:
            self._moved(r.encode(), oid.raw)
        self.changed = True

    def delete(self, refs: list[tuple[str, ObjectId]]) -> None:
        """Remove refs (``(name, id it pointed at)``), logged like :meth:`set`."""
        now = time.time_ns()
        self.repo.append_reflog(
            [
                {"op": "delete", "ref": r, "id": oid.hex, "txn": self.id, "time_ns": now}
                for r, oid in refs
            ]
        )
        for r, _ in refs:
            self._moved(r.encode(), None)
        self.changed = True


class Repository:
    """An open repository. Use :meth:`init` or :meth:`open`; close it when done."""

    def __init__(
        self, root: Path, marker: dict[str, Any], *, new: bool = False, rebuilding: bool = False
    ) -> None:
        self.root = root
        self.marker = marker
        self.packs_dir = root / "packs"
        self.tmp_dir = root / "tmp"
        self.locks_dir = root / "locks"
        self.reflog_path = root / "reflog"
        try:
            self.config = RepoConfig(
                chunking=ChunkingConfig(**marker["chunking"]),
                compression=CompressionConfig(**marker["compression"]),
                pack_size=int(marker.get("pack_size", DEFAULT_PACK_SIZE)),
                deltas=DeltaConfig(**marker["deltas"])
                if marker.get("version", 1) >= 2 and "deltas" in marker
                else DeltaConfig(enabled=False),
            )
            c = self.config.chunking
            self.params = core.ChunkerParams(c.min_size, c.avg_size, c.max_size, c.seed)
            self.format_version = int(marker.get("version", 1))
            self._chunking_id = core.blake3_digest(codec.encode(asdict(c)))
        except (KeyError, TypeError, ValueError) as exc:
            raise FormatVersionError(
                f"{root / MARKER} has missing or invalid settings ({exc!r}); "
                "the repository cannot be opened safely"
            ) from exc
        if not (new or rebuilding) and not (root / "index" / "data.mdb").exists():
            # Never take a lost index for an empty repository: a commit would start over
            # at v1 and the history would look gone.
            raise IntegrityError(
                f"the index of {root} is missing; run `reprocas index rebuild` to recreate "
                "it from the packs",
                path=str(root / "index"),
            )
        (root / "index").mkdir(exist_ok=True)
        # Set when `index rebuild` found the index damaged: it then builds into this
        # fresh environment and swaps it in under its lock (reprocas.store.rebuild).
        self.damaged_index: IndexDamagedError | None = None
        try:
            self.index = Index(root / "index")
        except IndexDamagedError as exc:
            if not rebuilding:
                raise
            self.damaged_index = exc
            self.index = Index(root / f"index.rebuilding-{uuid.uuid4().hex}")
        if not new and self.damaged_index is None:
            self.refresh_format()

    def refresh_format(self) -> None:
        """Open rule of `reprocas upgrade` (reprocas.store.upgrade.marker): a marker
        that says 2 over an index that says 3 is an upgrade that committed its index
        transaction but not yet its marker; it is finished here (when the repository's
        lock can be had at once) and read as format 3 in any case."""
        if self.format_version != FORMAT_VERSION_DELTAS:
            return
        try:
            with self.index.read() as txn:
                indexed = self.index.get_meta(txn, "format_version")
        except ReprocasError:
            return
        if indexed == FORMAT_VERSION_CONTENT_IDS:
            from reprocas.store.upgrade.marker import finish_marker

            finish_marker(self)

    # -- lifecycle ---------------------------------------------------------------------

    @classmethod
    def init(
        cls,
        root: Path,
        chunking: ChunkingConfig | None = None,
        compression: CompressionConfig | None = None,
        pack_size: int = DEFAULT_PACK_SIZE,
        deltas: DeltaConfig | None = None,
        format: int | None = None,
    ) -> Repository:
        """Create a repository of ``format`` (None: FORMAT_VERSION_DEFAULT)."""
        if format is None:
            format = FORMAT_VERSION_DEFAULT
        if format not in FORMAT_VERSIONS_CREATED:
            raise InvalidParameterError(
                f"cannot create a format {format} repository; choose one of "
                + ", ".join(str(v) for v in FORMAT_VERSIONS_CREATED)
            )
        chunking = chunking or ChunkingConfig()
        deltas = deltas or DeltaConfig()
        if not 1 <= deltas.max_depth <= 16:
            raise InvalidParameterError(
                f"delta chain depth must be between 1 and 16 (got {deltas.max_depth})"
            )
        compression = compression or CompressionConfig()
        # Validate before touching the disk.
        core.ChunkerParams(chunking.min_size, chunking.avg_size, chunking.max_size, chunking.seed)
        core.compress_chunks([b""], compression.level)
        if (root / MARKER).exists():
            raise RepositoryExistsError(f"{root} is already a reprocas repository", path=str(root))
        if root.exists() and (not root.is_dir() or any(root.iterdir())):
            raise RepositoryExistsError(
                f"{root} exists and is not an empty directory; choose a new path",
                path=str(root),
            )
        try:
            for sub in ("", "packs", "tmp", "locks", "index"):
                (root / sub).mkdir(parents=True, exist_ok=True)
            marker = {
                "format": FORMAT_NAME,
                "version": format,
                "repo_id": uuid.uuid4().hex,
                "created_ns": time.time_ns(),
                "chunking": asdict(chunking),
                "compression": asdict(compression),
                "pack_size": pack_size,
                "deltas": asdict(deltas),
            }
            repo = cls(root, marker, new=True)
            with repo.index.write() as txn:
                repo.index.put_meta(txn, "format_version", format)
                repo.index.put_meta(txn, "chunking", asdict(chunking))
                repo.index.put_meta(txn, "compression", asdict(compression))
                repo.index.put_meta(txn, "repo_id", marker["repo_id"])
            repo.reflog_path.touch()
            # The marker goes last: a half-made directory is never taken for a repository.
            tmp = root / (MARKER + ".tmp")
            tmp.write_text(json.dumps(marker, indent=2, sort_keys=True) + "\n")
            os.replace(tmp, root / MARKER)
        except OSError as exc:
            raise StorageIOError(f"cannot create a repository at {root}: {exc}") from exc
        return repo

    @classmethod
    def open(cls, root: Path, *, rebuilding: bool = False) -> Repository:
        marker_path = root / MARKER
        try:
            marker = json.loads(marker_path.read_text())
        except FileNotFoundError as exc:
            raise RepositoryNotFoundError(
                f"no reprocas repository at {root}", path=str(root)
            ) from exc
        except (OSError, ValueError) as exc:
            raise FormatVersionError(f"{marker_path} is unreadable: {exc}") from exc
        if not isinstance(marker, dict) or marker.get("format") != FORMAT_NAME:
            raise FormatVersionError(f"{root} is not a reprocas repository (unknown format)")
        version = marker.get("version")
        if type(version) is not int or version > FORMAT_VERSION or version < 1:
            raise FormatVersionError(
                f"repository {root} has format version {version}, but this reprocas reads "
                f"format versions 1 to {FORMAT_VERSION} only; upgrade reprocas to open it",
                version=version,
            )
        return cls(root, marker, rebuilding=rebuilding)

    def close(self) -> None:
        self.index.close()

    def __enter__(self) -> Repository:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- locks ---------------------------------------------------------------------------

    @contextmanager
    def lock(self, name: str, *, exclusive: bool) -> Iterator[None]:
        """A whole-repository advisory lock: writers share it, gc/prune take it alone."""
        self.locks_dir.mkdir(exist_ok=True)
        fd = os.open(self.locks_dir / f"{name}.lock", os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH)
            # A writer that waited for the lock while `reprocas upgrade` held it
            # writes format 3 from here on.
            self.refresh_format()
            yield
        finally:
            os.close(fd)

    # -- objects ------------------------------------------------------------------------

    @property
    def content_ids(self) -> bool:
        """Format 3: trees name files by digest (reprocas.store.files)."""
        return self.format_version >= FORMAT_VERSION_CONTENT_IDS

    @property
    def chunking_id(self) -> bytes:
        """BLAKE3 of the canonical encoding of this repository's chunking settings:
        the second half of a ``chunkmaps`` key."""
        return self._chunking_id

    def pack_path(self, pack_id: bytes) -> Path:
        return pack_path(self.packs_dir, ObjectId(pack_id))

    def load_raw(self, txn: lmdb.Transaction, oid: ObjectId) -> bytes:
        loc = self.index.get_object(txn, oid.raw)
        if loc is None:
            raise IntegrityError(f"object {oid.hex} is missing from the index", object=oid.hex)
        if core.blake3_digest(loc.data) != oid.raw:
            raise IntegrityError(
                f"object {oid.hex} does not match its id (index damaged; "
                "run `reprocas index rebuild`)",
                object=oid.hex,
            )
        return loc.data

    def load(self, txn: lmdb.Transaction, oid: ObjectId) -> AnyObject:
        return object_from_wire(codec.decode(self.load_raw(txn, oid)))

    def current_id(self, txn: lmdb.Transaction, oid: ObjectId) -> ObjectId:
        """``oid``, or the format-3 snapshot id a format-2 snapshot id was upgraded to
        (the ``aliases`` sub-database, written by `reprocas upgrade`)."""
        raw = txn.get(oid.raw, db=self.index.db["aliases"])
        return oid if raw is None else ObjectId(bytes(raw))

    def load_snapshot(self, txn: lmdb.Transaction, oid: ObjectId) -> Snapshot:
        """The snapshot ``oid`` names — for an upgraded format-2 id, the snapshot it
        became (runs recorded before the upgrade name their inputs by such ids)."""
        obj = self.load(txn, self.current_id(txn, oid))
        if not isinstance(obj, Snapshot):
            raise IntegrityError(f"object {oid.hex} is not a snapshot", object=oid.hex)
        return obj

    def load_tree(self, txn: lmdb.Transaction, oid: ObjectId) -> Tree:
        obj = self.load(txn, oid)
        if not isinstance(obj, Tree):
            raise IntegrityError(f"object {oid.hex} is not a tree", object=oid.hex)
        return obj

    def load_manifest(self, txn: lmdb.Transaction, oid: ObjectId) -> FileManifest:
        """A file's chunk list: a manifest (format 1/2) or a chunk map (format 3)."""
        obj = self.load(txn, oid)
        if isinstance(obj, ChunkMap):
            return obj.manifest()
        if not isinstance(obj, FileManifest):
            raise IntegrityError(f"object {oid.hex} is not a file manifest", object=oid.hex)
        return obj

    def entry_object(self, txn: lmdb.Transaction, entry: TreeEntry) -> ObjectId:
        """The object holding a file entry's chunk list (reprocas.store.files)."""
        from reprocas.store.files import file_object

        return file_object(self, txn, entry)

    def entry_manifest(self, txn: lmdb.Transaction, entry: TreeEntry) -> FileManifest:
        """A file entry's size, digest and chunks, in every format (reprocas.store.files)."""
        from reprocas.store.files import file_manifest

        return file_manifest(self, txn, entry)

    def entry_table(self, txn: lmdb.Transaction, entry: TreeEntry) -> bytes | None:
        """The id of a file entry's table record, if it has one (reprocas.store.files)."""
        from reprocas.store.files import file_table

        return file_table(self, txn, entry)

    def new_tree(self, entries: list[TreeEntry]) -> Tree:
        """A tree of this repository's format from unsorted entries."""
        return Tree.sorted(entries, 3 if self.content_ids else 2)

    # -- refs -----------------------------------------------------------------------------

    def datasets(self, txn: lmdb.Transaction) -> list[str]:
        names: set[str] = set()
        for key, _ in self.index.iter_refs(txn, "ds:"):
            parsed = parse_ref_key(key)
            if parsed is not None:
                names.add(parsed[0])
        return sorted(names)

    def versions(self, txn: lmdb.Transaction, name: str) -> list[tuple[int, ObjectId]]:
        prefix = f"ds:{name}:v:"
        out = []
        for key, value in self.index.iter_refs(txn, prefix):
            tail = key[len(prefix) :]
            if tail.isdigit():
                out.append((int(tail), ObjectId(value)))
        return out

    def tags_of(self, txn: lmdb.Transaction, name: str) -> dict[bytes, list[str]]:
        prefix = f"ds:{name}:tag:"
        out: dict[bytes, list[str]] = {}
        for key, value in self.index.iter_refs(txn, prefix):
            out.setdefault(value, []).append(key[len(prefix) :])
        return out

    def latest(self, txn: lmdb.Transaction, name: str) -> tuple[int, ObjectId] | None:
        versions = self.versions(txn, name)
        return versions[-1] if versions else None

    def next_number(self, txn: lmdb.Transaction, name: str) -> int:
        """The number a new version of ``name`` gets: one above every number it ever
        had, kept or removed (``reprocas rm`` may remove the latest; a number is never
        given to two versions)."""
        latest = self.latest(txn, name)
        top = latest[0] if latest else 0
        for _, raw in txn.cursor(db=self.index.db["forgotten"]):
            with contextlib.suppress(ValueError, TypeError, AttributeError, KeyError):
                rec = unpack(raw)
                if rec.get("name") == name and isinstance(rec.get("number"), int):
                    top = max(top, rec["number"])
        return top + 1

    def version_info(self, txn: lmdb.Transaction, oid: ObjectId) -> tuple[str, int] | None:
        raw = txn.get(oid.raw, db=self.index.db["snapshots"])
        if raw is None:
            return None
        _, name, number = unpack(raw)
        return str(name), int(number)

    def make_version(self, txn: lmdb.Transaction, oid: ObjectId) -> Version:
        """The version ``oid`` names (an upgraded format-2 id: the version it became,
        with ``aliased_from`` saying so)."""
        current = self.current_id(txn, oid)
        aliased = oid if current != oid else None
        oid = current
        info = self.version_info(txn, oid)
        snap = self.load_snapshot(txn, oid)
        name, number = info if info else (snap.name, int(snap.extra.get("version", 0)))
        tags = tuple(sorted(self.tags_of(txn, name).get(oid.raw, [])))
        return Version(name, number, oid, snap, tags, aliased)

    def resolve(self, txn: lmdb.Transaction, ref: str) -> Version:
        """``NAME``, ``NAME@vN``, ``NAME@latest``, ``NAME@TAG`` or an id prefix."""
        ref = ref.strip()
        if "@" in ref:
            name, _, sel = ref.rpartition("@")
            return self._resolve_in(txn, name, sel, ref)
        if self.versions(txn, ref):
            if is_hex_prefix(ref):
                self._refuse_shadowing(txn, ref)
            return self._resolve_in(txn, ref, "latest", ref)
        if is_hex_prefix(ref):
            return self.make_version(txn, self._resolve_prefix(txn, ref))
        known = self.datasets(txn)
        raise RefNotFoundError(
            f"unknown ref {ref!r}; {known_names(known)}",
            ref=ref,
        )

    def _refuse_shadowing(self, txn: lmdb.Transaction, ref: str) -> None:
        """A dataset named like an id prefix (made before such names were refused) that
        is also the start of a version id: neither reading is assumed."""
        try:
            oid = self._resolve_prefix(txn, ref)
        except RefNotFoundError:
            return
        except AmbiguousRefError:
            oid = None
        what = "version ids" if oid is None else f"the id of {self.make_version(txn, oid).ref}"
        raise AmbiguousRefError(
            f"{ref!r} is both a dataset name and the start of {what}; "
            f"write {ref}@latest for the dataset, or more digits of the id",
            ref=ref,
        )

    def _resolve_in(self, txn: lmdb.Transaction, name: str, sel: str, ref: str) -> Version:
        versions = self.versions(txn, name)
        if not versions:
            known = self.datasets(txn)
            raise RefNotFoundError(
                f"unknown dataset {name!r} in {ref!r}; "
                + known_names(known, empty="the repository is empty"),
                ref=ref,
            )
        by_number = dict(versions)
        m = _VERSION_RE.match(sel)
        if sel == "latest":
            return self.make_version(txn, versions[-1][1])
        if m:
            n = int(m.group(1))
            if n in by_number:
                return self.make_version(txn, by_number[n])
        else:
            tagged = self.index.get_ref(txn, tag_ref(name, sel))
            if tagged is not None:
                return self.make_version(txn, ObjectId(tagged))
        tags = sorted({t for ts in self.tags_of(txn, name).values() for t in ts})
        raise RefNotFoundError(
            f"{name} has no {sel!r}; versions: v1..v{versions[-1][0]}"
            + (f", tags: {', '.join(tags)}" if tags else "")
            + ", and 'latest'",
            ref=ref,
        )

    def _resolve_prefix(self, txn: lmdb.Transaction, prefix: str) -> ObjectId:
        lo, hi = prefix_range(prefix)
        matches = []
        # Versions, and format-2 ids that `reprocas upgrade` aliased to versions.
        for db in ("snapshots", "aliases"):
            for key in self.index.iter_prefix(txn, db, lo, hi):
                if key.hex().startswith(prefix.lower()):
                    matches.append(key)
                if len(matches) > 10:
                    break
        if not matches:
            raise RefNotFoundError(f"no version has an id starting with {prefix}", ref=prefix)
        if len(matches) > 1:
            names = []
            for k in matches[:10]:
                info = self.version_info(txn, self.current_id(txn, ObjectId(k)))
                label = f"{info[0]}@v{info[1]}" if info else ""
                names.append(f"{k.hex()[:16]} {label}".strip())
            raise AmbiguousRefError(
                f"id prefix {prefix} is ambiguous; it matches: " + "; ".join(names),
                ref=prefix,
            )
        return ObjectId(matches[0])

    # -- the ref log ------------------------------------------------------------------------

    @contextmanager
    def ref_transaction(self) -> Iterator[RefTransaction]:
        """One LMDB write transaction that moves refs, logged in two phases.

        Each change is appended to the ref log (fsynced) inside the transaction, tagged
        with the transaction's id; once LMDB has committed, a ``commit`` line for that
        id follows. `index rebuild` replays only committed transactions, so a process
        killed between the two never resurrects a version it did not finish.
        """
        rt = RefTransaction(self, uuid.uuid4().hex)
        with self.index.write() as txn:
            rt.txn = txn
            yield rt
        if rt.changed:
            # Best effort: the refs have moved; a missing commit line only means a later
            # rebuild would not replay this change.
            with contextlib.suppress(ReprocasError):
                self.append_reflog([{"op": "commit", "txn": rt.id, "time_ns": time.time_ns()}])

    def append_reflog(self, entries: list[dict[str, Any]]) -> None:
        """Append ref changes, durably, before the index moves the refs."""
        lines = "".join(json.dumps(e, sort_keys=True) + "\n" for e in entries)
        fd = os.open(self.reflog_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, lines.encode())
            os.fsync(fd)
        except OSError as exc:
            from reprocas.store.packs import _os_error

            raise _os_error(exc, self.reflog_path, "writing") from exc
        finally:
            os.close(fd)


def write_marker(root: Path, marker: dict[str, Any]) -> None:
    """Replace ``root``'s marker file durably: a temporary file, fsynced, renamed over
    it, and the directory fsynced (a crash leaves the old marker or the new one)."""
    from reprocas.store.packs import fsync_dir

    tmp = root / (MARKER + ".tmp")
    data = (json.dumps(marker, indent=2, sort_keys=True) + "\n").encode()
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, root / MARKER)
    fsync_dir(root)
