"""Prompt settings, kept in the repository config (``reprocas.json``, key ``prompt``).

``prompt.data-change``: ``off`` (the default: scripts see nothing), ``warn`` (say that a
committed dataset's working path changed before ``reprocas run``) or ``ask`` (also offer
to commit it first). ``prompt.snapshot-on-save``: ``off`` (default) or ``ask`` (after a
run that produced outputs, offer to snapshot the environment and datasets with them).
"""

from __future__ import annotations

from typing import Any

from reprocas.errors import InvalidParameterError, UsageError
from reprocas.store.marker_sections import read_section, write_section
from reprocas.store.repository import Repository

CHOICES = {"data-change": ("off", "warn", "ask"), "snapshot-on-save": ("off", "ask")}
DEFAULTS = {"data-change": "off", "snapshot-on-save": "off"}


def _sub(key: str) -> str:
    sub = key.removeprefix("prompt.")
    if not key.startswith("prompt.") or sub not in CHOICES:
        raise UsageError(f"unknown setting {key!r}; known: prompt.{', prompt.'.join(CHOICES)}")
    return sub


def load(repo: Repository) -> dict[str, str]:
    """The stored prompt settings (fresh from disk), without defaults."""
    return {str(k): str(v) for k, v in read_section(repo, "prompt").items()}


def get(repo: Repository, sub: str) -> str:
    """One setting's value, the default when not set (or not valid any more)."""
    v = load(repo).get(sub, DEFAULTS[sub])
    return v if v in CHOICES[sub] else DEFAULTS[sub]


def _save(repo: Repository, section: dict[str, str]) -> None:
    write_section(repo, "prompt", section, drop_empty=True)


def set_value(repo: Repository, key: str, value: str) -> str:
    sub = _sub(key)
    value = value.strip().lower()
    if value not in CHOICES[sub]:
        raise InvalidParameterError(f"{key} takes one of {', '.join(CHOICES[sub])}, not {value!r}")
    with repo.lock("config", exclusive=True):
        section = load(repo)
        section[sub] = value
        _save(repo, section)
    return value


def get_value(repo: Repository, key: str) -> str | None:
    return load(repo).get(_sub(key))


def unset_value(repo: Repository, key: str) -> None:
    sub = _sub(key)
    with repo.lock("config", exclusive=True):
        section = load(repo)
        section.pop(sub, None)
        _save(repo, section)


def show(repo: Repository) -> dict[str, Any]:
    """Every prompt setting with its effective value."""
    return {k: get(repo, k) for k in CHOICES}
