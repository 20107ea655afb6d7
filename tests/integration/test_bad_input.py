"""Bad input: each mistake is one line on stderr, a documented exit code, and no damage.

Exit codes (README): 2 usage, 3 unreadable input, 4 not found, 5 storage / disk full,
6 integrity problem, 7 unsupported format.
"""

from __future__ import annotations

import errno
import json
import os
import random
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import reprocas
from reprocas.cli.main import run as cli_run
from reprocas.errors import AmbiguousRefError, RefNotFoundError, UnsafePathError
from reprocas.model.objects import Snapshot, Tree, TreeEntry
from reprocas.native import core
from reprocas.store.index import pack
from reprocas.store.repository import version_ref
from reprocas.store.writer import Writer
from tests.conftest import skip_outside_ci
from tests.integration._helpers import (
    REPROCAS,
    CliResult,
    assert_nothing_committed,
    assert_ok,
    assert_one_line_error,
    clean_env,
    log_json,
    run_cli,
    tmp_files,
    verify_ok,
)
from tests.integration.conftest import Cli
from tests.integration.trees import describe, diff

# --- a repository with one good version, to check nothing gets damaged ----------------


@pytest.fixture
def seeded(repo_path: Path, tmp_path: Path) -> Iterator[Path]:
    """A repository holding ds@v1 (returned: the source of v1)."""
    src = tmp_path / "v1-src"
    src.mkdir()
    (src / "a.txt").write_bytes(b"first version\n")
    (src / "b.bin").write_bytes(random.Random(1).randbytes(100_000))
    with reprocas.Repo.init(repo_path) as repo:
        repo.commit(src, "ds", message="good")
    yield src


def assert_undamaged(repo_path: Path, v1_src: Path, tmp_path: Path) -> None:
    """verify --read-data passes, ds@v1 checks out exactly, no tmp files are left."""
    verify_ok(repo_path, read_data=True)
    assert tmp_files(repo_path) == []
    dest = Path(tempfile.mkdtemp(dir=tmp_path)) / "v1"
    with reprocas.Repo.open(repo_path) as repo:
        repo.checkout("ds@v1", dest)
    assert not diff(describe(v1_src), describe(dest))


# --- sources -------------------------------------------------------------------------


def test_missing_source(cli: Cli, seeded: Path, repo_path: Path, tmp_path: Path) -> None:
    res = cli("commit", tmp_path / "no-such-dir", "-d", "ds")
    assert_one_line_error(res, 3, "no-such-dir")
    assert [e["ref"] for e in log_json(repo_path)] == ["ds@v1"]
    assert_undamaged(repo_path, seeded, tmp_path)


def _without_root_override() -> list[str]:
    """A command prefix that takes away root's power to read any file: as root, run
    under setpriv without CAP_DAC_OVERRIDE and CAP_DAC_READ_SEARCH (then mode bits
    apply to root too)."""
    if os.geteuid() != 0:
        return []
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        skip_outside_ci("running as root without setpriv: cannot make a file unreadable")
    caps = "-dac_override,-dac_read_search"
    return [setpriv, f"--inh-caps={caps}", f"--bounding-set={caps}"]


@pytest.mark.parametrize("what", ["file", "directory"])
def test_unreadable_file_or_directory(
    repo_path: Path, seeded: Path, tmp_path: Path, what: str
) -> None:
    prefix = _without_root_override()
    src = tmp_path / "src"
    src.mkdir()
    (src / "ok.txt").write_bytes(b"readable\n")
    (src / "z-more.bin").write_bytes(os.urandom(200_000))
    bad = src / ("secret.txt" if what == "file" else "secret-dir")
    if what == "file":
        bad.write_bytes(b"you may not read this\n")
    else:
        bad.mkdir()
        (bad / "inner.txt").write_bytes(b"hidden\n")
    os.chmod(bad, 0)
    try:
        argv = [*prefix, str(REPROCAS), "--repo", str(repo_path), "commit", str(src), "-d", "ds"]
        proc = subprocess.run(argv, env=clean_env(), capture_output=True, check=False, timeout=60)
        res = CliResult(tuple(argv), proc.returncode, proc.stdout, proc.stderr)
        line = assert_one_line_error(res, 3, str(bad))
        assert "permission" in line.lower(), line
        assert [e["ref"] for e in log_json(repo_path)] == ["ds@v1"]
        assert_undamaged(repo_path, seeded, tmp_path)
    finally:
        os.chmod(bad, 0o755)


