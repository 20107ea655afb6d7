"""Index rebuild (from packs and the ref log) and gc (what crashed commits leave)."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

import reprocas
from reprocas.store.repository import Repository
from tests.integration._helpers import (
    LockMonitor,
    assert_ok,
    assert_one_line_error,
    clean_env,
    cli_argv,
    log_json,
    pack_files,
    run_cli,
    tmp_files,
    verify_ok,
)
from tests.integration.conftest import TreeFactory
from tests.integration.trees import Entry, csv_table, describe, diff, generate_tree, mutate_tree


def _history(repo_path: Path, tmp_path: Path) -> dict[str, dict[str, Entry]]:
    """Several datasets (one with a '/' in its name), versions, tags (one moved, two on
    one version, one set by a no-op commit), a single-file version. Returns the
    expected content by commit message."""
    expected: dict[str, dict[str, Entry]] = {}
    src = tmp_path / "src-clinical"
    with reprocas.Repo.init(repo_path, pack_size=512 << 10) as repo:
        expected["c1"] = generate_tree(src, 31)
        repo.commit(src, "clinical", message="c1", tags=["best"])
        expected["c2"] = mutate_tree(src, 32)
        repo.commit(src, "clinical", message="c2", step="clean")
        repo.tag("clinical@v2", "best", force=True)  # moved
        repo.tag("clinical@v2", "reviewed")
        expected["c3"] = mutate_tree(src, 33)
        repo.commit(src, "clinical", message="c3")
        repo.commit(src, "clinical", message="c3", tags=["final"])  # no-op + tag
        img = tmp_path / "src-imaging"
        expected["i1"] = generate_tree(img, 41)
        repo.commit(img, "imaging/ct", message="i1")
        (img / "more.csv").write_bytes(csv_table(5000, 3))
        expected["i2"] = describe(img)
        repo.commit(img, "imaging/ct", message="i2", tags=["published"])
        one = tmp_path / "src-weights"
        one.mkdir()
        (one / "model.bin").write_bytes(os.urandom(70_000))
        repo.commit(one / "model.bin", "weights", message="w1")
        expected["w1"] = describe(one)
    return expected


def _checkouts_match(
    repo_path: Path, expected: dict[str, dict[str, Entry]], work: Path, label: str
) -> None:
    with reprocas.Repo.open(repo_path) as repo:
        for e in repo.log():
            dest = work / f"{label}-{e.ref.replace('/', '_')}"
            repo.checkout(e.ref, dest)
            problems = diff(expected[e.message], describe(dest))
            assert not problems, f"{label}: {e.ref}: {problems[:10]}"


def _snapshot_state(repo_path: Path) -> dict[str, Any]:
    """What must survive a rebuild: the full log and what every ref form resolves to."""
    log = log_json(repo_path)
    resolved = {}
    with reprocas.Repo.open(repo_path) as repo:
        for e in log:
            name = e["ref"].split("@")[0]
            for ref in [
                e["ref"],
                e["id"][:8],
                f"{name}@latest",
                *(f"{name}@{t}" for t in e["tags"]),
            ]:
                resolved[ref] = repo.resolve(ref).id.hex
    return {"log": log, "resolved": resolved}


def test_index_rebuild_gives_an_equivalent_repository(tmp_path: Path) -> None:
    repo_path = tmp_path / "repo"
    expected = _history(repo_path, tmp_path)
    before = _snapshot_state(repo_path)
    assert len(before["log"]) == 6
    tags = {e["ref"]: e["tags"] for e in before["log"]}
    assert tags["clinical@v1"] == [] and tags["clinical@v2"] == ["best", "reviewed"]
    assert tags["clinical@v3"] == ["final"] and tags["imaging/ct@v2"] == ["published"]
    res = assert_ok(run_cli("--repo", str(repo_path), "index", "rebuild", "--json")).json()
    assert res["skipped_packs"] == [] and res["refs"] == 6 + 4  # versions + tags
    assert _snapshot_state(repo_path) == before
    verify_ok(repo_path, read_data=True)
    _checkouts_match(repo_path, expected, tmp_path, "rebuilt")
    # The human log output is identical too.
    assert run_cli("--repo", str(repo_path), "log").out.count("@v") == 6


def test_index_rebuild_after_deleting_the_index(tmp_path: Path) -> None:
    repo_path = tmp_path / "repo"
    expected = _history(repo_path, tmp_path)
    before = _snapshot_state(repo_path)
    shutil.rmtree(repo_path / "index")
    res = run_cli("--repo", str(repo_path), "index", "rebuild")
    assert_ok(res)
    assert _snapshot_state(repo_path) == before
    verify_ok(repo_path, read_data=True)
    _checkouts_match(repo_path, expected, tmp_path, "no-index")
    # And commits go on from where the history was.
    src = tmp_path / "src-clinical"
    (src / "after.txt").write_text("after the rebuild\n")
    expected["c4"] = describe(src)
    with reprocas.Repo.open(repo_path) as repo:
        assert repo.commit(src, "clinical", message="c4").ref == "clinical@v4"


def test_missing_index_is_not_taken_for_an_empty_repository(tmp_path: Path) -> None:
    """With the index directory gone, commands must not report an empty repository
    (or start numbering versions from v1 again, which a later rebuild would resolve
    against the old v1): they must say the index is missing / rebuild it, or rebuild
    it themselves."""
    repo_path = tmp_path / "repo"
    _history(repo_path, tmp_path)
    before = log_json(repo_path)
    packs = pack_files(repo_path)
    shutil.rmtree(repo_path / "index")
    res = run_cli("--repo", str(repo_path), "log", "--json")
    if res.returncode == 0:
        assert res.json() == before, "the log lost every version: the index was missing"
    else:
        assert_one_line_error(res, res.returncode, "index")
    # On either path nothing was lost: the packs are all there, and a rebuild gives
    # back the same log and a sound repository.
    assert pack_files(repo_path) == packs
    assert_ok(run_cli("index", "rebuild", repo=repo_path))
    assert log_json(repo_path) == before
    verify_ok(repo_path, read_data=True)


@pytest.mark.parametrize("crash_at", ["before-reflog", "after-reflog"])
def test_rebuild_does_not_resurrect_a_commit_that_never_finished(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, crash_at: str
) -> None:
    """A commit dies after its snapshot was sealed into a pack but before its ref moved
    (before or after the ref-log line was written). The live index has no such version;
    a rebuilt index must not have it either."""
    repo_path = tmp_path / "repo"
    src = tmp_path / "src"
    generate_tree(src, 51)
    with reprocas.Repo.init(repo_path) as repo:
        repo.commit(src, "ds", message="v1")
        mutate_tree(src, 52)
        real = Repository.append_reflog

        def crash(self: Repository, entries: list[dict[str, Any]]) -> None:
            if crash_at == "after-reflog":
                real(self, entries)
            raise KeyboardInterrupt  # the process dies here

        monkeypatch.setattr(Repository, "append_reflog", crash)
        with pytest.raises(KeyboardInterrupt):
            repo.commit(src, "ds", message="never finished")
        monkeypatch.undo()
    before = log_json(repo_path)
    assert [e["ref"] for e in before] == ["ds@v1"]
    verify_ok(repo_path, read_data=True)
    assert_ok(run_cli("--repo", str(repo_path), "index", "rebuild"))
    after = log_json(repo_path)
    assert [e["ref"] for e in after] == ["ds@v1"], (
        f"index rebuild brought back a version whose commit never finished ({crash_at}): "
        f"{[(e['ref'], e['message']) for e in after]}"
    )


def test_commit_through_a_handle_opened_before_a_rebuild_is_not_lost(tmp_path: Path) -> None:
    """A long-lived process holds a Repo while another process rebuilds the index; a
    commit through the old handle afterwards must not vanish (nor fail silently)."""
    repo_path = tmp_path / "repo"
    src = tmp_path / "src"
    generate_tree(src, 61)
    with reprocas.Repo.init(repo_path) as repo:
        repo.commit(src, "ds", message="v1")
    held = reprocas.Repo.open(repo_path)
    try:
        assert_ok(run_cli("--repo", str(repo_path), "index", "rebuild"))
        mutate_tree(src, 62)
        try:
            r = held.commit(src, "ds", message="v2")
        except reprocas.errors.ReprocasError:
            refused = True  # refused clearly: acceptable, when nothing was damaged
        else:
            refused = False
            assert r.ref == "ds@v2"
    finally:
        held.close()
    refs = [e["ref"] for e in log_json(repo_path)]
    if refused:
        assert refs == ["ds@v1"], f"a refused commit changed the log: {refs}"
        assert tmp_files(repo_path) == []
    else:
        assert "ds@v2" in refs, f"the commit of ds@v2 reported success but is gone: {refs}"
    verify_ok(repo_path, read_data=True)


# --- gc ---------------------------------------------------------------------------------


def _leave_debris(repo_path: Path, src: Path) -> None:
    """A commit killed half-way (unreferenced packs) plus stray temporary files and a
    sealed-but-never-indexed pack."""
    for i in range(3):
        (src / f"junk-{i}.bin").write_bytes(os.urandom(3 << 20))
    n0 = len(pack_files(repo_path))
    proc = subprocess.Popen(
        cli_argv(["commit", src, "-d", "ds", "-m", "killed"], repo_path),
        env=clean_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and len(pack_files(repo_path)) < n0 + 2:
        time.sleep(0.01)
    proc.kill()
    proc.wait()
    for i in range(3):
        (src / f"junk-{i}.bin").unlink()
    (repo_path / "tmp" / "pack-deadbeef.tmp").write_bytes(b"half a pack")
    fake = repo_path / "packs" / "ee" / ("ee" * 32 + ".pack")
    fake.parent.mkdir(exist_ok=True)
    fake.write_bytes(b"RPCPACK\x01 sealed but never indexed")


def test_gc_dry_run_then_gc(tmp_path: Path) -> None:
    repo_path = tmp_path / "repo"
    src = tmp_path / "src"
    expected = {"v1": generate_tree(src, 71)}
    with reprocas.Repo.init(repo_path, pack_size=1 << 20) as repo:
        repo.commit(src, "ds", message="v1")
    needed = pack_files(repo_path)
    _leave_debris(repo_path, src)
    if [e["ref"] for e in log_json(repo_path)] != ["ds@v1"]:
        pytest.fail("the killed commit finished before the kill; make it bigger")
    debris_packs = pack_files(repo_path) - needed
    debris_tmp = set(tmp_files(repo_path))
    assert debris_packs and debris_tmp
    # --dry-run: reports, deletes nothing.
    dry = assert_ok(run_cli("--repo", str(repo_path), "gc", "--dry-run", "--json")).json()
    assert {Path(p) for p in dry["removed_packs"]} == debris_packs
    assert {Path(p) for p in dry["removed_tmp"]} == debris_tmp
    assert pack_files(repo_path) == needed | debris_packs
    assert set(tmp_files(repo_path)) == debris_tmp
    human = assert_ok(run_cli("--repo", str(repo_path), "gc", "--dry-run"))
    assert "would remove" in human.out
    # The real thing.
    size = sum(p.stat().st_size for p in debris_packs | debris_tmp)
    real = assert_ok(run_cli("--repo", str(repo_path), "gc", "--json")).json()
    assert {Path(p) for p in real["removed_packs"]} == debris_packs
    assert real["freed_bytes"] == size
    assert pack_files(repo_path) == needed and tmp_files(repo_path) == []
    verify_ok(repo_path, read_data=True)
    _checkouts_match(repo_path, expected, tmp_path, "after-gc")
    # Nothing more to do.
    again = assert_ok(run_cli("--repo", str(repo_path), "gc", "--json")).json()
    assert again == {
        "removed_tmp": [],
        "removed_packs": [],
        "freed_bytes": 0,
        "leased_packs": [],
        "leased_bytes": 0,
    }


def test_gc_keeps_everything_versions_need(tmp_path: Path) -> None:
    repo_path = tmp_path / "repo"
    expected = _history(repo_path, tmp_path)
    packs = pack_files(repo_path)
    res = assert_ok(run_cli("--repo", str(repo_path), "gc", "--json")).json()
    assert res["removed_packs"] == [], res
    assert pack_files(repo_path) == packs
    verify_ok(repo_path, read_data=True)
    _checkouts_match(repo_path, expected, tmp_path, "kept")


def test_gc_during_a_commit_waits_for_it(tmp_path: Path, make_tree: TreeFactory) -> None:
    """gc takes the writers' lock exclusively: run during a commit, it neither deletes
    the commit's new packs nor breaks it."""
    repo_path = tmp_path / "repo"
    reprocas.Repo.init(repo_path, pack_size=1 << 20).close()
    src = tmp_path / "big"
    src.mkdir()
    # Up to 3 attempts (a new version each) until a gc is seen waiting on the commit:
    # on a loaded machine a gc may start only after the commit has finished.
    for attempt in range(1, 4):
        for i in range(6):
            (src / f"p{i}.bin").write_bytes(os.urandom(10 << 20))
        want = describe(src)
        with LockMonitor(repo_path / "locks" / "gc.lock") as mon:
            commit = subprocess.Popen(
                cli_argv(["commit", src, "-d", "ds", "--json"], repo_path),
                env=clean_env(),
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
            )
            # Start the gcs once the commit holds the writers' lock.
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline and not any(
                commit.pid in h for _, h, _ in mon.samples
            ):
                time.sleep(0.001)
            gcs = [
                subprocess.Popen(
                    cli_argv(["gc", "--json"], repo_path),
                    env=clean_env(),
                    stdout=subprocess.PIPE,
                    stderr=subprocess.PIPE,
                )
                for _ in range(2)
            ]
            _, err = commit.communicate(timeout=60)
            assert commit.returncode == 0, err.decode()
            for g in gcs:
                _, g_err = g.communicate(timeout=60)
                assert g.returncode == 0, g_err.decode()
        # The gcs really ran during the commit: seen blocked on the lock the commit held,
        # and never holding it at the same time as the commit.
        for g in gcs:
            assert not mon.ever_held_together(commit.pid, g.pid), "gc ran inside the commit"
        with reprocas.Repo.open(repo_path) as repo:
            repo.checkout(f"ds@v{attempt}", tmp_path / f"out-{attempt}")
        assert not diff(want, describe(tmp_path / f"out-{attempt}"))
        if any(mon.held_while_waited(commit.pid, g.pid) for g in gcs):
            break
    else:
        raise AssertionError("in 3 attempts no gc was seen waiting on the commit")
    verify_ok(repo_path, read_data=True)


