"""Crash safety: a commit killed with SIGKILL at any moment leaves a sound repository.

DESIGN: data goes into a pack, the pack is sealed (fsync, rename), its index entries are
committed, and the ref moves last; so a kill can leave temporary files and packs that
nothing references, never a ref to something missing. ``gc`` reclaims the leftovers.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import time
from pathlib import Path

import reprocas
from reprocas.model.ids import ObjectId
from reprocas.store.reachability import Reach, all_versions, reach_snapshot
from tests.integration._helpers import (
    assert_ok,
    clean_env,
    cli_argv,
    pack_files,
    run_cli,
    tmp_files,
    verify_ok,
)
from tests.integration.trees import Entry, describe, diff

KILLS = 24
FILES = 4
FILE_SIZE = 4 << 20  # 16 MiB a version: 16+ sealed packs of 1 MiB


def _rewrite_source(src: Path, rng: random.Random, iteration: int) -> dict[str, Entry]:
    """New content for every file (so every commit has packs to write), plus a small
    file that stays the same (the files cache path) and one that grows."""
    src.mkdir(exist_ok=True)
    for i in range(FILES):
        (src / f"part-{i}.bin").write_bytes(rng.randbytes(FILE_SIZE))
    stable = src / "stable.txt"
    if not stable.exists():
        stable.write_bytes(b"unchanged between versions\n" * 1000)
    with open(src / "log.txt", "ab") as f:
        f.write(f"iteration {iteration}\n".encode())
    return describe(src)


def _check_refs(
    repo_path: Path,
    expected: dict[str, dict[str, Entry]],
    checked: set[str],
    work: Path,
) -> set[str]:
    """Check out every ref not checked yet and compare with the source it came from
    (found through the commit message); returns the refs now checked."""
    with reprocas.Repo.open(repo_path) as repo:
        for e in repo.log():
            if e.id in checked:
                continue
            assert e.message in expected, f"{e.ref} has an unknown message {e.message!r}"
            dest = work / f"co-{e.id[:12]}"
            repo.checkout(e.ref, dest)
            problems = diff(expected[e.message], describe(dest))
            assert not problems, f"{e.ref} ({e.message}) differs: {problems[:10]}"
            _rmtree(dest)
            checked.add(e.id)
    return checked


def _rmtree(path: Path) -> None:
    for dirpath, dirnames, filenames in os.walk(path, topdown=False):
        for f in filenames:
            os.unlink(os.path.join(dirpath, f))
        for d in dirnames:
            p = os.path.join(dirpath, d)
            if os.path.islink(p):
                os.unlink(p)
            else:
                os.rmdir(p)
    os.rmdir(path)


def _reachable_packs(repo_path: Path) -> set[Path]:
    """The pack files that hold something a version reaches (by the index)."""
    with reprocas.Repo.open(repo_path) as repo:
        store = repo.store
        reach = Reach()
        out: set[Path] = set()
        with store.index.read() as txn:
            for _, _, sid in all_versions(store, txn):
                reach_snapshot(store, txn, sid, reach)
            for d in reach.chunks:
                loc = store.index.get_chunk(txn, d)
                assert loc is not None
                out.add(store.pack_path(loc.pack))
            for oid in reach.objects:
                oloc = store.index.get_object(txn, oid)
                assert oloc is not None, ObjectId(oid)
                out.add(store.pack_path(oloc.pack))
    return out


def test_sigkill_during_commit_leaves_a_sound_repository(tmp_path: Path) -> None:
    repo_path = tmp_path / "repo"
    reprocas.Repo.init(repo_path, pack_size=1 << 20).close()
    src = tmp_path / "src"
    work = tmp_path / "work"
    work.mkdir()
    rng = random.Random(20261125)
    expected: dict[str, dict[str, Entry]] = {}

    # Calibrate: one uninterrupted commit, timed from process start to exit.
    expected["calibrate"] = _rewrite_source(src, rng, -1)
    t0 = time.monotonic()
    res = run_cli("commit", src, "-d", "ds", "-m", "calibrate", repo=repo_path)
    duration = time.monotonic() - t0
    assert_ok(res)
    packs_per_commit = len(pack_files(repo_path))
    assert packs_per_commit >= 8, "the calibration commit should seal several packs"

    checked: set[str] = set()
    interrupted = 0  # kills that landed before the ref moved
    left_something = 0  # kills that left tmp files or packs no version uses
    for it in range(KILLS):
        message = f"iteration-{it}"
        expected[message] = _rewrite_source(src, rng, it)
        before = log_ids(repo_path)
        delay = rng.uniform(0.0, duration * 1.1)
        proc = subprocess.Popen(
            cli_argv(["commit", src, "-d", "ds", "-m", message], repo_path),
            env=clean_env(),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        time.sleep(delay)
        proc.send_signal(signal.SIGKILL)
        _, err = proc.communicate(timeout=60)
        assert b"Traceback" not in err, err.decode()
        after = log_ids(repo_path)
        if proc.returncode == -signal.SIGKILL and after == before:
            interrupted += 1
        else:
            assert proc.returncode in (0, -signal.SIGKILL), err.decode()
        if tmp_files(repo_path) or len(pack_files(repo_path)) > len(_reachable_packs(repo_path)):
            left_something += 1

        # Whatever the moment of the kill: the repository verifies, data included ...
        verify_ok(repo_path, read_data=True)
        # ... every version checks out exactly as the source it came from ...
        checked = _check_refs(repo_path, expected, checked, work)
        # ... and the next commit succeeds (re-committing the same source).
        with reprocas.Repo.open(repo_path) as repo:
            r = repo.commit(src, "ds", message=message)
        checked = _check_refs(repo_path, expected, checked, work)
        assert r.id.hex in checked

    print(f"crash test: {KILLS} kills, {interrupted} interrupted, {left_something} left debris")
    # The test is only meaningful when kills landed in the middle of the work.
    assert interrupted >= KILLS // 4, f"only {interrupted} of {KILLS} kills interrupted a commit"
    assert left_something >= 3, f"only {left_something} kills left anything behind"

    # Every version (oldest too) still checks out; then gc reclaims what the kills left.
    checked.clear()
    _check_refs(repo_path, expected, checked, work)
    versions_before = log_ids(repo_path)
    res = assert_ok(run_cli("gc", "--json", repo=repo_path))
    report = res.json()
    assert report["removed_tmp"] or report["removed_packs"], report
    assert tmp_files(repo_path) == []
    assert pack_files(repo_path) == _reachable_packs(repo_path), "unreferenced packs survived gc"
    assert log_ids(repo_path) == versions_before
    res = run_cli("verify", "--read-data", "--json", repo=repo_path)
    assert res.json()["ok"] is True, res.describe()
    checked.clear()
    _check_refs(repo_path, expected, checked, work)
    # A second gc finds nothing more to do.
    again = assert_ok(run_cli("gc", "--json", repo=repo_path)).json()
    assert again["removed_tmp"] == [] and again["removed_packs"] == [], again


def log_ids(repo_path: Path) -> list[str]:
    with reprocas.Repo.open(repo_path) as repo:
        return [e.id for e in repo.log()]


def test_sigkill_during_gc_leaves_a_sound_repository(tmp_path: Path) -> None:
    """gc deletes index entries, then the pack file; a kill in between must not leave
    an index that points at nothing (or a pack that is in use deleted)."""
    repo_path = tmp_path / "repo"
    reprocas.Repo.init(repo_path, pack_size=256 << 10).close()
    src = tmp_path / "src"
    rng = random.Random(7)
    expected: dict[str, dict[str, Entry]] = {}
    # Leave many unreferenced packs behind: commits killed mid-way (once a few of
    # their packs are sealed).
    for it in range(4):
        expected[f"keep-{it}"] = _rewrite_source(src, rng, it)
        assert_ok(run_cli("commit", src, "-d", "ds", "-m", f"keep-{it}", repo=repo_path))
        expected[f"doomed-{it}"] = _rewrite_source(src, rng, 100 + it)
        n_packs = len(pack_files(repo_path))
        proc = subprocess.Popen(
            cli_argv(["commit", src, "-d", "ds", "-m", f"doomed-{it}"], repo_path),
            env=clean_env(),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 30
        while len(pack_files(repo_path)) < n_packs + 5 and time.monotonic() < deadline:
            time.sleep(0.002)
        proc.kill()
        proc.wait()
    assert len(pack_files(repo_path)) > len(_reachable_packs(repo_path)), "nothing to collect"
    work = tmp_path / "work"
    work.mkdir()
    for it in range(6):
        proc = subprocess.Popen(
            cli_argv(["gc"], repo_path),
            env=clean_env(),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        time.sleep(rng.uniform(0.15, 0.4))
        proc.kill()
        proc.wait()
        with reprocas.Repo.open(repo_path) as repo:
            report = repo.verify(read_data=False)
            assert report.ok, report.to_json()["problems"]
            for e in repo.log():
                dest = work / f"{it}-{e.id[:8]}"
                repo.checkout(e.ref, dest)
                assert not diff(expected[e.message], describe(dest)), e.ref
                _rmtree(dest)
    assert_ok(run_cli("gc", repo=repo_path))
    assert pack_files(repo_path) == _reachable_packs(repo_path)
    verify_ok(repo_path, read_data=True)
