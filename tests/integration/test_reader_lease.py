"""Readers racing prune (issue 13, item 8): a read that began before a prune finishes
correctly, because readers hold a lease that prune waits for (bounded); a reader that
outlasts the wait keeps its packs on disk; a killed reader holds nothing up.

Readers are real processes reading slowly; marker files and timestamps show that the
prune ran while they read."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

import reprocas
from tests.integration._helpers import (
    assert_ok,
    clean_env,
    cli_argv,
    pack_files,
    run_cli,
    verify_ok,
)

ROOT = Path(reprocas.__file__).resolve().parents[1]

READER = r"""
import hashlib, json, sys, time
from pathlib import Path
import reprocas

repo_path, marks, mode = sys.argv[1], Path(sys.argv[2]), sys.argv[3]
repo = reprocas.Repo.open(repo_path)


def wait(name):
    while not (marks / name).exists():
        time.sleep(0.005)


if mode == "dataset":
    ds = repo.dataset("t@v1", "table.parquet")
    (marks / "opened").write_text(str(time.time()))
    wait("go")
    time.sleep(1.5)
    t0 = time.time()
    table = ds.to_table()
    t1 = time.time()
    digest = hashlib.sha256(b"".join(table.column("noise").to_pylist())).hexdigest()
    assert table.column("x").to_pylist() == list(range(table.num_rows))
    rows = table.num_rows
else:
    f = repo.open("ds@v1", "big.bin")
    (marks / "opened").write_text(str(time.time()))
    if mode == "sleep":
        time.sleep(3600)
    wait("go")
    h = hashlib.sha256()
    t0 = time.time()
    while True:
        piece = f.read(256 << 10)
        if not piece:
            break
        h.update(piece)
        time.sleep(0.05)
    t1 = time.time()
    digest, rows = h.hexdigest(), 0
(marks / "result.json").write_text(json.dumps({"sha256": digest, "rows": rows, "t0": t0, "t1": t1}))
"""


def _reader(repo_path: Path, marks: Path, mode: str) -> subprocess.Popen[bytes]:
    marks.mkdir(exist_ok=True)
    env = clean_env({"PYTHONPATH": str(ROOT)})
    proc = subprocess.Popen(
        [sys.executable, "-c", READER, str(repo_path), str(marks), mode],
        env=env,
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 60
    while not (marks / "opened").exists():
        if proc.poll() is not None:
            raise AssertionError(proc.communicate()[1].decode())
        assert time.monotonic() < deadline, "the reader never opened its file"
        time.sleep(0.01)
    return proc


def _finish(proc: subprocess.Popen[bytes], marks: Path) -> dict[str, float | str | int]:
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err.decode()
    assert "Traceback" not in err.decode(), err.decode()
    result: dict[str, float | str | int] = json.loads((marks / "result.json").read_text())
    return result


def _two_versions(tmp_path: Path) -> tuple[Path, set[Path], bytes]:
    """ds@v1 (an 8 MiB file in many small packs) and ds@v2 (other data); returns the
    repository, the packs only v1 uses and v1's file."""
    repo_path = tmp_path / "repo"
    big = os.urandom(8 << 20)
    with reprocas.Repo.init(repo_path, pack_size=256 << 10) as repo:
        (tmp_path / "v1").mkdir()
        (tmp_path / "v1" / "big.bin").write_bytes(big)
        repo.commit(tmp_path / "v1", "ds")
        v1_packs = pack_files(repo_path)
        (tmp_path / "v2").mkdir()
        (tmp_path / "v2" / "big.bin").write_bytes(os.urandom(100_000))
        repo.commit(tmp_path / "v2", "ds")
    assert len(v1_packs) > 5
    return repo_path, v1_packs, big


def _forget_v1(repo_path: Path, dataset: str = "ds") -> None:
    assert_ok(run_cli("forget", "-d", dataset, "--keep-last", "1", repo=repo_path))


