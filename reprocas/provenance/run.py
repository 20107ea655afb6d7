"""Record a run: resolve and check out its inputs, snapshot its environment and code,
run the command (streaming and storing its output), commit its outputs, read its
metrics, and store the run object with its refs and provenance edges.

The write order is the store's: the outputs' version and the run's own files go into
packs first; then one LMDB write transaction checks the run number is still free,
appends the ref log, moves ``run:<name>:<N>``, and writes the run's summary and its
edges. A run whose command failed is recorded all the same (``status: "failed"``).
"""

from __future__ import annotations

import contextlib
import getpass
import json
import math
import os
import shutil
import socket
import stat
import subprocess
import tempfile
import threading
import time
import tomllib
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import IO, Any

import lmdb

from reprocas.errors import DestinationError, InvalidParameterError, ReprocasError
from reprocas.model.ids import ObjectId
from reprocas.model.objects import Run, Tree
from reprocas.native import core
from reprocas.provenance import graph, upstream
from reprocas.provenance.errors import MetricsError, OutputMissingError, ParamsError
from reprocas.provenance.names import (
    OUTPUT_PREFIX,
    RunHandle,
    check_run_name,
    latest_run,
    load_run,
    put_summary,
    run_ref,
)
from reprocas.store import checkout as checkout_mod
from reprocas.store.commit import commit
from reprocas.store.reachability import iter_tree
from reprocas.store.repository import Repository, Version
from reprocas.store.writer import Writer

ENV_MODES = ("full", "light", "none")
STDOUT_FILE = "stdout.txt"
STDERR_FILE = "stderr.txt"
PATCH_FILE = "code/diff.patch"
METRICS_FILE = "metrics.json"
OUTPUT_KIND = "run-output"
METRICS_PATH_KEY = "metrics_file"
"""The ``extra`` key holding the ``--metrics`` path as given (``reprocas replay`` reads it)."""

Say = Callable[[str], None]


def _quiet(_: str) -> None:
    return None


# -- parameters and metrics ------------------------------------------------------------------


def _param_value(text: str) -> Any:
    """``3`` -> 3, ``0.1`` -> 0.1, ``true`` -> True, ``[1,2]`` -> [1, 2]; else the text."""
    try:
        value = json.loads(text)
    except ValueError:
        return text
    if isinstance(value, float) and not math.isfinite(value):
        return text
    return value


def parse_params(
    pairs: Iterable[str] = (), files: Iterable[str | os.PathLike[str]] = ()
) -> dict[str, Any]:
    """Parameters from ``--params-file`` (JSON, TOML, or YAML when a YAML package is
    installed), in order, then ``--param KEY=VALUE`` (which win)."""
    params: dict[str, Any] = {}
    for f in files:
        params.update(read_params_file(Path(f)))
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise ParamsError(f"--param {pair!r}: use KEY=VALUE")
        params[key.strip()] = _param_value(value)
    return params


def read_params_file(path: Path) -> dict[str, Any]:
    """A params file as a map; the format comes from the suffix."""
    try:
        data = path.read_bytes()
    except FileNotFoundError as exc:
        raise ParamsError(f"--params-file {path}: no such file") from exc
    except OSError as exc:
        raise ParamsError(f"--params-file {path}: cannot read it ({exc.strerror})") from exc
    suffix = path.suffix.lower()
    try:
        if suffix == ".toml":
            value: Any = tomllib.loads(data.decode("utf-8"))
        elif suffix in (".yaml", ".yml"):
            try:
                import yaml  # type: ignore[import-untyped]
            except ImportError as exc:
                raise ParamsError(
                    f"--params-file {path}: reading YAML needs a YAML package (PyYAML); "
                    "install it, or give the parameters as JSON or TOML"
                ) from exc
            value = yaml.safe_load(data)
        else:
            value = json.loads(data)
    except ParamsError:
        raise
    except Exception as exc:
        raise ParamsError(f"--params-file {path}: not valid {suffix or 'JSON'}: {exc}") from exc
    if not isinstance(value, dict):
        raise ParamsError(f"--params-file {path}: must hold a map of names to values")
    plain: dict[str, Any] = _plain(value, str(path))
    return plain


def _plain(value: Any, where: str) -> Any:
    """Parameters as canonical-msgpack-safe values (dates and the like become text)."""
    if isinstance(value, dict):
        return {str(k): _plain(v, where) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v, where) for v in value]
    if value is None or isinstance(value, bool | int | float | str):
        return value
    return str(value)


