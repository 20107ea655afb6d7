"""The benchmark data generators (benchmarks/generate.py) are deterministic: the same
seed gives the same bytes on every machine, pinned by golden BLAKE3 digests, so that
benchmark figures from different runs and machines measure the same input."""

from __future__ import annotations

from benchmarks import generate
from reprocas import _core

# BLAKE3 of the generators' output at GENERATOR_VERSION 1: the same on every machine.
# Change these together with generate.GENERATOR_VERSION when the output changes on purpose.
GOLDEN_VERSION = 1
GOLDEN_RANDOM_1MIB_SEED1 = "285d8c0ae5552c6ea4b6a6de88bdb5ed01a18ca2d713b05cbf2dae35c2e7e384"
GOLDEN_SERIES_2000_SEED5 = "3bf953da20794554da6e68ed5c4f303525e81b5d8aba72894fb54c03bac6ed39"


def test_random_bytes_deterministic() -> None:
    assert generate.GENERATOR_VERSION == GOLDEN_VERSION, "update the golden digests"
    first = generate.random_bytes(1 << 20, 1)
    assert first == generate.random_bytes(1 << 20, 1)
    assert first != generate.random_bytes(1 << 20, 2)
    assert generate.random_bytes(1000, 1) == first[:1000]
    assert _core.blake3_digest(first).hex() == GOLDEN_RANDOM_1MIB_SEED1


def series_bytes(rows: int, seed: int) -> list[bytes]:
    return [
        b"".join(bytes(p) for p in generate.csv_pieces(table))
        for _, table in generate.encounter_versions(rows, seed)
    ]


def test_series_deterministic_and_shaped() -> None:
    versions = series_bytes(2000, 5)
    assert versions == series_bytes(2000, 5)
    rows = [v.count(b"\n") - 1 for v in versions]
    assert rows == [2000, 2040, 2040, 2020, 2040]
    v2, v3 = versions[1].split(b"\n"), versions[2].split(b"\n")
    assert sum(a != b for a, b in zip(v2, v3, strict=True)) == round(2040 * 0.005)
    digest = _core.blake3_digest(b"".join(versions)).hex()
    assert digest == GOLDEN_SERIES_2000_SEED5
