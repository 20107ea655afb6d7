"""``reprocas import``: a package into any format-3 repository, whatever its chunking.

Everything is checked before anything is written (reader.py: the bag, the BLAKE3 list,
every object against its id; here: every version's files against its trees and its
content id recomputed from the files, every run's inputs, outputs and environment
present). Then, as a commit does, the files are cut into this repository's chunks
and written with the objects into packs nothing indexes yet, and one ref transaction
indexes them and sets the refs: a failure at any point removes the packs and leaves
the repository as it was.
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import os
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from reprocas.errors import StorageFullError, StorageIOError, UsageError
from reprocas.model.ids import ObjectId
from reprocas.model.objects import Run, Snapshot, Tree, TreeEntry
from reprocas.native import core
from reprocas.package.export import DATASETS, PackageFormatError
from reprocas.package.limits import MAX_MEMBERS
from reprocas.package.reader import Member, Package, PackageError, read_data_file, read_package
from reprocas.progress import Progress
from reprocas.store.content import Item, content_id
from reprocas.store.files import lookup_chunkmap
from reprocas.store.index import pack
from reprocas.store.repository import Repository, version_ref

CODE_DATASET = "package-code"
CODE_OF_KEY = "package_code_of"
CODE_CWD_KEY = "cwd"


@dataclass
class _Version:
    ref: str
    sid: bytes
    snap: Snapshot
    env: bool


@dataclass
class _Code:
    """The packaged code of a run: kept as version 1 of ``package-code/<run id>`` so
    that `reprocas replay` finds it where no git repository holds the run's commit."""

    rid: bytes
    run: Run
    rel_cwd: str
    files: dict[str, bytes]

    @property
    def name(self) -> str:
        return code_name(self.rid)


def code_name(rid: bytes) -> str:
    return f"{CODE_DATASET}/{rid.hex()[:16]}"


@dataclass
class _Plan:
    versions: list[_Version] = field(default_factory=list)
    runs: list[tuple[bytes, Run]] = field(default_factory=list)
    code: list[_Code] = field(default_factory=list)
    files: dict[bytes, Member] = field(default_factory=dict)  # digest -> where its bytes are
    objects: list[bytes] = field(default_factory=list)  # ids, in writing order


def _obj(pkg: Package, oid: bytes, kind: str, what: str) -> Any:
    w = pkg.objects.get(oid)
    name = f"reprocas/objects/{oid.hex()}"
    if w is None:
        raise PackageError(f"package: data/{name} ({what}) is missing", file=name)
    if not isinstance(w, dict) or w.get("type") != kind:
        raise PackageError(f"package: data/{name} ({what}) is not a {kind}", file=name)
    return w


def _walk(pkg: Package, plan: _Plan, root: bytes, what: str) -> list[tuple[str, TreeEntry]]:
    """Every entry below a format-3 tree of the package, a directory before its
    contents; the trees are added to the objects to write."""
    out: list[tuple[str, TreeEntry]] = []
    stack = [(root, "")]
    while stack:
        tid, at = stack.pop()
        try:
            tree = Tree.from_wire(_obj(pkg, tid, "tree", f"a tree of {what}"))
        except (KeyError, TypeError, ValueError) as exc:
            name = f"reprocas/objects/{tid.hex()}"
            raise PackageError(
                f"package: data/{name} is not a valid tree ({exc})", file=name
            ) from exc
        if tree.version != 3:
            name = f"reprocas/objects/{tid.hex()}"
            raise PackageError(f"package: data/{name} is not a format-3 tree", file=name)
        if tid not in plan.objects:
            plan.objects.append(tid)
        for e in tree.entries:
            if not e.name or e.name in (".", "..") or "/" in e.name or "\0" in e.name:
                raise PackageError(f"package: {what} holds an unsafe name {e.name!r}", file=what)
            path = at + e.name
            out.append((path, e))
            if e.kind == "dir":
                stack.append((e.target, path + "/"))
    return out


