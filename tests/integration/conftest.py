"""Fixtures of the integration tests: fresh repositories, seeded trees, the CLI as a
real process, and a small tmpfs for the disk-full tests."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

import reprocas
from tests.conftest import skip_outside_ci
from tests.integration._helpers import CliResult, run_cli
from tests.integration.trees import Entry, generate_tree

Cli = Callable[..., CliResult]
TreeFactory = Callable[..., tuple[Path, dict[str, Entry]]]


@pytest.fixture(autouse=True)
def _no_ambient_repo(monkeypatch: pytest.MonkeyPatch) -> None:
    """No test may pick up a repository from the environment by accident."""
    monkeypatch.delenv("REPROCAS_REPO", raising=False)


@pytest.fixture
def repo_path(tmp_path: Path) -> Path:
    return tmp_path / "repo"


@pytest.fixture
def repo(repo_path: Path) -> Iterator[reprocas.Repo]:
    """A fresh, empty repository in ``tmp_path/repo`` (default settings)."""
    r = reprocas.Repo.init(repo_path)
    try:
        yield r
    finally:
        r.close()


@pytest.fixture
def cli(repo_path: Path) -> Cli:
    """``cli(*args, **kw)``: run ``reprocas --repo <repo_path> ARGS`` as a process.

    Pass ``repo=None`` explicitly to run without --repo.
    """

    def run(*args: str | os.PathLike[str], **kw: object) -> CliResult:
        kw.setdefault("repo", repo_path)
        return run_cli(*args, **kw)  # type: ignore[arg-type]

    return run


@pytest.fixture
def make_tree(tmp_path: Path) -> TreeFactory:
    """``make_tree(seed, name=..., scale=1)``: a generated tree in tmp_path and its
    description."""

    def make(seed: int, name: str | None = None, scale: int = 1) -> tuple[Path, dict[str, Entry]]:
        root = tmp_path / (name or f"tree-{seed}")
        return root, generate_tree(root, seed, scale=scale)

    return make


@pytest.fixture
def tmpfs(tmp_path: Path) -> Iterator[Path]:
    """An 8 MiB tmpfs mounted at tmp_path/mnt (needs root and mount permission)."""
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    if os.geteuid() != 0:
        skip_outside_ci("mounting a tmpfs needs root (the disk-full tests run as root in CI)")
    proc = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=8m", "tmpfs", str(mnt)],
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode != 0:
        skip_outside_ci(f"this environment does not permit mounting a tmpfs: {proc.stderr}")
    try:
        yield mnt
    finally:
        if subprocess.run(["umount", str(mnt)], capture_output=True, check=False).returncode:
            subprocess.run(["umount", "-l", str(mnt)], capture_output=True, check=False)


@pytest.fixture(params=["file", "s3"])
def remote_url(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[str, list[str]]:
    """A fresh remote: ``(URL, [--option k=v, ...])`` — a directory, or an empty bucket
    on the session's moto S3 server on loopback (tests/s3server.py)."""
    if request.param == "file":
        root = tmp_path / "remote"
        root.mkdir()
        return root.as_uri(), []
    server = request.getfixturevalue("s3_server")
    extra: list[str] = []
    for key, value in sorted(server.options.items()):
        extra += ["--option", f"{key}={value}"]
    return server.url(f"t/{tmp_path.name}"), extra
