"""Errors of environment snapshots, subclasses of the one tree in ``reprocas.errors``."""

from __future__ import annotations

from reprocas.errors import RefNotFoundError, ReprocasError, SourceError, UsageError


class EnvironmentCaptureError(SourceError):
    """The interpreter to capture cannot be run, or its probe failed (exit code 3)."""


class NotAnEnvironmentError(RefNotFoundError):
    """A ref that names a dataset version (or nothing), not an environment snapshot."""


class ExportFormatError(UsageError):
    """An export the snapshot cannot support, e.g. a conda file for a non-conda env."""


class InterpreterMismatchError(UsageError):
    """Restoring with an interpreter whose version differs from the snapshot's."""


class RestoreError(ReprocasError):
    """Creating the venv or installing into it failed."""
