"""Prompts before and after `reprocas run`, through a real pseudo-terminal (pexpect): yes,
no, and never waiting under --no-input, REPROCAS_NO_INPUT, CI or a stdin that is no
terminal."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest

import reprocas
from reprocas.provenance.names import load_run, resolve_run
from tests.conftest import skip_outside_ci
from tests.integration._helpers import assert_ok, assert_one_line_error, clean_env, cli_argv
from tests.integration.conftest import Cli

try:
    import pexpect  # type: ignore[import-untyped]
except ImportError:  # pragma: no cover - CI has it
    pexpect = None

PY = sys.executable
COPY = "import shutil; shutil.copy('inputs/clinical/encounters.csv', 'out.csv')"
QUESTION = (
    "encounters.csv changed since clinical@v1 (2 rows added). "
    "Commit it as clinical@v2 first, with a step? [y/N]"
)
SNAPSHOT = (
    "Snapshot the environment and the datasets with the results? "
    "This makes a reproducible package. [Y/n]"
)


@pytest.fixture
def setup(tmp_path: Path, cli: Cli) -> dict[str, Path]:
    assert_ok(cli("init"))
    data = tmp_path / "data"
    data.mkdir()
    (data / "encounters.csv").write_text("id,age\n1,40\n2,51\n3,62\n")
    assert_ok(cli("commit", data, "-d", "clinical"))
    (data / "encounters.csv").write_text("id,age\n1,40\n2,51\n3,62\n4,33\n5,70\n")
    proj = tmp_path / "proj"
    proj.mkdir()
    return {"data": data, "proj": proj}


def _argv(repo: Path, *extra: str) -> list[str]:
    return cli_argv(["run", "-n", "train", "--env", "none", "-i", "clinical", "-o", "out.csv",
                     *extra, "--", PY, "-c", COPY], repo)  # fmt: skip


def _spawn(argv: list[str], cwd: Path, **env: str) -> Any:
    if pexpect is None:
        skip_outside_ci("pexpect is not installed")
    e = clean_env(env)
    for k in ("CI", "REPROCAS_NO_INPUT"):
        if k not in env:
            e.pop(k, None)
    return pexpect.spawn(argv[0], argv[1:], cwd=str(cwd), env=e, timeout=60,
                         encoding="utf-8", dimensions=(40, 400))  # fmt: skip


def _finish(child: Any) -> str:
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0, child.before
    return str(child.before)


def _run(repo_path: Path, ref: str) -> Any:
    with reprocas.Repo.open(repo_path) as repo, repo.store.index.read() as txn:
        return load_run(repo.store, txn, resolve_run(repo.store, txn, ref).id)


def test_data_change_ask_yes_commits_with_a_step(
    cli: Cli, setup: dict[str, Path], repo_path: Path
) -> None:
    assert_ok(cli("config", "set", "prompt.data-change", "ask"))
    child = _spawn(_argv(repo_path), setup["proj"])
    child.expect_exact(QUESTION)
    child.sendline("y")
    child.expect_exact("step (how it was made; empty for none): ")
    child.sendline("added the March export")
    child.expect_exact("committed clinical@v2")
    _finish(child)
    [v2] = [
        e for e in assert_ok(cli("log", "clinical", "--json")).json() if e["ref"].endswith("v2")
    ]
    assert v2["step"] == "added the March export"
    run = _run(repo_path, "train#1")
    assert [i["ref"] for i in run.inputs] == ["clinical"] and run.inputs[0]["number"] == 2
    assert "uncommitted_inputs" not in run.extra


def test_data_change_ask_no_goes_on_and_records(
    cli: Cli, setup: dict[str, Path], repo_path: Path
) -> None:
    assert_ok(cli("config", "set", "prompt.data-change", "ask"))
    child = _spawn(_argv(repo_path), setup["proj"])
    child.expect_exact(QUESTION)
    child.sendline("n")
    child.expect_exact("warning: encounters.csv changed since clinical@v1 (2 rows added)")
    _finish(child)
    assert [e["ref"] for e in assert_ok(cli("log", "clinical", "--json")).json()] == ["clinical@v1"]
    [u] = _run(repo_path, "train#1").extra["uncommitted_inputs"]
    assert u["dataset"] == "clinical" and u["ref"] == "clinical@v1" and u["changed"] == 1
    assert u["path"] == str(setup["data"].resolve())


@pytest.mark.parametrize(
    "how", [("--no-input",), ("env", "REPROCAS_NO_INPUT", "1"), ("env", "CI", "true")]
)
def test_never_waits_without_someone_to_answer(
    cli: Cli, setup: dict[str, Path], repo_path: Path, how: tuple[str, ...]
) -> None:
    assert_ok(cli("config", "set", "prompt.data-change", "ask"))
    assert_ok(cli("config", "set", "prompt.snapshot-on-save", "ask"))
    extra = how if how[0] != "env" else ()
    env = {how[1]: how[2]} if how[0] == "env" else {}
    child = _spawn(_argv(repo_path, *extra), setup["proj"], **env)
    out = _finish(child)  # a question would wait for 60 s and fail on the timeout
    assert "[y/N]" not in out and "[Y/n]" not in out
    assert "warning: encounters.csv changed since clinical@v1" in out
    assert _run(repo_path, "train#1").extra["uncommitted_inputs"][0]["dataset"] == "clinical"
    assert assert_ok(cli("note", "ls", "--json")).json() == []  # no snapshot taken


def test_off_by_default_and_warn_without_a_terminal(
    cli: Cli, setup: dict[str, Path], repo_path: Path
) -> None:
    quiet = cli(*_argv(repo_path)[3:], cwd=setup["proj"])  # stdin is /dev/null
    assert quiet.returncode == 0 and "changed since" not in quiet.err
    assert "uncommitted_inputs" not in _run(repo_path, "train#1").extra
    assert_ok(cli("config", "set", "prompt.data-change", "ask"))  # no terminal: only said
    said = assert_ok(cli(*_argv(repo_path)[3:], cwd=setup["proj"]))
    assert "warning: encounters.csv changed since clinical@v1 (2 rows added)" in said.err
    assert "[y/N]" not in said.err
    assert _run(repo_path, "train#2").extra["uncommitted_inputs"][0]["ref"] == "clinical@v1"
    assert assert_ok(cli("config", "get", "prompt.data-change")).out.strip() == "ask"
    assert "prompt.data-change = ask" in assert_ok(cli("config", "show")).out
    assert_one_line_error(cli("config", "set", "prompt.data-change", "loud"), 2, "off, warn, ask")
    assert_one_line_error(cli("config", "set", "prompt.bogus", "off"), 2, "prompt.data-change")


def test_snapshot_on_save(cli: Cli, setup: dict[str, Path], repo_path: Path) -> None:
    assert_ok(cli("config", "set", "prompt.snapshot-on-save", "ask"))
    child = _spawn(_argv(repo_path), setup["proj"])
    child.expect_exact(SNAPSHOT)
    child.sendline("n")
    _finish(child)
    assert assert_ok(cli("note", "ls", "--json")).json() == []
    child = _spawn(_argv(repo_path), setup["proj"])
    child.expect_exact(SNAPSHOT)
    child.sendline("")  # the default: yes
    child.expect_exact("kept together by note")
    _finish(child)
    [note] = assert_ok(cli("note", "ls", "--json")).json()
    assert note["protect"] is True and note["text"] == "snapshot with the results of train#2"
    labels = {a["label"] for a in note["about"]}
    assert {"train#2", "clinical@v1", "runs/train@v1"} <= labels
    assert any(a["type"] == "environment" for a in note["about"])
    # --yes answers without a terminal and without waiting
    res = assert_ok(cli(*_argv(repo_path, "--yes")[3:], cwd=setup["proj"]))
    assert "kept together by note" in res.err and "[Y/n]" not in res.err
