"""Environment snapshots in the repository: save one, resolve and load them back.

An environment snapshot is a :class:`~reprocas.model.objects.Snapshot` with
``kind="environment"`` in the ordinary version chain of its name (``env/<project>``,
refs ``ds/env/<project>/v/<N>``), so ``reprocas log``, ``show``, ``ls``, ``checkout``,
tags and id prefixes work on it unchanged. Its root tree holds::

    environment.msgpack      the facts object's canonical encoding (BLAKE3 = its id)
    project/<path>           captured lock and manifest files
    git/diff.patch           uncommitted tracked changes (git diff HEAD --binary)
    site-packages/<i>/...    with --full: site-packages directory i, as content

``extra["environment"]`` names the facts object. With ``--full`` each site-packages
directory is also committed as a version of its own dataset
(``env/<project>/site-packages``), which gives it the files cache (unchanged files are
not read again) and chunk-level dedup across snapshots; the env snapshot's tree then
points at the same subtree. The write order is the store's: objects into packs, seal,
then one LMDB write transaction that checks the latest version, appends the ref log
and moves the refs.
"""

from __future__ import annotations

import getpass
import os
import re
import socket
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import lmdb

from reprocas.environment.blobs import Node, Subtree, nest, put_tree
from reprocas.environment.capture import Capture
from reprocas.environment.errors import NotAnEnvironmentError
from reprocas.errors import IntegrityError, InvalidNameError, RefNotFoundError, known_names
from reprocas.model.ids import ObjectId
from reprocas.model.objects import Environment, Snapshot
from reprocas.native import core
from reprocas.progress import Progress
from reprocas.store import checkout as checkout_mod
from reprocas.store import codec
from reprocas.store.commit import commit, finish_snapshot
from reprocas.store.index import unpack
from reprocas.store.repository import (
    Repository,
    Version,
    check_dataset_name,
    check_tag_name,
)
from reprocas.store.writer import Writer

ENV_KIND = "environment"
SITE_KIND = "site-packages"
FACTS_FILE = "environment.msgpack"
PROJECT_DIR = "project"
PATCH_PATH = "git/diff.patch"
SITE_DIR = "site-packages"
NAME_PREFIX = "env/"


@dataclass(frozen=True, slots=True)
class SitePackages:
    """One site-packages directory stored by a ``--full`` snapshot."""

    path: str
    prefix_rel: str | None
    entry: str
    ref: str
    snapshot: ObjectId
    files: int
    logical_bytes: int
    new_bytes: int
    created: bool

    def to_json(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "prefix_rel": self.prefix_rel,
            "entry": self.entry,
            "ref": self.ref,
            "id": self.snapshot.hex,
            "files": self.files,
            "logical_bytes": self.logical_bytes,
            "new_bytes": self.new_bytes,
            "created": self.created,
        }


@dataclass(frozen=True, slots=True)
class SaveResult:
    """What ``env snapshot`` did. ``created`` is False when it equalled the latest."""

    ref: str
    id: ObjectId
    name: str
    number: int
    created: bool
    environment_id: ObjectId
    full: bool
    files: int
    logical_bytes: int
    new_bytes: int
    site_packages: tuple[SitePackages, ...]
    notes: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class EnvRecord:
    """A stored environment snapshot with its facts."""

    version: Version
    environment_id: ObjectId
    facts: dict[str, Any]

    @property
    def ref(self) -> str:
        return self.version.ref

    @property
    def snapshot(self) -> Snapshot:
        return self.version.snapshot

    @property
    def full(self) -> bool:
        return bool(self.snapshot.extra.get("full"))

    @property
    def site_packages(self) -> list[dict[str, Any]]:
        """``[{"path", "prefix_rel", "entry", "id"}]`` of a ``--full`` snapshot."""
        out = []
        for sp in self.snapshot.extra.get("site_packages") or []:
            sid = sp.get("snapshot")
            out.append(
                {
                    "path": sp.get("path"),
                    "prefix_rel": sp.get("prefix_rel"),
                    "entry": sp.get("entry"),
                    "id": bytes(sid).hex() if sid else None,
                }
            )
        return out

    @property
    def env_allow(self) -> tuple[str, ...]:
        return tuple(self.snapshot.extra.get("env_allow") or ())


# -- names ----------------------------------------------------------------------------


def env_name(name: str | None, project: Path) -> str:
    """``env/<name>``; by default ``env/<project directory name>`` (or ``env/default``)."""
    if name:
        full = name if name.startswith(NAME_PREFIX) else NAME_PREFIX + name
    else:
        slug = re.sub(r"[^A-Za-z0-9._-]+", "-", project.name).strip("-._")
        full = NAME_PREFIX + (slug or "default")
    return check_dataset_name(full)


def site_name(name: str, i: int) -> str:
    """The dataset that holds site-packages directory ``i`` of env ``name``."""
    return f"{name}/{SITE_DIR}" + ("" if i == 0 else f"-{i}")


# -- writing: the snapshot ------------------------------------------------------------------


