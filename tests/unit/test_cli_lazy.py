"""The CLI builds only the command a process runs (reprocas.cli.lazy), lists them all
for --help, and suggests a close name once."""

from __future__ import annotations

import subprocess
import sys

import typer

from reprocas.cli.lazy import LazyGroup
from reprocas.cli.main import app


def test_one_invocation_builds_one_command() -> None:
    group = typer.main.get_command(app)
    assert isinstance(group, LazyGroup)

    def built() -> list[str]:
        return [n for n in group.commands if dict.__contains__(group.commands, n)]

    assert built() == []
    assert "commit" in group.commands and "remote" in group.commands
    group.get_command(None, "log")  # type: ignore[arg-type]
    assert built() == ["log"]
    names = group.list_commands(None)  # type: ignore[arg-type]
    assert names[:3] == ["init", "commit", "log"] and "import" in names and "note" in names
    assert built() == ["log"]  # listing names builds nothing


def test_a_typo_is_answered_with_one_suggestion() -> None:
    proc = subprocess.run(
        [sys.executable, "-c", "from reprocas.cli.main import entry; entry()", "comit"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 2
    assert proc.stderr.count("Did you mean 'commit'?") == 1, proc.stderr