def test_slow_reader_finishes_across_a_prune(tmp_path: Path) -> None:
    """A reader opens ds@v1 and reads it slowly; v1 is forgotten and pruned meanwhile.
    The reader gets every byte right; prune waited for it, then deleted v1's packs."""
    repo_path, v1_packs, big = _two_versions(tmp_path)
    marks = tmp_path / "marks"
    reader = _reader(repo_path, marks, "file")
    _forget_v1(repo_path)
    t_prune = time.time()
    prune = subprocess.Popen(
        cli_argv(["prune", "--max-unused", "0", "--json"], repo_path),
        env=clean_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
    )
    (marks / "go").touch()
    result = _finish(reader, marks)
    out, err = prune.communicate(timeout=120)
    t_pruned = time.time()
    assert prune.returncode == 0, err.decode()
    assert result["sha256"] == hashlib.sha256(big).hexdigest()
    # The prune was running while the reader read, and ended after the reader did.
    assert t_prune < float(result["t1"]) < t_pruned
    report = json.loads(out)["result"]
    assert {p.stem for p in v1_packs} <= set(report["deleted"]) | set(report["repacked"])
    assert report["leased"] == []
    assert not (v1_packs & pack_files(repo_path))
    verify_ok(repo_path, read_data=True)


def test_dataset_object_keeps_its_lease(tmp_path: Path) -> None:
    """A pyarrow dataset over t@v1 made before the prune reads its table after the
    prune has started: the table is right (the dataset object held the lease)."""
    repo_path = tmp_path / "repo"
    n = 400_000
    x = pa.array(list(range(n)), pa.int64())
    noise = pa.array([os.urandom(8) for _ in range(n)], pa.binary())
    (tmp_path / "v1").mkdir()
    pq.write_table(
        pa.table({"x": x, "noise": noise}), tmp_path / "v1" / "table.parquet", row_group_size=50_000
    )
    with reprocas.Repo.init(repo_path, pack_size=256 << 10) as repo:
        repo.commit(tmp_path / "v1", "t")
        v1_packs = pack_files(repo_path)
        (tmp_path / "v2").mkdir()
        pq.write_table(pa.table({"x": pa.array([1, 2, 3])}), tmp_path / "v2" / "table.parquet")
        repo.commit(tmp_path / "v2", "t")
    marks = tmp_path / "marks"
    reader = _reader(repo_path, marks, "dataset")
    _forget_v1(repo_path, "t")
    t_prune = time.time()
    prune = subprocess.Popen(
        cli_argv(["prune", "--max-unused", "0", "--json"], repo_path),
        env=clean_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
    )
    (marks / "go").touch()
    result = _finish(reader, marks)
    _, err = prune.communicate(timeout=120)
    assert prune.returncode == 0, err.decode()
    assert result["rows"] == n
    assert result["sha256"] == hashlib.sha256(b"".join(noise.to_pylist())).hexdigest()
    assert t_prune < float(result["t0"])
    assert not (v1_packs & pack_files(repo_path))
    verify_ok(repo_path, read_data=True)


def test_reader_longer_than_the_wait_keeps_its_packs(tmp_path: Path) -> None:
    """With a short wait, prune leaves the leased packs on disk and says so; the reader
    still reads everything right; the next prune, once it is gone, removes them."""
    repo_path, v1_packs, big = _two_versions(tmp_path)
    marks = tmp_path / "marks"
    reader = _reader(repo_path, marks, "file")
    _forget_v1(repo_path)
    with reprocas.Repo.open(repo_path) as repo:
        report = repo.prune(max_unused=0.0, lease_wait=0.3)
    assert report.leased_readers == 1
    assert {p.stem for p in v1_packs} <= set(report.leased)
    assert report.leased_bytes > len(big) // 2
    assert v1_packs <= pack_files(repo_path)
    (marks / "go").touch()
    result = _finish(reader, marks)
    assert result["sha256"] == hashlib.sha256(big).hexdigest()
    res = assert_ok(run_cli("prune", "--max-unused", "0", "--json", repo=repo_path)).json()
    assert res["result"]["garbage_bytes"] >= report.leased_bytes
    assert not (v1_packs & pack_files(repo_path))
    verify_ok(repo_path, read_data=True)


