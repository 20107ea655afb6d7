"""``reprocas export``: runs (or versions) with everything that produced them, as one
deterministic zip: a BagIt bag whose ``data/`` is an RO-Crate (docs/PACKAGES.md)."""

from __future__ import annotations

import json
import os
import tempfile
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import lmdb

from reprocas.errors import IntegrityError, UsageError
from reprocas.model.ids import ObjectId
from reprocas.model.objects import Run
from reprocas.native import core
from reprocas.package import bagit, docs
from reprocas.package.crate import crate_metadata, decision_notes
from reprocas.package.streams import (
    Stored,
    file_digest_sha256,
    iter_stored,
    sha256_stored,
    write_member,
    zip_info,
)
from reprocas.progress import Progress
from reprocas.provenance.run_common import METRICS_FILE
from reprocas.store import lease
from reprocas.store.content import listing as content_listing
from reprocas.store.frames import FrameCache
from reprocas.store.repository import Repository

ZIP_TIME = (1980, 1, 1, 0, 0, 0)
# Decoded frames kept while a package reads its small files (streams.iter_stored).
SHARED_CACHE = 16 << 20
# Deflate level 1: about 4x the speed of level 6 on CSV for a zip some 20% larger.
ZIP_LEVEL = 1
DIGESTS = "reprocas/blake3.txt"
INDEX = "reprocas/package.json"
FILES = "reprocas/files.json"
OBJECTS = "reprocas/objects/"
BLOBS = "reprocas/blobs/"
LISTINGS = "reprocas/listings/"
DATASETS = "datasets/"
PACKAGE_FORMAT = "reprocas-package"
PACKAGE_VERSION = 1
# Written after the BLAKE3 list (they describe it), so not in it; the bag's
# SHA-256/SHA-512 manifests cover them.
UNLISTED = (DIGESTS, "ro-crate-metadata.json")


class PackageFormatError(UsageError):
    """A package cannot be made from a repository of this format."""


@dataclass
class VersionPart:
    ref: str
    id_hex: str
    content_hex: str
    kind: str
    name: str
    number: int
    # path -> (BLAKE3 hex, size, mode, SHA-256 hex) of every file; with --data include
    # also where to read each one (the bytes stay in the store until the zip is written)
    entries: dict[str, tuple[str, int, int, str]] = field(default_factory=dict)
    files: dict[str, Stored] = field(default_factory=dict)
    listing: dict[str, Any] = field(default_factory=dict)

    @property
    def crate_id(self) -> str:
        return f"{DATASETS}{self.ref}/"


@dataclass
class EnvPart:
    ref: str
    id_hex: str
    facts: dict[str, Any] | None


@dataclass
class RunPart:
    ref: str
    id_hex: str
    run: Run
    inputs: list[VersionPart]
    outputs: list[VersionPart]
    code: dict[str, bytes]
    rel_cwd: str
    env: EnvPart | None
    metrics_sha256: str | None = None

    @property
    def key(self) -> str:
        return self.ref.replace("#", "-")


@dataclass
class Plan:
    title: str
    data: str
    with_env: str = "full"
    runs: list[RunPart] = field(default_factory=list)
    versions: dict[str, VersionPart] = field(default_factory=dict)
    environments: dict[str, VersionPart] = field(default_factory=dict)
    objects: dict[str, bytes] = field(default_factory=dict)
    blobs: dict[str, Stored] = field(default_factory=dict)
    date: str | None = None
    progress: Progress = field(default_factory=Progress)
    notes: list[dict[str, Any]] = field(default_factory=list)  # crate.decision_notes


def _read_tree(d: Path) -> dict[str, bytes]:
    out: dict[str, bytes] = {}
    for p in sorted(d.rglob("*")):
        if p.is_file() and not p.is_symlink() and ".git" not in p.relative_to(d).parts:
            out[p.relative_to(d).as_posix()] = p.read_bytes()
    return out


