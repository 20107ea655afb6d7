"""``reprocas env``: snapshot real venvs, show, log, diff, check and export them; the
error cases (broken interpreter, no git, detached HEAD, dirty binary tree, unknown
refs) each end in one clear line or are recorded gracefully."""

from __future__ import annotations

import hashlib
import json
import random
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

import reprocas
from reprocas.environment.capture import Capture, capture
from reprocas.environment.store import history, load, save
from reprocas.model.objects import Environment
from reprocas.store import codec
from tests.conftest import skip_outside_ci
from tests.integration._helpers import (
    assert_ok,
    assert_one_line_error,
    find_python,
    where_in_repository,
)
from tests.integration.test_env_support import (
    Cli,
    envcli,
    git,
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
def venvs(tmp_path_factory: pytest.TempPathFactory, wheels: dict[str, Path]) -> dict[str, Path]:
    """Two venvs: ``a`` with tinypkg 0.1 and otherpkg, ``b`` with tinypkg 0.2 only."""
    d = tmp_path_factory.mktemp("venvs")
    return {
        "a": make_venv(d / "a", [wheels["tiny01"], wheels["other"]]),
        "b": make_venv(d / "b", [wheels["tiny02"]]),
    }


@pytest.fixture
def project(tmp_path: Path) -> Path:
    return make_project(tmp_path / "proj")


def _snap(cli: Cli, python: Path, project: Path, *extra: str, **kw: Any) -> dict[str, Any]:
    res = assert_ok(
        cli("env", "snapshot", "--python", python, "--project", project, "--json", *extra, **kw)
    )
    return res.json()  # type: ignore[no-any-return]


def _init(cli: Cli) -> None:
    assert_ok(cli("init"))


def _pkgs(facts: dict[str, Any]) -> dict[str, str]:
    return {p["name"]: p["version"] for p in facts["packages"]}


def test_snapshot_and_show_json(proc: Cli, venvs: dict[str, Path], project: Path) -> None:
    cli = proc
    _init(cli)
    r = _snap(cli, venvs["a"], project)
    assert r["created"] and r["ref"] == "env/proj@v1" and r["packages"] == 2
    shown = assert_ok(cli("env", "show", "env/proj@v1", "--json")).json()
    for key in ("python", "platform", "packages", "env", "git", "container", "gpu", "files"):
        assert key in shown, key
    assert shown["python"]["version"].startswith("3.")
    assert shown["python"]["executable"] == str(venvs["a"])
    assert shown["python"]["venv"] is True
    assert _pkgs(shown) == {"otherpkg": "1.0", "tinypkg": "0.1"}
    tiny = next(p for p in shown["packages"] if p["name"] == "tinypkg")
    assert tiny["source"]["kind"] == "archive" and tiny["source"]["url"].startswith("file://")
    assert shown["git"]["commit"] == git(project, "rev-parse", "HEAD")
    assert shown["git"]["branch"] == "main" and shown["git"]["dirty"] is False
    assert [f["path"] for f in shown["files"]] == ["requirements.txt"]
    assert shown["gpu"] is None  # no nvidia-smi here: recorded as absent, no failure
    assert shown["environment_id"] == r["environment_id"]
    # The lock file is stored as content in the snapshot's tree.
    cat = assert_ok(cli("cat", "env/proj@v1", "project/requirements.txt"))
    assert cat.stdout == (project / "requirements.txt").read_bytes()
    # Human output names the essentials.
    text = assert_ok(cli("env", "show", "proj")).out
    assert "tinypkg==0.1" in text and "python" in text


def test_identical_snapshot_is_reused(cli: Cli, venvs: dict[str, Path], project: Path) -> None:
    _init(cli)
    first = _snap(cli, venvs["a"], project)
    second = _snap(cli, venvs["a"], project, "--tag", "baseline")
    assert second["created"] is False
    assert second["id"] == first["id"] and second["environment_id"] == first["environment_id"]
    assert second["new_bytes"] == 0
    text = assert_ok(cli("env", "snapshot", "--python", venvs["a"], "--project", project)).out
    assert "reused env/proj@v1" in text
    # The tag given to the reused snapshot names it; so do id prefixes.
    assert assert_ok(cli("env", "show", "proj@baseline", "--json")).json()["id"] == first["id"]
    assert assert_ok(cli("env", "show", first["id"][:10], "--json")).json()["id"] == first["id"]


def test_equal_environments_give_equal_facts(venvs: dict[str, Path], project: Path) -> None:
    a1 = capture(str(venvs["a"]), project, environ={"LANG": "C.UTF-8"})
    a2 = capture(str(venvs["a"]), project, environ={"LANG": "C.UTF-8"})
    b = capture(str(venvs["b"]), project, environ={"LANG": "C.UTF-8"})
    enc = [codec.encode(Environment(c.facts).to_wire()) for c in (a1, a2, b)]
    assert enc[0] == enc[1]
    assert enc[0] != enc[2]


def test_diff_and_log(cli: Cli, venvs: dict[str, Path], project: Path) -> None:
    _init(cli)
    _snap(cli, venvs["a"], project)
    (project / "train.py").write_text("print('training, v2')\n")
    _snap(cli, venvs["b"], project, "-m", "upgrade tinypkg")
    d = assert_ok(cli("env", "diff", "env/proj@v1", "env/proj@v2", "--json")).json()
    assert d["same"] is False
    assert d["packages"]["changed"] == [{"name": "tinypkg", "from": "0.1", "to": "0.2"}]
    assert d["packages"]["removed"] == [{"name": "otherpkg", "version": "1.0"}]
    assert d["packages"]["added"] == []
    fields = {c["field"] for c in d["python"]}
    assert "python.executable" in fields and "python.version" not in fields
    assert {c["field"] for c in d["git"]} >= {"git.dirty", "git.diff"}
    text = assert_ok(cli("env", "diff", "proj@v1", "proj@v2")).out
    assert "~ tinypkg 0.1 -> 0.2" in text and "- otherpkg 1.0" in text
    same = assert_ok(cli("env", "diff", "proj@v1", "proj@v1", "--json")).json()
    assert same["same"] is True
    ignored = assert_ok(
        cli("env", "diff", "proj@v1", "proj@v2", "--ignore", "python", "--json")
    ).json()
    assert ignored["python"] == []
    log = assert_ok(cli("env", "log", "--json")).json()
    assert [e["ref"] for e in log] == ["env/proj@v2", "env/proj@v1"]
    assert log[0]["message"] == "upgrade tinypkg" and log[0]["packages"] == 1
    # The ordinary version log shows environment snapshots too.
    assert "env/proj@v2" in assert_ok(cli("log")).out


def test_planted_secrets_never_reach_the_repository(
    proc: Cli, venvs: dict[str, Path], project: Path, repo_path: Path, tmp_path: Path
) -> None:
    cli = proc
    planted = {
        "API_TOKEN": "planted-token-6c1f0e",
        "AWS_SECRET_ACCESS_KEY": "planted-aws-93ab11",
        "DB_PASSWORD": "planted-password-4410",
        "MY_CREDENTIALS": "planted-credentials-7d7d",
        "HF_TOKEN": "planted-hf-0a0a",
        "OMP_API_KEY": "planted-omp-key-5151",  # allowlisted prefix, secret-looking name
        "PRIVATE_KEY_PEM": "planted-pem-2222",
    }
    url_secret = "planted-url-pw-8e8e"
    (project / "requirements.txt").write_text(
        f"--extra-index-url https://__token__:{url_secret}@pypi.example.org/simple\ntinypkg==0.1\n"
    )
    unlisted = "planted-unlisted-3c3c"
    env = {
        **planted,
        "UNLISTED_VAR": unlisted,
        "OMP_NUM_THREADS": "3",
        "PIP_INDEX_URL": f"https://user:{url_secret}@pypi.example.org/simple",
        "REPROCAS_ENV_ALLOW": "*TOKEN*,PIP_*",
    }
    _init(cli)
    # The default allowlist (plus patterns that try to let secrets through).
    r1 = _snap(cli, venvs["a"], project, "--env-allow", "*_KEY", env=env)
    facts1 = assert_ok(cli("env", "show", r1["ref"], "--json")).json()
    assert facts1["env"]["OMP_NUM_THREADS"] == "3"
    assert facts1["env"]["PIP_INDEX_URL"] == "https://***@pypi.example.org/simple"
    assert "UNLISTED_VAR" not in facts1["env"]
    # Everything allowed: secret-looking names are still dropped.
    r2 = _snap(cli, venvs["a"], project, "--env-allow", "*", env=env)
    facts2 = assert_ok(cli("env", "show", r2["ref"], "--json")).json()
    assert facts2["env"]["UNLISTED_VAR"] == unlisted  # the allowlist is what decides
    assert not set(planted) & set(facts2["env"])
    # Nowhere in the repository: raw files, every decompressed frame and object, the
    # checked-out snapshot trees and the facts.
    needles = [v.encode() for v in planted.values()] + [url_secret.encode()]
    for needle in needles:
        assert where_in_repository(repo_path, needle) == [], needle
    # The scan sees what was stored on purpose (inside compressed frames too).
    assert any("decompressed" in w for w in where_in_repository(repo_path, unlisted.encode()))
    for ref in (r1["ref"], r2["ref"]):
        dest = tmp_path / ref.replace("/", "_")
        assert_ok(cli("checkout", ref, dest))
        for path in dest.rglob("*"):
            if path.is_file():
                assert not any(n in path.read_bytes() for n in needles), path
        text = assert_ok(cli("env", "show", ref, "--json")).out.encode()
        assert not any(n in text for n in needles)
    stored_req = assert_ok(cli("cat", r1["ref"], "project/requirements.txt")).out
    assert "https://***@pypi.example.org/simple" in stored_req


def test_broken_python_is_one_clear_line(proc: Cli, project: Path, tmp_path: Path) -> None:
    cli = proc
    _init(cli)
    missing = tmp_path / "gone" / "bin" / "python"
    res = cli("env", "snapshot", "--python", missing, "--project", project)
    assert_one_line_error(res, 3, "no such interpreter", str(missing))
    res = cli("env", "snapshot", "--python", tmp_path, "--project", project)
    assert_one_line_error(res, 3, "is a directory")
    res = cli("env", "snapshot", "--python", shutil.which("false") or "/bin/false")
    assert_one_line_error(res, 3, "not a working Python")
    # A venv whose base interpreter vanished: its bin/python is a dangling link.
    broken = tmp_path / "broken-venv"
    (broken / "bin").mkdir(parents=True)
    (broken / "bin" / "python").symlink_to(tmp_path / "nowhere" / "python3")
    res = cli("env", "snapshot", "--python", broken / "bin" / "python", "--project", project)
    assert_one_line_error(res, 3, "no such interpreter")


def test_no_git_repository(cli: Cli, venvs: dict[str, Path], tmp_path: Path) -> None:
    plain = tmp_path / "plain"
    plain.mkdir()
    (plain / "pyproject.toml").write_text("[project]\nname = 'x'\n")
    _init(cli)
    res = assert_ok(cli("env", "snapshot", "--python", venvs["a"], "--project", plain))
    assert "not in a git repository" in res.err
    shown = assert_ok(cli("env", "show", "plain", "--json")).json()
    assert shown["git"] is None
    assert [f["path"] for f in shown["files"]] == ["pyproject.toml"]


def test_detached_head(cli: Cli, venvs: dict[str, Path], project: Path) -> None:
    head = git(project, "rev-parse", "HEAD")
    git(project, "checkout", "-q", "--detach")
    _init(cli)
    res = assert_ok(cli("env", "snapshot", "--python", venvs["a"], "--project", project))
    assert "detached HEAD" in res.err
    g = assert_ok(cli("env", "show", "--json", "proj")).json()["git"]
    assert g["detached"] is True and g["branch"] is None and g["commit"] == head


def test_dirty_tree_with_binary_files(
    cli: Cli, venvs: dict[str, Path], project: Path, tmp_path: Path
) -> None:
    blob = bytes(range(256)) * 64
    (project / "weights.bin").write_bytes(blob)
    git(project, "add", "weights.bin")
    git(project, "commit", "-q", "-m", "weights")
    commit = git(project, "rev-parse", "HEAD")
    (project / "weights.bin").write_bytes(blob[::-1] + b"\x00\xff")
    (project / "train.py").write_text("print('changed')\n")
    (project / "new_binary.dat").write_bytes(b"\x00\x01\x02" * 100)
    git(project, "add", "new_binary.dat")
    (project / "scratch.txt").write_text("not tracked\n")
    _init(cli)
    assert_ok(cli("env", "snapshot", "--python", venvs["a"], "--project", project))
    g = assert_ok(cli("env", "show", "--json", "proj")).json()["git"]
    assert g["dirty"] is True and g["commit"] == commit
    assert g["diff"]["files"] == 3 and g["diff"]["binary_files"] == 2
    assert g["untracked"] == ["scratch.txt"] and g["untracked_count"] == 1
    # The stored patch brings a clean checkout of the commit to the dirty state, bytes
    # of the binary files included.
    patch = assert_ok(cli("cat", "env/proj", "git/diff.patch")).stdout
    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "-q", str(project), str(clone)], check=True)
    git(clone, "checkout", "-q", commit)
    (tmp_path / "p.patch").write_bytes(patch)
    git(clone, "apply", "--binary", str(tmp_path / "p.patch"))
    for name in ("weights.bin", "train.py", "new_binary.dat"):
        assert (clone / name).read_bytes() == (project / name).read_bytes(), name


