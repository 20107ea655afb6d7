"""Replay, step one: put a recorded run's code state into a fresh working directory.

The run's git commit is written out of a local git repository that has it (through a
temporary index, so the repository's own index, worktrees and refs are never touched),
then the stored uncommitted diff ``code/diff.patch`` is applied; what the run stored of
the files git does not track is restored last (:func:`restore_untracked`).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from reprocas.errors import NotFoundError, ReprocasError
from reprocas.model.ids import ObjectId
from reprocas.model.objects import Run
from reprocas.provenance.run_code import files_record, restore_files
from reprocas.provenance.run_common import PATCH_FILE, Say
from reprocas.provenance.run_store import tree_files
from reprocas.store import checkout as checkout_mod
from reprocas.store.files import target_object
from reprocas.store.repository import Repository

CODE_REPOSITORY_KEY = "code_repository"
CODE_CWD_KEY = "code_cwd"
"""``extra`` keys of a replay: the git repository its code came from, and the working
directory relative to the code's top (so that a replay can itself be replayed)."""


class CodeUnavailableError(NotFoundError):
    """The run's git commit is in no git repository found locally (exit code 4)."""


class CodeRestoreError(ReprocasError):
    """The recorded code state could not be written into the working directory."""


# -- the code state ----------------------------------------------------------------------------

_GIT_LOCATION_VARS = (
    "GIT_DIR",
    "GIT_WORK_TREE",
    "GIT_INDEX_FILE",
    "GIT_OBJECT_DIRECTORY",
    "GIT_ALTERNATE_OBJECT_DIRECTORIES",
    "GIT_COMMON_DIR",
    "GIT_NAMESPACE",
    "GIT_PREFIX",
    "GIT_CEILING_DIRECTORIES",
    "GIT_DISCOVERY_ACROSS_FILESYSTEM",
)


def _git(
    args: list[str],
    *,
    cwd: Path,
    env: dict[str, str] | None = None,
    data: bytes | None = None,
) -> subprocess.CompletedProcess[bytes]:
    full = {k: v for k, v in os.environ.items() if k not in _GIT_LOCATION_VARS}
    full.update({"GIT_OPTIONAL_LOCKS": "0", "GIT_TERMINAL_PROMPT": "0", "LC_ALL": "C"})
    full.update(env or {})
    try:
        return subprocess.run(
            ["git", *args],
            cwd=cwd,
            env=full,
            input=data,
            stdin=None if data is not None else subprocess.DEVNULL,
            capture_output=True,
            check=False,
            timeout=600,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return subprocess.CompletedProcess(["git", *args], 1, b"", str(exc).encode())


def _first_line(raw: bytes) -> str:
    text = raw.decode("utf-8", "replace")
    return next((ln.strip() for ln in text.splitlines() if ln.strip()), "")


def _toplevel(d: Path) -> Path | None:
    if not d.is_dir():
        return None
    r = _git(["rev-parse", "--show-toplevel"], cwd=d)
    if r.returncode != 0:
        return None
    return Path(r.stdout.decode().strip()).resolve()


def _hint(run: Run, key: str) -> str | None:
    value = run.extra.get(key)
    return value if isinstance(value, str) and value else None


def locate_git(run: Run, commit: str | None) -> tuple[Path, str | None] | None:
    """A local git repository holding ``commit`` (any repository when it is None): the
    one the code came from when the run is a replay, the recorded working directory's,
    else the current directory's. Returns its toplevel and the recorded working
    directory relative to it (None when that is not known)."""
    if shutil.which("git") is None:
        return None
    recorded = Path(run.cwd)
    known_rel = _hint(run, CODE_CWD_KEY)  # a replay's: its cwd is in a working directory
    came_from = _hint(run, CODE_REPOSITORY_KEY)
    cands = ([Path(came_from)] if came_from else []) + [recorded, Path.cwd()]
    seen: set[Path] = set()
    for cand in cands:
        top = _toplevel(cand)
        if top is None or top in seen:
            continue
        seen.add(top)
        if commit and _git(["cat-file", "-e", f"{commit}^{{commit}}"], cwd=top).returncode:
            continue
        rel = known_rel
        if rel is None:
            try:
                rel = recorded.resolve().relative_to(top).as_posix()
            except (ValueError, OSError):
                rel = None
        return top, rel
    return None


def _checkout_commit(top: Path, commit: str, workdir: Path) -> None:
    """Write the files of ``commit`` into ``workdir`` as ``git checkout`` would (filters
    and attributes included), through a temporary index: the source repository's own
    index, worktrees and refs are never touched."""
    with tempfile.TemporaryDirectory(prefix="reprocas-replay-index-") as tmp:
        env = {"GIT_INDEX_FILE": str(Path(tmp) / "index")}
        r = _git(["read-tree", commit], cwd=top, env=env)
        if r.returncode == 0:
            r = _git(
                ["checkout-index", "--all", "--force", f"--prefix={workdir}{os.sep}"],
                cwd=top,
                env=env,
            )
    if r.returncode != 0:
        raise CodeRestoreError(
            f"cannot write git commit {commit[:12]} from {top} into {workdir}: "
            f"{_first_line(r.stderr) or 'git failed'}"
        )


def _apply_patch(patch: bytes, workdir: Path) -> None:
    """``git apply`` the stored uncommitted diff in ``workdir`` (never in a repository
    around it: discovery stops at the working directory)."""
    r = _git(
        ["apply", "--whitespace=nowarn", "-"],
        cwd=workdir,
        env={"GIT_CEILING_DIRECTORIES": str(workdir.parent)},
        data=patch,
    )
    if r.returncode != 0:
        raise CodeRestoreError(
            "the stored uncommitted diff (code/diff.patch) does not apply to the recorded "
            f"commit: {_first_line(r.stderr) or 'git apply failed'}"
        )


def _guess_rel(recorded: str, workdir: Path) -> str:
    """The recorded working directory inside the restored tree, when the repository was
    found elsewhere: the longest tail of its path that is a directory there."""
    parts = PurePosixPath(recorded).parts[1:]
    for k in range(len(parts), 0, -1):
        cand = "/".join(parts[-k:])
        if (workdir / cand).is_dir():
            return cand
    return "."


@dataclass
class CodeRestore:
    """How the code state was restored."""

    source: str  # "git" | "patch" | "none"
    rel_cwd: str
    commit: str | None = None
    git_repository: str | None = None
    patch_bytes: int = 0
    notes: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "commit": self.commit,
            "git_repository": self.git_repository,
            "patch_applied": self.patch_bytes > 0,
            "patch_bytes": self.patch_bytes,
            "cwd": self.rel_cwd,
        }


