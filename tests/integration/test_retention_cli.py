"""The retention commands as real processes: output, JSON, config, and bad input."""

from __future__ import annotations

import json
from pathlib import Path

import reprocas
from tests.integration._helpers import assert_ok, assert_one_line_error, run_cli, verify_ok


def _repo_with_versions(tmp_path: Path, n: int = 5) -> Path:
    repo_path = tmp_path / "repo"
    src = tmp_path / "src"
    src.mkdir()
    with reprocas.Repo.init(repo_path) as repo:
        for i in range(n):
            (src / "data.bin").write_bytes(bytes([i]) * 50_000 + i.to_bytes(4, "little") * 999)
            repo.commit(src, "ds", message=f"m{i}", tags=["published"] if i == 1 else [])
    return repo_path


def test_forget_json_and_prune(tmp_path: Path) -> None:
    repo = _repo_with_versions(tmp_path)
    dry = json.loads(
        assert_ok(run_cli("forget", "--keep-last", "1", "--dry-run", "--json", repo=repo)).out
    )
    assert {r["ref"] for r in dry["keep"]} == {"ds@v2", "ds@v5"}
    assert {r["ref"] for r in dry["remove"]} == {"ds@v1", "ds@v3", "ds@v4"}
    assert all(r["reasons"] for r in dry["keep"] + dry["remove"])
    assert dry["dry_run"] and dry["freed_bytes"] > 0
    text = assert_ok(run_cli("forget", "--keep-last", "1", repo=repo)).out
    assert "forget ds@v1" in text and "tag published" in text
    plan = json.loads(assert_ok(run_cli("prune", "--dry-run", "--json", repo=repo)).out)
    assert plan["freed_bytes"] == dry["freed_bytes"]
    done = json.loads(assert_ok(run_cli("prune", "--json", repo=repo)).out)
    assert done["result"]["freed_bytes"] == dry["freed_bytes"]
    verify_ok(repo)
    with reprocas.Repo.open(repo) as r:
        assert [f["ref"] for f in r.forgotten()] == ["ds@v1", "ds@v3", "ds@v4"]
        assert {e.ref for e in r.log()} == {"ds@v2", "ds@v5"}


def test_config_drives_forget(tmp_path: Path) -> None:
    repo = _repo_with_versions(tmp_path)
    assert_ok(run_cli("config", "set", "retention.keep-last", "2", repo=repo))
    assert assert_ok(run_cli("config", "get", "retention.keep-last", repo=repo)).out.strip() == "2"
    shown = json.loads(assert_ok(run_cli("config", "show", "--json", repo=repo)).out)
    assert shown["retention"]["default"] == {"keep-last": 2}
    out = json.loads(assert_ok(run_cli("forget", "--dry-run", "--json", repo=repo)).out)
    assert {r["ref"] for r in out["keep"]} == {"ds@v2", "ds@v4", "ds@v5"}
    assert_one_line_error(run_cli("config", "set", "retention.bogus", "1", repo=repo), 2, "unknown")
    assert_one_line_error(run_cli("config", "set", "retention.budget", "0", repo=repo), 2)
    verify_ok(repo)


def test_bad_input_is_one_clear_line(tmp_path: Path) -> None:
    repo = _repo_with_versions(tmp_path, 3)
    assert_one_line_error(run_cli("forget", "--budget", "lots", repo=repo), 2, "size")
    assert_one_line_error(run_cli("forget", "--budget", "0", repo=repo), 2, "greater than zero")
    assert_one_line_error(run_cli("forget", "-d", "nope", "--keep-last", "1", repo=repo), 4, "nope")
    assert_one_line_error(run_cli("forget", "--keep-last", "0", repo=repo), 2, "keep nothing")
    assert_one_line_error(run_cli("forget", repo=repo), 2, "no retention policy")
    assert_one_line_error(run_cli("forget", "--keep-within", "soon", repo=repo), 2, "duration")
    assert_one_line_error(run_cli("prune", "--max-unused", "150", repo=repo), 2, "percentage")
    # A budget the protected versions cannot meet: forget what may go, then exit 9.
    res = run_cli("forget", "--keep-last", "1", "--budget", "10", "--json", repo=repo)
    assert res.returncode == 9, res.describe()
    assert "cannot be met" in res.err
    body = json.loads(res.out)
    assert not body["budget_met"] and body["forgotten"] == ["ds@v1"]  # v2 is published