def test_unknown_refs(cli: Cli, venvs: dict[str, Path], project: Path, tmp_path: Path) -> None:
    _init(cli)
    assert_one_line_error(cli("env", "show", "nothing"), 4, "none yet")
    _snap(cli, venvs["a"], project)
    assert_one_line_error(cli("env", "show", "nothing"), 4, "unknown", "env/proj")
    assert_one_line_error(cli("env", "show", "proj@v9"), 4, "no 'v9'", "v1")
    assert_one_line_error(cli("env", "diff", "proj@v1", "abcdef0123"), 4)
    data = tmp_path / "data"
    data.mkdir()
    (data / "x.csv").write_text("a,b\n1,2\n")
    assert_ok(cli("commit", data, "--dataset", "clinical"))
    assert_one_line_error(cli("env", "show", "clinical@v1"), 4, "not an environment snapshot")
    res = cli("env", "snapshot", "--python", venvs["a"], "--project", project, "--name", "bad name")
    assert_one_line_error(res, 2, "invalid dataset name")


def test_check_reports_drift(
    cli: Cli, wheels: dict[str, Path], project: Path, tmp_path: Path
) -> None:
    python = make_venv(tmp_path / "venv", [wheels["tiny01"]])
    _init(cli)
    _snap(cli, python, project)
    ok = cli("env", "check", "--project", project, cwd=project)
    assert ok.returncode == 0, ok.describe()
    assert "no differences" in ok.out
    pip_install(python, [wheels["other"]])
    drift = cli("env", "check", "--project", project, "--json", cwd=project)
    assert drift.returncode == 1, drift.describe()
    assert json.loads(drift.stdout)["packages"]["added"] == [{"name": "otherpkg", "version": "1.0"}]
    ignored = cli("env", "check", "proj", "--ignore", "packages", cwd=project)
    assert ignored.returncode == 0, ignored.describe()


