"""Code outside git: the files a run needs that no commit holds.

A git commit and the stored uncommitted diff restore only what git tracks. A module
the script imports that was never ``git add``-ed (``helpers.py``), or a whole project
that is no git repository, would be lost. So a run also stores, under
``code/files/`` in its own tree:

* in a git repository, every file git neither tracks nor ignores (``git ls-files
  --others --exclude-standard``), at its path from the repository's top;
* outside git, the files under the working directory, at their path from it;

leaving out the reprocas repository, the run's inputs, outputs and metrics file, and
common junk (:data:`JUNK_DIRS`, :data:`JUNK_SUFFIXES`). What is stored is bounded
(:class:`CodeLimits`); every file left out for any other reason is named in a warning
and recorded (``code.files.skipped``), never dropped silently. Each file is scanned
for secrets before it is stored, and what was redacted is recorded and warned about.
A replay writes the files back (:func:`restore_files`).
"""

from __future__ import annotations

import os
import stat
import tempfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

import lmdb

from reprocas.model.objects import Run
from reprocas.native import core
from reprocas.provenance.run_store import tree_files
from reprocas.security import Finding, redact_bytes
from reprocas.security import warnings as secret_warnings
from reprocas.store import checkout as checkout_mod
from reprocas.store.files import target_object
from reprocas.store.repository import Repository

CODE_FILES_DIR = "code/files"
"""Where the run's tree holds the files (``code/files/helpers.py``)."""
KiB = 1024
MiB = 1024 * KiB
DEFAULT_TOTAL_LIMIT = 10 * MiB
DEFAULT_FILE_LIMIT = 1 * MiB
MAX_WALK = 20_000
"""Outside git, at most this many files are looked at (a run started in a home
directory must not read all of it); the rest is reported as not stored."""
MAX_RECORDED = 1000
"""At most this many skipped files and redactions are kept in the record."""
MAX_WARNED = 20
"""At most this many skipped files are named one by one in the warning."""

JUNK_DIRS = frozenset(
    {
        ".git",
        ".hg",
        ".svn",
        ".venv",
        "venv",
        "__pycache__",
        "node_modules",
        ".mypy_cache",
        ".pytest_cache",
        ".ruff_cache",
        ".tox",
        ".nox",
        ".ipynb_checkpoints",
        ".eggs",
        ".reprocas",
    }
)
"""Directories never stored (at any depth); ``*.egg-info`` too."""
JUNK_SUFFIXES = (".pyc", ".pyo", ".swp", ".DS_Store")


# -- what is stored -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CodeLimits:
    """How much of the code outside git a run stores (``--code-limit``,
    ``--code-file-limit``)."""

    total: int = DEFAULT_TOTAL_LIMIT
    per_file: int = DEFAULT_FILE_LIMIT


@dataclass
class StoredCode:
    """The files to put in the run's tree, their record and the warnings to print."""

    code: dict[str, Any] | None
    files: dict[str, bytes] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)


def _size(n: int) -> str:
    for unit, scale in (("MiB", MiB), ("KiB", KiB)):
        if n >= scale:
            return f"{n / scale:.1f} {unit}"
    return f"{n} bytes"


def _junk(rel: str) -> bool:
    parts = PurePosixPath(rel).parts
    if any(p in JUNK_DIRS or p.endswith(".egg-info") for p in parts[:-1]):
        return True
    return parts[-1].endswith(JUNK_SUFFIXES) if parts else True


def _under(rel: str, excluded: Iterable[str]) -> bool:
    return any(rel == x or rel.startswith(x + "/") or x == "." for x in excluded)


def _relative(paths: Iterable[Path], base: Path) -> list[str]:
    """The given paths that lie under ``base``, relative to it (posix)."""
    out = []
    for p in paths:
        try:
            out.append(p.resolve().relative_to(base).as_posix())
        except (ValueError, OSError):
            continue
    return out


def _walk(base: Path, excluded: list[str]) -> tuple[list[str], bool]:
    """The files under ``base`` (not following links into directories), without junk
    and excluded paths, in a fixed order; and whether :data:`MAX_WALK` stopped it."""
    found: list[str] = []
    for top, dirs, files in os.walk(base, followlinks=False):
        rel_top = Path(top).relative_to(base).as_posix()
        prefix = "" if rel_top == "." else rel_top + "/"
        dirs[:] = sorted(
            d
            for d in dirs
            if d not in JUNK_DIRS
            and not d.endswith(".egg-info")
            and not _under(prefix + d, excluded)
        )
        for f in sorted(files):
            rel = prefix + f
            if _junk(rel) or _under(rel, excluded):
                continue
            if len(found) >= MAX_WALK:
                return found, True
            found.append(rel)
    return found, False


