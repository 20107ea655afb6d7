"""`reprocas commit --from REF --step S`: a version derived from other versions is an
edge of the provenance graph, walked by `lineage` both ways and restored by rebuild."""

from __future__ import annotations

import shutil
from pathlib import Path

from tests.integration._helpers import (
    assert_ok,
    assert_one_line_error,
    assert_repo_unchanged,
    repo_state,
    run_cli,
)


def _commit(repo: Path, src: Path, *args: str) -> dict[str, object]:
    res = assert_ok(run_cli("commit", src, *args, "--json", repo=repo))
    return dict(res.json())


def test_commit_from_records_derived_versions(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    assert_ok(run_cli("init", repo))
    raw, feat = tmp_path / "raw", tmp_path / "feat"
    raw.mkdir()
    feat.mkdir()
    (raw / "a.csv").write_text("id,x\n1,2\n")
    (feat / "f.csv").write_text("id,f\n1,4\n")
    _commit(repo, raw, "-d", "clinical")
    (tmp_path / "labs").mkdir()
    (tmp_path / "labs" / "l.csv").write_text("id,l\n1,9\n")
    _commit(repo, tmp_path / "labs", "-d", "labs")
    r = _commit(
        repo, feat, "-d", "features", "--step", "featurize", "--from", "clinical@v1",
        "--from", "labs",
    )  # fmt: skip
    assert r["ref"] == "features@v1"

    up = assert_ok(run_cli("lineage", "features@v1", "--up", "--json", repo=repo)).json()
    labels = {n["label"] for n in up["nodes"]}
    assert labels == {"features@v1", "clinical@v1", "labs@v1"}
    assert {e["kind"] for e in up["edges"]} == {"derived-from"}
    down = assert_ok(run_cli("lineage", "clinical@v1", "--down", "--json", repo=repo)).json()
    assert {n["label"] for n in down["nodes"]} == {"clinical@v1", "features@v1"}

    # rebuilt from the packs: the edges come back from the snapshot
    shutil.rmtree(repo / "index")
    assert_ok(run_cli("index", "rebuild", repo=repo))
    again = assert_ok(run_cli("lineage", "features@v1", "--up", "--json", repo=repo)).json()
    assert {n["label"] for n in again["nodes"]} == labels


def test_commit_from_an_unknown_ref_is_a_clear_error_and_commits_nothing(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    assert_ok(run_cli("init", repo))
    src = tmp_path / "src"
    src.mkdir()
    (src / "a.txt").write_text("a")
    # A version to refer to, so that "nothing changed" has something to check.
    assert_ok(run_cli("commit", src, "-d", "other", repo=repo))
    (src / "a.txt").write_text("new content")
    before = repo_state(repo)
    res = run_cli("commit", src, "-d", "d", "--from", "nope@v3", repo=repo)
    assert_one_line_error(res, 4, "nope")
    log = assert_ok(run_cli("log", "--json", repo=repo)).json()
    assert [e["ref"] for e in log] == ["other@v1"]
    # No pack, temporary file, index entry or ref log line was written.
    assert_repo_unchanged(repo, before)
