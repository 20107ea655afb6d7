"""Reference counts stay exact (hypothesis, stateful): after any sequence of commits of
small directories sharing content (and delta chunks, from small edits), tags added,
moved and removed, forgets, versions deleted, runs recorded and deleted, prunes, index
rebuilds, gc, counts dropped (a repository from before counts) and refs moved behind the
counts' back (an older reprocas), the counts in the index equal a count from scratch,
and ``du`` read from them equals ``du`` by walking every root (``recompute=True``, the
reference)."""

from __future__ import annotations

import random
import shutil
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

import reprocas
from reprocas.model.chunking import ChunkingConfig, CompressionConfig
from reprocas.model.ids import ObjectId
from reprocas.provenance.run_store import Draft, store_runs
from reprocas.retention.policy import Policy, Rules
from reprocas.store import accounting, refcounts
from reprocas.store.reachability import all_versions
from reprocas.store.repository import Repository, tag_ref, version_ref

DATASETS = ("x", "y", "env/e")
TAGS = ("a", "b", "published")
COMMIT = rule(
    dataset=st.sampled_from(DATASETS),
    picks=st.lists(st.integers(0, 10), min_size=1, max_size=5),
    nested=st.booleans(),
    dup=st.booleans(),
    tag=st.sampled_from((None, *TAGS)),
)


def _edited(data: bytes, rng: random.Random) -> bytes:
    out = bytearray(data)
    for _ in range(3):
        at = rng.randrange(len(out) - 4)
        out[at : at + 4] = rng.randbytes(4)
    return bytes(out)


