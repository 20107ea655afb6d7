"""Secrets in the code diff, the lock files and the kept variables never reach the
store: ``reprocas env snapshot`` and ``reprocas run`` as real processes on a real git
project, the whole repository searched (raw and decompressed) afterwards; each
redaction is a warning naming the file and line; ``--allow-secrets`` keeps them."""

from __future__ import annotations

import random
import string
import sys
from pathlib import Path

import pytest

import reprocas
from reprocas.provenance.names import load_run, resolve_run
from reprocas.provenance.replay_code import read_run_file
from tests.integration._helpers import (
    assert_ok,
    git,
    run_cli,
    verify_ok,
    where_in_repository,
)
from tests.integration.conftest import Cli

_RNG = random.Random(2026)


def _rand(n: int, alphabet: str = string.ascii_letters + string.digits) -> str:
    return "".join(_RNG.choice(alphabet) for _ in range(n))


OPENAI = "sk-live-" + _rand(20) + "42"
AWS = "AKIA" + _rand(16, string.ascii_uppercase + string.digits)
REMOVED = "ghp_" + _rand(36)  # committed, then removed: the diff's "-" line holds it
LOCK = "ghp_" + _rand(36)  # in a lock file, as a comment
ENV_VALUE = "xoxb-" + _rand(12, string.digits) + "-" + _rand(24)
SECRETS = (OPENAI, AWS, REMOVED, LOCK, ENV_VALUE)

TRAIN = "import os\n\nprint('training')\n"


@pytest.fixture
def project(tmp_path: Path, cli: Cli) -> Path:
    """A git project with uncommitted secrets, and an initialised repository."""
    p = tmp_path / "proj"
    p.mkdir()
    git(p, "init", "-q", "-b", "main")
    (p / "train.py").write_text(TRAIN)
    (p / "config.py").write_text(f"TOKEN = '{REMOVED}'\nEPOCHS = 3\n")
    (p / "requirements.txt").write_text("tinypkg==0.1\n")
    git(p, "add", ".")
    git(p, "commit", "-q", "-m", "first")
    # Uncommitted: a key on line 3 and an AWS key on line 5 of train.py, the committed
    # token replaced by a lookup, and a token in the lock file.
    (p / "train.py").write_text(
        f"import os\n\nAPI_KEY='{OPENAI}'\nprint('training')\naws = \"{AWS}\"\n"
    )
    (p / "config.py").write_text("TOKEN = os.environ['TOKEN']\nEPOCHS = 3\n")
    (p / "requirements.txt").write_text(f"tinypkg==0.1  # {LOCK}\n")
    assert_ok(cli("init"))
    return p


ENV = {"LC_NOTIFY": ENV_VALUE, "REPROCAS_ENV_ALLOW": ""}

EXPECTED_WARNINGS = [
    "reprocas: warning: secret redacted in train.py line 3 (openai-key); --allow-secrets keeps it",
    "reprocas: warning: secret redacted in train.py line 5 (aws-access-key); "
    "--allow-secrets keeps it",
    "reprocas: warning: secret redacted in config.py line 1 (github-token); "
    "--allow-secrets keeps it",
]


def _nowhere(repo_path: Path, *secrets: str) -> None:
    for s in secrets:
        assert where_in_repository(repo_path, s.encode()) == [], s


