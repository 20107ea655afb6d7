"""Which environment variables a snapshot keeps, and secrets scrubbed from their values."""

from __future__ import annotations

import pytest

from reprocas.environment import allowlist
from reprocas.security import Finding


@pytest.mark.parametrize(
    "name",
    [
        "API_TOKEN",
        "github_token",
        "AWS_SECRET_ACCESS_KEY",
        "DB_PASSWORD",
        "PGPASSWD",
        "GOOGLE_APPLICATION_CREDENTIALS",
        "MKL_LICENSE_KEY",
        "HTTP_AUTHORIZATION",
        "SSH_PRIVATE",
        "OMP_Secret",
        "PASSWORD_SALT",
        "OMP_SALT",
        "BROWSER_COOKIE",
        "DJANGO_SESSION_ID",
        "MYSQL_PWD",
        "PWD_HASH",
        "db_pwd",
    ],
)
def test_secret_names_are_never_kept(name: str) -> None:
    assert allowlist.looks_secret(name)
    assert not allowlist.allowed(name, ("*",))


def test_defaults_keep_reproducibility_variables() -> None:
    allow = allowlist.patterns(defaults=True)
    for name in (
        "PYTHONHASHSEED",
        "CUDA_VISIBLE_DEVICES",
        "OMP_NUM_THREADS",
        "MKL_NUM_THREADS",
        "CUBLAS_WORKSPACE_CONFIG",
        "TF_DETERMINISTIC_OPS",
        "LANG",
        "LC_ALL",
        "TZ",
    ):
        assert allowlist.allowed(name, allow), name
    for name in ("HOME", "PATH", "USER", "SSH_AUTH_SOCK", "AWS_ACCESS_KEY_ID"):
        assert not allowlist.allowed(name, allow), name


def test_patterns_from_environment_and_options(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(allowlist.ENV_VAR, " MY_* , OTHER ,")
    allow = allowlist.patterns(["EXTRA_*", "MY_*"], defaults=False)
    assert allow == ("MY_*", "OTHER", "EXTRA_*")
    env = {"MY_SEED": "1", "MY_TOKEN": "x", "OTHER": "2", "EXTRA_A": "3", "NOPE": "4"}
    assert allowlist.select(env, allow) == ({"EXTRA_A": "3", "MY_SEED": "1", "OTHER": "2"}, [])


@pytest.mark.parametrize("name", ["PWD", "OLDPWD", "pwd"])
def test_the_shells_working_directories_are_not_secrets(name: str) -> None:
    assert not allowlist.looks_secret(name)
    assert allowlist.allowed(name, (name,))


def test_kept_values_are_scanned_for_secrets() -> None:
    token = "ghp_" + "a1B2c3D4e5F6g7H8i9J0k1L2m3N4o5P6q7R8"
    env = {
        "OMP_NUM_THREADS": "4",
        "PIP_INDEX_URL": "https://user:hunter2@pypi.example.org/simple",
        "LC_GITHUB": f"prefix {token} suffix",
        "PWD": "/home/me/project",
    }
    allow = ("OMP_*", "PIP_*", "LC_*", "PWD")
    kept, found = allowlist.select(env, allow)
    assert kept == {
        "LC_GITHUB": "prefix «redacted:github-token» suffix",
        "OMP_NUM_THREADS": "4",
        "PIP_INDEX_URL": "https://***@pypi.example.org/simple",
        "PWD": "/home/me/project",
    }
    assert found == [
        Finding("env:LC_GITHUB", 0, "github-token"),
        Finding("env:PIP_INDEX_URL", 0, "password-in-url"),
    ]
    assert found[0].where == "environment variable LC_GITHUB"
    verbatim, again = allowlist.select(env, allow, allow_secrets=True)
    assert verbatim == env and again == found
