"""The file pipeline: chunk_file, FileChunker and its ChunkBatch, StreamChunker."""

from __future__ import annotations

import gc
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import pytest
import zstandard
from typing_extensions import Buffer

from reprocas import _core
from tests.conftest import (
    SMALL,
    Chunks,
    RandBytes,
    b3,
    batches_chunks,
    cached_random_bytes,
    params,
    skip_outside_ci,
    table_chunks,
)

WriteFile = Callable[[bytes], Path]
THREADS = pytest.mark.parametrize("threads", [1, 0], ids=["threads=1", "threads=0"])
KEYS = pytest.mark.parametrize("key", [None, bytes(range(100, 132))], ids=["plain", "keyed"])
MIN_BLOCK = 64 << 10  # FileChunker raises block_size to at least max(4 * max, 64 KiB)


def expected_chunks(data: bytes, key: bytes | None = None) -> Chunks:
    return table_chunks(_core.chunk_buffer(data, params(SMALL), key=key))


def run_file_chunker(chunker: _core.FileChunker) -> list[_core.ChunkBatch]:
    assert chunker.file_digest is None and chunker.size is None
    return list(chunker)


def stream_chunks(
    p: _core.ChunkerParams, pieces: Sequence[Buffer], key: bytes | None = None
) -> tuple[Chunks, _core.StreamChunker]:
    s = _core.StreamChunker(p, key=key)
    out: Chunks = []
    for piece in pieces:
        out += s.update(piece)
    assert s.file_digest is None and s.size is None
    out += s.finish()
    return out, s


# --- chunk_file ----------------------------------------------------------------------


@KEYS
@THREADS
def test_chunk_file_equals_chunk_buffer_and_blake3(
    threads: int, key: bytes | None, write_file: WriteFile, data_4mib: bytes
) -> None:
    data = data_4mib[: 3 << 20]
    path = write_file(data)
    table = _core.chunk_file(path, params(SMALL), key=key, threads=threads)
    assert table_chunks(table) == expected_chunks(data, key)
    assert table.size == len(data)
    assert table.file_digest == b3(data, key)
    for off, n, digest in table_chunks(table)[::97]:
        assert digest == b3(data[off : off + n], key)


@THREADS
def test_chunk_file_larger_than_one_read_block(threads: int, write_file: WriteFile) -> None:
    # Bigger than the 16 MiB default block: the carry between blocks is exercised.
    data = cached_random_bytes((17 << 20) + 12345, 77)
    p = _core.ChunkerParams(16384, 32768, 131072)
    table = _core.chunk_file(write_file(data), p, threads=threads)
    want = _core.chunk_buffer(data, p)
    assert table_chunks(table) == table_chunks(want)
    assert table.file_digest == b3(data)
    assert table.size == len(data)


def test_chunk_file_accepts_str_and_pathlike(write_file: WriteFile, rand_bytes: RandBytes) -> None:
    data = rand_bytes(30_000, 1)
    path = write_file(data)
    a = _core.chunk_file(path, params(SMALL))
    b = _core.chunk_file(str(path), params(SMALL))
    assert table_chunks(a) == table_chunks(b) == expected_chunks(data)


# --- FileChunker ---------------------------------------------------------------------


@KEYS
@THREADS
@pytest.mark.parametrize("block_size", [1, MIN_BLOCK, MIN_BLOCK + 1, 300_000, 16 << 20])
def test_file_chunker_equals_chunk_buffer(
    block_size: int, threads: int, key: bytes | None, write_file: WriteFile, rand_bytes: RandBytes
) -> None:
    data = rand_bytes(1_000_003, 5)
    chunker = _core.FileChunker(
        write_file(data), params(SMALL), key=key, threads=threads, block_size=block_size
    )
    batches = run_file_chunker(chunker)
    assert batches_chunks(batches) == expected_chunks(data, key)
    assert chunker.file_digest == b3(data, key)
    assert chunker.size == len(data)
    # Small blocks really do split the file into many batches.
    effective = max(block_size, MIN_BLOCK)
    if effective < len(data):
        assert len(batches) >= len(data) // effective - 1
    else:
        assert len(batches) == 1


