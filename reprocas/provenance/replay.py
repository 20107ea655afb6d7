"""Replay a recorded run to a verdict.

In a fresh working directory: restore the run's code state (its git commit, written
out of the local git repository through a temporary index, plus the stored uncommitted
diff ``code/diff.patch``), check its exact inputs out at their recorded paths, take an
environment snapshot and report the drift from the recorded one, run the recorded
command in the recorded directory (relative to the git toplevel, mapped into the
working directory), then compare every output file by digest and every metric by
value. The replay is itself recorded as a run of the same name, linked to the original
(``extra["replay_of"]``, a *replay-of* edge) with its verdict:

* ``identical`` — the exit status is the same, every output file is byte-identical and
  every metric equal;
* ``within-tolerance`` — outputs differ only in files' bytes (none missing, none
  added) and every metric agrees within the relative tolerance
  (``|a - b| <= REL * max(|a|, |b|)``, element-wise for a series);
* ``diverged`` — anything else: another exit status, a metric beyond the tolerance
  (or missing, or added), an output missing or added, or changed outputs with no
  metric to vouch for them.
"""

from __future__ import annotations

import math
import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import IO, Any

import lmdb

from reprocas.errors import (
    DestinationError,
    InvalidParameterError,
    NotFoundError,
    ReprocasError,
)
from reprocas.model.ids import ObjectId
from reprocas.model.objects import Run
from reprocas.provenance.errors import MetricsError
from reprocas.provenance.names import RunHandle, load_run, resolve_run
from reprocas.provenance.run import (
    METRICS_FILE,
    METRICS_PATH_KEY,
    PATCH_FILE,
    STDERR_FILE,
    STDOUT_FILE,
    Draft,
    Say,
    _quiet,
    _safe_rel,
    checkout_inputs,
    commit_outputs,
    execute,
    metric_values,
    read_metrics,
    run_json,
    store_runs,
    tree_files,
)
from reprocas.store import checkout as checkout_mod
from reprocas.store.repository import Repository

DEFAULT_TOLERANCE = 1e-6
"""Default relative tolerance for metrics (``--tolerance``)."""

DIVERGED_EXIT = 10
"""Exit code of ``reprocas replay`` when the verdict is ``diverged`` (docs/CLI.md)."""

IDENTICAL = "identical"
WITHIN_TOLERANCE = "within-tolerance"
DIVERGED = "diverged"
VERDICTS = (IDENTICAL, WITHIN_TOLERANCE, DIVERGED)

CODE_REPOSITORY_KEY = "code_repository"
CODE_CWD_KEY = "code_cwd"
"""``extra`` keys of a replay: the git repository its code came from, and the working
directory relative to the code's top (so that a replay can itself be replayed)."""

MAX_STORED_DIFFERENCES = 1000
"""At most this many differences are kept in the replay run's record (all are reported)."""


class CodeUnavailableError(NotFoundError):
    """The run's git commit is in no git repository found locally (exit code 4)."""


class CodeRestoreError(ReprocasError):
    """The recorded code state could not be written into the working directory."""


# -- the working directory ---------------------------------------------------------------------


def prepare_workdir(workdir: Path | None) -> tuple[Path, bool]:
    """The replay's working directory, resolved, and whether this call created it.
    A given directory must be empty or absent; the default is a new temporary one."""
    if workdir is None:
        return Path(tempfile.mkdtemp(prefix="reprocas-replay-")).resolve(), True
    p = Path(workdir).expanduser()
    if p.is_symlink() and not p.exists():
        raise DestinationError(f"--workdir {p} is a broken symbolic link; give a new directory")
    if p.exists():
        if not p.is_dir():
            raise DestinationError(f"--workdir {p} exists and is not a directory")
        if any(p.iterdir()):
            raise DestinationError(
                f"--workdir {p} is not empty; give an empty or new directory (or none, "
                "for a new temporary one)"
            )
        return p.resolve(), False
    try:
        p.mkdir(parents=True)
    except OSError as exc:
        raise DestinationError(
            f"--workdir {p} cannot be created: {exc.strerror or exc}", path=str(p)
        ) from exc
    return p.resolve(), True


