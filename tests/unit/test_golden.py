"""Golden cut points: the chunker must cut the same bytes at the same places forever.

The expected values live in tests/golden/chunker_cuts.json (written by
tests/golden/regenerate.py). They were cross-checked once against the pure-Python
reference chunker in tests/conftest.py when they were generated.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import blake3
import pytest

from reprocas import _core
from tests.golden import regenerate

GOLDEN: dict[str, Any] = json.loads(regenerate.GOLDEN_PATH.read_text())
CASES: list[dict[str, Any]] = GOLDEN["cases"]

BREAKS_DEDUP = (
    "The chunker's cut points changed for {id}: expected {expected_chunks} chunks "
    "(cuts BLAKE3 {expected}, first ends {expected_first}), got {got_chunks} chunks "
    "(cuts BLAKE3 {got}, first ends {got_first}).\n"
    "Cut points decide which chunks exist: a change makes every file ingested from now "
    "on cut differently from what every existing repository already stores, so "
    "deduplication against all existing data is silently lost. Fix the chunker. Only "
    "if the change is deliberate, bump the repository format version and, in the same "
    "change, regenerate tests/golden/chunker_cuts.json with "
    "`python tests/golden/regenerate.py`; never regenerate it just to make this pass."
)


def test_golden_file_covers_the_required_grid() -> None:
    ids = {case["id"] for case in CASES}
    assert ids == {regenerate.case_id(*point) for point in regenerate.grid()}, (
        "tests/golden/chunker_cuts.json does not match the grid in regenerate.py"
    )
    sizes = {(c["min_size"], c["avg_size"], c["max_size"]) for c in CASES}
    assert {(256, 1024, 4096), (2048, 8192, 32768), (16384, 65536, 262144)} <= sizes
    assert {0, 1} <= {c["seed"] for c in CASES}
    assert {"random-8MiB", "csv"} == {c["input"] for c in CASES}


@pytest.mark.parametrize("name", regenerate.INPUTS)
def test_golden_inputs_are_unchanged(name: str) -> None:
    """Guards the generators, so that an input change is not reported as a cut change."""
    data = regenerate.golden_input(name)
    expected = GOLDEN["inputs"][name]
    assert len(data) == expected["size"]
    assert blake3.blake3(data).hexdigest() == expected["blake3"], (
        f"the generator of golden input {name!r} changed (e.g. Python's random module); "
        "the chunker is not at fault, but the golden cut points can no longer be checked"
    )


@pytest.mark.parametrize("threads", [1, 0], ids=["threads=1", "threads=0"])
@pytest.mark.parametrize("case", CASES, ids=[c["id"] for c in CASES])
def test_golden_cut_points(case: dict[str, Any], threads: int) -> None:
    data = regenerate.golden_input(case["input"])
    p = _core.ChunkerParams(case["min_size"], case["avg_size"], case["max_size"], seed=case["seed"])
    table = _core.chunk_buffer(data, p, threads=threads)
    ends = [o + n for o, n in zip(table.offsets, table.lengths, strict=True)]
    got = regenerate.cuts_digest(ends)
    assert (got, len(ends)) == (case["cuts_blake3"], case["chunks"]), BREAKS_DEDUP.format(
        id=case["id"],
        expected_chunks=case["chunks"],
        expected=case["cuts_blake3"],
        expected_first=case["first_ends"],
        got_chunks=len(ends),
        got=got,
        got_first=ends[:8],
    )


def test_golden_cut_points_through_the_stream_and_file_paths(tmp_path: Path) -> None:
    """The same pins hold when the input arrives in pieces or from a file."""
    case = next(c for c in CASES if c["id"] == "random-8MiB/2048-8192-32768/seed=1")
    data = regenerate.golden_input(case["input"])
    p = _core.ChunkerParams(case["min_size"], case["avg_size"], case["max_size"], seed=case["seed"])

    stream = _core.StreamChunker(p)
    chunks: list[tuple[int, int, bytes]] = []
    step = 1_000_003
    for i in range(0, len(data), step):
        chunks += stream.update(data[i : i + step])
    chunks += stream.finish()
    stream_ends = [o + n for o, n, _ in chunks]

    path = tmp_path / "golden.bin"
    path.write_bytes(data)
    table = _core.chunk_file(path, p)
    file_ends = [o + n for o, n in zip(table.offsets, table.lengths, strict=True)]

    for label, ends in (("StreamChunker", stream_ends), ("chunk_file", file_ends)):
        got = regenerate.cuts_digest(ends)
        assert (got, len(ends)) == (case["cuts_blake3"], case["chunks"]), (
            f"[{label}] "
            + BREAKS_DEDUP.format(
                id=case["id"],
                expected_chunks=case["chunks"],
                expected=case["cuts_blake3"],
                expected_first=case["first_ends"],
                got_chunks=len(ends),
                got=got,
                got_first=ends[:8],
            )
        )
