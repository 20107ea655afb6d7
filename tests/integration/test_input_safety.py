"""Hostile input to commit and checkout (issue 13, items 2, 5, 6, 11 and 12): the
repository committed into itself or checked out over itself, names that shadow ids,
``checkout --force`` that leaves stale files, trees thousands of levels deep, and
setuid/setgid/sticky bits. Each ends with the repository verifying and the versions
checking out exactly. The CLI runs as a real process."""

from __future__ import annotations

import hashlib
import os
import stat
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

import reprocas
from reprocas.errors import (
    AmbiguousRefError,
    InvalidNameError,
    RepositoryOverlapError,
    SpecialModeError,
)
from reprocas.model.ids import ObjectId
from reprocas.store.commit import finish_snapshot
from reprocas.store.writer import Writer
from tests.conftest import skip_outside_ci
from tests.integration._helpers import (
    assert_checkout_equals,
    assert_ok,
    assert_one_line_error,
    run_cli,
    verify_ok,
)
from tests.integration.conftest import Cli
from tests.integration.trees import Entry, describe, describe_entry, diff


def _tree(root: Path, files: dict[str, bytes]) -> dict[str, Entry]:
    for rel, data in files.items():
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(data)
    return describe(root)


def _fingerprint(root: Path) -> dict[str, str]:
    """Every file below ``root`` with its bytes' digest: the repository, untouched."""
    out = {}
    for d, _, names in os.walk(root):
        for n in names:
            p = Path(d, n)
            if p.name.endswith(".lock") or p.name == "lock.mdb":  # reader table
                continue
            out[str(p.relative_to(root))] = hashlib.sha256(p.read_bytes()).hexdigest()
    return out


# --- item 2: the repository is never committed into itself or checked out over --------


@pytest.fixture
def project(tmp_path: Path) -> tuple[Path, Path, dict[str, Entry]]:
    """A project directory with data and its repository (``.reprocas/``) inside, and
    one version ``ds@v1`` of the data."""
    proj = tmp_path / "proj"
    data = proj / "data"
    want = _tree(data, {"a.csv": b"id,x\n1,2\n", "sub/b.bin": os.urandom(5000)})
    assert_ok(run_cli("init", cwd=proj))
    assert_ok(run_cli("commit", "data", "-d", "ds", cwd=proj))
    return proj, proj / ".reprocas", want


def test_committing_the_repository_into_itself_is_refused(
    project: tuple[Path, Path, dict[str, Entry]], tmp_path: Path
) -> None:
    proj, repo_path, want = project
    os.symlink(".reprocas", proj / "alias")
    before = _fingerprint(repo_path)
    for src, how in (
        (".reprocas", "is the repository"),
        (str(repo_path) + "/", "is the repository"),
        ("alias", "is the repository"),
        (".reprocas/packs", "lies inside the repository"),
        (".reprocas/reflog", "lies inside the repository"),
        ("alias/index", "lies inside the repository"),
    ):
        res = run_cli("commit", src, "-d", "self", cwd=proj)
        assert_one_line_error(res, 2, "refusing to commit", how)
    with reprocas.Repo.open(repo_path) as repo:
        with pytest.raises(RepositoryOverlapError):
            repo.commit(repo_path / "index", "self")
        assert repo.datasets() == ["ds"]
    assert _fingerprint(repo_path) == before, "a refused commit wrote to the repository"
    # A source that holds the repository is refused too (commit a subdirectory).
    for src in (".", str(tmp_path)):
        res = run_cli("commit", src, "-d", "proj", cwd=proj)
        assert_one_line_error(res, 2, "refusing to commit", "holds the repository")
    assert _fingerprint(repo_path) == before, "a refused commit wrote to the repository"
    verify_ok(repo_path)
    with reprocas.Repo.open(repo_path) as repo:
        assert repo.datasets() == ["ds"]
        assert_checkout_equals(repo, "ds@v1", want, tmp_path / "co")