def _author() -> str:
    try:
        return f"{getpass.getuser()}@{socket.gethostname()}"
    except Exception:
        return "unknown"


def _prefix_rel(path: str, prefix: str) -> str | None:
    try:
        rel = Path(os.path.realpath(path)).relative_to(os.path.realpath(prefix))
    except ValueError:
        return None
    return rel.as_posix()


def save(
    repo: Repository,
    cap: Capture,
    name: str,
    *,
    full: bool = False,
    message: str = "",
    tags: tuple[str, ...] = (),
    author: str | None = None,
    progress: Progress | None = None,
) -> SaveResult:
    """Store ``cap`` as the next version of ``name``, unless it equals the latest
    (same facts and same tree), in which case the latest is reused (and tagged)."""
    check_dataset_name(name)
    for t in tags:
        check_tag_name(t)
    author = author or _author()
    with repo.index.read() as txn:
        latest = repo.latest(txn, name)
        if latest is not None:
            kind = repo.load_snapshot(txn, latest[1]).kind
            if kind != ENV_KIND:
                raise InvalidNameError(
                    f"{name} holds {kind} versions, not environment snapshots; choose "
                    "another --name",
                    name=name,
                )
    notes = list(cap.notes)
    sites: list[tuple[SitePackages, ObjectId]] = []
    if full:
        prefix = str(cap.facts["python"]["prefix"])
        for i, d in enumerate(cap.site_dirs):
            r = commit(
                repo,
                Path(d),
                site_name(name, i),
                message=f"site-packages of {name}: {d}",
                kind=SITE_KIND,
                author=author,
                progress=progress,
            )
            notes += [f"skipped in {d} (not a file, directory or link): {p}" for p in r.skipped]
            with repo.index.read() as txn:
                tree = repo.load_snapshot(txn, r.id).root
            sp = SitePackages(
                d,
                _prefix_rel(d, prefix),
                f"{SITE_DIR}/{i}",
                r.ref,
                r.id,
                r.files,
                r.logical_bytes,
                r.new_bytes,
                r.created,
            )
            sites.append((sp, tree))
        if not sites:
            notes.append("the interpreter has no site-packages directory: nothing to store")

    facts_wire = Environment(cap.facts).to_wire()
    encoded = codec.encode(facts_wire)
    node: dict[str, Node] = {FACTS_FILE: encoded}
    if cap.files:
        node[PROJECT_DIR] = nest(cap.files)
    if cap.patch:
        node["git"] = {"diff.patch": cap.patch}
    if sites:
        node[SITE_DIR] = {
            str(i): Subtree(tree, sp.files, sp.logical_bytes) for i, (sp, tree) in enumerate(sites)
        }
    extra: dict[str, Any] = {
        "full": full,
        "env_allow": list(cap.env_allow),
        "site_packages": [
            {
                "path": sp.path,
                "prefix_rel": sp.prefix_rel,
                "entry": sp.entry,
                "snapshot": sp.snapshot.raw,
            }
            for sp, _ in sites
        ],
    }
    with repo.lock("gc", exclusive=False):
        writer = Writer(repo)
        try:
            fid = writer.add_object(facts_wire)
            root, files, logical = put_tree(repo, writer, node)
            created, number, sid = _finish(
                repo, writer, name, root, fid, extra, files, logical, message, tags, author
            )
        except BaseException:
            writer.abort()
            raise
    return SaveResult(
        ref=f"{name}@v{number}",
        id=sid,
        name=name,
        number=number,
        created=created,
        environment_id=fid,
        full=full,
        files=files,
        logical_bytes=logical,
        new_bytes=writer.new_bytes + sum(sp.new_bytes for sp, _ in sites),
        site_packages=tuple(sp for sp, _ in sites),
        notes=tuple(notes),
    )


def _finish(
    repo: Repository,
    writer: Writer,
    name: str,
    root: ObjectId,
    fid: ObjectId,
    extra: dict[str, Any],
    files: int,
    logical: int,
    message: str,
    tags: tuple[str, ...],
    author: str,
) -> tuple[bool, int, ObjectId]:
    """Write the snapshot and move the refs through the store's own last step; an
    environment equals the latest only if both its facts and its tree do.
    Returns (created, number, snapshot id)."""
    created, number, sid, _ = finish_snapshot(
        repo,
        writer,
        name=name,
        root=root,
        kind=ENV_KIND,
        source="dir",
        message=message,
        tags=tags,
        step=None,
        author=author,
        files=files,
        logical_bytes=logical,
        extra={"environment": fid.raw, **extra},
        same=lambda snap: snap.root == root and snap.extra.get("environment") == fid.raw,
    )
    return created, number, sid


# -- reading ----------------------------------------------------------------------------------


def _kinds(repo: Repository, txn: lmdb.Transaction) -> Iterator[tuple[bytes, str, str, int]]:
    """(snapshot id, kind, name, number) of every version."""
    for k, v in txn.cursor(db=repo.index.db["snapshots"]):
        kind, name, number = unpack(v)
        yield bytes(k), str(kind), str(name), int(number)


