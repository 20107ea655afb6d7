"""`reprocas index rebuild` restores the run summaries, the provenance edges and the
forgotten list, not only the refs: `runs`, `lineage`, the forgotten list, the timeline
and run protection in `forget` are the same before and after — rebuilt in place, and
after the index directory was deleted."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path
from typing import Any

import pytest

import reprocas
from reprocas.model.ids import ObjectId
from reprocas.provenance.names import resolve_run
from tests.integration._helpers import assert_ok, assert_one_line_error, verify_ok
from tests.integration.conftest import Cli

PY = sys.executable
SCRIPT = (
    "import json, sys; open('out.txt', 'w').write(sys.argv[1]); "
    "json.dump({'acc': float(sys.argv[1])}, open('m.json', 'w'))"
)


def _commit(cli: Cli, tmp_path: Path, name: str, i: int, *tags: str) -> None:
    d = tmp_path / f"{name}-{i}"
    d.mkdir()
    (d / "data.txt").write_text(f"{name} version {i}\n" * (i + 1))
    args = [a for t in tags for a in ("-t", t)]
    assert_ok(cli("commit", d, "-d", name, "-m", f"{name} {i}", *args))


@pytest.fixture
def history(tmp_path: Path, cli: Cli, repo_path: Path) -> Path:
    """Runs that used and produced versions, forgotten versions (some with tags), and a
    prune that removed the forgotten bytes."""
    proj = tmp_path / "proj"
    proj.mkdir()
    assert_ok(cli("init"))
    for i in range(1, 5):
        _commit(cli, tmp_path, "clinical", i)
    for i in range(1, 4):
        _commit(cli, tmp_path, "other", i, f"t{i}")
    common = ["-o", "out.txt", "--metrics", "m.json"]
    assert_ok(cli("run", "-n", "train", "-i", "clinical@v1", "-p", "lr=0.1", *common,
                  "--", PY, "-c", SCRIPT, "0.5", cwd=proj))  # fmt: skip
    assert_ok(cli("run", "-n", "train", "-i", "clinical@v3", "-p", "lr=0.2", *common,
                  "--", PY, "-c", SCRIPT, "0.7", cwd=proj))  # fmt: skip
    assert_ok(cli("run", "-n", "eval", "--env", "none", "-i", "runs/train@v2", "-p", "k=1",
                  "--", PY, "-c", "0", cwd=proj))  # fmt: skip
    assert_ok(cli("forget", "--keep-last", "1", "-d", "clinical", "-d", "other"))
    assert_ok(cli("prune"))
    return proj


def _state(cli: Cli, repo_path: Path) -> dict[str, Any]:
    with reprocas.Repo.open(repo_path) as repo:
        forgotten = repo.forgotten()
    decision = assert_ok(cli("forget", "--keep-last", "1", "--dry-run", "--json")).json()
    # The repository's bytes by part (the index is rewritten by a rebuild) are not state.
    decision.pop("stored_before")
    decision.pop("stored_after")
    return {
        "runs": assert_ok(cli("runs", "--json")).json(),
        "lineage": {
            ref: assert_ok(cli("lineage", ref, "--json")).json()
            for ref in ("train#1", "train#2", "eval", "clinical@v1", "runs/train@v2")
        },
        "forgotten": forgotten,
        "log": assert_ok(cli("log", "--json")).json(),
        "timeline": assert_ok(cli("log", "--timeline", "--json")).json(),
        "forget": decision,
    }


def test_rebuild_restores_runs_edges_and_the_forgotten_list(
    cli: Cli, history: Path, repo_path: Path
) -> None:
    before = _state(cli, repo_path)
    # What the history made: three runs, two forgotten versions per dataset, and the
    # versions runs used are protected by name.
    assert [r["ref"] for r in before["runs"]] == ["train#1", "train#2", "eval#1"]
    assert [f["ref"] for f in before["forgotten"]] == [
        "clinical@v2", "other@v1", "other@v2",
    ]  # fmt: skip
    assert before["forgotten"][1]["tags"] == ["t1"]
    assert all(f["reasons"] == ["no rule keeps it"] for f in before["forgotten"])
    reasons = {k["ref"]: k["reasons"] for k in before["forget"]["keep"]}
    assert "used by run train#1" in reasons["clinical@v1"]
    assert "produced by run train#2" in reasons["runs/train@v2"]
    assert "used by run eval#1" in reasons["runs/train@v2"]
    assert before["lineage"]["clinical@v1"]["edges"]

    res = assert_ok(cli("index", "rebuild", "--json")).json()
    assert res["ok"] and res["runs"] == 3 and res["missing_runs"] == []
    assert _state(cli, repo_path) == before
    verify_ok(repo_path)

    shutil.rmtree(repo_path / "index")
    out = assert_ok(cli("index", "rebuild")).out
    assert "3 runs" in out
    assert _state(cli, repo_path) == before
    verify_ok(repo_path)
    # A new run goes on numbering after the restored ones.
    assert_ok(cli("run", "-n", "train", "--env", "none", "--", PY, "-c", "0", cwd=history))
    assert [r["ref"] for r in assert_ok(cli("runs", "--name", "train", "--json")).json()] == [
        "train#1", "train#2", "train#3",
    ]  # fmt: skip


def test_forgotten_list_from_an_older_ref_log_and_uncommitted_forgets(
    cli: Cli, tmp_path: Path, repo_path: Path
) -> None:
    """A ref log written before forgotten records were logged still gives the list
    (from the version-ref deletes: no reasons); a forget that never committed gives
    nothing."""
    assert_ok(cli("init"))
    for i in range(1, 4):
        _commit(cli, tmp_path, "ds", i, f"t{i}")
    assert_ok(cli("forget", "--keep-last", "1"))
    with reprocas.Repo.open(repo_path) as repo:
        before = repo.forgotten()
    assert [f["ref"] for f in before] == ["ds@v1", "ds@v2"]
    reflog = repo_path / "reflog"
    lines = [json.loads(ln) for ln in reflog.read_text().splitlines()]
    assert sum(e["op"] == "forget" for e in lines) == 2
    old = [e for e in lines if e["op"] != "forget"]
    # A forget whose process died before LMDB committed: logged, never committed.
    ghost = {"op": "forget", "id": "ab" * 32, "txn": "dead", "time_ns": 1,
             "forgotten": {"ref": "ds@v9", "name": "ds", "number": 9}}  # fmt: skip
    reflog.write_text("".join(json.dumps(e) + "\n" for e in [*old, ghost]))
    assert_ok(cli("index", "rebuild"))
    with reprocas.Repo.open(repo_path) as repo:
        after = repo.forgotten()
    assert [f["ref"] for f in after] == ["ds@v1", "ds@v2"]
    for a, b in zip(before, after, strict=True):
        assert a["reasons"] == ["no rule keeps it"] and b["reasons"] == []
        same = ("ref", "id", "name", "number", "kind", "time_ns", "logical_bytes", "tags")
        assert {k: a[k] for k in same} == {k: b[k] for k in same}
        assert abs(a["forgotten_ns"] - b["forgotten_ns"]) < 10**9
    verify_ok(repo_path)


def test_a_run_whose_record_is_lost_is_reported(cli: Cli, history: Path, repo_path: Path) -> None:
    with reprocas.Repo.open(repo_path) as repo:
        store = repo.store
        with store.index.read() as txn:
            rid = resolve_run(store, txn, "eval#1").id
            loc = store.index.get_object(txn, rid.raw)
            assert loc is not None
            pack_id = loc.pack
        pack_path = store.pack_path(pack_id)
    pack_path.unlink()
    assert_one_line_error(cli("index", "rebuild", "--json"), 6, "1 run(s) lost their record")
    res = cli("index", "rebuild")
    assert "PROBLEM run eval#1: its record is in no readable pack" in res.out
    # The other runs are indexed; eval keeps its ref.
    runs = [r["ref"] for r in assert_ok(cli("runs", "--name", "train", "--json")).json()]
    assert runs == ["train#1", "train#2"]
    with reprocas.Repo.open(repo_path) as repo, repo.store.index.read() as txn:
        assert resolve_run(repo.store, txn, "eval#1").id == ObjectId(rid.raw)
