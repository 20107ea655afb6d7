"""Capture an environment: what the interpreter sees, the host, the project's lock files,
allowlisted environment variables and the code state, as one canonical facts document.

The interpreter's own view (version, installed distributions, site-packages) comes
from the probe (``_probe.py``) run *in that interpreter*, so ``--python
/path/to/venv/bin/python`` captures that venv, not reprocas's own. The facts hold no
timestamps and nothing that changes between two runs on an unchanged machine, so that
equal environments give equal ids.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from reprocas.environment import allowlist, gitstate, hardware
from reprocas.environment.errors import EnvironmentCaptureError
from reprocas.native import core
from reprocas.security import Finding, redact_bytes, secret_facts, warnings

FACTS_SCHEMA = 1
"""Version of the facts layout (docs/ENVIRONMENT.md); bumped when a field changes meaning."""

LOCK_PATTERNS: tuple[str, ...] = (
    "requirements*.txt",
    "requirements*.in",
    "constraints*.txt",
    "requirements/*.txt",
    "requirements/*.in",
    "pyproject.toml",
    "setup.cfg",
    "setup.py",
    "poetry.lock",
    "uv.lock",
    "Pipfile",
    "Pipfile.lock",
    "pdm.lock",
    "environment.yml",
    "environment.yaml",
    "conda-lock.yml",
    ".python-version",
)
"""Lock and manifest files looked for in the project directory (not recursively)."""

MAX_LOCK_FILE = 16 << 20
PROBE_TIMEOUT = 120.0
_PROBE_SOURCE: str | None = None


@dataclass
class Capture:
    """A captured environment: the facts object and the files stored beside it."""

    facts: dict[str, Any]
    files: dict[str, bytes] = field(default_factory=dict)
    patch: bytes = b""
    notes: list[str] = field(default_factory=list)
    env_allow: tuple[str, ...] = ()
    project: Path = Path(".")
    findings: list[Finding] = field(default_factory=list)  # in lock files and variables
    secrets_allowed: bool = False
    git_findings: list[Finding] = field(default_factory=list)  # in the patch

    @property
    def site_dirs(self) -> list[str]:
        return list(self.facts["python"]["site_packages"])

    def warnings(self) -> list[str]:
        """One line per secret found: redacted, or kept under ``--allow-secrets``."""
        return warnings([*self.git_findings, *self.findings], allowed=self.secrets_allowed)


def default_python(environ: Mapping[str, str] | None = None) -> str:
    """The interpreter of the active environment: $VIRTUAL_ENV's, then $CONDA_PREFIX's,
    then the one running reprocas."""
    env = os.environ if environ is None else environ
    sub = ("Scripts", "python.exe") if os.name == "nt" else ("bin", "python")
    for var in ("VIRTUAL_ENV", "CONDA_PREFIX"):
        if env.get(var):
            candidate = Path(env[var], *sub)
            if candidate.exists():
                return str(candidate)
    return sys.executable


def probe_source() -> str:
    global _PROBE_SOURCE
    if _PROBE_SOURCE is None:
        _PROBE_SOURCE = Path(__file__).with_name("_probe.py").read_text(encoding="utf-8")
    return _PROBE_SOURCE


def probe(python: str) -> dict[str, Any]:
    """Run the probe in ``python`` and return what it printed."""
    from reprocas.environment._probe import MARKER

    p = Path(python)
    if (p.is_absolute() or os.sep in python) and p.is_dir():
        raise EnvironmentCaptureError(
            f"--python {python} is a directory; give the interpreter, e.g. {p / 'bin/python'}",
            path=python,
        )
    try:
        proc = subprocess.run(
            [python, "-c", probe_source()],
            capture_output=True,
            timeout=PROBE_TIMEOUT,
            check=False,
            stdin=subprocess.DEVNULL,
        )
    except FileNotFoundError as exc:
        raise EnvironmentCaptureError(
            f"--python {python}: no such interpreter (a broken venv, or a typo?)", path=python
        ) from exc
    except PermissionError as exc:
        raise EnvironmentCaptureError(
            f"--python {python}: permission denied; is it an executable interpreter?",
            path=python,
        ) from exc
    except OSError as exc:
        raise EnvironmentCaptureError(
            f"--python {python} cannot be run: {exc.strerror or exc}", path=python
        ) from exc
    except subprocess.TimeoutExpired as exc:
        raise EnvironmentCaptureError(
            f"--python {python} did not answer within {PROBE_TIMEOUT:.0f} s", path=python
        ) from exc
    out = proc.stdout.decode("utf-8", "replace")
    if proc.returncode != 0 or MARKER not in out:
        err = proc.stderr.decode("utf-8", "replace").strip().splitlines()
        why = err[-1] if err else f"exit status {proc.returncode}"
        raise EnvironmentCaptureError(
            f"--python {python} is not a working Python 3.8+ interpreter: {why}", path=python
        )
    try:
        facts = json.loads(out.rsplit(MARKER, 1)[1])
    except ValueError as exc:
        raise EnvironmentCaptureError(
            f"--python {python}: the probe's answer was not readable ({exc})", path=python
        ) from exc
    if not isinstance(facts, dict):
        raise EnvironmentCaptureError(f"--python {python}: unexpected probe answer", path=python)
    return facts


def lock_files(
    project: Path, *, allow_secrets: bool = False
) -> tuple[dict[str, bytes], list[dict[str, Any]], list[str], list[Finding]]:
    """The lock and manifest files of ``project``: contents (secrets redacted unless
    ``allow_secrets``), their facts, notes about files left out, and the secrets found."""
    files: dict[str, bytes] = {}
    notes: list[str] = []
    for pattern in LOCK_PATTERNS:
        for path in sorted(project.glob(pattern)):
            rel = path.relative_to(project).as_posix()
            if rel in files or not path.is_file():
                continue
            try:
                size = path.stat().st_size
                if size > MAX_LOCK_FILE:
                    notes.append(f"{rel} is larger than {MAX_LOCK_FILE >> 20} MiB: not stored")
                    continue
                files[rel] = path.read_bytes()
            except OSError as exc:
                notes.append(f"cannot read {rel}: {exc.strerror or exc}")
    facts: list[dict[str, Any]] = []
    findings: list[Finding] = []
    for rel in sorted(files):
        data, found = redact_bytes(files[rel], rel)
        findings += found
        redacted = bool(found) and not allow_secrets
        if redacted:
            files[rel] = data
        facts.append(
            {
                "path": rel,
                "size": len(files[rel]),
                "blake3": core.blake3_digest(files[rel]).hex(),
                "redacted": redacted,
            }
        )
    return files, facts, notes, findings


def capture(
    python: str | None = None,
    project: Path | None = None,
    *,
    env_allow: Iterable[str] = (),
    default_allow: bool = True,
    environ: Mapping[str, str] | None = None,
    exclude: tuple[Path, ...] = (),
    allow_secrets: bool = False,
) -> Capture:
    """Capture the environment of ``python`` (default: :func:`default_python`) for the
    project in ``project`` (default: the current directory).

    ``env_allow`` adds glob patterns to the variable allowlist (see
    :mod:`reprocas.environment.allowlist`); ``exclude`` names directories (the reprocas
    repository) to leave out of the untracked-files list. Secrets in the lock files,
    the patch and the kept variables are redacted unless ``allow_secrets`` (see
    :mod:`reprocas.security`); :meth:`Capture.warnings` says where.
    """
    env = dict(os.environ if environ is None else environ)
    project = (project or Path.cwd()).resolve()
    if not project.is_dir():
        raise EnvironmentCaptureError(f"--project {project} is not a directory", path=str(project))
    seen = probe(python or default_python(env))
    allow = allowlist.patterns(env_allow, defaults=default_allow)
    files, file_facts, notes, findings = lock_files(project, allow_secrets=allow_secrets)
    variables, env_findings = allowlist.select(env, allow, allow_secrets=allow_secrets)
    findings += env_findings
    git = gitstate.capture(project, exclude=exclude, allow_secrets=allow_secrets)
    notes += git.notes
    gpu = hardware.gpu()
    nvcc = hardware.nvcc_version()
    if nvcc is not None:
        gpu = dict(gpu or {"driver": None, "cuda": None, "devices": []})
        gpu["nvcc"] = nvcc
    facts: dict[str, Any] = {
        "schema": FACTS_SCHEMA,
        "python": seen["python"],
        "platform": seen["platform"],
        "packages": seen["packages"],
        "conda": seen.get("conda"),
        "gpu": gpu,
        "container": hardware.container(env),
        "env": variables,
        "git": git.facts,
        "files": file_facts,
        # The patch's secrets are recorded in "git"; these are the files' and variables'.
        **secret_facts(findings, allow_secrets),
    }
    return Capture(
        facts,
        files,
        git.patch,
        notes,
        allow,
        project,
        findings,
        allow_secrets,
        git.findings,
    )


def normalise(name: str) -> str:
    """PEP 503 normalised project name (``Foo_Bar`` -> ``foo-bar``)."""
    return re.sub(r"[-_.]+", "-", name).lower()
