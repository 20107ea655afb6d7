"""`reprocas datasets` and `reprocas tags`: what the repository holds, by name."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

import reprocas
from reprocas.cli.main import app
from tests.integration._helpers import assert_ok, assert_one_line_error
from tests.integration.conftest import Cli


def _populate(repo: reprocas.Repo, tmp_path: Path) -> dict[str, str]:
    src = tmp_path / "src"
    src.mkdir()
    (src / "a.txt").write_text("one")
    v1 = repo.commit(src, "clinical", tags=["published"])
    (src / "b.txt").write_text("two!")
    v2 = repo.commit(src, "clinical", tags=["latest-good", "reviewed"])
    other = tmp_path / "other.txt"
    other.write_text("x" * 10)
    v3 = repo.commit(other, "other")
    repo.close()
    return {"v1": v1.id.hex, "v2": v2.id.hex, "v3": v3.id.hex}


def test_datasets_json(repo: reprocas.Repo, cli: Cli, tmp_path: Path) -> None:
    ids = _populate(repo, tmp_path)
    rows = assert_ok(cli("datasets", "--json")).json()
    assert [r["name"] for r in rows] == ["clinical", "other"]
    clinical, other = rows
    assert clinical["versions"] == 2
    assert clinical["latest"] == {"ref": "clinical@v2", "id": ids["v2"]}
    assert clinical["logical_bytes"] == 7 and clinical["files"] == 2
    assert clinical["tags"] == ["latest-good", "published", "reviewed"]
    assert clinical["kind"] == "dataset"
    assert clinical["last_change"].endswith("+00:00")
    assert other["versions"] == 1 and other["logical_bytes"] == 10 and other["tags"] == []


def test_datasets_text(repo: reprocas.Repo, repo_path: Path, tmp_path: Path) -> None:
    ids = _populate(repo, tmp_path)
    res = CliRunner().invoke(app, ["--repo", str(repo_path), "datasets"])
    assert res.exit_code == 0, res.output
    first, second = res.output.splitlines()
    assert first.startswith("clinical") and "2 versions" in first
    assert f"latest v2 {ids['v2'][:12]}" in first
    assert "[latest-good, published, reviewed]" in first
    assert second.startswith("other") and "1 version " in second


def test_datasets_empty(repo: reprocas.Repo, cli: Cli) -> None:
    repo.close()
    assert assert_ok(cli("datasets", "--json")).json() == []
    assert "no datasets yet" in assert_ok(cli("datasets")).out


def test_tags(repo: reprocas.Repo, cli: Cli, tmp_path: Path) -> None:
    ids = _populate(repo, tmp_path)
    rows = assert_ok(cli("tags", "--json")).json()
    assert [(r["name"], r["ref"], r["id"]) for r in rows] == [
        ("clinical@latest-good", "clinical@v2", ids["v2"]),
        ("clinical@published", "clinical@v1", ids["v1"]),
        ("clinical@reviewed", "clinical@v2", ids["v2"]),
    ]
    text = assert_ok(cli("tags", "clinical")).out
    assert "clinical@published    -> clinical@v1" in text
    assert assert_ok(cli("tags", "other", "--json")).json() == []
    assert_one_line_error(cli("tags", "nope"), 4, "nope", "`reprocas datasets`")