def test_killed_reader_does_not_block_prune(tmp_path: Path) -> None:
    """A reader SIGKILLed while it holds a file open leaves a lease file no process
    holds: prune does not wait for it (its wait is 10 s), deletes v1's packs and the
    stale lease."""
    repo_path, v1_packs, _ = _two_versions(tmp_path)
    marks = tmp_path / "marks"
    reader = _reader(repo_path, marks, "sleep")
    leases = list((repo_path / "locks" / "leases").glob("*.lease"))
    assert len(leases) == 1
    os.kill(reader.pid, signal.SIGKILL)
    reader.wait(timeout=30)
    _forget_v1(repo_path)
    t0 = time.monotonic()
    res = assert_ok(run_cli("prune", "--max-unused", "0", "--json", repo=repo_path)).json()
    assert time.monotonic() - t0 < 8
    assert res["result"]["leased"] == []
    assert not (v1_packs & pack_files(repo_path))
    assert not leases[0].exists()
    verify_ok(repo_path, read_data=True)


def test_cat_into_a_slow_pipe_finishes_across_a_prune(tmp_path: Path) -> None:
    """`reprocas cat ds@v1` writes into a pipe this test drains slowly; v1 is forgotten
    and pruned while cat is blocked on the pipe. Every byte arrives right, and the
    prune is still waiting while cat, blocked, holds its lease."""
    repo_path, v1_packs, big = _two_versions(tmp_path)
    cat = subprocess.Popen(
        cli_argv(["cat", "ds@v1", "big.bin"], repo_path),
        env=clean_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
    )
    assert cat.stdout is not None
    got = [cat.stdout.read(64 << 10)]  # cat has started writing: it holds its lease
    _forget_v1(repo_path)
    prune = subprocess.Popen(
        cli_argv(["prune", "--max-unused", "0", "--json"], repo_path),
        env=clean_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
    )
    running_while_cat_blocked = None
    while True:
        piece = cat.stdout.read(256 << 10)
        if not piece:
            break
        got.append(piece)
        if running_while_cat_blocked is None and sum(map(len, got)) > len(big) * 3 // 4:
            # cat is still blocked on the pipe, a quarter of the file to go: the prune
            # (started more than a second ago) is waiting for its lease.
            assert cat.poll() is None
            running_while_cat_blocked = prune.poll() is None
        time.sleep(0.05)
    cat.wait(timeout=60)
    err = cat.stderr.read().decode() if cat.stderr else ""
    assert cat.returncode == 0, err
    assert b"".join(got) == big
    out, perr = prune.communicate(timeout=120)
    assert prune.returncode == 0, perr.decode()
    assert running_while_cat_blocked is True
    report = json.loads(out)["result"]
    assert {p.stem for p in v1_packs} <= set(report["deleted"]) | set(report["repacked"])
    assert not (v1_packs & pack_files(repo_path))
    verify_ok(repo_path, read_data=True)


def test_gc_respects_a_reader_lease(tmp_path: Path) -> None:
    """gc deletes forgotten data only once readers that started before it are done: with
    a short wait it leaves the packs (listed as leased), the reader reads them right,
    and the next gc removes them."""
    repo_path, v1_packs, big = _two_versions(tmp_path)
    marks = tmp_path / "marks"
    reader = _reader(repo_path, marks, "file")
    _forget_v1(repo_path)
    with reprocas.Repo.open(repo_path) as repo:
        report = repo.gc(lease_wait=0.3)
    assert {Path(p) for p in report.leased_packs} == v1_packs
    assert report.removed_packs == []
    assert v1_packs <= pack_files(repo_path)
    (marks / "go").touch()
    result = _finish(reader, marks)
    assert result["sha256"] == hashlib.sha256(big).hexdigest()
    again = assert_ok(run_cli("gc", "--json", repo=repo_path)).json()
    assert {Path(p) for p in again["removed_packs"]} == v1_packs
    assert again["leased_packs"] == []
    assert not (v1_packs & pack_files(repo_path))
    verify_ok(repo_path, read_data=True)
