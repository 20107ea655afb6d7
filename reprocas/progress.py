"""Progress reporting for long operations; the CLI draws a bar from it."""

from __future__ import annotations


class Progress:
    """Receives progress of a long operation. The default does nothing."""

    def start(self, total_bytes: int, files: int) -> None:
        """Called once, before the work, with the bytes that will be processed."""

    def advance(self, nbytes: int) -> None:
        """Called as bytes are processed."""

    def file_done(self) -> None:
        """Called as each file (or pack, for `verify`) is done."""
