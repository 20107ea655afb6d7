"""A real S3 server on loopback for the remote tests: ``moto.server`` in a subprocess.

``s3_server`` (function-scoped) hands a test an empty bucket on a session-wide moto
process bound to 127.0.0.1 on a free port; between tests the server is reset
(``POST /moto-api/reset``) and the bucket re-created. ``fresh_s3_server`` starts a
process of the test's own (for tests that stop it). Under ``CI=true`` a missing moto
fails the test (:func:`tests.conftest.skip_outside_ci`).

moto 5.2 honours ``If-None-Match: *`` and ``If-Match: <etag>`` on PutObject (412
PreconditionFailed; ``If-Match`` on a missing key answers 404 NoSuchKey), but checks
and writes non-atomically; tests/moto_atomic.py runs it with its conditional PUTs
under one lock (S3's own guarantee), and races are also tested against the Rust
in-memory store. ``start_server(strip_conditions=True)`` is a server that ignores
conditional headers.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest

BUCKET = "reprocas-test"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class S3Server:
    """One moto process: its endpoint, the test bucket, client options for it."""

    process: subprocess.Popen[bytes]
    endpoint: str
    bucket: str = BUCKET
    options: dict[str, str] = field(default_factory=dict)

    def url(self, prefix: str = "") -> str:
        return f"s3://{self.bucket}/{prefix}".rstrip("/")

    def _request(self, method: str, path: str, timeout: float = 120) -> None:
        # The first S3 request makes moto load its S3 backend (botocore models), which on
        # a loaded CI machine has taken more than 5 s; a generous timeout, not a retry,
        # because a retried bucket PUT or reset is not what the test asked for.
        req = urllib.request.Request(f"{self.endpoint}{path}", method=method, data=b"")
        with urllib.request.urlopen(req, timeout=timeout):
            pass

    def create_bucket(self) -> None:
        self._request("PUT", f"/{self.bucket}")

    def reset(self) -> None:
        self._request("POST", "/moto-api/reset")
        self.create_bucket()

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


LAUNCHER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "moto_atomic.py")


def start_server(strip_conditions: bool = False) -> S3Server:
    """Start moto on 127.0.0.1:<free port>, wait until it answers, create the bucket."""
    try:
        import moto.server  # noqa: F401
    except ImportError:
        from tests.conftest import skip_outside_ci

        skip_outside_ci("moto[server] is not installed (the S3 test server)")
    port = _free_port()
    env = dict(os.environ, AWS_ACCESS_KEY_ID="test", AWS_SECRET_ACCESS_KEY="test")
    proc = subprocess.Popen(
        [sys.executable, LAUNCHER, "-H", "127.0.0.1", "-p", str(port)]
        + (["--strip-conditions"] if strip_conditions else []),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=env,
    )
    endpoint = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        if proc.poll() is not None:
            raise RuntimeError(f"moto.server exited with {proc.returncode}")
        try:
            with urllib.request.urlopen(f"{endpoint}/moto-api/", timeout=1):
                break
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            if time.monotonic() > deadline:
                proc.kill()
                raise RuntimeError("moto.server did not answer within 30 s") from None
            time.sleep(0.1)
    server = S3Server(
        proc,
        endpoint,
        options={
            "endpoint": endpoint,
            "region": "us-east-1",
            "access_key_id": "test",
            "secret_access_key": "test",
            "allow_http": "true",
        },
    )
    server.create_bucket()
    return server


@pytest.fixture(scope="session")
def _s3_session_server() -> Iterator[S3Server]:
    server = start_server()
    yield server
    server.stop()


@pytest.fixture
def s3_server(_s3_session_server: S3Server) -> S3Server:
    """An empty bucket on the session's moto server."""
    _s3_session_server.reset()
    return _s3_session_server


@pytest.fixture
def fresh_s3_server() -> Iterator[S3Server]:
    """A moto process of this test alone (it may stop it)."""
    server = start_server()
    yield server
    server.stop()
