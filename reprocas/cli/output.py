"""Printing for the CLI: JSON for scripts, short human text otherwise."""

from __future__ import annotations

import json
import sys
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from reprocas.store.accounting import StoredBytes


def emit_json(value: Any) -> None:
    """Write ``value`` as one JSON document on stdout."""
    sys.stdout.write(json.dumps(value, separators=(",", ":")))
    sys.stdout.write("\n")


def human_bytes(n: float) -> str:
    """1536 -> '1.5 KiB'."""
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    raise AssertionError("unreachable")


def plural(n: int, word: str, many: str | None = None) -> str:
    """``plural(1, "file")`` -> '1 file', ``plural(3, "file")`` -> '3 files'."""
    return f"{n} {word if n == 1 else (many or word + 's')}"


def quote_name(name: str) -> str:
    """A path as GNU ls prints it to a terminal (``ls --quoting-style=shell-escape``): as is
    when plain, in single quotes when it holds spaces or shell characters, and with each
    control character written as ``$'\\n'`` outside the quotes, so a name holding a newline
    takes one line and reads back unambiguously (``'a'$'\\n''b'``)."""
    if name and all(c.isprintable() and c not in _SHELL_SPECIAL for c in name):
        return name
    if all(c.isprintable() for c in name) and "'" in name and not set(name) & set('"$`\\!'):
        return f'"{name}"'
    out: list[str] = []
    plain: list[str] = []

    def flush() -> None:
        if plain:
            out.append("'" + "".join(plain).replace("'", "'\\''") + "'")
            plain.clear()

    for c in name:
        if c.isprintable():
            plain.append(c)
        else:
            flush()
            out.append("$'" + _escape(c) + "'")
    flush()
    return "".join(out) or "''"


_SHELL_SPECIAL = set(" \t'\"\\$`!*?[]{}()<>|&;#~=%^")
_ESCAPES = {
    "\n": "\\n",
    "\t": "\\t",
    "\r": "\\r",
    "\a": "\\a",
    "\b": "\\b",
    "\f": "\\f",
    "\v": "\\v",
    "\x1b": "\\E",
}


def _escape(c: str) -> str:
    if c in _ESCAPES:
        return _ESCAPES[c]
    code = ord(c)
    return f"\\{code:03o}" if code < 0x100 else f"\\u{code:04x}"


def stored_parts_text(s: StoredBytes) -> str:
    """ "packs 1.2 MiB + index 256.0 KiB + other 3.1 KiB": the one definition of stored."""
    return (
        f"= packs {human_bytes(s.packs)} + index {human_bytes(s.index)} "
        f"+ other {human_bytes(s.other)}"
    )


def cell_text(value: object) -> str:
    """A table value in a diff sample: text quoted (so "" and null differ), numbers as
    everywhere else in the output."""
    from reprocas.model.display import format_scalar

    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, list | dict):
        return json.dumps(value, ensure_ascii=False, default=str)
    return format_scalar(value)
