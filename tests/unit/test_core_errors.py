"""Every error the native core raises: its class (from reprocas.errors) and message."""

from __future__ import annotations

import ctypes
import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import zstandard

from reprocas import _core
from reprocas.errors import (
    CorruptDataError,
    IntegrityError,
    InvalidParameterError,
    ReprocasError,
    SourceError,
    SourceIsDirectoryError,
    SourceNotFoundError,
    UsageError,
)
from tests.conftest import SMALL, RandBytes, params

P = _core.ChunkerParams
WriteFile = Callable[[bytes], Path]


def text(n: int) -> bytes:
    line = b"id,name,value\n1,alpha,0.5\n2,beta,0.25\n"
    return (line * (n // len(line) + 1))[:n]


def a_batch(tmp_path: Path, data: bytes | None = None) -> _core.ChunkBatch:
    path = tmp_path / "batch.bin"
    path.write_bytes(text(50_000) if data is None else data)
    [batch] = list(_core.FileChunker(path, params(SMALL), threads=1))
    return batch


# --- ChunkerParams -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("sizes", "words"),
    [
        ((0, 1024, 4096), ["positive", "min=0"]),
        ((256, 0, 4096), ["positive", "avg=0"]),
        ((256, 1024, 0), ["positive", "max=0"]),
        ((-1, 1024, 4096), ["min", "positive", "-1"]),
        ((256, -1024, 4096), ["avg", "positive", "-1024"]),
        ((256, 1024, -4096), ["max", "positive", "-4096"]),
        ((2048, 1024, 4096), ["min", "2048", "avg", "1024"]),
        ((256, 8192, 4096), ["avg", "8192", "max", "4096"]),
        ((63, 1024, 4096), ["63", "64"]),
        ((16, 16, 16), ["16", "64"]),
        ((256, 1024, (64 << 20) + 1), [str((64 << 20) + 1), str(64 << 20)]),
    ],
    ids=[
        "min0",
        "avg0",
        "max0",
        "min-neg",
        "avg-neg",
        "max-neg",
        "min>avg",
        "avg>max",
        "min<64",
        "all16",
        "max>64MiB",
    ],
)
def test_bad_chunker_params(sizes: tuple[int, int, int], words: list[str]) -> None:
    with pytest.raises(InvalidParameterError) as info:
        P(*sizes)
    err = info.value
    assert isinstance(err, ValueError)
    assert isinstance(err, UsageError) and isinstance(err, ReprocasError)
    assert err.exit_code == 2
    message = str(err)
    assert message == err.message
    for word in words:
        assert word in message, (word, message)


# --- sources -------------------------------------------------------------------------

SOURCE_CALLS: list[tuple[str, Callable[[Path], Any]]] = [
    ("chunk_file", lambda path: _core.chunk_file(path, params(SMALL))),
    ("chunk_file-threads1", lambda path: _core.chunk_file(path, params(SMALL), threads=1)),
    ("FileChunker", lambda path: list(_core.FileChunker(path, params(SMALL)))),
    ("FileChunker-threads1", lambda path: list(_core.FileChunker(path, params(SMALL), threads=1))),
]
source_calls = pytest.mark.parametrize(
    "call", [c for _, c in SOURCE_CALLS], ids=[name for name, _ in SOURCE_CALLS]
)


@source_calls
def test_missing_source(call: Callable[[Path], Any], tmp_path: Path) -> None:
    path = tmp_path / "no such dir" / "missing.csv"
    with pytest.raises(SourceNotFoundError) as info:
        call(path)
    err = info.value
    assert isinstance(err, FileNotFoundError) and isinstance(err, SourceError)
    assert isinstance(err, ReprocasError)
    assert str(path) in str(err)
    assert err.fields["path"] == str(path)
    assert err.exit_code == 3


CHILD = """
import json, sys
from reprocas import _core
from reprocas.errors import ReprocasError
p = _core.ChunkerParams(256, 1024, 4096)
calls = {
    "chunk_file": lambda: _core.chunk_file(sys.argv[1], p),
    "chunk_file-threads1": lambda: _core.chunk_file(sys.argv[1], p, threads=1),
    "FileChunker": lambda: list(_core.FileChunker(sys.argv[1], p)),
    "FileChunker-threads1": lambda: list(_core.FileChunker(sys.argv[1], p, threads=1)),
}
out = {}
for name, call in calls.items():
    try:
        call()
        out[name] = ["no error", ""]
    except Exception as e:
        flags = [isinstance(e, PermissionError), isinstance(e, ReprocasError)]
        out[name] = [type(e).__name__, str(e), *flags]
print(json.dumps(out))
"""


def test_unreadable_source(tmp_path: Path) -> None:
    """A mode-000 file gives SourcePermissionError from every call that reads a file.

    The calls run in a child process; as root, that child's capability bounding set
    lacks CAP_DAC_OVERRIDE and CAP_DAC_READ_SEARCH, so root obeys file modes like any
    other user and the case runs (instead of being skipped) wherever the suite runs."""
    path = tmp_path / "secret.bin"
    path.write_bytes(b"x" * 1000)
    path.chmod(0)
    libc = ctypes.CDLL(None, use_errno=True)

    def drop_dac_capabilities() -> None:
        if os.geteuid() != 0:
            return
        pr_capbset_drop, cap_dac_override, cap_dac_read_search = 24, 1, 2
        for cap in (cap_dac_override, cap_dac_read_search):
            if libc.prctl(pr_capbset_drop, cap, 0, 0, 0) != 0:
                raise OSError(ctypes.get_errno(), "prctl(PR_CAPBSET_DROP)")

    proc = subprocess.run(
        [sys.executable, "-c", CHILD, str(path)],
        capture_output=True,
        text=True,
        preexec_fn=drop_dac_capabilities,
        cwd=str(Path(__file__).parents[2]),
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    results = json.loads(proc.stdout)
    for name, (cls, message, *flags) in results.items():
        assert cls == "SourcePermissionError", (name, cls, message)
        assert str(path) in message and "permission" in message.lower(), (name, message)
        assert flags == [True, True], name


@source_calls
def test_directory_source(call: Callable[[Path], Any], tmp_path: Path) -> None:
    with pytest.raises(SourceIsDirectoryError) as info:
        call(tmp_path)
    err = info.value
    assert isinstance(err, IsADirectoryError) and isinstance(err, ReprocasError)
    assert str(tmp_path) in str(err)
    assert "directory" in str(err)
    assert err.fields["path"] == str(tmp_path)


# --- keys ----------------------------------------------------------------------------

BAD_KEYS = [b"", b"k", bytes(16), bytes(31), bytes(33), bytes(64)]
KEY_CALLS: list[tuple[str, Callable[[bytes, Path], Any]]] = [
    ("blake3_digest", lambda k, _: _core.blake3_digest(b"abc", key=k)),
    ("chunk_buffer", lambda k, _: _core.chunk_buffer(b"abc" * 1000, params(SMALL), key=k)),
    ("chunk_file", lambda k, path: _core.chunk_file(path, params(SMALL), key=k)),
    ("FileChunker", lambda k, path: _core.FileChunker(path, params(SMALL), key=k)),
    ("StreamChunker", lambda k, _: _core.StreamChunker(params(SMALL), key=k)),
]


@pytest.mark.parametrize("key", BAD_KEYS, ids=[f"len{len(k)}" for k in BAD_KEYS])
@pytest.mark.parametrize("call", [c for _, c in KEY_CALLS], ids=[n for n, _ in KEY_CALLS])
def test_key_of_wrong_length(
    call: Callable[[bytes, Path], Any], key: bytes, tmp_path: Path
) -> None:
    path = tmp_path / "input.bin"
    path.write_bytes(b"abc" * 1000)
    with pytest.raises(InvalidParameterError) as info:
        call(key, path)
    assert isinstance(info.value, ReprocasError)
    message = str(info.value)
    assert "32 bytes" in message and f"got {len(key)}" in message


# --- compression levels --------------------------------------------------------------

BAD_LEVELS = [0, 99, 23, -8, -1000]


@pytest.mark.parametrize("level", BAD_LEVELS)
def test_bad_level_in_compress_chunks(level: int) -> None:
    for chunks in ([b"abc" * 100], []):
        with pytest.raises(InvalidParameterError) as info:
            _core.compress_chunks(chunks, level=level)
        assert isinstance(info.value, ReprocasError)
        assert str(level) in str(info.value) and "level" in str(info.value)


@pytest.mark.parametrize("level", BAD_LEVELS)
def test_bad_level_in_batch_compress(level: int, tmp_path: Path) -> None:
    batch = a_batch(tmp_path)
    with pytest.raises(InvalidParameterError) as info:
        batch.compress([0, 1], level=level)
    assert str(level) in str(info.value) and "level" in str(info.value)


# --- corrupt payloads ----------------------------------------------------------------


def zstd_payload(data: bytes) -> bytes:
    [(codec, payload)] = _core.compress_chunks([data])
    assert codec == _core.CODEC_ZSTD
    return payload


def assert_corrupt(items: list[tuple[int, Any, int]], *words: str) -> CorruptDataError:
    with pytest.raises(CorruptDataError) as info:
        _core.decompress_chunks(items)
    err = info.value
    assert isinstance(err, IntegrityError) and isinstance(err, ReprocasError)
    assert err.exit_code == 6
    for word in words:
        assert word in str(err), (word, str(err))
    return err


@pytest.mark.parametrize("cut", [1, 4, 10, -1, -5], ids=lambda c: f"truncate{c}")
def test_truncated_zstd_payload(cut: int) -> None:
    data = text(20_000)
    payload = zstd_payload(data)
    assert_corrupt([(_core.CODEC_ZSTD, payload[:cut], len(data))], "corrupt")


def test_empty_zstd_payload() -> None:
    assert_corrupt([(_core.CODEC_ZSTD, b"", 10)])


@pytest.mark.parametrize("position", [0, 1, 2, 3], ids=lambda p: f"magic{p}")
def test_flipped_magic_number(position: int) -> None:
    data = text(20_000)
    payload = bytearray(zstd_payload(data))
    payload[position] ^= 0xFF
    assert_corrupt([(_core.CODEC_ZSTD, bytes(payload), len(data))], "corrupt")


def test_not_a_zstd_frame_at_all(rand_bytes: RandBytes) -> None:
    assert_corrupt([(_core.CODEC_ZSTD, rand_bytes(500, 1), 1000)], "corrupt")


def test_every_single_byte_flip_is_detected_or_harmless() -> None:
    # Without a checksum zstd cannot notice every flip; the contract is only that the
    # output has exactly raw_len bytes or CorruptDataError is raised (never a crash,
    # another exception, or output of another length).
    data = text(3000)
    payload = zstd_payload(data)
    detected = 0
    for i in range(len(payload)):
        for mask in (0x01, 0x80, 0xFF):
            bad = bytearray(payload)
            bad[i] ^= mask
            try:
                [out] = _core.decompress_chunks([(_core.CODEC_ZSTD, bytes(bad), len(data))])
            except CorruptDataError:
                detected += 1
            else:
                assert len(out) == len(data)
    assert detected > 0


def test_trailing_garbage_after_frame() -> None:
    data = text(20_000)
    payload = zstd_payload(data) + b"garbage!"
    assert_corrupt([(_core.CODEC_ZSTD, payload, len(data))])


@pytest.mark.parametrize("delta", [-1, 1, -1000, 5000])
def test_zstd_payload_with_wrong_raw_len(delta: int) -> None:
    data = text(20_000)
    payload = zstd_payload(data)
    assert_corrupt([(_core.CODEC_ZSTD, payload, len(data) + delta)], "corrupt")


@pytest.mark.parametrize("delta", [-1, 1, -100])
def test_zstandard_frame_without_content_size_and_wrong_raw_len(delta: int) -> None:
    data = text(20_000)
    payload = zstandard.ZstdCompressor(write_content_size=False).compress(data)
    assert_corrupt([(_core.CODEC_ZSTD, payload, len(data) + delta)])


def test_zero_raw_len_for_a_real_frame() -> None:
    data = text(20_000)
    assert_corrupt([(_core.CODEC_ZSTD, zstd_payload(data), 0)])


HUGE_RAW_LEN_CHILD = """
import sys
from reprocas import _core
[(codec, payload)] = _core.compress_chunks([b"id,name,value\\n" * 1000])
try:
    _core.decompress_chunks([(codec, payload, int(sys.argv[1]))])
    print("no error")
except BaseException as e:
    print(type(e).__name__, str(e)[:300])
"""


@pytest.mark.parametrize(
    "raw_len", [2**40, 2**62, 2**63, 2**64 - 1], ids=["2^40", "2^62", "2^63", "2^64-1"]
)
def test_zstd_payload_with_absurd_raw_len(raw_len: int) -> None:
    """A damaged raw_len (it comes from stored metadata) must be CorruptDataError, not an
    allocation of raw_len bytes that aborts the process or panics. Run in a child
    process, because an abort would take the test runner down with it."""
    proc = subprocess.run(
        [sys.executable, "-c", HUGE_RAW_LEN_CHILD, str(raw_len)],
        capture_output=True,
        text=True,
        cwd=str(Path(__file__).parents[2]),
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, (
        f"decompress_chunks with raw_len={raw_len} killed the process "
        f"(exit status {proc.returncode}): {proc.stderr.strip().splitlines()[:2]}"
    )
    assert proc.stdout.startswith("CorruptDataError"), proc.stdout


@pytest.mark.parametrize("delta", [-1, 1])
def test_raw_payload_with_wrong_raw_len(delta: int) -> None:
    assert_corrupt([(_core.CODEC_RAW, b"abcdef", 6 + delta)], "corrupt", "6")


@pytest.mark.parametrize("codec", [2, 3, 7, 255])
def test_unknown_codec(codec: int) -> None:
    assert_corrupt([(codec, b"abcdef", 6)], "codec", str(codec))


@pytest.mark.parametrize("codec", [256, -1, 2**70])
def test_codec_outside_a_byte_is_an_unknown_codec(codec: int) -> None:
    # Still an unknown codec: the core's own error, not a bare OverflowError.
    assert_corrupt([(codec, b"abcdef", 6)])


def test_negative_raw_len_is_a_reprocas_error() -> None:
    with pytest.raises(ReprocasError):
        _core.decompress_chunks([(_core.CODEC_RAW, b"abcdef", -6)])


def test_one_bad_item_fails_the_whole_call() -> None:
    data = text(20_000)
    good = (_core.CODEC_ZSTD, zstd_payload(data), len(data))
    items = [good] * 20 + [(_core.CODEC_RAW, b"abc", 4)] + [good] * 20
    assert_corrupt(items)


# --- ChunkBatch ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("indices", "words"),
    [
        ([0, 0], ["increasing"]),
        ([1, 0], ["increasing"]),
        ([0, 2, 1], ["increasing"]),
        ([0, 1, 1, 2], ["increasing"]),
        (["len"], ["out of range", "len"]),
        ([0, "len"], ["out of range"]),
        ([10**6], ["out of range", "1000000"]),
    ],
    ids=[
        "dup0",
        "decreasing",
        "unsorted",
        "dup-mid",
        "one-past-end",
        "past-end-after-valid",
        "far",
    ],
)
def test_bad_indices_in_batch_compress(
    indices: list[Any], words: list[str], tmp_path: Path
) -> None:
    batch = a_batch(tmp_path)
    n = len(batch)
    resolved = [n if i == "len" else i for i in indices]
    for frame_size in (0, 1 << 20):
        with pytest.raises(InvalidParameterError) as info:
            batch.compress(resolved, frame_size=frame_size)
        assert isinstance(info.value, ReprocasError)
        for word in words:
            assert (str(n) if word == "len" else word) in str(info.value)


@pytest.mark.parametrize("indices", [[-1], [0, -1]], ids=["-1", "0,-1"])
def test_negative_index_in_batch_compress(indices: list[int], tmp_path: Path) -> None:
    # A negative index is out of range too: it must be the core's own error, not a
    # bare OverflowError from the int conversion.
    batch = a_batch(tmp_path)
    with pytest.raises(InvalidParameterError):
        batch.compress(indices)


def test_batch_chunk_index_out_of_range(tmp_path: Path) -> None:
    batch = a_batch(tmp_path)
    n = len(batch)
    with pytest.raises(InvalidParameterError) as info:
        batch.chunk(n)
    assert "out of range" in str(info.value) and str(n) in str(info.value)
    assert isinstance(info.value, ReprocasError)


# --- StreamChunker -------------------------------------------------------------------


def test_stream_update_after_finish() -> None:
    s = _core.StreamChunker(params(SMALL))
    s.update(b"x" * 10_000)
    s.finish()
    digest, size = s.file_digest, s.size
    with pytest.raises(InvalidParameterError) as info:
        s.update(b"more")
    assert isinstance(info.value, ReprocasError)
    assert "finished" in str(info.value)
    # The failed call changed nothing.
    assert (s.file_digest, s.size) == (digest, size)


def test_stream_finish_twice() -> None:
    s = _core.StreamChunker(params(SMALL))
    s.update(b"x" * 10_000)
    s.finish()
    with pytest.raises(InvalidParameterError) as info:
        s.finish()
    assert "finished" in str(info.value)
    with pytest.raises(InvalidParameterError):
        s.update(b"")


# --- buffers -------------------------------------------------------------------------


def test_non_contiguous_buffer() -> None:
    strided = memoryview(bytes(range(100)))[::2]
    calls: list[Callable[[], Any]] = [
        lambda: _core.blake3_digest(strided),
        lambda: _core.chunk_buffer(strided, params(SMALL)),
        lambda: _core.StreamChunker(params(SMALL)).update(strided),
        lambda: _core.compress_chunks([strided]),
    ]
    for call in calls:
        with pytest.raises(InvalidParameterError) as info:
            call()
        assert "contiguous" in str(info.value)


def test_not_a_buffer() -> None:
    calls: list[Callable[[], Any]] = [
        lambda: _core.blake3_digest("text"),  # type: ignore[arg-type]
        lambda: _core.chunk_buffer(12345, params(SMALL)),  # type: ignore[arg-type]
        lambda: _core.StreamChunker(params(SMALL)).update([1, 2, 3]),  # type: ignore[arg-type]
        lambda: _core.compress_chunks(["text"]),  # type: ignore[list-item]
    ]
    for call in calls:
        with pytest.raises(InvalidParameterError) as info:
            call()
        assert "bytes-like" in str(info.value)