def _clear(workdir: Path, created: bool) -> None:
    """Undo a replay that failed before its command ran: remove what it wrote."""
    if created:
        shutil.rmtree(workdir, ignore_errors=True)
        return
    for child in list(workdir.iterdir()) if workdir.is_dir() else []:
        if child.is_dir() and not child.is_symlink():
            shutil.rmtree(child, ignore_errors=True)
        else:
            child.unlink(missing_ok=True)


# -- the code state ----------------------------------------------------------------------------

_GIT_LOCATION_VARS = (
    "GIT_DIR",
    "GIT_WORK_TREE",
    "GIT_INDEX_FILE",
    "GIT_OBJECT_DIRECTORY",
    "GIT_ALTERNATE_OBJECT_DIRECTORIES",
    "GIT_COMMON_DIR",
    "GIT_NAMESPACE",
    "GIT_PREFIX",
    "GIT_CEILING_DIRECTORIES",
    "GIT_DISCOVERY_ACROSS_FILESYSTEM",
)


def _git(
    args: list[str],
    *,
    cwd: Path,
    env: dict[str, str] | None = None,
    data: bytes | None = None,
) -> subprocess.CompletedProcess[bytes]:
    full = {k: v for k, v in os.environ.items() if k not in _GIT_LOCATION_VARS}
    full.update({"GIT_OPTIONAL_LOCKS": "0", "GIT_TERMINAL_PROMPT": "0", "LC_ALL": "C"})
    full.update(env or {})
    try:
        return subprocess.run(
            ["git", *args],
            cwd=cwd,
            env=full,
            input=data,
            stdin=None if data is not None else subprocess.DEVNULL,
            capture_output=True,
            check=False,
            timeout=600,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return subprocess.CompletedProcess(["git", *args], 1, b"", str(exc).encode())


def _first_line(raw: bytes) -> str:
    text = raw.decode("utf-8", "replace")
    return next((ln.strip() for ln in text.splitlines() if ln.strip()), "")


def _toplevel(d: Path) -> Path | None:
    if not d.is_dir():
        return None
    r = _git(["rev-parse", "--show-toplevel"], cwd=d)
    if r.returncode != 0:
        return None
    return Path(r.stdout.decode().strip()).resolve()


def _hint(run: Run, key: str) -> str | None:
    value = run.extra.get(key)
    return value if isinstance(value, str) and value else None


def locate_git(run: Run, commit: str | None) -> tuple[Path, str | None] | None:
    """A local git repository holding ``commit`` (any repository when it is None): the
    one the code came from when the run is a replay, the recorded working directory's,
    else the current directory's. Returns its toplevel and the recorded working
    directory relative to it (None when that is not known)."""
    if shutil.which("git") is None:
        return None
    recorded = Path(run.cwd)
    known_rel = _hint(run, CODE_CWD_KEY)  # a replay's: its cwd is in a working directory
    came_from = _hint(run, CODE_REPOSITORY_KEY)
    cands = ([Path(came_from)] if came_from else []) + [recorded, Path.cwd()]
    seen: set[Path] = set()
    for cand in cands:
        top = _toplevel(cand)
        if top is None or top in seen:
            continue
        seen.add(top)
        if commit and _git(["cat-file", "-e", f"{commit}^{{commit}}"], cwd=top).returncode:
            continue
        rel = known_rel
        if rel is None:
            try:
                rel = recorded.resolve().relative_to(top).as_posix()
            except (ValueError, OSError):
                rel = None
        return top, rel
    return None


def _checkout_commit(top: Path, commit: str, workdir: Path) -> None:
    """Write the files of ``commit`` into ``workdir`` as ``git checkout`` would (filters
    and attributes included), through a temporary index: the source repository's own
    index, worktrees and refs are never touched."""
    with tempfile.TemporaryDirectory(prefix="reprocas-replay-index-") as tmp:
        env = {"GIT_INDEX_FILE": str(Path(tmp) / "index")}
        r = _git(["read-tree", commit], cwd=top, env=env)
        if r.returncode == 0:
            r = _git(
                ["checkout-index", "--all", "--force", f"--prefix={workdir}{os.sep}"],
                cwd=top,
                env=env,
            )
    if r.returncode != 0:
        raise CodeRestoreError(
            f"cannot write git commit {commit[:12]} from {top} into {workdir}: "
            f"{_first_line(r.stderr) or 'git failed'}"
        )


def _apply_patch(patch: bytes, workdir: Path) -> None:
    """``git apply`` the stored uncommitted diff in ``workdir`` (never in a repository
    around it: discovery stops at the working directory)."""
    r = _git(
        ["apply", "--whitespace=nowarn", "-"],
        cwd=workdir,
        env={"GIT_CEILING_DIRECTORIES": str(workdir.parent)},
        data=patch,
    )
    if r.returncode != 0:
        raise CodeRestoreError(
            "the stored uncommitted diff (code/diff.patch) does not apply to the recorded "
            f"commit: {_first_line(r.stderr) or 'git apply failed'}"
        )


def _guess_rel(recorded: str, workdir: Path) -> str:
    """The recorded working directory inside the restored tree, when the repository was
    found elsewhere: the longest tail of its path that is a directory there."""
    parts = PurePosixPath(recorded).parts[1:]
    for k in range(len(parts), 0, -1):
        cand = "/".join(parts[-k:])
        if (workdir / cand).is_dir():
            return cand
    return "."


@dataclass
class CodeRestore:
    """How the code state was restored."""

    source: str  # "git" | "patch" | "none"
    rel_cwd: str
    commit: str | None = None
    git_repository: str | None = None
    patch_bytes: int = 0
    notes: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "commit": self.commit,
            "git_repository": self.git_repository,
            "patch_applied": self.patch_bytes > 0,
            "patch_bytes": self.patch_bytes,
            "cwd": self.rel_cwd,
        }


