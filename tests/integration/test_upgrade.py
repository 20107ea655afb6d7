"""`reprocas upgrade`: a format-2 repository becomes format 3 in place — every ref checks
out byte-identically, runs still resolve their inputs, old ids keep resolving, and a
SIGKILL at any moment leaves a repository that opens as 2 or 3."""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

import reprocas
from reprocas.model.ids import ObjectId
from reprocas.store.upgrade import upgrade
from tests.integration._helpers import (
    assert_ok,
    assert_one_line_error,
    clean_env,
    cli_argv,
    run_cli,
    verify_ok,
)
from tests.integration.trees import csv_table, describe

PY = sys.executable
SCRIPT = "import shutil; shutil.copy('inputs/clinical/data.csv', 'out.csv')"
FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"


def _cli(repo: Path, *args: str | Path, cwd: Path | None = None) -> Any:
    return assert_ok(run_cli(*args, repo=repo, cwd=cwd))


def _build(root: Path) -> Path:
    """A format-2 repository with five CSV versions (deltas), a directory dataset with
    a symlink and modes, tags, a run with its environment snapshot, and a version
    forgotten (not pruned) under retention."""
    repo = root / "repo"
    _cli(repo, "init", "--format", "2")
    src = root / "csv"
    src.mkdir()
    for i in range(1, 6):
        rows = csv_table(3000, 7) + csv_table(200 * i, 100 + i, header=False, first_row=3000)
        (src / "data.csv").write_bytes(rows)
        _cli(repo, "commit", src, "-d", "clinical", "-m", f"v{i}")
    tree = root / "tree"
    (tree / "bin").mkdir(parents=True)
    (tree / "bin" / "run.sh").write_text("#!/bin/sh\necho hi\n")
    os.chmod(tree / "bin" / "run.sh", 0o755)
    (tree / "secret.txt").write_text("private\n")
    os.chmod(tree / "secret.txt", 0o600)
    os.symlink("bin/run.sh", tree / "link")
    _cli(repo, "commit", tree, "-d", "tree", "--tag", "first")
    (tree / "more.txt").write_text("more\n")
    _cli(repo, "commit", tree, "-d", "tree")
    _cli(repo, "tag", "clinical@v2", "published")
    proj = root / "proj"
    proj.mkdir()
    _cli(repo, "run", "-n", "train", "-i", "clinical@v3", "-o", "out.csv",
         "--", PY, "-c", SCRIPT, cwd=proj)  # fmt: skip
    # clinical@v1 is forgotten (v2 is published, v3 used by the run, v4/v5 the last 2).
    out = json.loads(_cli(repo, "forget", "-d", "clinical", "--keep-last", "2", "--json").out)
    assert out["forgotten"] == ["clinical@v1"], out
    return repo


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _build(tmp_path_factory.mktemp("upgrade-src"))


def _copy(src: Path, dest: Path) -> Path:
    shutil.copytree(src, dest, symlinks=True)
    return dest


def _state(repo: Path, tmp: Path) -> dict[str, Any]:
    """What must survive an upgrade: du, log, runs, lineage JSON and every checkout."""
    log = json.loads(_cli(repo, "log", "--json").out)
    refs = [e["ref"] for e in log]
    tags = ["clinical@published", "tree@first"]
    checkouts = {}
    for ref in refs + tags:
        dest = tmp / "co" / ref.replace("@", "-").replace("/", "_")
        _cli(repo, "checkout", ref, dest)
        checkouts[ref] = {k: repr(v) for k, v in describe(dest).items()}
        shutil.rmtree(dest)
    return {
        "du": json.loads(_cli(repo, "du", "--json").out),
        "log": log,
        "runs": json.loads(_cli(repo, "runs", "--json").out),
        "lineage": json.loads(_cli(repo, "lineage", "train#1", "--json").out),
        "lineage_v3": json.loads(_cli(repo, "lineage", "clinical@v3", "--json").out),
        "checkouts": checkouts,
    }


def _aliases(repo: Path) -> dict[str, str]:
    """old id -> new id, for snapshots and their root trees (content ids)."""
    out: dict[str, str] = {}
    with reprocas.Repo.open(repo) as r:
        store = r.store
        with store.index.read() as txn:
            for k, v in txn.cursor(db=store.index.db["aliases"]):
                old, new = bytes(k), bytes(v)
                out[old.hex()] = new.hex()
                old_snap = store.load(txn, ObjectId(old))
                new_snap = store.load_snapshot(txn, ObjectId(new))
                out[old_snap.root.hex] = new_snap.root.hex
    return out