def _candidates(
    cwd: Path, in_git: bool, excluded_paths: list[Path]
) -> tuple[Path, list[str], list[dict[str, Any]], bool]:
    """(base, files to consider, entries skipped on sight, walk stopped early)."""
    from reprocas.environment import gitstate

    found = gitstate.untracked_files(cwd) if in_git else None
    if in_git and found is None:
        reason = "git could not list the files it does not track"
        return cwd, [], [{"path": ".", "bytes": None, "reason": reason}], False
    if found is None:
        base = cwd
        excluded = _relative(excluded_paths, base)
        walked, stopped = _walk(base, excluded)
        return base, walked, [], stopped
    base, listed = found[0].resolve(), found[1]
    excluded = _relative(excluded_paths, base)
    files: list[str] = []
    skipped: list[dict[str, Any]] = []
    for rel in listed:
        if rel.endswith("/"):  # git lists a nested repository as a directory
            skipped.append({"path": rel, "bytes": None, "reason": "a nested git repository"})
        elif not _junk(rel) and not _under(rel, excluded):
            files.append(rel)
    return base, files, skipped, False


def capture_code(
    cwd: Path,
    git_code: dict[str, Any] | None,
    *,
    exclude: Iterable[Path],
    limits: CodeLimits = CodeLimits(),
    allow_secrets: bool = False,
) -> StoredCode:
    """The code of a run that no commit holds (see the module docstring). ``git_code``
    is the run's git code state (None outside git): the record is added to it.
    Secrets are redacted from the stored copies unless ``allow_secrets`` (then they
    are kept, and said so)."""
    cwd = cwd.resolve()
    base, names, skipped, stopped = _candidates(cwd, git_code is not None, list(exclude))
    files: dict[str, bytes] = {}
    executable: list[str] = []
    findings: list[Finding] = []
    total = 0
    digest_lines: list[bytes] = []
    for rel in names:
        p = base / rel
        try:
            st = p.lstat()
        except OSError as exc:
            skipped.append({"path": rel, "bytes": None, "reason": f"cannot be read: {exc}"})
            continue
        if stat.S_ISLNK(st.st_mode):
            skipped.append({"path": rel, "bytes": None, "reason": "a symbolic link"})
            continue
        if not stat.S_ISREG(st.st_mode):
            skipped.append({"path": rel, "bytes": None, "reason": "not a regular file"})
            continue
        if st.st_size > limits.per_file:
            reason = f"over the {_size(limits.per_file)} per-file limit (--code-file-limit)"
            skipped.append({"path": rel, "bytes": st.st_size, "reason": reason})
            continue
        if total + st.st_size > limits.total:
            reason = f"over the {_size(limits.total)} total limit (--code-limit)"
            skipped.append({"path": rel, "bytes": st.st_size, "reason": reason})
            continue
        try:
            data = p.read_bytes()
        except OSError as exc:
            reason = f"cannot be read: {exc.strerror or exc}"
            skipped.append({"path": rel, "bytes": st.st_size, "reason": reason})
            continue
        redacted, found = redact_bytes(data, rel)
        findings += found
        if not allow_secrets:
            data = redacted
        total += len(data)
        files[f"{CODE_FILES_DIR}/{rel}"] = data
        if st.st_mode & 0o111:
            executable.append(rel)
        digest_lines.append(rel.encode() + b"\0" + core.blake3_digest(data))
    if stopped:
        skipped.append(
            {
                "path": ".",
                "bytes": None,
                "reason": f"only the first {MAX_WALK} files under {base} were looked at",
            }
        )
    if not files and not skipped:
        return StoredCode(git_code)
    record: dict[str, Any] = {
        "dir": CODE_FILES_DIR,
        "base": "git toplevel" if git_code is not None else "cwd",
        "count": len(files),
        "bytes": total,
        "blake3": core.blake3_digest(b"\n".join(digest_lines)).hex(),
        "executable": executable,
        "skipped": skipped[:MAX_RECORDED],
        "skipped_count": len(skipped),
        "limits": {"total": limits.total, "per_file": limits.per_file},
    }
    listed = [f.to_json() for f in findings[:MAX_RECORDED]]
    if allow_secrets:
        record.update(secrets_allowed=True, secrets_kept=listed)
    else:
        record["redacted"] = listed
    if git_code is not None:
        code = {**git_code, "files": record}
    else:
        code = {"commit": None, "git": False, "files": record}
    return StoredCode(code, files, _warnings(skipped, findings, allow_secrets))


