"""A remote in an S3 bucket (``s3://bucket/prefix``), through the Rust ``object_store``
crate in the extension (``reprocas._core.ObjectStore``): every request runs with the GIL
released on a small tokio runtime, pack uploads go out in parallel, each as one PUT.

Configuration, first match wins:

1. ``--option KEY=VALUE`` on ``remote add`` (object_store's S3 keys: ``endpoint``,
   ``region``, ``access_key_id``, ``secret_access_key``, ``session_token``,
   ``allow_http``, ``virtual_hosted_style_request``, ``skip_signature`` ...; plus
   ``max_retries``, ``retry_timeout``, ``timeout``, ``connect_timeout`` and ``profile``);
2. the ``AWS_*`` environment variables (``AWS_ACCESS_KEY_ID``, ``AWS_ENDPOINT_URL``,
   ``AWS_REGION``/``AWS_DEFAULT_REGION`` ...);
3. the shared AWS files for ``AWS_PROFILE`` (or ``profile``; default ``default``):
   ``~/.aws/credentials`` and ``~/.aws/config`` (``AWS_SHARED_CREDENTIALS_FILE``,
   ``AWS_CONFIG_FILE``), for keys, region and ``endpoint_url``.

Conditional writes are S3's own: ``If-None-Match: *`` for content-named objects and
``If-Match: <ETag>`` for refs (object_store's ``ETagMatch`` mode), so a server or proxy
that ignores them is refused by the probe (:func:`probe_conditional_writes`).
"""

from __future__ import annotations

import configparser
import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

from reprocas.errors import InvalidParameterError
from reprocas.native import core
from reprocas.remote.backend import Backend, ObjectInfo, RemoteUnavailable

#: Options that configure reprocas rather than the S3 client.
_OURS = ("profile", "threads")

#: Environment variables object_store reads itself (``AmazonS3Builder::from_env``).
_ENV_KEYS = {
    "access_key_id": "AWS_ACCESS_KEY_ID",
    "secret_access_key": "AWS_SECRET_ACCESS_KEY",
    "session_token": "AWS_SESSION_TOKEN",
    "region": "AWS_REGION",
    "endpoint": "AWS_ENDPOINT",
}


def parse_url(url: str) -> tuple[str, str]:
    """``s3://bucket/some/prefix`` -> ``("bucket", "some/prefix")``."""
    parsed = urlparse(url)
    if parsed.scheme != "s3" or not parsed.netloc:
        raise InvalidParameterError(f"{url!r} is not an S3 URL (s3://bucket/prefix)")
    if parsed.query or parsed.fragment:
        raise InvalidParameterError(
            f"{url!r}: give S3 settings as --option KEY=VALUE, not in the URL"
        )
    prefix = unquote(parsed.path).strip("/")
    if any(p in ("", ".", "..") for p in prefix.split("/")) and prefix:
        raise InvalidParameterError(f"{url!r}: the prefix has an empty or relative segment")
    return parsed.netloc, prefix


def _ini(path: Path) -> configparser.ConfigParser:
    parser = configparser.ConfigParser(interpolation=None)
    try:
        parser.read(path)
    except (OSError, configparser.Error) as exc:
        raise InvalidParameterError(f"cannot read the AWS file {path}: {exc}") from exc
    return parser


def profile_settings(profile: str | None) -> dict[str, str]:
    """Keys, region and endpoint of an AWS profile from the shared files (empty when
    there are none). A profile that was asked for by name and is missing is an error."""
    asked = profile or os.environ.get("AWS_PROFILE")
    name = asked or "default"
    home = Path.home()
    creds_path = Path(
        os.environ.get("AWS_SHARED_CREDENTIALS_FILE", home / ".aws" / "credentials")
    ).expanduser()
    config_path = Path(os.environ.get("AWS_CONFIG_FILE", home / ".aws" / "config")).expanduser()
    creds, config = _ini(creds_path), _ini(config_path)
    section = name if name == "default" else f"profile {name}"
    found = creds.has_section(name) or config.has_section(section)
    if asked and not found:
        raise InvalidParameterError(f"AWS profile {name!r} is not in {creds_path} or {config_path}")
    out: dict[str, str] = {}
    pairs = {
        "aws_access_key_id": "access_key_id",
        "aws_secret_access_key": "secret_access_key",
        "aws_session_token": "session_token",
        "region": "region",
        "endpoint_url": "endpoint",
    }
    for parser, sect in ((config, section), (creds, name)):
        if parser.has_section(sect):
            for ini_key, option in pairs.items():
                value = parser.get(sect, ini_key, fallback=None)
                if value:
                    out[option] = value.strip()
    return out


