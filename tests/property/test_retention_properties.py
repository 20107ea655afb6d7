"""Retention invariants on real repositories (hypothesis): nothing protected is ever
forgotten; the budget is met whenever the protected versions fit; the bytes forget
predicts equal the bytes prune frees, which equal the measured shrink of packs/."""

from __future__ import annotations

import random
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import reprocas
from reprocas.model.chunking import ChunkingConfig, CompressionConfig
from reprocas.retention.budget import build_model
from reprocas.retention.forget import records
from reprocas.retention.policy import Policy, Rules


def _packs_bytes(root: Path) -> int:
    return sum(p.stat().st_size for p in (root / "packs").glob("*/*.pack"))


def _build(root: Path, seed: int, versions: int) -> dict[str, dict[str, bytes]]:
    """A repository of two datasets whose versions share, add and drop files."""
    rng = random.Random(seed)
    pool = [rng.randbytes(rng.randrange(500, 9000)) for _ in range(12)]
    repo = reprocas.Repo.init(
        root / "repo",
        chunking=ChunkingConfig(256, 1024, 4096),
        compression=CompressionConfig(3, 8192),
        pack_size=24 * 1024,
    )
    contents: dict[str, dict[str, bytes]] = {}
    try:
        for i in range(versions):
            name = rng.choice(["x", "y"])
            src = root / f"src{i}"
            src.mkdir()
            files = {f"f{j}": rng.choice(pool) for j in range(rng.randrange(1, 5))}
            files["own"] = rng.randbytes(rng.randrange(100, 3000))
            for fname, data in files.items():
                (src / fname).write_bytes(data)
            tags = ["published"] if rng.random() < 0.15 else []
            r = repo.commit(src, name, message=str(i), tags=tags)
            contents[r.id.hex] = files
    finally:
        repo.close()
    return contents


@settings(
    max_examples=12,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(
    seed=st.integers(0, 10**6),
    versions=st.integers(3, 9),
    keep_last=st.integers(1, 3),
    budget_frac=st.floats(0.05, 1.2),
    max_unused=st.sampled_from([0.0, 0.1, 0.5]),
)
def test_forget_then_prune_is_exact_and_safe(
    seed: int, versions: int, keep_last: int, budget_frac: float, max_unused: float
) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        contents = _build(root, seed, versions)
        with reprocas.Repo.open(root / "repo") as repo:
            store = repo.store
            with store.index.read() as txn:
                recs = records(store, txn)
                model = build_model(store, txn, [bytes.fromhex(r.id) for r in recs])
            protected = set()
            for name in {r.dataset for r in recs}:
                mine = [r for r in recs if r.dataset == name]
                protected.add(max(mine, key=lambda r: r.number).id)
                protected |= {r.id for r in mine if "published" in r.tags}
            budget = max(1, int(model.size_before * budget_frac))
            protected_size = model.size_after(frozenset(protected))
            before = _packs_bytes(root / "repo")

            res = repo.forget(
                Policy(rules=Rules(keep_last=keep_last), budget=budget), max_unused=max_unused
            )
            d = res.decision
            removed = {r.id for r in d.remove}
            assert not (removed & protected), "a protected version was forgotten"
            assert not res.skipped
            if protected_size <= budget:
                assert d.budget_met and d.size_after is not None and d.size_after <= budget
            else:
                assert not d.budget_met

            report = repo.prune(max_unused=max_unused)
            after = _packs_bytes(root / "repo")
            assert report.freed_bytes == d.freed_bytes == before - after
            assert repo.verify(read_data=True).ok
            kept = {e.id for e in repo.log()}
            assert kept == {r.id for r in d.keep}
            for e in repo.log():
                for fname, data in contents[e.id].items():
                    assert repo.cat(e.ref, fname) == data
            # Nothing left to do: a second prune frees nothing.
            again = repo.prune_plan(max_unused=max_unused)
            assert again.freed_bytes == 0 and not again.delete and not again.repack