def _tree(
    repo: Repository, txn: lmdb.Transaction, plan: Plan, root: bytes, label: str
) -> dict[str, Stored]:
    """Add every tree below ``root`` to the plan's objects; returns each file (by path)
    with its SHA-256, read from the store in batches (its bytes are not kept)."""
    raw = repo.load_raw(txn, ObjectId(root))
    if codec_tree_version(raw) != 3:
        raise PackageFormatError(
            f"{label} is stored as a format-2 tree (recorded before `reprocas upgrade`): "
            "its ids would not survive an import; it cannot be packaged"
        )
    plan.objects[ObjectId(root).hex] = raw
    out: dict[str, Stored] = {}
    cache = FrameCache(SHARED_CACHE)  # small files' shared frames, decoded once for the tree
    stack = [(root, "")]
    while stack:
        tid, at = stack.pop()
        for e in repo.load_tree(txn, ObjectId(tid)).entries:
            path = at + e.name
            if e.kind == "dir":
                plan.objects[ObjectId(e.target).hex] = repo.load_raw(txn, ObjectId(e.target))
                stack.append((e.target, path + "/"))
            elif e.kind == "file":
                sha, size = sha256_stored(repo, e, f"{label}:{path}", cache)
                if size != e.size:
                    raise IntegrityError(
                        f"{label}:{path}: the store holds {size} bytes, its tree says {e.size}"
                    )
                plan.progress.advance(size)
                out[path] = Stored(e, f"{label}:{path}", sha)
    return out


def codec_tree_version(raw: bytes) -> int:
    from reprocas.store import codec

    w = codec.decode(raw)
    return int(w.get("v", 2)) if isinstance(w, dict) else 0


def _version(repo: Repository, plan: Plan, sid: bytes, *, env: bool = False) -> VersionPart:
    with repo.index.read() as txn:
        v = repo.make_version(txn, ObjectId(sid))
        table = plan.environments if env else plan.versions
        if v.ref in table:
            return table[v.ref]
        plan.objects[v.id.hex] = repo.load_raw(txn, v.id)
        part = VersionPart(v.ref, v.id.hex, v.snapshot.root.hex, v.snapshot.kind, v.name, v.number)
        files = _tree(repo, txn, plan, v.snapshot.root.raw, v.ref)
        for path, st in sorted(files.items()):
            e = st.entry
            part.entries[path] = (st.blake3, e.size, e.mode, st.sha256)
            if env:
                plan.blobs[st.blake3] = st  # environments always travel whole (--with-env)
            elif plan.data == "include":
                part.files[path] = st
        part.listing = content_listing(repo, txn, v)
    table[v.ref] = part
    return part


def _code(repo: Repository, run: Run) -> tuple[dict[str, bytes], str]:
    from reprocas.provenance.replay_code import find_code, read_run_file, restore_code
    from reprocas.provenance.run_common import PATCH_FILE

    patch = read_run_file(repo, run, PATCH_FILE) or b""
    found = find_code(run, patch)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp) / "code"
        work.mkdir()
        restored = restore_code(repo, run, found, patch, work, lambda _m: None)
        files = _read_tree(work)
    return files, restored.rel_cwd


def _environment(repo: Repository, plan: Plan, sid: ObjectId) -> EnvPart:
    from reprocas.environment.store import _facts

    with repo.index.read() as txn:
        ev = repo.make_version(txn, sid)
        fid, facts = _facts(repo, txn, ev)
        if plan.with_env == "full":
            plan.objects[fid.hex] = repo.load_raw(txn, fid)
            for sp in ev.snapshot.extra.get("site_packages") or ():
                _version(repo, plan, bytes(sp["snapshot"]), env=True)
    if plan.with_env == "full":
        _version(repo, plan, sid.raw, env=True)
    return EnvPart(ev.ref, ev.id.hex, facts)


def build_plan(
    repo: Repository,
    refs: list[str],
    *,
    data: str = "include",
    with_env: str = "full",
    progress: Progress | None = None,
) -> Plan:
    """Resolve ``refs`` (runs, or dataset versions) and gather what the package holds."""
    from reprocas.provenance.names import is_run_ref, load_run, resolve_run

    if not repo.content_ids:
        raise PackageFormatError(
            f"repository {repo.root} is format {repo.format_version}: packages are made "
            "from format 3 repositories (content ids); run `reprocas upgrade` first"
        )
    if data not in ("include", "metadata-only"):
        raise UsageError(f"--data must be include or metadata-only, not {data!r}")
    if with_env not in ("full", "lock"):
        raise UsageError(f"--with-env must be full or lock, not {with_env!r}")
    plan = Plan(title="", data=data, with_env=with_env, progress=progress or Progress())
    plan.progress.start(0, 0)
    named: list[str] = []  # what the refs resolved to: the same runs give the same title
    for ref in refs:
        with repo.index.read() as txn:
            if not is_run_ref(repo, txn, ref):
                sid = repo.resolve(txn, ref).id.raw
                run_obj = None
            else:
                h = resolve_run(repo, txn, ref, original=True)
                run_obj = load_run(repo, txn, h.id)
                plan.objects[h.id.hex] = repo.load_raw(txn, h.id)
        if run_obj is None:
            named.append(_version(repo, plan, sid).ref)
            continue
        named.append(h.ref)
        metrics_sha = None
        if run_obj.root is not None:
            with repo.index.read() as txn:
                for p, st in _tree(repo, txn, plan, run_obj.root.raw, h.ref).items():
                    plan.blobs[st.blake3] = st
                    if p == METRICS_FILE:
                        metrics_sha = st.sha256
        ins = [_version(repo, plan, bytes(i["snapshot"])) for i in run_obj.inputs]
        outs = [_version(repo, plan, bytes(o["snapshot"])) for o in run_obj.outputs]
        env = None
        if run_obj.environment is not None:
            env = _environment(repo, plan, run_obj.environment)
        code, rel = _code(repo, run_obj)
        plan.runs.append(RunPart(h.ref, h.id.hex, run_obj, ins, outs, code, rel, env, metrics_sha))
    plan.title = "reprocas package: " + ", ".join(dict.fromkeys(named))
    plan.notes = decision_notes(
        repo, [r.id_hex for r in plan.runs], {v.id_hex: v.crate_id for v in plan.versions.values()}
    )
    return plan


