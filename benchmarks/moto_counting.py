"""moto's S3 server on loopback with a request counter in front of it, for bench_remote.

    python -m benchmarks.moto_counting --port 5123

Runs the same WSGI application as ``python -m moto.server`` (werkzeug, threaded,
bound to 127.0.0.1 only) wrapped in a middleware that counts every HTTP request it
answers, on the server side: by operation (``PUT``, ``GET``, ``GET range``, ``LIST``,
``HEAD``, ``DELETE``, ``POST``), by the protocol's key area (``packs``, ``index``,
``refs``, ``sessions``, ...), by status class, with request and response body bytes.
Retries and list pages the client makes are therefore counted as the requests they are.

``GET /__counts`` answers the counters as JSON and ``POST /__counts/reset`` zeroes them
(neither is counted).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import threading
from collections import Counter
from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import unquote

Environ = dict[str, Any]
StartResponse = Callable[..., Any]


def classify(method: str, path: str, query: str, has_range: bool) -> tuple[str, str]:
    """(operation, key area) of one S3 request on a path-style URL ``/bucket/key``."""
    parts = unquote(path).lstrip("/").split("/", 1)
    key = parts[1] if len(parts) > 1 else ""
    if method == "GET" and not key:
        op = "LIST"
    elif method == "GET" and has_range:
        op = "GET range"
    elif method == "POST" and not key and "delete" in query.split("&"):
        op = "DELETE (bulk POST)"
    else:
        op = method
    if not key:
        prefix = ""
        for item in query.split("&"):
            if item.startswith("prefix="):
                prefix = unquote(item[len("prefix=") :])
        key = prefix
    area = key.split("/", 1)[0] if "/" in key else (key or "-")
    if area.endswith(".json"):
        area = "marker"
    return op, area


class CountingMiddleware:
    """Counts the requests and bytes of the wrapped WSGI application (thread-safe)."""

    def __init__(self, app: Callable[[Environ, StartResponse], Iterable[bytes]]) -> None:
        self.app = app
        self.lock = threading.Lock()
        self.reset()

    def reset(self) -> None:
        with getattr(self, "lock", threading.Lock()):
            self.requests = 0
            self.by_op: Counter[str] = Counter()
            self.by_area: Counter[str] = Counter()
            self.by_status: Counter[str] = Counter()
            self.bytes_in = 0
            self.bytes_out = 0

    def snapshot(self) -> dict[str, Any]:
        with self.lock:
            return {
                "requests": self.requests,
                "by_op": dict(self.by_op),
                "by_area": dict(self.by_area),
                "by_status": dict(self.by_status),
                "bytes_in": self.bytes_in,
                "bytes_out": self.bytes_out,
            }

    def _answer(self, start_response: StartResponse, body: dict[str, Any]) -> list[bytes]:
        data = json.dumps(body).encode()
        start_response(
            "200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(data)))]
        )
        return [data]

    def __call__(self, environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        method = environ.get("REQUEST_METHOD", "GET")
        if path == "/__counts":
            return self._answer(start_response, self.snapshot())
        if path == "/__counts/reset" and method == "POST":
            self.reset()
            return self._answer(start_response, {"reset": True})
        op, area = classify(method, path, environ.get("QUERY_STRING", ""), "HTTP_RANGE" in environ)
        status: list[str] = []

        def sr(st: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            status.append(st)
            return start_response(st, headers, exc_info)

        result = self.app(environ, sr)
        out = 0
        try:
            chunks = []
            for piece in result:
                out += len(piece)
                chunks.append(piece)
        finally:
            close = getattr(result, "close", None)
            if close is not None:
                close()
        with self.lock:
            self.requests += 1
            self.by_op[op] += 1
            self.by_area[area] += 1
            self.by_status[(status[0][:1] + "xx") if status else "?"] += 1
            self.bytes_in += int(environ.get("CONTENT_LENGTH") or 0)
            self.bytes_out += out
        return chunks


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--port", type=int, required=True)
    args = ap.parse_args(argv)
    os.environ.setdefault("MOTO_PORT", str(args.port))
    from moto.moto_server.werkzeug_app import (
        DomainDispatcherApplication,
        MotoRequestHandler,
        create_backend_app,
    )
    from werkzeug.serving import run_simple

    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    app = CountingMiddleware(DomainDispatcherApplication(create_backend_app))
    run_simple(
        "127.0.0.1",
        args.port,
        app,
        threaded=True,
        request_handler=MotoRequestHandler,
    )


if __name__ == "__main__":
    main()
