"""The chunker: parameters, cut points against an independent reference, edge cases."""

from __future__ import annotations

import array
import mmap
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from reprocas import _core
from tests.conftest import (
    SMALL,
    RandBytes,
    b3,
    cached_random_bytes,
    params,
    reference_ends,
    table_ends,
)

P = _core.ChunkerParams


def assert_well_formed(table: _core.ChunkTable, data: bytes, p: _core.ChunkerParams) -> None:
    """Offsets contiguous from 0, sizes within bounds, digests of the right bytes."""
    assert table.size == len(data)
    assert len(table) == len(table.offsets) == len(table.lengths) == len(table.digests)
    pos = 0
    for i, (off, n, digest) in enumerate(
        zip(table.offsets, table.lengths, table.digests, strict=True)
    ):
        assert off == pos
        assert 1 <= n <= p.max_size
        if i + 1 < len(table):
            assert n >= p.min_size
        assert digest == b3(data[off : off + n])
        pos += n
    assert pos == len(data)
    assert table.file_digest == b3(data)


# --- parameters ----------------------------------------------------------------------


def test_params_expose_their_values() -> None:
    p = P(1000, 3000, 10000, seed=7)
    assert (p.min_size, p.avg_size, p.max_size, p.seed) == (1000, 3000, 10000, 7)
    assert P(256, 1024, 4096).seed == 0
    assert P(256, 1024, 4096, 2**64 - 1).seed == 2**64 - 1
    assert "1000" in repr(p) and "3000" in repr(p) and "10000" in repr(p)


@pytest.mark.parametrize(
    "sizes",
    [(64, 64, 64), (64, 64, 1 << 26), (1 << 26, 1 << 26, 1 << 26), (100, 200, 300)],
)
def test_params_accept_the_limits(sizes: tuple[int, int, int]) -> None:
    p = P(*sizes)
    assert (p.min_size, p.avg_size, p.max_size) == sizes


def test_equal_params_compare_and_hash_equal() -> None:
    a = P(256, 1024, 4096, seed=3)
    b = P(256, 1024, 4096, seed=3)
    assert a == b
    assert (a != b) is False
    assert hash(a) == hash(b)
    assert {a: "x"}[b] == "x"
    assert len({a, b}) == 1


@pytest.mark.parametrize(
    "other",
    [(512, 1024, 4096, 3), (256, 2048, 4096, 3), (256, 1024, 8192, 3), (256, 1024, 4096, 4)],
)
def test_params_differing_in_any_field_compare_unequal(other: tuple[int, int, int, int]) -> None:
    a = P(256, 1024, 4096, seed=3)
    b = P(*other[:3], seed=other[3])
    assert a != b
    assert len({a, b}) == 2


def test_params_do_not_equal_other_types() -> None:
    assert P(256, 1024, 4096) != (256, 1024, 4096, 0)
    assert P(256, 1024, 4096) != "ChunkerParams(256, 1024, 4096)"


# --- cut points against the pure-Python reference ------------------------------------


@pytest.mark.parametrize(
    "sizes_seed",
    [
        ((256, 1024, 4096), 0),
        ((256, 1024, 4096), 1),
        ((2048, 8192, 32768), 0),
        ((64, 64, 64), 0),
        ((64, 100, 200), 5),
        ((1000, 3000, 10000), 7),
        ((512, 512, 4096), 9),
        ((256, 4096, 4096), 11),
        ((16384, 32768, 131072), 2**64 - 1),
    ],
    ids=str,
)
def test_cut_points_equal_reference(sizes_seed: tuple[tuple[int, int, int], int]) -> None:
    sizes, seed = sizes_seed
    data = cached_random_bytes(300_000, 17)
    table = _core.chunk_buffer(data, params(sizes, seed))
    assert table_ends(table) == reference_ends(data, *sizes, seed=seed)
    assert_well_formed(table, data, params(sizes, seed))


def test_cut_points_of_text_equal_reference(csv_data: bytes) -> None:
    data = csv_data[:400_000]
    table = _core.chunk_buffer(data, params(SMALL))
    assert table_ends(table) == reference_ends(data, *SMALL)


