"""Code outside git is stored with the run and restored by replay (issue 14, item 3):
an untracked module a script imports, a project that is no git repository, the size
limits, ignored files and junk left out, secrets redacted — real git repositories,
real scripts, the real command."""

from __future__ import annotations

import json
import shutil
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

import reprocas
from reprocas.provenance.names import load_run, resolve_run
from reprocas.provenance.run_store import tree_files
from tests.integration._helpers import assert_ok, assert_one_line_error, git
from tests.integration.conftest import Cli

PY = sys.executable

TRAIN = textwrap.dedent(
    """
    import json
    from helpers import scale
    from pkg.more import offset
    with open("result.txt", "w") as f:
        f.write(f"{scale(2) + offset()}\\n")
    with open("metrics.json", "w") as f:
        json.dump({"score": scale(2) + offset()}, f)
    """
)


def _run(cli: Cli, cwd: Path, *args: str) -> tuple[dict[str, Any], str]:
    res = assert_ok(cli("run", "--json", "--env", "none", *args, cwd=cwd))
    return json.loads(res.stdout), res.err


def _replay(cli: Cli, cwd: Path, *args: str) -> dict[str, Any]:
    res = assert_ok(cli("replay", "--json", *args, cwd=cwd))
    out: dict[str, Any] = json.loads(res.stdout)
    return out


def _stored(repo_path: Path, ref: str) -> set[str]:
    """The paths below code/files/ in the run's own tree."""
    with reprocas.Repo.open(repo_path) as repo, repo.store.index.read() as txn:
        run = load_run(repo.store, txn, resolve_run(repo.store, txn, ref).id)
        assert run.root is not None
        files = tree_files(repo.store, txn, run.root.raw)
    return {p.removeprefix("code/files/") for p in files if p.startswith("code/files/")}


ARGS = ["-n", "train", "-o", "result.txt", "--metrics", "metrics.json"]


def test_an_untracked_module_is_stored_and_replays_from_a_fresh_clone(
    cli: Cli, tmp_path: Path, repo_path: Path
) -> None:
    proj = tmp_path / "proj"
    (proj / "ml").mkdir(parents=True)
    (proj / "ml/train.py").write_text(TRAIN)
    (proj / ".gitignore").write_text("result.txt\nmetrics.json\nscratch.log\n")
    git(proj, "init", "-q")
    git(proj, "add", "-A")
    git(proj, "commit", "-q", "-m", "the script only")
    # never git-added: the script cannot run without them
    (proj / "ml/helpers.py").write_text("def scale(x):\n    return x * 21\n")
    (proj / "ml/pkg").mkdir()
    (proj / "ml/pkg/__init__.py").write_text("")
    (proj / "ml/pkg/more.py").write_text("def offset():\n    return 0.5\n")
    (proj / "notes.md").write_text("at the top\n")
    (proj / "ml/scratch.log").write_text("ignored by git: not code\n")
    (proj / "ml/__pycache__").mkdir()
    (proj / "ml/__pycache__/helpers.cpython-312.pyc").write_bytes(b"\0junk")
    assert_ok(cli("init"))

    rec, err = _run(cli, proj / "ml", *ARGS, "--", PY, "train.py")
    assert (proj / "ml/result.txt").read_text() == "42.5\n"
    files = rec["code"]["files"]
    assert files["count"] == 4 and files["skipped"] == [] and files["base"] == "git toplevel"
    assert "warning" not in err
    assert _stored(repo_path, "train#1") == {
        "ml/helpers.py",
        "ml/pkg/__init__.py",
        "ml/pkg/more.py",
        "notes.md",
    }  # not the ignored log, not __pycache__, not the outputs

    # a colleague's fresh clone elsewhere; the original working tree is gone
    clone = tmp_path / "colleague" / "proj"
    clone.parent.mkdir()
    git(clone.parent, "clone", "-q", str(proj), str(clone))
    shutil.rmtree(proj)
    r = _replay(cli, clone, "train")
    assert r["verdict"] == "identical", r["differences"]
    assert r["code"]["source"] == "git" and r["code"]["cwd"] == "ml"
    wd = Path(r["workdir"])
    assert (wd / "ml/helpers.py").read_text() == "def scale(x):\n    return x * 21\n"
    assert (wd / "notes.md").read_text() == "at the top\n"
    assert not (wd / "ml/scratch.log").exists() and not (wd / "ml/__pycache__").exists()
    assert (wd / "ml/result.txt").read_text() == "42.5\n"
    # the replay carries the files: a replay of the replay restores them too
    assert _stored(repo_path, "train#2") == _stored(repo_path, "train#1")
    again = _replay(cli, clone, "train#2")
    assert again["verdict"] == "identical", again["differences"]


