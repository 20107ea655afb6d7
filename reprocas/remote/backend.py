"""The object-storage contract a remote is built on.

A backend stores immutable or compare-and-swapped objects under string keys
("packs/ab/<id>.pack", "refs/ds:clinical:v:0000000003", ...). Every operation the
remote protocol needs is here and nothing else, so a ``file://`` directory and an
``s3://`` bucket (through the Rust ``object_store`` crate, GIL-free) are
interchangeable and the same tests run against both.

Conditional writes are the protocol's only synchronisation — there are no lock files:

* ``put_if_absent`` is S3's ``If-None-Match: *``: it fails with
  :class:`PreconditionFailed` when the key exists. Callers that write content-named
  objects treat that failure as success (same name, same bytes).
* ``put_if_match`` is ``If-Match: <etag>`` (or create-if-absent when ``etag`` is None):
  the compare-and-swap that moves a ref.

Keys are compared and listed as byte strings (S3 lists in UTF-8 binary order).
"""

from __future__ import annotations

import abc
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from reprocas.errors import ReprocasError, StorageError


class RemoteError(StorageError):
    """A remote operation failed (the message names the remote and the key)."""


class RemoteNotFound(RemoteError):
    """The key does not exist on the remote."""

    exit_code = 4


class PreconditionFailed(RemoteError):
    """A conditional write lost: the key exists (create) or changed (compare-and-swap)."""


class RemoteUnavailable(RemoteError):
    """The remote cannot be reached or answered with a server error after retries."""


class ConditionalWritesUnsupported(ReprocasError):
    """The server ignores conditional headers, so it cannot be shared by writers."""

    exit_code = 2


@dataclass(frozen=True)
class ObjectInfo:
    """What a listing or a HEAD says about one object."""

    key: str
    size: int
    etag: str
    #: The server's modification time (server clock), nanoseconds since the epoch.
    last_modified_ns: int


class Backend(abc.ABC):
    """One remote location (a bucket prefix or a directory). Not thread-safe to close."""

    #: The URL it was opened from, for messages (credentials never included).
    url: str

    @abc.abstractmethod
    def put_if_absent(self, key: str, data: bytes) -> str:
        """Create KEY with DATA; return its etag. :class:`PreconditionFailed` if it exists."""

    @abc.abstractmethod
    def put_if_match(self, key: str, data: bytes, etag: str | None) -> str:
        """Replace KEY only if its etag is ETAG (or create it only if absent, when ETAG
        is None); return the new etag. :class:`PreconditionFailed` otherwise."""

    @abc.abstractmethod
    def put(self, key: str, data: bytes) -> str:
        """Write KEY unconditionally (session markers); return its etag."""

    @abc.abstractmethod
    def put_files_if_absent(self, items: Sequence[tuple[str, Path]]) -> list[bool]:
        """Upload each local file to its key with create-if-absent, in parallel, each as
        one PUT; True for an upload, False where the key already existed."""

    @abc.abstractmethod
    def get(self, key: str, start: int | None = None, end: int | None = None) -> bytes:
        """The bytes of KEY, or of the range [START, END) of it. :class:`RemoteNotFound`."""

    @abc.abstractmethod
    def get_with_etag(self, key: str) -> tuple[bytes, str]:
        """The bytes of KEY and their etag (read before a compare-and-swap)."""

    @abc.abstractmethod
    def get_to_file(self, key: str, path: Path) -> int:
        """Download KEY into PATH (written whole, then renamed into place); its size."""

    @abc.abstractmethod
    def head(self, key: str) -> ObjectInfo:
        """Size, etag and server time of KEY. :class:`RemoteNotFound`."""

    @abc.abstractmethod
    def list(self, prefix: str, start_after: str | None = None) -> Iterator[ObjectInfo]:
        """Objects under PREFIX in ascending key order, only keys > START_AFTER."""

    @abc.abstractmethod
    def delete(self, key: str) -> None:
        """Remove KEY; deleting a missing key is not an error."""

    def close(self) -> None:  # noqa: B027 - optional for backends with no resources
        """Release connections."""


PROBE_PREFIX = "probe/"


def probe_conditional_writes(backend: Backend, token: str) -> None:
    """Prove that BACKEND honours create-if-absent: write a fresh probe key, then write
    it again — the second create must lose with :class:`PreconditionFailed` (S3: 412).

    TOKEN makes the key unique to this probe (a session id). A server (or a proxy in
    front of it) that ignores ``If-None-Match`` accepts the second write, and two
    writers could then overwrite each other's refs, so it is refused for shared
    writing with :class:`ConditionalWritesUnsupported`. The probe key is deleted after.
    """
    key = f"{PROBE_PREFIX}{token}"
    backend.put_if_absent(key, b"first")
    try:
        try:
            backend.put_if_absent(key, b"second")
        except PreconditionFailed:
            return
        raise ConditionalWritesUnsupported(
            f"{backend.url} accepted a second create-if-absent of {key!r} (it should "
            "answer 412 Precondition Failed): this server or a proxy in front of it "
            "ignores conditional writes, so two writers could overwrite each other's "
            "refs. Use a server that supports If-None-Match/If-Match (AWS S3, MinIO, "
            "Ceph RGW, R2 ...), or pass --single-writer if only one machine ever writes."
        )
    finally:
        backend.delete(key)
