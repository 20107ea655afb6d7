"""Errors of runs and provenance; each carries the exit code the CLI uses (docs/RUNS.md)."""

from __future__ import annotations

from reprocas.errors import NotFoundError, SourceNotFoundError, UsageError


class RunNotFoundError(NotFoundError):
    """A run name, ``NAME#N`` or id prefix that names no run (exit code 4)."""


class OutputMissingError(SourceNotFoundError):
    """The command finished but an ``--output`` (or the metrics file) was never created
    (exit code 3); the run is recorded all the same, with the error."""


class MetricsError(UsageError):
    """A metrics file that is not JSON of numbers or lists of numbers (exit code 2)."""


class ParamsError(UsageError):
    """A ``--param`` or ``--params-file`` that cannot be read (exit code 2)."""