def typed_metrics(data: Any, where: str) -> dict[str, dict[str, Any]]:
    """``{"acc": 0.9, "loss": [1.0, 0.5]}`` -> typed metrics; nested maps are flattened
    with ``/`` (``{"val": {"acc": 1}}`` -> ``val/acc``)."""
    if not isinstance(data, dict):
        raise MetricsError(f"{where}: metrics must be a JSON object of numbers")
    out: dict[str, dict[str, Any]] = {}

    def num(v: Any) -> bool:
        return isinstance(v, int | float) and not isinstance(v, bool)

    def walk(prefix: str, d: dict[str, Any]) -> None:
        for k, v in d.items():
            key = f"{prefix}{k}"
            if isinstance(v, dict):
                walk(key + "/", v)
            elif num(v):
                out[key] = {"kind": "scalar", "value": v}
            elif isinstance(v, list) and all(num(x) for x in v):
                out[key] = {"kind": "series", "values": list(v)}
            else:
                raise MetricsError(
                    f"{where}: metric {key!r} is {type(v).__name__}; metrics are numbers "
                    "or lists of numbers"
                )

    walk("", data)
    return out


def read_metrics(path: Path) -> tuple[dict[str, dict[str, Any]], bytes]:
    """The typed metrics of a JSON file, and the file's bytes."""
    data = path.read_bytes()
    try:
        value = json.loads(data)
    except ValueError as exc:
        raise MetricsError(f"metrics file {path} is not JSON: {exc}") from exc
    return typed_metrics(value, f"metrics file {path}"), data


def metric_values(metrics: dict[str, Any]) -> dict[str, Any]:
    """Typed metrics as plain values: a number, or a list for a series."""
    return {
        k: (v.get("value") if v.get("kind") == "scalar" else v.get("values"))
        for k, v in metrics.items()
    }


# -- inputs ------------------------------------------------------------------------------------


