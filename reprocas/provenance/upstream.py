"""Inputs that are another run's outputs: where they land.

A run's outputs are one version of ``runs/NAME`` holding each output at its path
relative to that run's working directory (``out/features/features.csv``). Checked out
as an input they are given at their own path instead: the deepest directory holding
every output (a directory output is its own; a file output's is the directory it is
in) becomes the input's root, so ``-i runs/features`` puts ``features.csv`` at
``inputs/features/features.csv``. The default PATH of such an input is
``inputs/NAME`` (not ``inputs/runs/NAME``).
"""

from __future__ import annotations

from pathlib import PurePosixPath

import lmdb

from reprocas.errors import ReprocasError
from reprocas.model.ids import ObjectId
from reprocas.provenance import graph
from reprocas.provenance.names import OUTPUT_PREFIX, load_run
from reprocas.store.checkout import find_entry
from reprocas.store.repository import Repository

SUBPATH_KEY = "subpath"
"""The input record's key for the path inside the version that is checked out at
the input's PATH (absent: the whole version)."""


def output_root(repo: Repository, txn: lmdb.Transaction, sid: ObjectId) -> str | None:
    """The directory of a run-output version that holds all of its outputs, as a path
    inside the version (``""``: its root); None when the version is no run's output."""
    for e in graph.in_edges(repo, txn, sid.raw, graph.GENERATED):
        try:
            run = load_run(repo, txn, ObjectId(e.src))
        except ReprocasError:
            continue
        dirs = []
        for o in run.outputs:
            if bytes(o.get("snapshot") or b"") != sid.raw:
                continue
            p = PurePosixPath(str(o["path"]))
            dirs.append(p.parts if o.get("kind") == "dir" else p.parent.parts)
        if not dirs:
            continue
        common: list[str] = []
        for parts in zip(*dirs, strict=False):
            if len(set(parts)) != 1:
                break
            common.append(parts[0])
        return "/".join(common)
    return None


def default_path(dataset: str, run_output: bool) -> str:
    """``inputs/<dataset>``; for a run's outputs ``inputs/<run name>``."""
    if run_output and dataset.startswith(OUTPUT_PREFIX):
        return f"inputs/{dataset[len(OUTPUT_PREFIX) :]}"
    return f"inputs/{dataset}"


def input_tree(
    repo: Repository, txn: lmdb.Transaction, sid: ObjectId, subpath: str | None
) -> bytes:
    """The tree id checked out at an input's PATH: the version's root, or the
    directory ``subpath`` inside it."""
    version = repo.make_version(txn, sid)
    if not subpath:
        return repo.load_snapshot(txn, sid).root.raw
    return bytes(find_entry(repo, txn, version, subpath).target)
