"""Secrets in a git patch (``git diff HEAD --binary``), by file and line.

The patch is read file by file and hunk by hunk, so a finding names the file and the
line in the new file (in the old file for a removed line). Each side of a file — the
new side's added and context lines, the old side's removed and context lines — is
scanned as one text, so a private key spread over several lines is found as one block.
Removed lines are redacted too: a key deleted from the code is still in the patch.
Only line contents change (never the ``+``/``-`` prefix nor the number of lines), so
the hunk headers stay right; binary hunks (base85) are left alone.
"""

from __future__ import annotations

import codecs
import re
from dataclasses import dataclass, field

from reprocas.security.secrets import Finding, redact_text

_HUNK = re.compile(rb"^@@ -(\d+)(?:,(\d+))? \+(\d+)(?:,(\d+))? @@")


@dataclass
class _File:
    """One file of the patch: its paths and the patch lines of each side."""

    old_path: str = ""
    new_path: str = ""
    new: list[tuple[int, int]] = field(default_factory=list)  # (patch line, file line)
    old: list[tuple[int, int]] = field(default_factory=list)

    @property
    def path(self) -> str:
        return self.new_path or self.old_path


def _git_path(raw: bytes, prefix: str) -> str:
    """A path from a ``---``/``+++`` line: C-quoted when it holds unusual characters."""
    text = raw.rstrip(b"\r").split(b"\t", 1)[0]
    if text.startswith(b'"') and text.endswith(b'"') and len(text) >= 2:
        text = codecs.escape_decode(text[1:-1])[0]
    path = text.decode("utf-8", "surrogateescape")
    if path == "/dev/null":
        return ""
    return path[len(prefix) :] if path.startswith(prefix) else path


def _header_path(line: bytes) -> str:
    """The new path of a ``diff --git a/X b/Y`` line (used when no ``+++`` follows)."""
    rest = line[len(b"diff --git ") :]
    if rest.startswith(b'"'):
        end = rest.find(b'" ', 1)
        rest = rest[end + 2 :] if end > 0 else b""
    else:
        i = rest.find(b" b/")
        rest = rest[i + 1 :] if i >= 0 else b""
    return _git_path(rest, "b/") if rest else ""


def _files(lines: list[bytes]) -> list[_File]:
    files: list[_File] = []
    cur: _File | None = None
    binary = False
    old_ln = new_ln = old_left = new_left = 0
    for i, line in enumerate(lines):
        if old_left > 0 or new_left > 0:
            assert cur is not None
            tag = line[:1]
            if tag == b"\\":
                continue  # "\ No newline at end of file"
            if tag in (b" ", b""):  # some tools strip a context line's lone space
                cur.new.append((i, new_ln))
                cur.old.append((i, old_ln))
                new_ln, new_left = new_ln + 1, new_left - 1
                old_ln, old_left = old_ln + 1, old_left - 1
                continue
            if tag == b"+":
                cur.new.append((i, new_ln))
                new_ln, new_left = new_ln + 1, new_left - 1
                continue
            if tag == b"-":
                cur.old.append((i, old_ln))
                old_ln, old_left = old_ln + 1, old_left - 1
                continue
            old_left = new_left = 0  # a malformed hunk: read on as headers
        if line.startswith(b"diff --git "):
            cur = _File(new_path=_header_path(line))
            cur.old_path = cur.new_path
            files.append(cur)
            binary = False
        elif cur is None or binary:
            continue
        elif line.startswith(b"GIT binary patch"):
            binary = True
        elif line.startswith(b"--- "):
            cur.old_path = _git_path(line[4:], "a/")
        elif line.startswith(b"+++ "):
            cur.new_path = _git_path(line[4:], "b/")
        elif m := _HUNK.match(line):
            old_ln, new_ln = int(m.group(1)), int(m.group(3))
            old_left = int(m.group(2)) if m.group(2) is not None else 1
            new_left = int(m.group(4)) if m.group(4) is not None else 1
    return files


def _side(
    lines: list[bytes], side: list[tuple[int, int]], path: str
) -> tuple[list[str], list[Finding]]:
    """Redact one side of a file; the redacted contents, one per entry of ``side``."""
    contents = [lines[i][1:].decode("utf-8", "surrogateescape") for i, _ in side]
    text, found = redact_text("\n".join(contents) + "\n", path)
    if not found:
        return contents, []
    out = text.split("\n")[:-1]
    if len(out) != len(contents):  # the redaction keeps every line break; never reached
        raise AssertionError("redaction changed the number of lines of a patch")
    return out, [Finding(path, side[f.line - 1][1], f.kind) for f in found]


def redact_patch(patch: bytes) -> tuple[bytes, list[Finding]]:
    """``patch`` with its secrets replaced, and the findings (path and new-file line;
    old-file line for a removed line)."""
    if not patch:
        return patch, []
    lines = patch.split(b"\n")
    findings: list[Finding] = []
    changed = False
    for f in _files(lines):
        new_out, new_found = _side(lines, f.new, f.path)
        old_out, old_found = _side(lines, f.old, f.old_path or f.path)
        done: set[int] = set()
        for (i, _), text in zip(f.new, new_out, strict=True):
            if text != lines[i][1:].decode("utf-8", "surrogateescape"):
                lines[i] = lines[i][:1] + text.encode("utf-8", "surrogateescape")
                done.add(i)
                changed = True
        removed = {i for i, _ in f.old if lines[i][:1] == b"-"}
        for (i, _), text in zip(f.old, old_out, strict=True):
            if i not in done and text != lines[i][1:].decode("utf-8", "surrogateescape"):
                lines[i] = lines[i][:1] + text.encode("utf-8", "surrogateescape")
                changed = True
        # A context line is in both sides: report it once, by its new-file line.
        old_lines = {ln for i, ln in f.old if i in removed}
        findings += new_found
        findings += [x for x in old_found if x.line in old_lines]
    if not changed:
        return patch, []
    return b"\n".join(lines), findings