def _take(plan: _Plan, m: Member, e: TreeEntry, where: str) -> None:
    if m.blake3 != e.target or m.size != e.size:
        raise PackageError(
            f"package: {where} does not match its version's tree (BLAKE3 {m.blake3.hex()[:16]}, "
            f"{m.size} bytes; the tree says {e.target.hex()[:16]}, {e.size} bytes)",
            file=where,
        )
    plan.files[e.target] = m


def _version(
    pkg: Package, plan: _Plan, v: dict[str, Any], env: bool, data_dir: Path | None
) -> None:
    ref = str(v.get("ref"))
    try:
        sid = bytes.fromhex(str(v["id"]))
        snap = Snapshot.from_wire(_obj(pkg, sid, "snapshot", f"the snapshot of {ref}"))
    except (KeyError, TypeError, ValueError) as exc:
        raise PackageError(
            f"package: the snapshot of {ref} cannot be read ({exc})", file=ref
        ) from exc
    said = (v.get("name"), v.get("number"), v.get("content_id"))
    has = (snap.name, snap.extra.get("version"), snap.root.hex)
    if ref != f"{snap.name}@v{snap.extra.get('version')}" or said != has:
        raise PackageError(
            f"package: reprocas/package.json says {ref} is {said}, its snapshot says {has}",
            file="reprocas/package.json",
        )
    included = not env and pkg.index.get("data") == "include"
    prefix = f"{DATASETS}{ref}/"
    items: list[Item] = []
    seen: set[str] = set()
    for path, e in _walk(pkg, plan, snap.root.raw, ref):
        if e.kind == "dir":
            items.append(Item(path, "dir", e.mode))
            continue
        if e.kind == "symlink":
            items.append(Item(path, "symlink", e.mode, target=e.target))
            continue
        if env:
            data, where = pkg.blob(e.target), f"data/reprocas/blobs/{e.target.hex()}"
        elif included:
            data, where = pkg.member(prefix + path), f"data/{prefix}{path}"
            seen.add(prefix + path)
        elif data_dir is not None:
            data, where = read_data_file(data_dir, ref, path), str(data_dir / ref / path)
        else:
            raise UsageError(
                f"the package holds no data (--data metadata-only): give the files of {ref} "
                "with --data-dir DIR (DIR/NAME@vN/...)"
            )
        if data is None:
            raise PackageError(f"package: {where} (of {ref}) is missing", file=where)
        _take(plan, data, e, where)
        items.append(Item(path, "file", e.mode, data.size, data.blake3))
    if included:
        extra = sorted(p for p in pkg.members if p.startswith(prefix) and p not in seen)
        for p in extra:
            raise PackageError(f"package: data/{p} is not in version {ref}", file=p)
    if content_id(items) != snap.root.raw:
        raise PackageError(
            f"package: the files of {ref} give another content id than its snapshot's "
            f"{snap.root.hex}",
            file=ref,
        )
    plan.objects.append(sid)
    plan.versions.append(_Version(ref, sid, snap, env))