def _b3(data: bytes) -> str:
    return core.blake3_digest(data).hex()


def _json(value: Any) -> bytes:
    return (json.dumps(value, indent=1, sort_keys=True) + "\n").encode()


def _index(plan: Plan) -> dict[str, Any]:
    def ver(v: VersionPart) -> dict[str, Any]:
        return {
            "ref": v.ref,
            "id": v.id_hex,
            "content_id": v.content_hex,
            "kind": v.kind,
            "name": v.name,
            "number": v.number,
            "files": len(v.entries),
            "bytes": sum(e[1] for e in v.entries.values()),
            "included": bool(v.files) or not v.entries,
        }

    return {
        "format": PACKAGE_FORMAT,
        "version": PACKAGE_VERSION,
        "data": plan.data,
        "with_env": plan.with_env,
        "runs": [
            {
                "ref": r.ref,
                "id": r.id_hex,
                "name": r.run.name,
                "number": r.run.number,
                "code": f"code/{r.key}/",
                "cwd": r.rel_cwd,
                "environment": r.env.id_hex if r.env else None,
                "environment_ref": r.env.ref if r.env else None,
            }
            for r in plan.runs
        ],
        "versions": [ver(v) for v in plan.versions.values()],
        "environments": [ver(v) for v in plan.environments.values()],
    }


def _report(repo: Repository, plan: Plan) -> bytes:
    from reprocas.report.build import build

    names = list(
        dict.fromkeys([r.run.name for r in plan.runs] + [v.name for v in plan.versions.values()])
    )
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "report.html"
        build(repo, names, out)
        return out.read_bytes()


def payload(plan: Plan, report: bytes | None = None) -> tuple[dict[str, bytes], dict[str, Stored]]:
    """Every file under ``data/``, by path: those made here (bytes), and the stored
    files (read from the store when the zip is written)."""
    files: dict[str, bytes] = {}
    stored: dict[str, Stored] = {}
    if report is not None:
        files["report.html"] = report
    listing: list[dict[str, Any]] = []
    for v in plan.versions.values():
        for p, (digest, size, mode, sha) in sorted(v.entries.items()):
            listing.append(
                {"dataset": v.ref, "path": p, "size": size, "mode": f"{mode:o}",
                 "blake3": digest, "sha256": sha}
            )  # fmt: skip
            st = v.files.get(p)
            if st is not None:
                stored[f"{DATASETS}{v.ref}/{p}"] = st
        files[f"{LISTINGS}{v.ref}.json"] = _json(v.listing)
    for r in plan.runs:
        for p, b in r.code.items():
            files[f"code/{r.key}/{p}"] = b
    for oid, raw in plan.objects.items():
        files[f"{OBJECTS}{oid}"] = raw
    for digest, st in plan.blobs.items():
        stored[f"{BLOBS}{digest}"] = st
    files[FILES] = _json(listing)
    files[INDEX] = _json(_index(plan))
    files.update(docs.documents(plan, listing))
    b3 = {p: _b3(b) for p, b in files.items()} | {p: st.blake3 for p, st in stored.items()}
    files[DIGESTS] = "".join(f"{b3[p]}  {bagit._quote(p)}\n" for p in sorted(b3)).encode()
    files["ro-crate-metadata.json"] = crate_metadata(plan, files)
    return files, stored