def test_checking_out_over_the_repository_is_refused(
    project: tuple[Path, Path, dict[str, Entry]], tmp_path: Path
) -> None:
    proj, repo_path, want = project
    os.symlink(".reprocas", proj / "alias")
    before = _fingerprint(repo_path)
    for dest, how in (
        (".reprocas", "is the repository"),
        ("alias", "is the repository"),
        (".reprocas/packs", "lies inside the repository"),
        (".reprocas/new-dir", "lies inside the repository"),
        ("alias/index", "lies inside the repository"),
        (".", "holds the repository"),
        (str(tmp_path), "holds the repository"),
    ):
        for force in ((), ("--force",)):
            res = run_cli("checkout", "ds@v1", dest, *force, cwd=proj)
            assert_one_line_error(res, 2, "refusing to check out", how)
    # One file, into the repository or over one of its files.
    res = run_cli("checkout", "ds@v1", ".reprocas/reflog", "--path", "a.csv", "--force", cwd=proj)
    assert_one_line_error(res, 2, "lies inside the repository")
    res = run_cli("checkout", "ds@v1", ".reprocas", "--path", "a.csv", "--force", cwd=proj)
    assert_one_line_error(res, 2, "is the repository")
    with reprocas.Repo.open(repo_path) as repo:
        for target in (repo_path, repo_path / "index", proj):
            with pytest.raises(RepositoryOverlapError):
                repo.checkout("ds@v1", target, force=True)
        with pytest.raises(RepositoryOverlapError):
            repo.export_table("ds@v1", "a.csv", repo_path / "reflog")
    assert not (repo_path / "new-dir").exists()
    assert _fingerprint(repo_path) == before, "a refused checkout wrote to the repository"
    assert sorted(os.listdir(proj)) == [".reprocas", "alias", "data"]
    verify_ok(repo_path)
    with reprocas.Repo.open(repo_path) as repo:
        assert [e.ref for e in repo.log()] == ["ds@v1"]
        assert_checkout_equals(repo, "ds@v1", want, tmp_path / "co")


def test_a_link_to_the_repository_in_dest_is_removed_as_a_link(
    project: tuple[Path, Path, dict[str, Entry]], tmp_path: Path
) -> None:
    proj, repo_path, want = project
    dest = tmp_path / "dest"
    dest.mkdir()
    os.symlink(repo_path, dest / "link-to-repo")
    (dest / "old.txt").write_text("stale\n")
    before = _fingerprint(repo_path)
    res = assert_ok(run_cli("checkout", "ds@v1", dest, "--force", "--json", cwd=proj)).json()
    assert res["removed"] == ["link-to-repo", "old.txt"]
    assert not diff(want, describe(dest))
    assert _fingerprint(repo_path) == before
    verify_ok(repo_path)


@pytest.fixture
def mounts() -> Iterator[list[Path]]:
    """Mount points to unmount afterwards (mounting needs root: CI runs as root)."""
    if os.geteuid() != 0:
        skip_outside_ci("bind mounts need root")
    made: list[Path] = []
    yield made
    for m in reversed(made):
        if subprocess.run(["umount", str(m)], capture_output=True, check=False).returncode:
            subprocess.run(["umount", "-l", str(m)], capture_output=True, check=False)


