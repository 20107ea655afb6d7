"""Remotes that cannot be trusted or reached, and what goes up (issue 18): the probe
refuses a server that ignores create-if-absent; a push to a remote that went away, or
whose server stops, fails with a clear error and leaves the local store as it was; a
tag is not moved backwards without --force; only what is missing is uploaded."""

from __future__ import annotations

import json
import random
import shutil
import subprocess
import time
from pathlib import Path

import pytest

import reprocas
from reprocas.remote.backend import ConditionalWritesUnsupported, probe_conditional_writes
from reprocas.remote.file import FileBackend
from reprocas.remote.registry import open_backend
from reprocas.remote.s3 import S3Backend
from tests.integration._helpers import (
    assert_ok,
    assert_one_line_error,
    assert_repo_unchanged,
    cli_argv,
    repo_state,
    run_cli,
)
from tests.s3server import S3Server, start_server


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


# -- against a real S3 server (moto on loopback) ----------------------------------------


def _s3_opts(server: S3Server) -> list[str]:
    out: list[str] = []
    for key, value in sorted(server.options.items()):
        out += ["--option", f"{key}={value}"]
    return out


def test_probe_refuses_a_server_that_strips_conditional_headers(tmp_path: Path) -> None:
    server = start_server(strip_conditions=True)  # If-None-Match/If-Match never reach S3
    try:
        repo = tmp_path / "repo"
        assert_ok(run_cli("init", repo=repo))
        opts = _s3_opts(server)
        res = run_cli("remote", "add", "origin", server.url("x"), *opts, repo=repo)
        line = assert_one_line_error(res, 2, "ignores conditional writes", "--single-writer")
        assert "412" in line
        assert rconf_names(repo) == []
        # Allowed for one writer only, when asked for in so many words.
        added = run_cli(
            "remote", "add", "origin", server.url("x"), *opts, "--single-writer", repo=repo
        )
        assert_ok(added)
        data = tmp_path / "d.csv"
        data.write_text("".join(f"{i},{i * 3}\n" for i in range(3000)))
        assert_ok(run_cli("commit", data, "-d", "clin", repo=repo))
        assert_ok(run_cli("push", repo=repo))
    finally:
        server.stop()


def rconf_names(repo: Path) -> list[str]:
    listed = assert_ok(run_cli("remote", "list", "--json", repo=repo)).json()
    return [r["name"] for r in listed]


