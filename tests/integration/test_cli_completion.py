"""Shell completion of dataset names and refs from the repository, and `config list`."""

from __future__ import annotations

from pathlib import Path

import reprocas
from tests.integration._helpers import assert_ok, run_cli


def _complete(repo: Path | None, words: str, cwd: Path | None = None) -> list[str]:
    """What bash completion offers for the last word of ``words`` (Typer's protocol)."""
    argv = words.split(" ")
    env = {
        "_REPROCAS_COMPLETE": "complete_bash",
        "COMP_WORDS": " ".join(["reprocas", *(["--repo", str(repo)] if repo else []), *argv]),
        "COMP_CWORD": str(len(argv) + (2 if repo else 0)),
    }
    res = run_cli(env=env, cwd=cwd)
    assert res.returncode == 0, res.describe()
    return res.out.split()


def _populate(repo: reprocas.Repo, tmp_path: Path) -> None:
    f = tmp_path / "f.txt"
    for i, name in enumerate(("clinical", "clinical", "claims", "other")):
        f.write_text(f"{name}{i}")
        repo.commit(f, name, tags=["published"] if i == 0 else [])
    repo.close()


def test_completes_dataset_names_and_refs(
    repo: reprocas.Repo, repo_path: Path, tmp_path: Path
) -> None:
    _populate(repo, tmp_path)
    assert _complete(repo_path, "show cl") == ["claims", "clinical"]
    assert _complete(repo_path, "show clinical@") == [
        "clinical@latest",
        "clinical@v2",
        "clinical@v1",
        "clinical@published",
    ]
    assert _complete(repo_path, "diff clinical@v1 clinical@p") == ["clinical@published"]
    assert _complete(repo_path, "tags o") == ["other"]
    assert _complete(repo_path, "status --dataset c") == ["claims", "clinical"]
    assert _complete(repo_path, "forget --keep-last 1 --dataset o") == ["other"]
    assert _complete(repo_path, "repack --deltas -d cla") == ["claims"]
    assert _complete(repo_path, "show nope@") == []


def test_completion_finds_the_repository_as_commands_do(
    repo: reprocas.Repo, repo_path: Path, tmp_path: Path
) -> None:
    _populate(repo, tmp_path)
    # No --repo: $REPROCAS_REPO, or the .reprocas/ above the current directory.
    work = tmp_path / "proj"
    (work / "deep").mkdir(parents=True)
    with reprocas.Repo.init(work / ".reprocas") as near:
        (tmp_path / "g.txt").write_text("g")
        near.commit(tmp_path / "g.txt", "clouds")
    assert _complete(None, "show cl", cwd=work / "deep") == ["clouds"]
    # Outside any repository: nothing offered, and no error in the shell.
    assert _complete(None, "show cl", cwd=Path("/")) == []


def test_config_list(repo: reprocas.Repo, repo_path: Path) -> None:
    repo.close()
    empty = assert_ok(run_cli("config", "list", repo=repo_path)).out
    assert "no settings stored" in empty
    assert_ok(run_cli("config", "set", "retention.keep-daily", "7", repo=repo_path))
    assert_ok(run_cli("config", "set", "retention.repack-min-free", "2%", repo=repo_path))
    out = assert_ok(run_cli("config", "list", repo=repo_path)).out
    assert "retention.keep-daily = 7" in out and "retention.repack-min-free = 2%" in out
    assert assert_ok(run_cli("config", "get", "retention.keep-daily", repo=repo_path)).out == "7\n"
