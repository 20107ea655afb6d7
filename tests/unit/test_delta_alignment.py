"""How a changed file's new chunks are aligned with the parent version's chunks to pick
delta bases (reprocas.store.deltas.FileDeltas): pure, no store needed."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from reprocas.model.objects import FileManifest
from reprocas.store.deltas import DeltaRun, FileDeltas


def d(name: str) -> bytes:
    return name.encode().ljust(32, b"_")


def manifest(*chunks: tuple[str, int]) -> FileManifest:
    return FileManifest(sum(n for _, n in chunks), b"\0" * 32, tuple((d(c), n) for c, n in chunks))


PARENT = manifest(("A", 100), ("B", 100), ("C", 100), ("D", 100), ("E", 100))


def plan(names: list[tuple[str, int]]) -> tuple[FileDeltas, list[DeltaRun], list[int]]:
    """Lower-case names are new chunks; upper-case ones are the parent's."""
    fd = FileDeltas(PARENT, max_depth=4, frame_size=1 << 20)
    digests = [d(n) for n, _ in names]
    lengths = [n for _, n in names]
    runs, plain = fd.plan(digests, lengths, [i for i, (n, _) in enumerate(names) if n.islower()])
    return fd, runs, plain


def test_a_changed_chunk_between_unchanged_ones_gets_exactly_its_old_self() -> None:
    fd, [run], plain = plan([("A", 100), ("b", 104), ("C", 100), ("D", 100), ("E", 100)])
    assert not plain and run.exact_lo and run.exact_hi
    assert fd.bases_of(run) == [d("B")]


def test_two_changed_chunks_map_to_the_two_they_replace() -> None:
    fd, [run], _ = plan([("A", 100), ("x", 90), ("y", 120), ("D", 100), ("E", 100)])
    assert run.count == 2
    assert fd.bases_of(run) == [d("B"), d("C")]


def test_data_past_the_parent_end_has_no_base() -> None:
    _, runs, plain = plan([("A", 100), ("B", 100), ("C", 100), ("D", 100), ("E", 100), ("z", 50)])
    assert runs == [] and plain == [5]


def test_without_anchors_the_mapped_region_with_slack_is_used() -> None:
    fd, [run], _ = plan([("a", 100), ("b", 100), ("c", 100)])
    assert run.exact_lo and not run.exact_hi
    assert fd.bases_of(run)[:3] == [d("A"), d("B"), d("C")]


@given(st.lists(st.tuples(st.sampled_from("ABCDEvwxyz"), st.integers(1, 300)), max_size=12))
def test_bases_are_always_parent_chunks_and_bounded(chunks: list[tuple[str, int]]) -> None:
    fd, runs, plain = plan(chunks)
    parent = {c for c, _ in PARENT.chunks}
    new = {i for i, (n, _) in enumerate(chunks) if n.islower()}
    assert set(plain) <= new
    assert {i for r in runs for i in range(r.first, r.first + r.count)} | set(plain) == new
    for run in runs:
        bases = fd.bases_of(run)
        assert set(bases) <= parent and len(bases) == len(set(bases))
        assert sum(n for c, n in PARENT.chunks if c in bases) <= run.raw + (128 << 10)
