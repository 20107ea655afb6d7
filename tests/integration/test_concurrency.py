"""Concurrency: commits from several processes at once, and readers during a commit."""

from __future__ import annotations

import itertools
import json
import random
import subprocess
import sys
import time
from pathlib import Path

import pytest

import reprocas
from tests.integration._helpers import (
    PROJECT_ROOT,
    CliResult,
    LockMonitor,
    assert_ok,
    clean_env,
    cli_argv,
    entries_to_json,
    run_cli,
    verify_ok,
)
from tests.integration.trees import Entry, describe, diff, generate_tree, mutate_tree


def _popen_commit(
    repo_path: Path, src: Path, dataset: str, message: str
) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        cli_argv(["commit", src, "-d", dataset, "-m", message, "--json"], repo_path),
        env=clean_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )


def _finish(proc: subprocess.Popen[bytes]) -> CliResult:
    out, err = proc.communicate(timeout=120)
    return CliResult(tuple(str(a) for a in proc.args[1:]), proc.returncode, out, err)  # type: ignore[index]


def _check_all(repo_path: Path, expected: dict[str, dict[str, Entry]], work: Path) -> None:
    verify_ok(repo_path, read_data=True)
    with reprocas.Repo.open(repo_path) as repo:
        for e in repo.log():
            dest = work / f"check-{e.id[:12]}"
            if dest.exists():
                continue
            repo.checkout(e.ref, dest)
            problems = diff(expected[e.message], describe(dest))
            assert not problems, f"{e.ref} ({e.message}): {problems[:10]}"


@pytest.mark.parametrize("same_dataset", [True, False], ids=["same-name", "different-names"])
def test_two_processes_commit_at_once(tmp_path: Path, same_dataset: bool) -> None:
    repo_path = tmp_path / "repo"
    reprocas.Repo.init(repo_path, pack_size=1 << 20).close()
    trees = [tmp_path / "tree-a", tmp_path / "tree-b"]
    expected: dict[str, dict[str, Entry]] = {}
    for i, t in enumerate(trees):
        generate_tree(t, 100 + i, scale=6)
    names = ["shared", "shared"] if same_dataset else ["alpha", "beta"]
    work = tmp_path / "work"
    work.mkdir()
    # Rounds go on until two of them overlapped (both commits seen holding the writers'
    # lock at once), at least 3 rounds and at most 8: a scheduler that happened to run
    # one after the other does not make the test pass.
    overlapped = 0
    rnd = 0
    while rnd < 3 or (overlapped < 2 and rnd < 8):
        if rnd:
            for i, t in enumerate(trees):
                mutate_tree(t, 1000 * rnd + i)
        # New data every round, so each commit works long enough (past the other's
        # interpreter start-up) for the two to overlap.
        for i, t in enumerate(trees):
            (t / "fresh.bin").write_bytes(random.Random(rnd * 10 + i).randbytes(12 << 20))
        descs = [describe(t) for t in trees]
        msgs = [f"round-{rnd}-{i}" for i in range(2)]
        for m, d in zip(msgs, descs, strict=True):
            expected[m] = d
        with LockMonitor(repo_path / "locks" / "gc.lock") as mon:
            procs = [
                _popen_commit(repo_path, t, n, m)
                for t, n, m in zip(trees, names, msgs, strict=True)
            ]
            results = [_finish(p) for p in procs]
        overlapped += mon.max_holders({p.pid for p in procs}) == 2
        for r in results:
            assert_ok(r)
            assert r.json()["created"] is True
        refs = sorted(r.json()["ref"] for r in results)
        if same_dataset:
            assert refs == [f"shared@v{2 * rnd + 1}", f"shared@v{2 * rnd + 2}"]
        else:
            assert refs == [f"alpha@v{rnd + 1}", f"beta@v{rnd + 1}"]
        rnd += 1
    log = assert_ok(run_cli("log", "--json", repo=repo_path)).json()
    assert overlapped >= 2, f"only {overlapped} of {rnd} rounds of commits overlapped"
    assert len(log) == 2 * rnd
    assert {e["message"] for e in log} == set(expected)
    # Each version's parent is the version before it, whoever won each race.
    for name in set(names):
        chain = sorted(
            (e for e in log if e["ref"].startswith(name + "@")),
            key=lambda e: int(e["ref"].rsplit("@v", 1)[1]),
        )
        for before, after in itertools.pairwise(chain):
            assert after["parent"] == before["id"], (before["ref"], after["ref"])
        assert chain[0]["parent"] is None
    _check_all(repo_path, expected, work)


