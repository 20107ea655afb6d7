"""Credentials embedded in URLs (``scheme://user:password@host``).

A URL's user information is replaced by ``***`` rather than a ``«redacted:…»`` marker:
the result is still a well-formed URL (a lock file with ``--extra-index-url
https://***@host/simple`` still parses), and ``***`` is never taken for a credential
again. ``git@host`` style ssh users are kept: they name an account, not a secret.
"""

from __future__ import annotations

import re

URL_USERINFO = re.compile(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*://)(?P<info>[^/@\s]+)@")
"""A URL's scheme and user information (``https://`` and ``user:pw`` in
``https://user:pw@host``)."""

MASK = "***"


def is_credential(scheme: str, info: str) -> bool:
    """Whether the user information ``info`` of a URL with ``scheme`` holds a secret:
    any ``user:password``, and any user or token in an http(s) URL."""
    if info == MASK:
        return False
    return ":" in info or scheme.lower().startswith("http")


def redact_urls(text: str) -> str:
    """Replace credentials in URLs: any ``user:password@``, and any user or token in an
    http(s) URL. ``git@host`` style ssh users are kept."""

    def sub(m: re.Match[str]) -> str:
        if is_credential(m.group("scheme"), m.group("info")):
            return m.group("scheme") + MASK + "@"
        return m.group(0)

    return URL_USERINFO.sub(sub, text)
