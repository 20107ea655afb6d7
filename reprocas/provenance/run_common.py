"""Names shared by the modules that record a run: the files a run stores and the
message sink."""

from __future__ import annotations

from collections.abc import Callable

ENV_MODES = ("full", "light", "none")
STDOUT_FILE = "stdout.txt"
STDERR_FILE = "stderr.txt"
PATCH_FILE = "code/diff.patch"
METRICS_FILE = "metrics.json"
OUTPUT_KIND = "run-output"
METRICS_PATH_KEY = "metrics_file"
"""The ``extra`` key holding the ``--metrics`` path as given (``reprocas replay`` reads it)."""

Say = Callable[[str], None]


def quiet(_: str) -> None:
    return None