def _normalise(value: Any, amap: dict[str, str]) -> Any:
    if isinstance(value, dict):
        return {k: _normalise(v, amap) for k, v in value.items()}
    if isinstance(value, list):
        return [_normalise(v, amap) for v in value]
    if isinstance(value, str):
        for old, new in amap.items():
            value = value.replace(old, new).replace(old[:12], new[:12])
        return value
    return value


def _du_view(du: dict[str, Any]) -> dict[str, Any]:
    """du without the stored bytes (the upgrade adds packs of trees and chunk maps;
    the chunks, and what each version holds alone, are the same)."""
    return {
        "logical_bytes": du["logical_bytes"],
        "versions": du["versions"],
    }


def test_upgrade_keeps_everything(source: Path, tmp_path: Path) -> None:
    repo = _copy(source, tmp_path / "repo")
    before = _state(repo, tmp_path)
    dry = json.loads(_cli(repo, "upgrade", "--dry-run", "--json").out)
    assert dry["dry_run"] and dry["snapshots"] >= 8
    assert json.loads((repo / "reprocas.json").read_text())["version"] == 2
    res = json.loads(_cli(repo, "upgrade", "--json").out)
    assert (res["from"], res["to"]) == (2, 3)
    assert res["snapshots"] == res["aliases"] == dry["snapshots"]
    assert res["new_packs"] >= 1 and res["chunkmaps"] >= 6
    assert set(res) >= {"from", "to", "snapshots", "trees", "chunkmaps", "aliases",
                        "new_packs", "seconds"}  # fmt: skip
    assert json.loads((repo / "reprocas.json").read_text())["version"] == 3
    amap = _aliases(repo)
    after = _state(repo, tmp_path)
    # Snapshot and content ids change by design; everything else is equal.
    assert after["checkouts"] == before["checkouts"]
    assert after["log"] == _normalise(before["log"], amap)
    assert all(old not in json.dumps(after["log"]) for old in amap)
    assert _du_view(after["du"]) == _normalise(_du_view(before["du"]), amap)
    assert after["runs"] == before["runs"]  # run records are not rewritten
    assert after["lineage"] == _normalise(before["lineage"], amap)
    assert after["lineage_v3"] == _normalise(before["lineage_v3"], amap)
    # Retention state: the forgotten version is still listed, under its new id.
    with reprocas.Repo.open(repo) as r:
        assert r.store.format_version == 3
        verify_ok(r)
        with r.store.index.read() as txn:
            cur = txn.cursor(db=r.store.index.db["forgotten"])
            forgotten = [bytes(k).hex() for k in cur.iternext(values=False)]
            assert r.store.index.get_meta(txn, "upgrade") is None
    assert len(forgotten) == 1 and forgotten[0] in amap.values()
    # Again: nothing to do.
    again = _cli(repo, "upgrade")
    assert "already format 3" in again.out
    # Old ids keep resolving, and say what they became.
    old_v3 = next(e["id"] for e in before["log"] if e["ref"] == "clinical@v3")
    shown = json.loads(_cli(repo, "show", old_v3[:12], "--json").out)
    assert shown["aliased_from"] == old_v3 and shown["id"] == amap[old_v3]
    text = _cli(repo, "show", old_v3).out
    assert f"snapshot {old_v3} was upgraded to {amap[old_v3]} (format 3)" in text
    # gc then removes only what nothing names; runs still resolve their inputs.
    _cli(repo, "gc")
    verify_ok(repo)
    assert _state(repo, tmp_path)["checkouts"] == before["checkouts"]
    assert json.loads(_cli(repo, "show", old_v3, "--json").out)["id"] == amap[old_v3]
    replay = json.loads(
        assert_ok(
            run_cli("replay", "train#1", "--json", "--workdir", tmp_path / "rp", repo=repo)
        ).out
    )
    assert replay["verdict"] == "identical", replay
    # New work is format 3; the upgraded repository rebuilds to the same state.
    (tmp_path / "new").mkdir()
    (tmp_path / "new" / "x.txt").write_text("new\n")
    _cli(repo, "commit", tmp_path / "new", "-d", "clinical")
    pre = _state(repo, tmp_path)
    _cli(repo, "index", "rebuild")
    verify_ok(repo)
    assert json.loads(_cli(repo, "show", old_v3, "--json").out)["id"] == amap[old_v3]
    rebuilt = _state(repo, tmp_path)
    for key in ("log", "runs", "lineage", "lineage_v3", "checkouts"):
        assert rebuilt[key] == pre[key], key