def _ref_word_datasets(repo_path: Path, tmp_path: Path) -> dict[str, dict[str, Entry]]:
    """Datasets 'b/v', 'c', 'c/tag' and 'v', each with one version tagged 't'. Names may
    have '/'-separated parts, so these are all valid; their refs (ds/b/v/tag/t,
    ds/c/tag/v/0000000001, ...) must not be mistaken for refs of datasets 'b' or 'c'."""
    expected: dict[str, dict[str, Entry]] = {}
    with reprocas.Repo.init(repo_path) as repo:
        for name in ("b/v", "c", "c/tag", "v"):
            src = tmp_path / f"src-{name.replace('/', '_')}"
            src.mkdir()
            (src / "f.txt").write_text(name)
            expected[name] = describe(src)
            repo.commit(src, name, message=name, tags=["t"])
    return expected


def test_dataset_names_that_contain_ref_words_are_listed_correctly(tmp_path: Path) -> None:
    repo_path = tmp_path / "repo"
    _ref_word_datasets(repo_path, tmp_path)
    with reprocas.Repo.open(repo_path) as repo:
        assert repo.datasets() == ["b/v", "c", "c/tag", "v"]
        with pytest.raises(reprocas.errors.RefNotFoundError) as info:
            repo.resolve("c@nosuch")
        assert "tags: t," in str(info.value), str(info.value)
        assert "v/0000000001" not in str(info.value), str(info.value)


def test_index_rebuild_with_dataset_names_that_contain_ref_words(tmp_path: Path) -> None:
    repo_path = tmp_path / "repo"
    expected = _ref_word_datasets(repo_path, tmp_path)
    before = _snapshot_state(repo_path)
    res = run_cli("--repo", str(repo_path), "index", "rebuild")
    assert_ok(res)
    assert _snapshot_state(repo_path) == before
    _checkouts_match(repo_path, expected, tmp_path, "names")
