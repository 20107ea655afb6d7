"""Deduplication: unchanged data stores nothing; small changes store little; the files
cache keeps unchanged files from being read again."""

from __future__ import annotations

import os
import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import reprocas
from reprocas.native import core
from tests.integration._helpers import assert_ok, pack_files, verify_ok
from tests.integration.conftest import Cli, TreeFactory
from tests.integration.trees import csv_table, mutate_tree

ROWS = 400_000  # about 26 MB of CSV


@pytest.fixture(scope="module")
def big_table() -> bytes:
    return csv_table(ROWS, 7)


def test_same_data_twice_stores_nothing(make_tree: TreeFactory, cli: Cli, repo_path: Path) -> None:
    src, _ = make_tree(11)
    assert_ok(cli("init"))
    first = assert_ok(cli("commit", src, "-d", "ds", "--json")).json()
    assert first["created"] is True and first["new_bytes"] > 0
    packs = pack_files(repo_path)
    # The same data again: no new version, nothing new stored, exit 0, and it says so.
    again = assert_ok(cli("commit", src, "-d", "ds", "--json")).json()
    assert again["created"] is False
    assert again["new_bytes"] == 0
    assert again["ref"] == "ds@v1" and again["id"] == first["id"]
    human = assert_ok(cli("commit", src, "-d", "ds"))
    assert "no new version" in human.out and "nothing changed" in human.out, human.describe()
    assert "ds@v1" in human.out
    log = assert_ok(cli("log", "--json")).json()
    assert [e["ref"] for e in log] == ["ds@v1"]
    assert pack_files(repo_path) == packs, "a no-op commit wrote a pack"


def test_same_data_twice_stores_nothing_without_files_cache(
    repo: reprocas.Repo, tmp_path: Path, make_tree: TreeFactory
) -> None:
    """The same content at another path (so the files cache cannot help): every chunk
    is found in the index and nothing new is stored."""
    src, _ = make_tree(12)
    r1 = repo.commit(src, "ds")
    copy = tmp_path / "copy"
    os.rename(src, copy)  # same inodes, new paths: the cache misses
    r2 = repo.commit(copy, "ds")
    assert not r2.created and r2.new_bytes == 0 and r2.id == r1.id