def test_a_script_outside_git_is_stored_and_replays(
    cli: Cli, tmp_path: Path, repo_path: Path
) -> None:
    proj = tmp_path / "plain"
    proj.mkdir()
    (proj / "train.py").write_text(TRAIN)
    (proj / "helpers.py").write_text("def scale(x):\n    return x * 2\n")
    (proj / "pkg").mkdir()
    (proj / "pkg/__init__.py").write_text("")
    (proj / "pkg/more.py").write_text("def offset():\n    return 1\n")
    run_sh = proj / "run.sh"
    run_sh.write_text("#!/bin/sh\nexec python3 train.py\n")
    run_sh.chmod(0o755)
    for junk in (".venv/lib/site.py", "node_modules/x/index.js", ".git_not/keep.txt"):
        (proj / junk).parent.mkdir(parents=True, exist_ok=True)
        (proj / junk).write_text("x\n")
    (proj / "old.pyc").write_bytes(b"\0")
    (proj / "result.txt").write_text("a stale output\n")
    data = tmp_path / "data"
    data.mkdir()
    (data / "rows.txt").write_text("1\n2\n")
    assert_ok(cli("init"))
    assert_ok(cli("commit", data, "-d", "rows"))

    rec, err = _run(cli, proj, *ARGS, "-i", "rows@v1", "--", PY, "train.py")
    assert rec["code"]["git"] is False and rec["code"]["commit"] is None
    assert "warning" not in err
    assert _stored(repo_path, "train#1") == {
        "train.py",
        "helpers.py",
        "pkg/__init__.py",
        "pkg/more.py",
        "run.sh",
        ".git_not/keep.txt",
    }  # not the input checkout, the outputs, .venv, node_modules or *.pyc
    assert rec["code"]["files"]["executable"] == ["run.sh"]

    r = _replay(cli, tmp_path, "train")
    assert r["verdict"] == "identical", r["differences"]
    wd = Path(r["workdir"])
    assert (wd / "train.py").read_text() == TRAIN and (wd / "result.txt").read_text() == "5\n"
    assert (wd / "run.sh").stat().st_mode & 0o111
    assert not (wd / ".venv").exists()
    assert any("did not run in a git repository" in n for n in r["notes"])