def _run(pkg: Package, plan: _Plan, r: dict[str, Any], known: set[bytes]) -> None:
    ref = str(r.get("ref"))
    try:
        rid = bytes.fromhex(str(r["id"]))
        run = Run.from_wire(_obj(pkg, rid, "run", f"the run {ref}"))
    except (KeyError, TypeError, ValueError) as exc:
        raise PackageError(f"package: the run {ref} cannot be read ({exc})", file=ref) from exc
    if (run.name, run.number) != (r.get("name"), r.get("number")):
        raise PackageError(
            f"package: reprocas/package.json says {ref} is {r.get('name')}#{r.get('number')}, "
            f"its object says {run.name}#{run.number}",
            file="reprocas/package.json",
        )
    for part in (*run.inputs, *run.outputs):
        if part.get("snapshot") and bytes(part["snapshot"]) not in known:
            raise PackageError(
                f"package: run {ref} names snapshot {bytes(part['snapshot']).hex()} that the "
                "package does not hold",
                file=ref,
            )
    env = run.environment
    if env is not None and env.raw not in known and pkg.index.get("with_env") != "lock":
        raise PackageError(
            f"package: run {ref} names environment {env.hex} that the package does not hold",
            file=ref,
        )
    if run.root is not None:
        for path, e in _walk(pkg, plan, run.root.raw, f"run {ref}"):
            if e.kind == "file":
                data = pkg.blob(e.target)
                where = f"data/reprocas/blobs/{e.target.hex()}"
                if data is None:
                    raise PackageError(f"package: {where} ({ref}:{path}) is missing", file=where)
                _take(plan, data, e, where)
    plan.objects.append(rid)
    plan.runs.append((rid, run))
    prefix = str(r.get("code") or "")
    if prefix.startswith("code/") and prefix.endswith("/"):
        members = {p[len(prefix) :]: m for p, m in pkg.members.items() if p.startswith(prefix)}
        if members:
            for m in members.values():
                plan.files[m.blake3] = m
            files = {p: m.read_bytes() for p, m in members.items()}  # code: held whole
            plan.code.append(_Code(rid, run, str(r.get("cwd") or "."), files))


def check(pkg: Package, data_dir: Path | None) -> _Plan:
    """Everything the package claims, checked; what to write."""
    plan = _Plan()
    for v in pkg.index.get("environments") or []:
        _version(pkg, plan, v, True, data_dir)
    for v in pkg.index.get("versions") or []:
        _version(pkg, plan, v, False, data_dir)
    for v in plan.versions:
        if v.env and isinstance(v.snap.extra.get("environment"), bytes):
            fid = bytes(v.snap.extra["environment"])
            if fid in pkg.objects:
                plan.objects.append(fid)
    known = {v.sid for v in plan.versions}
    for r in pkg.index.get("runs") or []:
        _run(pkg, plan, r, known)
    if not plan.versions and not plan.runs:
        raise PackageError(
            "package: it holds no versions and no runs", file="reprocas/package.json"
        )
    return plan


def _ingest_files(
    repo: Repository, plan: _Plan, writer: Any, progress: Progress, stage: Path
) -> None:
    """Cut every file the repository lacks into its chunks: staged members and files
    of ``--data-dir`` from where they are (a staged file is removed once stored),
    held ones from a file written to ``stage``; each must store as the digest checked."""
    from reprocas.store.commit import _Committer

    with repo.index.read() as txn:
        todo = {d: m for d, m in plan.files.items() if lookup_chunkmap(repo, txn, d) is None}
    progress.start(sum(m.size for m in todo.values()), len(todo))
    c = _Committer(repo, writer, progress)
    try:
        for i, (digest, m) in enumerate(sorted(todo.items())):
            f = m.path
            if f is None:
                f = stage / f"held-{i}"
                try:
                    f.write_bytes(m.read_bytes())
                except OSError as exc:
                    raise _staging_error(exc, m.name, f) from exc
            target, _size, _meta = c.ingest_file(f, os.stat(f))
            if m.staged or m.path is None:
                f.unlink()
            if target != digest:
                raise PackageError(
                    f"package: {m.name} read back differs ({digest.hex()})", file=m.name
                )
    finally:
        c.close()


def _staging_error(exc: OSError, name: str, f: Path) -> Exception:
    if exc.errno == errno.ENOSPC:
        return StorageFullError(
            f"package: the disk filled while {name} was staged; nothing was imported",
            path=str(f),
        )
    return StorageIOError(f"package: cannot stage {name}: {exc}", path=str(f))