@dataclass(frozen=True, slots=True)
class CodeSource:
    """Where the run's code state will come from (found before anything is written)."""

    source: str  # "git" | "patch" | "none"
    commit: str | None = None
    toplevel: Path | None = None
    rel_cwd: str | None = None


def find_code(run: Run, patch: bytes) -> CodeSource:
    """Find the run's code state: a local git repository holding its commit. Raises a
    clear error when the commit (or the stored diff) is nowhere to be found."""
    code = run.code or {}
    if not code:
        return CodeSource("none", rel_cwd=".")
    if code.get("patch") and not patch:
        raise CodeRestoreError(
            f"the run names {PATCH_FILE} but its tree does not hold it; the uncommitted "
            "changes cannot be restored"
        )
    commit = str(code["commit"]) if code.get("commit") else None
    found = locate_git(run, commit)
    if commit is None:  # a repository without commits: the patch holds the staged files
        return CodeSource("patch", None, *(found or (None, None)))
    if found is None and shutil.which("git") is None:
        raise CodeUnavailableError(
            f"run {run.name}#{run.number} ran git commit {commit[:12]}; restoring it needs "
            "git, which is not installed (not on the PATH)",
            commit=commit,
        )
    if found is None:
        raise CodeUnavailableError(
            f"run {run.name}#{run.number} ran git commit {commit[:12]} (in {run.cwd}), which "
            "is in no git repository found here: run `reprocas replay` from inside a clone "
            "that has it (git fetch), or where the run was recorded",
            commit=commit,
        )
    return CodeSource("git", commit, *found)


def restore_code(run: Run, found: CodeSource, patch: bytes, workdir: Path, say: Say) -> CodeRestore:
    """Put the run's code state into ``workdir``: its commit, then its stored diff."""
    code = run.code or {}
    if found.source == "none":
        say(
            "note: the run recorded no code state (it did not run in a git repository); "
            "the command runs in the working directory with its inputs only"
        )
        return CodeRestore("none", ".", notes=["no code state recorded"])
    notes: list[str] = []
    if found.commit is not None and found.toplevel is not None:
        _checkout_commit(found.toplevel, found.commit, workdir)
    if patch:
        _apply_patch(patch, workdir)
    if (code.get("diff") or {}).get("redacted"):
        notes.append("the stored diff had credentials in URLs replaced by ***")
    if code.get("untracked_count"):
        notes.append(
            f"{code['untracked_count']} untracked path(s) of the original working tree were "
            "not recorded and are not restored"
        )
    rel = found.rel_cwd or _hint(run, CODE_CWD_KEY)
    if rel is None:
        rel = _guess_rel(run.cwd, workdir)
        notes.append(f"the recorded directory {run.cwd} is not in that repository; using {rel}")
    what = f"git commit {found.commit[:12]} from {found.toplevel}" if found.commit else "no commit"
    say(f"code: {what}" + (f" + the stored uncommitted diff ({len(patch)} bytes)" if patch else ""))
    for n in notes:
        say(f"note: {n}")
    return CodeRestore(
        found.source,
        rel,
        found.commit,
        str(found.toplevel) if found.toplevel else None,
        len(patch),
        notes,
    )


