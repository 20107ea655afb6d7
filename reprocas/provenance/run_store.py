"""Storing a run: committing its outputs, writing the run objects with their refs and
edges, and the run's JSON form."""

from __future__ import annotations

import getpass
import os
import shutil
import socket
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import lmdb

from reprocas.model.ids import ObjectId
from reprocas.model.objects import Run, Tree
from reprocas.provenance import graph
from reprocas.provenance.names import (
    OUTPUT_PREFIX,
    RunHandle,
    check_run_name,
    latest_run,
    put_summary,
    run_ref,
)
from reprocas.provenance.run_common import OUTPUT_KIND
from reprocas.provenance.run_params import metric_values
from reprocas.store.commit import commit
from reprocas.store.reachability import iter_tree
from reprocas.store.repository import Repository, Version
from reprocas.store.writer import Writer


def _output_rel(path: str, cwd: Path) -> str:
    p = Path(path)
    full = (cwd / p) if not p.is_absolute() else p
    try:
        return full.resolve().relative_to(cwd.resolve()).as_posix()
    except ValueError:
        return full.name


def _link_or_copy(src: str, dst: str) -> None:
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)


def commit_outputs(
    repo: Repository, name: str, outputs: list[str], cwd: Path
) -> tuple[list[dict[str, Any]], list[str]]:
    """Commit the outputs that exist as one version of ``runs/NAME`` (each at its path
    relative to the working directory); returns (output records, missing paths)."""
    present: list[tuple[str, Path]] = []
    missing: list[str] = []
    for o in outputs:
        src = cwd / o
        if src.exists() or src.is_symlink():
            present.append((_output_rel(o, cwd), src))
        else:
            missing.append(o)
    if not present:
        return [], missing
    from reprocas.tabular.inspect import inspect_file

    with tempfile.TemporaryDirectory(prefix="reprocas-run-") as tmp:
        stage = Path(tmp) / "outputs"
        stage.mkdir()
        for rel, src in present:
            dst = stage / rel
            dst.parent.mkdir(parents=True, exist_ok=True)
            if src.is_dir() and not src.is_symlink():
                shutil.copytree(src, dst, symlinks=True, copy_function=_link_or_copy)
            elif src.is_symlink():
                os.symlink(os.readlink(src), dst)
            else:
                _link_or_copy(str(src), str(dst))
        r = commit(
            repo,
            stage,
            OUTPUT_PREFIX + name,
            message=f"outputs of run {name}",
            step=f"run {name}",
            kind=OUTPUT_KIND,
            inspect=inspect_file,
        )
    return [
        {
            "path": rel,
            "dataset": r.name,
            "number": r.number,
            "snapshot": r.id.raw,
            "kind": "dir" if src.is_dir() and not src.is_symlink() else "file",
        }
        for rel, src in present
    ], missing


# -- storing the run ---------------------------------------------------------------------------


@dataclass
class Draft:
    """Everything about a run except its number, which is assigned when it is stored."""

    name: str
    command: list[str]
    cwd: str
    params: dict[str, Any] = field(default_factory=dict)
    inputs: list[dict[str, Any]] = field(default_factory=list)
    outputs: list[dict[str, Any]] = field(default_factory=list)
    metrics: dict[str, Any] = field(default_factory=dict)
    environment: ObjectId | None = None
    code: dict[str, Any] | None = None
    files: dict[str, bytes] = field(default_factory=dict)
    start_ns: int = 0
    end_ns: int = 0
    exit_code: int = 0
    errors: list[str] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)
    host: str = field(default_factory=socket.gethostname)
    user: str = ""

    def build(self, number: int, root: ObjectId | None) -> Run:
        inputs = tuple({k: v for k, v in i.items() if k != "default_path"} for i in self.inputs)
        return Run(
            name=self.name,
            number=number,
            command=tuple(self.command),
            cwd=self.cwd,
            host=self.host,
            user=self.user or _user(),
            start_ns=self.start_ns,
            end_ns=self.end_ns,
            exit_code=self.exit_code,
            status="ok" if self.exit_code == 0 and not self.errors else "failed",
            params=self.params,
            inputs=inputs,
            outputs=tuple(self.outputs),
            metrics=self.metrics,
            environment=self.environment,
            code=self.code,
            root=root,
            errors=tuple(self.errors),
            extra=self.extra,
        )


def _user() -> str:
    try:
        return getpass.getuser()
    except Exception:
        return "unknown"