class RefcountMachine(RuleBasedStateMachine):
    """One repository, driven by random operations; checked after each."""

    def __init__(self) -> None:
        super().__init__()
        self.tmp = Path(tempfile.mkdtemp(prefix="refcounts-"))
        self.repo: reprocas.Repo | None = None
        self.pool: list[bytes] = []
        self.n = 0

    @initialize(seed=st.integers(0, 2**32 - 1), first=st.integers(1, 4))
    def start(self, seed: int, first: int) -> None:
        rng = random.Random(seed)
        base = [rng.randbytes(rng.randrange(300, 5000)) for _ in range(6)]
        # Concatenations share chunks with their parts: one chunk in several manifests.
        # Small edits of a file at the same path are stored as delta chunks whose bases
        # are the previous version's chunks.
        self.pool = [
            *base,
            base[0] + base[1],
            base[1] + base[2],
            base[3] * 2,
            _edited(base[0] + base[1], rng),
            _edited(base[3] * 2, rng),
        ]
        self.repo = reprocas.Repo.init(
            self.tmp / "repo",
            chunking=ChunkingConfig(256, 1024, 4096),
            compression=CompressionConfig(3, 4096),
            pack_size=16 * 1024,
        )
        for i in range(first):
            self._commit(DATASETS[i % 2], [rng.randrange(11) for _ in range(3)], i == 1, i == 2)

    @property
    def store(self) -> Repository:
        assert self.repo is not None
        return self.repo.store

    def _versions(self) -> list[tuple[str, int, ObjectId]]:
        with self.store.index.read() as txn:
            return list(all_versions(self.store, txn))

    def _refs(self, prefix: str) -> list[tuple[str, bytes]]:
        with self.store.index.read() as txn:
            return list(self.store.index.iter_refs(txn, prefix))

    # -- operations ------------------------------------------------------------------------

    def _commit(
        self, dataset: str, picks: list[int], nested: bool, dup: bool, tag: str | None = None
    ) -> None:
        self.n += 1
        src = self.tmp / f"src{self.n}"
        (src / "sub").mkdir(parents=True)
        for j, p in enumerate(picks):
            (src / f"f{j}").write_bytes(self.pool[p])
            if nested:
                (src / "sub" / f"f{j}").write_bytes(self.pool[p])  # the same subtree twice
        if dup:
            (src / "copy").write_bytes(self.pool[picks[0]])  # one manifest twice in a tree
        (src / "own").write_bytes(random.Random(self.n).randbytes(700))
        assert self.repo is not None
        self.repo.commit(src, dataset, message=str(self.n), tags=[tag] if tag else [])
        shutil.rmtree(src)

    @precondition(lambda self: self.repo is not None)
    @COMMIT
    def commit(
        self, dataset: str, picks: list[int], nested: bool, dup: bool, tag: str | None
    ) -> None:
        self._commit(dataset, picks, nested, dup, tag)

    @precondition(lambda self: self.repo is not None)
    @COMMIT
    def commit_more(  # commits are as frequent as everything else together
        self, dataset: str, picks: list[int], nested: bool, dup: bool, tag: str | None
    ) -> None:
        self._commit(dataset, picks, nested, dup, tag)
        self._commit(dataset, picks[::-1], not nested, dup)

    @precondition(lambda self: self.repo is not None)
    @rule(pick=st.integers(0, 10**6), tag=st.sampled_from(TAGS))
    def add_or_move_tag(self, pick: int, tag: str) -> None:
        vs = self._versions()
        if vs:
            name, number, _ = vs[pick % len(vs)]
            assert self.repo is not None
            self.repo.tag(f"{name}@v{number}", tag, force=True)

    @precondition(lambda self: self.repo is not None)
    @rule(pick=st.integers(0, 10**6))
    def untag(self, pick: int) -> None:
        tags = [(k, v) for k, v in self._refs("ds:") if ":tag:" in k]
        if tags:
            k, v = tags[pick % len(tags)]
            with self.store.ref_transaction() as rt:
                rt.delete([(k, ObjectId(v))])

    @precondition(lambda self: self.repo is not None)
    @rule(keep_last=st.integers(1, 3))
    def forget(self, keep_last: int) -> None:
        assert self.repo is not None
        self.repo.forget(Policy(rules=Rules(keep_last=keep_last)))

    @precondition(lambda self: self.repo is not None)
    @rule(pick=st.integers(0, 10**6))
    def delete_version(self, pick: int) -> None:
        """Any version, latest included, with its tags (what forget does to refs)."""
        vs = self._versions()
        if vs:
            name, number, sid = vs[pick % len(vs)]
            with self.store.ref_transaction() as rt:
                tags = self.store.tags_of(rt.txn, name).get(sid.raw, [])
                rt.delete(
                    [(version_ref(name, number), sid)] + [(tag_ref(name, t), sid) for t in tags]
                )

    @precondition(lambda self: self.repo is not None)
    @rule(pick=st.integers(0, 10**6), purge=st.booleans())
    def rm(self, pick: int, purge: bool) -> None:
        """`rm --force [--purge]` of any version, whatever runs and tags need it."""
        vs = self._versions()
        if vs:
            name, number, _ = vs[pick % len(vs)]
            assert self.repo is not None
            self.repo.rm([f"{name}@v{number}"], force=True, purge=purge, lease_wait=5)

    @precondition(lambda self: self.repo is not None)
    @rule(picks=st.lists(st.integers(0, 10**6), max_size=3), log=st.integers(0, 10))
    def record_run(self, picks: list[int], log: int) -> None:
        vs = self._versions()
        inputs = [
            {"ref": f"{n}@v{k}", "dataset": n, "number": k, "snapshot": sid.raw, "path": None}
            for n, k, sid in (vs[p % len(vs)] for p in picks if vs)
        ]
        env = vs[picks[0] % len(vs)][2] if vs and picks and picks[0] % 2 else None
        draft = Draft(
            name="r",
            command=["true"],
            cwd="/",
            inputs=inputs,
            environment=env,
            files={"stdout.txt": self.pool[log], "stderr.txt": b"e" * 300},
        )
        store_runs(self.store, [draft])

    @precondition(lambda self: self.repo is not None)
    @rule(pick=st.integers(0, 10**6))
    def delete_run(self, pick: int) -> None:
        runs = self._refs("run:")
        if runs:
            k, v = runs[pick % len(runs)]
            with self.store.ref_transaction() as rt:
                rt.delete([(k, ObjectId(v))])

    @precondition(lambda self: self.repo is not None)
    @rule(max_unused=st.sampled_from([0.0, 0.5]))
    def prune(self, max_unused: float) -> None:
        assert self.repo is not None
        before = self._counts()
        self.repo.prune(max_unused=max_unused)
        assert self._counts() == before, "prune changed the counts"

    @precondition(lambda self: self.repo is not None)
    @rule()
    def gc(self) -> None:
        assert self.repo is not None
        before = self._counts()
        self.repo.gc()
        assert self._counts() == before, "gc changed the counts"

    @precondition(lambda self: self.repo is not None)
    @rule()
    def rebuild(self) -> None:
        assert self.repo is not None
        self.repo.rebuild_index()
        with self.store.index.read() as txn:
            assert refcounts.is_current(self.store, txn)

    @precondition(lambda self: self.repo is not None)
    @rule(clear=st.booleans())
    def drop_counts(self, clear: bool) -> None:
        """A repository made before counts existed (no meta key, maybe no entries)."""
        with self.store.index.write() as txn:
            refcounts.invalidate(self.store, txn)
            if clear:
                txn.drop(self.store.index.db[refcounts.DB], delete=False)

    @precondition(lambda self: self.repo is not None)
    @rule(pick=st.integers(0, 10**6), tag=st.sampled_from(TAGS))
    def tag_behind_counts_back(self, pick: int, tag: str) -> None:
        """A writer that does not maintain counts (an older reprocas) moves a ref."""
        vs = self._versions()
        if vs:
            name, _, sid = vs[pick % len(vs)]
            with self.store.index.write() as txn:
                txn.put(tag_ref(name, tag).encode(), sid.raw, db=self.store.index.db["refs"])

    # -- checks ------------------------------------------------------------------------------

    def _counts(self) -> dict[bytes, int]:
        with self.store.index.read() as txn:
            return refcounts.stored(self.store, txn)

    @invariant()
    def counts_and_du_are_exact(self) -> None:
        if self.repo is None:
            return
        store = self.store
        with store.index.read() as txn:
            current = refcounts.is_current(store, txn)
            if current:
                assert refcounts.stored(store, txn) == refcounts.compute(store, txn)
        walked = accounting.du(store, recompute=True)
        counted = accounting.du(store)
        walked.stored_bytes = counted.stored_bytes  # du's own lock/tmp files may differ
        assert counted.to_json() == walked.to_json()
        with store.index.read() as txn:
            assert refcounts.is_current(store, txn)
            assert refcounts.stored(store, txn) == refcounts.compute(store, txn)

    def teardown(self) -> None:
        if self.repo is not None:
            self.repo.close()
        shutil.rmtree(self.tmp, ignore_errors=True)


RefcountMachine.TestCase.settings = settings(
    max_examples=40,
    stateful_step_count=25,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
test_refcounts_stay_exact = RefcountMachine.TestCase