# -- reading what the run stored --------------------------------------------------------------


def read_run_file(repo: Repository, run: Run, path: str) -> bytes | None:
    """A file of the run's own tree (``code/diff.patch``, ``metrics.json``), or None."""
    if run.root is None:
        return None
    label = f"{run.name}#{run.number}:{path}"
    with repo.index.read() as txn:
        entry = tree_files(repo, txn, run.root.raw).get(path)
        if entry is None or entry[0] != "file":
            return None
        manifest = repo.load_manifest(txn, ObjectId(entry[1]))
        plan = checkout_mod.read_plan(repo, txn, manifest, label)
    with tempfile.TemporaryFile() as f:
        checkout_mod.write_file_to_fd(repo, plan, f.fileno(), label)
        f.seek(0)
        return f.read()


# -- the environment ---------------------------------------------------------------------------


@dataclass
class EnvCheck:
    """The replay's environment snapshot and its drift from the recorded one."""

    snapshot: ObjectId | None = None
    ref: str | None = None
    drift: dict[str, Any] | None = None


def check_environment(
    repo: Repository, run: Run, cwd: Path, patch: bytes, handle: RunHandle, say: Say
) -> EnvCheck:
    """Snapshot the environment the replay runs in (as the original did: light, or full
    when the original was full; none when it took none) and report the drift from the
    recorded snapshot. The snapshot carries the recorded code state (the code the replay
    runs is exactly that), so an unchanged environment is the original's snapshot."""
    if run.environment is None:
        say("note: the run recorded no environment (--env none): drift not checked")
        return EnvCheck()
    from reprocas.environment import diff as envdiff
    from reprocas.environment.capture import capture
    from reprocas.environment.store import env_name, load, save

    try:
        before = load(repo, run.environment.hex)
    except ReprocasError as exc:
        say(f"note: the recorded environment cannot be read ({exc}); drift not checked")
        before = None
    cap = capture(None, cwd, exclude=(repo.root.resolve(),))
    cap.facts["git"] = before.facts.get("git") if before is not None else None
    cap.patch = patch
    name = before.version.name if before is not None else env_name(None, Path(run.cwd))
    saved = save(repo, cap, name, full=bool(before is not None and before.full))
    if before is None:
        return EnvCheck(saved.id, saved.ref, None)
    d = envdiff.diff(before.facts, cap.facts)
    lines = [] if d.same else envdiff.render(d, before.ref, "replay")[2:]
    if lines:
        say(f"environment drift since {handle.ref} ({before.ref} -> {saved.ref}):")
        for ln in lines:
            say(f"  {ln}")
    else:
        say(f"environment unchanged since {handle.ref} ({saved.ref})")
    drift = {
        "against": before.ref,
        "environment": saved.ref,
        "same": d.same,
        "changes": d.to_json(),
        "lines": lines,
    }
    return EnvCheck(saved.id, saved.ref, drift)


# -- comparing ---------------------------------------------------------------------------------


def _output_files(
    repo: Repository, txn: lmdb.Transaction, outputs: list[dict[str, Any]] | tuple[Any, ...]
) -> dict[str, tuple[str, str, bytes]]:
    """``file path -> (output path, kind, target)`` for every file and link below the
    outputs (each output's files are those at or under its path in its version)."""
    out: dict[str, tuple[str, str, bytes]] = {}
    roots: dict[bytes, dict[str, tuple[str, bytes, int]]] = {}
    for o in outputs:
        sid = bytes(o["snapshot"])
        if sid not in roots:
            root = repo.load_snapshot(txn, ObjectId(sid)).root.raw
            roots[sid] = tree_files(repo, txn, root)
        p = str(o["path"])
        for k, (kind, target, _mode) in roots[sid].items():
            if k == p or k.startswith(p + "/"):
                out[k] = (p, kind, target)
    return out