@dataclass(frozen=True, slots=True)
class CodeSource:
    """Where the run's code state will come from (found before anything is written)."""

    source: str  # "git" | "patch" | "none" | "package"
    commit: str | None = None
    toplevel: Path | None = None
    rel_cwd: str | None = None
    snapshot: str | None = None  # "package": the imported code version's id


def packaged_code(repo: Repository | None, rid: bytes | None) -> tuple[str, str] | None:
    """The code a package imported for run ``rid`` (reprocas.package.importer): the
    version's id and the working directory inside it; None when there is none."""
    if repo is None or rid is None:
        return None
    from reprocas.package.importer import CODE_CWD_KEY, code_name

    with repo.index.read() as txn:
        sid = repo.index.get_ref(txn, f"ds:{code_name(rid)}:v:0000000001")
        if sid is None:
            return None
        snap = repo.load_snapshot(txn, ObjectId(sid))
    return sid.hex(), str(snap.extra.get(CODE_CWD_KEY) or ".")


def find_code(
    run: Run, patch: bytes, repo: Repository | None = None, rid: bytes | None = None
) -> CodeSource:
    """Find the run's code state: a local git repository holding its commit, else the
    code a package imported for run ``rid``. Raises a clear error when the commit (or
    the stored diff) is nowhere to be found."""
    code = run.code or {}
    if not code or code.get("git") is False:  # outside git: at most its stored files
        return CodeSource("none", rel_cwd=".")
    if code.get("patch") and not patch:
        raise CodeRestoreError(
            f"the run names {PATCH_FILE} but its tree does not hold it; the uncommitted "
            "changes cannot be restored"
        )
    commit = str(code["commit"]) if code.get("commit") else None
    found = locate_git(run, commit)
    if commit is None:  # a repository without commits: the patch holds the staged files
        return CodeSource("patch", None, *(found or (None, None)))
    if found is None:
        packaged = packaged_code(repo, rid)
        if packaged is not None:
            return CodeSource("package", commit, None, packaged[1], packaged[0])
    if found is None and shutil.which("git") is None:
        raise CodeUnavailableError(
            f"run {run.name}#{run.number} ran git commit {commit[:12]}; restoring it needs "
            "git, which is not installed (not on the PATH)",
            commit=commit,
        )
    if found is None:
        raise CodeUnavailableError(
            f"run {run.name}#{run.number} ran git commit {commit[:12]} (in {run.cwd}), which "
            "is in no git repository found here: run `reprocas replay` from inside a clone "
            "that has it (git fetch), or where the run was recorded",
            commit=commit,
        )
    return CodeSource("git", commit, *found)


