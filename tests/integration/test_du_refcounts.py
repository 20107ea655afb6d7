"""`du` from incremental reference counts: exclusive bytes equal what prune frees, runs
keep what they name, an old repository without counts gets them, concurrent writers
keep them exact, environment snapshots and index rebuild too."""

from __future__ import annotations

import random
import subprocess
import sys
from collections import Counter
from pathlib import Path

import reprocas
from reprocas.environment.capture import Capture
from reprocas.environment.store import save
from reprocas.model.chunking import ChunkingConfig, CompressionConfig, DeltaConfig
from reprocas.model.ids import ObjectId
from reprocas.provenance.names import run_ref
from reprocas.provenance.run_store import Draft, store_runs
from reprocas.retention.policy import Policy, Rules
from reprocas.store import accounting, refcounts
from reprocas.store.packs import read_trailer
from reprocas.store.repository import version_ref
from tests.integration._helpers import PROJECT_ROOT, assert_ok, clean_env, run_cli

SMALL = ChunkingConfig(256, 1024, 4096)


def _frames(root: Path) -> Counter[tuple[tuple[bytes, ...], int]]:
    """Every frame in every pack: (its chunks, its stored length)."""
    out: Counter[tuple[tuple[bytes, ...], int]] = Counter()
    for p in (root / "packs").glob("*/*.pack"):
        for f in read_trailer(p).frames:
            out[(tuple(d for d, _, _ in f.chunks), f.stored_len)] += 1
    return out


def _frame_bytes(frames: Counter[tuple[tuple[bytes, ...], int]]) -> int:
    return sum(n * size for (_, size), n in frames.items())


def _assert_exact(repo: reprocas.Repo) -> accounting.DuReport:
    store = repo.store
    counted = accounting.du(store)
    walked = accounting.du(store, recompute=True)
    walked.stored_bytes = counted.stored_bytes
    assert counted.to_json() == walked.to_json()
    with store.index.read() as txn:
        assert refcounts.is_current(store, txn)
        assert refcounts.stored(store, txn) == refcounts.compute(store, txn)
    return counted


def _write(d: Path, files: dict[str, bytes]) -> Path:
    d.mkdir(parents=True)
    for name, data in files.items():
        (d / name).parent.mkdir(parents=True, exist_ok=True)
        (d / name).write_bytes(data)
    return d


def _chain(repo: reprocas.Repo, tmp: Path, n: int, seed: int = 0) -> None:
    """``n`` versions of "d": shared files, files shared with the previous version,
    a file shared by two versions far apart, a file only each version holds."""
    rng = random.Random(seed)
    common = rng.randbytes(6000)
    far = rng.randbytes(3000)
    prev = rng.randbytes(2500)
    for i in range(n):
        mine = rng.randbytes(1500 + 300 * i)
        files = {"common": common, "prev": prev, "mine": mine, "sub/mine-again": mine}
        if i in (0, n - 1):
            files["far"] = far
        repo.commit(_write(tmp / f"v{i}", files), "d", message=str(i))
        prev = rng.randbytes(2500) if i % 2 else prev


def test_exclusive_bytes_are_what_prune_frees(tmp_path: Path) -> None:
    """One chunk per frame (frame_size 1): a chunk's stored cost is its frame's bytes,
    so forgetting the oldest version and pruning removes frames of exactly its
    exclusive bytes, and the live stored bytes drop by as much."""
    with reprocas.Repo.init(
        tmp_path / "repo", chunking=SMALL, compression=CompressionConfig(3, 1), pack_size=8192
    ) as repo:
        _chain(repo, tmp_path, 6)
        for left in range(6, 1, -1):
            before = _assert_exact(repo)
            oldest = before.versions[0]
            assert oldest.exclusive_bytes > 0
            frames = _frames(repo.root)
            res = repo.forget(Policy(rules=Rules(keep_last=left - 1)))
            assert res.forgotten == [oldest.ref]
            repo.prune(max_unused=0.0)
            after = _assert_exact(repo)
            freed = _frame_bytes(frames) - _frame_bytes(_frames(repo.root))
            assert freed == oldest.exclusive_bytes
            assert before.chunk_stored_bytes - after.chunk_stored_bytes == freed
            assert repo.verify(read_data=True).ok