def test_export_formats(
    cli: Cli, venvs: dict[str, Path], wheels: dict[str, Path], project: Path, tmp_path: Path
) -> None:
    _init(cli)
    _snap(cli, venvs["a"], project, "--env-allow", "OMP_NUM_THREADS", env={"OMP_NUM_THREADS": "2"})
    req = assert_ok(cli("env", "export", "proj", "--format", "requirements")).out
    lines = [ln for ln in req.splitlines() if not ln.startswith("#")]
    assert lines == [
        "otherpkg @ " + wheels["other"].as_uri() + "#sha256=" + _sha256(wheels["other"]),
        "tinypkg @ " + wheels["tiny01"].as_uri() + "#sha256=" + _sha256(wheels["tiny01"]),
    ]
    out = tmp_path / "docker"
    out.mkdir()
    assert_ok(cli("env", "export", "proj", "-f", "dockerfile", "-o", out))
    dockerfile = (out / "Dockerfile").read_text()
    assert "FROM python:3.11" in dockerfile
    assert "COPY requirements.txt" in dockerfile and "OMP_NUM_THREADS=2" in dockerfile
    assert (out / "requirements.txt").read_text() == req
    res = cli("env", "export", "proj", "--format", "conda")
    assert_one_line_error(res, 2, "not captured from a conda environment")
    assert_one_line_error(cli("env", "export", "proj", "--format", "zip"), 2, "unknown export")


