"""Retention under stress, with real processes: commits racing prunes, and prunes
killed with SIGKILL at random moments. Afterwards `verify --read-data` passes, every
kept version checks out byte for byte, and the next prune finishes the job."""

from __future__ import annotations

import json
import random
import shutil
import signal
import subprocess
import time
from pathlib import Path

import reprocas
from tests.integration._helpers import assert_ok, clean_env, cli_argv, run_cli, verify_ok


def _content(seed: int, size: int = 150_000) -> bytes:
    rng = random.Random(seed)
    # Half shared across seeds of one family, half unique: versions dedup partly.
    shared = random.Random(seed // 4).randbytes(size // 2)
    return shared + rng.randbytes(size - size // 2)


def _write(src: Path, seed: int) -> dict[str, bytes]:
    if src.exists():
        shutil.rmtree(src)
    src.mkdir(parents=True)
    files = {"a.bin": _content(seed), "b.bin": _content(seed + 1000, 40_000)}
    for n, d in files.items():
        (src / n).write_bytes(d)
    return files


def _check_versions(repo_path: Path, expected: dict[str, dict[str, bytes]], work: Path) -> None:
    verify_ok(repo_path, read_data=True)
    with reprocas.Repo.open(repo_path) as repo:
        for e in repo.log():
            dest = work / f"co-{e.id[:16]}"
            if dest.exists():
                shutil.rmtree(dest)
            repo.checkout(e.ref, dest)
            for name, data in expected[e.id].items():
                assert (dest / name).read_bytes() == data, f"{e.ref}:{name} differs"
            shutil.rmtree(dest)


def _commit(
    repo: reprocas.Repo, work: Path, dataset: str, seed: int
) -> tuple[str, dict[str, bytes]]:
    src = work / f"src-{dataset}-{seed}"
    files = _write(src, seed)
    r = repo.commit(src, dataset, message=str(seed))
    shutil.rmtree(src)
    return r.id.hex, files


def test_commits_and_prunes_race(tmp_path: Path) -> None:
    repo_path = tmp_path / "repo"
    expected: dict[str, dict[str, bytes]] = {}
    with reprocas.Repo.init(repo_path, pack_size=96 * 1024) as repo:
        for s in range(6):
            sid, files = _commit(repo, tmp_path, "main", s)
            expected[sid] = files
    rng = random.Random(7)
    trials = 8
    for trial in range(trials):
        procs: list[tuple[subprocess.Popen[bytes], str]] = []
        # Forget most of main, then prune while commits re-use forgotten data (their
        # chunks are exactly what the prune is deleting) and add new data.
        assert_ok(run_cli("forget", "-d", "main", "--keep-last", "1", repo=repo_path))
        for k in range(3):
            seed = rng.randrange(0, 6 + trial) if k < 2 else 100 + trial
            src = tmp_path / f"race-{trial}-{k}"
            expected_files = _write(src, seed)
            p = subprocess.Popen(
                cli_argv(["commit", src, "-d", f"c{trial}-{k}", "--json"], repo_path),
                env=clean_env(),
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
            )
            procs.append((p, json.dumps({n: d.hex() for n, d in expected_files.items()})))
            if k == 0:
                prune = subprocess.Popen(
                    cli_argv(["prune", "--max-unused", "0", "--json"], repo_path),
                    env=clean_env(),
                    stdout=subprocess.PIPE,
                    stderr=subprocess.PIPE,
                )
        for p, files_json in procs:
            out, err = p.communicate(timeout=120)
            assert p.returncode == 0, err.decode()
            expected[json.loads(out)["id"]] = {
                n: bytes.fromhex(h) for n, h in json.loads(files_json).items()
            }
        out, err = prune.communicate(timeout=120)
        assert prune.returncode == 0, err.decode()
        with reprocas.Repo.open(repo_path) as repo:
            sid, files = _commit(repo, tmp_path, "main", 50 + trial)
            expected[sid] = files
        _check_versions(repo_path, expected, tmp_path)
    # A final prune, with nothing racing, leaves nothing to do.
    assert_ok(run_cli("prune", "--max-unused", "0", repo=repo_path))
    with reprocas.Repo.open(repo_path) as repo:
        plan = repo.prune_plan(max_unused=0.0)
        assert plan.freed_bytes == 0 and not plan.steps
        assert len(repo.forgotten()) >= 5
    _check_versions(repo_path, expected, tmp_path)


def test_sigkill_during_prune(tmp_path: Path) -> None:
    base = tmp_path / "base"
    expected: dict[str, dict[str, bytes]] = {}
    with reprocas.Repo.init(base, pack_size=64 * 1024) as repo:
        for s in range(16):
            sid, files = _commit(repo, tmp_path, "d", s)
            expected[sid] = files
    assert_ok(run_cli("forget", "--keep-last", "3", repo=base))
    with reprocas.Repo.open(base) as repo:
        plan = repo.prune_plan(max_unused=0.0)
        assert plan.repack and plan.delete, "the fixture should need both repack and delete"
    # Calibrate on one uninterrupted prune (start-up included), so the kills land inside
    # the prune on a fast machine and a slow one alike.
    calib = tmp_path / "calibrate"
    shutil.copytree(base, calib)
    t0 = time.monotonic()
    assert_ok(run_cli("prune", "--max-unused", "0", repo=calib))
    duration = time.monotonic() - t0
    shutil.rmtree(calib)
    rng = random.Random(11)
    killed = 0
    for trial in range(10):
        repo_path = tmp_path / f"r{trial}"
        shutil.copytree(base, repo_path)
        proc = subprocess.Popen(
            cli_argv(["prune", "--max-unused", "0"], repo_path),
            env=clean_env(),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        time.sleep(rng.uniform(0.3, 0.95) * duration)
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            killed += 1
        proc.wait(timeout=60)
        _check_versions(repo_path, expected, tmp_path)
        # The next prune finishes the job.
        assert_ok(run_cli("prune", "--max-unused", "0", repo=repo_path))
        _check_versions(repo_path, expected, tmp_path)
        with reprocas.Repo.open(repo_path) as repo:
            again = repo.prune_plan(max_unused=0.0)
            assert not again.steps and not again.garbage
        shutil.rmtree(repo_path)
    assert killed > 0, "no prune was killed; lengthen the fixture"