def store_runs(repo: Repository, drafts: list[Draft]) -> list[tuple[RunHandle, Run]]:
    """Store runs: objects into packs, then one ref transaction that numbers them (the
    next free ``#N`` of each name), moves their refs and writes summaries and edges.
    Retried if another writer took a number first."""
    from reprocas.environment.blobs import nest, put_tree

    for d in drafts:
        check_run_name(d.name)
    with repo.lock("gc", exclusive=False):
        writer = Writer(repo)
        try:
            roots: list[ObjectId | None] = []
            for d in drafts:
                roots.append(put_tree(repo, writer, nest(d.files))[0] if d.files else None)
            while True:
                with repo.index.read() as txn:
                    start = _next_numbers(repo, txn, drafts)
                numbered: list[tuple[RunHandle, Run]] = []
                nxt = dict(start)
                for d, root in zip(drafts, roots, strict=True):
                    run = d.build(nxt[d.name], root)
                    nxt[d.name] += 1
                    rid = writer.add_object(run.to_wire())
                    numbered.append((RunHandle(d.name, run.number, rid), run))
                writer.seal()
                with repo.ref_transaction() as rt:
                    if _next_numbers(repo, rt.txn, drafts) != start:
                        continue
                    rt.set([(run_ref(h.name, h.number), h.id) for h, _ in numbered])
                    for h, run in numbered:
                        put_summary(repo, rt.txn, h.id, run)
                        graph.put_edges(
                            repo,
                            rt.txn,
                            graph.aliased_edges(repo, rt.txn, graph.run_edges(h.id, run)),
                        )
                return numbered
        except BaseException:
            writer.abort()
            raise
        finally:
            writer.close()


def _next_numbers(repo: Repository, txn: lmdb.Transaction, drafts: list[Draft]) -> dict[str, int]:
    out: dict[str, int] = {}
    for d in drafts:
        if d.name not in out:
            last = latest_run(repo, txn, d.name)
            out[d.name] = last.number + 1 if last else 1
    return out


def inputs_json(run: Run) -> list[dict[str, Any]]:
    """A run's inputs as JSON: ``via`` is ``input`` (declared) or ``api`` (only read
    through the Python API); ``api_refs``/``api_paths``: how the API read it."""
    return [
        {
            "ref": i.get("ref"),
            "version": f"{i['dataset']}@v{i['number']}",
            "id": bytes(i["snapshot"]).hex(),
            # The input's content id (absent from runs recorded before it was kept).
            "content": bytes(i["content"]).hex() if i.get("content") is not None else None,
            "path": i.get("path"),
            "via": i.get("via", "input"),
            "api_refs": list(i.get("api_refs") or ()),
            "api_paths": list(i.get("api_paths") or ()),
        }
        for i in run.inputs
    ]


def run_json(handle: RunHandle, run: Run, env_ref: str | None = None) -> dict[str, Any]:
    """The JSON form of a run (``reprocas run --json``, ``reprocas runs --json``)."""
    return {
        "id": handle.id.hex,
        "name": run.name,
        "number": run.number,
        "ref": handle.ref,
        "status": run.status,
        "exit_code": run.exit_code,
        "command": list(run.command),
        "argv": list(run.extra.get("argv") or run.command),
        "cwd": run.cwd,
        "host": run.host,
        "user": run.user,
        "start_ns": run.start_ns,
        "end_ns": run.end_ns,
        "duration_s": round((run.end_ns - run.start_ns) / 1e9, 6),
        "params": run.params,
        "inputs": inputs_json(run),
        "outputs": [
            {
                "path": o["path"],
                "version": f"{o['dataset']}@v{o['number']}",
                "id": bytes(o["snapshot"]).hex(),
            }
            for o in run.outputs
        ],
        "metrics": metric_values(run.metrics),
        "environment": {"ref": env_ref, "id": run.environment.hex} if run.environment else None,
        "code": run.code,
        "errors": list(run.errors),
        "param_conflicts": list(run.extra.get("param_conflicts") or []),
        "replay_of": run.extra["replay_of"].hex()
        if isinstance(run.extra.get("replay_of"), bytes)
        else None,
        "verdict": run.extra.get("verdict"),
        "unpinned_inputs": list(run.extra.get("unpinned_inputs") or []),
        "uncommitted_inputs": list(run.extra.get("uncommitted_inputs") or []),
    }


def version_of(repo: Repository, sid: bytes) -> Version:
    with repo.index.read() as txn:
        return repo.make_version(txn, ObjectId(sid))


def tree_files(
    repo: Repository, txn: lmdb.Transaction, tree_id: bytes, prefix: str = ""
) -> dict[str, tuple[str, bytes, int]]:
    """``path -> (kind, target, mode)`` for every file and link below a tree."""
    if not isinstance(repo.load(txn, ObjectId(tree_id)), Tree):
        return {}
    return {
        p: (e.kind, e.target, e.mode)
        for p, e in iter_tree(repo, txn, tree_id, prefix)
        if e.kind != "dir"
    }


def run_inputs(
    repo: Repository, txn: lmdb.Transaction, rid: ObjectId
) -> list[dict[str, Any]] | None:
    """:func:`inputs_json` of a stored run; None when its object cannot be read."""
    from reprocas.errors import ReprocasError
    from reprocas.provenance.names import load_run

    try:
        return inputs_json(load_run(repo, txn, rid))
    except ReprocasError:
        return None