def test_two_percent_append_stores_about_two_percent(
    repo: reprocas.Repo, tmp_path: Path, big_table: bytes
) -> None:
    src = tmp_path / "src"
    src.mkdir()
    table = src / "visits.csv"
    table.write_bytes(big_table)
    r1 = repo.commit(src, "visits")
    extra = csv_table(ROWS // 50, 8, header=False, first_row=ROWS)
    with open(table, "ab") as f:
        f.write(extra)
    r2 = repo.commit(src, "visits")
    assert r2.created
    fraction = r2.new_bytes / r1.new_bytes
    print(f"2% append: new_bytes {r2.new_bytes} = {fraction:.2%} of the first commit")
    assert fraction < 0.10, f"2% append stored {fraction:.1%} of the first commit"
    assert repo.cat("visits@v2", "visits.csv") == big_table + extra
    verify_ok(repo)


def test_scattered_row_edits_store_a_small_fraction(
    repo: reprocas.Repo, tmp_path: Path, big_table: bytes
) -> None:
    """Edit one field in 0.05% of the rows, scattered over the whole table."""
    src = tmp_path / "src"
    src.mkdir()
    table = src / "visits.csv"
    table.write_bytes(big_table)
    r1 = repo.commit(src, "visits")
    lines = big_table.split(b"\n")
    rng = random.Random(3)
    n_edits = ROWS * 5 // 10_000
    for i in rng.sample(range(1, ROWS + 1), n_edits):
        fields = lines[i].split(b",")
        fields[6] = b"%.2f" % (rng.random() * 200)
        lines[i] = b",".join(fields)
    edited = b"\n".join(lines)
    table.write_bytes(edited)
    r2 = repo.commit(src, "visits")
    assert r2.created
    fraction = r2.new_bytes / r1.new_bytes
    print(f"0.05% scattered edits ({n_edits} rows): new_bytes {r2.new_bytes} = {fraction:.2%}")
    assert fraction < 0.40, f"{n_edits} scattered edits stored {fraction:.1%} of the first"
    assert repo.cat("visits@v2", "visits.csv") == edited
    assert repo.cat("visits@v1", "visits.csv") == big_table


class CountingChunker:
    """Stands in for ``_core.FileChunker`` and records which paths were read."""

    calls: list[str]
    real: Any

    def __init__(self, path: str | os.PathLike[str], *args: Any, **kw: Any) -> None:
        CountingChunker.calls.append(os.fspath(path))
        self._inner = CountingChunker.real(path, *args, **kw)

    def __iter__(self) -> Iterator[Any]:
        return self

    def __next__(self) -> Any:
        return next(self._inner)

    @property
    def file_digest(self) -> bytes | None:
        return self._inner.file_digest  # type: ignore[no-any-return]

    @property
    def size(self) -> int | None:
        return self._inner.size  # type: ignore[no-any-return]


@pytest.fixture
def counting_chunker(monkeypatch: pytest.MonkeyPatch) -> type[CountingChunker]:
    CountingChunker.calls = []
    CountingChunker.real = core.FileChunker
    monkeypatch.setattr(core, "FileChunker", CountingChunker)
    return CountingChunker


def test_files_cache_skips_unchanged_files(
    repo: reprocas.Repo, make_tree: TreeFactory, counting_chunker: type[CountingChunker]
) -> None:
    src, _ = make_tree(13)
    r1 = repo.commit(src, "ds")
    first_reads = set(counting_chunker.calls)
    assert len(first_reads) == r1.files  # every file read once, the first time
    assert len(counting_chunker.calls) == len(first_reads)

    # Nothing changed: nothing is read.
    counting_chunker.calls.clear()
    r2 = repo.commit(src, "ds")
    assert not r2.created
    assert counting_chunker.calls == []

    # Change some files: exactly those (and new ones) are read.
    before = {p: os.stat(p) for p in first_reads}
    mutate_tree(src, 14)
    changed = {
        p
        for p, st in before.items()
        if os.path.exists(p)
        and (os.stat(p).st_mtime_ns, os.stat(p).st_size) != (st.st_mtime_ns, st.st_size)
    }
    current = {str(p) for p in src.rglob("*") if p.is_file() and not p.is_symlink()}
    new = current - first_reads
    assert changed and new
    counting_chunker.calls.clear()
    r3 = repo.commit(src, "ds")
    assert r3.created
    assert set(counting_chunker.calls) == changed | new
    # A mode change alone (content and mtime unchanged) needs no read but is a version.
    counting_chunker.calls.clear()
    os.chmod(src / "secret.key", 0o640)
    r4 = repo.commit(src, "ds")
    assert r4.created and counting_chunker.calls == []


def test_files_cache_not_fooled_by_quick_same_size_rewrites(
    repo: reprocas.Repo, tmp_path: Path
) -> None:
    """A file rewritten in place with the same size right after a commit must be read
    again (the cached stat must not match by accident)."""
    src = tmp_path / "src"
    src.mkdir()
    f = src / "counter.txt"
    f.write_bytes(b"value 0000\n")
    for i in range(1, 30):
        repo.commit(src, "ds")
        fd = os.open(f, os.O_WRONLY)  # same inode, same size
        try:
            os.pwrite(fd, b"value %04d\n" % i, 0)
        finally:
            os.close(fd)
        r = repo.commit(src, "ds")
        assert r.created, f"rewrite {i} went unnoticed"
        assert repo.cat(r.ref, "counter.txt") == b"value %04d\n" % i


def test_committing_the_directory_that_holds_the_repository(tmp_path: Path) -> None:
    """`reprocas init` in a project, then `reprocas commit .`: the repository may not be
    committed into itself (issue 13, item 2), so the project root is refused and nothing
    is stored; its data directory commits, and again stores nothing."""
    from tests.integration._helpers import assert_one_line_error, pack_files, run_cli

    proj = tmp_path / "proj"
    (proj / "data").mkdir(parents=True)
    (proj / "data" / "data.csv").write_bytes(csv_table(20_000, 4))
    (proj / "data" / "notes.txt").write_text("notes\n")
    assert_ok(run_cli("init", cwd=proj))
    res = run_cli("commit", ".", "-d", "proj", cwd=proj)
    assert_one_line_error(res, 2, "holds the repository")
    assert not pack_files(proj / ".reprocas")
    first = assert_ok(run_cli("commit", "data", "-d", "proj", "--json", cwd=proj)).json()
    ls = assert_ok(run_cli("ls", "proj", "-r", "--json", cwd=proj)).json()
    assert sorted(e["path"] for e in ls) == ["data.csv", "notes.txt"]
    assert first["files"] == 2
    again = assert_ok(run_cli("commit", "data", "-d", "proj", "--json", cwd=proj)).json()
    assert again["created"] is False and again["new_bytes"] == 0, again
