"""Shared CLI plumbing: the global --repo option, opening the repository, progress bars."""

from __future__ import annotations

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


@contextmanager
def open_repo(*, rebuilding: bool = False) -> Iterator[Repo]:
    from reprocas.api import Repo

    repo = Repo.open_repo(STATE.repo_path, rebuilding=rebuilding)
    try:
        yield repo
    finally:
        repo.close()


class BarProgress(Progress):
    """A rich progress bar on stderr, shown only on a terminal and once work has taken
    longer than about a second."""

    def __init__(self, description: str) -> None:
        self.description = description
        self._bar: Any = None
        self._task: Any = None
        self._total = 0
        self._files = 0
        self._done = 0
        self._t0 = 0.0

    def start(self, total_bytes: int, files: int) -> None:
        self._total, self._files, self._t0 = total_bytes, files, time.monotonic()

    def advance(self, nbytes: int) -> None:
        self._done += nbytes
        if self._bar is None:
            if time.monotonic() - self._t0 < 1.0 or not sys.stderr.isatty():
                return
            self._open()
        self._bar.update(self._task, completed=self._done)

    def _open(self) -> None:
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            DownloadColumn,
            TimeRemainingColumn,
            TransferSpeedColumn,
        )
        from rich.progress import Progress as RichProgress

        self._bar = RichProgress(
            "[progress.description]{task.description}",
            BarColumn(),
            DownloadColumn(binary_units=True),
            TransferSpeedColumn(),
            TimeRemainingColumn(),
            console=Console(stderr=True),
            transient=True,
        )
        self._bar.start()
        self._task = self._bar.add_task(
            f"{self.description} ({self._files} file{'' if self._files == 1 else 's'})",
            total=self._total,
        )

    def close(self) -> None:
        if self._bar is not None:
            self._bar.stop()
            self._bar = None


@contextmanager
def progress_bar(description: str, enabled: bool) -> Iterator[Progress | None]:
    if not enabled:
        yield None
        return
    bar = BarProgress(description)
    try:
        yield bar
    finally:
        bar.close()
