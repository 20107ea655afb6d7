"""Properties of ``Repo.open``: seekable, verified random access to a stored file.

One repository (small chunks, 16 KiB frames, 256 KiB packs) holds a multi-MB file of
mixed content: random runs (stored raw), text (zstd frames) and zero runs (the same
chunk at many file offsets). Hypothesis reads random ``(offset, length)`` pairs,
biased towards chunk and frame boundaries, and compares them with the original bytes.
"""

from __future__ import annotations

import bisect
import io
import random
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import pyarrow.fs as pafs
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import reprocas
from reprocas.errors import PathNotInVersionError
from reprocas.model.chunking import ChunkingConfig, CompressionConfig
from reprocas.store.checkout import find_entry
from reprocas.store.reader import FrameCache, StoreFile
from reprocas.tabular.fs import VersionFileSystem
from tests.conftest import random_bytes
from tests.golden.regenerate import csv_table

SETTINGS = settings(
    max_examples=120,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
FEW = settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)

REF = "blobs@v1"


def _mixed_file() -> bytes:
    """About 6 MiB: random, text, zeros, random, a repeated text block, random tail."""
    text = csv_table(20_000)[: 1 << 20]
    parts = [
        random_bytes(1_500_000, 11),
        text,
        bytes(700_000),
        random_bytes(1_000_000, 12),
        text[:300_000] * 3,
        random_bytes(777_777, 13),
    ]
    return b"".join(parts)


@dataclass(frozen=True)
class Stored:
    repo: reprocas.Repo
    data: dict[str, bytes] = field(repr=False)
    chunk_starts: dict[str, list[int]] = field(repr=False)
    """File offsets where a chunk starts."""
    frame_starts: dict[str, list[int]] = field(repr=False)
    """File offsets where the chunk that begins a new frame starts."""


def _layout(repo: reprocas.Repo, path: str) -> tuple[list[int], list[int]]:
    store = repo.store
    with store.index.read() as txn:
        entry = find_entry(store, txn, store.resolve(txn, REF), path)
        manifest = store.entry_manifest(txn, entry)
        chunk_starts: list[int] = []
        frame_starts: list[int] = []
        offset = 0
        prev_frame: tuple[bytes, int] | None = None
        for digest, length in manifest.chunks:
            loc = store.index.get_chunk(txn, digest)
            assert loc is not None
            chunk_starts.append(offset)
            if loc.frame_key != prev_frame:
                frame_starts.append(offset)
            prev_frame = loc.frame_key
            offset += length
    return chunk_starts, frame_starts


@pytest.fixture(scope="module")
def stored(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stored]:
    base = tmp_path_factory.mktemp("storefile")
    src = base / "src"
    src.mkdir()
    data = {
        "mixed.bin": _mixed_file(),
        "small.bin": random_bytes(5000, 21),
        "one.bin": b"x",
        "empty.bin": b"",
    }
    for name, content in data.items():
        (src / name).write_bytes(content)
    repo = reprocas.Repo.init(
        base / "repo",
        chunking=ChunkingConfig(1024, 4096, 16384),
        compression=CompressionConfig(frame_size=16 << 10),
        pack_size=256 << 10,
    )
    try:
        assert repo.commit(src, "blobs").ref == REF
        starts = {name: _layout(repo, name) for name in data}
        yield Stored(
            repo,
            data,
            {n: s[0] for n, s in starts.items()},
            {n: s[1] for n, s in starts.items()},
        )
    finally:
        repo.close()


def test_the_big_file_really_spans_many_chunks_frames_and_packs(stored: Stored) -> None:
    """The premise of the properties below: boundaries exist to be crossed."""
    assert len(stored.data["mixed.bin"]) > 5 << 20
    assert len(stored.chunk_starts["mixed.bin"]) > 500
    assert len(stored.frame_starts["mixed.bin"]) > 100
    with stored.repo.open(REF, "mixed.bin") as f:
        assert isinstance(f, StoreFile)
        packs = {c.loc.pack for c in f._chunks}
        codecs = {c.loc.codec for c in f._chunks}
    assert len(packs) > 5, "the 256 KiB pack size should spread the file over many packs"
    assert len(codecs) == 2, "random runs are stored raw, text compressed"


@st.composite
def spans(draw: st.DrawFn, stored: Stored, name: str) -> tuple[int, int]:
    """An (offset, length) pair: anywhere, or a few bytes around a chunk or frame
    boundary, with lengths from 0 to about a MiB (and some past the end)."""
    size = len(stored.data[name])
    where = draw(st.sampled_from(["anywhere", "chunk", "frame", "end"]))
    if where == "anywhere" or size == 0:
        offset = draw(st.integers(0, size + 100))
    elif where == "end":
        offset = draw(st.integers(max(0, size - 20), size + 20))
    else:
        starts = stored.chunk_starts[name] if where == "chunk" else stored.frame_starts[name]
        offset = max(0, draw(st.sampled_from(starts)) + draw(st.integers(-3, 3)))
    length = draw(
        st.one_of(
            st.integers(0, 8),
            st.integers(0, 40_000),
            st.integers(0, 1_200_000),
            st.just(size + 10),
        )
    )
    return offset, length


