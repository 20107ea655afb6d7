"""The code state of a project, read with the ``git`` command line.

Every case a user can be in is an answer, not an error: no git installed, not a
repository, a repository without commits, a detached HEAD, a dirty tree with binary
files. The uncommitted tracked changes become one patch (``git diff HEAD --binary``,
which ``git apply`` takes back, binary files included); untracked files are listed,
not stored. Secrets in the patch are redacted before it goes anywhere (see
:func:`reprocas.security.redact_patch`) unless ``allow_secrets``; either way the
findings are recorded (``redacted`` or ``secrets_kept``).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from reprocas.native import core
from reprocas.security import Finding, redact_patch, redact_urls, secret_facts

MAX_UNTRACKED = 1000
"""At most this many untracked paths are listed (the count is always exact)."""


@dataclass
class GitState:
    """The ``git`` section of the facts, the patch to store, and notes for the user."""

    facts: dict[str, Any] | None
    patch: bytes = b""
    notes: list[str] = field(default_factory=list)
    findings: list[Finding] = field(default_factory=list)


def _git(root: Path, *args: str, text: bool = True) -> subprocess.CompletedProcess[Any]:
    env = dict(os.environ)
    # Read-only: never take index.lock, never page, never localise messages.
    env.update({"GIT_OPTIONAL_LOCKS": "0", "GIT_PAGER": "cat", "LC_ALL": "C"})
    return subprocess.run(
        ["git", "-C", str(root), *args],
        capture_output=True,
        text=text,
        env=env,
        check=False,
        stdin=subprocess.DEVNULL,
        timeout=120,
    )


def _first_line(text: str) -> str:
    return next((ln.strip() for ln in text.splitlines() if ln.strip()), "")


def capture(
    project: Path, *, exclude: tuple[Path, ...] = (), allow_secrets: bool = False
) -> GitState:
    """The git state of ``project``; paths under ``exclude`` (the reprocas repository,
    say) are left out of the untracked list. Secrets in the patch are redacted unless
    ``allow_secrets``."""
    if shutil.which("git") is None:
        return GitState(None, notes=["git is not installed: no code state recorded"])
    top = _git(project, "rev-parse", "--show-toplevel")
    if top.returncode != 0:
        msg = _first_line(top.stderr)
        if "not a git repository" in msg:
            return GitState(None, notes=[f"{project} is not in a git repository: no code state"])
        return GitState(None, notes=[f"git cannot read {project}: {msg}"])
    toplevel = Path(top.stdout.strip())
    head = _git(project, "rev-parse", "--verify", "-q", "HEAD^{commit}")
    commit = head.stdout.strip() if head.returncode == 0 else None
    notes: list[str] = []
    branch_p = _git(project, "symbolic-ref", "-q", "--short", "HEAD")
    branch = branch_p.stdout.strip() if branch_p.returncode == 0 else None
    detached = branch is None
    if detached:
        notes.append(f"detached HEAD at {commit[:12] if commit else '?'}: no branch recorded")
    remote_url = _remote_url(project, branch)

    if commit is None:
        notes.append("the repository has no commits yet: the patch holds the staged files")
        diff = _git(
            project, "diff", "--cached", "--binary", "--no-color", "--no-ext-diff", text=False
        )
    else:
        diff = _git(project, "diff", "HEAD", "--binary", "--no-color", "--no-ext-diff", text=False)
    patch = diff.stdout if diff.returncode == 0 else b""
    if diff.returncode != 0:
        notes.append("git diff failed: " + _first_line(diff.stderr.decode("utf-8", "replace")))
    scrubbed, findings = redact_patch(patch)
    redacted = bool(findings) and not allow_secrets
    if redacted:
        patch = scrubbed

    untracked = _untracked(toplevel, exclude)
    diff_facts: dict[str, Any] | None = None
    if patch:
        diff_facts = {
            "files": patch.count(b"\ndiff --git ") + int(patch.startswith(b"diff --git ")),
            "binary_files": patch.count(b"\nGIT binary patch\n"),
            "bytes": len(patch),
            "blake3": core.blake3_digest(patch).hex(),
            "redacted": redacted,
        }
    facts: dict[str, Any] = {
        "commit": commit,
        "branch": branch,
        "detached": detached,
        "remote_url": remote_url,
        "dirty": bool(patch) or bool(untracked),
        "diff": diff_facts,
        "untracked": untracked[:MAX_UNTRACKED],
        "untracked_count": len(untracked),
        **secret_facts(findings, allow_secrets),
    }
    return GitState(facts, patch, notes, findings)


def _remote_url(project: Path, branch: str | None) -> str | None:
    """The URL of the branch's upstream remote, else of ``origin``, else of the first."""
    names: list[str] = []
    if branch:
        r = _git(project, "config", "--get", f"branch.{branch}.remote")
        if r.returncode == 0 and r.stdout.strip():
            names.append(r.stdout.strip())
    listed = _git(project, "remote")
    remotes = listed.stdout.split() if listed.returncode == 0 else []
    names += ["origin", *remotes]
    for name in names:
        if name not in remotes:
            continue
        r = _git(project, "remote", "get-url", name)
        if r.returncode == 0 and r.stdout.strip():
            return redact_urls(r.stdout.strip())
    return None


def _untracked(toplevel: Path, exclude: tuple[Path, ...]) -> list[str]:
    r = _git(toplevel, "ls-files", "--others", "--exclude-standard", "--directory", "-z")
    if r.returncode != 0:
        return []
    ex = []
    for e in exclude:
        try:
            ex.append(e.resolve().relative_to(toplevel.resolve()).as_posix().rstrip("/") + "/")
        except ValueError:
            continue
    out = []
    for p in r.stdout.split("\0"):
        if not p:
            continue
        norm = p if p.endswith("/") else p + "/"
        if any(norm.startswith(x) for x in ex):
            continue
        out.append(p)
    return sorted(out)


def untracked_files(project: Path) -> tuple[Path, list[str]] | None:
    """The toplevel of the git repository around ``project`` and every file in it that
    git neither tracks nor ignores, relative to the toplevel, sorted (a nested
    repository is listed as its directory, ending in ``/``); None outside a repository
    or without git."""
    if shutil.which("git") is None:
        return None
    top = _git(project, "rev-parse", "--show-toplevel")
    if top.returncode != 0:
        return None
    toplevel = Path(top.stdout.strip())
    r = _git(toplevel, "ls-files", "--others", "--exclude-standard", "-z", text=False)
    if r.returncode != 0:
        return None
    return toplevel, sorted(os.fsdecode(p) for p in r.stdout.split(b"\0") if p)
