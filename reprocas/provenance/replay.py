"""Replay a recorded run to a verdict.

In a fresh working directory: restore the run's code state (:mod:`replay_code`: its
git commit, the stored uncommitted diff, what it stored of the untracked files), check
its exact inputs out at their recorded paths, take an environment snapshot and report
the drift from the recorded one, run the recorded command in the recorded directory
(relative to the git toplevel, mapped into the working directory), then compare every
output file and every metric and give the verdict (:mod:`verdict`: ``identical``,
``within-tolerance`` only when an explicit rule covers every difference, else
``diverged``). The replay is itself recorded as a run of the same name, linked to the
original (``extra["replay_of"]``, a *replay-of* edge), with its verdict, its
differences and the rules it applied.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from reprocas.errors import DestinationError, InvalidParameterError, ReprocasError
from reprocas.model.ids import ObjectId
from reprocas.model.objects import Run
from reprocas.provenance import run_reads
from reprocas.provenance.errors import MetricsError
from reprocas.provenance.names import RunHandle, load_run, resolve_run
from reprocas.provenance.replay_code import (
    CODE_CWD_KEY,
    CODE_REPOSITORY_KEY,
    CodeRestore,
    CodeRestoreError,
    CodeUnavailableError,
    find_code,
    read_run_file,
    restore_code,
)
from reprocas.provenance.run_argv import child_env, recorded_command_line
from reprocas.provenance.run_code import read_files
from reprocas.provenance.run_common import (
    METRICS_FILE,
    METRICS_PATH_KEY,
    PATCH_FILE,
    STDERR_FILE,
    STDOUT_FILE,
    Say,
    quiet,
)
from reprocas.provenance.run_exec import execute
from reprocas.provenance.run_inputs import checkout_inputs, safe_rel
from reprocas.provenance.run_params import read_metrics
from reprocas.provenance.run_reads import Reads
from reprocas.provenance.run_store import Draft, commit_outputs, run_json, store_runs
from reprocas.provenance.verdict import (
    ALLOW_DIFFER_KEY,
    DEFAULT_TOLERANCE,
    DIVERGED,
    DIVERGED_EXIT,
    IDENTICAL,
    VERDICTS,
    WITHIN_TOLERANCE,
    Rules,
    compare_metrics,
    compare_outputs,
    describe,
    exit_status_difference,
    make_rules,
    not_compared,
    verdict_of,
)
from reprocas.store.repository import Repository

__all__ = [
    "DEFAULT_TOLERANCE",
    "DIVERGED",
    "DIVERGED_EXIT",
    "IDENTICAL",
    "VERDICTS",
    "WITHIN_TOLERANCE",
    "CodeRestoreError",
    "CodeUnavailableError",
    "ReplayResult",
    "describe",
    "prepare_workdir",
    "replay",
]

MAX_STORED_DIFFERENCES = 1000
"""At most this many differences are kept in the replay run's record (all are reported)."""


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
    allow = bool(before is not None and before.facts.get("secrets_allowed"))
    cap = capture(None, cwd, exclude=(repo.root.resolve(),), allow_secrets=allow)
    cap.facts["git"] = before.facts.get("git") if before is not None else None
    cap.patch = patch
    cap.git_findings = []  # the stored patch is the recorded one, scanned when recorded
    for w in cap.warnings():
        say(f"warning: {w}")
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
    rules: Rules
    workdir: Path
    cwd: Path
    code: CodeRestore
    environment_ref: str | None
    drift: dict[str, Any] | None
    metrics_compared: bool
    notes: list[str] = field(default_factory=list)

    @property
    def tolerance(self) -> float:
        """The relative tolerance the metrics were compared with."""
        return self.rules.tolerance

    @property
    def exit_code(self) -> int:
        """What ``reprocas replay`` exits with: 0, or :data:`DIVERGED_EXIT`."""
        return DIVERGED_EXIT if self.verdict == DIVERGED else 0

    def to_json(self) -> dict[str, Any]:
        return {
            "verdict": self.verdict,
            "differences": self.differences,
            "tolerance": self.tolerance,
            "rules": self.rules.to_json(),
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


def _original_name_note(repo: Repository, ref: str, original: RunHandle) -> str | None:
    """When a bare NAME skipped later replays, say so (and how to replay one)."""
    from reprocas.provenance.names import latest_run

    if "#" in ref:
        return None
    with repo.index.read() as txn:
        last = latest_run(repo, txn, original.name)
    if last is None or last.number == original.number or ref.strip() != original.name:
        return None
    return (
        f"{original.name} names its latest original run, {original.ref} (the later runs "
        f"up to {last.ref} are replays); give {last.ref} to replay a replay"
    )


def replay(
    repo: Repository,
    ref: str,
    *,
    workdir: Path | None = None,
    tolerance: float = DEFAULT_TOLERANCE,
    allow_differ: list[str] | tuple[str, ...] = (),
    compare_table: list[str] | tuple[str, ...] = (),
    table_tolerance: float | None = None,
    say: Say = quiet,
    stdout_to: IO[bytes] | None = None,
    stderr_to: IO[bytes] | None = None,
) -> ReplayResult:
    """Replay run ``ref`` (see the module docstring) and record the replay. A bare
    ``NAME`` is its latest original run, never a replay (``NAME#N`` names any run)."""
    make_rules(tolerance, allow_differ, None, compare_table, table_tolerance)  # fail early
    with repo.index.read() as txn:
        original = resolve_run(repo, txn, ref, original=True)
        run = load_run(repo, txn, original.id)
    if run.extra.get("provenance") == "declared":
        raise InvalidParameterError(
            f"run {original.ref} was declared with `reprocas adopt` ({run.extra.get('how')}), "
            "not observed: there is no command to replay; make it again with `reprocas run`"
        )
    recorded = run.extra.get(ALLOW_DIFFER_KEY)
    rules = make_rules(tolerance, allow_differ, recorded, compare_table, table_tolerance)
    inputs = []
    for i in run.inputs:
        if i.get("path") is None:  # read straight from the store (Python API): no checkout
            continue
        inputs.append({**i, "path": safe_rel(str(i["path"]), "input path"), "default_path": True})
    outputs = [safe_rel(str(o["path"]), "output path") for o in run.outputs]
    patch = b""
    if (run.code or {}).get("patch"):
        patch = read_run_file(repo, run, PATCH_FILE) or b""
    found = find_code(run, patch, repo, original.id.raw)
    cmd = recorded_command_line(list(run.command), run.params, run.extra)
    wd, created = prepare_workdir(workdir)
    say(f"replaying run {original.ref} ({original.id.short}) in {wd}")
    which = _original_name_note(repo, ref, original)
    if which:
        say(f"note: {which}")
    try:
        code = restore_code(repo, run, found, patch, wd, say)
        cwd = (wd / code.rel_cwd).resolve()
        if wd != cwd and wd not in cwd.parents:
            raise CodeRestoreError(f"the recorded directory {code.rel_cwd} is outside {wd}")
        cwd.mkdir(parents=True, exist_ok=True)
        checkout_inputs(repo, inputs, cwd, say)
        env = check_environment(repo, run, cwd, patch, original, say)
    except BaseException:
        _clear(wd, created)
        raise
    notes = list(code.notes) + ([which] if which else [])
    said = len(notes)
    say(f"running in {cwd}: {' '.join(cmd.argv)}")
    # API reads pinned to the original's and recorded (run_reads); params as recorded.
    with (
        Reads(repo) as reads,
        child_env(run.params, reads.child_env(None, pin=run_reads.pins_of(run.inputs))) as (
            child,
            _,
        ),
    ):
        outcome = execute(cmd.argv, cwd, stdout_to=stdout_to, stderr_to=stderr_to, env=child)
        replay_inputs, api_reads = reads.merge(run_reads.declared(run.inputs), say)
    notes += run_reads.replay_notes(repo, run.inputs, replay_inputs, api_reads)
    draft = Draft(
        name=run.name,
        command=list(run.command),
        cwd=str(cwd),
        params=dict(run.params),
        inputs=replay_inputs,
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
    draft.files.update(read_files(repo, run))  # a replay of the replay restores them too
    if outcome.error:
        draft.errors.append(outcome.error)
    new_outputs, missing = commit_outputs(repo, run.name, outputs, cwd)
    draft.outputs = new_outputs
    draft.errors += [f"output {m} was never created" for m in missing]

    differences: list[dict[str, Any]] = []
    if outcome.exit_code != run.exit_code:
        differences.append(exit_status_difference(run.exit_code, outcome.exit_code))
    differences += compare_outputs(repo, run.outputs, new_outputs, missing, rules)
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
        differences += compare_metrics(run.metrics, draft.metrics, rules)
    else:  # the original's metrics cannot be checked: they are not vouched for
        differences += not_compared(run.metrics, "the replay has no metrics file to read")
    verdict = verdict_of(differences)
    if code.git_repository:
        draft.extra[CODE_REPOSITORY_KEY] = code.git_repository
    if code.source != "none":
        draft.extra[CODE_CWD_KEY] = code.rel_cwd
    draft.extra.update(cmd.extra())
    if rules.recorded_allow_differ:  # the outputs' own rules hold for a replay of the replay
        draft.extra[ALLOW_DIFFER_KEY] = list(rules.recorded_allow_differ)
    draft.extra.update(
        replay_of=original.id.raw,
        verdict=verdict,
        tolerance=rules.tolerance,
        rules=rules.to_json(),
        differences=differences[:MAX_STORED_DIFFERENCES],
        differences_count=len(differences),
    )
    [(handle, stored)] = store_runs(repo, [draft])
    for n in notes[said:]:
        say(f"note: {n}")
    return ReplayResult(
        original=original,
        original_run=run,
        handle=handle,
        run=stored,
        verdict=verdict,
        differences=differences,
        rules=rules,
        workdir=wd,
        cwd=cwd,
        code=code,
        environment_ref=env.ref,
        drift=env.drift,
        metrics_compared=metrics_compared,
        notes=notes,
    )