def test_many_small_commits_race_on_one_dataset(tmp_path: Path) -> None:
    """Six processes commit six different trees into one dataset at once (seen holding
    the writers' lock together): six versions, numbered 1..6 without gaps or duplicates."""
    repo_path = tmp_path / "repo"
    reprocas.Repo.init(repo_path).close()
    expected: dict[str, dict[str, Entry]] = {}
    procs = []
    for i in range(6):
        src = tmp_path / f"small-{i}"
        src.mkdir()
        (src / "value.txt").write_text(f"tree {i}\n")
        # Some data too, so each commit holds the writers' lock past the others' start-up.
        (src / "data.bin").write_bytes(random.Random(i).randbytes(6 << 20))
        expected[f"small-{i}"] = describe(src)
    with LockMonitor(repo_path / "locks" / "gc.lock") as mon:
        for i in range(6):
            procs.append(_popen_commit(repo_path, tmp_path / f"small-{i}", "race", f"small-{i}"))
        results = [_finish(p) for p in procs]
    most = mon.max_holders({p.pid for p in procs})
    assert most >= 2, "the six commits never held the writers' lock at the same time"
    for r in results:
        assert_ok(r)
    assert sorted(r.json()["ref"] for r in results) == [f"race@v{i}" for i in range(1, 7)]
    work = tmp_path / "work"
    work.mkdir()
    _check_all(repo_path, expected, work)


def test_log_and_checkout_during_commits_see_a_consistent_state(tmp_path: Path) -> None:
    repo_path = tmp_path / "repo"
    reprocas.Repo.init(repo_path, pack_size=1 << 20).close()
    rng = random.Random(5)
    src = tmp_path / "src"
    expected: dict[str, dict[str, Entry]] = {}
    expected["v1"] = generate_tree(src, 1)
    with reprocas.Repo.open(repo_path) as repo:
        repo.commit(src, "ds", message="v1")
    # The next versions are big, so that their commits take a while.
    bigs = []
    for k in range(2, 5):
        for i in range(4):
            (src / "data" / f"big-{i}.bin").write_bytes(rng.randbytes(6 << 20))
        (src / "README.txt").write_text(f"version {k}\n")
        expected[f"v{k}"] = describe(src)
        snap = tmp_path / f"src-v{k}"
        subprocess.run(["cp", "-a", str(src), str(snap)], check=True)
        bigs.append((f"v{k}", snap))
    assert diff(expected["v4"], describe(bigs[-1][1])) == []

    expected_path = tmp_path / "expected.json"
    expected_path.write_text(json.dumps({m: entries_to_json(d) for m, d in expected.items()}))
    stop = tmp_path / "stop"
    out = tmp_path / "reader.json"
    work = tmp_path / "reader-work"
    work.mkdir()
    env = clean_env({"PYTHONPATH": str(PROJECT_ROOT)})
    reader = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "from tests.integration._helpers import reader_main; reader_main()",
            *(str(p) for p in (repo_path, expected_path, stop, out, work)),
        ],
        cwd=PROJECT_ROOT,
        env=env,
        stderr=subprocess.PIPE,
    )
    try:
        time.sleep(0.3)
        for message, snap in bigs:
            writer = _popen_commit(repo_path, snap, "ds", message)
            # Meanwhile, the CLI too: log and checkout of the existing version.
            n = 0
            while writer.poll() is None:
                log = run_cli("log", "ds", "--json", repo=repo_path)
                assert_ok(log)
                refs = [e["ref"] for e in log.json()]
                assert refs[-1] == "ds@v1" and len(refs) == len(set(refs))
                dest = tmp_path / f"cli-co-{message}-{n}"
                assert_ok(run_cli("checkout", "ds@v1", dest, repo=repo_path))
                assert not diff(expected["v1"], describe(dest))
                n += 1
            assert_ok(_finish(writer))
        time.sleep(0.3)
    finally:
        stop.touch()
        _, err = reader.communicate(timeout=120)
    assert reader.returncode == 0, err.decode()
    report = json.loads(out.read_text())
    print(f"reader: {report['iterations']} iterations, {report['checkouts']} checkouts")
    assert report["errors"] == [], report["errors"]
    assert report["iterations"] >= 5, report
    assert "ds@v4" in report["seen_refs"], report
    _check_all(repo_path, expected, tmp_path)