@KEYS
@THREADS
def test_batches_describe_their_bytes(
    threads: int, key: bytes | None, write_file: WriteFile, rand_bytes: RandBytes
) -> None:
    data = rand_bytes(700_000, 6)
    chunker = _core.FileChunker(
        write_file(data), params(SMALL), key=key, threads=threads, block_size=MIN_BLOCK
    )
    batches = run_file_chunker(chunker)
    assert chunker.file_digest == b3(data, key)
    assert len(batches) > 5
    pos = 0
    for batch in batches:
        assert len(batch) == len(batch.offsets) == len(batch.lengths) == len(batch.digests) > 0
        assert batch.offset == pos == batch.offsets[0]
        assert batch.size == sum(batch.lengths)
        for i, (off, n, digest) in enumerate(
            zip(batch.offsets, batch.lengths, batch.digests, strict=True)
        ):
            chunk = batch.chunk(i)
            assert chunk == data[off : off + n]
            assert digest == b3(chunk, key)
        pos += batch.size
    assert pos == len(data)


@THREADS
def test_batches_stay_valid_after_the_chunker_is_done(
    threads: int, write_file: WriteFile, rand_bytes: RandBytes
) -> None:
    # Holding every batch while the reader keeps going must not let it reuse their memory.
    data = rand_bytes(2_000_000, 7)
    chunker = _core.FileChunker(write_file(data), params(SMALL), threads=threads, block_size=1)
    batches = list(chunker)
    del chunker
    for batch in batches:
        for i in range(0, len(batch), 7):
            off, n = batch.offsets[i], batch.lengths[i]
            assert batch.chunk(i) == data[off : off + n]
        frames = batch.compress(list(range(len(batch))))
        assert sum(f[4] for f in frames) == batch.size


@THREADS
def test_batches_dropped_while_iterating_are_recycled_safely(
    threads: int, write_file: WriteFile, rand_bytes: RandBytes
) -> None:
    # Dropping each batch at once lets the reader recycle its buffer for later blocks.
    data = rand_bytes(3_000_000, 8)
    got: Chunks = []
    for batch in _core.FileChunker(write_file(data), params(SMALL), threads=threads, block_size=1):
        got.extend(zip(batch.offsets, batch.lengths, batch.digests, strict=True))
        last = len(batch) - 1
        assert (
            batch.chunk(last)
            == data[batch.offsets[last] : batch.offsets[last] + batch.lengths[last]]
        )
    assert got == expected_chunks(data)


@THREADS
@pytest.mark.parametrize("blocks", [1, 2, 5])
def test_file_of_exactly_whole_blocks(
    blocks: int, threads: int, write_file: WriteFile, rand_bytes: RandBytes
) -> None:
    # The last read returns nothing: end of file is only seen on an empty read.
    data = rand_bytes(blocks * MIN_BLOCK, blocks)
    chunker = _core.FileChunker(
        write_file(data), params(SMALL), threads=threads, block_size=MIN_BLOCK
    )
    assert batches_chunks(run_file_chunker(chunker)) == expected_chunks(data)
    assert chunker.size == len(data) and chunker.file_digest == b3(data)


@THREADS
@KEYS
def test_file_chunker_on_empty_file(threads: int, key: bytes | None, write_file: WriteFile) -> None:
    chunker = _core.FileChunker(write_file(b""), params(SMALL), key=key, threads=threads)
    assert run_file_chunker(chunker) == []
    assert chunker.file_digest == b3(b"", key)
    assert chunker.size == 0


@THREADS
def test_file_chunker_on_file_smaller_than_min_size(threads: int, write_file: WriteFile) -> None:
    data = b"tiny file\n" * 10
    chunker = _core.FileChunker(write_file(data), params(SMALL), threads=threads)
    [batch] = run_file_chunker(chunker)
    assert (batch.offsets, batch.lengths, batch.digests) == ([0], [100], [b3(data)])
    assert batch.chunk(0) == data
    assert chunker.file_digest == b3(data) and chunker.size == 100