def test_debug_chunk_of_a_directory_or_missing_file(cli: Cli, tmp_path: Path) -> None:
    d = tmp_path / "a-dir"
    d.mkdir()
    assert_one_line_error(cli("debug", "chunk", d, repo=None), 3, "a-dir")
    assert_one_line_error(cli("debug", "chunk", tmp_path / "missing.bin", repo=None), 3)


def test_fifo_in_tree_is_skipped_with_a_notice(
    cli: Cli, seeded: Path, repo_path: Path, tmp_path: Path
) -> None:
    src = tmp_path / "src"
    src.mkdir()
    (src / "data.txt").write_bytes(b"regular\n")
    os.mkfifo(src / "a-pipe")
    (src / "sub").mkdir()
    os.mkfifo(src / "sub" / "another-pipe")
    res = cli("commit", src, "-d", "withfifo", "--json", timeout=30)  # must not block
    out = assert_ok(res).json()
    assert sorted(out["skipped"]) == sorted(
        [str(src / "a-pipe"), str(src / "sub" / "another-pipe")]
    )
    assert out["files"] == 1
    human = assert_ok(cli("commit", src, "-d", "withfifo2", timeout=30))
    assert "skipped" in human.err and "a-pipe" in human.err, human.describe()
    dest = tmp_path / "out"
    assert_ok(cli("checkout", "withfifo@v1", dest))
    expected = {k: v for k, v in describe(src).items() if v.kind != "other"}
    assert not diff(expected, describe(dest))
    # A FIFO given as the source itself: an error, not a hang.
    res = cli("commit", src / "a-pipe", "-d", "fifo", timeout=30)
    assert_one_line_error(res, 3, "a-pipe")
    assert_undamaged(repo_path, seeded, tmp_path)


class _SabotagingChunker:
    """Wraps ``_core.FileChunker``: before reading a chosen file, deletes or grows it."""

    real: Any = None
    victim: str = ""
    action: str = ""

    def __init__(self, path: str | os.PathLike[str], *args: Any, **kw: Any) -> None:
        if os.fspath(path) == self.victim:
            if self.action == "delete":
                os.unlink(path)
            elif self.action == "grow":
                with open(path, "ab") as f:
                    f.write(b"appended while the commit ran\n" * 100)
        self._inner = _SabotagingChunker.real(path, *args, **kw)

    def __iter__(self) -> _SabotagingChunker:
        return self

    def __next__(self) -> Any:
        return next(self._inner)

    @property
    def file_digest(self) -> bytes | None:
        return self._inner.file_digest  # type: ignore[no-any-return]

    @property
    def size(self) -> int | None:
        return self._inner.size  # type: ignore[no-any-return]


