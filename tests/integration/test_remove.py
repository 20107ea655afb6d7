"""`reprocas rm` (forget by name), `rm --purge` (delete the bytes now, provably) and
`tag --delete` / `tag --force`, as real processes on real files (issue 13, "Removing
what must go")."""

from __future__ import annotations

import random
import secrets
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import reprocas
from reprocas.store.index import Index
from tests.integration._helpers import (
    assert_ok,
    assert_one_line_error,
    assert_repo_unchanged,
    clean_env,
    cli_argv,
    log_json,
    repo_state,
    run_cli,
    stored_bytes,
    verify_ok,
)
from tests.integration.conftest import Cli
from tests.integration.trees import describe

PY = sys.executable
COPY = "import shutil; shutil.copy('inputs/cohort/data.txt', 'out.txt')"


def _commit(cli: Cli, tmp_path: Path, i: int, name: str = "cohort") -> Path:
    d = tmp_path / f"{name.replace('/', '_')}-v{i}"
    d.mkdir()
    (d / "data.txt").write_text(f"{name} version {i}\n" * (50 * i))
    assert_ok(cli("commit", d, "-d", name, "-m", f"v{i}"))
    return d


@pytest.fixture
def three(tmp_path: Path, cli: Cli) -> list[Path]:
    """A repository with cohort@v1..v3; returns their source directories."""
    assert_ok(cli("init"))
    return [_commit(cli, tmp_path, i) for i in (1, 2, 3)]


def _refs(repo_path: Path) -> set[str]:
    return {e["ref"] for e in log_json(repo_path)}


def _checks_out_as(cli: Cli, ref: str, src: Path, dest: Path) -> None:
    assert_ok(cli("checkout", ref, dest))
    assert describe(dest) == describe(src), f"{ref} does not check out as {src}"


# -- rm ---------------------------------------------------------------------------------


def test_rm_one_version(cli: Cli, three: list[Path], repo_path: Path, tmp_path: Path) -> None:
    out = assert_ok(cli("rm", "cohort@v2")).out
    assert "removed cohort@v2" in out, out
    assert _refs(repo_path) == {"cohort@v1", "cohort@v3"}
    assert_one_line_error(cli("show", "cohort@v2"), 4, "cohort has no 'v2'")
    for i in (1, 3):
        _checks_out_as(cli, f"cohort@v{i}", three[i - 1], tmp_path / f"out{i}")
    verify_ok(repo_path)
    with reprocas.Repo.open(repo_path) as repo:
        [rec] = repo.forgotten()
    assert rec["ref"] == "cohort@v2" and rec["by"] == "rm"
    assert "removed by rm" in rec["reasons"]
    # Prune then frees its bytes like any forgotten version's, and the rest stays sound.
    assert_ok(cli("prune"))
    verify_ok(repo_path)
    assert_one_line_error(cli("rm", "cohort@v9"), 4, "v9")
    assert_one_line_error(cli("rm", "nope"), 4, "nope")


def test_rm_the_latest_never_reuses_its_number(
    cli: Cli, three: list[Path], repo_path: Path, tmp_path: Path
) -> None:
    """A removed number is never given to another version: `cohort@v3` means one thing."""
    assert_ok(cli("rm", "cohort@latest"))
    assert _refs(repo_path) == {"cohort@v1", "cohort@v2"}
    new = _commit(cli, tmp_path, 4)
    assert _refs(repo_path) == {"cohort@v1", "cohort@v2", "cohort@v4"}
    _checks_out_as(cli, "cohort@latest", new, tmp_path / "out")
    verify_ok(repo_path)


def test_rm_a_dataset_and_an_id_prefix(cli: Cli, tmp_path: Path, repo_path: Path) -> None:
    assert_ok(cli("init"))
    for i in (1, 2):
        _commit(cli, tmp_path, i, "a")
        _commit(cli, tmp_path, i, "b")
    b1 = assert_ok(cli("show", "b@v1", "--json")).json()["id"]
    out = assert_ok(cli("rm", "a", b1[:10], "--json")).json()
    assert out["removed"] == ["a@v1", "a@v2", "b@v1"]
    assert _refs(repo_path) == {"b@v2"}
    verify_ok(repo_path)