NAMES = ["mixed.bin", "small.bin", "one.bin", "empty.bin"]


@pytest.mark.parametrize("name", NAMES)
@SETTINGS
@given(data=st.data())
def test_seek_read_and_pread_equal_the_original(
    stored: Stored, name: str, data: st.DataObject
) -> None:
    original = stored.data[name]
    with stored.repo.open(REF, name) as f:
        for _ in range(3):
            offset, length = data.draw(spans(stored, name))
            want = original[offset : offset + length]
            assert f.pread(offset, length) == want
            assert f.seek(offset) == offset
            assert f.tell() == offset
            got = f.read(length)
            assert got == want
            assert f.tell() == offset + len(want)


@SETTINGS
@given(data=st.data())
def test_reads_across_chunk_and_frame_boundaries(stored: Stored, data: st.DataObject) -> None:
    """Reads that start just before a boundary and end just after another one."""
    original = stored.data["mixed.bin"]
    starts = stored.frame_starts["mixed.bin"] + stored.chunk_starts["mixed.bin"]
    a = data.draw(st.sampled_from(starts))
    b = data.draw(st.sampled_from(starts))
    lo, hi = min(a, b), max(a, b)
    lo = max(0, lo - data.draw(st.integers(0, 5)))
    hi += data.draw(st.integers(0, 5))
    with stored.repo.open(REF, "mixed.bin") as f:
        assert f.pread(lo, hi - lo) == original[lo:hi]
        f.seek(lo)
        buf = bytearray(hi - lo)
        n = f.readinto(buf)
        assert n == len(original[lo:hi])
        assert bytes(buf[:n]) == original[lo:hi]


@SETTINGS
@given(data=st.data())
def test_sequential_reads_of_random_sizes_rebuild_the_file(
    stored: Stored, data: st.DataObject
) -> None:
    """Consecutive read(n) calls (with seek(SEEK_CUR) skips) walk the file exactly."""
    original = stored.data["mixed.bin"]
    pos = data.draw(st.integers(0, len(original)))
    with stored.repo.open(REF, "mixed.bin") as f:
        f.seek(pos)
        for _ in range(6):
            if data.draw(st.booleans()):
                skip = data.draw(st.integers(-5000, 50_000))
                if pos + skip < 0:
                    skip = -pos
                pos = f.seek(skip, io.SEEK_CUR)
            n = data.draw(st.integers(0, 300_000))
            assert f.read(n) == original[pos : pos + n]
            pos = min(len(original), pos + n) if pos < len(original) else pos
            assert f.tell() == pos


@FEW
@given(offset=st.integers(0, 4096), extra=st.integers(0, 10))
def test_reading_at_or_past_the_end_returns_nothing(
    stored: Stored, offset: int, extra: int
) -> None:
    for name, original in stored.data.items():
        size = len(original)
        with stored.repo.open(REF, name) as f:
            assert f.pread(size + offset, 10 + extra) == b""
            assert f.seek(size + offset) == size + offset
            assert f.read(10 + extra) == b""
            assert f.read() == b""
            assert f.tell() == size + offset
            # SEEK_END positions relative to the end; reading the tail gives the tail.
            back = min(size, extra)
            f.seek(-back, io.SEEK_END)
            assert f.read() == original[size - back :]


