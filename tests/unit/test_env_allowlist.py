"""Which environment variables a snapshot keeps, and credentials scrubbed from URLs."""

from __future__ import annotations

import pytest

from reprocas.environment import allowlist


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
    assert allowlist.select(env, allow) == {"EXTRA_A": "3", "MY_SEED": "1", "OTHER": "2"}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("https://user:pw@host/simple", "https://***@host/simple"),
        ("https://ghp_abcdef@github.com/o/r", "https://***@github.com/o/r"),
        ("git+ssh://git@github.com/o/r.git", "git+ssh://git@github.com/o/r.git"),
        ("ssh://deploy:hunter2@host/x", "ssh://***@host/x"),
        ("https://host/simple", "https://host/simple"),
        ("a https://u:p@h1/x and http://t@h2/y", "a https://***@h1/x and http://***@h2/y"),
        ("mailto:someone@example.org", "mailto:someone@example.org"),
    ],
)
def test_redact_urls(text: str, expected: str) -> None:
    assert allowlist.redact_urls(text) == expected
    data, changed = allowlist.redact_bytes(text.encode() + b"\xff")
    assert data == expected.encode() + b"\xff" and changed == (text != expected)
