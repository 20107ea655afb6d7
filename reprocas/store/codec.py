"""Canonical msgpack: equal content always encodes to equal bytes (and equal ids)."""

from __future__ import annotations

from typing import Any

import msgpack

from reprocas.errors import IntegrityError
from reprocas.model.ids import ObjectId
from reprocas.native import core

_LEAF = (bytes, str, int, float, bool, type(None))


def _canonical(value: Any) -> Any:
    if isinstance(value, dict):
        items = sorted(value.items(), key=lambda kv: kv[0])
        return {k: _canonical(v) for k, v in items}
    if isinstance(value, list | tuple):
        # Most lists (a manifest's chunk table) hold only short lists of leaves: those
        # need no reordering, only to be lists.
        return [v if isinstance(v, _LEAF) else _canonical(v) for v in value]
    return value


def encode(value: Any) -> bytes:
    """Encode with map keys sorted, bytes as bin, floats as float64."""
    return msgpack.packb(_canonical(value), use_bin_type=True)  # type: ignore[no-any-return]


def decode(data: bytes) -> Any:
    """Decode msgpack written by :func:`encode`; damaged bytes raise IntegrityError."""
    try:
        return msgpack.unpackb(data, raw=False, strict_map_key=False)
    except (ValueError, msgpack.ExtraData, msgpack.FormatError, msgpack.StackError) as exc:
        raise IntegrityError(f"stored object does not decode: {exc}") from exc


def object_id(encoded: bytes, key: bytes | None = None) -> ObjectId:
    """The id of an encoded object: BLAKE3-256 of its bytes."""
    return ObjectId(core.blake3_digest(encoded, key))
