"""Recompute tests/golden/chunker_cuts.json: the pinned cut points of the chunker.

    .venv/bin/python tests/golden/regenerate.py

DO NOT run this to make a failing golden test pass. Cut points decide which chunks
exist; if they change, every file ingested afterwards is cut differently from what
every existing repository already stores, and deduplication against all of it is
silently lost. Regenerate only together with a repository format version bump (and
a migration story), in the same change.

The inputs are generated here, not stored: an 8 MiB pseudo-random buffer from
``random.Random(20261125).randbytes`` and a low-entropy CSV table built with an
explicit LCG. The file records each input's BLAKE3 so that a change of the input
generator is reported as such, not as a change of the cut points.
"""

from __future__ import annotations

import functools
import json
import random
import struct
import sys
from pathlib import Path
from typing import Any

import blake3

from reprocas import _core

GOLDEN_PATH = Path(__file__).with_name("chunker_cuts.json")

RANDOM_SEED = 20261125
RANDOM_SIZE = 8 << 20
CSV_ROWS = 60_000

SIZES: tuple[tuple[int, int, int], ...] = (
    (256, 1024, 4096),
    (2048, 8192, 32768),
    (16384, 65536, 262144),
    (16384, 32768, 131072),
    (8192, 16384, 65536),  # the repository default (reprocas.model.chunking)
    (1000, 3000, 10000),  # sizes that are not powers of two
)
SEEDS: tuple[int, ...] = (0, 1)
EXTRA: tuple[tuple[tuple[int, int, int], int], ...] = (((2048, 8192, 32768), 2**64 - 1),)
INPUTS: tuple[str, ...] = ("random-8MiB", "csv")


def csv_table(n_rows: int, seed: int = 1) -> bytes:
    """A low-entropy, text-like CSV table, generated with explicit arithmetic (an LCG)
    so that it never depends on the standard library's random algorithms."""
    state = seed & 0x7FFFFFFF
    sites = ("AMS", "BER", "CPH", "DUB", "EDI", "FRA")
    flags = ("ok", "ok", "ok", "ok", "recheck", "missing")
    out = ["row_id,patient,visit_date,site,measurement,flag\n"]
    for i in range(n_rows):
        state = (state * 1103515245 + 12345) & 0x7FFFFFFF
        patient = 1000 + (state >> 8) % 700
        day = 1 + (state >> 4) % 28
        month = 1 + (state >> 12) % 12
        value = (state >> 3) % 100_000
        out.append(
            f"{i},P{patient:05d},2026-{month:02d}-{day:02d},{sites[state % 6]},"
            f"{value // 100}.{value % 100:02d},{flags[(state >> 16) % 6]}\n"
        )
    return "".join(out).encode("ascii")


@functools.cache
def golden_input(name: str) -> bytes:
    if name == "random-8MiB":
        return random.Random(RANDOM_SEED).randbytes(RANDOM_SIZE)
    if name == "csv":
        return csv_table(CSV_ROWS)
    raise KeyError(name)


def grid() -> list[tuple[str, tuple[int, int, int], int]]:
    points = [(name, sizes, seed) for name in INPUTS for sizes in SIZES for seed in SEEDS]
    points += [(name, sizes, seed) for name in INPUTS for sizes, seed in EXTRA]
    return points


def case_id(name: str, sizes: tuple[int, int, int], seed: int) -> str:
    return f"{name}/{sizes[0]}-{sizes[1]}-{sizes[2]}/seed={seed}"


def cuts_digest(ends: list[int]) -> str:
    """BLAKE3 of the chunk end offsets as little-endian u64s."""
    return blake3.blake3(struct.pack(f"<{len(ends)}Q", *ends)).hexdigest()


def compute_case(name: str, sizes: tuple[int, int, int], seed: int) -> dict[str, Any]:
    data = golden_input(name)
    table = _core.chunk_buffer(data, _core.ChunkerParams(*sizes, seed=seed), threads=1)
    ends = [o + n for o, n in zip(table.offsets, table.lengths, strict=True)]
    return {
        "id": case_id(name, sizes, seed),
        "input": name,
        "min_size": sizes[0],
        "avg_size": sizes[1],
        "max_size": sizes[2],
        "seed": seed,
        "chunks": len(ends),
        "first_ends": ends[:8],
        "cuts_blake3": cuts_digest(ends),
    }


def compute() -> dict[str, Any]:
    return {
        "_comment": (
            "Pinned FastCDC cut points. Never regenerate to make a test pass: a change "
            "of cut points breaks deduplication against every existing repository. "
            "Regenerate (tests/golden/regenerate.py) only with a format version bump."
        ),
        "cuts_digest": "BLAKE3 of the chunk end offsets as little-endian u64s",
        "inputs": {
            name: {
                "size": len(golden_input(name)),
                "blake3": blake3.blake3(golden_input(name)).hexdigest(),
            }
            for name in INPUTS
        },
        "cases": [compute_case(name, sizes, seed) for name, sizes, seed in grid()],
    }


def main() -> int:
    GOLDEN_PATH.write_text(json.dumps(compute(), indent=1) + "\n")
    print(f"wrote {GOLDEN_PATH}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