def write_zip(
    repo: Repository,
    files: dict[str, bytes],
    stored: dict[str, Stored],
    info: dict[str, str],
    dest: Path,
    progress: Progress | None = None,
) -> int:
    """The bag as a zip, in bounded memory: sorted entries, 1980-01-01 times, mode
    0644, no extra fields, so the same bag gives the same bytes. The stored files are
    read from the store in batches and hashed (SHA-256, SHA-512) as they are written;
    the payload manifests follow ``data/`` in the sorted order, so they are written
    last. Written beside ``dest`` and renamed into place; returns the entries written."""
    progress = progress or Progress()
    tmp = dest.with_name(f".{dest.name}.tmp-{os.getpid()}")
    sizes = {p: len(b) for p, b in files.items()} | {p: st.size for p, st in stored.items()}
    tags = bagit.head_tags(info, sum(sizes.values()), len(sizes))
    lines: dict[str, list[str]] = {alg: [] for alg in bagit.ALGORITHMS}

    def member(name: str, size: int, data: Any) -> None:
        got = write_member(z, zip_info(name, size, ZIP_TIME, ZIP_LEVEL), data)
        if got.size != size:
            raise IntegrityError(f"{name}: {got.size} bytes read from the store, not {size}")
        for alg in bagit.ALGORITHMS:
            lines[alg].append(f"{getattr(got, alg)}  {bagit._quote(name)}\n")
        return None

    progress.start(sum(st.size for st in stored.values()), len(stored))
    cache = FrameCache(SHARED_CACHE)  # small files' shared frames, decoded once
    try:
        with lease.reading(repo), zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as z:
            for name in sorted(tags):
                write_member(z, zip_info(name, len(tags[name]), ZIP_TIME, ZIP_LEVEL), tags[name])
            for p in sorted(sizes):
                st = stored.get(p)
                if st is None:
                    member(f"data/{p}", sizes[p], files[p])
                    continue
                member(f"data/{p}", st.size, iter_stored(repo, st.entry, st.label, cache))
                sha = lines["sha256"][-1].partition(" ")[0]
                if sha != st.sha256:
                    raise IntegrityError(
                        f"{st.label}: read twice from the store, it gave two SHA-256 digests"
                    )
                progress.advance(st.size)
                progress.file_done()
            for alg in bagit.ALGORITHMS:
                tags[f"manifest-{alg}.txt"] = "".join(lines[alg]).encode()
            tail = bagit.tag_manifests(tags)
            for name in sorted(set(tags) - set(bagit.head_tags({}, 0, 0))):
                write_member(z, zip_info(name, len(tags[name]), ZIP_TIME, ZIP_LEVEL), tags[name])
            for name in sorted(tail):
                write_member(z, zip_info(name, len(tail[name]), ZIP_TIME, ZIP_LEVEL), tail[name])
        os.replace(tmp, dest)
    finally:
        if tmp.exists():
            tmp.unlink()
    return len(sizes) + len(tags) + len(tail)


def export(
    repo: Repository,
    refs: list[str],
    dest: Path,
    *,
    data: str = "include",
    with_env: str = "full",
    date: str | None = None,
    progress: Progress | None = None,
    report: bool = False,
) -> dict[str, Any]:
    """Write the package for ``refs`` to ``dest``; returns its summary (``--json``).
    ``report`` adds ``report.html`` (reprocas report of the runs' names and their
    inputs' datasets): its bytes follow the repository's timeline (later replays
    too), so it is asked for, not made by default."""
    if not refs:
        raise UsageError("export needs at least one run or version")
    if dest.exists() and dest.is_dir():
        raise UsageError(f"--to {dest} is a directory; give the zip file to write")
    plan = build_plan(repo, refs, data=data, with_env=with_env, progress=progress)
    plan.date = date
    files, stored = payload(plan, _report(repo, plan) if report else None)
    info = {
        "Bag-Software-Agent": "reprocas export",
        "External-Description": plan.title,
        "Reprocas-Data": data,
    }
    if date:
        info["Bagging-Date"] = date
    dest.parent.mkdir(parents=True, exist_ok=True)
    count = write_zip(repo, files, stored, info, dest, plan.progress)
    return {
        "package": str(dest),
        "data": data,
        "with_env": with_env,
        "runs": [{"ref": r.ref, "id": r.id_hex} for r in plan.runs],
        "versions": [
            {"ref": v.ref, "id": v.id_hex, "content_id": v.content_hex, "included": bool(v.files)}
            for v in plan.versions.values()
        ],
        "environments": [{"ref": v.ref, "id": v.id_hex} for v in plan.environments.values()],
        "files": count,
        "payload_bytes": sum(map(len, files.values())) + sum(st.size for st in stored.values()),
        "bytes": dest.stat().st_size,
        "sha256": file_digest_sha256(dest),
    }
