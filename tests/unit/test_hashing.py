"""BLAKE3 in the core: official test vectors and cross-checks against the PyPI package."""

from __future__ import annotations

import array
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from reprocas import _core
from tests.conftest import RandBytes, b3

VECTORS_PATH = Path(__file__).parents[1] / "golden" / "blake3_vectors.json"
VECTORS: dict[str, Any] = json.loads(VECTORS_PATH.read_text())
KEY: bytes = VECTORS["key"].encode("ascii")
CASES: list[dict[str, Any]] = VECTORS["cases"]
REQUIRED_LENGTHS = {0, 1, 1023, 1024, 1025, 2048, 2049, 3072, 4096, 8192, 31744, 102400}


def vector_input(n: int) -> bytes:
    return bytes(i % 251 for i in range(n))


def expected(case: dict[str, Any], field: str) -> bytes:
    return bytes.fromhex(case[field])[:32]


def one_chunk_params(n: int) -> _core.ChunkerParams:
    """Parameters under which an input of ``n`` bytes is a single chunk."""
    size = max(64, n)
    return _core.ChunkerParams(size, size, size)


by_len = pytest.mark.parametrize("case", CASES, ids=[f"len={c['input_len']}" for c in CASES])


def test_vector_file_is_complete() -> None:
    assert len(KEY) == 32
    assert {c["input_len"] for c in CASES} == REQUIRED_LENGTHS
    for c in CASES:
        assert len(c["hash"]) >= 64 and len(c["keyed_hash"]) >= 64


@by_len
def test_blake3_digest_matches_official_vector(case: dict[str, Any]) -> None:
    data = vector_input(case["input_len"])
    assert _core.blake3_digest(data) == expected(case, "hash")


@by_len
def test_keyed_blake3_digest_matches_official_vector(case: dict[str, Any]) -> None:
    data = vector_input(case["input_len"])
    assert _core.blake3_digest(data, key=KEY) == expected(case, "keyed_hash")


@pytest.mark.parametrize("keyed", [False, True], ids=["plain", "keyed"])
@by_len
def test_single_chunk_and_file_digest_match_official_vector(
    case: dict[str, Any], keyed: bool
) -> None:
    n = case["input_len"]
    data = vector_input(n)
    want = expected(case, "keyed_hash" if keyed else "hash")
    table = _core.chunk_buffer(data, one_chunk_params(n), key=KEY if keyed else None)
    assert table.file_digest == want
    assert table.size == n
    if n == 0:
        assert len(table) == 0
    else:
        assert table.lengths == [n]
        assert table.digests == [want]


@pytest.mark.parametrize("keyed", [False, True], ids=["plain", "keyed"])
@by_len
def test_file_and_stream_digests_match_official_vector(
    case: dict[str, Any], keyed: bool, write_file: Callable[[bytes], Path]
) -> None:
    n = case["input_len"]
    data = vector_input(n)
    want = expected(case, "keyed_hash" if keyed else "hash")
    key = KEY if keyed else None
    p = _core.ChunkerParams(64, 256, 1024)  # several chunks for the longer inputs
    path = write_file(data)
    assert _core.chunk_file(path, p, key=key).file_digest == want
    assert _core.chunk_file(path, p, key=key, threads=1).file_digest == want
    stream = _core.StreamChunker(p, key=key)
    for i in range(0, n, 1000):
        stream.update(data[i : i + 1000])
    stream.finish()
    assert stream.file_digest == want
    chunker = _core.FileChunker(path, p, key=key)
    for _ in chunker:
        pass
    assert chunker.file_digest == want


# --- cross-checks against the blake3 package ----------------------------------------


@pytest.mark.parametrize(
    "n",
    [
        0,
        1,
        63,
        64,
        65,
        1024,
        1025,
        65536,
        (1 << 20) - 1,
        1 << 20,
        (1 << 20) + 1,
        3 * (1 << 20) + 17,
    ],
)
def test_blake3_digest_equals_blake3_package(n: int, rand_bytes: RandBytes) -> None:
    # 1 MiB and more take the multithreaded path.
    data = rand_bytes(n, n)
    key = rand_bytes(32, n + 1)
    assert _core.blake3_digest(data) == b3(data)
    assert _core.blake3_digest(data, key=key) == b3(data, key)
    assert _core.blake3_digest(data, key) == b3(data, key)


def test_key_changes_the_digest(rand_bytes: RandBytes) -> None:
    data = rand_bytes(5000, 1)
    k1 = bytes(32)
    k2 = bytes(31) + b"\x01"
    digests = {
        _core.blake3_digest(data),
        _core.blake3_digest(data, k1),
        _core.blake3_digest(data, k2),
    }
    assert len(digests) == 3
    assert all(len(d) == 32 for d in digests)


def test_blake3_digest_accepts_any_contiguous_buffer(rand_bytes: RandBytes) -> None:
    data = rand_bytes(10_000, 2)
    want = b3(data)
    buffers: list[Any] = [
        data,
        bytearray(data),
        memoryview(data),
        memoryview(b"xx" + data + b"yy")[2:-2],
        array.array("B", data),
    ]
    for buf in buffers:
        assert _core.blake3_digest(buf) == want, type(buf)
    assert _core.blake3_digest(memoryview(data).cast("B", (100, 100))) == want


def test_blake3_digest_returns_bytes() -> None:
    d = _core.blake3_digest(b"abc")
    assert type(d) is bytes
    assert d == b3(b"abc")