@THREADS
def test_file_of_zeros_is_cut_at_max_size(threads: int, write_file: WriteFile) -> None:
    n = 500_000
    chunker = _core.FileChunker(write_file(bytes(n)), params(SMALL), threads=threads, block_size=1)
    lengths = [n for b in chunker for n in b.lengths]
    assert lengths == [4096] * (n // 4096) + [n % 4096]


@THREADS
def test_exhausted_file_chunker_keeps_stopping(
    threads: int, write_file: WriteFile, rand_bytes: RandBytes
) -> None:
    data = rand_bytes(10_000, 9)
    chunker = _core.FileChunker(write_file(data), params(SMALL), threads=threads)
    assert iter(chunker) is chunker
    assert len(list(chunker)) == 1
    with pytest.raises(StopIteration):
        next(chunker)
    assert list(chunker) == []
    assert chunker.file_digest == b3(data)


def test_abandoned_file_chunkers_do_not_leak_threads(
    write_file: WriteFile, rand_bytes: RandBytes
) -> None:
    if not Path("/proc/self/task").is_dir():
        skip_outside_ci("needs /proc/self/task to count threads")
    path = write_file(rand_bytes(2_000_000, 14))
    list(_core.FileChunker(path, params(SMALL), threads=0, block_size=1))  # warm the pool

    def count() -> int:
        return len(list(Path("/proc/self/task").iterdir()))

    baseline = count()
    for _ in range(20):
        chunker = _core.FileChunker(path, params(SMALL), threads=0, block_size=1)
        batch = next(chunker)
        assert batch.offset == 0
        del chunker, batch
    for _ in range(20):
        _core.FileChunker(path, params(SMALL), threads=0, block_size=1)
    deadline = time.monotonic() + 10
    while count() > baseline and time.monotonic() < deadline:
        gc.collect()
        time.sleep(0.05)
    assert count() <= baseline


# --- ChunkBatch.compress -------------------------------------------------------------


def text_file_batch(write_file: WriteFile) -> tuple[bytes, _core.ChunkBatch]:
    lines = [
        f"{i},patient-{i % 977:04d},2026-11-{1 + i % 28:02d},{(i * 7919) % 10007}\n"
        for i in range(12_000)
    ]
    data = "".join(lines).encode()
    [batch] = list(_core.FileChunker(write_file(data), params(SMALL), threads=1))
    assert len(batch) > 50
    return data, batch


def decode_frame(frame: _core.Frame) -> bytes:
    codec, payload, _, _, raw_len = frame
    if codec == _core.CODEC_RAW:
        return payload
    assert codec == _core.CODEC_ZSTD
    return bytes(zstandard.ZstdDecompressor().decompress(payload, max_output_size=raw_len))


def test_compress_one_frame_per_chunk(write_file: WriteFile) -> None:
    _, batch = text_file_batch(write_file)
    indices = [0, 1, 2, 5, 9, len(batch) - 1]
    frames = batch.compress(indices, level=3)
    assert [(f[2], f[3]) for f in frames] == [(i, 1) for i in indices]
    for codec, payload, first, _, raw_len in frames:
        assert raw_len == batch.lengths[first]
        assert codec == _core.CODEC_ZSTD and len(payload) < raw_len
        assert decode_frame((codec, payload, first, 1, raw_len)) == batch.chunk(first)
    assert _core.decompress_chunks([(f[0], f[1], f[4]) for f in frames]) == [
        batch.chunk(i) for i in indices
    ]


@pytest.mark.parametrize("frame_size", [1, 4096, 10_000, 1 << 20])
def test_compress_groups_consecutive_chunks_into_frames(
    frame_size: int, write_file: WriteFile
) -> None:
    data, batch = text_file_batch(write_file)
    n = len(batch)
    indices = [*range(0, 20), *range(25, 40), 41, 43, *range(50, n)]
    frames = batch.compress(indices, level=5, frame_size=frame_size)
    covered = [i for f in frames for i in range(f[2], f[2] + f[3])]
    assert covered == indices
    for frame in frames:
        _, _, first, count, raw_len = frame
        assert raw_len == sum(batch.lengths[first : first + count])
        assert count == 1 or raw_len <= frame_size
        start = batch.offsets[first]
        assert decode_frame(frame) == data[start : start + raw_len]
    if frame_size >= 1 << 20:
        # Everything consecutive fits: one frame per run of consecutive indices.
        assert [(f[2], f[3]) for f in frames] == [(0, 20), (25, 15), (41, 1), (43, 1), (50, n - 50)]
    if frame_size == 1:
        assert all(f[3] == 1 for f in frames)


def test_compress_incompressible_chunks_are_raw(
    write_file: WriteFile, rand_bytes: RandBytes
) -> None:
    data = rand_bytes(100_000, 10)
    [batch] = list(_core.FileChunker(write_file(data), params(SMALL), threads=1))
    frames = batch.compress(list(range(len(batch))), frame_size=8192)
    for codec, payload, first, _, raw_len in frames:
        assert codec == _core.CODEC_RAW
        start = batch.offsets[first]
        assert payload == data[start : start + raw_len]
    assert _core.decompress_chunks([(f[0], f[1], f[4]) for f in frames]) == [f[1] for f in frames]


def test_compress_no_indices(write_file: WriteFile) -> None:
    _, batch = text_file_batch(write_file)
    assert batch.compress([]) == []
    assert batch.compress([], frame_size=1 << 20) == []


@THREADS
def test_compress_results_do_not_depend_on_threads(threads: int, write_file: WriteFile) -> None:
    data, batch_1 = text_file_batch(write_file)
    [batch_n] = list(_core.FileChunker(write_file(data), params(SMALL), threads=threads))
    indices = list(range(0, len(batch_1), 2))
    assert batch_n.compress(indices, frame_size=0) == batch_1.compress(indices, frame_size=0)


# --- StreamChunker -------------------------------------------------------------------


@KEYS
@pytest.mark.parametrize("piece", [1, 100, 4095, 4096, 4097, 65536, 1 << 20])
def test_stream_equals_chunk_buffer(piece: int, key: bytes | None, data_4mib: bytes) -> None:
    # Each update re-scans the pending tail, so 1-byte updates are kept short.
    data = data_4mib[: 30_000 if piece == 1 else 300_000 if piece < 4096 else 2_500_000]
    pieces = [data[i : i + piece] for i in range(0, len(data), piece)]
    got, s = stream_chunks(params(SMALL), pieces, key)
    assert got == expected_chunks(data, key)
    assert s.file_digest == b3(data, key) and s.size == len(data)
    for off, n, digest in got:
        assert digest == b3(data[off : off + n], key)


def test_stream_with_one_huge_update_uses_the_parallel_path(data_4mib: bytes) -> None:
    # More than four 1 MiB regions in a single update, not at end of input.
    got, s = stream_chunks(params(SMALL), [data_4mib, data_4mib[:1_234_567]])
    data = data_4mib + data_4mib[:1_234_567]
    assert got == expected_chunks(data)
    assert s.file_digest == b3(data)


def test_stream_update_returns_only_completed_chunks(rand_bytes: RandBytes) -> None:
    # Small reads are gathered (up to max(4 * max_size, 1 MiB)) before cutting, so
    # the first update returns nothing and a large one returns what it completed.
    data = rand_bytes(3 << 20, 11)
    s = _core.StreamChunker(params(SMALL))
    assert s.update(data[:100]) == []  # not even min size yet
    assert s.update(b"") == []
    first = s.update(data[100:])
    rest = s.finish()
    assert first and rest
    want = expected_chunks(data)
    assert first + rest == want
    # A chunk is only returned once what follows cannot change it.
    assert len(rest) <= 2


def test_stream_of_nothing(rand_bytes: RandBytes) -> None:
    got, s = stream_chunks(params(SMALL), [])
    assert got == [] and s.size == 0 and s.file_digest == b3(b"")
    got, s = stream_chunks(params(SMALL), [b"", b""], key=bytes(32))
    assert got == [] and s.size == 0 and s.file_digest == b3(b"", bytes(32))


def test_stream_of_zeros_is_cut_at_max_size() -> None:
    n = 200_000
    got, _ = stream_chunks(params(SMALL), [bytes(3000)] * (n // 3000) + [bytes(n % 3000)])
    assert [length for _, length, _ in got] == [4096] * (n // 4096) + [n % 4096]


def test_stream_accepts_buffer_types(rand_bytes: RandBytes) -> None:
    data = rand_bytes(40_000, 12)
    got, _ = stream_chunks(
        params(SMALL),
        [bytearray(data[:10_000]), memoryview(data)[10_000:30_000], data[30_000:]],
    )
    assert got == expected_chunks(data)


def test_stream_chunks_are_plain_tuples(rand_bytes: RandBytes) -> None:
    got, _ = stream_chunks(params(SMALL), [rand_bytes(20_000, 13)])
    for item in got:
        assert type(item) is tuple and len(item) == 3
        off, n, digest = item
        assert type(off) is int and type(n) is int and type(digest) is bytes