def test_rm_refuses_a_runs_input_then_force_names_the_run(
    cli: Cli, three: list[Path], repo_path: Path, tmp_path: Path
) -> None:
    proj = tmp_path / "proj"
    proj.mkdir()
    assert_ok(cli("run", "-n", "train", "--env", "none", "-i", "cohort@v1", "-o", "out.txt",
                  "--", PY, "-c", COPY, cwd=proj))  # fmt: skip
    before = repo_state(repo_path)
    assert_one_line_error(
        cli("rm", "cohort@v1", "cohort@v2"), 2, "cohort@v1 is used by run train#1", "--force"
    )
    assert_repo_unchanged(repo_path, before)  # v2, which nothing needs, stays too
    # The run's output is a version the run produced: refused the same way.
    assert_one_line_error(cli("rm", "runs/train"), 2, "produced by run train#1")
    text = assert_ok(cli("rm", "cohort@v1", "--force")).out
    assert "orphaned runs: train#1" in text, text
    assert _refs(repo_path) >= {"cohort@v2", "cohort@v3"}
    assert "cohort@v1" not in _refs(repo_path)
    out = assert_ok(cli("rm", "runs/train", "--force", "--json")).json()
    assert out["orphaned_runs"] == ["train#1"]
    assert out["versions"][0]["needed_by"] == ["produced by run train#1"]
    # The orphaned run is still listed, and (not purged) still holds what it used.
    assert "train#1" in assert_ok(cli("runs")).out
    assert_ok(cli("prune"))
    verify_ok(repo_path)


def test_rm_of_a_tagged_version(cli: Cli, three: list[Path], repo_path: Path) -> None:
    assert_ok(cli("tag", "cohort@v2", "published"))
    before = repo_state(repo_path)
    assert_one_line_error(cli("rm", "cohort@v2"), 2, "cohort@v2 is tagged published", "--force")
    assert_one_line_error(cli("rm", "cohort@published"), 2, "tagged published")
    assert_repo_unchanged(repo_path, before)
    text = assert_ok(cli("rm", "cohort@published", "--force")).out
    assert "deleted tag cohort@published" in text, text
    assert_one_line_error(cli("show", "cohort@published"), 4, "published")
    assert _refs(repo_path) == {"cohort@v1", "cohort@v3"}
    verify_ok(repo_path)


def test_rm_dry_run_changes_nothing(cli: Cli, three: list[Path], repo_path: Path) -> None:
    assert_ok(cli("tag", "cohort@v1", "first"))
    before = repo_state(repo_path)
    text = assert_ok(cli("rm", "cohort", "--dry-run", "--force")).out
    assert "would remove cohort@v1" in text and "would remove cohort@v3" in text, text
    assert "would delete tag cohort@first" in text, text
    out = assert_ok(cli("rm", "cohort@v2", "--dry-run", "--json")).json()
    assert out["dry_run"] and out["removed"] == [] and out["versions"][0]["ref"] == "cohort@v2"
    # A dry run refuses exactly as the real command would.
    assert_one_line_error(cli("rm", "cohort@v1", "--dry-run"), 2, "tagged first")
    assert_repo_unchanged(repo_path, before)


def test_rm_then_index_rebuild_keeps_it_removed(
    cli: Cli, three: list[Path], repo_path: Path, tmp_path: Path
) -> None:
    assert_ok(cli("tag", "cohort@v2", "t"))
    assert_ok(cli("rm", "cohort@v2", "--force"))
    assert_ok(cli("rm", "cohort@v3"))
    shutil.rmtree(repo_path / "index")
    assert_ok(cli("index", "rebuild"))
    assert _refs(repo_path) == {"cohort@v1"}
    assert_one_line_error(cli("show", "cohort@t"), 4)
    with reprocas.Repo.open(repo_path) as repo:
        assert {r["ref"] for r in repo.forgotten()} == {"cohort@v2", "cohort@v3"}
    verify_ok(repo_path)
    # After the rebuild, numbers stay unique and gc/prune keep v1 whole.
    _commit(cli, tmp_path, 9)
    assert _refs(repo_path) == {"cohort@v1", "cohort@v4"}
    assert_ok(cli("gc"))
    assert_ok(cli("prune"))
    _checks_out_as(cli, "cohort@v1", three[0], tmp_path / "out")
    verify_ok(repo_path)


