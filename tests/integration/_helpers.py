"""Helpers shared by the integration tests: running the CLI as a real process,
checking one-line errors, checking out and comparing versions."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import reprocas
from tests.integration.trees import Entry, describe, diff

REPROCAS = Path(sys.executable).with_name("reprocas")
"""The installed console script (there is no ``python -m reprocas`` yet)."""

PROJECT_ROOT = Path(__file__).resolve().parents[2]


@dataclass(frozen=True, slots=True)
class CliResult:
    args: tuple[str, ...]
    returncode: int
    stdout: bytes
    stderr: bytes

    @property
    def out(self) -> str:
        return self.stdout.decode("utf-8", "replace")

    @property
    def err(self) -> str:
        return self.stderr.decode("utf-8", "replace")

    def json(self) -> Any:
        assert self.returncode == 0, self.describe()
        return json.loads(self.stdout)

    def describe(self) -> str:
        return (
            f"reprocas {' '.join(self.args)} -> exit {self.returncode}\n"
            f"--- stdout ---\n{self.out[-3000:]}\n--- stderr ---\n{self.err[-3000:]}"
        )


def clean_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment for a CLI process: no REPROCAS_REPO unless given."""
    env = {k: v for k, v in os.environ.items() if k != "REPROCAS_REPO"}
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    if extra:
        env.update(extra)
    return env


def cli_argv(args: Sequence[str | os.PathLike[str]], repo: Path | None = None) -> list[str]:
    argv = [str(REPROCAS)]
    if repo is not None:
        argv += ["--repo", str(repo)]
    return argv + [os.fspath(a) for a in args]


def run_cli(
    *args: str | os.PathLike[str],
    repo: Path | None = None,
    cwd: Path | None = None,
    env: Mapping[str, str] | None = None,
    timeout: float = 120,
) -> CliResult:
    """Run ``reprocas [--repo REPO] ARGS...`` as a separate process."""
    argv = cli_argv(args, repo)
    proc = subprocess.run(
        argv,
        cwd=cwd,
        env=clean_env(env),
        capture_output=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
        check=False,
    )
    return CliResult(tuple(argv[1:]), proc.returncode, proc.stdout, proc.stderr)


def assert_ok(res: CliResult) -> CliResult:
    assert res.returncode == 0, res.describe()
    assert "Traceback" not in res.err, res.describe()
    return res


def assert_one_line_error(res: CliResult, code: int, *needles: str) -> str:
    """The command failed with ``code`` and exactly one 'reprocas: error: ...' line on
    stderr (no traceback) that contains every needle; returns that line."""
    assert res.returncode == code, res.describe()
    assert "Traceback" not in res.err, res.describe()
    lines = [ln for ln in res.err.splitlines() if ln.strip()]
    assert len(lines) == 1, f"expected one line on stderr\n{res.describe()}"
    line = lines[0]
    assert line.startswith("reprocas: error: "), res.describe()
    for n in needles:
        assert n in line, f"{n!r} not in the error line\n{res.describe()}"
    return line


def verify_ok(repo: Path | reprocas.Repo, *, read_data: bool = True) -> dict[str, Any]:
    """Verify (with ``read_data``) through the API and assert it is ok.

    Takes an open Repo, or a path to open (one process may not open one repository
    twice: LMDB refuses a second environment on the same files).
    """
    if isinstance(repo, reprocas.Repo):
        report = repo.verify(read_data=read_data)
    else:
        with reprocas.Repo.open(repo) as opened:
            report = opened.verify(read_data=read_data)
    data = report.to_json()
    assert report.ok, f"verify found problems: {data['problems']}"
    return data


def assert_checkout_equals(
    repo: reprocas.Repo, ref: str, expected: dict[str, Entry], dest: Path
) -> None:
    """Check ``ref`` out to the new directory ``dest`` and compare it with ``expected``."""
    repo.checkout(ref, dest)
    got = describe(dest)
    problems = diff(expected, got)
    assert not problems, f"checkout of {ref} differs:\n" + "\n".join(problems[:40])


def pack_files(repo_path: Path) -> set[Path]:
    return set((repo_path / "packs").glob("*/*.pack"))


def tmp_files(repo_path: Path) -> list[Path]:
    d = repo_path / "tmp"
    return sorted(d.iterdir()) if d.exists() else []


def log_json(repo_path: Path) -> list[dict[str, Any]]:
    with reprocas.Repo.open(repo_path) as repo:
        return [e.to_json() for e in repo.log()]
