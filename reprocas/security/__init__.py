"""Secrets kept out of the store: find them in text, files and git patches, and replace
them before anything is written.

* :mod:`~reprocas.security.patterns` — what a secret looks like;
* :mod:`~reprocas.security.secrets` — :class:`Finding`, :func:`scan_text`,
  :func:`redact_text`, :func:`redact_bytes`;
* :mod:`~reprocas.security.patch` — :func:`redact_patch`, by file and new-file line;
* :mod:`~reprocas.security.urls` — credentials in URLs.

This package imports nothing else of reprocas, so every layer may use it.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from reprocas.security.patch import redact_patch
from reprocas.security.secrets import Finding, marker, redact_bytes, redact_text, scan_text
from reprocas.security.urls import redact_urls

ALLOW_FLAG = "--allow-secrets"


def warning(finding: Finding, *, allowed: bool = False) -> str:
    """The warning line for one finding (without the ``reprocas: warning:`` prefix)."""
    if allowed:
        return f"secret kept in {finding.where} ({finding.kind}) because of {ALLOW_FLAG}"
    return f"secret redacted in {finding.where} ({finding.kind}); {ALLOW_FLAG} keeps it"


def warnings(findings: Iterable[Finding], *, allowed: bool = False) -> list[str]:
    """One warning line per finding."""
    return [warning(f, allowed=allowed) for f in findings]


def secret_facts(findings: Iterable[Finding], allow_secrets: bool) -> dict[str, Any]:
    """What a stored object records of its secrets (an additive part of its msgpack
    map): ``redacted`` (the findings replaced), or ``secrets_allowed`` and
    ``secrets_kept`` under ``--allow-secrets``. Empty when there is nothing to say, so
    that objects without secrets keep the ids they had before."""
    listed = [f.to_json() for f in findings]
    if allow_secrets:
        return {"secrets_allowed": True, **({"secrets_kept": listed} if listed else {})}
    return {"redacted": listed} if listed else {}


__all__ = [
    "ALLOW_FLAG",
    "Finding",
    "marker",
    "redact_bytes",
    "redact_patch",
    "redact_text",
    "redact_urls",
    "scan_text",
    "secret_facts",
    "warning",
    "warnings",
]
