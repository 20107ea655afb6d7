"""Progress bars: drawn on a terminal (a real pseudo-terminal here), never with --json
or when stderr is not a terminal."""

from __future__ import annotations

import os
import select
import subprocess
from pathlib import Path

import pytest

import reprocas
from tests.integration._helpers import assert_ok, clean_env, cli_argv, run_cli

# No waiting: a bar appears at once (by default only after a second of work).
NOW = {"REPROCAS_PROGRESS_AFTER": "0", "TERM": "xterm-256color", "COLUMNS": "120"}


def _on_pty(repo: Path, *args: str | os.PathLike[str]) -> tuple[int, str, bytes]:
    """Run reprocas with stderr on a pseudo-terminal: (exit code, what the terminal
    showed, stdout)."""
    master, slave = os.openpty()
    try:
        proc = subprocess.Popen(
            cli_argv(list(args), repo),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=slave,
            env=clean_env(NOW),
        )
        os.close(slave)
        shown = bytearray()
        while True:
            ready, _, _ = select.select([master], [], [], 0.1)
            if ready:
                try:
                    chunk = os.read(master, 65536)
                except OSError:  # EIO: the last writer closed the terminal
                    break
                if not chunk:
                    break
                shown += chunk
            elif proc.poll() is not None:
                break
        assert proc.stdout is not None
        out = proc.stdout.read()
        code = proc.wait(timeout=60)
    finally:
        os.close(master)
    return code, shown.decode("utf-8", "replace"), out


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    src = tmp_path / "src"
    src.mkdir()
    for i in range(30):
        (src / f"f{i:02d}.bin").write_bytes(os.urandom(20_000))
    return src


def test_commit_draws_a_bar_with_files_and_bytes_on_a_terminal(
    repo: reprocas.Repo, repo_path: Path, tree: Path
) -> None:
    repo.close()
    code, shown, out = _on_pty(repo_path, "commit", tree, "-d", "ds")
    assert code == 0, shown
    assert "committing" in shown and "/30 files" in shown, shown
    assert "KiB" in shown, shown  # bytes, too
    assert b"ds@v1" in out  # the result still goes to stdout, the bar to the terminal


def test_no_bar_with_json_or_without_a_terminal(
    repo: reprocas.Repo, repo_path: Path, tree: Path
) -> None:
    repo.close()
    code, shown, out = _on_pty(repo_path, "commit", tree, "-d", "ds", "--json")
    assert code == 0, shown
    assert b'"ref":"ds@v1"' in out
    assert "committing" not in shown and "files" not in shown, shown
    (tree / "f00.bin").write_bytes(b"changed")
    piped = assert_ok(run_cli("commit", tree, "-d", "ds", repo=repo_path, env=NOW))
    assert "committing" not in piped.err and "\x1b[" not in piped.err, piped.err


def test_checkout_verify_and_status_draw_bars(
    repo: reprocas.Repo, repo_path: Path, tree: Path, tmp_path: Path
) -> None:
    repo.close()
    assert_ok(run_cli("commit", tree, "-d", "ds", repo=repo_path))
    code, shown, _ = _on_pty(repo_path, "checkout", "ds", tmp_path / "out")
    assert code == 0 and "checking out" in shown and "/30 files" in shown, shown
    code, shown, _ = _on_pty(repo_path, "verify", "--read-data")
    assert code == 0 and "verifying" in shown and "pack" in shown, shown
    (tree / "f01.bin").touch()  # the files cache no longer vouches for it: read again
    code, shown, _ = _on_pty(repo_path, "status", tree)
    assert code == 0 and "comparing" in shown and "/30 files" in shown, shown
    code, shown, _ = _on_pty(repo_path, "index", "rebuild")
    assert code == 0 and "rebuilding" in shown and "pack" in shown, shown
    code, shown, out = _on_pty(repo_path, "gc")
    assert code == 0 and "checking packs" in shown and "pack" in shown, shown
    code, shown, out = _on_pty(repo_path, "gc", "--json")
    assert code == 0 and "checking packs" not in shown, shown
    code, shown, out = _on_pty(repo_path, "status", tree, "--json")
    assert code == 0 and "comparing" not in shown, shown
    assert b'"clean":true' in out


def test_prune_draws_a_bar_while_it_repacks(
    repo: reprocas.Repo, repo_path: Path, tmp_path: Path
) -> None:
    src = tmp_path / "src"
    src.mkdir()
    (src / "big.bin").write_bytes(os.urandom(1_000_000))
    for text in ("a", "b"):
        (src / "small.txt").write_text(text * 100)
        repo.commit(src, "ds")
    repo.close()
    assert_ok(run_cli("forget", "--keep-last", "1", repo=repo_path))
    assert_ok(run_cli("config", "set", "retention.repack-min-free", "0", repo=repo_path))
    code, shown, out = _on_pty(repo_path, "prune")
    assert code == 0, shown
    assert b"repacked 1" in out
    assert "repacking" in shown and "/1 pack " in shown, shown


def test_diff_by_key_draws_a_bar_over_the_columns(
    repo: reprocas.Repo, repo_path: Path, tmp_path: Path
) -> None:
    src = tmp_path / "tab"
    src.mkdir()
    rows = [f"{i},{i * 2},x{i}" for i in range(200)]
    for edit in (False, True):
        if edit:
            rows[5] = "5,11,changed"
        (src / "t.csv").write_text("id,a,b\n" + "\n".join(rows) + "\n")
        repo.commit(src, "tab")
    repo.close()
    code, shown, out = _on_pty(repo_path, "diff", "tab@v1", "tab@v2", "--key", "id")
    assert code == 0, shown
    assert "comparing rows" in shown and "/2 columns" in shown, shown
    assert b"changed" in out
    code, shown, out = _on_pty(repo_path, "diff", "tab@v1", "tab@v2", "--key", "id", "--json")
    assert code == 0 and "comparing rows" not in shown, shown


def test_export_table_draws_a_bar(repo: reprocas.Repo, repo_path: Path, tmp_path: Path) -> None:
    src = tmp_path / "tab"
    src.mkdir()
    (src / "t.csv").write_text("id,a\n" + "".join(f"{i},{i * 3}\n" for i in range(500)))
    repo.commit(src, "tab")
    repo.close()
    for fmt in ("parquet", "arrow", "csv"):
        to = tmp_path / f"out.{fmt}"
        code, shown, _ = _on_pty(repo_path, "export-table", "tab", "t.csv", "--to", to)
        assert code == 0 and "exporting" in shown and "1/1 table" in shown, shown
        back = assert_ok(run_cli("export-table", "tab", "t.csv", "--to", to, "--force",
                                 "--json", repo=repo_path))  # fmt: skip
        assert back.json()["rows"] == 500
        assert "exporting" not in back.err


def test_rm_purge_draws_a_bar(repo: reprocas.Repo, repo_path: Path, tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    for _ in range(2):
        (src / "data.bin").write_bytes(os.urandom(300_000))
        repo.commit(src, "ds")
    repo.close()
    code, shown, _ = _on_pty(repo_path, "rm", "ds@v1", "--purge")
    assert code == 0, shown
    assert "purging" in shown and "pack" in shown, shown
    assert_ok(run_cli("verify", "--read-data", repo=repo_path))