def test_env_snapshot_redacts_and_warns(cli: Cli, project: Path, repo_path: Path) -> None:
    res = assert_ok(
        cli(
            "env",
            "snapshot",
            "--python",
            sys.executable,
            "--project",
            project,
            "--json",
            env=ENV,
        )
    )
    for w in EXPECTED_WARNINGS:
        assert w in res.err, res.describe()
    assert "requirements.txt line 1 (github-token)" in res.err
    assert "environment variable LC_NOTIFY (slack-token)" in res.err
    out = res.json()
    # requirements.txt twice: its change is in the diff, its content a lock file
    assert out["secrets_allowed"] is False and len(out["redacted"]) == 6
    _nowhere(repo_path, *SECRETS)
    shown = assert_ok(cli("env", "show", out["ref"], "--json")).json()
    assert shown["git"]["redacted"] == [
        {"path": "config.py", "line": 1, "kind": "github-token"},
        {"path": "requirements.txt", "line": 1, "kind": "github-token"},
        {"path": "train.py", "line": 3, "kind": "openai-key"},
        {"path": "train.py", "line": 5, "kind": "aws-access-key"},
    ]
    assert shown["redacted"] == [
        {"path": "requirements.txt", "line": 1, "kind": "github-token"},
        {"path": "env:LC_NOTIFY", "line": 0, "kind": "slack-token"},
    ]
    assert shown["env"]["LC_NOTIFY"] == "«redacted:slack-token»"
    text = assert_ok(cli("env", "show", out["ref"])).out
    assert "secrets     6 redacted: config.py line 1 (github-token)" in text
    assert "environment variable LC_NOTIFY (slack-token)" in text
    assert not any(secret in text for secret in SECRETS)
    assert "secrets_allowed" not in shown and "secrets_allowed" not in shown["git"]
    patch = assert_ok(cli("cat", out["ref"], "git/diff.patch")).out
    assert "+API_KEY='«redacted:openai-key»'" in patch
    assert "-TOKEN = '«redacted:github-token»'" in patch
    lock = assert_ok(cli("cat", out["ref"], "project/requirements.txt")).out
    assert lock == "tinypkg==0.1  # «redacted:github-token»\n"
    # `env check` redacts the same way: the snapshot matches the unchanged project.
    check = cli(
        "env", "check", out["ref"], "--python", sys.executable, "--project", project, env=ENV
    )
    assert check.returncode == 0, check.describe()
    verify_ok(repo_path)


def test_allow_secrets_keeps_them_and_says_so(cli: Cli, project: Path, repo_path: Path) -> None:
    res = assert_ok(
        cli(
            "env",
            "snapshot",
            "--python",
            sys.executable,
            "--project",
            project,
            "--allow-secrets",
            "--json",
            env=ENV,
        )
    )
    assert (
        "reprocas: warning: secret kept in train.py line 3 (openai-key) because of "
        "--allow-secrets" in res.err
    )
    assert res.json()["secrets_allowed"] is True and res.json()["redacted"] == []
    for s in SECRETS:
        assert where_in_repository(repo_path, s.encode()), s
    shown = assert_ok(cli("env", "show", res.json()["ref"], "--json")).json()
    assert shown["secrets_allowed"] is True and shown["git"]["secrets_allowed"] is True
    assert {"path": "train.py", "line": 3, "kind": "openai-key"} in shown["git"]["secrets_kept"]
    assert "redacted" not in shown["git"] and shown["env"]["LC_NOTIFY"] == ENV_VALUE


@pytest.mark.parametrize("env_mode", ["light", "none"])
def test_run_redacts_the_diff_and_warns(
    cli: Cli, project: Path, repo_path: Path, env_mode: str
) -> None:
    res = cli(
        "run",
        "-n",
        "train",
        "--env",
        env_mode,
        "--",
        sys.executable,
        "train.py",
        cwd=project,
        env=ENV,
    )
    assert_ok(res)
    for w in EXPECTED_WARNINGS:
        assert w in res.err, res.describe()
    _nowhere(repo_path, OPENAI, AWS, REMOVED)
    if env_mode == "light":
        _nowhere(repo_path, LOCK, ENV_VALUE)
    with reprocas.Repo.open(repo_path) as repo, repo.store.index.read() as txn:
        run = load_run(repo.store, txn, resolve_run(repo.store, txn, "train#1").id)
    assert run.code is not None
    assert [(f["path"], f["line"]) for f in run.code["redacted"]] == [
        ("config.py", 1),
        ("requirements.txt", 1),
        ("train.py", 3),
        ("train.py", 5),
    ]
    assert run.code["diff"]["redacted"] is True
    with reprocas.Repo.open(repo_path) as repo:
        patch = read_run_file(repo.store, run, "code/diff.patch")
    assert patch is not None and '+aws = "«redacted:aws-access-key»"'.encode() in patch


