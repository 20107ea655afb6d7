"""`reprocas status`, `commit` without --dataset, and `commit --dry-run`."""

from __future__ import annotations

import os
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
from typer.testing import CliRunner

import reprocas
from reprocas.cli.main import app
from tests.integration._helpers import assert_ok, assert_one_line_error
from tests.integration.conftest import Cli


def _work(tmp_path: Path) -> Path:
    data = tmp_path / "data"
    (data / "sub").mkdir(parents=True)
    (data / "a.txt").write_text("alpha")
    (data / "sub" / "b.txt").write_text("beta")
    pq.write_table(pa.table({"id": [1, 2, 3]}), data / "t.parquet")
    return data


def test_status_clean_then_changed(repo: reprocas.Repo, cli: Cli, tmp_path: Path) -> None:
    repo.close()
    data = _work(tmp_path)
    assert_ok(cli("commit", data, "-d", "clinical"))
    clean = cli("status", data, "--json")
    assert clean.returncode == 0, clean.describe()
    st = clean.json()
    assert st["clean"] and st["dataset"] == "clinical" and st["ref"] == "clinical@v1"
    assert st["files_hashed"] == 0 and st["files_cached"] == 3  # nothing re-read
    (data / "a.txt").write_text("ALPHA")  # same size: must be read to be told apart
    (data / "sub" / "b.txt").unlink()
    (data / "c.txt").write_text("new")
    pq.write_table(pa.table({"id": [1, 2, 3, 4], "x": [0.0] * 4}), data / "t.parquet")
    res = cli("status", data, "--json")
    assert res.returncode == 1, res.describe()
    import json

    st = json.loads(res.out)
    assert st["added"] == ["c.txt"] and st["removed"] == ["sub/b.txt"]
    assert st["changed"] == ["a.txt", "t.parquet"]
    assert st["tables"] == {"t.parquet": {"rows": [3, 4], "schema_changed": True}}
    assert st["files_hashed"] == 1
    text = cli("status", data)
    assert text.returncode == 1
    assert "changed  t.parquet  rows 3 -> 4, schema changed" in text.out
    assert "removed  sub/b.txt" in text.out


def test_status_reads_a_touched_file_and_finds_it_unchanged(
    repo: reprocas.Repo, cli: Cli, tmp_path: Path
) -> None:
    repo.close()
    data = _work(tmp_path)
    assert_ok(cli("commit", data, "-d", "clinical"))
    st = os.stat(data / "a.txt")
    os.utime(data / "a.txt", ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    res = cli("status", data, "--json")
    assert res.returncode == 0, res.describe()
    assert res.json()["files_hashed"] == 1


def test_status_errors_exit_2(repo: reprocas.Repo, cli: Cli, tmp_path: Path) -> None:
    repo.close()
    data = _work(tmp_path)
    assert_one_line_error(cli("status", data), 2, "--dataset")
    assert_one_line_error(cli("status", tmp_path / "missing"), 2, "missing")
    assert_one_line_error(cli("status", data, "-d", "nope@@"), 2)


def test_commit_finds_its_dataset_and_dry_run_stores_nothing(
    repo: reprocas.Repo, cli: Cli, repo_path: Path, tmp_path: Path
) -> None:
    repo.close()
    data = _work(tmp_path)
    assert_one_line_error(cli("commit", data), 4, "--dataset")
    assert_ok(cli("commit", data, "-d", "clinical"))
    (data / "c.txt").write_text("x" * 1000)
    runner = CliRunner()
    res = runner.invoke(app, ["--repo", str(repo_path), "commit", str(data), "--dry-run"])
    assert res.exit_code == 0, res.output
    assert "added    c.txt" in res.output
    assert "would commit clinical@v2; at most 1000 B new" in res.output
    dry = assert_ok(cli("commit", data, "--dry-run", "--json")).json()
    assert dry["dry_run"] and dry["added"] == ["c.txt"] and dry["new_bytes_estimate"] == 1000
    with reprocas.Repo.open(repo_path) as r:
        assert [e.ref for e in r.log("clinical")] == ["clinical@v1"]
    # Without --dataset, the commit goes to the dataset the directory was committed as.
    out = assert_ok(cli("commit", data, "--json")).json()
    assert out["ref"] == "clinical@v2" and out["created"]
    # A dry run of a new dataset: everything is added.
    fresh = assert_ok(cli("commit", data, "-d", "fresh", "--dry-run", "--json")).json()
    assert fresh["ref"] is None and len(fresh["added"]) == 4