def _mount(mounts: list[Path], *args: str) -> None:
    proc = subprocess.run(["mount", *args], capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        skip_outside_ci(f"this environment does not permit mounting: {proc.stderr}")
    mounts.append(Path(args[-1]))


def test_aliases_of_the_repository_that_paths_do_not_show(
    project: tuple[Path, Path, dict[str, Entry]], tmp_path: Path, mounts: list[Path]
) -> None:
    """A bind mount of the repository has another path but the same directory: found
    by device and inode, for SRC, for DEST and below a DEST that --force would empty.
    A mount point below DEST that the version lacks is not emptied either."""
    proj, repo_path, want = project
    alias = tmp_path / "alias"
    alias.mkdir()
    _mount(mounts, "--bind", str(repo_path), str(alias))
    before = _fingerprint(repo_path)
    assert_one_line_error(run_cli("commit", alias, "-d", "self", cwd=proj), 2, "is the repository")
    assert_one_line_error(
        run_cli("commit", alias / "index", "-d", "self", cwd=proj), 2, "lies inside"
    )
    for force in ((), ("--force",)):
        res = run_cli("checkout", "ds@v1", alias, *force, cwd=proj)
        assert_one_line_error(res, 2, "is the repository")
    dest = tmp_path / "dest"
    (dest / "inner").mkdir(parents=True)
    (dest / "old.txt").write_text("stale\n")
    _mount(mounts, "--bind", str(repo_path), str(dest / "inner"))
    res = run_cli("checkout", "ds@v1", dest, "--force", cwd=proj)
    assert_one_line_error(res, 2, "is the repository", "nothing was written")
    assert (dest / "old.txt").read_text() == "stale\n"
    assert _fingerprint(repo_path) == before
    # Another file system mounted below DEST, not part of the version.
    dest2 = tmp_path / "dest2"
    (dest2 / "mnt").mkdir(parents=True)
    _mount(mounts, "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(dest2 / "mnt"))
    (dest2 / "mnt" / "theirs.txt").write_text("on another file system\n")
    res = run_cli("checkout", "ds@v1", dest2, "--force", cwd=proj)
    assert_one_line_error(res, 2, "another file system")
    assert (dest2 / "mnt" / "theirs.txt").read_text() == "on another file system\n"
    verify_ok(repo_path)
    with reprocas.Repo.open(repo_path) as repo:
        assert [e.ref for e in repo.log()] == ["ds@v1"]
        assert_checkout_equals(repo, "ds@v1", want, tmp_path / "co")


# --- item 5: names that could be read as an id prefix ------------------------------------


def test_a_dataset_name_cannot_shadow_a_version_id(cli: Cli, tmp_path: Path) -> None:
    src = tmp_path / "d"
    want = _tree(src, {"x.txt": b"x\n"})
    assert_ok(cli("init"))
    v1 = assert_ok(cli("commit", src, "-d", "ds", "--json")).json()
    short = v1["id"][:12]
    for name in (short, v1["id"], "ABCDEF", "abcdef", "0123456789"):
        res = cli("commit", src, "-d", name)
        assert_one_line_error(res, 2, "invalid dataset name", "id prefix")
    # Not only hex digits, or fewer than 6: an ordinary name.
    for name in ("abcde", "cafe-01", "deadbeefx", f"{short}/part"):
        assert_ok(cli("commit", src, "-d", name))
    shown = assert_ok(cli("show", short, "--json")).json()
    assert shown["ref"] == "ds@v1" and shown["id"] == v1["id"]
    # Run names follow the same rule (a run name is read before a run id prefix).
    res = cli("run", "--name", "abc123", "--", "true", cwd=tmp_path)
    assert_one_line_error(res, 2, "invalid run name", "id prefix")
    with reprocas.Repo.open(tmp_path / "repo") as repo:
        with pytest.raises(InvalidNameError):
            repo.commit(src, "feedface")
        assert "feedface" not in repo.datasets()
        verify_ok(repo)
        for name in ("ds", "abcde", "cafe-01", "deadbeefx", f"{short}/part"):
            assert_checkout_equals(repo, name, want, tmp_path / f"co-{name.replace('/', '-')}")


def test_an_old_dataset_named_like_an_id_is_ambiguous_not_guessed(cli: Cli, tmp_path: Path) -> None:
    """A repository made before such names were refused may hold one: when it is also
    the start of a version id, neither reading is assumed; NAME@latest and a longer
    prefix still say which is meant."""
    src = tmp_path / "d"
    want = _tree(src, {"x.txt": b"x\n"})
    other = tmp_path / "e"
    want_other = _tree(other, {"y.txt": b"another version\n"})
    assert_ok(cli("init"))
    v1 = assert_ok(cli("commit", src, "-d", "ds", "--json")).json()
    short = v1["id"][:12]
    with reprocas.Repo.open(tmp_path / "repo") as repo:
        store = repo.store
        r = repo.commit(other, "tmp")
        with store.index.read() as txn:
            root = store.load_snapshot(txn, r.id).root
        writer = Writer(store)
        try:
            finish_snapshot(
                store,
                writer,
                name=short,  # as an older reprocas allowed
                root=ObjectId(root.raw),
                kind="dataset",
                source="dir",
                message="legacy",
                tags=(),
                step=None,
                author="test",
                files=1,
                logical_bytes=len(b"another version\n"),
            )
        finally:
            writer.close()
    res = cli("show", short)
    assert_one_line_error(res, 2, "both a dataset name", f"{short}@latest")
    assert assert_ok(cli("show", f"{short}@latest", "--json")).json()["ref"] == f"{short}@v1"
    assert assert_ok(cli("show", v1["id"][:20], "--json")).json()["ref"] == "ds@v1"
    log = assert_ok(cli("log", short, "--json")).json()  # a dataset argument, not a ref
    assert [e["ref"] for e in log] == [f"{short}@v1"]
    with reprocas.Repo.open(tmp_path / "repo") as repo:
        with pytest.raises(AmbiguousRefError):
            repo.resolve(short)
        verify_ok(repo)
        assert_checkout_equals(repo, "ds@v1", want, tmp_path / "co1")
        assert_checkout_equals(repo, f"{short}@latest", want_other, tmp_path / "co2")


# --- item 6: checkout --force makes DEST exactly the version ------------------------------


def test_force_checkout_removes_and_lists_what_the_version_lacks(cli: Cli, tmp_path: Path) -> None:
    src = tmp_path / "src"
    want = _tree(
        src,
        {
            "keep.txt": b"kept\n",
            "sub/a.txt": b"a\n",
            "sub/deeper/b.txt": b"b\n",
            "was-dir": b"a file in the version\n",
        },
    )
    (src / "became-file").mkdir()
    (src / "became-file" / "c.txt").write_bytes(b"c\n")
    want = describe(src)
    assert_ok(cli("init"))
    assert_ok(cli("commit", src, "-d", "ds"))
    dest = tmp_path / "dest"
    assert_ok(cli("checkout", "ds", dest))
    # Outside DEST, precious data that a link in DEST points at: never followed.
    precious = tmp_path / "precious"
    precious_want = _tree(precious, {"p.txt": b"mine\n", "d/q.txt": b"also mine\n"})
    (dest / "extra.txt").write_text("stale\n")
    (dest / "sub" / "extra-dir" / "x" / "y").mkdir(parents=True)
    (dest / "sub" / "extra-dir" / "x" / "y" / "z.bin").write_bytes(os.urandom(100))
    os.chmod(dest / "sub" / "extra-dir" / "x", 0o500)  # read-only: still removed
    os.symlink(precious, dest / "link-out")
    os.symlink(precious / "d", dest / "sub" / "deeper" / "link-dir")
    (dest / "keep.txt").write_bytes(b"changed\n")
    (dest / "was-dir").unlink()
    (dest / "was-dir").mkdir()
    (dest / "was-dir" / "inside.txt").write_bytes(b"in a dir the version lacks\n")
    for p in (dest / "became-file").iterdir():
        p.unlink()
    (dest / "became-file").rmdir()
    (dest / "became-file").write_bytes(b"now a file\n")
    res = assert_ok(cli("checkout", "ds", dest, "--force", "--json")).json()
    assert res["removed"] == [
        "became-file",
        "extra.txt",
        "link-out",
        "sub/deeper/link-dir",
        "sub/extra-dir/",
        "was-dir/",
    ]
    assert not diff(want, describe(dest)), diff(want, describe(dest))
    assert describe(precious) == precious_want
    # The human output lists them too; a second --force over the exact version removes nothing.
    (dest / "again.txt").write_text("x")
    human = assert_ok(cli("checkout", "ds", dest, "--force"))
    assert "removed 1 entry " in human.out and "again.txt" in human.out
    assert assert_ok(cli("checkout", "ds", dest, "--force", "--json")).json()["removed"] == []
    # A later version with fewer files, forced over the earlier one's checkout.
    (src / "keep.txt").unlink()
    for p in (src / "sub" / "deeper").iterdir():
        p.unlink()
    (src / "sub" / "deeper").rmdir()
    want2 = describe(src)
    assert_ok(cli("commit", src, "-d", "ds"))
    res = assert_ok(cli("checkout", "ds@v2", dest, "--force", "--json")).json()
    assert res["removed"] == ["keep.txt", "sub/deeper/"]
    assert not diff(want2, describe(dest))
    with reprocas.Repo.open(tmp_path / "repo") as repo:
        r = repo.checkout("ds@v1", dest, force=True)
        assert r.removed == ()
        assert not diff(want, describe(dest))
        verify_ok(repo)
        assert_checkout_equals(repo, "ds@v1", want, tmp_path / "co1")
        assert_checkout_equals(repo, "ds@v2", want2, tmp_path / "co2")


def test_checkout_of_one_file_into_a_directory(cli: Cli, tmp_path: Path) -> None:
    src = tmp_path / "src"
    want = _tree(src, {"sub/a.csv": b"id\n1\n", "b.txt": b"b\n"})
    assert_ok(cli("init"))
    assert_ok(cli("commit", src, "-d", "ds"))
    into = tmp_path / "into"
    into.mkdir()
    (into / "other.txt").write_bytes(b"not touched\n")
    res = assert_ok(cli("checkout", "ds", into, "--path", "sub/a.csv", "--json")).json()
    assert res["dest"] == str(into / "a.csv") and res["files"] == 1
    assert describe_entry(into / "a.csv") == want["sub/a.csv"]
    assert (into / "other.txt").read_bytes() == b"not touched\n"
    # Again: the file exists now, so only --force overwrites it.
    (into / "a.csv").write_bytes(b"edited\n")
    assert_one_line_error(cli("checkout", "ds", into, "--path", "sub/a.csv"), 2, "--force")
    assert (into / "a.csv").read_bytes() == b"edited\n"
    assert_ok(cli("checkout", "ds", into, "--path", "sub/a.csv", "--force"))
    assert describe_entry(into / "a.csv") == want["sub/a.csv"]
    assert sorted(os.listdir(into)) == ["a.csv", "other.txt"]
    # A DEST that does not exist is the file's new name, as before.
    assert_ok(cli("checkout", "ds", tmp_path / "renamed.csv", "--path", "sub/a.csv"))
    assert describe_entry(tmp_path / "renamed.csv") == want["sub/a.csv"]
    with reprocas.Repo.open(tmp_path / "repo") as repo:
        r = repo.checkout("ds", into, path="b.txt")
        assert r.dest == into / "b.txt"
        assert describe_entry(into / "b.txt") == want["b.txt"]
        verify_ok(repo)
        assert_checkout_equals(repo, "ds@v1", want, tmp_path / "co")


# --- item 11: trees thousands of levels deep ---------------------------------------------

DEPTH = 1500


def _make_deep(root: Path, depth: int) -> list[str]:
    """``root/d/d/.../d`` ``depth`` levels deep (built with directory descriptors:
    os.makedirs itself recurses), with a file at the bottom, one every 500 levels and a
    link halfway; returns the relative paths of the files."""
    os.mkdir(root)
    fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY)
    files = []
    try:
        for level in range(1, depth + 1):
            os.mkdir("d", dir_fd=fd)
            nfd = os.open("d", os.O_RDONLY | os.O_DIRECTORY, dir_fd=fd)
            os.close(fd)
            fd = nfd
            rel = "/".join(["d"] * level)
            if level % 500 == 0 or level == depth:
                w = os.open("f.txt", os.O_WRONLY | os.O_CREAT, 0o644, dir_fd=fd)
                os.write(w, f"level {level}\n".encode())
                os.close(w)
                files.append(f"{rel}/f.txt")
            if level == depth // 2:
                os.symlink("../..", "up", dir_fd=fd)
    finally:
        os.close(fd)
    return files


def _describe_deep(root: Path) -> dict[str, Entry]:
    """Like trees.describe, without recursion."""
    out: dict[str, Entry] = {}
    stack = [(root, "")]
    while stack:
        d, rel = stack.pop()
        with os.scandir(d) as it:
            for de in it:
                e = describe_entry(Path(de.path))
                out[rel + de.name] = e
                if e.kind == "dir":
                    stack.append((Path(de.path), f"{rel}{de.name}/"))
    return out


@pytest.fixture
def deep_dirs(tmp_path: Path) -> Iterator[Path]:
    """A scratch directory removed by `rm -rf` afterwards (shutil.rmtree recurses)."""
    d = tmp_path / "deep"
    d.mkdir()
    yield d
    subprocess.run(["rm", "-rf", str(d)], check=True)


def test_trees_1500_levels_deep(cli: Cli, deep_dirs: Path, tmp_path: Path) -> None:
    src = deep_dirs / "src"
    files = _make_deep(src, DEPTH)
    want = _describe_deep(src)
    assert_ok(cli("init"))
    v1 = assert_ok(cli("commit", src, "-d", "deep", "--json")).json()
    assert v1["files"] == len(files)
    again = assert_ok(cli("commit", src, "-d", "deep", "--json")).json()
    assert again["created"] is False and again["new_bytes"] == 0
    # Every file is in the files cache, the deep ones too (their paths are longer than an
    # LMDB key may be), so unchanged files are not read again.
    with reprocas.Repo.open(tmp_path / "repo") as repo:
        index = repo.store.index
        with index.read() as txn:
            assert txn.stat(index.db["filecache"])["entries"] == len(files)
    ls = assert_ok(cli("ls", "deep", "-r", "--json")).json()
    assert {e["path"].rstrip("/") for e in ls} == set(want)
    dest = deep_dirs / "co"
    assert_ok(cli("checkout", "deep", dest))
    assert _describe_deep(dest) == want
    assert_ok(cli("verify", "--read-data"))
    du = assert_ok(cli("du", "--json")).json()
    assert du["versions"][0]["logical_bytes"] == sum(e.size for e in want.values())
    # A second version without the deepest half, forced over the full checkout: the
    # stale 750 levels are removed, without recursion.
    cut = src.joinpath(*["d"] * (DEPTH // 2 + 1))
    subprocess.run(["rm", "-rf", str(cut)], check=True)
    want2 = _describe_deep(src)
    assert_ok(cli("commit", src, "-d", "deep"))
    res = assert_ok(cli("checkout", "deep@v2", dest, "--force", "--json")).json()
    assert res["removed"] == ["/".join(["d"] * (DEPTH // 2 + 1)) + "/"]
    assert _describe_deep(dest) == want2
    d = assert_ok(cli("diff", "deep@v1", "deep@v2", "--json")).json()
    assert {p for p, f in d["files"].items() if f["status"] == "removed"} == {
        f for f in files if f.count("/") > DEPTH // 2
    }
    assert_ok(cli("forget", "--keep-last", "1"))
    assert_ok(cli("prune"))
    assert_ok(cli("gc"))
    with reprocas.Repo.open(tmp_path / "repo") as repo:
        verify_ok(repo)
        co = deep_dirs / "co2"
        repo.checkout("deep@v2", co)
        assert _describe_deep(co) == want2


# --- item 12: setuid, setgid and sticky bits ------------------------------------------------


def test_special_mode_bits_are_refused_unless_asked_for(cli: Cli, tmp_path: Path) -> None:
    src = tmp_path / "src"
    _tree(src, {"plain.txt": b"plain\n", "bin/tool": b"#!/bin/sh\n", "bin/grp": b"g\n"})
    os.chmod(src / "bin" / "tool", 0o4755)
    os.chmod(src / "bin" / "grp", 0o2755)
    (src / "shared").mkdir()
    os.chmod(src / "shared", 0o1777)
    want = describe(src)
    assert want["bin/tool"].mode & stat.S_ISUID, "this file system kept no setuid bit"
    assert_ok(cli("init"))
    assert_ok(cli("commit", src, "-d", "ds"))
    dest = tmp_path / "dest"
    res = cli("checkout", "ds", dest)
    assert_one_line_error(res, 2, "bin/grp", "setgid", "--special-modes", "2 more")
    assert not dest.exists(), "a refused checkout wrote something"
    res = cli("checkout", "ds", dest, "--path", "bin/tool")
    assert_one_line_error(res, 2, "bin/tool", "4755", "setuid")
    res = cli("checkout", "ds", dest, "--path", "shared")
    assert_one_line_error(res, 2, "sticky")
    res = cli("checkout", "ds", dest, "--path", "bin/")
    assert_one_line_error(res, 2, "bin/grp", "setgid", "(and 1 more)")
    assert not dest.exists()
    # What holds no such bit checks out as ever.
    assert_ok(cli("checkout", "ds", dest, "--path", "plain.txt"))
    assert describe_entry(dest) == want["plain.txt"]
    dest.unlink()
    assert_ok(cli("checkout", "ds", dest, "--special-modes"))
    assert not diff(want, describe(dest))
    with reprocas.Repo.open(tmp_path / "repo") as repo:
        with pytest.raises(SpecialModeError):
            repo.checkout("ds", tmp_path / "api")
        assert not (tmp_path / "api").exists()
        repo.checkout("ds", tmp_path / "api", special_modes=True)
        assert not diff(want, describe(tmp_path / "api"))
        verify_ok(repo)