def test_rm_without_refs_is_a_usage_error(cli: Cli, three: list[Path]) -> None:
    assert_one_line_error(cli("rm"), 2, "name at least one version")


# -- tags --------------------------------------------------------------------------------


def test_tag_moves_only_with_force(cli: Cli, three: list[Path], repo_path: Path) -> None:
    assert_ok(cli("tag", "cohort@v2", "v-final"))
    before = repo_state(repo_path)
    assert_one_line_error(
        cli("tag", "cohort@v3", "v-final"), 2, "cohort@v-final already names cohort@v2", "--force"
    )
    assert_repo_unchanged(repo_path, before)
    out = assert_ok(cli("tag", "cohort@v3", "v-final", "--force")).out
    assert out.strip() == "tag v-final moved from cohort@v2 to cohort@v3"
    assert assert_ok(cli("show", "cohort@v-final", "--json")).json()["tags"] == ["v-final"]
    assert assert_ok(cli("show", "cohort@v3", "--json")).json()["tags"] == ["v-final"]
    # Tagging the version the tag already names is not a move.
    again = assert_ok(cli("tag", "cohort@v3", "v-final", "--json")).json()
    assert not again["moved"] and again["before"] == again["after"] == "cohort@v3"
    moved = assert_ok(cli("tag", "cohort@v1", "v-final", "-f", "--json")).json()
    assert moved["moved"] and (moved["before"], moved["after"]) == ("cohort@v3", "cohort@v1")
    with reprocas.Repo.open(repo_path) as repo:
        with pytest.raises(reprocas.errors.UsageError, match="already names cohort@v1"):
            repo.tag("cohort@v2", "v-final")
        assert repo.set_tag("cohort@v2", "v-final", force=True).moved
    verify_ok(repo_path)


def test_tag_delete(cli: Cli, three: list[Path], repo_path: Path, tmp_path: Path) -> None:
    assert_ok(cli("tag", "cohort@v2", "best"))
    assert_ok(cli("tag", "cohort@v3", "final"))
    out = assert_ok(cli("tag", "--delete", "cohort@best")).out
    assert out.strip() == "deleted tag cohort@best (it named cohort@v2)"
    assert_one_line_error(cli("show", "cohort@best"), 4)
    assert _refs(repo_path) == {"cohort@v1", "cohort@v2", "cohort@v3"}  # the version stays
    # -d, a bare tag only one dataset has, and the two-argument form.
    assert assert_ok(cli("tag", "-d", "final", "--json")).json()["before"] == "cohort@v3"
    assert_ok(cli("tag", "cohort@v1", "x"))
    assert_ok(cli("tag", "-d", "cohort", "x"))
    assert_one_line_error(cli("tag", "-d", "cohort@nope"), 4, "no tag 'nope'")
    _commit(cli, tmp_path, 1, "other")
    assert_ok(cli("tag", "cohort@v1", "dup"))
    assert_ok(cli("tag", "other@v1", "dup"))
    assert_one_line_error(cli("tag", "-d", "dup"), 2, "2 datasets")
    # Deleted tags stay deleted across a rebuild.
    shutil.rmtree(repo_path / "index")
    assert_ok(cli("index", "rebuild"))
    with reprocas.Repo.open(repo_path) as repo:
        assert repo.show("cohort@v2").tags == ()
        assert repo.show("cohort@v1").tags == ("dup",)
        assert repo.delete_tag("dup", "other").before == "other@v1"
    verify_ok(repo_path)


# -- purge --------------------------------------------------------------------------------

ROWS = 40_000