def test_exclusive_bytes_with_shared_frames(tmp_path: Path) -> None:
    """Frames of many chunks: exclusive bytes are each chunk's share of its frame, and
    the live stored share drops by them when the version goes."""
    with reprocas.Repo.init(tmp_path / "repo", chunking=SMALL, pack_size=16384) as repo:
        _chain(repo, tmp_path, 5, seed=1)
        for left in range(5, 1, -1):
            before = _assert_exact(repo)
            res = repo.forget(Policy(rules=Rules(keep_last=left - 1)))
            assert res.forgotten == [before.versions[0].ref]
            repo.prune(max_unused=0.0)
            after = _assert_exact(repo)
            drop = before.chunk_stored_bytes - after.chunk_stored_bytes
            assert abs(drop - before.versions[0].exclusive_bytes) <= 1  # rounding only


def test_exclusive_bytes_with_delta_chunks(tmp_path: Path) -> None:
    """Files edited a little per version are stored as deltas against the previous
    version's chunks: a base chunk stays alive while a delta chunk decodes against it,
    so an old version holds alone only what no later delta needs, and prune frees
    exactly that (one chunk per frame, plain and delta)."""
    rng = random.Random(5)
    with reprocas.Repo.init(
        tmp_path / "repo",
        chunking=SMALL,
        compression=CompressionConfig(3, 1),
        deltas=DeltaConfig(frame_size=1),
        pack_size=8192,
    ) as repo:
        data = bytearray(rng.randbytes(20_000))
        for i in range(7):
            for _ in range(4):
                at = rng.randrange(len(data) - 8)
                data[at : at + 8] = rng.randbytes(8)
            files = {"edited": bytes(data), "fresh": rng.randbytes(3000 + 100 * i)}
            repo.commit(_write(tmp_path / f"v{i}", files), "d", message=str(i))
        with repo.store.index.read() as txn:
            assert txn.stat(repo.store.index.db["deltas"])["entries"] > 0
        for left in range(7, 1, -1):
            before = _assert_exact(repo)
            oldest = before.versions[0]
            frames = _frames(repo.root)
            res = repo.forget(Policy(rules=Rules(keep_last=left - 1)))
            assert res.forgotten == [oldest.ref]
            repo.prune(max_unused=0.0)
            after = _assert_exact(repo)
            freed = _frame_bytes(frames) - _frame_bytes(_frames(repo.root))
            assert freed == oldest.exclusive_bytes
            assert before.chunk_stored_bytes - after.chunk_stored_bytes == freed
            assert repo.verify(read_data=True).ok


def test_runs_keep_what_they_name(tmp_path: Path) -> None:
    """A version a run names holds nothing alone (forgetting it frees nothing: prune
    keeps what runs name); the run's own files are live; deleting the run ref gives
    the version its bytes back."""
    with reprocas.Repo.init(
        tmp_path / "repo", chunking=SMALL, compression=CompressionConfig(3, 1), pack_size=8192
    ) as repo:
        _chain(repo, tmp_path, 3)
        alone = _assert_exact(repo)
        v1 = alone.versions[0]
        assert v1.exclusive_bytes > 0
        log = random.Random(9).randbytes(4000)
        draft = Draft(
            name="train",
            command=["true"],
            cwd="/",
            inputs=[{"ref": "d@v1", "dataset": "d", "number": 1, "snapshot": bytes.fromhex(v1.id)}],
            files={"stdout.txt": log},
        )
        [(handle, _)] = store_runs(repo.store, [draft])
        with_run = _assert_exact(repo)
        assert with_run.versions[0].exclusive_bytes == 0
        assert with_run.unique_bytes == alone.unique_bytes + len(log)
        # The version's refs go (as forget would); the run keeps it: prune frees nothing.
        frames = _frames(repo.root)
        with repo.store.ref_transaction() as rt:
            rt.delete([(version_ref("d", 1), ObjectId(bytes.fromhex(v1.id)))])
        gone = _assert_exact(repo)
        assert gone.unique_bytes == with_run.unique_bytes
        repo.prune(max_unused=0.0)
        assert _frames(repo.root) == frames
        # Without the run, what it held (its log, and v1's data) is exclusive to nobody
        # and goes at prune.
        with repo.store.ref_transaction() as rt:
            rt.delete([(run_ref(handle.name, handle.number), handle.id)])
        no_run = _assert_exact(repo)
        assert no_run.unique_bytes < alone.unique_bytes
        repo.prune(max_unused=0.0)
        freed = _frame_bytes(frames) - _frame_bytes(_frames(repo.root))
        assert freed == with_run.chunk_stored_bytes - no_run.chunk_stored_bytes
        assert repo.verify(read_data=True).ok