def client_options(options: dict[str, Any]) -> dict[str, str]:
    """The options handed to the S3 client: ours removed, the environment's
    ``AWS_ENDPOINT_URL``/``AWS_DEFAULT_REGION`` aliases and the profile filled in where
    neither an option nor object_store's own variable says otherwise."""
    opts = {str(k): str(v) for k, v in options.items() if k not in _OURS}
    env = os.environ
    if "endpoint" not in opts and "AWS_ENDPOINT" not in env and env.get("AWS_ENDPOINT_URL"):
        opts["endpoint"] = env["AWS_ENDPOINT_URL"]
    if "region" not in opts and "AWS_REGION" not in env and env.get("AWS_DEFAULT_REGION"):
        opts["region"] = env["AWS_DEFAULT_REGION"]
    from_env = {k for k, var in _ENV_KEYS.items() if env.get(var)}
    profile = options.get("profile")
    settings = profile_settings(str(profile) if profile else None)
    keys = ("access_key_id", "secret_access_key", "session_token")
    # Credentials come as a set: the profile's only when neither option nor env has one.
    if not any(k in opts or k in from_env for k in keys):
        for k in keys:
            if k in settings:
                opts[k] = settings[k]
    for k in ("region", "endpoint"):
        if k not in opts and k not in from_env and k in settings:
            opts[k] = settings[k]
    endpoint = opts.get("endpoint", "")
    if endpoint.startswith("http://") and "allow_http" not in opts:
        opts["allow_http"] = "true"
    return opts


def _info(row: tuple[str, int, str, int], strip: int) -> ObjectInfo:
    key, size, etag, mtime = row
    return ObjectInfo(key[strip:], int(size), str(etag), int(mtime))


_IMDS = "169.254.169.254"


class _Explained:
    """The store, with the one failure whose message misleads explained: no
    credentials anywhere, so the client asked the EC2 instance metadata service."""

    def __init__(self, store: Any, url: str) -> None:
        self._store, self._url = store, url

    def __getattr__(self, name: str) -> Any:
        method = getattr(self._store, name)

        def call(*args: Any) -> Any:
            try:
                return method(*args)
            except RemoteUnavailable as exc:
                if _IMDS not in str(exc):
                    raise
                raise RemoteUnavailable(
                    f"{self._url}: no AWS credentials were found (--option "
                    "access_key_id=/secret_access_key=, the AWS_ACCESS_KEY_ID and "
                    "AWS_SECRET_ACCESS_KEY variables, or a profile in ~/.aws), and this "
                    "machine has no instance metadata service to ask; for a public "
                    "bucket use --option skip_signature=true"
                ) from exc

        return call


class S3Backend(Backend):
    """Objects under ``prefix/`` of one bucket; keys are the protocol's keys."""

    def __init__(self, url: str, options: dict[str, Any] | None = None) -> None:
        self.bucket, self.prefix = parse_url(url)
        self.url = url
        self.options = dict(options or {})
        self._root = f"{self.prefix}/" if self.prefix else ""
        opts = client_options(self.options)
        self._store = _Explained(core.ObjectStore(self.bucket, opts, url), url)

    def _key(self, key: str) -> str:
        if not key or key.startswith("/") or any(p in ("", ".", "..") for p in key.split("/")):
            raise InvalidParameterError(f"invalid remote key {key!r}")
        return self._root + key

    def put_if_absent(self, key: str, data: bytes) -> str:
        return str(self._store.put_if_absent(self._key(key), data))

    def put_if_match(self, key: str, data: bytes, etag: str | None) -> str:
        return str(self._store.put_if_match(self._key(key), data, etag))

    def put(self, key: str, data: bytes) -> str:
        return str(self._store.put(self._key(key), data))

    def put_files_if_absent(self, items: Sequence[tuple[str, Path]]) -> list[bool]:
        if not items:
            return []
        pairs = [(self._key(k), Path(p)) for k, p in items]
        return [bool(x) for x in self._store.put_files_if_absent(pairs)]

    def get(self, key: str, start: int | None = None, end: int | None = None) -> bytes:
        if start is not None and end is not None and end <= start:
            return b""
        return bytes(self._store.get(self._key(key), start, end))

    def get_with_etag(self, key: str) -> tuple[bytes, str]:
        data, etag = self._store.get_with_etag(self._key(key))
        return bytes(data), str(etag)

    def get_to_file(self, key: str, path: Path) -> int:
        return int(self._store.get_to_file(self._key(key), Path(path)))

    def head(self, key: str) -> ObjectInfo:
        return _info(self._store.head(self._key(key)), len(self._root))

    def list(self, prefix: str, start_after: str | None = None) -> Iterator[ObjectInfo]:
        after = self._root + start_after if start_after else None
        rows = self._store.list(self._root + prefix, after)
        strip = len(self._root)
        for row in rows:
            yield _info(row, strip)

    def delete(self, key: str) -> None:
        self._store.delete(self._key(key))
