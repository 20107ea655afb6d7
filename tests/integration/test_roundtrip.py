"""Round trip: what is committed checks out exactly (bytes, modes, links, empty things)."""

from __future__ import annotations

import os
import shutil
import stat
from pathlib import Path

import pytest

import reprocas
from reprocas.errors import PathNotInVersionError
from tests.integration._helpers import (
    assert_checkout_equals,
    assert_nothing_committed,
    assert_ok,
    verify_ok,
)
from tests.integration.conftest import Cli, TreeFactory
from tests.integration.trees import (
    describe,
    describe_entry,
    diff,
    file_digest,
    make_sparse,
    mutate_tree,
    sparse_digest,
)


def test_three_version_history_checks_out_exactly(
    repo: reprocas.Repo, make_tree: TreeFactory, tmp_path: Path, cli: Cli
) -> None:
    src, v1 = make_tree(1)
    r1 = repo.commit(src, "clinical", message="first")
    v2 = mutate_tree(src, 2)
    r2 = repo.commit(src, "clinical", message="second")
    v3 = mutate_tree(src, 3)
    r3 = repo.commit(src, "clinical", message="third")
    assert [r1.ref, r2.ref, r3.ref] == ["clinical@v1", "clinical@v2", "clinical@v3"]
    assert r1.created and r2.created and r3.created
    assert len({r1.id, r2.id, r3.id}) == 3
    assert v1 != v2 != v3

    # The tree really has what the round trip must reproduce.
    kinds = {e.kind for e in v1.values()}
    assert kinds == {"file", "dir", "symlink"}
    assert any(e.kind == "file" and e.size == 0 for e in v1.values())
    assert any(e.kind == "file" and e.mode & 0o111 for e in v1.values())
    assert any(e.kind == "symlink" and e.target and e.target.startswith("/") for e in v1.values())

    # Check out through the API, every version, oldest first after the newest exists.
    for ref, want in (("clinical@v1", v1), ("clinical@v2", v2), ("clinical@v3", v3)):
        assert_checkout_equals(repo, ref, want, tmp_path / f"api-{ref}")
    # And through the CLI, as a separate process.
    for ref, want in (("clinical@v1", v1), ("clinical@v3", v3)):
        dest = tmp_path / f"cli-{ref}"
        assert_ok(cli("checkout", ref, dest))
        assert not diff(want, describe(dest))
    # Links are restored as links, not as copies of their targets.
    dest = tmp_path / "api-clinical@v1"
    assert (dest / "link-abs").is_symlink() and os.readlink(dest / "link-abs") == "/etc/hostname"
    assert (dest / "dangling").is_symlink() and not (dest / "dangling").exists()
    assert (dest / "link-to-dir").is_symlink()
    verify_ok(repo)