def env_names(repo: Repository, txn: lmdb.Transaction) -> list[str]:
    """Names that hold environment snapshots."""
    return sorted({name for _, kind, name, _ in _kinds(repo, txn) if kind == ENV_KIND})


def resolve(repo: Repository, txn: lmdb.Transaction, ref: str) -> Version:
    """An environment snapshot by ``env/NAME[@vN|@TAG|@latest]``, ``NAME[@...]`` (the
    ``env/`` may be left out) or an id prefix."""
    ref = ref.strip()
    candidates = [ref] if ref.startswith(NAME_PREFIX) else [ref, NAME_PREFIX + ref]
    errors: dict[str, RefNotFoundError] = {}
    for candidate in candidates:
        try:
            v = repo.resolve(txn, candidate)
        except RefNotFoundError as exc:
            errors[candidate] = exc
            continue
        return _check_env(repo, txn, v)
    names = env_names(repo, txn)
    for candidate, err in errors.items():
        if candidate.rpartition("@")[0] in names or candidate in names:
            raise err  # the name exists: its message lists the versions and tags
    raise NotAnEnvironmentError(
        f"unknown environment snapshot {ref!r}; "
        + known_names(
            names,
            what="environments",
            command="reprocas env log",
            empty="none yet: take one with `reprocas env snapshot`",
        ),
        ref=ref,
    ) from errors[ref]


def _check_env(repo: Repository, txn: lmdb.Transaction, v: Version) -> Version:
    if v.snapshot.kind != ENV_KIND:
        names = env_names(repo, txn)
        raise NotAnEnvironmentError(
            f"{v.ref} is a {v.snapshot.kind} version, not an environment snapshot"
            + (
                f"; {known_names(names, what='environments', command='reprocas env log')}"
                if names
                else ""
            ),
            ref=v.ref,
        )
    return v


def latest_ref(repo: Repository, preferred: str | None = None) -> str:
    """``preferred`` if it has snapshots, else the newest environment snapshot."""
    with repo.index.read() as txn:
        if preferred and repo.latest(txn, preferred) is not None:
            return f"{preferred}@latest"
        best: tuple[int, str] | None = None
        for sid, kind, name, number in _kinds(repo, txn):
            if kind != ENV_KIND:
                continue
            t = repo.load_snapshot(txn, ObjectId(sid)).time_ns
            if best is None or t > best[0]:
                best = (t, f"{name}@v{number}")
    if best is None:
        raise NotAnEnvironmentError(
            "no environment snapshots yet: take one with `reprocas env snapshot`", ref=""
        )
    return best[1]


def _facts(repo: Repository, txn: lmdb.Transaction, v: Version) -> tuple[ObjectId, Any]:
    raw = v.snapshot.extra.get("environment")
    if not isinstance(raw, bytes) or len(raw) != 32:
        raise IntegrityError(f"{v.ref} does not name its environment facts", object=v.id.hex)
    fid = ObjectId(raw)
    try:
        obj = repo.load(txn, fid)
    except IntegrityError:
        return fid, None  # read the copy in the tree instead
    if not isinstance(obj, Environment):
        raise IntegrityError(f"object {fid.hex} is not an environment", object=fid.hex)
    return fid, obj.facts


def _facts_from_tree(repo: Repository, v: Version, fid: ObjectId) -> dict[str, Any]:
    with tempfile.TemporaryFile() as f:
        checkout_mod.cat(repo, v.id.hex, FACTS_FILE, f.fileno())
        f.seek(0)
        data = f.read()
    if core.blake3_digest(data) != fid.raw:
        raise IntegrityError(f"{v.ref}: {FACTS_FILE} does not match the facts id")
    obj = Environment.from_wire(codec.decode(data))
    return obj.facts


def load(repo: Repository, ref: str) -> EnvRecord:
    """The environment snapshot ``ref`` with its facts."""
    with repo.index.read() as txn:
        v = resolve(repo, txn, ref)
        fid, facts = _facts(repo, txn, v)
    if facts is None:
        facts = _facts_from_tree(repo, v, fid)
    return EnvRecord(v, fid, facts)


def history(repo: Repository, name: str | None = None) -> list[EnvRecord]:
    """Environment snapshots, newest first: of ``name``, or all of them."""
    out: list[EnvRecord] = []
    with repo.index.read() as txn:
        if name is not None:
            resolve(repo, txn, name)  # a clear error for an unknown name
            name = name if name.startswith(NAME_PREFIX) else NAME_PREFIX + name
        for sid, kind, n, _ in _kinds(repo, txn):
            if kind != ENV_KIND or (name is not None and n != name):
                continue
            v = repo.make_version(txn, ObjectId(sid))
            fid, facts = _facts(repo, txn, v)
            out.append(EnvRecord(v, fid, facts if facts is not None else {}))
    out.sort(key=lambda r: r.snapshot.time_ns, reverse=True)
    return out
