"""A failed commit leaves no orphan pack or temporary file behind (issue 13, item 10):
a source file that vanishes while the commit runs, and a full disk (a real 8 MiB
tmpfs) hit three times in a row."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import reprocas
from tests.integration._helpers import (
    CliResult,
    assert_ok,
    assert_one_line_error,
    clean_env,
    cli_argv,
    log_json,
    pack_files,
    run_cli,
    tmp_files,
    verify_ok,
)
from tests.integration._reading import random_file, wait_reading


def _tree_bytes(d: Path) -> int:
    return sum(p.stat().st_size for p in d.rglob("*") if p.is_file())


def test_vanished_file_leaves_no_pack(repo: reprocas.Repo, repo_path: Path, tmp_path: Path) -> None:
    """b.bin is deleted while the commit is still reading a.bin (96 MiB: packs of it
    are sealed by then); the commit fails naming b.bin and removes every pack it wrote."""
    src = tmp_path / "src"
    random_file(src / "a.bin", 96 << 20)
    (src / "b.bin").write_bytes(os.urandom(1000))
    (tmp_path / "first.txt").write_text("first\n")
    repo.commit(tmp_path / "first.txt", "first")
    before = pack_files(repo_path)
    proc = subprocess.Popen(
        cli_argv(["commit", src, "-d", "s"], repo_path),
        env=clean_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
    )
    wait_reading(proc, src / "a.bin", 72 << 20)
    (src / "b.bin").unlink()
    out, err = proc.communicate(timeout=120)
    res = CliResult(("commit",), proc.returncode, out, err)
    assert_one_line_error(res, 3, str(src / "b.bin"), "vanished")
    assert pack_files(repo_path) == before
    assert tmp_files(repo_path) == []
    assert [e["ref"] for e in log_json(repo_path)] == ["first@v1"]
    gc = assert_ok(run_cli("gc", "--json", repo=repo_path)).json()
    assert gc["removed_packs"] == [] and gc["removed_tmp"] == [], gc
    verify_ok(repo_path, read_data=True)


def test_disk_full_retries_do_not_accumulate(tmpfs: Path, tmp_path: Path) -> None:
    """The repository on an 8 MiB tmpfs, a 12 MiB source elsewhere: each of three
    attempts fails with disk full, and after each the packs and tmp directories hold
    exactly what they held before the first (no growth); then a commit that fits works."""
    repo_path = tmpfs / "repo"
    with reprocas.Repo.init(repo_path, pack_size=1 << 20) as repo:
        (tmp_path / "v1.bin").write_bytes(os.urandom(200_000))
        repo.commit(tmp_path / "v1.bin", "ds")
    src = tmp_path / "big"
    for i in range(12):
        random_file(src / f"part-{i:02}.bin", 1 << 20)
    before = pack_files(repo_path)
    packs_bytes = _tree_bytes(repo_path / "packs")
    for _ in range(3):
        res = run_cli("commit", src, "-d", "ds", repo=repo_path)
        assert_one_line_error(res, 5, "disk full")
        assert pack_files(repo_path) == before
        assert _tree_bytes(repo_path / "packs") == packs_bytes
        assert tmp_files(repo_path) == []
    assert [e["ref"] for e in log_json(repo_path)] == ["ds@v1"]
    verify_ok(repo_path, read_data=True)
    (tmp_path / "v2.bin").write_bytes(os.urandom(300_000))
    assert_ok(run_cli("commit", tmp_path / "v2.bin", "-d", "ds", repo=repo_path))
    verify_ok(repo_path, read_data=True)