@pytest.mark.parametrize("threads", [1, 0], ids=["threads=1", "threads=0"])
def test_parallel_path_equals_reference(threads: int) -> None:
    # 3.5 MiB at avg 1 KiB: 1 MiB regions, so the buffer is cut in 4 parallel regions
    # (one group of four lanes) and stitched.
    data = cached_random_bytes(3 * (1 << 20) + (1 << 19), 23)
    table = _core.chunk_buffer(data, params(SMALL), threads=threads)
    assert table_ends(table) == reference_ends(data, *SMALL)


# --- edge cases ----------------------------------------------------------------------


@pytest.mark.parametrize("key", [None, bytes(range(32))], ids=["plain", "keyed"])
def test_empty_buffer_has_no_chunks(key: bytes | None, small_params: _core.ChunkerParams) -> None:
    table = _core.chunk_buffer(b"", small_params, key=key)
    assert len(table) == 0
    assert (table.offsets, table.lengths, table.digests) == ([], [], [])
    assert table.size == 0
    assert table.file_digest == b3(b"", key)


@pytest.mark.parametrize("n", [1, 100, 255, 256])
def test_buffer_no_longer_than_min_size_is_one_chunk(
    n: int, small_params: _core.ChunkerParams, rand_bytes: RandBytes
) -> None:
    data = rand_bytes(n, n)
    table = _core.chunk_buffer(data, small_params)
    assert (table.offsets, table.lengths, table.digests) == ([0], [n], [b3(data)])
    assert table.file_digest == b3(data)


def test_buffer_of_exactly_max_size_of_zeros_is_one_chunk(
    small_params: _core.ChunkerParams,
) -> None:
    table = _core.chunk_buffer(bytes(4096), small_params)
    assert table.lengths == [4096]
    table = _core.chunk_buffer(bytes(4097), small_params)
    assert table.lengths == [4096, 1]


@pytest.mark.parametrize(
    "sizes",
    [(256, 1024, 4096), (2048, 8192, 32768), (16384, 65536, 262144), (16384, 32768, 131072)],
    ids=str,
)
@pytest.mark.parametrize("seed", [0, 1])
def test_zeros_are_cut_at_max_size(sizes: tuple[int, int, int], seed: int) -> None:
    n = 3 * sizes[2] * 5 + 12345
    table = _core.chunk_buffer(bytes(n), params(sizes, seed))
    assert set(table.lengths[:-1]) == {sizes[2]}
    assert table.lengths[-1] == n % sizes[2]
    assert len(set(table.digests[:-1])) == 1


