"""The remotes a repository knows, kept in ``remotes.json`` beside ``reprocas.json``
(written whole and renamed into place under ``locks/config.lock``). Repositories from
before that file kept them in ``reprocas.json`` under ``remotes``; that is still read
when ``remotes.json`` does not exist, and the first change moves them."""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field
from typing import Any

from reprocas.errors import InvalidParameterError, RefNotFoundError, UsageError
from reprocas.store.marker_sections import read_section, write_section
from reprocas.store.packs import fsync_dir
from reprocas.store.repository import MARKER, Repository

DEFAULT_REMOTE = "origin"
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


@dataclass(frozen=True)
class RemoteConfig:
    name: str
    url: str
    options: dict[str, str] = field(default_factory=dict)
    single_writer: bool = False

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "url": self.url,
            "options": dict(self.options),
            "single_writer": self.single_writer,
        }


def parse_options(items: list[str] | None) -> dict[str, str]:
    """``["k=v", ...]`` -> ``{"k": "v"}``; a malformed item is a clear error."""
    out: dict[str, str] = {}
    for item in items or ():
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise InvalidParameterError(f"--option takes KEY=VALUE, not {item!r}")
        out[key.strip()] = value
    return out


def check_name(name: str) -> str:
    if not _NAME_RE.match(name):
        raise InvalidParameterError(
            f"invalid remote name {name!r}: use letters, digits, '.', '_' and '-'"
        )
    return name


REMOTES_FILE = "remotes.json"


def _raw(repo: Repository) -> dict[str, Any]:
    path = repo.root / REMOTES_FILE
    try:
        text = path.read_text()
    except FileNotFoundError:
        try:  # the older place: the repository marker
            marker: dict[str, Any] = json.loads((repo.root / MARKER).read_text())
        except (OSError, ValueError):
            marker = dict(repo.marker)
        return dict(marker.get("remotes") or {})
    except OSError as exc:
        raise UsageError(f"cannot read {path}: {exc}") from exc
    try:
        data = json.loads(text)
        if not isinstance(data, dict) or not isinstance(data.get("remotes"), dict):
            raise ValueError("no 'remotes' object")
    except ValueError as exc:
        raise UsageError(
            f"{path} is damaged ({exc}); fix or remove it and add the remotes again"
        ) from exc
    return dict(data["remotes"])


def remotes(repo: Repository) -> dict[str, RemoteConfig]:
    raw = _raw(repo)
    return {
        name: RemoteConfig(
            name,
            str(v["url"]),
            {str(k): str(x) for k, x in (v.get("options") or {}).items()},
            bool(v.get("single_writer", False)),
        )
        for name, v in sorted(raw.items())
    }


def get(repo: Repository, name: str | None) -> RemoteConfig:
    name = name or DEFAULT_REMOTE
    found = remotes(repo)
    if name not in found:
        known = ", ".join(found) or "none"
        raise RefNotFoundError(
            f"no remote named {name!r} (known: {known}); add one with "
            "`reprocas remote add NAME URL`",
            ref=name,
        )
    return found[name]


def _save(repo: Repository, raw: dict[str, Any]) -> None:
    path = repo.root / REMOTES_FILE
    tmp = repo.root / (REMOTES_FILE + ".tmp")
    tmp.write_text(json.dumps({"version": 1, "remotes": raw}, indent=2, sort_keys=True) + "\n")
    with open(tmp, "rb") as f:
        os.fsync(f.fileno())
    os.replace(tmp, path)
    fsync_dir(repo.root)


def add(repo: Repository, rc: RemoteConfig) -> None:
    check_name(rc.name)
    with repo.lock("config", exclusive=True):
        raw = _raw(repo)
        if rc.name in raw:
            raise UsageError(
                f"a remote named {rc.name!r} exists ({raw[rc.name]['url']}); "
                "remove it first with `reprocas remote remove`"
            )
        raw[rc.name] = {"url": rc.url, "options": rc.options, "single_writer": rc.single_writer}
        _save(repo, raw)


def remove(repo: Repository, name: str) -> RemoteConfig:
    with repo.lock("config", exclusive=True):
        found = get(repo, name)
        raw = _raw(repo)
        raw.pop(name, None)
        _save(repo, raw)
    import shutil

    shutil.rmtree(repo.root / "remotes" / name, ignore_errors=True)
    return found


# -- settings of remote reads (``reprocas config set remote.cache-size 500MB``) ----------

SETTINGS = ("cache-size",)


def _settings_key(key: str) -> str:
    sub = key.removeprefix("remote.")
    if not key.startswith("remote.") or sub not in SETTINGS:
        raise UsageError(f"unknown setting {key!r}; known: remote.{', remote.'.join(SETTINGS)}")
    return sub


def _settings(repo: Repository) -> dict[str, Any]:
    """The ``remote`` section of ``reprocas.json`` (beside ``retention``), fresh from disk."""
    return read_section(repo, "remote")


def get_setting(repo: Repository, key: str) -> Any:
    return _settings(repo).get(_settings_key(key))


def _save_settings(repo: Repository, settings: dict[str, Any]) -> None:
    write_section(repo, "remote", settings)


def set_setting(repo: Repository, key: str, value: str) -> str:
    """Store a ``remote.*`` setting, validated first (a size for cache-size)."""
    from reprocas.retention.policy import parse_size

    sub = _settings_key(key)
    parse_size(value)
    with repo.lock("config", exclusive=True):
        settings = _settings(repo)
        settings[sub] = value
        _save_settings(repo, settings)
    return value


def unset_setting(repo: Repository, key: str) -> None:
    sub = _settings_key(key)
    with repo.lock("config", exclusive=True):
        settings = _settings(repo)
        settings.pop(sub, None)
        _save_settings(repo, settings)
