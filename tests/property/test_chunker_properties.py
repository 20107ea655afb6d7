"""Properties of the chunker and the pipeline around it, checked with hypothesis."""

from __future__ import annotations

import functools
from pathlib import Path

import pytest
import zstandard
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from reprocas import _core
from tests.conftest import (
    SMALL,
    Chunks,
    b3,
    cached_random_bytes,
    params,
    random_bytes,
    table_chunks,
    table_ends,
)

# Generating megabytes per example is slow by hypothesis' standards, and intended.
_QUIET = [HealthCheck.too_slow]
FAST = settings(max_examples=150, deadline=None, suppress_health_check=_QUIET)
MEDIUM = settings(max_examples=60, deadline=None, suppress_health_check=_QUIET)
SLOW = settings(max_examples=15, deadline=None, suppress_health_check=_QUIET)
MIN_BLOCK = 64 << 10


# --- strategies ----------------------------------------------------------------------


@st.composite
def chunker_params(draw: st.DrawFn, max_max: int = 16384) -> _core.ChunkerParams:
    min_size = draw(st.integers(64, 2048))
    avg_size = draw(st.integers(min_size, max(min_size, 8192)))
    max_size = draw(st.integers(avg_size, max(avg_size, max_max)))
    seed = draw(st.one_of(st.just(0), st.integers(0, 2**64 - 1)))
    return _core.ChunkerParams(min_size, avg_size, max_size, seed=seed)