def test_the_size_limits_warn_and_name_what_was_not_stored(
    cli: Cli, tmp_path: Path, repo_path: Path
) -> None:
    proj = tmp_path / "plain"
    proj.mkdir()
    (proj / "train.py").write_text(TRAIN)
    (proj / "helpers.py").write_text("def scale(x):\n    return x\n")
    (proj / "pkg").mkdir()
    (proj / "pkg/__init__.py").write_text("")
    (proj / "pkg/more.py").write_text("def offset():\n    return 0\n")
    (proj / "weights.bin").write_bytes(b"\1" * (2 * 1024 * 1024))
    for i in range(3):
        (proj / f"table{i}.csv").write_text("x\n" * 600)  # 1200 bytes each
    assert_ok(cli("init"))

    rec, err = _run(cli, proj, *ARGS, "--code-limit", "2KiB", "--", PY, "train.py")
    files = rec["code"]["files"]
    skipped = {s["path"]: s["reason"] for s in files["skipped"]}
    assert "per-file limit" in skipped["weights.bin"]
    assert "--code-file-limit" in skipped["weights.bin"]
    # in path order: helpers.py, pkg/*, table0.csv fit in 2 KiB; table1, table2 do not
    assert {p for p, why in skipped.items() if "total limit" in why} == {
        "table1.csv",
        "table2.csv",
    }
    assert "train.py" in _stored(repo_path, "train#1")
    assert "warning: 3 file(s) of the code outside git not stored" in err
    assert "weights.bin (2.0 MiB): over the 1.0 MiB per-file limit" in err
    assert "table1.csv (1.2 KiB): over the 2.0 KiB total limit (--code-limit)" in err

    r = _replay(cli, tmp_path, "train")  # the script does not need them
    assert r["verdict"] == "identical"
    note = next(n for n in r["notes"] if "not stored when the run was recorded" in n)
    assert "weights.bin" in note and "table2.csv" in note

    # raised limits store them all
    rec, err = _run(
        cli, proj, *ARGS, "--code-limit", "5MiB", "--code-file-limit", "3MiB", "--", PY, "train.py"
    )
    assert rec["code"]["files"]["skipped"] == [] and "warning" not in err
    assert "weights.bin" in _stored(repo_path, "train#3")
    res = cli("run", "--code-limit", "lots", "--", PY, "-c", "0", cwd=proj)
    assert_one_line_error(res, 2, "--code-limit", "lots")


def test_secrets_in_stored_code_are_redacted_and_warned_about(cli: Cli, tmp_path: Path) -> None:
    proj = tmp_path / "plain"
    proj.mkdir()
    (proj / "conf.py").write_text('NAME = "x"\nURL = "https://alice:s3cret@db.example.org/x"\n')
    (proj / "show.py").write_text("import conf\nopen('result.txt', 'w').write(conf.NAME)\n")
    assert_ok(cli("init"))
    rec, err = _run(cli, proj, "-n", "s", "-o", "result.txt", "--", PY, "show.py")
    assert "reprocas: warning: secret redacted in conf.py line 2 (" in err
    [found] = rec["code"]["files"]["redacted"]
    assert found["path"] == "conf.py" and found["line"] == 2
    r = _replay(cli, tmp_path, "s")
    stored = (Path(r["workdir"]) / "conf.py").read_text()
    assert "s3cret" not in stored and "db.example.org" in stored
    assert stored.startswith('NAME = "x"\n')
    assert r["verdict"] == "identical"
    assert any("secrets were redacted" in n and "conf.py line 2" in n for n in r["notes"])
    # --allow-secrets keeps them, and says so
    rec, err = _run(
        cli, proj, "-n", "s", "--allow-secrets", "-o", "result.txt", "--", PY, "show.py"
    )
    assert "secret kept in conf.py line 2" in err
    files = rec["code"]["files"]
    assert files["secrets_allowed"] and files["secrets_kept"][0]["path"] == "conf.py"
    r = _replay(cli, tmp_path, "s#3")
    assert "s3cret" in (Path(r["workdir"]) / "conf.py").read_text()


@pytest.mark.parametrize("where", ["git", "plain"])
def test_a_symbolic_link_is_named_not_dropped(cli: Cli, tmp_path: Path, where: str) -> None:
    proj = tmp_path / "p"
    proj.mkdir()
    (proj / "main.py").write_text("open('result.txt', 'w').write('ok')\n")
    if where == "git":
        git(proj, "init", "-q")
        git(proj, "add", "-A")
        git(proj, "commit", "-q", "-m", "m")
    (proj / "link.py").symlink_to("main.py")
    assert_ok(cli("init"))
    rec, err = _run(cli, proj, "-n", "l", "--", PY, "main.py")
    assert rec["code"]["files"]["skipped"] == [
        {"path": "link.py", "bytes": None, "reason": "a symbolic link"}
    ]
    assert "link.py: a symbolic link" in err


