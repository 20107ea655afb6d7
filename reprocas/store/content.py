"""A version's content as a listing, the content id of a plain directory, and what
differs between the two — the reviewer's check (``reprocas check-dir``).

A *content listing* names every entry of a version: path, kind, mode, size, the
BLAKE3-256 of each file's content and each link's target. It is read from the
version's trees only (format 1/2: and each file's manifest, for its digest), never
from chunk data, and it can be published as a file (``show --manifest``) and checked
against a directory with no repository at all.

The content id (docs/FORMAT.md, "Format 3") is recomputed from a listing by encoding
its format-3 trees bottom-up, exactly as a commit into a format-3 repository writes
them, so a directory's content id needs no repository either.
"""

from __future__ import annotations

import mmap
import os
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import lmdb

from reprocas.errors import InvalidParameterError, SourceError
from reprocas.model.ids import ObjectId
from reprocas.model.objects import Tree, TreeEntry
from reprocas.native import core
from reprocas.store import codec
from reprocas.store.files import file_digest
from reprocas.store.repository import Repository, Version

LISTING_FORMAT = "reprocas-content"
LISTING_VERSION = 1


@dataclass(frozen=True, slots=True)
class Item:
    """One entry of a listing. ``digest`` is set for files, ``target`` for links."""

    path: str
    kind: str  # "file" | "dir" | "symlink"
    mode: int
    size: int = 0
    digest: bytes | None = None
    target: bytes | None = None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"path": self.path, "kind": self.kind, "mode": f"{self.mode:o}"}
        if self.kind == "file":
            out["size"] = self.size
            out["digest"] = self.digest.hex() if self.digest is not None else None
        elif self.kind == "symlink":
            out["target"] = os.fsdecode(self.target or b"")
        return out

    @classmethod
    def from_json(cls, w: Any) -> Item:
        try:
            kind = str(w["kind"])
            if kind not in ("file", "dir", "symlink"):
                raise ValueError(f"unknown kind {kind!r}")
            return cls(
                path=str(w["path"]),
                kind=kind,
                mode=int(str(w["mode"]), 8),
                size=int(w.get("size", 0)) if kind == "file" else 0,
                digest=bytes.fromhex(w["digest"]) if kind == "file" else None,
                target=os.fsencode(str(w["target"])) if kind == "symlink" else None,
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise InvalidParameterError(f"bad entry in the content listing: {w!r} ({exc})") from exc


# -- from a version ------------------------------------------------------------------


def version_items(repo: Repository, txn: lmdb.Transaction, version: Version) -> list[Item]:
    """Every entry of a version, a directory before what it holds, in name order."""
    out: list[Item] = []
    stack: list[tuple[list[TreeEntry], str]] = [
        (list(reversed(repo.load_tree(txn, version.snapshot.root).entries)), "")
    ]
    while stack:
        entries, at = stack[-1]
        if not entries:
            stack.pop()
            continue
        e = entries.pop()
        path = at + e.name
        if e.kind == "dir":
            out.append(Item(path, "dir", e.mode))
            sub = repo.load_tree(txn, ObjectId(e.target)).entries
            stack.append((list(reversed(sub)), path + "/"))
        elif e.kind == "symlink":
            out.append(Item(path, "symlink", e.mode, target=e.target))
        else:
            out.append(Item(path, "file", e.mode, e.size, file_digest(repo, txn, e)))
    return out


def listing(repo: Repository, txn: lmdb.Transaction, version: Version) -> dict[str, Any]:
    """The publishable content listing of a version (``show --manifest``)."""
    items = version_items(repo, txn, version)
    return {
        "format": LISTING_FORMAT,
        "version": LISTING_VERSION,
        "ref": version.ref,
        "snapshot": version.id.hex,
        "content_id": version.snapshot.root.hex,
        # Format 1/2 root tree ids depend on chunking; format 3 ones only on content.
        "content_format": repo.format_version if repo.content_ids else 2,
        "entries": [i.to_json() for i in items],
    }


def parse_listing(data: Any, where: str) -> tuple[list[Item], bytes | None]:
    """The items of a published listing and its format-3 content id (None for a
    listing of a format 1/2 version, whose root tree id is not a content id)."""
    if not isinstance(data, dict) or data.get("format") != LISTING_FORMAT:
        raise InvalidParameterError(f"{where} is not a reprocas content listing")
    if data.get("version") != LISTING_VERSION:
        raise InvalidParameterError(
            f"{where} is a content listing of version {data.get('version')!r}; this "
            f"reprocas reads version {LISTING_VERSION}"
        )
    entries = data.get("entries")
    if not isinstance(entries, list):
        raise InvalidParameterError(f"{where} has no entries list")
    items = [Item.from_json(e) for e in entries]
    cid = None
    if data.get("content_format") == 3:
        try:
            cid = bytes.fromhex(str(data["content_id"]))
        except (KeyError, ValueError) as exc:
            raise InvalidParameterError(f"{where} has no valid content_id") from exc
    return items, cid


# -- from a directory ------------------------------------------------------------------


def hash_file(path: Path) -> bytes:
    """BLAKE3-256 of a file's content (mapped, not copied)."""
    with open(path, "rb") as f:
        if os.fstat(f.fileno()).st_size == 0:
            return core.blake3_digest(b"")
        with mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as m:
            return core.blake3_digest(m)


def dir_items(root: Path, *, skip: tuple[int, int] | None = None) -> list[Item]:
    """Every entry below ``root`` as commit would store it: regular files, directories
    and symbolic links (other kinds are skipped, as commit skips them); ``skip`` is a
    directory (device, inode) left out — the repository, when it lies inside."""
    if not root.is_dir():
        raise SourceError(f"{root} is not a directory", path=str(root))
    out: list[Item] = []
    stack: list[tuple[Path, str]] = [(root, "")]
    while stack:
        d, rel = stack.pop()
        try:
            with os.scandir(d) as it:
                items = sorted(it, key=lambda e: e.name.encode("utf-8", "surrogateescape"))
        except OSError as exc:
            raise SourceError(f"cannot read {d}: {exc.strerror or exc}", path=str(d)) from exc
        subdirs: list[tuple[Path, str]] = []
        for de in items:
            path = rel + de.name
            try:
                st = de.stat(follow_symlinks=False)
                if stat.S_ISLNK(st.st_mode):
                    out.append(Item(path, "symlink", 0o777, target=os.fsencode(os.readlink(de))))
                elif stat.S_ISDIR(st.st_mode):
                    if skip is not None and (st.st_dev, st.st_ino) == skip:
                        continue
                    out.append(Item(path, "dir", stat.S_IMODE(st.st_mode)))
                    subdirs.append((Path(de.path), path + "/"))
                elif stat.S_ISREG(st.st_mode):
                    digest = hash_file(Path(de.path))
                    out.append(Item(path, "file", stat.S_IMODE(st.st_mode), st.st_size, digest))
            except OSError as exc:
                raise SourceError(
                    f"cannot read {de.path}: {exc.strerror or exc}", path=de.path
                ) from exc
        stack.extend(reversed(subdirs))
    return out


# -- the content id ------------------------------------------------------------------------


def content_id(items: list[Item]) -> bytes | None:
    """The format-3 root tree id of a listing: each directory's tree encoded (canonical
    msgpack, ``"v": 3``) once its subdirectories' ids are known, names sorted by their
    UTF-8 bytes; BLAKE3-256 of the root tree's encoding. None when a name is not
    UTF-8: no version can hold it (commit refuses such names)."""
    if not all(_is_utf8(it.path) for it in items):
        return None
    children: dict[str, list[Item]] = {"": []}
    for it in items:
        parent = it.path.rpartition("/")[0]
        children.setdefault(parent, []).append(it)
        if it.kind == "dir":
            children.setdefault(it.path, [])
    ids: dict[str, bytes] = {}
    # Deepest directories first, so that every subtree id is known before its parent's.
    for d in sorted(children, key=lambda p: (-p.count("/") - (p != ""), p)):
        entries = []
        for it in children[d]:
            name = it.path.rpartition("/")[2]
            if it.kind == "dir":
                entries.append(TreeEntry(name, "dir", it.mode, ids[it.path]))
            elif it.kind == "symlink":
                entries.append(TreeEntry(name, "symlink", it.mode, it.target or b""))
            else:
                assert it.digest is not None
                entries.append(TreeEntry(name, "file", it.mode, it.digest, it.size))
        ids[d] = core.blake3_digest(codec.encode(Tree.sorted(entries, 3).to_wire()))
    return ids[""]


def _is_utf8(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def shown(path: str) -> str:
    """A path as text that can always be printed (bytes that are not UTF-8 as \\xNN)."""
    return path.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


# -- the comparison -----------------------------------------------------------------------


def compare(expected: list[Item], actual: list[Item]) -> list[dict[str, Any]]:
    """What differs, per path: ``missing`` (in the version, not the directory),
    ``extra``, or the fields (kind, mode, size, digest, target) that differ. Below a
    missing, extra or retyped directory only that directory is named."""
    want = {i.path: i for i in expected}
    have = {i.path: i for i in actual}
    out: list[dict[str, Any]] = []
    cut: list[str] = []  # directories reported whole

    def under_cut(p: str) -> bool:
        return any(p.startswith(c + "/") for c in cut)

    for path in sorted(set(want) | set(have), key=lambda p: p.encode("utf-8", "surrogateescape")):
        if under_cut(path):
            continue
        a, b = want.get(path), have.get(path)
        if a is None or b is None:
            assert a is not None or b is not None
            present = a if a is not None else b
            assert present is not None
            out.append({"path": shown(path), "change": "missing" if b is None else "extra"})
            if present.kind == "dir":
                cut.append(path)
            continue
        if a.kind != b.kind:
            out.append(
                {"path": shown(path), "change": "kind", "expected": a.kind, "actual": b.kind}
            )
            if "dir" in (a.kind, b.kind):
                cut.append(path)
            continue
        fields: dict[str, tuple[Any, Any]] = {}
        if a.mode != b.mode:
            fields["mode"] = (f"{a.mode:o}", f"{b.mode:o}")
        if a.kind == "file":
            if a.size != b.size:
                fields["size"] = (a.size, b.size)
            if a.digest != b.digest:
                fields["digest"] = (
                    a.digest.hex() if a.digest else None,
                    b.digest.hex() if b.digest else None,
                )
        if a.kind == "symlink" and a.target != b.target:
            fields["target"] = (
                shown(os.fsdecode(a.target or b"")),
                shown(os.fsdecode(b.target or b"")),
            )
        for name, (x, y) in fields.items():
            out.append({"path": shown(path), "change": name, "expected": x, "actual": y})
    return out
