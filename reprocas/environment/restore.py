"""Rebuild an environment snapshot as a new virtual environment.

From a ``--full`` snapshot the site-packages trees are checked out of the store into
a fresh ``python -m venv --without-pip`` (offline, byte for byte: every chunk is
verified as it is written). Otherwise the pinned requirements are installed with the
new venv's pip (``--no-deps``, so exactly the recorded set), and whatever the venv
brought that the snapshot did not have (pip, setuptools) is uninstalled. Either way the
result is captured again and compared with the snapshot's package list.

Console scripts in ``bin/`` are not restored from the store: their shebang lines name
the original interpreter. Run them as ``python -m NAME``, or reinstall the package.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from reprocas.environment import export
from reprocas.environment.capture import normalise, probe
from reprocas.environment.diff import PackageDiff, diff_packages
from reprocas.environment.errors import (
    EnvironmentCaptureError,
    ExportFormatError,
    InterpreterMismatchError,
    RestoreError,
)
from reprocas.environment.store import EnvRecord, load
from reprocas.errors import DestinationError
from reprocas.progress import Progress
from reprocas.store import checkout as checkout_mod
from reprocas.store.repository import Repository

METHODS = ("auto", "store", "pip")
_VERSION = "import sys; print('%d.%d.%d' % sys.version_info[:3])"


@dataclass(frozen=True, slots=True)
class RestoreResult:
    """What ``env restore`` built, and how it compares with the snapshot."""

    ref: str
    dest: Path
    method: str
    base_python: str
    python: str
    packages: int
    files: int
    bytes: int
    diff: PackageDiff
    notes: tuple[str, ...]

    @property
    def exact(self) -> bool:
        return not self.diff

    def to_json(self) -> dict[str, Any]:
        return {
            "ref": self.ref,
            "dest": str(self.dest),
            "method": self.method,
            "base_python": self.base_python,
            "python": self.python,
            "packages": self.packages,
            "files": self.files,
            "bytes": self.bytes,
            "exact": self.exact,
            "diff": self.diff.to_json(),
            "notes": list(self.notes),
        }


def _run(argv: list[str], what: str, timeout: float = 1800) -> subprocess.CompletedProcess[str]:
    try:
        proc = subprocess.run(
            argv,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
            stdin=subprocess.DEVNULL,
        )
    except (OSError, subprocess.SubprocessError) as exc:
        raise RestoreError(f"{what} failed: {exc}") from exc
    if proc.returncode != 0:
        lines = [ln for ln in (proc.stderr or proc.stdout).splitlines() if ln.strip()]
        errors = [ln for ln in lines if "ERROR" in ln or "Error" in ln]
        why = (errors or lines or [f"exit status {proc.returncode}"])[-1].strip()
        raise RestoreError(f"{what} failed: {why}")
    return proc


def _version_of(python: str) -> str | None:
    try:
        proc = subprocess.run(
            [python, "-c", _VERSION],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
            stdin=subprocess.DEVNULL,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return proc.stdout.strip() if proc.returncode == 0 else None


def base_python(facts: dict[str, Any], python: str | None = None) -> tuple[str, list[str]]:
    """The interpreter to create the venv with: ``python`` if given (it must have the
    snapshot's X.Y), else the snapshot's own base interpreter, ``pythonX.Y`` on PATH, or
    the one running reprocas, whichever exists and has the same X.Y."""
    py = facts["python"]
    want = py["version"]
    major_minor = ".".join(want.split(".")[:2])
    notes: list[str] = []
    if python is not None:
        have = _version_of(python)
        if have is None:
            raise EnvironmentCaptureError(f"--python {python} cannot be run", path=python)
        if have.split(".")[:2] != want.split(".")[:2]:
            raise InterpreterMismatchError(
                f"--python {python} is Python {have}, but the snapshot ran Python {want}; "
                f"give a Python {major_minor} interpreter"
            )
        chosen = python
    else:
        candidates = [
            py.get("base_executable"),
            shutil.which(f"python{major_minor}"),
            sys.executable,
        ]
        found = None
        for cand in candidates:
            if cand and Path(cand).exists():
                have = _version_of(cand)
                if have and have.split(".")[:2] == want.split(".")[:2]:
                    found = (cand, have)
                    break
        if found is None:
            raise InterpreterMismatchError(
                f"no Python {major_minor} interpreter found (the snapshot ran Python {want}); "
                f"install one and pass it with --python"
            )
        chosen, have = found
    if have != want:
        notes.append(f"the snapshot ran Python {want}; the venv uses Python {have}")
    return chosen, notes


def _venv_python(dest: Path) -> Path:
    return dest / ("Scripts/python.exe" if os.name == "nt" else "bin/python")


def restore(
    repo: Repository,
    ref: str,
    dest: Path,
    *,
    method: str = "auto",
    python: str | None = None,
    progress: Progress | None = None,
) -> RestoreResult:
    """Create a venv at ``dest`` that reproduces environment snapshot ``ref``."""
    if method not in METHODS:
        raise ExportFormatError(f"unknown method {method!r}; use one of {', '.join(METHODS)}")
    rec = load(repo, ref)
    if method == "auto":
        method = "store" if rec.full and rec.site_packages else "pip"
    if method == "store" and not (rec.full and rec.site_packages):
        raise ExportFormatError(
            f"{rec.ref} does not hold site-packages (it was not taken with --full); "
            "restore it with --method pip"
        )
    if dest.exists() and (not dest.is_dir() or any(dest.iterdir())):
        raise DestinationError(f"{dest} exists and is not empty; give a new directory")
    base, notes = base_python(rec.facts, python)
    existed = dest.exists()
    argv = [base, "-m", "venv"] + (["--without-pip"] if method == "store" else []) + [str(dest)]
    vpy = _venv_python(dest)
    files = written = 0
    try:
        _run(argv, f"creating a venv at {dest} with {base}")
        if method == "store":
            files, written = _from_store(repo, rec, dest, vpy, progress)
        else:
            notes += _with_pip(rec, vpy)
        now = probe(str(vpy))
    except BaseException:
        # A half-built venv is worse than none: leave DEST as it was (absent or empty).
        if existed:
            for child in dest.iterdir():
                if child.is_dir() and not child.is_symlink():
                    shutil.rmtree(child, ignore_errors=True)
                else:
                    child.unlink(missing_ok=True)
        else:
            shutil.rmtree(dest, ignore_errors=True)
        raise
    return RestoreResult(
        ref=rec.ref,
        dest=dest,
        method=method,
        base_python=base,
        python=str(vpy),
        packages=len(now["packages"]),
        files=files,
        bytes=written,
        diff=diff_packages(rec.facts.get("packages") or [], now["packages"]),
        notes=tuple(notes),
    )


def _from_store(
    repo: Repository, rec: EnvRecord, dest: Path, vpy: Path, progress: Progress | None
) -> tuple[int, int]:
    purelib = _run(
        [str(vpy), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        "asking the new venv for its site-packages",
    ).stdout.strip()
    files = written = 0
    # Later entries first, so that the first site directory (which wins on sys.path)
    # overwrites anything they share.
    for sp in reversed(rec.site_packages):
        rel = sp.get("prefix_rel")
        target = dest / rel if rel and (dest / rel).is_dir() else Path(purelib)
        target.mkdir(parents=True, exist_ok=True)
        r = checkout_mod.checkout(
            repo,
            rec.version.id.hex,
            target,
            subpath=str(sp["entry"]),
            force=any(target.iterdir()),
            remove_stale=False,  # an overlay: the venv's own files and other site dirs stay
            progress=progress,
        )
        files += r.files
        written += r.bytes
    return files, written


def _with_pip(rec: EnvRecord, vpy: Path) -> list[str]:
    notes: list[str] = []
    text = export.requirements(rec.facts, rec.ref)
    with tempfile.TemporaryDirectory(prefix="reprocas-restore-") as tmp:
        req = Path(tmp) / "requirements.txt"
        req.write_text(text)
        _run(
            [
                str(vpy),
                "-m",
                "pip",
                "install",
                "--no-deps",
                "--disable-pip-version-check",
                "--no-input",
                "-r",
                str(req),
            ],
            "pip install of the pinned requirements",
        )
    wanted = {normalise(p["name"]) for p in rec.facts.get("packages") or []}
    have = probe(str(vpy))["packages"]
    extra = [p["name"] for p in have if normalise(p["name"]) not in wanted]
    if extra:
        _run(
            [str(vpy), "-m", "pip", "uninstall", "-y", "--disable-pip-version-check", *extra],
            "removing packages the snapshot did not have",
        )
        notes.append(
            f"removed what the new venv brought but the snapshot lacked: {', '.join(extra)}"
        )
    return notes