def test_whole_file_read_readall_and_buffered_reader(stored: Stored) -> None:
    for name, original in stored.data.items():
        with stored.repo.open(REF, name) as f:
            assert f.size == len(original)
            assert f.readable() and f.seekable()
            assert f.read() == original
            f.seek(0)
            assert f.readall() == original
        with io.BufferedReader(stored.repo.open(REF, name), buffer_size=7919) as bf:
            assert bf.read(12345) == original[:12345]
            bf.seek(len(original) // 2)
            assert bf.read() == original[len(original) // 2 :]


def test_invalid_use_is_an_error(stored: Stored) -> None:
    f = stored.repo.open(REF, "mixed.bin")
    with pytest.raises(ValueError):
        f.seek(-1)
    with pytest.raises(ValueError):
        f.seek(0, 7)
    f.close()
    with pytest.raises(ValueError):
        f.pread(0, 10)
    with pytest.raises(ValueError):
        f.read(10)


# --- the frame cache -----------------------------------------------------------------


class CountingCache(FrameCache):
    """A FrameCache that records which frames were decoded (put) and how often."""

    def __init__(self, budget: int) -> None:
        super().__init__(budget)
        self.decoded: list[tuple[bytes, int]] = []

    def put(self, key: tuple[bytes, int], data: bytes) -> None:
        self.decoded.append(key)
        super().put(key, data)


def _store_file(stored: Stored, name: str, cache: FrameCache) -> StoreFile:
    store = stored.repo.store
    with store.index.read() as txn:
        entry = find_entry(store, txn, store.resolve(txn, REF), name)
        manifest = store.entry_manifest(txn, entry)
    return StoreFile(store, manifest, f"{REF}:{name}", cache)


@SETTINGS
@given(data=st.data())
def test_a_read_decodes_only_the_frames_it_needs(stored: Stored, data: st.DataObject) -> None:
    """Random access: a read at offset X decodes exactly the frames that hold bytes of
    [X, X+n) - never the frames of earlier chunks - and each of them once."""
    name = "mixed.bin"
    original = stored.data[name]
    offset, length = data.draw(spans(stored, name))
    cache = CountingCache(256 << 20)
    f = _store_file(stored, name, cache)
    got = f.pread(offset, length)
    assert got == original[offset : offset + length]
    end = min(len(original), offset + length)
    chunks = f._chunks
    starts = stored.chunk_starts[name]
    if offset >= end:
        want: set[tuple[bytes, int]] = set()
    else:
        first = bisect.bisect_right(starts, offset) - 1
        last = bisect.bisect_right(starts, end - 1) - 1
        want = {c.loc.frame_key for c in chunks[first : last + 1]}
    assert set(cache.decoded) == want
    assert len(cache.decoded) == len(want), "a frame was decoded twice in one read"
    # The same read again is served from the cache.
    before = len(cache.decoded)
    assert f.pread(offset, length) == got
    assert len(cache.decoded) == before


@FEW
@given(
    data=st.data(),
    budget=st.sampled_from([1, 20_000, 100_000, 1 << 20]),
)
def test_reads_stay_exact_with_a_tiny_cache_budget(
    stored: Stored, data: st.DataObject, budget: int
) -> None:
    """With a budget smaller than a read (or than one frame), frames are evicted while
    the read runs and decoded again: the bytes must not change, and the cache keeps
    within its budget (one oversized frame at most)."""
    name = "mixed.bin"
    original = stored.data[name]
    cache = CountingCache(budget)
    f = _store_file(stored, name, cache)
    for _ in range(3):
        offset, length = data.draw(spans(stored, name))
        assert f.pread(offset, length) == original[offset : offset + length]
        assert cache.used <= budget or len(cache._frames) == 1
        assert cache.used == sum(len(v) for v in cache._frames.values())


@settings(max_examples=200, deadline=None)
@given(
    budget=st.integers(1, 5000),
    ops=st.lists(
        st.tuples(st.booleans(), st.integers(0, 12), st.integers(1, 3000)),
        max_size=60,
    ),
)
def test_frame_cache_is_a_bounded_lru(budget: int, ops: list[tuple[bool, int, int]]) -> None:
    """The cache never returns bytes other than those put under a key, keeps ``used``
    equal to what it holds and within the budget (unless it holds a single frame),
    and always keeps the frame put or read last."""
    cache = FrameCache(budget)
    content = {k: bytes([k]) * n for k, n in ((k, n) for _, k, n in ops)}
    put_first: dict[int, bytes] = {}
    for is_put, k, _n in ops:
        key = (b"p", k)
        if is_put:
            value = put_first.setdefault(k, content[k])
            cache.put(key, value)
            got = cache.get(key)
            assert got is not None, "the frame put last must be cached"
        else:
            got = cache.get(key)
        if got is not None:
            assert got == put_first[k]
        assert cache.used == sum(len(v) for v in cache._frames.values())
        assert cache.used <= budget or len(cache._frames) == 1


def test_opening_a_missing_path_or_a_directory_is_an_error(stored: Stored) -> None:
    with pytest.raises(PathNotInVersionError):
        stored.repo.open(REF, "nope.bin")
    with pytest.raises(PathNotInVersionError):
        stored.repo.open(REF, "")


@FEW
@given(data=st.data())
def test_reads_through_the_pyarrow_filesystem_equal_the_original(
    stored: Stored, data: st.DataObject
) -> None:
    """What Arrow sees: ``PyFileSystem(VersionFileSystem)`` input files, random access
    with ``read_at`` and seek/read, the size from ``get_file_info``."""
    name = data.draw(st.sampled_from(NAMES))
    original = stored.data[name]
    fs = pafs.PyFileSystem(VersionFileSystem(stored.repo.store, stored.repo.resolve(REF)))
    [info] = fs.get_file_info([name])
    assert info.type == pafs.FileType.File and info.size == len(original)
    with fs.open_input_file(name) as f:
        assert f.size() == len(original)
        for _ in range(3):
            offset, length = data.draw(spans(stored, name))
            want = original[offset : offset + length]
            if offset <= len(original):
                assert bytes(f.read_at(length, offset)) == want
                f.seek(offset)
                assert f.read(length) == want


def test_concurrent_preads_on_one_file_share_a_small_cache(stored: Stored) -> None:
    """Arrow reads one file from several threads: positional reads must not interfere,
    also while they evict each other's frames from a cache smaller than their reads."""
    name = "mixed.bin"
    original = stored.data[name]
    f = _store_file(stored, name, FrameCache(200_000))

    def worker(seed: int) -> int:
        rng = random.Random(seed)
        bad = 0
        for _ in range(60):
            offset = rng.randrange(len(original))
            length = rng.choice([1, 100, 5000, 70_000, 400_000])
            bad += f.pread(offset, length) != original[offset : offset + length]
        return bad

    with ThreadPoolExecutor(4) as pool:
        assert sum(pool.map(worker, range(8))) == 0
