"""Remotes that cannot be trusted or reached (issue 18): the conditional-write probe
refuses a server that ignores create-if-absent, and a push to a remote that went away
fails with a clear error and leaves the local store exactly as it was."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from reprocas.remote.backend import ConditionalWritesUnsupported, probe_conditional_writes
from reprocas.remote.file import FileBackend
from tests.integration._helpers import assert_ok, assert_repo_unchanged, repo_state, run_cli


class _IgnoresConditions(FileBackend):
    """A real directory remote whose create-if-absent overwrites (as a server or a
    proxy that drops If-None-Match would)."""

    def put_if_absent(self, key: str, data: bytes) -> str:
        return self.put(key, data)


def test_probe_accepts_a_file_remote_and_refuses_one_that_ignores_conditions(
    tmp_path: Path,
) -> None:
    good = FileBackend((tmp_path / "good").as_uri())
    (tmp_path / "good").mkdir()
    probe_conditional_writes(good, "t1")
    assert list(good.list("probe/")) == []  # the probe cleans up after itself
    (tmp_path / "bad").mkdir()
    bad = _IgnoresConditions((tmp_path / "bad").as_uri())
    with pytest.raises(ConditionalWritesUnsupported, match="--single-writer"):
        probe_conditional_writes(bad, "t2")
    assert list(bad.list("probe/")) == []


def test_remote_add_reports_the_probe(tmp_path: Path) -> None:
    repo, remote = tmp_path / "repo", tmp_path / "remote"
    remote.mkdir()
    assert_ok(run_cli("init", repo=repo))
    added = assert_ok(run_cli("remote", "add", "origin", remote.as_uri(), "--json", repo=repo))
    assert added.json()["conditional_writes"] is True
    listed = assert_ok(run_cli("remote", "list", "--json", repo=repo)).json()
    assert [r["name"] for r in listed] == ["origin"]
    res = run_cli("remote", "add", "origin", remote.as_uri(), repo=repo)
    assert res.returncode == 2 and "exists" in res.err


def test_push_to_a_remote_that_went_away_fails_and_changes_nothing(tmp_path: Path) -> None:
    repo, remote, data = tmp_path / "repo", tmp_path / "remote", tmp_path / "d.csv"
    remote.mkdir()
    assert_ok(run_cli("init", repo=repo))
    data.write_text("".join(f"{i},{i * i}\n" for i in range(5000)))
    assert_ok(run_cli("commit", data, "-d", "clin", repo=repo))
    assert_ok(run_cli("remote", "add", "origin", remote.as_uri(), repo=repo))
    shutil.rmtree(remote)  # the NAS was unmounted
    before = repo_state(repo)
    res = run_cli("push", repo=repo)
    assert res.returncode != 0 and res.err.count("\n") == 1, res.describe()
    assert "unavailable" in res.err and str(remote) in res.err, res.err
    assert_repo_unchanged(repo, before)
