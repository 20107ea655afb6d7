"""`forget --budget` alone, one definition of "stored" in `du` and `forget`, and prune's
repack threshold, as real processes."""

from __future__ import annotations

import json
from pathlib import Path

import reprocas
from tests.integration._helpers import assert_ok, run_cli


def _repo(tmp_path: Path, n: int = 4) -> Path:
    """ds@v1..vN, each version 60 kB of its own (incompressible) data."""
    import random

    repo_path = tmp_path / "repo"
    src = tmp_path / "src"
    src.mkdir()
    rng = random.Random(7)
    with reprocas.Repo.init(repo_path) as repo:
        for _ in range(n):
            (src / "data.bin").write_bytes(rng.randbytes(60_000))
            repo.commit(src, "ds")
    return repo_path


def _forget(repo: Path, *args: str) -> dict[str, object]:
    out = json.loads(assert_ok(run_cli("forget", "--dry-run", "--json", *args, repo=repo)).out)
    assert isinstance(out, dict)
    return out


def test_budget_alone_forgets_nothing_when_the_store_fits(tmp_path: Path) -> None:
    repo = _repo(tmp_path)
    d = _forget(repo, "--budget", "100MB")
    assert d["remove"] == [] and d["budget_met"]
    assert len(d["keep"]) == 4  # type: ignore[arg-type]


def test_budget_alone_forgets_only_what_it_needs_oldest_first(tmp_path: Path) -> None:
    repo = _repo(tmp_path)
    size = _forget(repo, "--budget", "100MB")["size_before"]
    assert isinstance(size, int)
    # Room for about three of the four versions: only the oldest has to go.
    d = _forget(repo, "--budget", str(size - 30_000))
    assert [r["ref"] for r in d["remove"]] == ["ds@v1"]  # type: ignore[union-attr]
    assert d["budget_met"]
    text = assert_ok(run_cli("forget", "--budget", str(size - 30_000), "--dry-run", repo=repo))
    assert "keep   ds@v2" in text.out and "fits the budget" in text.out
    # Room for two: the two oldest go, the newest two stay.
    d = _forget(repo, "--budget", str(size - 90_000))
    assert [r["ref"] for r in d["remove"]] == ["ds@v1", "ds@v2"]  # type: ignore[union-attr]
