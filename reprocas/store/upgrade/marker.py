"""The last step of `reprocas upgrade`, and the open rule that finishes it after a crash.

The upgrade commits its one index transaction (``meta.format_version = 3``,
``meta.upgrade = "marker-pending"``) and then replaces ``reprocas.json`` with a
version-3 marker; a SIGKILL between the two leaves marker 2 over index 3. Whoever opens
the repository then finishes the marker step when it can take the repository's lock at
once (no upgrade is still on its way), and reads the repository as format 3 either way:
after the index transaction every ref names a format-3 snapshot.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from typing import TYPE_CHECKING

from reprocas.errors import ReprocasError

if TYPE_CHECKING:
    from reprocas.store.repository import Repository

PENDING = "marker-pending"


def as_format3(repo: Repository) -> None:
    """Read ``repo`` as format 3 from now on (in memory)."""
    from reprocas.store.repository import FORMAT_VERSION_CONTENT_IDS

    repo.marker = {**repo.marker, "version": FORMAT_VERSION_CONTENT_IDS}
    repo.format_version = FORMAT_VERSION_CONTENT_IDS


def write_marker_3(repo: Repository) -> None:
    """Replace the marker by its version-3 form (durably) and clear ``meta.upgrade``."""
    from reprocas.store.repository import write_marker

    as_format3(repo)
    write_marker(repo.root, repo.marker)
    with repo.index.write() as txn:
        txn.delete(b"upgrade", db=repo.index.db["meta"])


def finish_marker(repo: Repository) -> bool:
    """Finish an upgrade whose marker step a crash cut off; returns whether the marker
    was written (False: another process holds the lock, or the directory is read-only;
    the repository is read as format 3 all the same)."""
    as_format3(repo)
    try:
        repo.locks_dir.mkdir(exist_ok=True)
        fd = os.open(repo.locks_dir / "gc.lock", os.O_RDWR | os.O_CREAT, 0o644)
    except OSError:
        return False
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            return False  # an upgrade (or another writer) is still on its way
        with contextlib.suppress(OSError, ReprocasError):
            write_marker_3(repo)
            return True
        return False
    finally:
        os.close(fd)
