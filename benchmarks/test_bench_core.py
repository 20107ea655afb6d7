"""pytest-benchmark suite for the native core on 64 MiB of seeded, realistic data.

Not part of the normal test run (``testpaths`` is ``tests/``); run it explicitly::

    .venv/bin/pytest benchmarks/test_bench_core.py --benchmark-only
    .venv/bin/pytest benchmarks/test_bench_core.py --benchmark-autosave  # keep a baseline
    .venv/bin/pytest benchmarks/test_bench_core.py --benchmark-compare   # compare to it

Each benchmark stores the input size and its best rate (MB/s, 1 MB = 10**6 bytes) in
``extra_info``. That the generators are deterministic is checked by
tests/unit/test_generators.py, which the normal test run includes.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
from pytest_benchmark.fixture import BenchmarkFixture

from benchmarks import generate
from reprocas import _core

SIZE = 64 << 20
SEED = 7
LEVEL = 3
ROUNDS = 5
THREADS = [pytest.param(1, id="1thread"), pytest.param(0, id="allthreads")]


@pytest.fixture(scope="module")
def data() -> bytes:
    return generate.random_bytes(SIZE, SEED)


@pytest.fixture(scope="module")
def params() -> _core.ChunkerParams:
    return _core.ChunkerParams(16384, 65536, 262144)


@pytest.fixture(scope="module")
def chunks(data: bytes, params: _core.ChunkerParams) -> list[memoryview]:
    """The chunks of ``data`` as zero-copy views."""
    table = _core.chunk_buffer(data, params)
    view = memoryview(data)
    return [view[o : o + n] for o, n in zip(table.offsets, table.lengths, strict=True)]


@pytest.fixture(scope="module")
def stored(chunks: list[memoryview]) -> list[tuple[int, bytes, int]]:
    """Every chunk compressed on its own, as ``decompress_chunks`` takes them."""
    frames = _core.compress_chunks(chunks, LEVEL)
    return [(codec, payload, len(c)) for (codec, payload), c in zip(frames, chunks, strict=True)]


def run(
    benchmark: BenchmarkFixture, fn: Callable[..., object], *args: object, **kw: object
) -> None:
    """Benchmark ``fn(*args, **kw)`` and record the input size and best rate."""
    benchmark.pedantic(fn, args=args, kwargs=kw, rounds=ROUNDS, warmup_rounds=1)  # type: ignore[no-untyped-call]
    benchmark.extra_info["bytes"] = SIZE
    if benchmark.stats is not None:
        benchmark.extra_info["best_MB_per_s"] = round(SIZE / 1e6 / benchmark.stats.stats.min, 1)


@pytest.mark.parametrize("threads", THREADS)
def test_cut_buffer(
    benchmark: BenchmarkFixture, data: bytes, params: _core.ChunkerParams, threads: int
) -> None:
    cut_buffer = getattr(_core, "cut_buffer", None)
    if cut_buffer is None:
        pytest.skip("_core.cut_buffer is not in this build")
    run(benchmark, cut_buffer, data, params, threads=threads)


@pytest.mark.parametrize("threads", THREADS)
def test_chunk_buffer(
    benchmark: BenchmarkFixture, data: bytes, params: _core.ChunkerParams, threads: int
) -> None:
    run(benchmark, _core.chunk_buffer, data, params, threads=threads)


@pytest.mark.parametrize("threads", THREADS)
def test_compress_chunks(
    benchmark: BenchmarkFixture, chunks: list[memoryview], threads: int
) -> None:
    run(benchmark, _core.compress_chunks, chunks, LEVEL, threads=threads)


@pytest.mark.parametrize("threads", THREADS)
def test_decompress_chunks(
    benchmark: BenchmarkFixture,
    data: bytes,
    stored: list[tuple[int, bytes, int]],
    threads: int,
) -> None:
    assert b"".join(_core.decompress_chunks(stored, threads=threads)) == data
    run(benchmark, _core.decompress_chunks, stored, threads=threads)