def _warnings(
    skipped: list[dict[str, Any]], findings: list[Finding], allow_secrets: bool
) -> list[str]:
    out = [f"warning: {w}" for w in secret_warnings(findings, allowed=allow_secrets)]
    if skipped:
        out.append(
            f"warning: {len(skipped)} file(s) of the code outside git not stored "
            "(a replay will not have them):"
        )
        for s in skipped[:MAX_WARNED]:
            size = f" ({_size(s['bytes'])})" if s.get("bytes") is not None else ""
            out.append(f"warning:   {s['path']}{size}: {s['reason']}")
        if len(skipped) > MAX_WARNED:
            out.append(
                f"warning:   … and {len(skipped) - MAX_WARNED} more (the run's "
                "code.files.skipped lists them)"
            )
    return out


def code_exclusions(
    repo_root: Path,
    cwd: Path,
    inputs: Iterable[dict[str, Any]],
    outputs: Iterable[str],
    metrics: str | None,
) -> list[Path]:
    """What is never stored as code: the repository, the inputs' checkouts, the
    outputs and the metrics file."""
    paths = [repo_root]
    paths += [cwd / str(i["path"]) for i in inputs if i.get("path") is not None]
    paths += [cwd / o for o in outputs]
    if metrics:
        paths.append(cwd / metrics)
    return paths


# -- reading them back --------------------------------------------------------------------------


def files_record(run: Run) -> dict[str, Any] | None:
    """The run's record of the code it stored outside git, or None."""
    rec = (run.code or {}).get("files")
    return rec if isinstance(rec, dict) else None


def _entries(repo: Repository, txn: lmdb.Transaction, run: Run) -> Iterator[tuple[str, bytes]]:
    if run.root is None:
        return
    prefix = CODE_FILES_DIR + "/"
    for path, (kind, target, _mode) in sorted(tree_files(repo, txn, run.root.raw).items()):
        if kind == "file" and path.startswith(prefix):
            yield path[len(prefix) :], target


def read_files(repo: Repository, run: Run) -> dict[str, bytes]:
    """The stored files, by their path in the run's tree (``code/files/...``)."""
    out: dict[str, bytes] = {}
    with repo.index.read() as txn:
        for rel, target in _entries(repo, txn, run):
            label = f"{run.name}#{run.number}:{CODE_FILES_DIR}/{rel}"
            manifest = repo.load_manifest(txn, target_object(repo, txn, target, rel))
            plan = checkout_mod.read_plan(repo, txn, manifest, label)
            with tempfile.TemporaryFile() as f:
                checkout_mod.write_file_to_fd(repo, plan, f.fileno(), label)
                f.seek(0)
                out[f"{CODE_FILES_DIR}/{rel}"] = f.read()
    return out


def restore_files(repo: Repository, run: Run, workdir: Path) -> tuple[int, int, list[str]]:
    """Write the stored files into ``workdir`` (each at its recorded path, executable
    when it was); returns (files, bytes, problems). A path that would leave the
    working directory, or that the restored commit already holds, is a problem and
    is not written."""
    rec = files_record(run) or {}
    executable = set(rec.get("executable") or ())
    count = size = 0
    problems: list[str] = []
    prefix = CODE_FILES_DIR + "/"
    for path, data in read_files(repo, run).items():
        rel = path[len(prefix) :]
        pure = PurePosixPath(rel)
        if pure.is_absolute() or ".." in pure.parts:
            problems.append(f"{rel}: not a relative path inside the working directory")
            continue
        dest = workdir / rel
        if dest.exists() or dest.is_symlink():
            problems.append(f"{rel}: already restored from the commit; the stored copy is not")
            continue
        try:
            dest.parent.mkdir(parents=True, exist_ok=True)
            dest.write_bytes(data)
            if rel in executable:
                dest.chmod(dest.stat().st_mode | 0o111)
        except OSError as exc:
            problems.append(f"{rel}: cannot be written: {exc.strerror or exc}")
            continue
        count += 1
        size += len(data)
    return count, size, problems
