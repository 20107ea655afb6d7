"""Retention protects what kept runs used, produced and ran in, and says which run."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest

import reprocas
from reprocas.retention.forget import apply_decision, decide
from reprocas.retention.policy import Policy, Rules, SnapshotRecord, apply_policy
from tests.integration._helpers import assert_ok, verify_ok
from tests.integration.conftest import Cli

PY = sys.executable
SCRIPT = "import shutil; shutil.copy('inputs/clinical/data.txt', 'out.txt')"


def _commit(cli: Cli, tmp_path: Path, i: int) -> None:
    d = tmp_path / f"v{i}"
    d.mkdir()
    (d / "data.txt").write_text(f"version {i}\n" * (100 * i))
    assert_ok(cli("commit", d, "-d", "clinical", "-m", f"v{i}"))


@pytest.fixture
def project(tmp_path: Path, cli: Cli) -> Path:
    proj = tmp_path / "proj"
    proj.mkdir()
    assert_ok(cli("init"))
    for i in (1, 2, 3):
        _commit(cli, tmp_path, i)
    return proj


def _reasons(out: dict[str, Any]) -> dict[str, list[str]]:
    return {r["ref"]: r["reasons"] for r in out["keep"] + out["remove"]}


def test_forget_keeps_the_version_a_run_used(cli: Cli, project: Path, repo_path: Path) -> None:
    assert_ok(cli("run", "-n", "train", "-i", "clinical@v1", "-o", "out.txt",
                  "--", PY, "-c", SCRIPT, cwd=project))  # fmt: skip
    text = assert_ok(cli("forget", "--keep-last", "1", "--dry-run")).out
    assert any(
        ln.startswith("keep ") and "clinical@v1" in ln and "used by run train#1" in ln
        for ln in text.splitlines()
    ), text
    out = assert_ok(cli("forget", "--keep-last", "1", "--json")).json()
    reasons = _reasons(out)
    assert reasons["clinical@v1"] == ["used by run train#1"]
    assert reasons["clinical@v2"] == ["no rule keeps it"]
    assert reasons["clinical@v3"] == ["latest", "last 1/1"]
    assert reasons["runs/train@v1"][:2] == ["latest", "produced by run train#1"]
    envs = [r for r in out["keep"] if r["ref"].startswith("env/")]
    assert envs and all("environment of run train#1" in r["reasons"] for r in envs)
    assert out["forgotten"] == ["clinical@v2"]
    assert_ok(cli("prune"))
    verify_ok(repo_path)
    with reprocas.Repo.open(repo_path) as repo:
        assert {e.ref for e in repo.log() if e.ref.startswith("clinical")} == {
            "clinical@v1", "clinical@v3",
        }  # fmt: skip
        assert repo.cat("clinical@v1", "data.txt") == b"version 1\n" * 100


def test_several_runs_and_run_outputs(cli: Cli, project: Path) -> None:
    """Run outputs are versions a kept run produced: `--kind run-output` keeps them all
    (runs are never forgotten, and their refs keep those bytes anyway)."""
    for _ in range(5):
        assert_ok(cli("run", "-n", "a", "--env", "none", "-i", "clinical@v2",
                      "--", PY, "-c", "0", cwd=project))  # fmt: skip
    assert_ok(cli("run", "-n", "b", "--env", "none", "-i", "clinical@v2", "-o", "out.txt",
                  "--", PY, "-c", SCRIPT, cwd=project))  # fmt: skip
    (project / "out.txt").write_text("something else\n")
    assert_ok(cli("run", "-n", "b", "--env", "none", "-o", "out.txt",
                  "--", PY, "-c", "0", cwd=project))  # fmt: skip
    out = assert_ok(cli("forget", "--keep-last", "1", "--dry-run", "--json")).json()
    reasons = _reasons(out)
    assert reasons["clinical@v2"] == ["used by runs a#1, a#2, a#3 and 3 more"]
    assert reasons["runs/b@v1"] == ["produced by run b#1"]
    assert out["remove"] == [{"ref": "clinical@v1", "id": out["remove"][0]["id"],
                              "reasons": ["no rule keeps it"]}]  # fmt: skip
    kind = assert_ok(cli("forget", "--kind", "run-output", "--keep-last", "1", "--json")).json()
    assert kind["remove"] == [] and kind["forgotten"] == []
    assert {r["ref"] for r in kind["keep"]} == {"runs/b@v1", "runs/b@v2"}


def test_a_run_recorded_after_the_decision_wins(cli: Cli, project: Path, repo_path: Path) -> None:
    policy = Policy(rules=Rules(keep_last=1))
    with reprocas.Repo.open(repo_path) as repo:
        decision = decide(repo.store, policy)
    assert {r.ref for r in decision.remove} == {"clinical@v1", "clinical@v2"}
    # Meanwhile, a run uses clinical@v1 (another process).
    assert_ok(cli("run", "-n", "late", "--env", "none", "-i", "clinical@v1",
                  "--", PY, "-c", "0", cwd=project))  # fmt: skip
    with reprocas.Repo.open(repo_path) as repo:
        done, skipped = apply_decision(repo.store, decision, policy)
        assert done == ["clinical@v2"] and skipped == ["clinical@v1"]
        assert repo.resolve("clinical@v1").ref == "clinical@v1"


def test_policy_names_the_runs() -> None:
    """The pure decision: run reasons protect and explain; the bare hook still works."""
    recs = [
        SnapshotRecord("d@v1", "i1", "d", 1, "dataset", 1, run_reasons=("used by run t#1",)),
        SnapshotRecord("d@v2", "i2", "d", 2, "dataset", 2),
        SnapshotRecord("d@v3", "i3", "d", 3, "dataset", 3, protected_by_run=True),
        SnapshotRecord("d@v4", "i4", "d", 4, "dataset", 4),
    ]
    d = apply_policy(recs, Policy(rules=Rules(keep_last=1)), 10)
    assert d.reasons["i1"] == ("used by run t#1",)
    assert d.reasons["i3"] == ("used by a kept run",)
    assert [r.ref for r in d.remove] == ["d@v2"]
    assert SnapshotRecord.from_json(recs[0].to_json()) == recs[0]
