"""Running a recorded command: its environment and code snapshot, and the process
itself with its output streamed and kept."""

from __future__ import annotations

import contextlib
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from reprocas.errors import InvalidParameterError, ReprocasError
from reprocas.model.ids import ObjectId
from reprocas.provenance.names import (
    latest_run,
    load_run,
)
from reprocas.provenance.run_common import ENV_MODES, PATCH_FILE
from reprocas.store.repository import Repository


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
    repo: Repository,
    mode: str,
    cwd: Path,
    *,
    allow_secrets: bool = False,
    name: str | None = None,
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
    r = save(repo, cap, env_name(name, cap.project), full=mode == "full")
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