def _key(repo: Repository, txn: lmdb.Transaction, kind: str, target: bytes) -> str:
    """What a file is compared by: the BLAKE3 of its bytes, a link's target."""
    if kind == "file":
        return repo.load_manifest(txn, ObjectId(target)).digest.hex()
    return "link:" + os.fsdecode(target)


def compare_outputs(
    repo: Repository,
    original: tuple[dict[str, Any], ...],
    replayed: list[dict[str, Any]],
    missing: list[str],
) -> list[dict[str, Any]]:
    """One entry per output file that differs (or per output path that was not made)."""
    diffs: list[dict[str, Any]] = []
    gone = set(missing)
    for p in sorted(gone):
        diffs.append({"kind": "output", "path": p, "output": p, "status": "missing"})
    with repo.index.read() as txn:
        a = _output_files(repo, txn, tuple(o for o in original if o["path"] not in gone))
        b = _output_files(repo, txn, replayed)
        for path in sorted(set(a) | set(b)):
            ea, eb = a.get(path), b.get(path)
            entry: dict[str, Any] = {"kind": "output", "path": path}
            if ea is None:
                assert eb is not None
                entry.update(output=eb[0], status="added", original=None)
                entry["replay"] = _key(repo, txn, eb[1], eb[2])
            elif eb is None:
                entry.update(output=ea[0], status="missing", replay=None)
                entry["original"] = _key(repo, txn, ea[1], ea[2])
            elif ea[1:] == eb[1:]:
                continue
            else:
                ka, kb = _key(repo, txn, ea[1], ea[2]), _key(repo, txn, eb[1], eb[2])
                if ka == kb:
                    continue
                entry.update(output=ea[0], status="changed", original=ka, replay=kb)
            diffs.append(entry)
    return diffs


def _rel(a: float, b: float) -> float:
    """The relative difference ``|a - b| / max(|a|, |b|)`` (0 when equal; inf when one
    is infinite or NaN and the other is not)."""
    if a == b or (math.isnan(a) and math.isnan(b)):
        return 0.0
    if not (math.isfinite(a) and math.isfinite(b)):
        return math.inf
    return abs(a - b) / max(abs(a), abs(b))


def compare_metrics(
    original: dict[str, Any], replayed: dict[str, Any], tolerance: float
) -> list[dict[str, Any]]:
    """One entry per metric whose value differs (each saying whether it is within the
    relative tolerance); a metric only one side has is beyond any tolerance."""
    ma, mb = metric_values(original), metric_values(replayed)
    diffs: list[dict[str, Any]] = []
    for k in sorted(set(ma) | set(mb)):
        a, b = ma.get(k), mb.get(k)
        entry: dict[str, Any] = {"kind": "metric", "metric": k, "original": a, "replay": b}
        if k not in mb:
            entry.update(status="missing", rel_diff=None, within_tolerance=False)
        elif k not in ma:
            entry.update(status="added", rel_diff=None, within_tolerance=False)
        else:
            la = a if isinstance(a, list) else [a]
            lb = b if isinstance(b, list) else [b]
            if isinstance(a, list) != isinstance(b, list) or len(la) != len(lb):
                rel = math.inf
            else:
                rel = max(
                    (_rel(float(x), float(y)) for x, y in zip(la, lb, strict=True)), default=0
                )
            exact = isinstance(a, list) == isinstance(b, list) and la == lb
            if exact or rel == 0.0:
                continue
            entry.update(
                status="changed",
                rel_diff=rel if math.isfinite(rel) else None,
                within_tolerance=rel <= tolerance,
            )
        diffs.append(entry)
    return diffs


def verdict_of(differences: list[dict[str, Any]], has_metrics: bool) -> str:
    """The verdict of a list of differences (see the module docstring)."""
    if not differences:
        return IDENTICAL
    for d in differences:
        if d["kind"] == "exit_status":
            return DIVERGED
        if d["kind"] == "metric" and not d["within_tolerance"]:
            return DIVERGED
        if d["kind"] == "output" and d["status"] != "changed":
            return DIVERGED
    if any(d["kind"] == "output" for d in differences) and not has_metrics:
        return DIVERGED  # changed bytes, and no metric to say they still agree
    return WITHIN_TOLERANCE


