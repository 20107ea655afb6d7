"""Helpers of the environment-snapshot tests (no tests here): tiny wheels built by hand,
real venvs made with ``python -m venv`` and filled with the test runner's pip, and git
projects in every state the capture must handle.

Venvs are made with ``--without-pip`` and filled through ``pip --python VENV``: it
takes a fraction of a second per venv, needs no network, and leaves a venv holding
exactly the packages a test asked for.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import io
import os
import random
import subprocess
import sys
import zipfile
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path

import pytest

from tests.integration._helpers import CliResult, run_cli

GIT_ID = ["-c", "user.email=test@example.org", "-c", "user.name=Test"]

Cli = Callable[..., CliResult]


@contextlib.contextmanager
def _environ(extra: Mapping[str, str] | None) -> Iterator[None]:
    saved = dict(os.environ)
    os.environ.pop("REPROCAS_REPO", None)
    os.environ.update(extra or {})
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


def run_in_process(
    *args: str | os.PathLike[str],
    repo: Path | None,
    cwd: Path | None = None,
    env: Mapping[str, str] | None = None,
    timeout: float = 0,
) -> CliResult:
    """``reprocas [--repo REPO] ARGS`` through the CLI's own entry point (``run``), in
    this process: the same parsing, output and one-line errors as the installed command,
    without a process start-up per call. ``cat`` (which writes to a file descriptor) runs
    as a real process."""
    if args and args[0] == "cat":
        return run_cli(*args, repo=repo, cwd=cwd, env=env)
    from reprocas.cli.main import run

    argv = (["--repo", str(repo)] if repo is not None else []) + [os.fspath(a) for a in args]
    out, err = io.StringIO(), io.StringIO()
    with (
        _environ(env),
        contextlib.chdir(cwd or os.getcwd()),
        contextlib.redirect_stdout(out),
        contextlib.redirect_stderr(err),
    ):
        code = run(argv)
    return CliResult(tuple(argv), code, out.getvalue().encode(), err.getvalue().encode())


@pytest.fixture
def proc(repo_path: Path) -> Cli:
    """``proc(*args, **kw)``: ``reprocas --repo <repo_path> ARGS`` as a real process."""

    def run(*args: str | os.PathLike[str], **kw: object) -> CliResult:
        kw.setdefault("repo", repo_path)
        return run_cli(*args, **kw)  # type: ignore[arg-type]

    return run


@pytest.fixture
def envcli(repo_path: Path) -> Cli:
    """Like the ``cli`` fixture, but in-process (see :func:`run_in_process`)."""

    def run(*args: str | os.PathLike[str], **kw: object) -> CliResult:
        kw.setdefault("repo", repo_path)
        return run_in_process(*args, **kw)  # type: ignore[arg-type]

    return run


def make_wheel(out_dir: Path, name: str, version: str, files: dict[str, bytes]) -> Path:
    """A pure-Python wheel holding ``files`` (paths inside site-packages)."""
    dist = f"{name}-{version}.dist-info"
    entries = dict(files)
    entries[f"{dist}/METADATA"] = (
        f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\nSummary: test\n\n"
    ).encode()
    entries[f"{dist}/WHEEL"] = (
        b"Wheel-Version: 1.0\nGenerator: reprocas-tests\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
    )
    record = []
    for path, data in entries.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
        record.append(f"{path},sha256={digest},{len(data)}")
    record.append(f"{dist}/RECORD,,")
    entries[f"{dist}/RECORD"] = ("\n".join(record) + "\n").encode()
    out_dir.mkdir(parents=True, exist_ok=True)
    wheel = out_dir / f"{name}-{version}-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w", zipfile.ZIP_DEFLATED) as z:
        for path, data in entries.items():
            info = zipfile.ZipInfo(path, (2020, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            z.writestr(info, data)
    return wheel


def tiny_wheel(out_dir: Path, version: str) -> Path:
    """``tinypkg`` VERSION: a module that knows its version."""
    return make_wheel(
        out_dir, "tinypkg", version, {"tinypkg/__init__.py": f"VERSION = {version!r}\n".encode()}
    )


def big_wheel(out_dir: Path, size: int = 3 << 20) -> Path:
    """``bigpkg`` 1.0: ``size`` bytes of incompressible data (to measure dedup)."""
    blob = random.Random(7).randbytes(size)
    return make_wheel(
        out_dir, "bigpkg", "1.0", {"bigpkg/__init__.py": b"", "bigpkg/blob.bin": blob}
    )


def make_venv(path: Path, wheels: list[Path]) -> Path:
    """A venv at ``path`` holding exactly ``wheels``; returns its python."""
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(path)], check=True)
    python = path / "bin" / "python"
    if wheels:
        pip_install(python, wheels)
    return python


def pip_install(python: Path, wheels: list[Path]) -> None:
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "--python",
            str(python),
            "install",
            "-q",
            "--no-deps",
            "--no-index",
            "--disable-pip-version-check",
            *map(str, wheels),
        ],
        check=True,
        env={**os.environ, "PIP_NO_WARN_SCRIPT_LOCATION": "1"},
    )


def git(project: Path, *args: str) -> str:
    proc = subprocess.run(
        ["git", *GIT_ID, "-C", str(project), *args],
        capture_output=True,
        text=True,
        check=True,
    )
    return proc.stdout.strip()


def make_project(path: Path, *, requirements: str = "tinypkg==0.1\n") -> Path:
    """A git project with one commit holding requirements.txt and a module."""
    path.mkdir(parents=True)
    subprocess.run(["git", "init", "-q", "-b", "main", str(path)], check=True)
    (path / "requirements.txt").write_text(requirements)
    (path / "train.py").write_text("print('training')\n")
    git(path, "add", ".")
    git(path, "commit", "-q", "-m", "first")
    return path


@pytest.fixture(scope="session")
def wheels(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """tinypkg 0.1 and 0.2, otherpkg 1.0 and bigpkg 1.0 (3 MiB of random bytes)."""
    d = tmp_path_factory.mktemp("wheels")
    return {
        "tiny01": tiny_wheel(d, "0.1"),
        "tiny02": tiny_wheel(d, "0.2"),
        "other": make_wheel(d, "otherpkg", "1.0", {"otherpkg.py": b"NAME = 'other'\n"}),
        "big": big_wheel(d),
    }