def _withheld_environment(repo: Repository, rt: Any, pkg: Package, run: Run) -> None:
    """A run exported with ``--with-env lock`` names an environment snapshot the package
    does not carry: it is recorded here as purged (as `rm --purge` records one), so gc,
    prune and du know its bytes are not to be found rather than missing; logged for
    ``index rebuild``."""
    import time

    from reprocas.retention.forget import forgotten_line

    env = run.environment
    if env is None or env.raw in pkg.objects:
        return
    txn = rt.txn
    db = repo.index.db
    if txn.get(env.raw, db=db["snapshots"]) is not None or txn.get(env.raw, db=db["forgotten"]):
        return  # this repository has it (or knows it is gone) already
    ref = next(
        (str(r.get("environment_ref")) for r in pkg.index.get("runs") or []
         if r.get("environment") == env.hex and r.get("environment_ref")),
        f"environment {env.hex[:16]}",
    )  # fmt: skip
    name, _, number = ref.partition("@v")
    now = time.time_ns()
    line = forgotten_line(
        repo, rt, env, ref=ref, name=name, number=int(number) if number.isdigit() else 0,
        kind="environment", time_ns=run.start_ns,
        reasons=["not in the package: it was exported with --with-env lock"], tags=[],
        now=now, by="import", purge_ns=now,
    )  # fmt: skip
    repo.append_reflog([line])


def _code_snapshot(writer: Any, c: _Code) -> ObjectId:
    """Write the tree of a run's packaged code and its snapshot (deterministic: the
    run's own time and user); returns the snapshot id."""
    executable = set(((c.run.code or {}).get("files") or {}).get("executable") or ())
    items: dict[str, list[TreeEntry]] = {"": []}
    for path in sorted(c.files):
        parts = path.split("/")
        for i in range(1, len(parts)):
            items.setdefault("/".join(parts[:i]), [])
        data = c.files[path]
        exe = path in executable or data.startswith(b"#!")
        parent = "/".join(parts[:-1])
        items[parent].append(
            TreeEntry(
                parts[-1], "file", 0o755 if exe else 0o644, core.blake3_digest(data), len(data)
            )
        )
    ids: dict[str, bytes] = {}
    for d in sorted(items, key=lambda p: (-p.count("/") - (p != ""), p)):
        entries = list(items[d])
        for sub in items:
            if sub and sub.rpartition("/")[0] == d and sub != d:
                entries.append(TreeEntry(sub.rpartition("/")[2], "dir", 0o755, ids[sub]))
        ids[d] = writer.add_object(Tree.sorted(entries, 3).to_wire()).raw
    snap = Snapshot(
        kind="dataset",
        name=c.name,
        root=ObjectId(ids[""]),
        parent=None,
        time_ns=c.run.end_ns,
        author=c.run.user,
        message=f"the packaged code of run {c.run.name}#{c.run.number} ({c.rid.hex()})",
        step=None,
        source="dir",
        files=len(c.files),
        logical_bytes=sum(len(b) for b in c.files.values()),
        extra={"version": 1, "tags": [], CODE_OF_KEY: c.rid, CODE_CWD_KEY: c.rel_cwd},
    )
    return writer.add_object(snap.to_wire())  # type: ignore[no-any-return]


@contextlib.contextmanager
def _staging(repo: Repository) -> Iterator[Path]:
    repo.tmp_dir.mkdir(exist_ok=True)
    stage = Path(tempfile.mkdtemp(prefix="import-", dir=repo.tmp_dir))
    try:
        yield stage
    finally:
        shutil.rmtree(stage, ignore_errors=True)


def _summary(repo: Repository, pkg: Package, plan: _Plan) -> dict[str, Any]:
    return {"package": str(pkg.path), "data": pkg.index.get("data"), "runs": [], "versions": []}


