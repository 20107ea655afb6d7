"""Asking a question only when someone can answer, and never waiting otherwise.

A question is asked only when stdin and stderr are terminals and none of ``--no-input``,
``REPROCAS_NO_INPUT`` (any non-empty value) or ``CI`` (any non-empty value but
``false``/``0``) says no one is there; ``--yes`` answers yes without asking. Questions
and answers go through stderr/stdin, so ``--json`` output on stdout stays clean.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass


def _set(name: str) -> bool:
    v = os.environ.get(name, "").strip().lower()
    return bool(v) and v not in ("0", "false", "no")


@dataclass(frozen=True)
class Asker:
    """How questions are answered in this command."""

    yes: bool = False  # --yes: answer yes, never wait
    no_input: bool = False  # --no-input: never ask

    @property
    def interactive(self) -> bool:
        if self.yes or self.no_input or _set("REPROCAS_NO_INPUT") or _set("CI"):
            return False
        try:
            return sys.stdin.isatty() and sys.stderr.isatty()
        except (AttributeError, ValueError):
            return False

    def confirm(self, question: str, *, default: bool) -> bool | None:
        """``True``/``False`` as answered (``--yes``: True); ``None`` when no question
        could be asked (the caller goes on as if nobody answered)."""
        if self.yes:
            return True
        if not self.interactive:
            return None
        hint = "[Y/n]" if default else "[y/N]"
        answer = self._read(f"{question} {hint} ")
        if answer is None:
            return default
        a = answer.strip().lower()
        if not a:
            return default
        return a in ("y", "yes")

    def text(self, question: str) -> str:
        """A line of text ("" when no one can answer)."""
        if not self.interactive:
            return ""
        return (self._read(question) or "").strip()

    @staticmethod
    def _read(prompt: str) -> str | None:
        sys.stderr.write(prompt)
        sys.stderr.flush()
        line = sys.stdin.readline()
        return None if line == "" else line  # EOF: the default
