"""Record a run: resolve and check out its inputs, snapshot its environment and code,
run the command (streaming and storing its output), commit its outputs, read its
metrics, and store the run object with its refs and provenance edges.

The write order is the store's: the outputs' version and the run's own files go into
packs first; then one LMDB write transaction checks the run number is still free,
appends the ref log, moves ``run:<name>:<N>``, and writes the run's summary and its
edges. A run whose command failed is recorded all the same (``status: "failed"``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from reprocas.errors import InvalidParameterError, ReprocasError
from reprocas.model.objects import Run
from reprocas.provenance.errors import MetricsError, OutputMissingError
from reprocas.provenance.names import (
    RunHandle,
    check_run_name,
)
from reprocas.provenance.run_argv import child_env, command_line, conflict_warning
from reprocas.provenance.run_code import CodeLimits, capture_code, code_exclusions
from reprocas.provenance.run_common import (
    METRICS_FILE,
    METRICS_PATH_KEY,
    PATCH_FILE,
    STDERR_FILE,
    STDOUT_FILE,
    Say,
    quiet,
)
from reprocas.provenance.run_exec import capture_environment, drift, execute
from reprocas.provenance.run_inputs import checkout_inputs, resolve_inputs, safe_rel
from reprocas.provenance.run_params import read_metrics
from reprocas.provenance.run_reads import Reads
from reprocas.provenance.run_store import Draft, commit_outputs, store_runs
from reprocas.store.repository import Repository


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
    env_name: str | None = None  # env/NAME of the snapshot (None: the working directory's)
    cwd: Path = field(default_factory=Path.cwd)
    extra: dict[str, Any] = field(default_factory=dict)
    record_env: dict[str, str] | None = None  # the command's environment (None: ours)
    code_limits: CodeLimits = field(default_factory=CodeLimits)
    allow_secrets: bool = False  # store secrets in the diff and lock files verbatim


@dataclass
class Recorded:
    """A stored run and what recording it noticed."""

    handle: RunHandle
    run: Run
    environment_ref: str | None
    environment_created: bool
    error: ReprocasError | None = None  # raised by the caller after reporting the run


def record(
    repo: Repository,
    spec: Spec,
    *,
    say: Say = quiet,
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
    cmd = command_line(spec.command, spec.params)  # an unknown {name} fails before anything
    from reprocas.notes.pins import unpinned_inputs, warning_text

    with repo.index.read() as txn:
        inputs = resolve_inputs(repo, txn, spec.inputs)
        unpinned = unpinned_inputs(repo, txn, inputs)
    for u in unpinned:
        say(f"warning: {warning_text(u)}")
    for o in spec.outputs:
        safe_rel(o, "--output")
    checkout_inputs(repo, inputs, cwd, say)
    env = capture_environment(
        repo, spec.env, cwd, allow_secrets=spec.allow_secrets, name=spec.env_name
    )
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
    skip = code_exclusions(repo.root, cwd, inputs, spec.outputs, spec.metrics)
    code = capture_code(
        cwd, env.code, exclude=skip, limits=spec.code_limits, allow_secrets=spec.allow_secrets
    )
    for w in code.warnings:
        say(w)
    for c in cmd.conflicts:
        say(conflict_warning(c))
    # Reads through the API are inputs too (run_reads); params reach the command (run_argv).
    with (
        Reads(repo) as reads,
        child_env(spec.params, reads.child_env(spec.record_env)) as (child, notes),
    ):
        for n in notes:
            say(f"note: {n}")
        outcome = execute(cmd.argv, cwd, stdout_to=stdout_to, stderr_to=stderr_to, env=child)
        inputs, _ = reads.merge(inputs, say)
    draft = Draft(
        name=name,
        command=list(spec.command),
        cwd=str(cwd),
        params=spec.params,
        inputs=inputs,
        environment=env.snapshot,
        code=code.code,
        start_ns=outcome.start_ns,
        end_ns=outcome.end_ns,
        exit_code=outcome.exit_code,
        extra=dict(spec.extra),
    )
    draft.extra.update(cmd.extra())
    if unpinned:  # alignment drift, kept with the run (docs/RUNS.md, "Pins")
        draft.extra["unpinned_inputs"] = unpinned
    if spec.metrics:  # where the command writes its metrics, so that a replay reads them back
        draft.extra.setdefault(METRICS_PATH_KEY, spec.metrics)
    draft.files[STDOUT_FILE] = outcome.stdout
    draft.files[STDERR_FILE] = outcome.stderr
    if env.patch:
        draft.files[PATCH_FILE] = env.patch
    draft.files.update(code.files)
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
