"""Find secrets in text and replace them before anything is stored.

Only the secret itself is replaced, by ``«redacted:KIND»`` (``***`` for a URL's
credentials), so the rest of the line — and the number of lines — stays as it was: a
redacted patch still has the same hunks, a redacted file the same line numbers. A
:class:`Finding` names where a secret was and of which kind, never the secret.
"""

from __future__ import annotations

import bisect
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Any

from reprocas.security.patterns import (
    ASSIGNMENT,
    CODE_SUFFIXES,
    PRIVATE_KEY,
    RULES,
    secret_name,
    secret_value,
    secret_words,
)
from reprocas.security.urls import MASK, credentials

BINARY_PROBE = 8192
"""Data with a NUL byte in its first 8 KiB is binary and not scanned (as git decides)."""


@dataclass(frozen=True)
class Finding:
    """A secret found at ``line`` (1-based) of ``path``; ``kind`` says which pattern
    (``aws-access-key``, ``private-key``, ``assignment`` …). Environment variables are
    ``env:NAME`` with line 0."""

    path: str
    line: int
    kind: str

    @property
    def where(self) -> str:
        """``train.py line 3``, or ``environment variable NAME``."""
        if self.path.startswith("env:"):
            return f"environment variable {self.path[4:]}"
        return f"{self.path} line {self.line}"

    def to_json(self) -> dict[str, Any]:
        return {"path": self.path, "line": self.line, "kind": self.kind}

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> Finding:
        return cls(str(d.get("path", "")), int(d.get("line") or 0), str(d.get("kind", "")))


def marker(kind: str) -> str:
    """What a secret of ``kind`` is replaced by."""
    return f"«redacted:{kind}»"


@dataclass(frozen=True, slots=True)
class _Span:
    start: int
    end: int
    kind: str
    replacement: str


def _spans(text: str, path: str) -> list[_Span]:
    """The secrets of ``text``, in order, never overlapping."""
    taken: list[_Span] = []  # sorted by start
    starts: list[int] = []

    def add(start: int, end: int, kind: str, replacement: str | None = None) -> None:
        i = bisect.bisect_left(starts, start)
        if start >= end or (i > 0 and taken[i - 1].end > start):
            return
        if i < len(taken) and taken[i].start < end:
            return  # overlaps a secret found by an earlier (more specific) pattern
        text = marker(kind) if replacement is None else replacement
        taken.insert(i, _Span(start, end, kind, text))
        starts.insert(i, start)

    if "PRIVATE KEY" in text:
        for m in PRIVATE_KEY.finditer(text):
            # The whole block goes; its line breaks stay, so later lines keep their numbers.
            breaks = "".join(re.findall(r"\r?\n", m.group(0)))
            add(m.start(), m.end(), "private-key", marker("private-key") + breaks)
    for start, end in credentials(text):  # before the tokens: a whole user:password goes
        add(start, end, "password-in-url", MASK)
    for rule in RULES:
        g = "secret" if "secret" in rule.regex.groupindex else 0
        for m in rule.regex.finditer(text):
            if rule.starts_token(text, m.start()):
                add(m.start(g), m.end(g), rule.kind)
    code = PurePosixPath(path).suffix.lower() in CODE_SUFFIXES
    done = -1
    for w in secret_words(text):  # most lines name no secret: skip them
        if w.start() < done:
            continue
        start = text.rfind("\n", 0, w.start()) + 1
        end = text.find("\n", w.end())
        done = len(text) if end < 0 else end
        for m in ASSIGNMENT.finditer(text, start, done):
            _assignment(m, code, add)
    return taken


def _assignment(m: re.Match[str], code: bool, add: Callable[[int, int, str], None]) -> None:
    """Add the value of assignment ``m`` when its name and value say it is a secret."""
    word = secret_name(m.group("name"))
    if word is None:
        return
    g = "quoted" if m.group("q") is not None else "bare"
    if g == "bare" and code:
        return  # an expression in source code, not a literal
    if secret_value(m.group(g), word):
        add(m.start(g), m.end(g), "assignment")


def redact_text(text: str, path: str) -> tuple[str, list[Finding]]:
    """``text`` with every secret replaced, and what was found (``path`` names the
    file in the findings and decides whether bare words count, see
    :data:`~reprocas.security.patterns.CODE_SUFFIXES`)."""
    spans = _spans(text, path)
    if not spans:
        return text, []
    breaks = [m.start() for m in re.finditer("\n", text)]
    out: list[str] = []
    findings: list[Finding] = []
    pos = 0
    for s in spans:
        out += [text[pos : s.start], s.replacement]
        pos = s.end
        findings.append(Finding(path, bisect.bisect_left(breaks, s.start) + 1, s.kind))
    out.append(text[pos:])
    return "".join(out), findings


def scan_text(text: str, path: str) -> list[Finding]:
    """The secrets of ``text`` (see :func:`redact_text`), nothing replaced."""
    return redact_text(text, path)[1]


def is_binary(data: bytes) -> bool:
    return b"\0" in data[:BINARY_PROBE]


def redact_bytes(data: bytes, path: str) -> tuple[bytes, list[Finding]]:
    """:func:`redact_text` over a file's bytes. Binary data (a NUL in the first 8 KiB)
    is returned as is; invalid UTF-8 survives unchanged (``surrogateescape``)."""
    if is_binary(data):
        return data, []
    text = data.decode("utf-8", "surrogateescape")
    redacted, findings = redact_text(text, path)
    if not findings:
        return data, []
    return redacted.encode("utf-8", "surrogateescape"), findings