# -- the whole replay --------------------------------------------------------------------------


@dataclass
class ReplayResult:
    """A replay, recorded, with its verdict."""

    original: RunHandle
    original_run: Run
    handle: RunHandle
    run: Run
    verdict: str
    differences: list[dict[str, Any]]
    tolerance: float
    workdir: Path
    cwd: Path
    code: CodeRestore
    environment_ref: str | None
    drift: dict[str, Any] | None
    metrics_compared: bool
    notes: list[str] = field(default_factory=list)

    @property
    def exit_code(self) -> int:
        """What ``reprocas replay`` exits with: 0, or :data:`DIVERGED_EXIT`."""
        return DIVERGED_EXIT if self.verdict == DIVERGED else 0

    def to_json(self) -> dict[str, Any]:
        return {
            "verdict": self.verdict,
            "differences": self.differences,
            "tolerance": self.tolerance,
            "id": self.handle.id.hex,
            "ref": self.handle.ref,
            "original": {
                "id": self.original.id.hex,
                "ref": self.original.ref,
                "exit_code": self.original_run.exit_code,
            },
            "workdir": str(self.workdir),
            "cwd": str(self.cwd),
            "exit_code": self.run.exit_code,
            "code": self.code.to_json(),
            "drift": self.drift,
            "metrics_compared": self.metrics_compared,
            "notes": self.notes,
            "run": run_json(self.handle, self.run, self.environment_ref),
        }


def _metrics_path(run: Run, workdir: Path, cwd: Path, notes: list[str]) -> Path | None:
    """Where the replayed command writes its metrics: the recorded ``--metrics`` path;
    for a run recorded before that was kept, ``metrics.json`` when the command made one."""
    given = run.extra.get(METRICS_PATH_KEY)
    if isinstance(given, str) and given:
        p = Path(given)
        if p.is_absolute():
            try:
                p = p.relative_to(run.cwd)
            except ValueError:
                p = Path("/")  # not under the recorded directory: refused below
        full = Path(os.path.normpath(cwd / p))
        if full != workdir and workdir not in full.parents:
            notes.append(
                f"the metrics file {given} is outside the working directory: metrics not compared"
            )
            return None
        return full
    if run.metrics:
        if (cwd / METRICS_FILE).is_file():
            notes.append(f"the metrics file was not recorded; read {METRICS_FILE}")
            return cwd / METRICS_FILE
        notes.append(
            "the run did not record where its metrics came from (the Python API?): "
            "metrics not compared"
        )
    return None