def _extracts(tmp_path: Path) -> tuple[bytes, Path, Path]:
    """A clinical table twice: the wrong extract (one row holds a unique random marker)
    and the corrected one (that row fixed, scattered rows edited). Both share most of
    their chunks, and the corrected one's changed chunks are stored as deltas against
    the wrong one's — the marker's chunk among their bases."""
    rng = random.Random(13)
    rows = [
        f"{i},P{rng.randrange(10**6):06d},{rng.random() * 200:.3f},note {rng.randrange(10**9)}\n"
        for i in range(ROWS)
    ]
    # Random, but seeded: which chunks the delta coder pairs depends on where the
    # content-defined cuts fall around the marker, and the fixture checks that pairing.
    marker = rng.randbytes(32).hex()
    wrong = list(rows)
    wrong[ROWS // 2] = f"{ROWS // 2},{marker},1.000,consent withdrawn\n"
    right = list(rows)
    for k in rng.sample(range(ROWS), ROWS // 200):
        right[k] = right[k].replace(",", ";", 1)
    out = []
    for name, lines in (("wrong", wrong), ("right", right)):
        d = tmp_path / name
        d.mkdir()
        (d / "cohort.csv").write_text("".join(lines))
        (d / "static.txt").write_text("unchanged\n" * 100)
        out.append(d)
    return marker.encode(), out[0], out[1]


@pytest.fixture
def extracts(tmp_path: Path, cli: Cli, repo_path: Path) -> tuple[bytes, Path, Path]:
    """cohort@v1 is the wrong extract, cohort@v2 the corrected one; the marker is
    stored (found by decoding every pack) and is a delta base of v2's chunks."""
    marker, wrong, right = _extracts(tmp_path)
    assert_ok(cli("init"))
    assert_ok(cli("commit", wrong, "-d", "cohort"))
    assert_ok(cli("commit", right, "-d", "cohort"))
    before = stored_bytes(repo_path)
    assert before.where(marker), "the marker must be stored before the purge"
    assert not any(marker in data for data in before.files.values()), "stored compressed"
    with_marker = {d for d, c in before.chunks.items() if marker in c}
    assert any(set(b) & with_marker for b in before.delta_bases.values()), (
        "the marker's chunk must be a delta base of the kept version"
    )
    return marker, wrong, right


def _index_records_naming(repo_path: Path, needle: bytes) -> list[str]:
    """The index records (any sub-database, key or value) that contain ``needle``."""
    return [
        f"{db}:{k!r}"
        for db, entries in repo_state(repo_path)["index"].items()
        for k, v in entries
        if needle in k or needle in v
    ]


def _assert_gone(repo_path: Path, marker: bytes) -> None:
    after = stored_bytes(repo_path)
    assert after.undecodable == [], "a delta frame lost its bases"
    assert after.where(marker) == [], f"the purged marker is still stored: {after.where(marker)}"


def test_purge_proves_the_bytes_gone(
    cli: Cli, extracts: tuple[bytes, Path, Path], repo_path: Path, tmp_path: Path
) -> None:
    marker, wrong, right = extracts
    path = str(wrong).encode()
    assert _index_records_naming(repo_path, path), "the files cache names the wrong extract"
    before = stored_bytes(repo_path)
    [(where, mates)] = [
        (k, ds) for k, ds in before.frames.items() if any(marker in before.chunks[d] for d in ds)
    ]
    out = assert_ok(cli("rm", "cohort@v1", "--purge", "--json")).json()
    p = out["purged"]
    assert out["removed"] == ["cohort@v1"] and p["versions"] == ["cohort@v1"]
    assert p["chunks_purged"] > 0 and p["removed_chunks"] > 0
    assert p["reencoded_chunks"] > 0, "the kept delta chunks must be stored anew"
    assert p["filecache_entries"] >= 1  # the wrong extract's files-cache entries
    assert p["verify"]["ok"] and p["verify"]["chunks_read"] > 0
    _assert_gone(repo_path, marker)
    assert _index_records_naming(repo_path, path) == []  # its files-cache entries, snapshot
    # The marker's frame also held chunks the kept version uses: those stay, stored anew.
    assert len(mates) > 1 and set(mates) & set(stored_bytes(repo_path).chunks), where
    _checks_out_as(cli, "cohort@v2", right, tmp_path / "out")
    verify_ok(repo_path)
    # Nothing comes back: a rebuild, gc and prune keep it removed and the rest whole.
    shutil.rmtree(repo_path / "index")
    assert_ok(cli("index", "rebuild"))
    assert _refs(repo_path) == {"cohort@v2"}
    assert_ok(cli("gc"))
    assert_ok(cli("prune"))
    _assert_gone(repo_path, marker)
    _checks_out_as(cli, "cohort@v2", right, tmp_path / "out2")
    verify_ok(repo_path)


def test_purge_text_output(cli: Cli, extracts: tuple[bytes, Path, Path], repo_path: Path) -> None:
    marker = extracts[0]
    text = assert_ok(cli("rm", "cohort@v1", "--purge")).out
    assert "removed cohort@v1" in text, text
    assert "versions removed with --purge: cohort@v1)" in text, text
    assert "every pack file" in text, text
    assert "verified: 1 versions" in text, text
    _assert_gone(repo_path, marker)


def test_purge_orphans_a_run_and_its_data_goes(
    cli: Cli, extracts: tuple[bytes, Path, Path], repo_path: Path, tmp_path: Path
) -> None:
    """A run that used the wrong extract no longer keeps it once it is purged: the run
    stays recorded (orphaned, and named), and every command still works."""
    marker, _, right = extracts
    proj = tmp_path / "proj"
    proj.mkdir()
    assert_ok(cli("run", "-n", "train", "--env", "none", "-i", "cohort@v1",
                  "--", PY, "-c", "0", cwd=proj))  # fmt: skip
    assert_one_line_error(cli("rm", "cohort@v1", "--purge"), 2, "used by run train#1")
    assert stored_bytes(repo_path).where(marker)
    out = assert_ok(cli("rm", "cohort@v1", "--purge", "--force", "--json")).json()
    assert out["orphaned_runs"] == ["train#1"]
    _assert_gone(repo_path, marker)
    assert "train#1" in assert_ok(cli("runs")).out
    for args in (("gc",), ("prune",), ("du",), ("verify", "--read-data")):
        assert_ok(cli(*args))
    shutil.rmtree(repo_path / "index")
    assert_ok(cli("index", "rebuild"))
    assert_ok(cli("gc"))
    _assert_gone(repo_path, marker)
    _checks_out_as(cli, "cohort@v2", right, tmp_path / "out")
    verify_ok(repo_path)


def test_purge_keeps_bytes_a_kept_run_output_holds_until_it_goes_too(
    cli: Cli, extracts: tuple[bytes, Path, Path], repo_path: Path, tmp_path: Path
) -> None:
    """A run copied the wrong extract into its output: purging the input keeps those
    identical bytes (a kept version holds them) and says so; removing the output too
    makes them go."""
    marker, _, right = extracts
    proj = tmp_path / "proj"
    proj.mkdir()
    copy = "import shutil; shutil.copy('inputs/cohort/cohort.csv', 'out.csv')"
    assert_ok(cli("run", "-n", "train", "--env", "none", "-i", "cohort@v1", "-o", "out.csv",
                  "--", PY, "-c", copy, cwd=proj))  # fmt: skip
    res = assert_ok(cli("rm", "cohort@v1", "--purge", "--force"))
    assert "stay: kept versions or runs hold the same bytes" in res.out, res.out
    assert stored_bytes(repo_path).where(marker), "the run's output still holds the data"
    out = assert_ok(cli("rm", "runs/train", "--purge", "--force", "--json")).json()
    assert out["orphaned_runs"] == ["train#1"]
    # What the output shares with the kept cohort@v2 stays; the marker's chunk goes.
    assert out["purged"]["removed_chunks"] > 0
    _assert_gone(repo_path, marker)
    _checks_out_as(cli, "cohort@v2", right, tmp_path / "out")
    verify_ok(repo_path)


def test_purge_waits_for_readers_and_never_skips_silently(
    cli: Cli, extracts: tuple[bytes, Path, Path], repo_path: Path
) -> None:
    """A reader that started before the purge and is still reading after the wait:
    the purge fails with a clear error (exit code 8), the reader still reads right,
    and `rm --purge` once it is done finishes the job."""
    marker, _, right = extracts
    cat = subprocess.Popen(
        cli_argv(["cat", "cohort@v2", "cohort.csv"], repo_path),
        env=clean_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
    )
    assert cat.stdout is not None
    first = cat.stdout.read(64 << 10)  # cat has started: it holds its lease, then blocks
    res = cli("rm", "cohort@v1", "--purge", "--lease-wait", "0.5")
    assert_one_line_error(res, 8, "readers", "still on disk", "reprocas rm --purge")
    assert _refs(repo_path) == {"cohort@v2"}
    rest, _ = cat.communicate(timeout=60)
    assert cat.returncode == 0
    assert first + rest == (right / "cohort.csv").read_bytes()
    assert stored_bytes(repo_path).where(marker), "the reader's packs were left on disk"
    out = assert_ok(cli("rm", "--purge", "--json")).json()
    assert out["purged"]["versions"] == ["cohort@v1"] and out["purged"]["garbage"]
    _assert_gone(repo_path, marker)
    verify_ok(repo_path)


def test_purge_keeps_what_a_kept_version_shares(cli: Cli, tmp_path: Path, repo_path: Path) -> None:
    """Purging the latest of four versions keeps every chunk the others use (they
    check out identically) and removes its own bytes."""
    assert_ok(cli("init"))
    srcs = [_commit(cli, tmp_path, i) for i in (1, 2, 3)]
    own = b"only v4 has this line " + secrets.token_hex(32).encode()
    v4 = tmp_path / "v4"
    shutil.copytree(srcs[0], v4)  # v1's data.txt: shared
    (v4 / "notes.txt").write_bytes(own + b"\n")
    assert_ok(cli("commit", v4, "-d", "cohort"))
    assert stored_bytes(repo_path).where(own)
    out = assert_ok(cli("rm", "cohort@v4", "--purge", "--json")).json()
    assert out["purged"]["verify"]["ok"] is True
    _assert_gone(repo_path, own)
    for i in (1, 2, 3):
        _checks_out_as(cli, f"cohort@v{i}", srcs[i - 1], tmp_path / f"o{i}")


def test_purge_killed_at_any_moment_leaves_a_sound_repository(
    cli: Cli, extracts: tuple[bytes, Path, Path], repo_path: Path, tmp_path: Path
) -> None:
    """SIGKILL `rm --purge` at random moments: the repository always verifies, the kept
    version checks out exactly, and running the purge again finishes it."""
    marker, _, right = extracts
    base = tmp_path / "base"
    shutil.copytree(repo_path, base)
    rng = random.Random(3)
    for i in range(6):
        shutil.rmtree(repo_path)
        shutil.copytree(base, repo_path)
        proc = subprocess.Popen(
            cli_argv(["rm", "cohort@v1", "--purge"], repo_path),
            env=clean_env(),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            stdin=subprocess.DEVNULL,
        )
        try:
            proc.wait(timeout=rng.uniform(0.2, 2.0))
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        verify_ok(repo_path)
        _checks_out_as(cli, "cohort@v2", right, tmp_path / f"killed{i}")
        again = (
            ["rm", "cohort@v1", "--purge"] if "cohort@v1" in _refs(repo_path) else ["rm", "--purge"]
        )
        assert_ok(cli(*again))
        _assert_gone(repo_path, marker)
        _checks_out_as(cli, "cohort@v2", right, tmp_path / f"finished{i}")


def test_purged_bytes_committed_again_are_stored_again_format3(tmp_path: Path) -> None:
    """Format 3 finds a file's chunks by its digest (``chunkmaps``, ``tables``): a purge
    removes those records too (they name the purged file by its digest), and the same
    bytes committed again are stored again."""
    repo_path = tmp_path / "repo"
    assert_ok(run_cli("init", "--format", "3", repo=repo_path))
    src = tmp_path / "src"
    src.mkdir()
    (src / "extract.csv").write_text(
        "id,v\n" + "".join(f"{i},{random.Random(i).random()}\n" for i in range(3000))
    )
    assert_ok(run_cli("commit", src, "-d", "wrong", repo=repo_path))
    assert_ok(run_cli("rm", "wrong", "--purge", repo=repo_path))
    index = Index(repo_path / "index", create=False)
    try:
        with index.read() as txn:
            left = {n: txn.stat(index.db[n])["entries"] for n in ("chunkmaps", "tables")}
    finally:
        index.close()
    assert left == {"chunkmaps": 0, "tables": 0}
    assert_ok(run_cli("commit", src, "-d", "again", repo=repo_path))
    assert_ok(run_cli("verify", "--read-data", repo=repo_path))
    dest = tmp_path / "out"
    assert_ok(run_cli("checkout", "again", dest, repo=repo_path))
    assert (dest / "extract.csv").read_bytes() == (src / "extract.csv").read_bytes()
