"""``reprocas export``: a run (or versions) with everything that produced it, as one
deterministic zip: a BagIt bag whose ``data/`` is an RO-Crate (docs/PACKAGES.md)."""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from reprocas import _core as core
from reprocas.errors import UsageError
from reprocas.model.ids import ObjectId
from reprocas.model.objects import Run
from reprocas.package import bagit, docs
from reprocas.package.crate import crate_metadata
from reprocas.store import checkout as checkout_mod
from reprocas.store.repository import Repository

ZIP_TIME = (1980, 1, 1, 0, 0, 0)
DIGESTS = "reprocas/blake3.txt"


class PackageFormatError(UsageError):
    """A package cannot be made from a repository of this format."""


@dataclass
class VersionPart:
    ref: str
    id_hex: str
    content_hex: str | None
    files: dict[str, bytes] = field(default_factory=dict)

    @property
    def crate_id(self) -> str:
        return f"datasets/{self.ref}/"


@dataclass
class EnvPart:
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

    @property
    def key(self) -> str:
        return self.ref.replace("#", "-")


@dataclass
class Plan:
    title: str
    data: str
    runs: list[RunPart] = field(default_factory=list)
    versions: dict[str, VersionPart] = field(default_factory=dict)
    objects: dict[str, bytes] = field(default_factory=dict)
    date: str | None = None


def _read_tree(d: Path) -> dict[str, bytes]:
    out: dict[str, bytes] = {}
    for p in sorted(d.rglob("*")):
        if p.is_file() and not p.is_symlink() and ".git" not in p.relative_to(d).parts:
            out[p.relative_to(d).as_posix()] = p.read_bytes()
    return out


def _version(repo: Repository, plan: Plan, sid: bytes) -> VersionPart:
    with repo.index.read() as txn:
        v = repo.make_version(txn, ObjectId(sid))
        plan.objects[v.id.hex] = repo.load_raw(txn, v.id)
        plan.objects[v.snapshot.root.hex] = repo.load_raw(txn, v.snapshot.root)
    if v.ref in plan.versions:
        return plan.versions[v.ref]
    # In format 3 the root tree's id is the content id of the version's files.
    part = VersionPart(v.ref, v.id.hex, v.snapshot.root.hex)
    with tempfile.TemporaryDirectory() as tmp:
        checkout_mod.checkout(repo, v.id.hex, Path(tmp) / "v")
        part.files = _read_tree(Path(tmp) / "v")
    plan.versions[v.ref] = part
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


def build_plan(
    repo: Repository, refs: list[str], *, data: str = "include", with_env: str = "full"
) -> Plan:
    """Resolve ``refs`` (runs, or dataset versions) and gather what the package holds."""
    from reprocas.environment.store import _facts
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
    plan = Plan(title="", data=data)
    for ref in refs:
        with repo.index.read() as txn:
            if not is_run_ref(repo, txn, ref):
                sid = repo.resolve(txn, ref).id.raw
                run_obj = None
            else:
                h = resolve_run(repo, txn, ref, original=True)
                run_obj = load_run(repo, txn, h.id)
                plan.objects[h.id.hex] = repo.load_raw(txn, h.id)
                if run_obj.root is not None:
                    plan.objects[run_obj.root.hex] = repo.load_raw(txn, run_obj.root)
        if run_obj is None:
            _version(repo, plan, sid)
            continue
        ins = [_version(repo, plan, bytes(i["snapshot"])) for i in run_obj.inputs]
        outs = [_version(repo, plan, bytes(o["snapshot"])) for o in run_obj.outputs]
        env = None
        if run_obj.environment is not None:
            with repo.index.read() as txn:
                ev = repo.make_version(txn, run_obj.environment)
                plan.objects[ev.id.hex] = repo.load_raw(txn, ev.id)
                fid, facts = _facts(repo, txn, ev)
                if facts is not None:
                    plan.objects[fid.hex] = repo.load_raw(txn, fid)
            env = EnvPart(ev.id.hex, facts)
        code, rel = _code(repo, run_obj)
        plan.runs.append(RunPart(h.ref, h.id.hex, run_obj, ins, outs, code, rel, env))
    plan.title = "reprocas package: " + ", ".join(refs)
    return plan


def payload(plan: Plan) -> dict[str, bytes]:
    """Every file under ``data/``, by path."""
    files: dict[str, bytes] = {}
    listing: list[dict[str, Any]] = []
    for v in plan.versions.values():
        for p, b in sorted(v.files.items()):
            listing.append(
                {"dataset": v.ref, "path": p, "size": len(b), "sha256": hashlib.sha256(b).hexdigest(),
                 "blake3": core.blake3_digest(b).hex()}
            )
            if plan.data == "include":
                files[f"datasets/{v.ref}/{p}"] = b
    for r in plan.runs:
        for p, b in r.code.items():
            files[f"code/{r.key}/{p}"] = b
    for oid, raw in plan.objects.items():
        files[f"reprocas/objects/{oid}"] = raw
    files["reprocas/files.json"] = (json.dumps(listing, indent=1, sort_keys=True) + "\n").encode()
    files.update(docs.documents(plan, listing))
    files[DIGESTS] = "".join(
        f"{core.blake3_digest(files[p]).hex()}  {p}\n" for p in sorted(files)
    ).encode()
    files["ro-crate-metadata.json"] = crate_metadata(plan, files)
    return files


def write_zip(bag: dict[str, bytes], dest: Path) -> None:
    """Sorted entries, 1980-01-01 times, mode 0644, no extra fields: the same bag gives
    the same bytes. Written beside ``dest`` and renamed into place."""
    tmp = dest.with_name(f".{dest.name}.tmp-{os.getpid()}")
    try:
        with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as z:
            for path in sorted(bag):
                info = zipfile.ZipInfo(path, ZIP_TIME)
                info.external_attr = 0o100644 << 16
                info.create_system = 3
                info.compress_type = zipfile.ZIP_DEFLATED
                z.writestr(info, bag[path], compresslevel=6)
        os.replace(tmp, dest)
    finally:
        if tmp.exists():
            tmp.unlink()


def export(
    repo: Repository,
    refs: list[str],
    dest: Path,
    *,
    data: str = "include",
    with_env: str = "full",
    date: str | None = None,
) -> dict[str, Any]:
    """Write the package for ``refs`` to ``dest``; returns its summary (``--json``)."""
    if not refs:
        raise UsageError("export needs at least one run or version")
    plan = build_plan(repo, refs, data=data, with_env=with_env)
    plan.date = date
    files = payload(plan)
    info = {
        "Bag-Software-Agent": "reprocas export",
        "External-Description": plan.title,
        "Reprocas-Data": data,
    }
    if date:
        info["Bagging-Date"] = date
    bag = bagit.make_bag(files, info)
    dest.parent.mkdir(parents=True, exist_ok=True)
    write_zip(bag, dest)
    return {
        "package": str(dest),
        "data": data,
        "runs": [{"ref": r.ref, "id": r.id_hex} for r in plan.runs],
        "versions": [{"ref": v.ref, "id": v.id_hex, "content": v.content_hex} for v in plan.versions.values()],
        "files": len(bag),
        "bytes": dest.stat().st_size,
        "sha256": hashlib.sha256(dest.read_bytes()).hexdigest(),
    }


