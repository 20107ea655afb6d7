"""Record a run from Python: ``with reprocas.run(name=..., params={...}) as run:``.

The block is the run: inputs asked for inside it (:meth:`RunContext.input`, and any
read through ``reprocas.Repo`` of the same repository in the block or in a process it
starts, :mod:`reprocas.provenance.run_reads`) are recorded by their exact snapshot
ids, outputs given to :meth:`RunContext.output` are committed as a version of
``runs/NAME`` when the block ends, and a block that raises is recorded as failed (the
exception still propagates).
"""

from __future__ import annotations

import os
import sys
import time
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from reprocas.provenance.names import RunHandle, check_run_name
from reprocas.provenance.run import default_name
from reprocas.provenance.run_code import capture_code, code_exclusions
from reprocas.provenance.run_exec import capture_environment
from reprocas.provenance.run_inputs import checkout_inputs, resolve_inputs
from reprocas.provenance.run_params import typed_metrics
from reprocas.provenance.run_reads import Reads
from reprocas.provenance.run_store import Draft, commit_outputs, store_runs
from reprocas.store.repository import Repository


def _warn(text: str) -> None:
    warnings.warn(f"reprocas: {text}", RuntimeWarning, stacklevel=4)


class RunContext:
    """The run being recorded inside a ``with reprocas.run(...)`` block."""

    def __init__(
        self,
        repo: Any,
        name: str,
        params: dict[str, Any],
        env: str,
        cwd: Path,
        allow_secrets: bool = False,
    ) -> None:
        self.repo = repo  # a reprocas.Repo
        self.store: Repository = repo.store
        self.name = check_run_name(name)
        self.cwd = cwd
        self.env = env
        self.allow_secrets = allow_secrets
        self.draft = Draft(
            name=self.name,
            command=[sys.executable, *sys.argv],
            cwd=str(cwd),
            params=dict(params),
            start_ns=time.time_ns(),
        )
        self._outputs: list[str] = []
        self.handle: RunHandle | None = None

    def input(self, ref: str, path: str | None = None, format: str | None = None) -> Any:
        """A ``pyarrow.dataset.Dataset`` of version ``ref`` (or of one path in it), read
        from the store; the run records the exact snapshot."""
        v = self.repo.resolve(ref)
        self.draft.inputs.append(
            {
                "ref": ref,
                "dataset": v.name,
                "number": v.number,
                "snapshot": v.id.raw,
                "content": v.snapshot.root.raw,  # the content id (format 3)
                "path": None,
            }
        )
        return self.repo.dataset(v.id.hex, path, format)

    def input_path(self, ref: str, path: str | None = None) -> Path:
        """Check version ``ref`` out exactly at ``path`` (default ``inputs/<dataset>``)
        and return that directory."""
        with self.store.index.read() as txn:
            [rec] = resolve_inputs(self.store, txn, [(ref, path)])
        checkout_inputs(self.store, [rec], self.cwd, lambda _: None)
        self.draft.inputs.append(rec)
        return Path(self.cwd, str(rec["path"]))

    def log_params(self, params: dict[str, Any] | None = None, **kw: Any) -> None:
        """Add (or overwrite) parameters."""
        self.draft.params.update(params or {})
        self.draft.params.update(kw)

    def log_metrics(self, metrics: dict[str, Any] | None = None, **kw: Any) -> None:
        """Add metrics: numbers, or lists of numbers for series."""
        self.draft.metrics.update(typed_metrics({**(metrics or {}), **kw}, "log_metrics"))

    def output(self, path: str | os.PathLike[str]) -> None:
        """A file or directory to commit as an output when the block ends."""
        self._outputs.append(os.fspath(path))

    def _finish(self, exc: BaseException | None, reads: Reads | None = None) -> None:
        d = self.draft
        if reads is not None:  # what the block read through the API (run_reads)
            d.inputs, _ = reads.merge(d.inputs, _warn)
        d.end_ns = time.time_ns()
        if exc is not None:
            d.exit_code = 130 if isinstance(exc, KeyboardInterrupt) else 1
            d.errors.append(f"{type(exc).__name__}: {exc}")
        env = capture_environment(self.store, self.env, self.cwd, allow_secrets=self.allow_secrets)
        for w in env.warnings:
            print(f"reprocas: warning: {w}", file=sys.stderr, flush=True)
        d.environment, d.code = env.snapshot, env.code
        if env.patch:
            d.files["code/diff.patch"] = env.patch
        skip = code_exclusions(self.store.root, self.cwd, d.inputs, self._outputs, None)
        stored = capture_code(self.cwd, env.code, exclude=skip, allow_secrets=self.allow_secrets)
        d.code = stored.code
        d.files.update(stored.files)
        for w in stored.warnings:
            print(f"reprocas: {w}", file=sys.stderr, flush=True)
        outputs, missing = commit_outputs(self.store, self.name, self._outputs, self.cwd)
        d.outputs = outputs
        d.errors += [f"output {m} was never created" for m in missing]
        [(self.handle, _)] = store_runs(self.store, [d])


@contextmanager
def run(
    name: str | None = None,
    params: dict[str, Any] | None = None,
    *,
    repo: Any = None,
    env: str = "light",
    cwd: str | os.PathLike[str] | None = None,
    allow_secrets: bool = False,
) -> Iterator[RunContext]:
    """Record the block as a run (see the module docstring). ``repo`` is a
    ``reprocas.Repo`` or a path (default: the repository found from the current
    directory); ``env`` is ``light``, ``full`` or ``none``. Secrets in the uncommitted
    diff and the lock files are redacted, with a warning on stderr, unless
    ``allow_secrets``."""
    from reprocas.api import Repo

    owned = not isinstance(repo, Repo)
    r = Repo.open_repo(repo) if owned else repo
    try:
        ctx = RunContext(
            r,
            name or default_name(sys.argv[:1] or ["run"]),
            params or {},
            env,
            Path(cwd or Path.cwd()).resolve(),
            allow_secrets,
        )
        with Reads(r.store) as reads:
            try:
                with reads.in_process():
                    yield ctx
            except BaseException as exc:
                ctx._finish(exc, reads)
                raise
            ctx._finish(None, reads)
    finally:
        if owned:
            r.close()
