"""Work done outside the system: ``reprocas adopt OUTPUT --from REF... -m HOW``.

A result made without ``reprocas run`` is recorded as a run whose provenance is
*declared*, not observed: its output is committed as ``runs/NAME`` like any run's, its
inputs are the versions the user names, and ``extra`` holds ``provenance: "declared"``
and ``how`` (the user's description). No command, environment or code is recorded, so
it cannot be replayed; it can be linked, noted, asked ``why`` about, and later made again
with ``reprocas run``.

:func:`unrecorded_outputs` is the cheap check `status` uses: the output paths that runs
recorded in a working directory, whose files now hold content no run produced there.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from reprocas.errors import InvalidParameterError, SourceNotFoundError
from reprocas.model.objects import Run
from reprocas.provenance.names import RunHandle, check_run_name, get_summary, iter_runs, load_run
from reprocas.provenance.run_inputs import resolve_inputs
from reprocas.provenance.run_store import Draft, commit_outputs, store_runs
from reprocas.store.repository import Repository

DECLARED = "declared"


def is_declared(run: Run) -> bool:
    return run.extra.get("provenance") == DECLARED


def _name_for(path: Path) -> str:
    stem = path.stem or "adopted"
    slug = "".join(c if c.isalnum() or c in "._-" else "-" for c in stem).strip("-._")
    return slug or "adopted"


@dataclass
class Adopted:
    handle: RunHandle
    run: Run


def adopt(
    repo: Repository,
    output: Path,
    from_refs: list[str],
    how: str,
    *,
    name: str | None = None,
    cwd: Path | None = None,
) -> Adopted:
    """Record ``output`` (a file or directory under ``cwd``) as a declared run."""
    how = how.strip()
    if not how:
        raise InvalidParameterError('say how it was made: -m "TEXT"')
    if not from_refs:
        raise InvalidParameterError("say what it was made from: --from REF (repeatable)")
    base = (cwd or Path.cwd()).resolve()
    if not (output.exists() or output.is_symlink()):
        raise SourceNotFoundError(f"no such file or directory: {output}", path=str(output))
    full = (base / output).resolve() if not output.is_absolute() else output.resolve()
    try:
        rel = full.relative_to(base)
    except ValueError:
        base, rel = full.parent, Path(full.name)  # outside the working directory
    if str(rel) in ("", "."):
        raise InvalidParameterError("adopt a file or directory inside the working directory")
    run_name = check_run_name(name or _name_for(full))
    with repo.index.read() as txn:
        inputs = resolve_inputs(repo, txn, [(r, None) for r in from_refs])
    now = time.time_ns()
    outputs, missing = commit_outputs(repo, run_name, [os.fsdecode(rel)], base)
    if missing:  # it vanished between the check and the commit
        raise SourceNotFoundError(f"no such file or directory: {output}", path=str(output))
    draft = Draft(
        name=run_name,
        command=[],
        cwd=os.fsdecode(base),
        inputs=inputs,
        outputs=outputs,
        start_ns=now,
        end_ns=now,
        extra={"provenance": DECLARED, "how": how},
    )
    [(handle, run)] = store_runs(repo, [draft])
    return Adopted(handle, run)


def unrecorded_outputs(repo: Repository, cwd: Path, *, limit: int = 200) -> list[dict[str, Any]]:
    """Outputs in ``cwd`` that no run produced: each output path that one of the last
    ``limit`` runs recorded in this directory, whose file now holds something else than
    the last of those runs stored there (``{"path", "last_run"}``). Cheap: reads only
    run records and the files at those paths (sizes first; the files cache spares
    reading what a commit already read)."""
    here = os.fsdecode(cwd.resolve())
    with repo.index.read() as txn:
        handles = [(int(get_summary(repo, txn, h.id)["start_ns"]), h) for h in iter_runs(repo, txn)]
        handles.sort(key=lambda th: (th[0], th[1].ref))
        runs = [(h, load_run(repo, txn, h.id)) for _, h in handles[-limit:]]
    last: dict[str, tuple[str, dict[str, Any]]] = {}  # path -> (run ref, output record)
    for h, run in runs:
        if run.cwd == here:
            for o in run.outputs:
                last[str(o["path"])] = (h.ref, o)
    out: list[dict[str, Any]] = []
    for path, (ref, rec) in sorted(last.items()):
        p = cwd / path
        if (p.exists() or p.is_symlink()) and not _same_as(repo, p, path, rec):
            out.append({"path": path, "last_run": ref})
    return out


def _same_as(repo: Repository, p: Path, path: str, rec: dict[str, Any]) -> bool:
    """Whether ``p`` holds what output record ``rec`` stored at ``path`` of its
    ``runs/NAME`` version: the same paths, sizes and content (the files cache vouches
    for unchanged files, so they are not read again)."""
    import stat as st

    from reprocas.model.ids import ObjectId
    from reprocas.model.objects import FileManifest
    from reprocas.ops.status import _digest, _working_entries
    from reprocas.store.commit import cached_target
    from reprocas.store.reachability import iter_tree

    rst = os.stat(repo.root)
    top = os.lstat(p)
    if st.S_ISLNK(top.st_mode):
        work = {p.name: (p, top)}
    else:
        work = _working_entries(p.resolve(), top, (rst.st_dev, rst.st_ino))
    with repo.index.read() as txn:
        snap = repo.load_snapshot(txn, ObjectId(bytes(rec["snapshot"])))
        stored = {}
        for rel, e in iter_tree(repo, txn, snap.root.raw):
            if e.kind == "dir":
                continue
            if rel == path:
                stored[p.name] = e
            elif rel.startswith(path + "/"):
                stored[rel[len(path) + 1 :]] = e
        if set(stored) != set(work):
            return False
        for rel, e in stored.items():
            wpath, ws = work[rel]
            if st.S_ISLNK(ws.st_mode):
                if e.kind != "symlink" or os.fsencode(os.readlink(wpath)) != e.target:
                    return False
                continue
            if e.kind != "file" or ws.st_size != e.size:
                return False
            hit = cached_target(repo, txn, wpath, ws)
            if hit is not None:
                if hit != e.target:
                    return False
                continue
            if repo.content_ids:
                if e.target != _digest(wpath):
                    return False
            else:
                obj = repo.load(txn, ObjectId(e.target))
                if not (isinstance(obj, FileManifest) and obj.digest == _digest(wpath)):
                    return False
    return True
