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


PRUNE_MIN_HITS = {"repacked-old-kept": 2, "part-deleted": 2}
PRUNE_MIN_TRIALS = 6
PRUNE_MAX_TRIALS = 40
PRUNE_BUDGET_S = 40.0


def _pack_ids(repo_path: Path) -> set[bytes]:
    return {bytes.fromhex(p.stem) for p in (repo_path / "packs").glob("*/*.pack")}


def _prune_state(repo_path: Path, base_packs: set[bytes], doomed: set[bytes]) -> str:
    """How far a killed prune got, read from the packs on disk."""
    now = _pack_ids(repo_path)
    new = now - base_packs
    gone = doomed - now
    if not gone:
        return "repacked-old-kept" if new else "untouched"
    return "done" if gone == doomed else "part-deleted"


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
        doomed = {s.pack for s in plan.steps}
        n_repack = len(plan.repack)
    base_packs = _pack_ids(base)
    # Calibrate on one uninterrupted prune: its start-up (until it first writes into
    # tmp/) and its whole run, so random kills land inside the prune on any machine.
    calib = tmp_path / "calibrate"
    shutil.copytree(base, calib)
    t0 = time.monotonic()
    proc = subprocess.Popen(
        cli_argv(["prune", "--max-unused", "0"], calib), env=clean_env(), stdout=subprocess.DEVNULL
    )
    startup: float | None = None
    while proc.poll() is None:
        if startup is None and any((calib / "tmp").iterdir()):
            startup = time.monotonic() - t0
        time.sleep(0.0005)
    duration = time.monotonic() - t0
    assert proc.returncode == 0
    assert _prune_state(calib, base_packs, doomed) == "done"
    shutil.rmtree(calib)
    startup = duration * 0.5 if startup is None else startup

    rng = random.Random(11)
    states: dict[str, int] = {}
    t_start = time.monotonic()
    trial = 0
    while trial < PRUNE_MAX_TRIALS and time.monotonic() - t_start < PRUNE_BUDGET_S:
        if trial >= PRUNE_MIN_TRIALS and all(
            states.get(w, 0) >= need for w, need in PRUNE_MIN_HITS.items()
        ):
            break
        repo_path = tmp_path / f"r{trial}"
        shutil.copytree(base, repo_path)
        proc = subprocess.Popen(
            cli_argv(["prune", "--max-unused", "0"], repo_path),
            env=clean_env(),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        mode = trial % 3
        if mode == 0:
            time.sleep(rng.uniform(startup, duration))
        elif mode == 1:
            # Aimed at the repack phase: right after the k-th new pack is renamed in.
            k = rng.randint(1, n_repack)
            while proc.poll() is None and len(_pack_ids(repo_path) - base_packs) < k:
                time.sleep(0.0002)
        else:
            # Aimed at the delete phase: right after the k-th doomed pack is gone.
            k = rng.randint(1, len(doomed) - 1)
            paths = [repo_path / "packs" / p.hex()[:2] / f"{p.hex()}.pack" for p in doomed]
            while proc.poll() is None and sum(not p.exists() for p in paths) < k:
                time.sleep(0.0002)
        proc.send_signal(signal.SIGKILL)
        _, err = proc.communicate(timeout=60)
        assert b"Traceback" not in err, err.decode()
        assert proc.returncode in (0, -signal.SIGKILL), err.decode()
        state = _prune_state(repo_path, base_packs, doomed)
        if proc.returncode == 0:
            assert state == "done", f"prune exited 0 in state {state}"
        states[state] = states.get(state, 0) + 1
        trial += 1
        # Half done or not: every kept version verifies and checks out byte for byte.
        _check_versions(repo_path, expected, tmp_path)
        # The next prune finishes the job.
        assert_ok(run_cli("prune", "--max-unused", "0", repo=repo_path))
        _check_versions(repo_path, expected, tmp_path)
        assert _prune_state(repo_path, base_packs, doomed) == "done"
        with reprocas.Repo.open(repo_path) as repo:
            again = repo.prune_plan(max_unused=0.0)
            assert not again.steps and not again.garbage
        shutil.rmtree(repo_path)
    print(f"prune crash test: {trial} trials in {time.monotonic() - t_start:.1f}s: {states}")
    for window, need in PRUNE_MIN_HITS.items():
        got = states.get(window, 0)
        assert got >= need, (
            f"only {got} of {trial} prune kills left state {window!r} (need {need}): {states}"
        )
