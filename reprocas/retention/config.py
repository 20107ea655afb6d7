"""Retention settings kept in the repository config (``reprocas.json``, key ``retention``).

``reprocas config set retention.keep-daily 7`` (optionally ``--dataset NAME``) stores a
rule; ``reprocas forget`` without rule options applies what is stored. Values are
validated when set, so a stored policy always parses.
"""

from __future__ import annotations

from typing import Any

from reprocas.errors import InvalidParameterError, UsageError
from reprocas.retention.policy import (
    DEFAULT_PROTECTING_TAGS,
    Policy,
    Rules,
    parse_duration,
    parse_size,
)
from reprocas.store.marker_sections import read_section, write_section
from reprocas.store.repository import Repository

COUNT_KEYS = (
    "keep-last",
    "keep-hourly",
    "keep-daily",
    "keep-weekly",
    "keep-monthly",
    "keep-yearly",
)
KEYS = (*COUNT_KEYS, "keep-within", "keep-tag", "budget", "max-unused", "repack-min-free")
GLOBAL_ONLY = ("budget", "max-unused", "repack-min-free")
# Prune repacks a pack only when that frees at least this much of it (1%): rewriting an
# 18 MB pack to drop 412 bytes costs far more than it saves.
DEFAULT_REPACK_MIN_FREE = "1%"


def _check_value(key: str, value: str) -> Any:
    """Parse a value given on the command line into what is stored."""
    if key in COUNT_KEYS:
        try:
            n = int(value)
        except ValueError:
            raise InvalidParameterError(f"retention.{key} takes a count, not {value!r}") from None
        if n < 0:
            raise InvalidParameterError(f"retention.{key} takes a count >= 0, not {n}")
        return n
    if key == "keep-within":
        parse_duration(value)
        return value
    if key == "budget":
        parse_size(value)
        return value
    if key == "max-unused":
        parse_max_unused(value)
        return value
    if key == "repack-min-free":
        parse_repack_min_free(value)
        return value
    if key == "keep-tag":
        return [t for t in (s.strip() for s in value.split(",")) if t]
    raise UsageError(f"unknown setting retention.{key}; known: " + ", ".join(KEYS))


def parse_max_unused(value: str | float) -> float:
    """``10``, ``10%`` -> 0.10; must be within [0, 100]."""
    text = str(value).strip().rstrip("%")
    try:
        pct = float(text)
    except ValueError:
        raise InvalidParameterError(
            f"--max-unused takes a percentage (0-100), not {value!r}"
        ) from None
    if not 0 <= pct <= 100:
        raise InvalidParameterError(f"--max-unused takes a percentage (0-100), not {value!r}")
    return pct / 100


def parse_repack_min_free(value: str) -> tuple[int, float]:
    """``5%`` -> (0, 0.05): a share of the pack; ``1MiB`` -> (1048576, 0.0): bytes;
    ``0`` -> (0, 0.0): repack whenever anything is unused."""
    text = str(value).strip()
    if text.endswith("%"):
        try:
            pct = float(text[:-1])
        except ValueError:
            pct = -1.0
        if not 0 <= pct <= 100:
            raise InvalidParameterError(
                f"retention.repack-min-free takes a percentage (0-100%) or a size, not {value!r}"
            )
        return 0, pct / 100
    if text in ("0", "0B", "0b"):
        return 0, 0.0
    return parse_size(text), 0.0


def repack_min_free(repo: Repository) -> tuple[int, float]:
    """The stored repack threshold (bytes, share of the pack), or the default."""
    value = load(repo)["default"].get("repack-min-free", DEFAULT_REPACK_MIN_FREE)
    try:
        return parse_repack_min_free(str(value))
    except InvalidParameterError:
        return parse_repack_min_free(DEFAULT_REPACK_MIN_FREE)


def _split_key(key: str) -> str:
    if not key.startswith("retention."):
        raise UsageError(
            f"unknown setting {key!r}; settings are retention.<key>: {', '.join(KEYS)}"
        )
    sub = key[len("retention.") :]
    if sub not in KEYS:
        raise UsageError(f"unknown setting {key!r}; known: retention.{', retention.'.join(KEYS)}")
    return sub


def load(repo: Repository) -> dict[str, Any]:
    """``{"default": {...}, "datasets": {name: {...}}}`` as stored (fresh from disk)."""
    ret = read_section(repo, "retention")
    return {"default": dict(ret.get("default") or {}), "datasets": dict(ret.get("datasets") or {})}


def _save(repo: Repository, retention: dict[str, Any]) -> None:
    """Rewrite the marker atomically with the new retention section (under the gc lock,
    so two `config set` never lose each other's change)."""
    write_section(repo, "retention", retention)


def set_value(repo: Repository, key: str, value: str, dataset: str | None = None) -> Any:
    sub = _split_key(key)
    if dataset is not None and sub in GLOBAL_ONLY:
        raise UsageError(f"{key} applies to the whole repository, not to one dataset")
    stored = _check_value(sub, value)
    with repo.lock("config", exclusive=True):
        ret = load(repo)
        section = ret["datasets"].setdefault(dataset, {}) if dataset else ret["default"]
        section[sub] = stored
        _save(repo, ret)
    return stored


def unset_value(repo: Repository, key: str, dataset: str | None = None) -> None:
    sub = _split_key(key)
    with repo.lock("config", exclusive=True):
        ret = load(repo)
        section = ret["datasets"].get(dataset, {}) if dataset else ret["default"]
        section.pop(sub, None)
        _save(repo, ret)


def get_value(repo: Repository, key: str, dataset: str | None = None) -> Any:
    sub = _split_key(key)
    ret = load(repo)
    if dataset is not None and sub in ret["datasets"].get(dataset, {}):
        return ret["datasets"][dataset][sub]
    return ret["default"].get(sub)


def _rules(section: dict[str, Any], base: Rules | None = None) -> Rules:
    b = base or Rules()

    def count(key: str, old: int | None) -> int | None:
        return int(section[key]) if key in section else old

    return Rules(
        keep_last=count("keep-last", b.keep_last),
        keep_hourly=count("keep-hourly", b.keep_hourly),
        keep_daily=count("keep-daily", b.keep_daily),
        keep_weekly=count("keep-weekly", b.keep_weekly),
        keep_monthly=count("keep-monthly", b.keep_monthly),
        keep_yearly=count("keep-yearly", b.keep_yearly),
        keep_within_ns=parse_duration(section["keep-within"])
        if "keep-within" in section
        else b.keep_within_ns,
        keep_tags=tuple(section.get("keep-tag", b.keep_tags)),
    )


def policy_from_config(repo: Repository) -> tuple[Policy, float | None]:
    """The stored policy (per-dataset sections override the default key by key) and the
    stored max-unused fraction, if any."""
    ret = load(repo)
    default = _rules(ret["default"])
    per = tuple((name, _rules(sec, default)) for name, sec in sorted(ret["datasets"].items()))
    budget = parse_size(ret["default"]["budget"]) if "budget" in ret["default"] else None
    mu = ret["default"].get("max-unused")
    return (
        Policy(
            rules=default,
            per_dataset=per,
            protecting_tags=DEFAULT_PROTECTING_TAGS,
            budget=budget,
        ),
        parse_max_unused(mu) if mu is not None else None,
    )