def test_run_allow_secrets_keeps_the_diff(cli: Cli, project: Path, repo_path: Path) -> None:
    res = cli(
        "run",
        "-n",
        "train",
        "--env",
        "none",
        "--allow-secrets",
        "--",
        sys.executable,
        "train.py",
        cwd=project,
    )
    assert_ok(res)
    assert "secret kept in train.py line 5 (aws-access-key) because of --allow-secrets" in res.err
    assert where_in_repository(repo_path, AWS.encode())
    with reprocas.Repo.open(repo_path) as repo, repo.store.index.read() as txn:
        run = load_run(repo.store, txn, resolve_run(repo.store, txn, "train#1").id)
    assert run.code is not None and run.code["secrets_allowed"] is True
    assert "redacted" not in run.code and len(run.code["secrets_kept"]) == 4


def test_replay_of_a_redacted_diff(cli: Cli, project: Path, tmp_path: Path) -> None:
    """Added lines still apply (the code holds the markers); a secret redacted from a
    removed line no longer matches the commit, and the error says why."""
    git(project, "checkout", "-q", "--", "config.py")
    assert_ok(
        cli("run", "-n", "added", "--env", "none", "--", sys.executable, "train.py", cwd=project)
    )
    res = assert_ok(cli("replay", "added", "--workdir", tmp_path / "w1", "--json", cwd=project))
    assert "secret(s) redacted when it was recorded" in res.err
    replay = res.json()
    workdir = Path(replay["workdir"])
    assert "API_KEY='«redacted:openai-key»'" in (workdir / "train.py").read_text()
    (project / "config.py").write_text("TOKEN = os.environ['TOKEN']\nEPOCHS = 3\n")
    assert_ok(
        cli("run", "-n", "removed", "--env", "none", "--", sys.executable, "train.py", cwd=project)
    )
    res = cli("replay", "removed", "--workdir", tmp_path / "w2", cwd=project)
    assert res.returncode == 1 and "Traceback" not in res.err, res.describe()
    last = res.err.strip().splitlines()[-1]
    assert last.startswith("reprocas: error: the stored uncommitted diff"), res.describe()
    assert "does not apply" in last and "--allow-secrets" in last
    assert_ok(
        cli(
            "run",
            "-n",
            "kept",
            "--env",
            "none",
            "--allow-secrets",
            "--",
            sys.executable,
            "train.py",
            cwd=project,
        )
    )
    assert_ok(cli("replay", "kept", "--workdir", tmp_path / "w3", cwd=project))


def test_python_api_run_redacts_and_warns(
    project: Path, repo_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with reprocas.Repo.open(repo_path) as repo:
        with reprocas.run("api", repo=repo, env="none", cwd=project):
            pass
        with reprocas.run("api", repo=repo, env="none", cwd=project, allow_secrets=True):
            pass
    err = capsys.readouterr().err
    assert "reprocas: warning: secret redacted in train.py line 3 (openai-key)" in err
    assert "reprocas: warning: secret kept in train.py line 3 (openai-key)" in err
    with reprocas.Repo.open(repo_path) as repo, repo.store.index.read() as txn:
        first = load_run(repo.store, txn, resolve_run(repo.store, txn, "api#1").id)
        second = load_run(repo.store, txn, resolve_run(repo.store, txn, "api#2").id)
    assert first.code is not None and len(first.code["redacted"]) == 4
    assert second.code is not None and second.code["secrets_allowed"] is True


def test_help_names_the_option(project: Path) -> None:
    for cmd in (["env", "snapshot"], ["run"]):
        out = assert_ok(run_cli(*cmd, "--help")).out
        assert "--allow-secrets" in out, cmd