def replay(
    repo: Repository,
    ref: str,
    *,
    workdir: Path | None = None,
    tolerance: float = DEFAULT_TOLERANCE,
    say: Say = _quiet,
    stdout_to: IO[bytes] | None = None,
    stderr_to: IO[bytes] | None = None,
) -> ReplayResult:
    """Replay run ``ref`` (see the module docstring) and record the replay."""
    if not (isinstance(tolerance, int | float) and math.isfinite(tolerance) and tolerance >= 0):
        raise InvalidParameterError(
            f"--tolerance must be a finite number >= 0 (a relative tolerance), not {tolerance}"
        )
    with repo.index.read() as txn:
        original = resolve_run(repo, txn, ref)
        run = load_run(repo, txn, original.id)
    inputs = []
    for i in run.inputs:
        if i.get("path") is None:  # read straight from the store (Python API): no checkout
            continue
        inputs.append({**i, "path": _safe_rel(str(i["path"]), "input path"), "default_path": True})
    outputs = [_safe_rel(str(o["path"]), "output path") for o in run.outputs]
    patch = b""
    if (run.code or {}).get("patch"):
        patch = read_run_file(repo, run, PATCH_FILE) or b""
    found = find_code(run, patch)
    wd, created = prepare_workdir(workdir)
    say(f"replaying run {original.ref} ({original.id.short}) in {wd}")
    try:
        code = restore_code(run, found, patch, wd, say)
        cwd = (wd / code.rel_cwd).resolve()
        if wd != cwd and wd not in cwd.parents:
            raise CodeRestoreError(f"the recorded directory {code.rel_cwd} is outside {wd}")
        cwd.mkdir(parents=True, exist_ok=True)
        checkout_inputs(repo, inputs, cwd, say)
        env = check_environment(repo, run, cwd, patch, original, say)
    except BaseException:
        _clear(wd, created)
        raise
    notes = list(code.notes)
    say(f"running in {cwd}: {' '.join(run.command)}")
    outcome = execute(list(run.command), cwd, stdout_to=stdout_to, stderr_to=stderr_to)
    draft = Draft(
        name=run.name,
        command=list(run.command),
        cwd=str(cwd),
        params=dict(run.params),
        inputs=[dict(i) for i in run.inputs],
        environment=env.snapshot,
        code=dict(run.code) if run.code is not None else None,
        start_ns=outcome.start_ns,
        end_ns=outcome.end_ns,
        exit_code=outcome.exit_code,
    )
    draft.files[STDOUT_FILE] = outcome.stdout
    draft.files[STDERR_FILE] = outcome.stderr
    if patch:
        draft.files[PATCH_FILE] = patch
    if outcome.error:
        draft.errors.append(outcome.error)
    new_outputs, missing = commit_outputs(repo, run.name, outputs, cwd)
    draft.outputs = new_outputs
    draft.errors += [f"output {m} was never created" for m in missing]

    differences: list[dict[str, Any]] = []
    if outcome.exit_code != run.exit_code:
        differences.append(
            {"kind": "exit_status", "original": run.exit_code, "replay": outcome.exit_code}
        )
    differences += compare_outputs(repo, run.outputs, new_outputs, missing)
    mpath = _metrics_path(run, wd, cwd, notes)
    metrics_compared = mpath is not None
    if mpath is not None:
        mrel = Path(os.path.relpath(mpath, cwd)).as_posix()
        draft.extra[METRICS_PATH_KEY] = mrel
        try:
            draft.metrics, raw = read_metrics(mpath)
            draft.files[METRICS_FILE] = raw
        except FileNotFoundError:
            draft.errors.append(f"metrics file {mrel} was never created")
        except OSError as exc:
            draft.errors.append(f"metrics file {mrel} cannot be read: {exc.strerror or exc}")
        except MetricsError as exc:
            draft.errors.append(str(exc))
        differences += compare_metrics(run.metrics, draft.metrics, tolerance)
    verdict = verdict_of(differences, bool(run.metrics) and metrics_compared)
    if code.git_repository:
        draft.extra[CODE_REPOSITORY_KEY] = code.git_repository
    if code.source != "none":
        draft.extra[CODE_CWD_KEY] = code.rel_cwd
    draft.extra.update(
        replay_of=original.id.raw,
        verdict=verdict,
        tolerance=float(tolerance),
        differences=differences[:MAX_STORED_DIFFERENCES],
        differences_count=len(differences),
    )
    [(handle, stored)] = store_runs(repo, [draft])
    for n in notes[len(code.notes) :]:
        say(f"note: {n}")
    return ReplayResult(
        original=original,
        original_run=run,
        handle=handle,
        run=stored,
        verdict=verdict,
        differences=differences,
        tolerance=float(tolerance),
        workdir=wd,
        cwd=cwd,
        code=code,
        environment_ref=env.ref,
        drift=env.drift,
        metrics_compared=metrics_compared,
        notes=notes,
    )


def describe(d: dict[str, Any], tolerance: float) -> str:
    """One difference as a line for people."""
    if d["kind"] == "exit_status":
        return f"exit status: {d['original']} -> {d['replay']}"
    if d["kind"] == "metric":
        if d["status"] != "changed":
            return f"metric {d['metric']}: {d['status']} ({d['original']} -> {d['replay']})"
        rel = d["rel_diff"]
        how = "within" if d["within_tolerance"] else "beyond"
        return (
            f"metric {d['metric']}: {d['original']} -> {d['replay']} "
            f"(relative difference {'inf' if rel is None else f'{rel:.3g}'}, "
            f"{how} tolerance {tolerance:g})"
        )
    return f"output {d['path']}: {d['status']}"
