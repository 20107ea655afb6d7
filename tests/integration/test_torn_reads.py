"""A file that changes while it is committed is never stored as a state it never had
(issue 13, item 4): real commits of a large file, changed by this test while the commit
process is seen reading it (its descriptor's offset in /proc)."""

from __future__ import annotations

import os
import subprocess
import threading
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
from tests.integration._reading import random_file, read_position, wait_reading

SIZE = 160 << 20


def _commit(repo_path: Path, *args: str | os.PathLike[str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        cli_argv(["commit", *args], repo_path),
        env=clean_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
    )


def _result(proc: subprocess.Popen[bytes]) -> CliResult:
    out, err = proc.communicate(timeout=120)
    return CliResult(("commit",), proc.returncode, out, err)


class _Scribbler(threading.Thread):
    """Rewrites the first byte of a file every few milliseconds until stopped (same
    size; only its times change), counting what it wrote while ``proc`` read."""

    def __init__(self, path: Path, proc: subprocess.Popen[bytes]) -> None:
        super().__init__(daemon=True)
        self.path = path
        self.proc = proc
        self.stop = threading.Event()
        self.writes_during_read = 0

    def run(self) -> None:
        fd = os.open(self.path, os.O_WRONLY)
        try:
            n = 0
            while not self.stop.is_set():
                os.pwrite(fd, bytes([n % 256]), 0)
                if read_position(self.proc.pid, self.path):
                    self.writes_during_read += 1
                n += 1
                self.stop.wait(0.005)
        finally:
            os.close(fd)


def test_truncated_while_read_stores_the_state_it_was_left_in(
    repo: reprocas.Repo, repo_path: Path, tmp_path: Path
) -> None:
    """The commit's reader is a third of the way through when the file is truncated:
    the change is seen, the file is read again, and the version holds the truncated
    file (a state it really had), not the torn mix of the two."""
    big = tmp_path / "big.bin"
    random_file(big, SIZE)
    proc = _commit(repo_path, big, "-d", "s")
    pos = wait_reading(proc, big, 32 << 20)
    os.truncate(big, 1_000_000)
    still = read_position(proc.pid, big)
    # The truncation happened in the middle of the read: the reader had not reached the
    # end, and still holds the file open afterwards.
    assert pos < SIZE and still is not None, (pos, still)
    assert_ok(_result(proc))
    out_file = tmp_path / "out.bin"
    with open(out_file, "wb") as f:
        repo.cat_to("s@v1", "big.bin", f.fileno())
    assert out_file.read_bytes() == big.read_bytes()
    assert repo.resolve("s@v1").snapshot.logical_bytes == 1_000_000
    verify_ok(repo_path, read_data=True)


def test_file_that_keeps_changing_fails_naming_it_and_commits_nothing(
    repo: reprocas.Repo, repo_path: Path, tmp_path: Path
) -> None:
    """Written to during both reads: exit 3 with one line naming the file and
    --allow-changing; no version, no pack and no temporary file is left."""
    src = tmp_path / "src"
    random_file(src / "sub" / "big.bin", SIZE)
    (src / "small.txt").write_text("hello\n")
    repo.commit(src / "small.txt", "other")
    before = pack_files(repo_path)
    proc = _commit(repo_path, src, "-d", "s")
    scribbler = _Scribbler(src / "sub" / "big.bin", proc)
    wait_reading(proc, src / "sub" / "big.bin", 16 << 20)
    scribbler.start()
    res = _result(proc)
    scribbler.stop.set()
    scribbler.join()
    assert scribbler.writes_during_read > 0
    assert_one_line_error(
        res, 3, str(src / "sub" / "big.bin"), "changed while it was being read", "--allow-changing"
    )
    assert [e["ref"] for e in log_json(repo_path)] == ["other@v1"]
    assert pack_files(repo_path) == before
    assert tmp_files(repo_path) == []
    verify_ok(repo_path, read_data=True)


def test_allow_changing_stores_what_was_read_and_records_it(
    repo: reprocas.Repo, repo_path: Path, tmp_path: Path
) -> None:
    """With --allow-changing the version is made, the file is named in a warning and in
    the snapshot's changed_during_read, and it is not put in the files cache."""
    src = tmp_path / "src"
    random_file(src / "sub" / "big.bin", SIZE)
    (src / "small.txt").write_text("hello\n")
    proc = _commit(repo_path, src, "-d", "s", "--allow-changing", "--json")
    scribbler = _Scribbler(src / "sub" / "big.bin", proc)
    wait_reading(proc, src / "sub" / "big.bin", 16 << 20)
    scribbler.start()
    res = assert_ok(_result(proc))
    scribbler.stop.set()
    scribbler.join()
    assert scribbler.writes_during_read > 0
    assert "warning: sub/big.bin changed while it was being read" in res.err
    assert res.json()["changed_during_read"] == ["sub/big.bin"]
    snap = repo.resolve("s@v1").snapshot
    assert snap.extra["changed_during_read"] == ["sub/big.bin"]
    assert snap.logical_bytes == SIZE + 6
    verify_ok(repo_path, read_data=True)
    # Committed again, now that nothing writes to it: read again (the changed file was
    # not put in the files cache) and stored without the mark.
    again = assert_ok(run_cli("commit", src, "-d", "s", "--json", repo=repo_path)).json()
    assert again["changed_during_read"] == []
    assert "changed_during_read" not in repo.resolve(again["ref"]).snapshot.extra
    assert repo.cat(again["ref"], "sub/big.bin") == (src / "sub" / "big.bin").read_bytes()
