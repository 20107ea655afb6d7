"""Credentials embedded in URLs (``scheme://user:password@host``).

A URL's user information is replaced by ``***`` rather than a ``«redacted:…»`` marker:
the result is still a well-formed URL (a lock file with ``--extra-index-url
https://***@host/simple`` still parses), and ``***`` is never taken for a credential
again. ``git@host`` style ssh users are kept: they name an account, not a secret.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

MASK = "***"


def is_credential(scheme: str, info: str) -> bool:
    """Whether the user information ``info`` of a URL with ``scheme`` holds a secret:
    any ``user:password``, and any user or token in an http(s) URL."""
    if info == MASK:
        return False
    return ":" in info or scheme.lower().startswith("http")


_SCHEME_BEFORE = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*\Z")
_INFO_AFTER = re.compile(r"(?P<info>[^/@\s]+)@")


def credentials(text: str) -> Iterator[tuple[int, int]]:
    """``(start, end)`` of the credentials of every URL in ``text``: the user
    information that :func:`is_credential` calls a secret. Found from each ``://``
    (looking back for the scheme), which is much faster than a search from every letter."""
    pos = text.find("://")
    while pos >= 0:
        scheme = _SCHEME_BEFORE.search(text, max(0, pos - 64), pos)
        info = _INFO_AFTER.match(text, pos + 3)
        if (
            scheme is not None
            and info is not None
            and is_credential(scheme.group(0) + "://", info.group("info"))
        ):
            yield info.start("info"), info.end("info")
        pos = text.find("://", pos + 3)


def redact_urls(text: str) -> str:
    """Replace credentials in URLs: any ``user:password@``, and any user or token in an
    http(s) URL. ``git@host`` style ssh users are kept."""
    out: list[str] = []
    pos = 0
    for start, end in credentials(text):
        out += [text[pos:start], MASK]
        pos = end
    return "".join(out) + text[pos:]
