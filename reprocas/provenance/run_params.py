"""A run's parameters (``--param``, ``--params-file``) and metrics (``--metrics``)."""

from __future__ import annotations

import json
import math
import os
import tomllib
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from reprocas.provenance.errors import MetricsError, ParamsError


def param_value(text: str) -> Any:
    """``3`` -> 3, ``0.1`` -> 0.1, ``true`` -> True, ``[1,2]`` -> [1, 2]; else the text."""
    try:
        value = json.loads(text)
    except ValueError:
        return text
    if isinstance(value, float) and not math.isfinite(value):
        return text
    return value


def parse_params(
    pairs: Iterable[str] = (), files: Iterable[str | os.PathLike[str]] = ()
) -> dict[str, Any]:
    """Parameters from ``--params-file`` (JSON, TOML, or YAML when a YAML package is
    installed), in order, then ``--param KEY=VALUE`` (which win)."""
    params: dict[str, Any] = {}
    for f in files:
        params.update(read_params_file(Path(f)))
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise ParamsError(f"--param {pair!r}: use KEY=VALUE")
        params[key.strip()] = param_value(value)
    return params


def read_params_file(path: Path) -> dict[str, Any]:
    """A params file as a map; the format comes from the suffix."""
    try:
        data = path.read_bytes()
    except FileNotFoundError as exc:
        raise ParamsError(f"--params-file {path}: no such file") from exc
    except OSError as exc:
        raise ParamsError(f"--params-file {path}: cannot read it ({exc.strerror})") from exc
    suffix = path.suffix.lower()
    try:
        if suffix == ".toml":
            value: Any = tomllib.loads(data.decode("utf-8"))
        elif suffix in (".yaml", ".yml"):
            try:
                import yaml  # type: ignore[import-untyped]
            except ImportError as exc:
                raise ParamsError(
                    f"--params-file {path}: reading YAML needs a YAML package (PyYAML); "
                    "install it, or give the parameters as JSON or TOML"
                ) from exc
            value = yaml.safe_load(data)
        else:
            value = json.loads(data)
    except ParamsError:
        raise
    except Exception as exc:
        raise ParamsError(f"--params-file {path}: not valid {suffix or 'JSON'}: {exc}") from exc
    if not isinstance(value, dict):
        raise ParamsError(f"--params-file {path}: must hold a map of names to values")
    plain: dict[str, Any] = _plain(value, str(path))
    return plain


def _plain(value: Any, where: str) -> Any:
    """Parameters as canonical-msgpack-safe values (dates and the like become text)."""
    if isinstance(value, dict):
        return {str(k): _plain(v, where) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v, where) for v in value]
    if value is None or isinstance(value, bool | int | float | str):
        return value
    return str(value)


def typed_metrics(data: Any, where: str) -> dict[str, dict[str, Any]]:
    """``{"acc": 0.9, "loss": [1.0, 0.5]}`` -> typed metrics; nested maps are flattened
    with ``/`` (``{"val": {"acc": 1}}`` -> ``val/acc``)."""
    if not isinstance(data, dict):
        raise MetricsError(f"{where}: metrics must be a JSON object of numbers")
    out: dict[str, dict[str, Any]] = {}

    def num(v: Any) -> bool:
        return isinstance(v, int | float) and not isinstance(v, bool)

    def walk(prefix: str, d: dict[str, Any]) -> None:
        for k, v in d.items():
            key = f"{prefix}{k}"
            if isinstance(v, dict):
                walk(key + "/", v)
            elif num(v):
                out[key] = {"kind": "scalar", "value": v}
            elif isinstance(v, list) and all(num(x) for x in v):
                out[key] = {"kind": "series", "values": list(v)}
            else:
                raise MetricsError(
                    f"{where}: metric {key!r} is {type(v).__name__}; metrics are numbers "
                    "or lists of numbers"
                )

    walk("", data)
    return out


def read_metrics(path: Path) -> tuple[dict[str, dict[str, Any]], bytes]:
    """The typed metrics of a JSON file, and the file's bytes."""
    data = path.read_bytes()
    try:
        value = json.loads(data)
    except ValueError as exc:
        raise MetricsError(f"metrics file {path} is not JSON: {exc}") from exc
    return typed_metrics(value, f"metrics file {path}"), data


def metric_values(metrics: dict[str, Any]) -> dict[str, Any]:
    """Typed metrics as plain values: a number, or a list for a series."""
    return {
        k: (v.get("value") if v.get("kind") == "scalar" else v.get("values"))
        for k, v in metrics.items()
    }
