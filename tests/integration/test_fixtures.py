"""The frozen fixture repositories (tests/fixtures/formatN, made by
scripts/make_fixture.py with the reprocas of that format) open, verify, check out
exactly, keep their ids, refs, tags and runs, and take new commits — in every later
version of reprocas. A golden test of the format, as borg and restic keep."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from reprocas.store.index import DB_NAMES, ChunkLoc, Index
from reprocas.store.packs import CODEC_DELTA
from scripts.make_fixture import describe
from tests.integration._helpers import assert_ok, run_cli

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
FORMATS = sorted(p.name for p in FIXTURES.glob("format*"))


def _copy(name: str, tmp_path: Path) -> tuple[Path, dict[str, Any]]:
    """A working copy (opening a repository writes its lock files); git keeps no empty
    directories, so the empty ones a repository has are made here."""
    repo = tmp_path / name
    shutil.copytree(FIXTURES / name / "repo", repo)
    for sub in ("tmp", "locks"):
        (repo / sub).mkdir(exist_ok=True)
    return repo, json.loads((FIXTURES / name / "expected.json").read_text())


def test_every_format_has_a_fixture() -> None:
    from reprocas.store.repository import FORMAT_VERSION

    assert [f"format{v}" for v in range(1, FORMAT_VERSION + 1)] == FORMATS
    for name in FORMATS:
        total = sum(f.stat().st_size for f in (FIXTURES / name).rglob("*") if f.is_file())
        assert total < 200_000, (name, total)


@pytest.mark.parametrize("name", FORMATS)
def test_fixture_opens_verifies_and_checks_out_exactly(name: str, tmp_path: Path) -> None:
    repo, expected = _copy(name, tmp_path)
    marker = json.loads((repo / "reprocas.json").read_text())
    assert marker["version"] == expected["format_version"] == int(name.removeprefix("format"))
    assert_ok(run_cli("verify", "--read-data", repo=repo))
    log = assert_ok(run_cli("log", "--json", repo=repo)).json()
    ids = {v["ref"]: v["id"] for v in log}
    for ref, want in expected["versions"].items():
        assert ids[ref] == want["id"], ref
        dest = tmp_path / "co" / ref.replace("@", "-")
        assert_ok(run_cli("checkout", ref, dest, repo=repo))
        assert describe(dest) == want["files"], ref
        # An id prefix and the full id name the same version.
        shown = assert_ok(run_cli("show", want["id"][:12], "--json", repo=repo)).json()
        assert shown["id"] == want["id"]
        # Every format shows its root tree id; the checkout holds exactly that content.
        assert len(shown["content_id"]) == 64
        assert want.get("content_id", shown["content_id"]) == shown["content_id"]
        assert_ok(run_cli("check-dir", dest, ref, repo=repo))
    for tag, vid in expected["tags"].items():
        shown = assert_ok(run_cli("show", f"cohort@{tag}", "--json", repo=repo)).json()
        assert shown["id"] == vid
    runs = assert_ok(run_cli("runs", "--json", repo=repo)).json()
    by_ref = {f"{r['name']}#{r['number']}": r for r in runs}
    for key, want_run in expected["runs"].items():
        assert by_ref[key]["status"] == "ok"
        assert by_ref[key]["params"] == want_run["params"]
        graph = assert_ok(run_cli("lineage", key, "--up", "--json", repo=repo)).json()
        used = [e["to"] for e in graph["edges"] if e["kind"] == "used"]
        assert used == want_run["inputs"]
        out = tmp_path / "run-out"
        assert_ok(run_cli("checkout", f"runs/{key.split('#')[0]}@v1", out, repo=repo))
        assert describe(out / "out") == want_run["output_files"]


@pytest.mark.parametrize("name", FORMATS)
def test_fixture_takes_new_work_and_rebuilds(name: str, tmp_path: Path) -> None:
    repo, expected = _copy(name, tmp_path)
    src = tmp_path / "src"
    src.mkdir()
    (src / "new.txt").write_text("a commit by today's reprocas\n")
    assert_ok(run_cli("commit", src, "-d", "cohort", repo=repo))
    assert_ok(run_cli("index", "rebuild", repo=repo))
    assert_ok(run_cli("gc", repo=repo))
    assert_ok(run_cli("verify", "--read-data", repo=repo))
    for ref, want in expected["versions"].items():
        dest = tmp_path / "co" / ref.replace("@", "-")
        assert_ok(run_cli("checkout", ref, dest, repo=repo))
        assert describe(dest) == want["files"], ref
    assert json.loads((repo / "reprocas.json").read_text())["version"] == int(name[6:])


def test_format2_fixture_holds_delta_chunks(tmp_path: Path) -> None:
    """The format-2 fixture exercises what format 2 added (delta frames)."""
    repo, _ = _copy("format2", tmp_path)
    index = Index(repo / "index", create=False)
    try:
        with index.read() as txn:
            codecs = [ChunkLoc.from_value(v).codec for _, v in txn.cursor(db=index.db["chunks"])]
    finally:
        index.close()
    assert CODEC_DELTA in codecs
    assert "deltas" in DB_NAMES
