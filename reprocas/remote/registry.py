"""Open the backend a remote URL names: ``file://`` directories and ``s3://`` buckets."""

from __future__ import annotations

import importlib
from typing import Any
from urllib.parse import urlparse

from reprocas.errors import InvalidParameterError, UsageError
from reprocas.remote.backend import Backend

SCHEMES = ("file", "s3")


def open_backend(url: str, options: dict[str, Any] | None = None) -> Backend:
    """The backend for URL (``file:///abs/path`` or ``s3://bucket/prefix``)."""
    scheme = urlparse(url).scheme
    if scheme == "file":
        from reprocas.remote.file import FileBackend

        return FileBackend(url, options or {})
    if scheme == "s3":
        try:
            module = importlib.import_module("reprocas.remote.s3")
        except ImportError as exc:
            raise UsageError(
                f"cannot open {url}: the S3 backend (reprocas.remote.s3) is not available "
                f"in this installation ({exc})"
            ) from exc
        backend: Backend = module.S3Backend(url, options or {})
        return backend
    raise InvalidParameterError(
        f"unsupported remote URL {url!r}: use file:///absolute/path or s3://bucket/prefix"
    )
