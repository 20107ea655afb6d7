"""Shared CLI plumbing: the global --repo option, opening the repository, progress bars."""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import typer

from reprocas.progress import Progress

if TYPE_CHECKING:
    from reprocas.api import Repo


@dataclass
class State:
    repo_path: str | None = None


STATE = State()

JsonOpt = typer.Option("--json", help="Print JSON (a stable schema, see docs/CLI.md).")
AllowSecretsOpt = typer.Option(
    "--allow-secrets",
    help="Store what looks like a secret (keys, tokens, passwords in the uncommitted diff, "
    "lock files and kept variables) verbatim instead of redacting it; recorded as "
    "secrets_allowed, with a warning per secret.",
)


def warn(lines: list[str]) -> None:
    """``reprocas: warning: LINE`` on stderr for each line (also under --json)."""
    for line in lines:
        print(f"reprocas: warning: {line}", file=sys.stderr, flush=True)


@contextmanager
def open_repo(*, rebuilding: bool = False) -> Iterator[Repo]:
    from reprocas.api import Repo

    repo = Repo.open_repo(STATE.repo_path, rebuilding=rebuilding)
    try:
        yield repo
    finally:
        repo.close()


# Seconds of work before a bar appears (a quick command stays silent). The tests set it
# to 0 to see the bar without waiting.
_AFTER_ENV = "REPROCAS_PROGRESS_AFTER"


def _show_after() -> float:
    try:
        return max(0.0, float(os.environ.get(_AFTER_ENV, "1")))
    except ValueError:
        return 1.0


class BarProgress(Progress):
    """A rich progress bar on stderr (files and bytes), shown only on a terminal and
    once work has taken longer than about a second."""

    def __init__(self, description: str, unit: str = "file") -> None:
        self.description = description
        self.unit = unit
        self._bar: Any = None
        self._task: Any = None
        self._total = 0
        self._files = 0
        self._files_done = 0
        self._done = 0
        self._t0 = time.monotonic()
        self._after = _show_after()

    def start(self, total_bytes: int, files: int) -> None:
        self._total, self._files, self._t0 = total_bytes, files, time.monotonic()

    def advance(self, nbytes: int) -> None:
        self._done += nbytes
        self._update()

    def file_done(self) -> None:
        self._files_done += 1
        self._update()

    def _update(self) -> None:
        if self._bar is None:
            if time.monotonic() - self._t0 < self._after or not sys.stderr.isatty():
                return
            self._open()
        self._bar.update(
            self._task, completed=self._done, files=self._files_done, total=self._total or None
        )

    def _open(self) -> None:
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            DownloadColumn,
            TextColumn,
            TimeRemainingColumn,
            TransferSpeedColumn,
        )
        from rich.progress import Progress as RichProgress

        files = f"/{self._files}" if self._files else ""
        units = self.unit if self._files == 1 else self.unit + "s"
        self._bar = RichProgress(
            "[progress.description]{task.description}",
            BarColumn(),
            TextColumn(f"{{task.fields[files]}}{files} {units}"),
            DownloadColumn(binary_units=True),
            TransferSpeedColumn(),
            TimeRemainingColumn(),
            console=Console(stderr=True),
            transient=True,
        )
        self._bar.start()
        self._task = self._bar.add_task(
            self.description, total=self._total or None, files=self._files_done
        )

    def close(self) -> None:
        if self._bar is not None:
            self._bar.stop()
            self._bar = None


@contextmanager
def progress_bar(description: str, enabled: bool, unit: str = "file") -> Iterator[Progress | None]:
    """A bar for a command's long work: ``enabled`` is False with --json; without a
    terminal on stderr the bar never draws."""
    if not enabled:
        yield None
        return
    bar = BarProgress(description, unit)
    try:
        yield bar
    finally:
        bar.close()
