"""``reprocas env snapshot --full`` and ``env restore``: site-packages stored as content
and deduplicated across snapshots; a venv rebuilt from the store (offline, exact) or
with pip; afterwards ``env diff`` shows no package difference."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import skip_outside_ci
from tests.integration._helpers import assert_ok, assert_one_line_error, find_python
from tests.integration.test_env_support import (
    Cli,
    envcli,
    make_project,
    make_venv,
    pip_install,
    proc,
    wheels,
)

__all__ = ["envcli", "proc", "wheels"]  # fixtures, used by name


@pytest.fixture
def cli(envcli: Cli) -> Cli:
    """The CLI in-process (fast); the tests that take ``proc`` run real processes."""
    return envcli


@pytest.fixture(scope="module")
def venv(tmp_path_factory: pytest.TempPathFactory, wheels: dict[str, Path]) -> Path:
    """tinypkg 0.1, otherpkg 1.0 and bigpkg (3 MiB of random bytes)."""
    d = tmp_path_factory.mktemp("restore-venv")
    return make_venv(d / "v", [wheels["tiny01"], wheels["other"], wheels["big"]])


@pytest.fixture
def project(tmp_path: Path) -> Path:
    return make_project(tmp_path / "proj")


def _site(python: Path) -> Path:
    out = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True,
        text=True,
        check=True,
    )
    return Path(out.stdout.strip())


def _tree(root: Path) -> dict[str, tuple[int, bytes]]:
    """Every file below ``root`` (``__pycache__`` left out: it is rebuilt on import):
    relative path -> (permission bits, bytes)."""
    out = {}
    for dirpath, dirnames, files in os.walk(root):
        dirnames[:] = [d for d in dirnames if d != "__pycache__"]
        for f in files:
            p = Path(dirpath, f)
            out[p.relative_to(root).as_posix()] = (stat.S_IMODE(p.stat().st_mode), p.read_bytes())
    return out


def _snap(cli: Cli, python: Path, project: Path, *extra: str) -> dict[str, Any]:
    res = assert_ok(
        cli("env", "snapshot", "--python", python, "--project", project, "--json", *extra)
    )
    return res.json()  # type: ignore[no-any-return]


def test_full_snapshot_restores_exactly_from_the_store(
    proc: Cli, venv: Path, project: Path, tmp_path: Path
) -> None:
    cli = proc
    assert_ok(cli("init"))
    r = _snap(cli, venv, project, "--full")
    assert r["full"] is True and len(r["site_packages"]) == 1
    sp = r["site_packages"][0]
    assert sp["prefix_rel"] == "lib/python3.11/site-packages" and sp["created"]
    assert sp["ref"] == "env/proj/site-packages@v1"
    assert r["new_bytes"] > 3 << 20  # bigpkg is incompressible
    # The stored tree is browsable like any version.
    listing = assert_ok(cli("ls", r["ref"], "site-packages/0", "--json")).json()
    assert {e["path"] for e in listing} >= {"site-packages/0/tinypkg/", "site-packages/0/bigpkg/"}

    dest = tmp_path / "restored"
    res = assert_ok(cli("env", "restore", r["ref"], dest, "--json")).json()
    assert res["method"] == "store" and res["exact"] is True and res["packages"] == 3
    assert _tree(_site(dest / "bin" / "python")) == _tree(_site(venv))
    run = subprocess.run(
        [str(dest / "bin" / "python"), "-c", "import tinypkg, bigpkg; print(tinypkg.VERSION)"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert run.stdout.strip() == "0.1"
    # Snapshot the restored venv: no package difference from the original.
    again = _snap(cli, dest / "bin" / "python", project, "--name", "restored")
    d = assert_ok(cli("env", "diff", r["ref"], again["ref"], "--json")).json()
    assert d["packages"] == {"added": [], "removed": [], "changed": [], "source_changed": []}
    assert d["python"], "the executables differ, and the diff says so"


def test_second_full_snapshot_costs_a_fraction(
    cli: Cli, wheels: dict[str, Path], project: Path, tmp_path: Path
) -> None:
    python = make_venv(tmp_path / "v", [wheels["tiny01"], wheels["big"]])
    assert_ok(cli("init"))
    first = _snap(cli, python, project, "--full")
    pip_install(python, [wheels["tiny02"]])  # one package changes
    second = _snap(cli, python, project, "--full")
    assert second["created"] and second["site_packages"][0]["ref"].endswith("@v2")
    assert second["new_bytes"] < 0.15 * first["new_bytes"], (first, second)
    # Nothing changed: nothing new, the latest is reused.
    third = _snap(cli, python, project, "--full")
    assert third["created"] is False and third["new_bytes"] == 0


def test_restore_with_pip_from_pinned_requirements(
    cli: Cli, venv: Path, project: Path, tmp_path: Path
) -> None:
    assert_ok(cli("init"))
    r = _snap(cli, venv, project)  # metadata only
    dest = tmp_path / "pip-restored"
    res = assert_ok(cli("env", "restore", r["ref"], dest, "--json", timeout=300)).json()
    assert res["method"] == "pip" and res["exact"] is True, res
    # The venv's own pip and setuptools, which the snapshot lacked, were removed again.
    assert any("removed" in n for n in res["notes"]), res
    again = _snap(cli, dest / "bin" / "python", project, "--name", "pip-restored")
    d = assert_ok(cli("env", "diff", r["ref"], again["ref"], "--json")).json()
    assert d["packages"] == {"added": [], "removed": [], "changed": [], "source_changed": []}


def test_restore_refusals(cli: Cli, venv: Path, project: Path, tmp_path: Path) -> None:
    assert_ok(cli("init"))
    meta = _snap(cli, venv, project)
    res = cli("env", "restore", meta["ref"], tmp_path / "x", "--method", "store")
    assert_one_line_error(res, 2, "not taken with --full")
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "file").write_text("x")
    assert_one_line_error(cli("env", "restore", meta["ref"], busy), 2, "not empty")
    assert (busy / "file").read_text() == "x"
    # Another minor version than the snapshot's (the venv's, made from sys.executable).
    here = sys.version_info[:2]
    other = find_python(lambda v: v[0] == 3 and v != here and v >= (3, 8))
    if other is None:
        skip_outside_ci(f"needs a Python 3 interpreter other than {here[0]}.{here[1]}")
    exe, (major, minor) = other
    res = cli("env", "restore", meta["ref"], tmp_path / "y", "--python", exe)
    assert_one_line_error(res, 2, f"Python {major}.{minor}", f"give a Python {here[0]}.{here[1]}")
    assert not (tmp_path / "y").exists()
    res = cli("env", "restore", "proj@v7", tmp_path / "z")
    assert_one_line_error(res, 4, "no 'v7'")