def test_old_repository_without_counts(tmp_path: Path) -> None:
    """A repository made before counts existed (no meta key, no entries) gets them at
    its first du, from the CLI too, with the same figures as the walk."""
    path = tmp_path / "repo"
    with reprocas.Repo.init(path, chunking=SMALL) as repo:
        _chain(repo, tmp_path, 4)
        repo.tag("d@v2", "published")
        expected = accounting.du(repo.store, recompute=True).to_json()
        with repo.store.index.write() as txn:
            refcounts.invalidate(repo.store, txn)
            txn.drop(repo.store.index.db[refcounts.DB], delete=False)
        # Commits meanwhile do not count (counts are not current) and cost nothing.
        with repo.store.index.read() as txn:
            assert not refcounts.is_current(repo.store, txn)
            assert refcounts.stored(repo.store, txn) == {}
    got = assert_ok(run_cli("du", "--json", repo=path)).json()
    assert got["versions"] == expected["versions"]
    assert got["logical_bytes"] == expected["logical_bytes"]
    with reprocas.Repo.open(path) as repo:
        with repo.store.index.read() as txn:
            assert refcounts.is_current(repo.store, txn)
        _assert_exact(repo)


def test_refs_moved_without_counts_are_detected(tmp_path: Path) -> None:
    """An older reprocas moves a ref without touching the counts: the fingerprint no
    longer matches, and du recounts instead of reporting stale figures."""
    with reprocas.Repo.init(tmp_path / "repo", chunking=SMALL) as repo:
        _chain(repo, tmp_path, 3)
        sid = repo.resolve("d@v3").id
        with repo.store.index.write() as txn:
            txn.delete(version_ref("d", 3).encode(), db=repo.store.index.db["refs"])
            txn.put(b"ds:d:tag:keep", sid.raw, db=repo.store.index.db["refs"])
        with repo.store.index.read() as txn:
            assert not refcounts.is_current(repo.store, txn)
        _assert_exact(repo)


def test_environment_snapshots_and_rebuild(tmp_path: Path) -> None:
    facts = {"schema": 1, "python": {"prefix": "/x", "site_packages": []}, "packages": []}
    lock = random.Random(4).randbytes(20_000)
    with reprocas.Repo.init(tmp_path / "repo", chunking=SMALL) as repo:
        _chain(repo, tmp_path, 2)
        save(repo.store, Capture(dict(facts), files={"requirements.txt": lock}), "env/a")
        facts2 = {**facts, "packages": [{"name": "x", "version": "1"}]}
        save(repo.store, Capture(facts2, files={"requirements.txt": lock}), "env/a")
        save(repo.store, Capture(facts2, files={"other.txt": lock[:9000]}), "env/b")
        report = _assert_exact(repo)
        env = {v.ref: v for v in report.versions if v.ref.startswith("env/")}
        assert set(env) == {"env/a@v1", "env/a@v2", "env/b@v1"}
        # The lock file is shared: only the facts (and a cut tail) are any one's own.
        assert all(v.exclusive_bytes < len(lock) // 4 for v in env.values()), env
        with repo.store.index.read() as txn:
            counts = refcounts.stored(repo.store, txn)
        assert repo.rebuild_index().ok
        with repo.store.index.read() as txn:
            assert refcounts.is_current(repo.store, txn)
            assert refcounts.stored(repo.store, txn) == counts
        _assert_exact(repo)


CHILD = """
import random, sys
from pathlib import Path
import reprocas
repo_path, work, who = Path(sys.argv[1]), Path(sys.argv[2]), int(sys.argv[3])
rng = random.Random(who)
shared = random.Random(0).randbytes(5000)
with reprocas.Repo.open(repo_path) as repo:
    for i in range(4):
        d = work / f"w{who}-{i}"
        d.mkdir(parents=True)
        (d / "shared").write_bytes(shared)
        (d / "mine").write_bytes(rng.randbytes(2000))
        repo.commit(d, "same" if who % 2 else f"own{who}", message=f"{who}-{i}")
        if i == 2:
            repo.tag(f"{'same' if who % 2 else f'own{who}'}@latest", f"t{who}")
"""


def test_concurrent_commits_keep_counts_exact(tmp_path: Path) -> None:
    path = tmp_path / "repo"
    reprocas.Repo.init(path, chunking=SMALL, pack_size=8192).close()
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", CHILD, str(path), str(tmp_path / "work"), str(who)],
            env=clean_env(),
            cwd=PROJECT_ROOT,
            stderr=subprocess.PIPE,
        )
        for who in range(4)
    ]
    for p in procs:
        _, err = p.communicate(timeout=300)
        assert p.returncode == 0, err.decode()
    with reprocas.Repo.open(path) as repo:
        report = _assert_exact(repo)
        assert len(report.versions) == 16