def test_mode_only_change_is_a_new_version(repo: reprocas.Repo, tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    (src / "tool").write_bytes(b"#!/bin/sh\n")
    os.chmod(src / "tool", 0o644)
    r1 = repo.commit(src, "ds")
    os.chmod(src / "tool", 0o755)
    r2 = repo.commit(src, "ds")
    assert r2.created and r2.ref == "ds@v2"
    repo.checkout("ds@v1", tmp_path / "v1")
    repo.checkout("ds@v2", tmp_path / "v2")
    assert stat.S_IMODE(os.stat(tmp_path / "v1" / "tool").st_mode) == 0o644
    assert stat.S_IMODE(os.stat(tmp_path / "v2" / "tool").st_mode) == 0o755
    assert r1.id != r2.id


def test_single_file_commit(repo: reprocas.Repo, tmp_path: Path, cli: Cli) -> None:
    f = tmp_path / "model.bin"
    data = os.urandom(300_000)
    f.write_bytes(data)
    os.chmod(f, 0o751)
    r = repo.commit(f, "weights", message="one file")
    assert r.created and r.files == 1 and r.logical_bytes == len(data)
    # Checkout gives a directory holding the file under its name, with its mode.
    dest = tmp_path / "out"
    assert_ok(cli("checkout", "weights@v1", dest))
    assert sorted(os.listdir(dest)) == ["model.bin"]
    assert (dest / "model.bin").read_bytes() == data
    assert stat.S_IMODE(os.stat(dest / "model.bin").st_mode) == 0o751
    # cat gives the bytes, through the API and the CLI.
    assert repo.cat("weights@v1", "model.bin") == data
    res = assert_ok(cli("cat", "weights@v1", "model.bin"))
    assert res.stdout == data
    ls = assert_ok(cli("ls", "weights", "--json")).json()
    assert ls == [
        {"path": "model.bin", "kind": "file", "mode": "751", "size": len(data), "target": None}
    ]


def test_single_empty_file_commit(repo: reprocas.Repo, tmp_path: Path) -> None:
    f = tmp_path / "empty.csv"
    f.write_bytes(b"")
    r = repo.commit(f, "empty")
    assert r.files == 1 and r.logical_bytes == 0
    repo.checkout("empty@v1", tmp_path / "out")
    assert (tmp_path / "out" / "empty.csv").read_bytes() == b""
    assert repo.cat("empty@v1", "empty.csv") == b""


def test_empty_directory_commit(repo: reprocas.Repo, tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    r = repo.commit(src, "nothing")
    assert r.created and r.files == 0
    repo.checkout("nothing@v1", tmp_path / "out")
    assert list((tmp_path / "out").iterdir()) == []


def test_checkout_path_of_a_directory(
    repo: reprocas.Repo, make_tree: TreeFactory, tmp_path: Path, cli: Cli
) -> None:
    src, full = make_tree(5)
    repo.commit(src, "ds")
    want = {k[len("sub/") :]: v for k, v in full.items() if k.startswith("sub/")}
    assert want, "the generated tree has a sub/ directory"
    dest = tmp_path / "only-sub"
    assert_ok(cli("checkout", "ds@v1", dest, "--path", "sub"))
    assert not diff(want, describe(dest))
    # A deeper directory, given with a trailing slash; empty directories come along.
    dest2 = tmp_path / "only-nested"
    repo.checkout("ds@v1", dest2, path="nested/")
    assert describe(dest2) == {
        "empty": describe_entry(src / "nested" / "empty"),
        "empty/deeper": describe_entry(src / "nested" / "empty" / "deeper"),
    }


def test_checkout_path_of_a_file(
    repo: reprocas.Repo, make_tree: TreeFactory, tmp_path: Path, cli: Cli
) -> None:
    src, full = make_tree(6)
    repo.commit(src, "ds")
    dest = tmp_path / "table-copy.csv"
    assert_ok(cli("checkout", "ds@v1", dest, "--path", "data/table.csv"))
    assert describe_entry(dest) == full["data/table.csv"]
    # An executable file keeps its mode; a unicode path works.
    dest2 = tmp_path / "run.sh"
    repo.checkout("ds@v1", dest2, path="bin/run.sh")
    assert describe_entry(dest2) == full["bin/run.sh"]
    dest3 = tmp_path / "unicode"
    repo.checkout("ds@v1", dest3, path="日本語/ファイル.bin")
    assert describe_entry(dest3) == full["日本語/ファイル.bin"]
    # A symlink alone is restored as the link.
    dest4 = tmp_path / "alone-link"
    repo.checkout("ds@v1", dest4, path="link-abs")
    assert dest4.is_symlink() and os.readlink(dest4) == "/etc/hostname"
    # A path that is not in the version is a clear error.
    with pytest.raises(PathNotInVersionError):
        repo.checkout("ds@v1", tmp_path / "x", path="no/such/file")
    assert not (tmp_path / "x").exists()


def test_cat_equals_every_file(
    repo: reprocas.Repo, make_tree: TreeFactory, tmp_path: Path, cli: Cli
) -> None:
    src, full = make_tree(7)
    repo.commit(src, "ds")
    files = [p for p, e in full.items() if e.kind == "file"]
    for p in files:
        assert repo.cat("ds@v1", p) == (src / p).read_bytes(), p
    # Through the CLI (a few, as processes are slow): binary, empty, unicode, big.
    for p in ("data/table.csv", "empty.txt", "données.csv", "data/part-0.bin", "new\nline.txt"):
        res = assert_ok(cli("cat", "ds@v1", p))
        assert res.stdout == (src / p).read_bytes(), p


def test_name_with_backslash_round_trips_or_is_refused_at_commit(
    repo: reprocas.Repo, tmp_path: Path
) -> None:
    """POSIX allows a backslash in a file name. Either commit refuses the name (so no
    version exists that cannot be checked out) or checkout restores it."""
    src = tmp_path / "src"
    src.mkdir()
    (src / "back\\slash.txt").write_bytes(b"content\n")
    (src / "plain.txt").write_bytes(b"plain\n")
    try:
        repo.commit(src, "ds")
    except reprocas.errors.ReprocasError:
        # Refused up front: fine, when nothing was committed and nothing damaged.
        assert_nothing_committed(repo, [])
        return
    repo.checkout("ds@v1", tmp_path / "out")
    assert (tmp_path / "out" / "back\\slash.txt").read_bytes() == b"content\n"


def test_sparse_multi_gigabyte_file(repo: reprocas.Repo, tmp_path: Path) -> None:
    """A 3 GiB sparse file with a few written regions checks out to the same bytes."""
    size = 3 << 30
    regions = [
        (0, b"header" * 1000),
        (1 << 30, os.urandom(200_000)),
        ((2 << 30) + 12345, b"middle of nowhere"),
        (size - 70_000, os.urandom(70_000)),  # up to the very end
    ]
    src = tmp_path / "src"
    src.mkdir()
    big = src / "huge.img"
    make_sparse(big, size, regions)
    assert os.stat(big).st_blocks * 512 < 16 << 20, "the source should be sparse"
    want = sparse_digest(size, regions)
    r = repo.commit(src, "disk")
    assert r.logical_bytes == size
    assert r.new_bytes < 8 << 20, "zeros deduplicate: little is stored"
    dest = tmp_path / "out"
    try:
        repo.checkout("disk@v1", dest)
        out = dest / "huge.img"
        assert os.stat(out).st_size == size
        assert file_digest(out) == want
        # The regions are where they were.
        with open(out, "rb") as f:
            for offset, data in regions:
                f.seek(offset)
                assert f.read(len(data)) == data
    finally:
        shutil.rmtree(dest, ignore_errors=True)
