"""Shared helpers and fixtures of the reprocas test suite.

The helpers are plain functions so that hypothesis tests (which cannot take
function-scoped fixtures) can use them too; the fixtures wrap them.
"""

from __future__ import annotations

import functools
import math
import os
import random
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import NoReturn

import blake3
import pytest

from reprocas import _core
from tests.golden.regenerate import csv_table

# REPROCAS_TEST_FORMAT=3 runs the suite on format-3 repositories: every repository a
# test creates without naming a format (Repo.init, `reprocas init` through
# tests.integration._helpers.cli_argv) gets that format.
TEST_FORMAT = int(os.environ.get("REPROCAS_TEST_FORMAT") or 0) or None
if TEST_FORMAT is not None:
    from reprocas.store import repository as _repository

    _repository.FORMAT_VERSION_DEFAULT = TEST_FORMAT

RandBytes = Callable[[int, int], bytes]
Chunks = list[tuple[int, int, bytes]]
"""``(offset, length, digest)`` per chunk, the shape StreamChunker returns."""

SMALL = (256, 1024, 4096)
"""Small chunk sizes: many chunks per MiB, and the parallel path starts at ~3 MiB."""


def skip_outside_ci(reason: str) -> NoReturn:
    """Skip on a developer's machine that lacks a prerequisite; under CI (``CI`` set,
    as .ci/run has it) the same missing prerequisite is a failure, never a skip."""
    if os.environ.get("CI"):
        pytest.fail(f"CI must run this test: {reason}")
    pytest.skip(reason)


def random_bytes(n: int, seed: int) -> bytes:
    """``n`` reproducible pseudo-random bytes."""
    return random.Random(seed).randbytes(n)


@functools.cache
def cached_random_bytes(n: int, seed: int) -> bytes:
    """:func:`random_bytes`, generated once per process (for the big buffers)."""
    return random_bytes(n, seed)


def b3(data: bytes, key: bytes | None = None) -> bytes:
    """BLAKE3-256 computed by the PyPI ``blake3`` package (the independent oracle)."""
    if key is None:
        return bytes(blake3.blake3(data).digest())
    return bytes(blake3.blake3(data, key=key).digest())


def table_chunks(table: _core.ChunkTable) -> Chunks:
    return list(zip(table.offsets, table.lengths, table.digests, strict=True))


def table_ends(table: _core.ChunkTable) -> list[int]:
    return [o + n for o, n in zip(table.offsets, table.lengths, strict=True)]


def batches_chunks(batches: Sequence[_core.ChunkBatch]) -> Chunks:
    out: Chunks = []
    for b in batches:
        out.extend(zip(b.offsets, b.lengths, b.digests, strict=True))
    return out


def params(sizes: tuple[int, int, int], seed: int = 0) -> _core.ChunkerParams:
    return _core.ChunkerParams(*sizes, seed=seed)


# --- an independent, slow, pure-Python reference of the chunker ---------------------
#
# Written from the documented algorithm (FastCDC 2020, normalised chunking level 2;
# the gear table is BLAKE3 in derive-key mode over the little-endian seed, read as
# 256 little-endian u64 words; the masks take their one-bits from the top of the
# word). Used on inputs of at most a few MiB.

GEAR_CONTEXT = "reprocas 2026-11 fastcdc gear table v1"
_M64 = (1 << 64) - 1


@functools.cache
def reference_gear(seed: int) -> tuple[int, ...]:
    raw = blake3.blake3(seed.to_bytes(8, "little"), derive_key_context=GEAR_CONTEXT).digest(
        length=256 * 8
    )
    return tuple(int.from_bytes(raw[i : i + 8], "little") for i in range(0, 256 * 8, 8))


def _top_mask(bits: int) -> int:
    return 0 if bits == 0 else (_M64 << (64 - bits)) & _M64


def reference_ends(
    data: bytes, min_size: int, avg_size: int, max_size: int, seed: int = 0
) -> list[int]:
    """Chunk end offsets of ``data`` (the whole input), by the reference algorithm."""
    gear = reference_gear(seed)
    bits = round(math.log2(avg_size))
    mask_s = _top_mask(min(bits + 2, 63))
    mask_l = _top_mask(max(bits - 2, 0))
    ends: list[int] = []
    pos = 0
    n = len(data)
    while pos < n:
        remaining = n - pos
        if remaining <= min_size:
            cut = remaining
        else:
            end = min(remaining, max_size)
            center = min(end, avg_size)
            h = 0
            cut = end
            found = False
            for i in range(min_size, center):
                h = ((h << 1) + gear[data[pos + i]]) & _M64
                if h & mask_s == 0:
                    cut, found = i + 1, True
                    break
            if not found:
                for i in range(max(center, min_size), end):
                    h = ((h << 1) + gear[data[pos + i]]) & _M64
                    if h & mask_l == 0:
                        cut = i + 1
                        break
        pos += cut
        ends.append(pos)
    return ends


# --- fixtures ------------------------------------------------------------------------


@pytest.fixture(scope="session")
def rand_bytes() -> RandBytes:
    """``rand_bytes(n, seed)``: reproducible pseudo-random bytes."""
    return random_bytes


@pytest.fixture(scope="session")
def small_params() -> _core.ChunkerParams:
    return params(SMALL)


@pytest.fixture(scope="session")
def data_4mib() -> bytes:
    """4 MiB of random bytes, shared by the tests that need a big input."""
    return cached_random_bytes(4 << 20, 4)


@pytest.fixture(scope="session")
def csv_data() -> bytes:
    """About 1.3 MiB of low-entropy CSV text."""
    return csv_table(30_000)


@pytest.fixture
def write_file(tmp_path: Path) -> Callable[[bytes], Path]:
    """``write_file(data)``: a new file in ``tmp_path`` holding ``data``."""
    counter = iter(range(1_000_000))

    def write(data: bytes) -> Path:
        path = tmp_path / f"input-{next(counter)}.bin"
        path.write_bytes(data)
        return path

    return write


# The S3 test server (issue 18): fixtures `s3_server` (an empty bucket on a session-wide
# moto process on 127.0.0.1, reset per test) and `fresh_s3_server` (a process of the
# test's own). Imported here so every test directory can use them.
from tests.s3server import _s3_session_server, fresh_s3_server, s3_server  # noqa: E402,F401