def _safe_rel(path: str, what: str) -> str:
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
        v = repo.resolve(txn, ref)
        sub = upstream.output_root(repo, txn, v.id)  # a run's outputs: at their own path
        rel = (
            _safe_rel(path, "--input path")
            if path
            else upstream.default_path(v.name, sub is not None)
        )
        out.append(
            {
                "ref": ref,
                "dataset": v.name,
                "number": v.number,
                "snapshot": v.id.raw,
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
                m = repo.load_manifest(txn, ObjectId(e.target))
                if core.blake3_digest(p.read_bytes()) != m.digest:
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


# -- environment and code ----------------------------------------------------------------------


@dataclass
class EnvState:
    """The environment snapshot taken for a run, and its code state."""

    snapshot: ObjectId | None = None
    ref: str | None = None
    created: bool = False
    facts_id: ObjectId | None = None
    facts: dict[str, Any] | None = None
    code: dict[str, Any] | None = None
    patch: bytes = b""
    notes: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)  # secrets redacted (or kept)


def _code(git: dict[str, Any] | None, patch: bytes) -> dict[str, Any] | None:
    if git is None:
        return None
    return {
        "commit": git.get("commit"),
        "branch": git.get("branch"),
        "dirty": bool(git.get("dirty")),
        "remote_url": git.get("remote_url"),
        "diff": git.get("diff"),
        "patch": PATCH_FILE if patch else None,
        "untracked_count": git.get("untracked_count", 0),
        **{k: git[k] for k in ("redacted", "secrets_allowed", "secrets_kept") if k in git},
    }


def capture_environment(
    repo: Repository, mode: str, cwd: Path, *, allow_secrets: bool = False
) -> EnvState:
    """A light (or full) environment snapshot, reused when unchanged; code state always.
    Secrets are redacted from what is stored unless ``allow_secrets``."""
    if mode not in ENV_MODES:
        raise InvalidParameterError(f"--env must be one of {', '.join(ENV_MODES)}, not {mode!r}")
    if mode == "none":
        from reprocas.environment import gitstate
        from reprocas.security import warnings

        g = gitstate.capture(cwd, exclude=(repo.root.resolve(),), allow_secrets=allow_secrets)
        return EnvState(
            code=_code(g.facts, g.patch),
            patch=g.patch,
            notes=list(g.notes),
            warnings=warnings(g.findings, allowed=allow_secrets),
        )
    from reprocas.environment.capture import capture
    from reprocas.environment.store import env_name, save

    cap = capture(None, cwd, exclude=(repo.root.resolve(),), allow_secrets=allow_secrets)
    r = save(repo, cap, env_name(None, cap.project), full=mode == "full")
    return EnvState(
        snapshot=r.id,
        ref=r.ref,
        created=r.created,
        facts_id=r.environment_id,
        facts=cap.facts,
        code=_code(cap.facts.get("git"), cap.patch),
        patch=cap.patch,
        notes=list(r.notes),
        warnings=cap.warnings(),
    )


def drift(repo: Repository, name: str, env: EnvState) -> tuple[str, list[str]] | None:
    """What changed in the environment since the previous run of ``name``:
    ``(previous run, lines)``; None without a previous run or a snapshot to compare."""
    if env.snapshot is None or env.facts is None:
        return None
    with repo.index.read() as txn:
        prev = latest_run(repo, txn, name)
        if prev is None:
            return None
        run = load_run(repo, txn, prev.id)
    if run.environment is None:
        return None
    if run.environment == env.snapshot:
        return prev.ref, []
    from reprocas.environment import diff as envdiff
    from reprocas.environment.store import load

    try:
        before = load(repo, run.environment.hex)
    except ReprocasError:
        return None
    if before.environment_id == env.facts_id:
        return prev.ref, []
    d = envdiff.diff(before.facts, env.facts)
    return prev.ref, [] if d.same else envdiff.render(d, prev.ref, "now")


# -- running the command -------------------------------------------------------------------


def _pump(src: IO[bytes], sinks: list[IO[bytes]], keep: bytearray) -> None:
    for chunk in iter(lambda: src.read1(65536), b""):  # type: ignore[attr-defined]
        keep += chunk
        for s in sinks:
            with contextlib.suppress(OSError, ValueError):
                s.write(chunk)
                s.flush()


@dataclass
class Outcome:
    """What the command did."""

    exit_code: int
    stdout: bytes
    stderr: bytes
    start_ns: int
    end_ns: int
    error: str | None = None


def execute(
    command: list[str],
    cwd: Path,
    *,
    stdout_to: IO[bytes] | None,
    stderr_to: IO[bytes] | None,
    env: dict[str, str] | None = None,
) -> Outcome:
    """Run ``command``; its output is streamed to the given sinks and kept."""
    out, err = bytearray(), bytearray()
    start = time.time_ns()
    try:
        proc = subprocess.Popen(
            command, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env
        )
    except FileNotFoundError:
        return Outcome(127, b"", b"", start, time.time_ns(), f"command not found: {command[0]}")
    except PermissionError:
        return Outcome(126, b"", b"", start, time.time_ns(), f"permission denied: {command[0]}")
    assert proc.stdout is not None and proc.stderr is not None
    threads = [
        threading.Thread(target=_pump, args=(proc.stdout, [stdout_to] if stdout_to else [], out)),
        threading.Thread(target=_pump, args=(proc.stderr, [stderr_to] if stderr_to else [], err)),
    ]
    for t in threads:
        t.start()
    try:
        code = proc.wait()
    except KeyboardInterrupt:
        code = proc.wait()  # the child got the same SIGINT; record how it ended
    for t in threads:
        t.join()
    end = time.time_ns()
    if code < 0:
        code = 128 - code  # killed by a signal, as a shell reports it
    return Outcome(code, bytes(out), bytes(err), start, end)


# -- outputs ---------------------------------------------------------------------------------


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
                        graph.put_edges(repo, rt.txn, graph.run_edges(h.id, run))
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


def default_name(command: list[str]) -> str:
    """A run name from the command: ``python train.py`` -> ``train``."""
    words = [w for w in command if not w.startswith("-")]
    pick = next((w for w in words if "." in Path(w).name or "/" in w), words[0] if words else "run")
    stem = Path(pick).stem or "run"
    slug = "".join(c if c.isalnum() or c in "._-" else "-" for c in stem).strip("-._")
    return slug or "run"


# -- the whole recording ---------------------------------------------------------------------


@dataclass
class Spec:
    """What ``reprocas run`` was asked to do."""

    command: list[str]
    name: str | None = None
    inputs: list[tuple[str, str | None]] = field(default_factory=list)
    params: dict[str, Any] = field(default_factory=dict)
    outputs: list[str] = field(default_factory=list)
    metrics: str | None = None
    env: str = "light"
    cwd: Path = field(default_factory=Path.cwd)
    extra: dict[str, Any] = field(default_factory=dict)
    record_env: dict[str, str] | None = None  # the command's environment (None: ours)
    allow_secrets: bool = False  # store secrets in the diff and lock files verbatim


@dataclass
class Recorded:
    """A stored run and what recording it noticed."""

    handle: RunHandle
    run: Run
    environment_ref: str | None
    environment_created: bool
    error: ReprocasError | None = None  # raised by the caller after reporting the run


def parse_input(text: str) -> tuple[str, str | None]:
    """``REF`` or ``REF=PATH``."""
    ref, sep, path = text.partition("=")
    if not ref.strip():
        raise InvalidParameterError(f"--input {text!r}: use REF or REF=PATH")
    return ref.strip(), (path.strip() or None) if sep else None


def record(
    repo: Repository,
    spec: Spec,
    *,
    say: Say = _quiet,
    stdout_to: IO[bytes] | None = None,
    stderr_to: IO[bytes] | None = None,
) -> Recorded:
    """Record one run of ``spec.command`` (see the module docstring)."""
    if not spec.command:
        raise InvalidParameterError(
            "no command: give it after `--`, e.g. `reprocas run -- python train.py`"
        )
    name = check_run_name(spec.name or default_name(spec.command))
    cwd = spec.cwd.resolve()
    with repo.index.read() as txn:
        inputs = resolve_inputs(repo, txn, spec.inputs)
    for o in spec.outputs:
        _safe_rel(o, "--output")
    checkout_inputs(repo, inputs, cwd, say)
    env = capture_environment(repo, spec.env, cwd, allow_secrets=spec.allow_secrets)
    for n in env.notes:
        say(f"note: {n}")
    for w in env.warnings:
        say(f"warning: {w}")
    d = drift(repo, name, env)
    if d is not None:
        prev, lines = d
        if lines:
            say(f"environment drift since {prev}:")
            for ln in lines:
                say(f"  {ln}")
        else:
            say(f"environment unchanged since {prev}")
    outcome = execute(
        spec.command, cwd, stdout_to=stdout_to, stderr_to=stderr_to, env=spec.record_env
    )
    draft = Draft(
        name=name,
        command=list(spec.command),
        cwd=str(cwd),
        params=spec.params,
        inputs=inputs,
        environment=env.snapshot,
        code=env.code,
        start_ns=outcome.start_ns,
        end_ns=outcome.end_ns,
        exit_code=outcome.exit_code,
        extra=dict(spec.extra),
    )
    if spec.metrics:  # where the command writes its metrics, so that a replay reads them back
        draft.extra.setdefault(METRICS_PATH_KEY, spec.metrics)
    draft.files[STDOUT_FILE] = outcome.stdout
    draft.files[STDERR_FILE] = outcome.stderr
    if env.patch:
        draft.files[PATCH_FILE] = env.patch
    error: ReprocasError | None = None
    if outcome.error:
        draft.errors.append(outcome.error)
    outputs, missing = commit_outputs(repo, name, spec.outputs, cwd)
    draft.outputs = outputs
    for m in missing:
        draft.errors.append(f"output {m} was never created")
    if spec.metrics:
        mpath = cwd / spec.metrics
        try:
            draft.metrics, raw = read_metrics(mpath)
            draft.files[METRICS_FILE] = raw
        except FileNotFoundError:
            missing.append(spec.metrics)
            draft.errors.append(f"metrics file {spec.metrics} was never created")
        except MetricsError as exc:
            draft.errors.append(str(exc))
            error = exc
    stored = store_runs(repo, [draft])
    handle, run = stored[0]
    if missing and outcome.exit_code == 0 and error is None:
        error = OutputMissingError(
            f"run {handle.ref} recorded as failed: "
            + ", ".join(f"{m} was never created" for m in missing),
            path=missing[0],
        )
    if outcome.error and error is None:
        say(f"{outcome.error} (recorded as {handle.ref}, exit {outcome.exit_code})")
    return Recorded(handle, run, env.ref, env.created, error)


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
        "cwd": run.cwd,
        "host": run.host,
        "user": run.user,
        "start_ns": run.start_ns,
        "end_ns": run.end_ns,
        "duration_s": round((run.end_ns - run.start_ns) / 1e9, 6),
        "params": run.params,
        "inputs": [
            {
                "ref": i.get("ref"),
                "version": f"{i['dataset']}@v{i['number']}",
                "id": bytes(i["snapshot"]).hex(),
                "path": i.get("path"),
            }
            for i in run.inputs
        ],
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
        "replay_of": run.extra["replay_of"].hex()
        if isinstance(run.extra.get("replay_of"), bytes)
        else None,
        "verdict": run.extra.get("verdict"),
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