@st.composite
def mixed_data(draw: st.DrawFn, max_size: int = 200_000) -> bytes:
    """Random runs, zero runs, repeated patterns and hypothesis' own bytes, concatenated."""
    parts: list[bytes] = []
    total = 0
    for _ in range(draw(st.integers(0, 6))):
        kind = draw(st.sampled_from(["random", "zeros", "pattern", "raw"]))
        n = draw(st.integers(0, max(0, max_size - total)))
        if kind == "random":
            part = random_bytes(n, draw(st.integers(0, 2**32)))
        elif kind == "zeros":
            part = bytes(n)
        elif kind == "pattern":
            unit = draw(st.binary(min_size=1, max_size=300))
            part = (unit * (n // len(unit) + 1))[:n]
        else:
            part = draw(st.binary(max_size=min(n, 2000)))
        parts.append(part)
        total += len(part)
    return b"".join(parts)


def splits(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({min(c, len(data)) for c in cuts})
    pieces: list[bytes] = []
    prev = 0
    for p in points:
        pieces.append(data[prev:p])
        prev = p
    pieces.append(data[prev:])
    return pieces


def stream(
    p: _core.ChunkerParams, pieces: list[bytes], key: bytes | None = None
) -> tuple[Chunks, bytes | None, int | None]:
    s = _core.StreamChunker(p, key=key)
    out: Chunks = []
    for piece in pieces:
        out += s.update(piece)
    out += s.finish()
    return out, s.file_digest, s.size


@functools.cache
def big_base() -> bytes:
    return cached_random_bytes(4 << 20, 2026)


# --- coverage and bounds -------------------------------------------------------------


@FAST
@given(p=chunker_params(), data=mixed_data())
def test_chunks_cover_the_input_within_bounds(p: _core.ChunkerParams, data: bytes) -> None:
    table = _core.chunk_buffer(data, p)
    assert table.size == len(data)
    pos = 0
    for i, (off, n, digest) in enumerate(table_chunks(table)):
        assert off == pos
        assert 0 < n <= p.max_size
        if i + 1 < len(table):
            assert n >= p.min_size
        assert digest == b3(data[off : off + n])
        pos += n
    assert pos == len(data) == sum(table.lengths)
    assert table.file_digest == b3(data)
    # Content-defined: nothing shorter than min_size is ever split.
    if 0 < len(data) <= p.min_size:
        assert table.lengths == [len(data)]


@FAST
@given(p=chunker_params(), data=mixed_data(), suffix=mixed_data(max_size=50_000))
def test_appending_keeps_every_complete_chunk(
    p: _core.ChunkerParams, data: bytes, suffix: bytes
) -> None:
    """Every chunk but the last of ``data`` is a chunk of ``data + suffix`` too: appending
    to a file re-stores at most its old last chunk."""
    before = table_ends(_core.chunk_buffer(data, p))
    after = set(table_ends(_core.chunk_buffer(data + suffix, p)))
    assert set(before[:-1]) <= after


# --- streaming -----------------------------------------------------------------------


@FAST
@given(
    p=chunker_params(),
    data=mixed_data(),
    cuts=st.lists(st.integers(0, 200_000), max_size=20),
    keyed=st.booleans(),
)
def test_stream_equals_chunk_buffer(
    p: _core.ChunkerParams, data: bytes, cuts: list[int], keyed: bool
) -> None:
    key = b3(b"stream key") if keyed else None
    pieces = splits(data, cuts)
    got, digest, size = stream(p, pieces, key)
    table = _core.chunk_buffer(data, p, key=key)
    assert got == table_chunks(table)
    assert digest == table.file_digest == b3(data, key)
    assert size == len(data)


@MEDIUM
@given(p=chunker_params(), data=mixed_data(max_size=20_000), piece=st.integers(1, 97))
def test_stream_with_tiny_reads_equals_chunk_buffer(
    p: _core.ChunkerParams, data: bytes, piece: int
) -> None:
    pieces = [data[i : i + piece] for i in range(0, len(data), piece)]
    got, digest, _ = stream(p, pieces)
    assert got == table_chunks(_core.chunk_buffer(data, p))
    assert digest == b3(data)


# --- files ---------------------------------------------------------------------------

BLOCK_SIZES = [1, 4096, MIN_BLOCK, MIN_BLOCK + 1, 100_000, 1 << 20]


@MEDIUM
@given(
    p=chunker_params(max_max=65536),
    data=mixed_data(max_size=600_000),
    block_size=st.sampled_from(BLOCK_SIZES),
    threads=st.sampled_from([1, 0]),
    keyed=st.booleans(),
)
def test_file_chunker_equals_chunk_buffer(
    tmp_path_factory: pytest.TempPathFactory,
    p: _core.ChunkerParams,
    data: bytes,
    block_size: int,
    threads: int,
    keyed: bool,
) -> None:
    key = b3(b"file key") if keyed else None
    path: Path = tmp_path_factory.mktemp("fc") / "input.bin"
    path.write_bytes(data)
    chunker = _core.FileChunker(path, p, key=key, threads=threads, block_size=block_size)
    got: Chunks = []
    pos = 0
    for batch in chunker:
        assert batch.offset == pos
        got.extend(zip(batch.offsets, batch.lengths, batch.digests, strict=True))
        pos += batch.size
    table = _core.chunk_buffer(data, p, key=key)
    assert got == table_chunks(table)
    assert chunker.file_digest == table.file_digest
    assert chunker.size == len(data)
    one_shot = _core.chunk_file(path, p, key=key, threads=threads)
    assert table_chunks(one_shot) == got
    assert one_shot.file_digest == table.file_digest


# --- the parallel cutter -------------------------------------------------------------


@SLOW
@given(
    size=st.integers(3 << 20, 6 << 20),
    seed=st.integers(0, 2**32),
    zero_runs=st.lists(st.tuples(st.integers(0, 6 << 20), st.integers(1, 40_000)), max_size=6),
    p_seed=st.sampled_from([0, 1, 2**64 - 1]),
    max_size=st.sampled_from([4096, 3000, 4097]),
    split=st.floats(0.6, 1.0),
)
def test_parallel_cutting_equals_serial_cutting(
    tmp_path_factory: pytest.TempPathFactory,
    size: int,
    seed: int,
    zero_runs: list[tuple[int, int]],
    p_seed: int,
    max_size: int,
    split: float,
) -> None:
    # With avg 1 KiB, regions are 1 MiB: 3-6 MiB is 4-6 regions, the parallel path
    # (taken with threads=1 too: one thread steps four regions at once).
    # Zero runs make chains that only resynchronise late (or not at all in a region).
    data = bytearray(random_bytes(size, seed))
    for at, n in zero_runs:
        data[at : at + n] = bytes(len(data[at : at + n]))
    buf = bytes(data)
    p = _core.ChunkerParams(256, 1024, max_size, seed=p_seed)
    # The oracle: StreamChunker fed 256 KiB at a time only ever cuts serially.
    pieces = [buf[i : i + (256 << 10)] for i in range(0, len(buf), 256 << 10)]
    serial = stream(p, pieces)[0]
    assert table_chunks(_core.chunk_buffer(buf, p, threads=1)) == serial
    assert table_chunks(_core.chunk_buffer(buf, p, threads=0)) == serial
    # Parallel cutting of input that is not the end (a huge update), then the rest.
    k = int(len(buf) * split)
    assert stream(p, [buf])[0] == serial
    assert stream(p, [buf[:k], buf[k:]])[0] == serial
    path = tmp_path_factory.mktemp("par") / "input.bin"
    path.write_bytes(buf)
    assert table_chunks(_core.chunk_file(path, p, threads=1)) == serial
    assert table_chunks(_core.chunk_file(path, p, threads=0)) == serial


# --- dedup stability -----------------------------------------------------------------


@SLOW
@given(
    at=st.integers(0, 8192),
    inserted=st.binary(min_size=1, max_size=64),
    sizes=st.sampled_from([SMALL, (2048, 8192, 32768), (16384, 32768, 131072)]),
)
def test_small_insertion_keeps_most_chunks(
    at: int, inserted: bytes, sizes: tuple[int, int, int]
) -> None:
    base = big_base()
    edited = base[:at] + inserted + base[at:]
    p = params(sizes)
    before = _core.chunk_buffer(base, p)
    after = _core.chunk_buffer(edited, p)
    after_digests = set(after.digests)
    kept = sum(d in after_digests for d in before.digests)
    assert kept >= 0.9 * len(before), (kept, len(before))
    # Chunks that end before the edit cannot have changed at all.
    prefix = [c for c in table_chunks(before) if c[0] + c[1] <= at]
    assert table_chunks(after)[: len(prefix)] == prefix


@SLOW
@given(at=st.integers(0, (4 << 20) - 100), n=st.integers(1, 100))
def test_small_overwrite_in_the_middle_keeps_most_chunks(at: int, n: int) -> None:
    base = big_base()
    edited = base[:at] + bytes(b ^ 0x5A for b in base[at : at + n]) + base[at + n :]
    assume(edited != base)
    before = _core.chunk_buffer(base, params(SMALL))
    after = _core.chunk_buffer(edited, params(SMALL))
    after_digests = set(after.digests)
    changed = sum(d not in after_digests for d in before.digests)
    assert 1 <= changed <= 0.1 * len(before)
    prefix = [c for c in table_chunks(before) if c[0] + c[1] <= at]
    assert table_chunks(after)[: len(prefix)] == prefix
    # The chunks of the edited file cover it: the new ones are the edited region's.
    assert after.size == len(base) and after.file_digest == b3(edited)


# --- frames --------------------------------------------------------------------------


@functools.cache
def text_batch_data() -> bytes:
    rows = [
        f"{i},sample-{i % 331:03d},{(i * 2654435761) % 100003},{'ok' if i % 7 else 'retry'}\n"
        for i in range(9000)
    ]
    return "".join(rows).encode()


@MEDIUM
@given(
    picks=st.lists(st.booleans(), min_size=1, max_size=400),
    frame_size=st.sampled_from([0, 1, 1000, 4096, 10_000, 65536, 1 << 20]),
    level=st.sampled_from([-3, 1, 3]),
)
def test_batch_compress_frames(
    tmp_path_factory: pytest.TempPathFactory, picks: list[bool], frame_size: int, level: int
) -> None:
    data = text_batch_data()
    path = tmp_path_factory.mktemp("frames") / "rows.csv"
    path.write_bytes(data)
    [batch] = list(_core.FileChunker(path, params(SMALL), threads=1))
    indices = [i for i, keep in enumerate(picks[: len(batch)]) if keep]
    frames = batch.compress(indices, level=level, frame_size=frame_size)
    # Every index once, in order, each frame a run of consecutive indices.
    assert [i for f in frames for i in range(f[2], f[2] + f[3])] == indices
    wanted = set(indices)
    for k, (codec, payload, first, count, raw_len) in enumerate(frames):
        assert count >= 1
        assert raw_len == sum(batch.lengths[first : first + count])
        if frame_size == 0:
            assert count == 1
        else:
            assert count == 1 or raw_len <= frame_size
        start = batch.offsets[first]
        raw = data[start : start + raw_len]
        assert raw == b"".join(batch.chunk(i) for i in range(first, first + count))
        if codec == _core.CODEC_RAW:
            assert payload == raw
        else:
            assert codec == _core.CODEC_ZSTD
            assert zstandard.ZstdDecompressor().decompress(payload, max_output_size=raw_len) == raw
        # Frames are as large as allowed: the next chosen chunk starts a new frame only
        # because it is not consecutive or would not fit.
        nxt = first + count
        if frame_size > 0 and k + 1 < len(frames) and nxt in wanted:
            assert raw_len + batch.lengths[nxt] > frame_size
    items = [(f[0], f[1], f[4]) for f in frames]
    decoded = _core.decompress_chunks(items)
    assert decoded == [data[batch.offsets[f[2]] : batch.offsets[f[2]] + f[4]] for f in frames]