def import_package(
    repo: Repository,
    path: Path,
    *,
    data_dir: Path | None = None,
    progress: Progress | None = None,
    max_members: int = MAX_MEMBERS,
) -> dict[str, Any]:
    """Check package ``path`` whole, then store it in one transaction (module docstring).
    Its data members are staged under the repository's ``tmp/`` (bounded memory, one
    staging directory removed whatever happens). Returns what was imported (``--json``)."""
    from reprocas.provenance import graph
    from reprocas.provenance.names import latest_run, put_summary, run_ref
    from reprocas.store.writer import Writer

    if not repo.content_ids:
        raise PackageFormatError(
            f"repository {repo.root} is format {repo.format_version}: packages are imported "
            "into format 3 repositories (content ids); run `reprocas upgrade` first"
        )
    if data_dir is not None and not data_dir.is_dir():
        raise UsageError(f"--data-dir {data_dir} is not a directory")
    progress = progress or Progress()
    index = repo.index
    # Under the shared gc lock from the start: prune, which clears tmp/, waits for it.
    with repo.lock("gc", exclusive=False), _staging(repo) as stage:
        pkg = read_package(path, stage, max_members)
        plan = check(pkg, data_dir)
        out = _summary(repo, pkg, plan)
        writer = Writer(repo)
        try:
            _ingest_files(repo, plan, writer, progress, stage)
            for oid in plan.objects:
                got = writer.add_object(pkg.objects[oid])
                if got.raw != oid:
                    raise PackageError(f"package: object {oid.hex()} re-encodes differently")
            codes = [(c, _code_snapshot(writer, c)) for c in plan.code]
            writer.seal_packs()
            with repo.ref_transaction() as rt:
                txn = rt.txn
                writer.index_into(txn)
                for v in plan.versions:
                    number = int(v.snap.extra.get("version") or 0)
                    info = repo.version_info(txn, ObjectId(v.sid))
                    status = "present"
                    if info is None:
                        held = index.get_ref(txn, version_ref(v.snap.name, number))
                        status = "imported"
                        if held is not None or number < 1:
                            number, status = repo.next_number(txn, v.snap.name), "renumbered"
                        # Set at once: a later version of this package sees the slot taken.
                        rt.set([(version_ref(v.snap.name, number), ObjectId(v.sid))])
                        txn.put(
                            v.sid,
                            pack([v.snap.kind, v.snap.name, number]),
                            db=index.db["snapshots"],
                        )
                        graph.put_edges(repo, txn, graph.derived_edges(v.sid, v.snap))
                    else:
                        number = info[1]
                    if not v.env:
                        out["versions"].append(
                            {"ref": f"{v.snap.name}@v{number}", "packaged_as": v.ref,
                             "id": v.sid.hex(), "content_id": v.snap.root.hex, "status": status}
                        )  # fmt: skip
                for rid, run in plan.runs:
                    number, status = run.number, "present"
                    if txn.get(rid, db=index.db["runs"]) is None:
                        status = "imported"
                        if index.get_ref(txn, run_ref(run.name, number)) is not None:
                            last = latest_run(repo, txn, run.name)
                            number, status = (last.number + 1 if last else 1), "renumbered"
                        rt.set([(run_ref(run.name, number), ObjectId(rid))])
                        # The summary carries the number the run has here (a renumbered
                        # run keeps its object, and so its id, as packaged).
                        put_summary(
                            repo, txn, ObjectId(rid), dataclasses.replace(run, number=number)
                        )
                        edges = graph.aliased_edges(repo, txn, graph.run_edges(ObjectId(rid), run))
                        graph.put_edges(repo, txn, edges)
                    _withheld_environment(repo, rt, pkg, run)
                    for c, sid in codes:
                        if c.rid == rid and index.get_ref(txn, version_ref(c.name, 1)) is None:
                            rt.set([(version_ref(c.name, 1), sid)])
                            txn.put(sid.raw, pack(["dataset", c.name, 1]), db=index.db["snapshots"])
                    out["runs"].append(
                        {"ref": f"{run.name}#{number}", "packaged_as": f"{run.name}#{run.number}",
                         "id": rid.hex(), "status": status, "run_status": run.status}
                    )  # fmt: skip
            writer.indexed()
        except StorageFullError as exc:
            writer.abort()
            raise StorageFullError(
                f"package: the disk filled while {path} was stored; nothing of it was kept "
                f"and the repository is as it was ({exc.message.split(';')[0]}); free space "
                "and import again",
                path=getattr(exc, "path", None),
            ) from exc
        except BaseException:
            writer.abort()
            raise
        finally:
            writer.close()
    out["files"] = len(plan.files)
    out["objects"] = len(plan.objects)
    out["new_bytes"] = writer.new_bytes
    return out
