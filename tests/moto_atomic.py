"""``python tests/moto_atomic.py -H 127.0.0.1 -p PORT``: moto's S3 server, with its
conditional writes made atomic.

moto checks ``If-None-Match``/``If-Match`` and then writes, in separate steps on
separate request threads, so two racing creates of one key can both succeed — a real
S3 (and MinIO, Ceph ...) decides them atomically. This WSGI wrapper runs every
conditional PUT under one lock, which gives moto S3's guarantee without serialising
the plain uploads and reads around it. ``--strip-conditions`` instead drops the
conditional headers (a server that ignores them, for the probe's tests).
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from collections.abc import Callable, Iterable
from typing import Any

_CONDITIONS = ("HTTP_IF_NONE_MATCH", "HTTP_IF_MATCH")


class AtomicConditionalWrites:
    def __init__(self, app: Callable[..., Iterable[bytes]], strip: bool) -> None:
        self.app, self.strip = app, strip
        self.lock = threading.Lock()

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        conditional = any(k in environ for k in _CONDITIONS)
        if self.strip:
            for k in _CONDITIONS:
                environ.pop(k, None)
            conditional = False
        if environ.get("REQUEST_METHOD") != "PUT" or not conditional:
            return self.app(environ, start_response)
        with self.lock:
            return list(self.app(environ, start_response))


def main() -> None:
    from moto.moto_server.werkzeug_app import (
        DomainDispatcherApplication,
        MotoRequestHandler,
        create_backend_app,
    )
    from werkzeug.serving import run_simple

    parser = argparse.ArgumentParser()
    parser.add_argument("-H", "--host", default="127.0.0.1")
    parser.add_argument("-p", "--port", type=int, required=True)
    parser.add_argument("--strip-conditions", action="store_true")
    args = parser.parse_args()
    if args.host not in ("127.0.0.1", "localhost", "::1"):
        sys.exit("moto_atomic serves tests on loopback only")
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    app = DomainDispatcherApplication(create_backend_app)
    # Build the S3 backend app now, before the port answers: built lazily, the first
    # S3 request waited for it (botocore models), which on a loaded CI machine took
    # longer than the test client's timeout.
    app.app_instances["s3"] = create_backend_app("s3")
    run_simple(
        args.host,
        args.port,
        AtomicConditionalWrites(app, args.strip_conditions),
        threaded=True,
        request_handler=MotoRequestHandler,
    )


if __name__ == "__main__":
    main()
