"""Push, clone and pull through a remote (issue 18), by URL only (any backend)."""

from __future__ import annotations

import random
import shutil
import sys
from pathlib import Path

from tests.integration._helpers import assert_ok, run_cli
from tests.integration.trees import describe, generate_tree, mutate_tree


def _csv(path: Path, rows: int, seed: int) -> None:
    r = random.Random(seed)
    path.write_text("".join(f"{i},{r.random():.6f},{r.choice('abc')}\n" for i in range(rows)))


def _init(repo: Path) -> None:
    assert run_cli("init", "--format", "3", repo=repo).returncode == 0


def test_round_trip_five_versions(tmp_path: Path, remote_url: tuple[str, list[str]]) -> None:
    """Five versions of a tree, runs that read them, environment snapshots: pushed,
    cloned into a fresh directory; every ref checks out byte-identically, ids equal,
    `verify --read-data` passes."""
    url, opts = remote_url
    repo, data, project = tmp_path / "a", tmp_path / "data", tmp_path / "project"
    _init(repo)
    generate_tree(data, 40)
    for n in range(5):
        if n == 2:
            mutate_tree(data, 41)  # the ways a dataset changes, once
        _csv(data / "d.csv", 3000 + 500 * n, n)
        assert run_cli("commit", data, "--dataset", "clin", repo=repo).returncode == 0
    project.mkdir()
    (project / "count.py").write_text(
        "import pathlib, sys\n"
        "n = len(pathlib.Path('inputs/d.csv').read_text().splitlines())\n"
        "pathlib.Path('out').mkdir(exist_ok=True)\n"
        "pathlib.Path('out/n.txt').write_text(str(n))\n"
    )
    for v in (2, 5):
        shutil.rmtree(project / "inputs", ignore_errors=True)
        assert_ok(run_cli("run", "-n", "count", "--env", "none", "-i", f"clin@v{v}=inputs",
                          "-o", "out", "--", sys.executable, "count.py",
                          repo=repo, cwd=project))  # fmt: skip
    assert_ok(run_cli("env", "snapshot", "--project", project, "--name", "lab", repo=repo))
    assert run_cli("remote", "add", "origin", url, *opts, repo=repo).returncode == 0
    first = run_cli("push", "--json", repo=repo).json()
    assert first["uploaded_packs"] >= 1
    again = run_cli("push", "--json", repo=repo).json()
    assert again["uploaded_packs"] == 0 and again["uploaded_bytes"] == 0
    clone = tmp_path / "b"
    out = run_cli("clone", url, clone, *opts, "--json", repo=None).json()
    assert out["downloaded_packs"] >= 1
    assert run_cli("verify", "--read-data", repo=clone).returncode == 0
    for n in range(1, 6):
        ref = f"clin@v{n}"
        ja = run_cli("show", ref, "--json", repo=repo).json()
        jb = run_cli("show", ref, "--json", repo=clone).json()
        assert (ja["id"], ja["content_id"]) == (jb["id"], jb["content_id"])
        for side, src in (("a", repo), ("b", clone)):
            assert_ok(run_cli("checkout", ref, tmp_path / f"co-{side}-{n}", repo=src))
        assert describe(tmp_path / f"co-a-{n}") == describe(tmp_path / f"co-b-{n}")
    runs_a = run_cli("runs", "--json", repo=repo).json()
    runs_b = run_cli("runs", "--json", repo=clone).json()
    assert [(r["ref"], r["id"]) for r in runs_a] == [(r["ref"], r["id"]) for r in runs_b]
    assert len(runs_a) == 2
    for r in runs_a:  # a run's outputs check out the same, and so does its lineage
        outs_a = run_cli("lineage", r["ref"], "--json", repo=repo).json()
        outs_b = run_cli("lineage", r["ref"], "--json", repo=clone).json()
        assert outs_a == outs_b
    env_a = run_cli("env", "show", "env/lab@v1", "--json", repo=repo).json()
    env_b = run_cli("env", "show", "env/lab@v1", "--json", repo=clone).json()
    assert env_a == env_b


def test_format2_refused(tmp_path: Path, remote_url: tuple[str, list[str]]) -> None:
    url, opts = remote_url
    repo = tmp_path / "a"
    assert run_cli("init", "--format", "2", repo=repo).returncode == 0
    r = run_cli("remote", "add", "origin", url, *opts, repo=repo)
    assert r.returncode != 0 and "reprocas upgrade" in r.err


def test_second_writer_renumbered(tmp_path: Path, remote_url: tuple[str, list[str]]) -> None:
    url, opts = remote_url
    a, data = tmp_path / "a", tmp_path / "d.csv"
    _init(a)
    _csv(data, 2000, 1)
    assert run_cli("commit", data, "--dataset", "clin", repo=a).returncode == 0
    assert run_cli("remote", "add", "origin", url, *opts, repo=a).returncode == 0
    assert run_cli("push", repo=a).returncode == 0
    b = tmp_path / "b"
    assert run_cli("clone", url, b, *opts, repo=None).returncode == 0
    for repo, seed in ((a, 2), (b, 3)):
        _csv(data, 2100, seed)
        assert run_cli("commit", data, "--dataset", "clin", repo=repo).returncode == 0
    assert run_cli("push", repo=a).returncode == 0
    pb = run_cli("push", "--json", repo=b).json()
    assert [r["remote_ref"] for r in pb["refs"] if r["status"] == "renumbered"] == [
        "ds:clin:v:0000000003"
    ]
    c = tmp_path / "c"
    assert run_cli("clone", url, c, *opts, repo=None).returncode == 0
    assert run_cli("verify", "--read-data", repo=c).returncode == 0
    for n, src in ((2, a), (3, b)):
        want = run_cli("show", f"clin@v{n}", "--json", repo=src).json()["id"]
        assert run_cli("show", f"clin@v{n}", "--json", repo=c).json()["id"] == want