def test_a_run_recorded_with_the_python_api_stores_its_script(
    cli: Cli, tmp_path: Path, repo_path: Path
) -> None:
    import subprocess

    from tests.integration._helpers import clean_env

    proj = tmp_path / "plain"
    proj.mkdir()
    script = textwrap.dedent(
        """
        import sys
        import reprocas
        with reprocas.run(name="api", repo=sys.argv[1], env="none") as run:
            open("model.txt", "w").write("m")
            run.output("model.txt")
        """
    )
    (proj / "s.py").write_text(script)
    (proj / "util.py").write_text("X = 1\n")
    assert_ok(cli("init"))
    subprocess.run(
        [PY, "s.py", str(repo_path)], cwd=proj, env=clean_env(), check=True, capture_output=True
    )
    assert _stored(repo_path, "api#1") == {"s.py", "util.py"}  # not the output


def test_run_diff_tells_when_the_code_outside_git_changed(cli: Cli, tmp_path: Path) -> None:
    proj = tmp_path / "plain"
    proj.mkdir()
    (proj / "main.py").write_text("import helpers\n")
    (proj / "helpers.py").write_text("A = 1\n")
    assert_ok(cli("init"))
    _run(cli, proj, "-n", "d", "--", PY, "main.py")
    _run(cli, proj, "-n", "d", "--", PY, "main.py")
    (proj / "helpers.py").write_text("A = 2\n")
    _run(cli, proj, "-n", "d", "--", PY, "main.py")
    assert assert_ok(cli("diff", "d#1", "d#2", "--json")).json()["code"]["same_files"] is True
    assert assert_ok(cli("diff", "d#2", "d#3", "--json")).json()["code"]["same_files"] is False
    assert "the files outside git differ" in assert_ok(cli("diff", "d#2", "d#3")).out
    events = assert_ok(cli("log", "--timeline", "d", "--json")).json()
    code = [e for e in events if e["kind"] == "code"]
    assert [(e["run"], e["files_changed"], e["commit_changed"]) for e in code] == [
        ("d#3", True, False)
    ]
    assert "d#3: the files outside git differ" in assert_ok(cli("log", "--timeline", "d")).out


def test_what_cannot_be_stored_is_named_a_nested_repository_and_a_huge_directory(
    tmp_path: Path,
) -> None:
    from reprocas.provenance.run_code import MAX_WALK, capture_code

    proj = tmp_path / "proj"
    proj.mkdir()
    (proj / "main.py").write_text("0\n")
    git(proj, "init", "-q")
    git(proj, "add", "-A")
    git(proj, "commit", "-q", "-m", "m")
    (proj / "vendor").mkdir()
    (proj / "vendor/lib.py").write_text("1\n")
    git(proj / "vendor", "init", "-q")
    (proj / "new.py").write_text("2\n")
    got = capture_code(proj, {"commit": "x"}, exclude=[])
    assert set(got.files) == {"code/files/new.py"}
    assert got.code is not None
    assert got.code["files"]["skipped"] == [
        {"path": "vendor/", "bytes": None, "reason": "a nested git repository"}
    ]
    assert any("vendor/: a nested git repository" in w for w in got.warnings)

    big = tmp_path / "home"
    (big / "many").mkdir(parents=True)
    for i in range(MAX_WALK + 5):
        (big / "many" / f"{i:05d}.txt").touch()
    got = capture_code(big, None, exclude=[])
    assert len(got.files) == MAX_WALK
    assert got.code is not None and got.code["git"] is False
    [stop] = got.code["files"]["skipped"]
    assert f"only the first {MAX_WALK} files" in stop["reason"]
    assert any(f"only the first {MAX_WALK} files" in w for w in got.warnings)
