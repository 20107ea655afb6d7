"""Object ids: 32-byte BLAKE3 digests, with hex formatting, parsing and prefixes."""

from __future__ import annotations

from dataclasses import dataclass

ID_BYTES = 32
MIN_PREFIX_HEX = 6
_HEX = frozenset("0123456789abcdef")


@dataclass(frozen=True, slots=True, order=True)
class ObjectId:
    """The name of anything in the store: the BLAKE3-256 digest of its bytes."""

    raw: bytes

    def __post_init__(self) -> None:
        if len(self.raw) != ID_BYTES:
            raise ValueError(f"an object id is {ID_BYTES} bytes, got {len(self.raw)}")

    @classmethod
    def from_hex(cls, text: str) -> ObjectId:
        text = text.strip().lower()
        if len(text) != 2 * ID_BYTES or not set(text) <= _HEX:
            raise ValueError(f"not a full {2 * ID_BYTES}-digit hex id: {text!r}")
        return cls(bytes.fromhex(text))

    @property
    def hex(self) -> str:
        return self.raw.hex()

    @property
    def short(self) -> str:
        """The first 12 hex digits, for people."""
        return self.raw[:6].hex()

    def __str__(self) -> str:
        return self.hex

    def __repr__(self) -> str:
        return f"ObjectId({self.short}…)"


def is_hex_prefix(text: str) -> bool:
    """Whether ``text`` can name an id by prefix (6 to 64 lower-case hex digits)."""
    t = text.lower()
    return MIN_PREFIX_HEX <= len(t) <= 2 * ID_BYTES and set(t) <= _HEX


def prefix_range(text: str) -> tuple[bytes, bytes | None]:
    """The byte range ``[lo, hi)`` of ids that start with hex prefix ``text``.

    ``hi`` is ``None`` when the range runs to the end of the key space. An odd number
    of hex digits is handled by widening the last nibble.
    """
    t = text.lower()
    if len(t) % 2:
        lo = bytes.fromhex(t + "0")
        hi_int = int.from_bytes(lo, "big") + 16
    else:
        lo = bytes.fromhex(t)
        hi_int = int.from_bytes(lo, "big") + 1
    if hi_int >= 1 << (8 * len(lo)):
        return lo, None
    return lo, hi_int.to_bytes(len(lo), "big")
