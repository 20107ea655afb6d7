"""Push, clone and pull through a remote (issue 18), by URL only (any backend)."""

from __future__ import annotations

import random
from pathlib import Path

from tests.integration._helpers import run_cli


def _csv(path: Path, rows: int, seed: int) -> None:
    r = random.Random(seed)
    path.write_text("".join(f"{i},{r.random():.6f},{r.choice('abc')}\n" for i in range(rows)))


def _init(repo: Path) -> None:
    assert run_cli("init", "--format", "3", repo=repo).returncode == 0


def test_round_trip_five_versions(tmp_path: Path, remote_url: tuple[str, list[str]]) -> None:
    url, opts = remote_url
    repo, data = tmp_path / "a", tmp_path / "d.csv"
    _init(repo)
    for n in range(5):
        _csv(data, 3000 + 500 * n, n)
        assert run_cli("commit", data, "--dataset", "clin", repo=repo).returncode == 0
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
        a = run_cli("cat", f"clin@v{n}", "d.csv", repo=repo)
        b = run_cli("cat", f"clin@v{n}", "d.csv", repo=clone)
        assert a.returncode == 0 and a.stdout == b.stdout
        ja = run_cli("show", f"clin@v{n}", "--json", repo=repo).json()
        jb = run_cli("show", f"clin@v{n}", "--json", repo=clone).json()
        assert ja["id"] == jb["id"]


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