def restore_code(
    repo: Repository, run: Run, found: CodeSource, patch: bytes, workdir: Path, say: Say
) -> CodeRestore:
    """Put the run's code state into ``workdir``: its commit, then its stored diff, then
    what it stored of the untracked files."""
    code = run.code or {}
    if found.source == "package":
        assert found.snapshot is not None
        checkout_mod.checkout(repo, found.snapshot, workdir, force=True)
        say(
            f"code: git commit {str(found.commit)[:12]} is in no git repository here; "
            f"the code imported with its package ({found.snapshot[:12]}: the commit's tree "
            "with the stored diff applied and the stored files)"
        )
        return CodeRestore(
            "package",
            found.rel_cwd or ".",
            found.commit,
            None,
            len(patch),
            ["code restored from an imported package"],
        )
    if found.source == "none":
        if files_record(run) is None:
            say(
                "note: the run recorded no code state (it did not run in a git repository); "
                "the command runs in the working directory with its inputs only"
            )
            notes = ["no code state recorded"]
        else:
            notes = ["no git code state: the run did not run in a git repository"]
        notes += restore_untracked(repo, run, workdir, say)
        return CodeRestore("none", ".", notes=notes)
    notes = []
    if found.commit is not None and found.toplevel is not None:
        _checkout_commit(found.toplevel, found.commit, workdir)
    if patch:
        try:
            _apply_patch(patch, workdir)
        except CodeRestoreError as exc:
            if not code.get("redacted"):
                raise
            # A secret redacted from a removed or context line no longer matches the commit.
            raise CodeRestoreError(
                f"{exc.message}; secrets were redacted from the diff when the run was "
                "recorded (code.redacted): record it with --allow-secrets to replay it",
                **exc.fields,
            ) from exc
    if code.get("redacted"):
        notes.append(
            f"the stored diff had {len(code['redacted'])} secret(s) redacted when it was "
            "recorded: the code holds «redacted:KIND» markers there"
        )
    elif (code.get("diff") or {}).get("redacted"):
        notes.append("the stored diff had credentials in URLs replaced by ***")
    notes += restore_untracked(repo, run, workdir, say)
    rel = found.rel_cwd or _hint(run, CODE_CWD_KEY)
    if rel is None:
        rel = _guess_rel(run.cwd, workdir)
        notes.append(f"the recorded directory {run.cwd} is not in that repository; using {rel}")
    what = f"git commit {found.commit[:12]} from {found.toplevel}" if found.commit else "no commit"
    say(f"code: {what}" + (f" + the stored uncommitted diff ({len(patch)} bytes)" if patch else ""))
    for n in notes:
        say(f"note: {n}")
    return CodeRestore(
        found.source,
        rel,
        found.commit,
        str(found.toplevel) if found.toplevel else None,
        len(patch),
        notes,
    )


def restore_untracked(repo: Repository, run: Run, workdir: Path, say: Say) -> list[str]:
    """Restore the files of the original working tree that git did not track (or, for
    a run outside git, its working directory's files), when the run stored them, and
    return notes for the replay. The one place that does it: called after the commit
    and the diff are in place (and for a run outside git)."""
    rec = files_record(run)
    if rec is None:  # recorded before runs stored them
        count = (run.code or {}).get("untracked_count")
        if count:
            return [
                f"{count} untracked path(s) of the original working tree were not recorded "
                "and are not restored"
            ]
        return []
    count, size, problems = restore_files(repo, run, workdir)
    where = "git did not track" if run.code and run.code.get("git") is not False else "stored"
    say(f"code: {count} file(s) {where} restored from the run ({size} bytes)")
    notes = [f"{p}: not restored" for p in problems]
    skipped = rec.get("skipped") or []
    if skipped:
        names = ", ".join(str(s.get("path")) for s in skipped[:10])
        more = len(skipped) - 10 if len(skipped) > 10 else 0
        notes.append(
            f"{rec.get('skipped_count', len(skipped))} file(s) were not stored when the run "
            f"was recorded and are not restored: {names}" + (f" and {more} more" if more else "")
        )
    if rec.get("redacted"):
        notes.append(
            "secrets were redacted in the stored files: "
            + ", ".join(f"{r.get('path')} line {r.get('line')}" for r in rec["redacted"][:10])
        )
    return notes


# -- reading what the run stored --------------------------------------------------------------


def read_run_file(repo: Repository, run: Run, path: str) -> bytes | None:
    """A file of the run's own tree (``code/diff.patch``, ``metrics.json``), or None."""
    if run.root is None:
        return None
    label = f"{run.name}#{run.number}:{path}"
    with repo.index.read() as txn:
        entry = tree_files(repo, txn, run.root.raw).get(path)
        if entry is None or entry[0] != "file":
            return None
        manifest = repo.load_manifest(txn, target_object(repo, txn, entry[1], path))
        plan = checkout_mod.read_plan(repo, txn, manifest, label)
    with tempfile.TemporaryFile() as f:
        checkout_mod.write_file_to_fd(repo, plan, f.fileno(), label)
        f.seek(0)
        return f.read()
