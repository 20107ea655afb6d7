"""The one exception tree of reprocas.

Every error a user can cause or meet is a :class:`ReprocasError` carrying a message
that says what to do, named fields, and the exit code the CLI uses. The native core
(``reprocas._core``) raises these same classes. "Not found" errors also subclass
:class:`KeyError` so that mapping-style code can catch them naturally.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


class ReprocasError(Exception):
    """Base of every reprocas error."""

    exit_code: int = 1

    def __init__(self, message: str, **fields: Any) -> None:
        super().__init__(message)
        self.message = message
        self.fields = fields
        for name, value in fields.items():
            setattr(self, name, value)

    def __str__(self) -> str:  # KeyError would otherwise quote the message
        return self.message


# --- usage: the caller asked for something that cannot work -------------------------


class UsageError(ReprocasError):
    """Bad arguments or parameters."""

    exit_code = 2


class InvalidParameterError(UsageError, ValueError):
    """A parameter out of range: chunk sizes, compression level, key length."""


# --- input the user pointed us at ---------------------------------------------------


class SourceError(ReprocasError):
    """A file or directory given as input cannot be read."""

    exit_code = 3


class SourceNotFoundError(SourceError, FileNotFoundError):
    """The input path does not exist."""

    def __str__(self) -> str:
        return self.message


class SourcePermissionError(SourceError, PermissionError):
    """The input exists but may not be read."""

    def __str__(self) -> str:
        return self.message


class SourceIsDirectoryError(SourceError, IsADirectoryError):
    """A directory was given where a regular file was expected."""

    def __str__(self) -> str:
        return self.message


class SourceChangedError(SourceError):
    """A source file changed while it was being read (twice): storing it would store a
    state it never had."""


# --- names that do not resolve ------------------------------------------------------


class NotFoundError(ReprocasError, KeyError):
    """Something named does not exist."""

    exit_code = 4


# --- the repository and its storage -------------------------------------------------


class StorageError(ReprocasError):
    """Reading or writing the repository's storage failed."""

    exit_code = 5


class StorageIOError(StorageError, OSError):
    """An operating-system I/O error while reading or writing."""

    def __str__(self) -> str:
        return self.message


class StorageFullError(StorageIOError):
    """The disk is full (ENOSPC); nothing that was committed before is affected."""


class IntegrityError(ReprocasError):
    """Stored data does not match its digest, or a structure is damaged."""

    exit_code = 6


class CorruptDataError(IntegrityError):
    """A stored payload does not decode, or decodes to the wrong bytes."""


class IndexDamagedError(IntegrityError):
    """The LMDB index cannot be opened or read (a damaged header or page);
    ``reprocas index rebuild`` sets it aside and recreates it."""


class IndexUnsoundError(IntegrityError):
    """The index knows fewer versions than the packs prove existed, so gc and prune
    may not act on it; ``reprocas index rebuild`` recovers them."""


# --- repositories, names and destinations -------------------------------------------


class RepositoryNotFoundError(ReprocasError):
    """No repository at the given path, in REPROCAS_REPO, or above the current directory."""

    exit_code = 4


class RepositoryExistsError(UsageError):
    """``init`` on a path that already holds a repository (or other files)."""


class FormatVersionError(ReprocasError):
    """The repository's format is unknown or newer than this reprocas supports."""

    exit_code = 7


class RefNotFoundError(NotFoundError):
    """A ref (dataset, version, tag or id prefix) that does not resolve."""


class PathNotInVersionError(NotFoundError):
    """A path that a version does not contain."""


class AmbiguousRefError(UsageError):
    """An id prefix that matches more than one object."""


class InvalidNameError(UsageError):
    """A dataset or tag name that cannot be used."""


class DestinationError(UsageError):
    """A checkout destination that is not empty (without --force) or not a directory."""


class UnsafePathError(IntegrityError):
    """A stored tree entry that would land outside the checkout destination."""


class RepositoryOverlapError(UsageError):
    """A commit source or checkout destination that is, holds or lies inside the
    repository itself (committing it, or writing over it, would damage the store)."""


class SpecialModeError(UsageError):
    """A version holds setuid, setgid or sticky bits, which checkout restores only when
    asked (``--special-modes``)."""


class LockTimeoutError(ReprocasError):
    """Another process holds a lock this command needs."""

    exit_code = 8


# --- message helpers ------------------------------------------------------------------------

_HINT_NAMES = 5
_HINT_NAME_CHARS = 40


def known_names(
    names: Sequence[str],
    *,
    what: str = "datasets",
    command: str = "reprocas datasets",
    empty: str = "the repository has no datasets yet",
) -> str:
    """The tail of a "not found" message: a few of the names there are, and the command
    that lists them all, so a repository with thousands of long names still gets a one-line
    error a person can read."""
    if not names:
        return empty
    shown = [
        n if len(n) <= _HINT_NAME_CHARS else n[: _HINT_NAME_CHARS - 1] + "…"
        for n in names[:_HINT_NAMES]
    ]
    more = f" and {len(names) - _HINT_NAMES} more" if len(names) > _HINT_NAMES else ""
    return f"{what}: {', '.join(shown)}{more} (`{command}` lists them)"