def test_crash_between_index_and_marker_is_finished_at_open(source: Path, tmp_path: Path) -> None:
    repo = _copy(source, tmp_path / "repo")
    with reprocas.Repo.open(repo) as r:
        upgrade(r.store, stop_after="index")
    assert json.loads((repo / "reprocas.json").read_text())["version"] == 2
    with reprocas.Repo.open(repo) as r:  # the open rule finishes the marker step
        assert r.store.format_version == 3
    assert json.loads((repo / "reprocas.json").read_text())["version"] == 3
    verify_ok(repo)
    # Stopped before the index step: still format 2, and the upgrade completes later.
    repo2 = _copy(source, tmp_path / "repo2")
    with reprocas.Repo.open(repo2) as r:
        upgrade(r.store, stop_after="convert")
    with reprocas.Repo.open(repo2) as r:
        assert r.store.format_version == 2
        verify_ok(r)
        assert upgrade(r.store).to_version == 3
        verify_ok(r)


def test_frozen_format2_fixture_upgrades(tmp_path: Path) -> None:
    repo = tmp_path / "format2"
    shutil.copytree(FIXTURES / "format2" / "repo", repo)
    for sub in ("tmp", "locks"):
        (repo / sub).mkdir(exist_ok=True)
    expected = json.loads((FIXTURES / "format2" / "expected.json").read_text())
    from scripts.make_fixture import describe as fixture_describe

    _cli(repo, "upgrade")
    _cli(repo, "verify", "--read-data")
    with reprocas.Repo.open(repo) as r:
        assert r.store.format_version == 3
    for ref, want in expected["versions"].items():
        dest = tmp_path / "co" / ref.replace("@", "-")
        _cli(repo, "checkout", ref, dest)
        assert fixture_describe(dest) == want["files"], ref
        shown = json.loads(_cli(repo, "show", want["id"], "--json").out)
        assert shown["aliased_from"] == want["id"] and shown["ref"] == ref
        _cli(repo, "check-dir", dest, ref)


def test_format1_is_refused_with_the_way_on(tmp_path: Path) -> None:
    repo = tmp_path / "format1"
    shutil.copytree(FIXTURES / "format1" / "repo", repo)
    for sub in ("tmp", "locks"):
        (repo / sub).mkdir(exist_ok=True)
    before = (repo / "reprocas.json").read_bytes()
    res = run_cli("upgrade", repo=repo)
    assert_one_line_error(res, 7, "format version 1", "repack --deltas")
    assert (repo / "reprocas.json").read_bytes() == before
    _cli(repo, "verify")


def _big_source(root: Path) -> Path:
    """Enough snapshots and files that an upgrade takes a good part of a second."""
    repo = root / "repo"
    r = reprocas.Repo.init(repo, format=2)
    src = root / "src"
    rng = random.Random(16)
    for d in range(8):
        (src / f"d{d}").mkdir(parents=True)
    for _ in range(40):
        for _f in range(6):
            p = src / f"d{rng.randrange(8)}" / f"f{rng.randrange(40)}.txt"
            p.write_bytes(rng.randbytes(rng.randrange(100, 3000)))
        r.commit(src, "big")
    r.close()
    return repo


def test_sigkill_at_random_moments(tmp_path: Path) -> None:
    source = _big_source(tmp_path / "big")
    with reprocas.Repo.open(source) as r:
        r.checkout("big", tmp_path / "want")
    want = describe(tmp_path / "want")
    argv = cli_argv(["upgrade"], source)

    def start(repo: Path) -> subprocess.Popen[bytes]:
        return subprocess.Popen(
            [*argv[:2], str(repo), *argv[3:]],
            env=clean_env(),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )

    trial = _copy(source, tmp_path / "trial")
    t0 = time.monotonic()
    assert start(trial).wait(60) == 0
    whole = time.monotonic() - t0
    rng = random.Random(2026)
    seen = {2: 0, 3: 0}
    for i in range(20):
        repo = _copy(source, tmp_path / f"k{i}")
        proc = start(repo)
        time.sleep(rng.uniform(0.3, 1.0) * whole)
        proc.send_signal(signal.SIGKILL)
        proc.wait(30)
        with reprocas.Repo.open(repo) as r:
            seen[r.store.format_version] += 1
            verify_ok(r, read_data=False)
            r.checkout("big", tmp_path / f"co{i}")
            assert describe(tmp_path / f"co{i}") == want
            upgrade(r.store)
            assert r.store.format_version == 3
            verify_ok(r, read_data=False)
        shutil.rmtree(repo)
    assert sum(seen.values()) == 20
    # The moments spread over the run: some kills came before the index step, some after.
    assert seen[2] and seen[3], (seen, whole)
