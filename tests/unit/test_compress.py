"""zstd compression in the core, cross-checked with the PyPI ``zstandard`` package."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import zstandard

from reprocas import _core
from tests.conftest import RandBytes

RAW = _core.CODEC_RAW
ZSTD = _core.CODEC_ZSTD


def zstd_decode(payload: bytes, raw_len: int) -> bytes:
    return bytes(zstandard.ZstdDecompressor().decompress(payload, max_output_size=raw_len))


def text(n: int) -> bytes:
    line = b"2026-11-25,site-7,patient-000123,measurement,42.17,ok\n"
    return (line * (n // len(line) + 1))[:n]


def test_codec_constants() -> None:
    assert RAW != ZSTD
    assert {RAW, ZSTD} == {0, 1}


@pytest.mark.parametrize("level", [-7, -1, 1, 3, 9, 19, 22])
def test_compressible_chunks_are_zstd_frames_the_zstandard_package_decodes(level: int) -> None:
    chunks = [text(n) for n in (100, 1000, 4096, 70_000, 300_000)]
    out = _core.compress_chunks(chunks, level=level)
    assert len(out) == len(chunks)
    for chunk, (codec, payload) in zip(chunks, out, strict=True):
        assert type(payload) is bytes
        if codec == RAW:  # the fastest levels may not shrink a tiny chunk
            assert len(chunk) < 4096 and payload == chunk
            continue
        assert codec == ZSTD
        assert len(payload) < len(chunk)
        assert zstd_decode(payload, len(chunk)) == chunk


def test_incompressible_chunks_are_stored_raw(rand_bytes: RandBytes) -> None:
    chunks = [rand_bytes(n, n) for n in (1, 10, 1000, 65536)]
    out = _core.compress_chunks(chunks)
    for chunk, (codec, payload) in zip(chunks, out, strict=True):
        assert codec == RAW
        assert payload == chunk


def test_empty_chunk_is_raw_and_empty() -> None:
    assert _core.compress_chunks([b""]) == [(RAW, b"")]
    assert _core.decompress_chunks([(RAW, b"", 0)]) == [b""]


def test_no_chunks() -> None:
    assert _core.compress_chunks([]) == []
    assert _core.decompress_chunks([]) == []


@pytest.mark.parametrize("threads", [1, 2, 0])
def test_round_trip_keeps_order(threads: int, rand_bytes: RandBytes) -> None:
    # Mixed compressible and incompressible chunks of varied sizes, many more than
    # threads, so that parallel results must be put back in order.
    chunks = [
        text(500 + 37 * i) if i % 3 else rand_bytes(300 + 11 * i, i) + text(100) for i in range(300)
    ]
    out = _core.compress_chunks(chunks, threads=threads)
    codecs = {codec for codec, _ in out}
    assert codecs == {RAW, ZSTD}
    items = [
        (codec, payload, len(chunk)) for chunk, (codec, payload) in zip(chunks, out, strict=True)
    ]
    assert _core.decompress_chunks(items, threads=threads) == chunks
    for chunk, (codec, payload) in zip(chunks, out, strict=True):
        if codec == RAW:
            assert payload == chunk
        else:
            assert zstd_decode(payload, len(chunk)) == chunk


def test_compress_accepts_any_iterable_of_buffers() -> None:
    data = text(10_000)

    def gen() -> Iterator[Any]:
        yield data
        yield bytearray(data)
        yield memoryview(data)[1000:9000]

    out = _core.compress_chunks(gen())
    assert [zstd_decode(p, n) for (_, p), n in zip(out, (10_000, 10_000, 8000), strict=True)] == [
        data,
        data,
        data[1000:9000],
    ]


def test_decompress_accepts_buffers_and_tuples_of_any_sequence_type() -> None:
    data = text(5000)
    [(codec, payload)] = _core.compress_chunks([data])
    out = _core.decompress_chunks(
        [(codec, bytearray(payload), len(data)), (codec, memoryview(payload), len(data))]
    )
    assert out == [data, data]
    assert all(type(b) is bytes for b in out)


@pytest.mark.parametrize(
    "make",
    [
        lambda d: zstandard.ZstdCompressor(level=3).compress(d),
        lambda d: zstandard.ZstdCompressor(level=19, write_checksum=True).compress(d),
        lambda d: zstandard.ZstdCompressor(write_content_size=False).compress(d),
        lambda d: zstandard.ZstdCompressor(level=-5).compress(d),
    ],
    ids=["level3", "level19-checksum", "no-content-size", "negative-level"],
)
def test_payload_made_by_zstandard_decodes_in_the_core(make: Any) -> None:
    data = text(200_000)
    payload = make(data)
    assert _core.decompress_chunks([(ZSTD, payload, len(data))]) == [data]


def test_streamed_zstandard_frame_decodes_in_the_core() -> None:
    # A frame written in pieces by a streaming compressor has no content size.
    data = text(300_000)
    cobj = zstandard.ZstdCompressor().compressobj()
    payload = b"".join(cobj.compress(data[i : i + 7000]) for i in range(0, len(data), 7000))
    payload += cobj.flush()
    assert _core.decompress_chunks([(ZSTD, payload, len(data))]) == [data]


def test_level_is_honoured(rand_bytes: RandBytes) -> None:
    # Word-like text: the strongest levels find much more than the fastest.
    words = [rand_bytes(3 + i % 7, i).hex().encode() for i in range(3000)]
    order = rand_bytes(100_000, 99)
    data = b" ".join(words[(order[i] * 256 + order[i + 1]) % 3000] for i in range(0, 99_998, 2))
    sizes = {}
    for level in (-7, 1, 19):
        [(codec, payload)] = _core.compress_chunks([data], level=level)
        assert codec == ZSTD
        assert zstd_decode(payload, len(data)) == data
        sizes[level] = len(payload)
    assert sizes[19] < sizes[1] < sizes[-7]