def _sha256(wheel: Path) -> str:
    """The digest of the wheel file itself, not one read back from the export."""
    return hashlib.sha256(wheel.read_bytes()).hexdigest()


def test_probe_runs_on_older_interpreters(tmp_path: Path) -> None:
    here = sys.version_info[:2]
    older = find_python(lambda v: (3, 8) <= v < here)
    if older is None:
        skip_outside_ci(f"needs a Python 3.8 to {here[0]}.{here[1] - 1} interpreter")
    exe, (major, minor) = older
    c = capture(str(exe), tmp_path, environ={})
    assert c.facts["python"]["version"].startswith(f"{major}.{minor}.")
    assert c.facts["git"] is None


def test_api_roundtrip(venvs: dict[str, Path], project: Path, tmp_path: Path) -> None:
    with reprocas.Repo.init(tmp_path / "repo") as repo:
        cap = capture(str(venvs["b"]), project, environ={})
        r = save(repo.store, cap, "env/api")
        rec = load(repo.store, "api")
        assert rec.facts == cap.facts and rec.environment_id == r.environment_id
        assert [h.ref for h in history(repo.store)] == ["env/api@v1"]
        assert repo.verify(read_data=True).ok


def test_gc_and_index_rebuild_keep_environments(
    cli: Cli, venvs: dict[str, Path], project: Path
) -> None:
    _init(cli)
    r = _snap(cli, venvs["a"], project, "--tag", "keep")
    before = assert_ok(cli("env", "show", "proj", "--json")).json()
    gc = assert_ok(cli("gc", "--json")).json()
    assert gc["removed_packs"] == []
    assert_ok(cli("index", "rebuild"))
    after = assert_ok(cli("env", "show", "proj@keep", "--json")).json()
    assert after == before
    log = assert_ok(cli("env", "log", "--json")).json()
    assert [e["id"] for e in log] == [r["id"]]
    assert assert_ok(cli("verify", "--read-data", "--json")).json()["ok"] is True


def test_stored_files_roundtrip_and_dedup(tmp_path: Path) -> None:
    """Lock files and patches of any size go through the chunker and come back exact;
    a second snapshot holding the same bytes adds no chunk data."""
    big = random.Random(3).randbytes(3 << 20) + b"tail" * 100_000
    facts = {"schema": 1, "python": {"prefix": "/x", "site_packages": []}, "packages": []}
    cap = Capture(dict(facts), files={"requirements/big.txt": big}, patch=b"diff --git a b\n")
    with reprocas.Repo.init(tmp_path / "repo") as repo:
        first = save(repo.store, cap, "env/one")
        assert repo.cat(first.ref, "project/requirements/big.txt") == big
        assert repo.cat(first.ref, "git/diff.patch") == cap.patch
        facts2 = {**facts, "packages": [{"name": "x", "version": "1"}]}
        second = save(repo.store, Capture(facts2, files=cap.files, patch=cap.patch), "env/two")
        assert second.created and second.new_bytes < 16 << 10  # objects only, no chunks
        assert first.new_bytes > 3 << 20
        assert repo.verify(read_data=True).ok
