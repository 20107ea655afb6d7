"""The request counters of bench_remote: the backend proxy on a real file:// remote and
the WSGI counter in front of moto, on a plain WSGI app.

    .venv/bin/pytest -q benchmarks/test_bench_remote.py
"""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

from benchmarks.bench_remote import CountingBackend
from benchmarks.moto_counting import CountingMiddleware, classify
from reprocas.remote.file import FileBackend


def test_classify_s3_requests() -> None:
    assert classify("PUT", "/b/packs/ab/ab12.pack", "", False) == ("PUT", "packs")
    assert classify("GET", "/b/packs/ab/ab12.pack", "", True) == ("GET range", "packs")
    assert classify("GET", "/b", "list-type=2&prefix=refs%2Fds%3A", False) == ("LIST", "refs")
    assert classify("GET", "/b/reprocas-remote.json", "", False) == ("GET", "marker")
    assert classify("POST", "/b", "delete", False) == ("DELETE (bulk POST)", "-")


def test_counting_backend_counts_each_call_and_file(tmp_path: Path) -> None:
    root = tmp_path / "remote"
    root.mkdir()
    b = CountingBackend(FileBackend(root.as_uri()))
    files = []
    for i in range(3):
        f = tmp_path / f"f{i}"
        f.write_bytes(b"x" * (100 + i))
        files.append((f"packs/0{i}/p{i}.pack", f))
    assert b.put_files_if_absent(files) == [True, True, True]
    b.put_if_absent("refs/r", b"abc")
    assert b.get("packs/00/p0.pack", 0, 10) == b"x" * 10
    assert len(list(b.list("packs/"))) == 3
    b.delete("refs/r")
    snap = b.snapshot()
    assert snap["requests"] == 7
    assert snap["by_op"] == {"PUT": 4, "GET range": 1, "LIST": 1, "DELETE": 1}
    assert snap["by_area"] == {"packs": 5, "refs": 2}
    assert snap["bytes_in"] == 100 + 101 + 102 + 3
    assert snap["bytes_out"] == 10


def _app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
    if environ["PATH_INFO"].endswith("missing"):
        start_response("404 Not Found", [])
        return [b"no"]
    start_response("200 OK", [])
    return [b"hello", b" world"]


def _call(app: Any, method: str, path: str, body: bytes = b"", query: str = "") -> bytes:
    environ = {
        "REQUEST_METHOD": method,
        "PATH_INFO": path,
        "QUERY_STRING": query,
        "CONTENT_LENGTH": str(len(body)),
        "wsgi.input": io.BytesIO(body),
    }
    return b"".join(app(environ, lambda *a: None))


def test_middleware_counts_requests_bytes_and_status() -> None:
    app = CountingMiddleware(_app)
    _call(app, "PUT", "/b/packs/aa/1.pack", b"12345")
    _call(app, "GET", "/b/refs/missing")
    _call(app, "GET", "/b", query="list-type=2&prefix=index%2F")
    counts = json.loads(_call(app, "GET", "/__counts"))
    assert counts["requests"] == 3
    assert counts["by_op"] == {"PUT": 1, "GET": 1, "LIST": 1}
    assert counts["by_area"] == {"packs": 1, "refs": 1, "index": 1}
    assert counts["by_status"] == {"2xx": 2, "4xx": 1}
    assert counts["bytes_in"] == 5
    assert counts["bytes_out"] == 11 + 2 + 11
    _call(app, "POST", "/__counts/reset")
    assert json.loads(_call(app, "GET", "/__counts"))["requests"] == 0
