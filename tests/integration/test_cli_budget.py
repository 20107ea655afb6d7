"""`forget --budget` alone, one definition of "stored" in `du` and `forget`, and prune's
repack threshold, as real processes."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

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


def _forget(repo: Path, *args: str) -> dict[str, Any]:
    out = json.loads(assert_ok(run_cli("forget", "--dry-run", "--json", *args, repo=repo)).out)
    assert isinstance(out, dict)
    return out


def test_budget_alone_forgets_nothing_when_the_store_fits(tmp_path: Path) -> None:
    repo = _repo(tmp_path)
    d = _forget(repo, "--budget", "100MB")
    assert d["remove"] == [] and d["budget_met"]
    assert len(d["keep"]) == 4


def test_budget_alone_forgets_only_what_it_needs_oldest_first(tmp_path: Path) -> None:
    repo = _repo(tmp_path)
    size = _forget(repo, "--budget", "100MB")["size_before"]
    assert isinstance(size, int)
    # Room for about three of the four versions: only the oldest has to go.
    d = _forget(repo, "--budget", str(size - 30_000))
    assert [r["ref"] for r in d["remove"]] == ["ds@v1"]
    assert d["budget_met"]
    text = assert_ok(run_cli("forget", "--budget", str(size - 30_000), "--dry-run", repo=repo))
    assert "keep   ds@v2" in text.out and "fits the budget" in text.out
    # Room for two: the two oldest go, the newest two stay.
    d = _forget(repo, "--budget", str(size - 90_000))
    assert [r["ref"] for r in d["remove"]] == ["ds@v1", "ds@v2"]


def _repo_with_a_small_change(tmp_path: Path) -> Path:
    """ds@v1 and ds@v2 share a 1 MB file; only a 100-byte file differs."""
    import random

    repo_path = tmp_path / "repo"
    src = tmp_path / "src"
    src.mkdir()
    (src / "big.bin").write_bytes(random.Random(3).randbytes(1_000_000))
    with reprocas.Repo.init(repo_path) as repo:
        (src / "small.txt").write_text("a" * 100)
        repo.commit(src, "ds")
        (src / "small.txt").write_text("b" * 100)
        repo.commit(src, "ds")
    return repo_path


def _human(n: int) -> str:
    from reprocas.cli.output import human_bytes

    return human_bytes(n)


def test_du_and_forget_share_one_definition_of_stored(tmp_path: Path) -> None:
    repo = _repo(tmp_path)
    du = json.loads(assert_ok(run_cli("du", "--json", repo=repo)).out)
    parts = du["stored"]
    assert parts["total"] == du["stored_bytes"] == parts["packs"] + parts["index"] + parts["other"]
    assert parts["packs"] > 0 and parts["index"] > 0
    d = _forget(repo, "--keep-last", "1")
    assert d["stored_before"] == parts
    assert d["stored_after"]["packs"] == parts["packs"] - d["freed_bytes"]
    assert d["stored_after"]["index"] == parts["index"]
    text = assert_ok(run_cli("du", repo=repo)).out
    assert "= packs" in text and "+ index" in text
    text = assert_ok(run_cli("forget", "--keep-last", "1", "--dry-run", repo=repo)).out
    assert f"goes from {_human(parts['total'])}" in text and "+ index" in text


def test_du_ref_says_what_forget_frees_for_it(tmp_path: Path) -> None:
    repo = _repo(tmp_path)
    one = json.loads(assert_ok(run_cli("du", "ds@v1", "--json", repo=repo)).out)
    d = _forget(repo, "--keep-last", "3")  # forgets exactly ds@v1
    assert [r["ref"] for r in d["remove"]] == ["ds@v1"]
    assert one["frees_if_forgotten"] == d["freed_bytes"] > 0
    assert one["stored"]["total"] == one["stored_bytes"]


def test_prune_repacks_only_when_it_pays(tmp_path: Path) -> None:
    repo = _repo_with_a_small_change(tmp_path)
    assert_ok(run_cli("forget", "--keep-last", "1", repo=repo))
    plan = json.loads(assert_ok(run_cli("prune", "--dry-run", "--json", repo=repo)).out)["plan"]
    assert plan["repack"] == [], plan
    assert plan["repack_min_free"] == {"bytes": 0, "share": 0.01}
    [skipped] = plan["not_worth_repacking"]
    assert skipped["size"] > 1_000_000 and 0 < skipped["unused_bytes"] < 2_000
    text = assert_ok(run_cli("prune", "--dry-run", repo=repo)).out
    assert "repack threshold: frees at least 1% of the pack" in text
    assert "1 pack with" in text and "would not pay" in text
    # A threshold of 0 repacks whenever a forgotten version's data is there.
    assert_ok(run_cli("config", "set", "retention.repack-min-free", "0", repo=repo))
    plan = json.loads(assert_ok(run_cli("prune", "--dry-run", "--json", repo=repo)).out)["plan"]
    assert len(plan["repack"]) == 1 and plan["not_worth_repacking"] == []
    # In bytes, too; and a bad value is one line.
    assert_ok(run_cli("config", "set", "retention.repack-min-free", "1KiB", repo=repo))
    plan = json.loads(assert_ok(run_cli("prune", "--dry-run", "--json", repo=repo)).out)["plan"]
    assert plan["repack_min_free"] == {"bytes": 1024, "share": 0.0}
    res = run_cli("config", "set", "retention.repack-min-free", "lots%", repo=repo)
    assert res.returncode == 2 and "repack-min-free" in res.err
