"""A run's inputs: resolving ``REF[=PATH]`` and checking the versions out."""

from __future__ import annotations

import os
import shutil
import stat
from collections.abc import Iterable
from pathlib import Path, PurePosixPath
from typing import Any

import lmdb

from reprocas.errors import DestinationError, InvalidParameterError
from reprocas.model.ids import ObjectId
from reprocas.native import core
from reprocas.provenance import run_reads, upstream
from reprocas.provenance.run_common import Say
from reprocas.store import checkout as checkout_mod
from reprocas.store.files import file_digest
from reprocas.store.repository import Repository


def safe_rel(path: str, what: str) -> str:
    p = PurePosixPath(path)
    if p.is_absolute() or ".." in p.parts or not p.parts or str(p) == ".":
        raise InvalidParameterError(
            f"{what} {path!r} must be a relative path inside the working directory"
        )
    return str(p)


def resolve_inputs(
    repo: Repository, txn: lmdb.Transaction, specs: Iterable[tuple[str, str | None]]
) -> list[dict[str, Any]]:
    """``(REF, PATH or None)`` -> input records naming the exact snapshot."""
    out: list[dict[str, Any]] = []
    for ref, path in specs:
        v = repo.resolve(txn, run_reads.pinned(repo, ref) or ref)  # a replay's pins first
        sub = upstream.output_root(repo, txn, v.id)  # a run's outputs: at their own path
        rel = (
            safe_rel(path, "--input path")
            if path
            else upstream.default_path(v.name, sub is not None)
        )
        out.append(
            {
                "ref": ref,
                "dataset": v.name,
                "number": v.number,
                "snapshot": v.id.raw,
                "content": v.snapshot.root.raw,  # the content id (format 3)
                "path": rel,
                "default_path": path is None,
            }
            | ({upstream.SUBPATH_KEY: sub} if sub else {})
        )
    return out


def _matches(repo: Repository, txn: lmdb.Transaction, tree_id: bytes, d: Path) -> bool:
    """Whether directory ``d`` holds exactly the tree: names, kinds, modes and bytes
    (without recursion: a tree may be thousands of levels deep)."""
    stack = [(tree_id, d)]
    while stack:
        tid, here = stack.pop()
        try:
            names = set(os.listdir(here))
        except OSError:
            return False
        tree = repo.load_tree(txn, ObjectId(tid))
        if names != {e.name for e in tree.entries}:
            return False
        for e in tree.entries:
            p = here / e.name
            try:
                st = os.lstat(p)
            except OSError:
                return False
            if e.kind == "dir":
                if not stat.S_ISDIR(st.st_mode):
                    return False
                stack.append((e.target, p))
            elif e.kind == "symlink":
                if not stat.S_ISLNK(st.st_mode) or os.fsencode(os.readlink(p)) != e.target:
                    return False
            else:
                if not stat.S_ISREG(st.st_mode) or st.st_size != e.size:
                    return False
                if stat.S_IMODE(st.st_mode) != e.mode:
                    return False
                if core.blake3_digest(p.read_bytes()) != file_digest(repo, txn, e):
                    return False
    return True


def checkout_inputs(repo: Repository, inputs: list[dict[str, Any]], cwd: Path, say: Say) -> None:
    """Put each input at its path, exactly: an identical directory is kept (verified
    file by file), a default ``inputs/<dataset>`` that differs is replaced, and any
    other path that exists and differs is an error."""
    for i in inputs:
        dest = cwd / i["path"]
        sid = ObjectId(bytes(i["snapshot"]))
        label = f"{i['dataset']}@v{i['number']}"
        sub = i.get(upstream.SUBPATH_KEY)
        if dest.exists() or dest.is_symlink():
            with repo.index.read() as txn:
                root = upstream.input_tree(repo, txn, sid, sub)
                same = dest.is_dir() and not dest.is_symlink() and _matches(repo, txn, root, dest)
            if same:
                say(f"input {label} at {i['path']}: already checked out (verified)")
                continue
            if not i.get("default_path"):
                raise DestinationError(
                    f"input path {i['path']} exists and differs from {label}; remove it or "
                    "choose another PATH"
                )
            if dest.is_dir() and not dest.is_symlink():
                shutil.rmtree(dest)
            else:
                dest.unlink()
        dest.parent.mkdir(parents=True, exist_ok=True)
        checkout_mod.checkout(repo, sid.hex, dest, subpath=sub)
        say(f"input {label} -> {i['path']}")


def parse_input(text: str) -> tuple[str, str | None]:
    """``REF`` or ``REF=PATH``."""
    ref, sep, path = text.partition("=")
    if not ref.strip():
        raise InvalidParameterError(f"--input {text!r}: use REF or REF=PATH")
    return ref.strip(), (path.strip() or None) if sep else None