def test_server_stopped_mid_push_is_a_clear_error_and_changes_nothing(
    tmp_path: Path, fresh_s3_server: S3Server
) -> None:
    server = fresh_s3_server
    repo, data = tmp_path / "repo", tmp_path / "data"
    reprocas.Repo.init(repo, pack_size=1 << 20).close()  # many small packs: a long push
    data.mkdir()
    rng = random.Random(5)
    for i in range(12):
        (data / f"f{i}.bin").write_bytes(rng.randbytes(1 << 20))
    assert_ok(run_cli("commit", data, "-d", "scans", repo=repo))
    assert_ok(run_cli("remote", "add", "origin", server.url("p"), *_s3_opts(server), repo=repo))
    before = repo_state(repo)
    watcher = S3Backend(server.url("p"), server.options)
    proc = subprocess.Popen(
        cli_argv(["push"], repo), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    deadline = time.monotonic() + 60
    while not list(watcher.list("packs/")):  # the first pack has landed: stop the server
        assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
        time.sleep(0.02)
    server.stop()
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 5, (out, err)
    lines = [ln for ln in err.splitlines() if ln.strip() and "pushing" not in ln]
    assert len(lines) == 1 and lines[0].startswith("reprocas: error:"), err
    assert "unavailable" in lines[0] and "127.0.0.1" in lines[0], err
    assert "Traceback" not in err
    assert_repo_unchanged(repo, before)


def test_a_tag_moved_backwards_is_refused_without_force(
    tmp_path: Path, remote_url: tuple[str, list[str]]
) -> None:
    url, opts = remote_url
    a, b, data = tmp_path / "a", tmp_path / "b", tmp_path / "d.csv"
    assert_ok(run_cli("init", repo=a))
    for n in range(2):
        data.write_text("".join(f"{i},{i * n}\n" for i in range(2000)))
        assert_ok(run_cli("commit", data, "-d", "clin", repo=a))
    assert_ok(run_cli("tag", "clin@v2", "best", repo=a))
    assert_ok(run_cli("remote", "add", "origin", url, *opts, repo=a))
    assert_ok(run_cli("push", repo=a))
    assert_ok(run_cli("clone", url, b, *opts, repo=None))
    assert_ok(run_cli("tag", "clin@v1", "best", "--force", repo=b))  # backwards, here
    res = run_cli("push", repo=b)
    assert_one_line_error(res, 2, "best", "--force")
    remote_best = run_cli("show", "clin@best", "--json", repo=a).json()["id"]
    assert run_cli("show", "clin@v2", "--json", repo=a).json()["id"] == remote_best
    fresh = tmp_path / "c"
    assert_ok(run_cli("clone", url, fresh, *opts, repo=None))
    assert run_cli("show", "clin@best", "--json", repo=fresh).json()["id"] == remote_best
    assert_ok(run_cli("push", "--force", repo=b))
    again = tmp_path / "d"
    assert_ok(run_cli("clone", url, again, *opts, repo=None))
    v1 = run_cli("show", "clin@v1", "--json", repo=a).json()["id"]
    assert run_cli("show", "clin@best", "--json", repo=again).json()["id"] == v1
    # And a pull that would move a tag backwards here is refused the same way.
    pulled = run_cli("pull", "--json", repo=a)
    assert pulled.returncode != 0 or any(
        r["status"] == "rejected" for r in pulled.json()["refs"]
    ), pulled.describe()


def _packs_bytes(repo: Path) -> int:
    return sum(p.stat().st_size for p in (repo / "packs").rglob("*.pack"))


def test_only_what_is_missing_goes_up(tmp_path: Path, remote_url: tuple[str, list[str]]) -> None:
    url, opts = remote_url
    repo, data = tmp_path / "a", tmp_path / "clinical.csv"
    assert_ok(run_cli("init", repo=repo))
    rng = random.Random(11)
    rows = [
        f"{i},{rng.random():.6f},{rng.choice('ABCD')},{rng.randint(18, 90)}\n" for i in range(40000)
    ]
    for _ in range(5):
        rows += [f"{len(rows)},{rng.random():.6f},new,{rng.randint(18, 90)}\n" for _ in range(2000)]
        for _ in range(50):
            rows[rng.randrange(len(rows))] = f"0,{rng.random():.6f},edit,0\n"
        data.write_text("".join(rows))
        assert_ok(run_cli("commit", data, "-d", "clin", repo=repo))
    assert_ok(run_cli("remote", "add", "origin", url, *opts, repo=repo))
    first = assert_ok(run_cli("push", "--json", repo=repo)).json()
    assert first["uploaded_bytes"] >= _packs_bytes(repo)  # everything, once
    again = assert_ok(run_cli("push", "--json", repo=repo)).json()
    assert again["uploaded_packs"] == 0 and again["uploaded_bytes"] == 0
    rows += [f"{len(rows)},{rng.random():.6f},new,1\n" for _ in range(2000)]
    data.write_text("".join(rows))
    before = _packs_bytes(repo)
    assert_ok(run_cli("commit", data, "-d", "clin", repo=repo))
    new_local = _packs_bytes(repo) - before
    assert new_local > 0
    one = assert_ok(run_cli("push", "--json", repo=repo)).json()
    assert 0 < one["uploaded_bytes"] <= 1.05 * new_local, (one, new_local)


def test_remotes_kept_in_the_marker_by_older_versions_are_read_and_moved(
    tmp_path: Path,
) -> None:
    repo, one, two = tmp_path / "repo", tmp_path / "one", tmp_path / "two"
    one.mkdir()
    two.mkdir()
    assert_ok(run_cli("init", repo=repo))
    marker_path = repo / "reprocas.json"
    marker = json.loads(marker_path.read_text())
    marker["remotes"] = {"old": {"url": one.as_uri(), "options": {}, "single_writer": False}}
    marker_path.write_text(json.dumps(marker))
    assert rconf_names(repo) == ["old"]
    assert_ok(run_cli("remote", "add", "new", two.as_uri(), repo=repo))
    assert rconf_names(repo) == ["new", "old"]
    saved = json.loads((repo / "remotes.json").read_text())
    assert sorted(saved["remotes"]) == ["new", "old"]
    (repo / "remotes.json").write_text("{not json")
    res = run_cli("remote", "list", repo=repo)
    assert_one_line_error(res, 2, "remotes.json", "damaged")


def test_a_damaged_pack_on_the_remote_stops_a_clone_and_a_pull_cleanly(
    tmp_path: Path, remote_url: tuple[str, list[str]]
) -> None:
    """Packs come down several at a time; one that is not what its name says is refused
    (clear error, naming it), nothing damaged is indexed, and once the remote is
    repaired the next pull finishes the job."""
    url, opts = remote_url
    a, data = tmp_path / "a", tmp_path / "data"
    reprocas.Repo.init(a, pack_size=1 << 20).close()
    data.mkdir()
    rng = random.Random(3)
    for i in range(6):
        (data / f"f{i}.bin").write_bytes(rng.randbytes(700_000))
    assert_ok(run_cli("commit", data, "-d", "scans", repo=a))
    assert_ok(run_cli("remote", "add", "origin", url, *opts, repo=a))
    assert_ok(run_cli("push", repo=a))
    backend = open_backend(url, dict(o.split("=", 1) for o in opts if o != "--option"))
    keys = sorted(i.key for i in backend.list("packs/"))
    assert len(keys) >= 3
    victim = keys[len(keys) // 2]
    good = backend.get(victim)
    bad = bytearray(good)
    bad[len(bad) // 3] ^= 0xFF
    backend.put(victim, bytes(bad))
    b = tmp_path / "b"
    assert_ok(run_cli("init", repo=b))
    assert_ok(run_cli("remote", "add", "origin", url, *opts, repo=b))
    res = run_cli("pull", repo=b)
    assert res.returncode == 6 and "Traceback" not in res.err, res.describe()
    assert victim.rsplit("/", 1)[1].removesuffix(".pack") in res.err, res.err
    assert_ok(run_cli("verify", repo=b))  # what it indexed is sound
    assert run_cli("show", "scans@v1", repo=b).returncode != 0  # no ref to missing data
    backend.put(victim, good)
    assert_ok(run_cli("pull", repo=b))
    assert_ok(run_cli("verify", "--read-data", repo=b))
    for i in range(6):
        got = assert_ok(run_cli("cat", "scans@v1", f"f{i}.bin", repo=b)).stdout
        assert got == (data / f"f{i}.bin").read_bytes()