def _cli_in_process(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = cli_run(list(argv))
    cap = capsys.readouterr()
    return code, cap.out, cap.err


def test_file_vanishing_during_commit(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    seeded: Path,
    repo_path: Path,
    tmp_path: Path,
) -> None:
    src = tmp_path / "src"
    src.mkdir()
    (src / "a-big.bin").write_bytes(os.urandom(500_000))
    victim = src / "b-vanishing.bin"
    victim.write_bytes(os.urandom(300_000))
    (src / "c-after.bin").write_bytes(os.urandom(200_000))
    _SabotagingChunker.real = core.FileChunker
    _SabotagingChunker.victim = str(victim)
    _SabotagingChunker.action = "delete"
    monkeypatch.setattr(core, "FileChunker", _SabotagingChunker)
    code, _, err = _cli_in_process(capsys, "--repo", str(repo_path), "commit", str(src), "-d", "ds")
    res = CliResult(("commit",), code, b"", err.encode())
    assert_one_line_error(res, 3, "b-vanishing.bin")
    assert [e["ref"] for e in log_json(repo_path)] == ["ds@v1"]
    assert_undamaged(repo_path, seeded, tmp_path)
    # The next commit (of what is there now) succeeds.
    monkeypatch.undo()
    with reprocas.Repo.open(repo_path) as repo:
        r = repo.commit(src, "ds")
        assert r.ref == "ds@v2" and r.files == 2


def test_file_growing_during_commit_gives_a_consistent_version(
    monkeypatch: pytest.MonkeyPatch, repo: reprocas.Repo, tmp_path: Path
) -> None:
    """A file that changes between the directory scan and its read: the version must
    agree with itself (the size `ls`/`show` report equals the bytes checkout writes) —
    or the commit must fail cleanly."""
    src = tmp_path / "src"
    src.mkdir()
    growing = src / "growing.log"
    growing.write_bytes(b"line\n" * 1000)
    (src / "other.txt").write_bytes(b"other\n")
    _SabotagingChunker.real = core.FileChunker
    _SabotagingChunker.victim = str(growing)
    _SabotagingChunker.action = "grow"
    monkeypatch.setattr(core, "FileChunker", _SabotagingChunker)
    try:
        r = repo.commit(src, "ds")
    except reprocas.errors.SourceError:
        # Refused: then nothing was committed and the repository is sound.
        monkeypatch.undo()
        assert_nothing_committed(repo, [])
        return
    monkeypatch.undo()
    content = repo.cat(r.ref, "growing.log")
    [entry] = repo.ls(r.ref, "growing.log")
    assert entry.size == len(content), (
        f"ls says {entry.size} bytes, the stored file has {len(content)}"
    )
    show = repo.show(r.ref)
    assert show.logical_bytes == len(content) + len(b"other\n"), show
    out = tmp_path / "out"
    repo.checkout(r.ref, out)
    assert os.path.getsize(out / "growing.log") == entry.size


def test_non_utf8_name_is_refused(cli: Cli, seeded: Path, repo_path: Path, tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    (src / "fine.txt").write_bytes(b"fine\n")
    with open(os.path.join(os.fsencode(src), b"latin1-\xe9t\xe9.txt"), "wb") as f:
        f.write(b"x")
    res = cli("commit", src, "-d", "ds")
    assert_one_line_error(res, 3, "UTF-8")
    assert_undamaged(repo_path, seeded, tmp_path)


def test_invalid_dataset_and_tag_names(cli: Cli, seeded: Path, repo_path: Path) -> None:
    for name in ("has space", "@at", "../up", "-dash", "a//b"):
        assert_one_line_error(cli("commit", seeded, "-d", name), 2, "invalid dataset name")
    for tag in ("latest", "v3", "bad tag"):
        assert_one_line_error(cli("commit", seeded, "-d", "ds", "-t", tag), 2, "invalid tag")
        assert_one_line_error(cli("tag", "ds@v1", tag), 2, "invalid tag")
    assert [e["ref"] for e in log_json(repo_path)] == ["ds@v1"]


# --- repositories ----------------------------------------------------------------------


def test_not_a_repository(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    line = assert_one_line_error(run_cli("--repo", str(empty), "log"), 4, str(empty))
    assert "--repo" in line
    assert_one_line_error(run_cli("--repo", str(tmp_path / "nope"), "log"), 4, "nope")
    nowhere = tmp_path / "nowhere"
    res = run_cli("log", env={"REPROCAS_REPO": str(nowhere)}, cwd=empty)
    assert_one_line_error(res, 4, "REPROCAS_REPO", str(nowhere))
    outside = tmp_path / "outside" / "deeper"
    outside.mkdir(parents=True)
    assert not any((p / ".reprocas").exists() for p in (outside, *outside.parents))
    line = assert_one_line_error(run_cli("log", cwd=outside), 4)
    assert "not inside a reprocas repository" in line
    # Through the API: a clear exception too.
    with pytest.raises(reprocas.errors.RepositoryNotFoundError):
        reprocas.Repo.open(empty)


def test_unknown_refs(cli: Cli, seeded: Path, tmp_path: Path) -> None:
    assert_one_line_error(cli("checkout", "nope@v1", tmp_path / "o1"), 4, "nope")
    assert_one_line_error(cli("show", "ds@v9"), 4, "v1")  # says which versions exist
    assert_one_line_error(cli("show", "ds@nosuchtag"), 4, "nosuchtag")
    assert_one_line_error(cli("show", "nosuchdataset"), 4, "ds")  # lists the datasets
    assert_one_line_error(cli("ls", "ds@v1", "no/such/path"), 4, "'no'", "a.txt")
    assert_one_line_error(cli("cat", "ds@v1", "missing.txt"), 4, "missing.txt")
    assert_one_line_error(cli("cat", "ds@v1", "../a.txt"), 4)
    assert_one_line_error(cli("log", "nosuchdataset"), 4)
    assert not (tmp_path / "o1").exists()


def test_id_prefixes(cli: Cli, seeded: Path, repo_path: Path) -> None:
    [entry] = log_json(repo_path)
    full = entry["id"]
    for n in (6, 7, 12, 64):
        shown = assert_ok(cli("show", full[:n], "--json")).json()
        assert shown["id"] == full and shown["ref"] == "ds@v1"
    assert assert_ok(cli("show", full[:8].upper(), "--json")).json()["id"] == full
    # Six hex digits that match nothing.
    other = next(p for p in (f"{i:06x}" for i in range(0xFFFFFF)) if not full.startswith(p))
    assert_one_line_error(cli("show", other), 4, other)
    # Fewer than six digits is not a prefix at all: unknown ref.
    assert_one_line_error(cli("show", full[:5]), 4)


def test_ambiguous_id_prefix_lists_the_candidates(cli: Cli, seeded: Path, repo_path: Path) -> None:
    rng = random.Random(3)
    fakes = [bytes.fromhex("abcdef") + rng.randbytes(29) for _ in range(2)]
    with reprocas.Repo.open(repo_path) as repo:
        index = repo.store.index
        with index.write() as txn:
            for i, k in enumerate(fakes):
                txn.put(k, pack(["dataset", "fake", i + 1]), db=index.db["snapshots"])
        with pytest.raises(AmbiguousRefError) as info:
            repo.resolve("abcdef")
        msg = str(info.value)
        for k in fakes:
            assert k.hex()[:16] in msg, msg
        assert "fake@v1" in msg and "fake@v2" in msg
        # A longer prefix that tells them apart resolves past the ambiguity (to a
        # not-found here, since the fake entries have no snapshot objects).
        longer = fakes[0].hex()[:20]
        with pytest.raises(reprocas.errors.ReprocasError) as info2:
            repo.resolve(longer)
        assert not isinstance(info2.value, AmbiguousRefError)
    res = cli("show", "abcdef")
    line = assert_one_line_error(res, 2, "ambiguous")
    for k in fakes:
        assert k.hex()[:16] in line


def test_non_empty_destination_without_force(
    cli: Cli, seeded: Path, repo_path: Path, tmp_path: Path
) -> None:
    dest = tmp_path / "dest"
    dest.mkdir()
    (dest / "precious.txt").write_bytes(b"mine\n")
    before = describe(dest)
    assert_one_line_error(cli("checkout", "ds@v1", dest), 2, str(dest))
    assert describe(dest) == before  # nothing written, nothing removed
    # A file as destination of a directory version; a symlink as destination.
    f = tmp_path / "a-file"
    f.write_bytes(b"x")
    assert_one_line_error(cli("checkout", "ds@v1", f), 2)
    assert f.read_bytes() == b"x"
    link = tmp_path / "a-link"
    os.symlink(tmp_path / "elsewhere", link)
    assert_one_line_error(cli("checkout", "ds@v1", link), 2)
    assert not (tmp_path / "elsewhere").exists()
    # An existing file as destination of a single-file checkout.
    one = tmp_path / "one.txt"
    one.write_bytes(b"keep\n")
    assert_one_line_error(cli("checkout", "ds@v1", one, "--path", "a.txt"), 2, "--force")
    assert one.read_bytes() == b"keep\n"
    # With --force, DEST becomes exactly the version: what it lacks is removed, and listed.
    res = assert_ok(cli("checkout", "ds@v1", dest, "--force", "--json"))
    assert res.json()["removed"] == ["precious.txt"]
    assert not diff(describe(seeded), describe(dest))
    assert_ok(cli("checkout", "ds@v1", one, "--path", "a.txt", "--force"))
    assert one.read_bytes() == (seeded / "a.txt").read_bytes()


def test_force_checkout_over_another_version(cli: Cli, repo_path: Path, tmp_path: Path) -> None:
    """--force over a checkout of another version, where files became links and links
    became files: the result holds the requested version's entries."""
    v1 = tmp_path / "v1"
    v1.mkdir()
    (v1 / "x").write_bytes(b"x is a file in v1\n")
    os.symlink("target-of-y", v1 / "y")
    (v1 / "z.txt").write_bytes(b"z one\n")
    os.chmod(v1 / "z.txt", 0o755)
    v2 = tmp_path / "v2"
    v2.mkdir()
    os.symlink("x-is-a-link-now", v2 / "x")
    (v2 / "y").write_bytes(b"y is a file in v2\n")
    (v2 / "z.txt").write_bytes(b"z two, longer\n")
    os.chmod(v2 / "z.txt", 0o600)
    with reprocas.Repo.init(repo_path) as repo:
        repo.commit(v1, "ds")
        repo.commit(v2, "ds")
    dest = tmp_path / "dest"
    assert_ok(cli("checkout", "ds@v1", dest))
    res = cli("checkout", "ds@v2", dest, "--force")
    assert_ok(res)
    assert not diff(describe(v2), describe(dest))


# --- the disk fills up -------------------------------------------------------------------


def test_disk_full_during_commit(tmpfs: Path, tmp_path: Path) -> None:
    """Repository and source on one 8 MiB tmpfs: committing a 5 MiB source needs more
    than the space left. Exit 5 with a disk-full message; after the source is deleted
    and gc has run (still on the full tmpfs), the repository verifies and the earlier
    version checks out."""
    repo_path = tmpfs / "repo"
    v1 = tmpfs / "v1"
    v1.mkdir()
    (v1 / "small.bin").write_bytes(os.urandom(300_000))
    want_v1 = describe(v1)
    with reprocas.Repo.init(repo_path, pack_size=512 << 10) as repo:
        repo.commit(v1, "ds")
    shutil.rmtree(v1)
    big = tmpfs / "big"
    big.mkdir()
    for i in range(5):
        (big / f"part-{i}.bin").write_bytes(os.urandom(1 << 20))
    assert shutil.disk_usage(tmpfs).free < 5 << 20
    res = run_cli("--repo", str(repo_path), "commit", str(big), "-d", "ds")
    line = assert_one_line_error(res, 5, "disk full")
    assert "free some space" in line
    assert [e["ref"] for e in log_json(repo_path)] == ["ds@v1"]
    # Free space the way the message says; the failed commit removed what it wrote, so
    # gc finds nothing left over.
    shutil.rmtree(big)
    gc = assert_ok(run_cli("--repo", str(repo_path), "gc", "--json")).json()
    assert not gc["removed_packs"] and not gc["removed_tmp"], gc
    assert tmp_files(repo_path) == []
    verify_ok(repo_path, read_data=True)
    assert [e["ref"] for e in log_json(repo_path)] == ["ds@v1"]
    dest = tmp_path / "out"
    assert_ok(run_cli("--repo", str(repo_path), "checkout", "ds@v1", str(dest)))
    assert not diff(want_v1, describe(dest))
    # And a commit that fits succeeds afterwards.
    small = tmp_path / "v2"
    small.mkdir()
    (small / "small.bin").write_bytes(os.urandom(200_000))
    assert_ok(run_cli("--repo", str(repo_path), "commit", str(small), "-d", "ds"))
    verify_ok(repo_path, read_data=True)


def _fill_up(mnt: Path, leave: int = 0) -> Path:
    """Fill the tmpfs until about ``leave`` bytes are free (0: until writes fail)."""
    filler = mnt / f"filler-{time.monotonic_ns()}"
    block = b"\xff" * (64 << 10)
    with open(filler, "wb", buffering=0) as f:
        try:
            while True:
                free = shutil.disk_usage(mnt).free
                if free <= leave:
                    break
                f.write(block[: max(1, min(len(block), free - leave))])
        except OSError as exc:
            assert exc.errno == errno.ENOSPC, exc
    return filler


# Where the disk runs full. Real ENOSPC on the tmpfs: before the commit with some bytes
# left (the pack data), just after the first pack is sealed (its index transaction), and
# the same with one page left (LMDB then gets a short write). A tmpfs cannot be made to
# refuse writes into pages a file already has, so for the last steps the error is
# injected as the OS would raise it: the ref log append, the ref transaction after the
# ref log was written, and the files-cache save after the ref moved.
INJECTIONS = [
    "leave-0",
    "leave-64k",
    "after-first-seal",
    "after-first-seal-4k",
    "enospc-reflog",
    "enospc-ref-txn",
    "enospc-files-cache",
]


def _enospc() -> OSError:
    return OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


@pytest.mark.parametrize("where", INJECTIONS)
def test_disk_full_at_every_step_of_a_commit(
    tmpfs: Path,
    tmp_path: Path,
    where: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Whatever step the disk fills at: the commit either succeeds, or fails with exit
    code 5 and a disk-full message and creates no version; after space is freed and gc
    has run, the repository verifies, v1 and its tag are intact, the index rebuilds to
    the same log, and the commit then goes through."""
    import lmdb

    from reprocas.store import commit as commit_mod
    from reprocas.store import packs as packs_mod
    from reprocas.store.index import lmdb_error
    from reprocas.store.repository import Repository

    v1 = tmp_path / "v1"
    v1.mkdir()
    (v1 / "first.bin").write_bytes(os.urandom(100_000))
    v2 = tmp_path / "v2"
    v2.mkdir()
    (v2 / "first.bin").write_bytes((v1 / "first.bin").read_bytes())
    for i in range(3):
        (v2 / f"new-{i}.bin").write_bytes(os.urandom(200_000))
    (v2 / "text.csv").write_bytes(b"a,b,c\n1,2,3\n" * 20_000)
    want_v1, want_v2 = describe(v1), describe(v2)
    repo_path = tmpfs / "repo"
    with reprocas.Repo.init(repo_path, pack_size=128 << 10) as repo:
        repo.commit(v1, "ds", message="v1")
        repo.tag("ds@v1", "first")
    fillers: list[Path] = []

    def fill() -> None:
        leave = int(where.rsplit("-", 1)[1][:-1]) << 10 if where[-1] == "k" else 0
        fillers.append(_fill_up(tmpfs, leave))

    if where.startswith("leave-"):
        fill()
    elif where.startswith("after-first-seal"):
        real_seal = packs_mod.PackWriter.seal

        def seal(self: packs_mod.PackWriter) -> packs_mod.SealedPack:
            out = real_seal(self)
            if not fillers:
                fill()
            return out

        monkeypatch.setattr(packs_mod.PackWriter, "seal", seal)
    elif where == "enospc-reflog":

        def append_fails(self: Repository, entries: list[dict[str, Any]]) -> None:
            raise packs_mod._os_error(_enospc(), self.reflog_path, "writing")

        monkeypatch.setattr(Repository, "append_reflog", append_fails)
    elif where == "enospc-ref-txn":
        real_append = Repository.append_reflog

        def append_then_txn_fails(self: Repository, entries: list[dict[str, Any]]) -> None:
            real_append(self, entries)
            # What LMDB raises when the transaction that moves the refs cannot be written.
            raise lmdb.DiskError("mdb_txn_commit: No space left on device")

        monkeypatch.setattr(Repository, "append_reflog", append_then_txn_fails)
    else:

        def save_fails(self: commit_mod._Committer) -> None:
            # What Index.write raises when the files-cache transaction cannot be written.
            raise lmdb_error(lmdb.DiskError("No space left on device"), self.repo.index.path)

        monkeypatch.setattr(commit_mod._Committer, "save_cache", save_fails)

    code, _, err = _cli_in_process(
        capsys, "--repo", str(repo_path), "commit", str(v2), "-d", "ds", "-m", "v2"
    )
    monkeypatch.undo()
    for f in fillers:
        f.unlink()
    refs = [e["ref"] for e in log_json(repo_path)]
    # Judged at the end, so that the recovery below is checked in every case.
    late: list[str] = []
    if code == 0:
        assert "ds@v2" in refs
    else:
        res = CliResult(("commit",), code, b"", err.encode())
        assert_one_line_error(res, 5)
        if "disk full" not in err:
            late.append(f"the error does not say the disk is full: {err.strip()}")
        if "ds@v2" in refs:
            late.append(f"the commit failed (exit {code}), yet it created ds@v2: {err.strip()}")
    assert_ok(run_cli("--repo", str(repo_path), "gc"))
    verify_ok(repo_path, read_data=True)
    log = log_json(repo_path)
    by_ref = {e["ref"]: e for e in log}
    assert by_ref["ds@v1"]["tags"] == ["first"]
    with reprocas.Repo.open(repo_path) as repo:
        repo.checkout("ds@v1", tmp_path / "co-v1")
        assert not diff(want_v1, describe(tmp_path / "co-v1"))
        if "ds@v2" in by_ref:
            repo.checkout("ds@v2", tmp_path / "co-v2")
            assert not diff(want_v2, describe(tmp_path / "co-v2"))
    assert_ok(run_cli("--repo", str(repo_path), "index", "rebuild"))
    assert log_json(repo_path) == log, "index rebuild changed the log"
    with reprocas.Repo.open(repo_path) as repo:
        assert repo.commit(v2, "ds", message="v2").ref == "ds@v2"
    verify_ok(repo_path, read_data=True)
    assert not late, late


# --- hostile trees -----------------------------------------------------------------------


def _plant_version(repo: reprocas.Repo, name: str, entries: list[TreeEntry]) -> None:
    """Write a tree (as given, unchecked) and point NAME@v1 at a snapshot of it."""
    store = repo.store
    w = Writer(store)
    root = w.add_object(Tree(tuple(entries)).to_wire())
    snap = Snapshot(
        kind="dataset",
        name=name,
        root=root,
        parent=None,
        time_ns=time.time_ns(),
        author="mallory",
        message="hostile",
        step=None,
        source="dir",
        files=len(entries),
        logical_bytes=0,
        extra={"version": 1, "tags": []},
    )
    sid = w.add_object(snap.to_wire())
    w.seal()
    with store.index.write() as txn:
        txn.put(version_ref(name, 1).encode(), sid.raw, db=store.index.db["refs"])
        txn.put(sid.raw, pack(["dataset", name, 1]), db=store.index.db["snapshots"])


HOSTILE_NAMES = ["../evil", "a/b", "/abs", "..", ".", "", "nul\0byte", "../../../tmp/x"]


@pytest.mark.parametrize("bad", HOSTILE_NAMES, ids=repr)
def test_hostile_tree_entry_is_refused_before_writing(
    repo: reprocas.Repo, repo_path: Path, tmp_path: Path, bad: str
) -> None:
    src = tmp_path / "src"
    src.mkdir()
    (src / "payload.txt").write_bytes(b"pwned\n")
    repo.commit(src, "good")
    with repo.store.index.read() as txn:
        good = repo.store.resolve(txn, "good@v1")
        [payload] = repo.store.load_tree(txn, good.snapshot.root).entries
    # The hostile name, after a harmless first entry (so writing would start before
    # the hostile one is reached) and nested one level down, too.
    evil = TreeEntry(bad, "file", 0o644, payload.target, payload.size)
    w = Writer(repo.store)
    subtree = w.add_object(Tree((evil,)).to_wire())
    w.seal()
    _plant_version(repo, "evil", [TreeEntry("!first", "file", 0o644, payload.target, 6), evil])
    _plant_version(repo, "nested", [TreeEntry("inner", "dir", 0o755, subtree.raw)])
    arena = tmp_path / "arena"
    arena.mkdir()
    for ds in ("evil", "nested"):
        dest = arena / "a" / "b" / f"dest-{ds}"
        with pytest.raises(UnsafePathError):
            repo.checkout(f"{ds}@v1", dest)
        assert not dest.exists() or list(dest.iterdir()) == []
        res = run_cli("--repo", str(repo_path), "checkout", f"{ds}@v1", str(dest))
        assert_one_line_error(res, 6, "refusing")
        assert not dest.exists() or list(dest.iterdir()) == []
    # Nothing was written anywhere else either.
    written = [p for p in tmp_path.rglob("*") if p.is_file() and p.read_bytes() == b"pwned\n"]
    assert written == [src / "payload.txt"], written
    assert not Path("/abs").exists() and not Path("/evil").exists()


def test_hostile_duplicate_names_with_a_symlink_are_refused(
    repo: reprocas.Repo, tmp_path: Path
) -> None:
    """Two entries named 'd': a link to a directory outside, then a directory whose
    file would be written through the link."""
    outside = tmp_path / "outside"
    outside.mkdir()
    src = tmp_path / "src"
    src.mkdir()
    (src / "pwned").write_bytes(b"pwned\n")
    repo.commit(src, "good")
    with repo.store.index.read() as txn:
        good = repo.store.resolve(txn, "good@v1")
        root_tree = good.snapshot.root
    link = TreeEntry("d", "symlink", 0o777, os.fsencode(str(outside)))
    real = TreeEntry("d", "dir", 0o755, root_tree.raw)
    _plant_version(repo, "dup", [link, real])
    dest = tmp_path / "dest"
    with pytest.raises(UnsafePathError):
        repo.checkout("dup@v1", dest)
    assert list(outside.iterdir()) == []
    assert not dest.exists() or list(dest.iterdir()) == []


# --- repository format -------------------------------------------------------------------


@pytest.mark.parametrize("version", [99, 4, 0, -1, "1", 1.5, True, None], ids=repr)
def test_unknown_format_version_is_refused(
    repo_path: Path, seeded: Path, version: object, tmp_path: Path
) -> None:
    marker = repo_path / "reprocas.json"
    data = json.loads(marker.read_text())
    right = data["version"]
    data["version"] = version
    marker.write_text(json.dumps(data))
    res = run_cli("--repo", str(repo_path), "log")
    assert_one_line_error(res, 7, "version", str(version))
    with pytest.raises(reprocas.errors.FormatVersionError):
        reprocas.Repo.open(repo_path)
    # Nothing was changed: with the right version back, the repository is as it was.
    data["version"] = right
    marker.write_text(json.dumps(data))
    assert_undamaged(repo_path, seeded, tmp_path)


@pytest.mark.parametrize(
    "content",
    [
        "this is not json {",
        "",
        "[1, 2, 3]",
        '{"format": "something-else", "version": 1}',
        '{"format": "reprocas", "version": 1}',  # the settings are missing
        '{"format": "reprocas", "version": 1, "chunking": "x", "compression": 3}',
    ],
    ids=["garbage", "empty", "list", "other-format", "no-settings", "bad-settings"],
)
def test_garbage_marker_is_refused_clearly(
    repo_path: Path, seeded: Path, content: str, tmp_path: Path
) -> None:
    marker = repo_path / "reprocas.json"
    good = marker.read_bytes()
    marker.write_text(content)
    res = run_cli("--repo", str(repo_path), "log")
    assert res.returncode in (4, 7), res.describe()
    assert_one_line_error(res, res.returncode)
    assert "reprocas.json" in res.err or str(repo_path) in res.err, res.describe()
    # Nothing else was touched: the marker is left as it was, and with the good one
    # back the repository is as before.
    assert marker.read_text() == content
    marker.write_bytes(good)
    assert_undamaged(repo_path, seeded, tmp_path)


def test_init_on_an_existing_repository_or_non_empty_dir(
    repo_path: Path, seeded: Path, tmp_path: Path
) -> None:
    assert_one_line_error(run_cli("init", str(repo_path)), 2, "already")
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "file").write_bytes(b"x")
    assert_one_line_error(run_cli("init", str(busy)), 2, str(busy))
    assert sorted(os.listdir(busy)) == ["file"]
    assert_undamaged(repo_path, seeded, tmp_path)


def test_checkout_of_damaged_tree_reference_is_clean(
    repo: reprocas.Repo, repo_path: Path, tmp_path: Path
) -> None:
    """A ref that points at an object the index does not have: a one-line integrity
    error, not a traceback."""
    with repo.store.index.write() as txn:
        txn.put(version_ref("ghost", 1).encode(), bytes(32), db=repo.store.index.db["refs"])
    res = run_cli("--repo", str(repo_path), "checkout", "ghost@v1", str(tmp_path / "g"))
    assert_one_line_error(res, 6)
    assert_one_line_error(run_cli("--repo", str(repo_path), "log"), 6)
    res = run_cli("--repo", str(repo_path), "verify", "--json")
    assert res.returncode == 6
    assert any("ghost@v1" in p["versions"] for p in json.loads(res.stdout)["problems"])


def test_tag_unknown_ref_and_version(
    cli: Cli, seeded: Path, repo_path: Path, tmp_path: Path
) -> None:
    assert_one_line_error(cli("tag", "nope@v1", "t"), 4)
    assert_one_line_error(cli("tag", "ds@v7", "t"), 4, "v1")
    with reprocas.Repo.open(repo_path) as repo:
        with pytest.raises(RefNotFoundError):
            repo.tag("ds@v7", "t")
        # The refused tags made no ref and changed nothing else.
        assert [(e.ref, list(e.tags)) for e in repo.log()] == [("ds@v1", [])]
    assert_undamaged(repo_path, seeded, tmp_path)