@pytest.mark.parametrize("threads", [1, 0], ids=["threads=1", "threads=0"])
def test_zeros_whose_regions_never_resynchronise(threads: int) -> None:
    # max 3000 does not divide the 1 MiB region size: a region's own chain (cut from the
    # region start) is offset from the true chain by region % 3000 bytes and never meets
    # it, so the parallel cutter must fall back to following the true chain itself.
    n = 5 * (1 << 20) + 777
    table = _core.chunk_buffer(bytes(n), P(256, 1024, 3000), threads=threads)
    assert table.lengths == [3000] * (n // 3000) + [n % 3000]
    assert table.offsets == [3000 * i for i in range(len(table))]


def test_periodic_input_whose_regions_never_resynchronise(rand_bytes: RandBytes) -> None:
    # A random 3000-byte block repeated: the true chain is periodic with a period the
    # 1 MiB regions are not a multiple of.
    block = rand_bytes(2999, 5)
    data = block * ((5 << 20) // len(block) + 1)
    p = P(256, 1024, 4096)
    table = _core.chunk_buffer(data, p, threads=2)
    assert table_ends(table) == reference_ends(data, *SMALL)


def test_different_seeds_give_different_cut_points(rand_bytes: RandBytes) -> None:
    data = rand_bytes(1 << 20, 3)
    cuts = [table_ends(_core.chunk_buffer(data, params(SMALL, seed))) for seed in (0, 1, 2, 2**63)]
    for i in range(len(cuts)):
        for j in range(i + 1, len(cuts)):
            assert cuts[i] != cuts[j]
            # Not merely shifted somewhere: most boundaries differ.
            common = set(cuts[i]) & set(cuts[j])
            assert len(common) < len(cuts[i]) // 2


def test_same_seed_gives_same_cut_points(rand_bytes: RandBytes) -> None:
    data = rand_bytes(1 << 20, 3)
    a = _core.chunk_buffer(data, P(256, 1024, 4096, seed=42))
    b = _core.chunk_buffer(data, P(256, 1024, 4096, seed=42))
    assert table_ends(a) == table_ends(b)
    assert a.digests == b.digests


def test_key_changes_digests_but_not_cut_points(
    rand_bytes: RandBytes, small_params: _core.ChunkerParams
) -> None:
    data = rand_bytes(200_000, 8)
    key = rand_bytes(32, 9)
    plain = _core.chunk_buffer(data, small_params)
    keyed = _core.chunk_buffer(data, small_params, key=key)
    assert table_ends(plain) == table_ends(keyed)
    assert keyed.digests == [
        b3(data[o : o + n], key) for o, n in zip(keyed.offsets, keyed.lengths, strict=True)
    ]
    assert keyed.file_digest == b3(data, key)
    assert not set(plain.digests) & set(keyed.digests)


@pytest.mark.parametrize(
    "sizes",
    [(256, 1024, 4096), (2048, 8192, 32768), (16384, 65536, 262144), (1000, 3000, 10000)],
    ids=str,
)
def test_chunk_size_distribution_on_random_data(sizes: tuple[int, int, int]) -> None:
    data = cached_random_bytes(8 << 20, 31)
    table = _core.chunk_buffer(data, params(sizes))
    lengths = table.lengths[:-1]
    mean = sum(lengths) / len(lengths)
    assert 0.8 * sizes[1] <= mean <= 1.5 * sizes[1], mean
    # Normalised chunking: hardly any chunk is forced at max size.
    assert sum(n == sizes[2] for n in lengths) <= 0.01 * len(lengths)
    assert min(lengths) >= sizes[0]


def test_chunk_buffer_accepts_buffer_types(
    rand_bytes: RandBytes, small_params: _core.ChunkerParams, tmp_path: Path
) -> None:
    data = rand_bytes(50_000, 4)
    want = _core.chunk_buffer(data, small_params)
    path = tmp_path / "m.bin"
    path.write_bytes(data)
    with path.open("rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as mm:
        buffers: list[Any] = [bytearray(data), memoryview(data), array.array("B", data), mm]
        for buf in buffers:
            got = _core.chunk_buffer(buf, small_params)
            assert (table_ends(got), got.digests, got.file_digest) == (
                table_ends(want),
                want.digests,
                want.file_digest,
            ), type(buf)


def test_chunk_table_lists_are_plain_python_values(
    rand_bytes: RandBytes, small_params: _core.ChunkerParams
) -> None:
    table = _core.chunk_buffer(rand_bytes(20_000, 6), small_params)
    assert type(table.offsets) is list and type(table.lengths) is list
    assert all(type(o) is int for o in table.offsets)
    assert all(type(d) is bytes and len(d) == 32 for d in table.digests)
    assert type(table.file_digest) is bytes
    assert "ChunkTable" in repr(table)


def test_chunk_file_on_empty_and_tiny_files(
    write_file: Callable[[bytes], Path], small_params: _core.ChunkerParams
) -> None:
    empty = _core.chunk_file(write_file(b""), small_params)
    assert len(empty) == 0 and empty.size == 0 and empty.file_digest == b3(b"")
    tiny = _core.chunk_file(write_file(b"x" * 200), small_params)
    assert tiny.lengths == [200] and tiny.digests == [b3(b"x" * 200)]


def test_chunk_file_of_zeros_is_cut_at_max_size(
    write_file: Callable[[bytes], Path], small_params: _core.ChunkerParams
) -> None:
    n = 1_000_000
    for threads in (1, 0):
        table = _core.chunk_file(write_file(bytes(n)), small_params, threads=threads)
        assert table.lengths == [4096] * (n // 4096) + [n % 4096]
