"""Packages in bounded memory, and hostile archives refused.

A dataset with a 64 MiB file (generated from a seed) exported and imported through
the CLI while the peak RSS of each process is measured: the export grows by well
under the file's size over an export of 4 KiB, the import by well under it over a
`commit` of the same bytes (the store's write path, which the import feeds). Hostile
zips built here with zipfile (a zip bomb's ratio, sizes that lie both ways, too many
members, entries outside the bag's layout, encrypted, an unknown compression method,
a device node, a name that is a file and a directory, a directory that holds data)
are refused with one error line naming the member, and the repository is left
exactly as it was. On an 8 MiB tmpfs: a package whose data cannot fit is refused
before anything is staged, and one that fits staged but not stored fails in the
ingest with the repository unchanged and usable."""

from __future__ import annotations

import json
import random
import struct
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import Any

import pytest

from tests.integration._helpers import (
    CliResult,
    assert_ok,
    assert_one_line_error,
    assert_repo_unchanged,
    clean_env,
    cli_argv,
    repo_state,
    run_cli,
    verify_ok,
)

BIG = 64 << 20
PEAK = """
import json, resource, subprocess, sys
p = subprocess.run(sys.argv[1:], capture_output=True, stdin=subprocess.DEVNULL)
print(json.dumps({"rc": p.returncode, "out": p.stdout.decode(), "err": p.stderr.decode(),
                  "kib": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss}))
"""


def _write_random(path: Path, size: int, seed: int) -> None:
    rng = random.Random(seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("wb") as f:
        left = size
        while left:
            n = min(left, 4 << 20)
            f.write(rng.randbytes(n))
            left -= n


def _peak(*args: str | Path, repo: Path) -> tuple[CliResult, int]:
    """Run the CLI in a fresh parent and return its result with the child's peak RSS
    in bytes (RUSAGE_CHILDREN of a parent that ran nothing else)."""
    argv = cli_argv(args, repo)
    proc = subprocess.run(
        [sys.executable, "-c", PEAK, *argv], capture_output=True, env=clean_env(), check=True
    )
    got = json.loads(proc.stdout)
    return CliResult(tuple(argv[1:]), got["rc"], got["out"].encode(), got["err"].encode()), int(
        got["kib"]
    ) << 10


def _dataset_package(root: Path, name: str, files: dict[str, int], seed: int) -> Path:
    """A repository with one dataset of random files (path -> size), exported."""
    data = root / f"{name}-src"
    for i, (rel, size) in enumerate(sorted(files.items())):
        _write_random(data / rel, size, seed + i)
    repo = root / f"{name}-origin"
    assert_ok(run_cli("init", "--format", "3", repo))
    assert_ok(run_cli("commit", data, "--dataset", name, repo=repo))
    pkg = root / f"{name}.zip"
    assert_ok(run_cli("export", f"{name}@v1", "--to", pkg, repo=repo))
    return pkg


def _fresh(path: Path) -> Path:
    assert_ok(run_cli("init", "--format", "3", path))
    return path


def test_big_file_exports_and_imports_in_bounded_memory(tmp_path: Path) -> None:
    _dataset_package(tmp_path, "small", {"a.bin": 4096}, 11)
    data = tmp_path / "big-src"
    _write_random(data / "scan.raw", BIG, 12)
    (data / "notes.txt").write_text("a 64 MiB scan\n")
    origin = _fresh(tmp_path / "origin")
    assert_ok(run_cli("commit", data, "--dataset", "scans", repo=origin))
    small_origin = tmp_path / "small-origin"

    # The baseline: the same commands on a 4 KiB dataset (interpreter, imports, LMDB).
    res, base_export = _peak("export", "small@v1", "--to", tmp_path / "s.zip", repo=small_origin)
    assert_ok(res)
    pkg = tmp_path / "scans.zip"
    res, big_export = _peak("export", "scans@v1", "--to", pkg, "--json", repo=origin)
    assert_ok(res)
    assert json.loads(res.out)["payload_bytes"] > BIG
    with zipfile.ZipFile(pkg) as z:
        assert z.getinfo("data/datasets/scans@v1/scan.raw").file_size == BIG

    # The import feeds the files to the store's own write path (what `commit` does);
    # its baseline is a commit of the same bytes: the package must add a bounded amount.
    res, base_import = _peak("commit", data, "--dataset", "scans", repo=_fresh(tmp_path / "c"))
    assert_ok(res)
    target = _fresh(tmp_path / "target")
    res, big_import = _peak("import", pkg, "--json", repo=target)
    assert_ok(res)
    assert [v["status"] for v in json.loads(res.out)["versions"]] == ["imported"]

    growth = {"export": big_export - base_export, "import": big_import - base_import}
    assert growth["export"] < BIG // 2, growth
    # (Holding the package, as imports once did, put the import some 40 MB over.)
    assert growth["import"] < BIG // 4, growth
    # The same content id and snapshot id, and the bytes are whole in the new store.
    a = assert_ok(run_cli("show", "scans@v1", "--json", repo=origin)).json()
    b = assert_ok(run_cli("show", "scans@v1", "--json", repo=target)).json()
    assert (a["id"], a["content_id"]) == (b["id"], b["content_id"])
    assert not list((target / "tmp").iterdir())  # the staging directory is gone
    verify_ok(target, read_data=True)
    # Streaming kept the export deterministic.
    assert_ok(run_cli("export", "scans@v1", "--to", tmp_path / "again.zip", repo=origin))
    assert (tmp_path / "again.zip").read_bytes() == pkg.read_bytes()


# --- hostile archives ----------------------------------------------------------------


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real package: a dataset of a 300 KB file and a small one."""
    root = tmp_path_factory.mktemp("hostile")
    return _dataset_package(root, "ds", {"big.bin": 300_000, "sub/small.txt": 100}, 21)


def _members(pkg: Path) -> list[tuple[zipfile.ZipInfo, bytes]]:
    with zipfile.ZipFile(pkg) as z:
        return [(i, z.read(i)) for i in z.infolist()]


def _rebuild(src: Path, dest: Path, extra: list[tuple[zipfile.ZipInfo, bytes]] = ()) -> Path:  # type: ignore[assignment]
    with zipfile.ZipFile(dest, "w", zipfile.ZIP_DEFLATED) as z:
        for info, data in [*_members(src), *extra]:
            z.writestr(info, data)
    return dest


def _patch_size(pkg: Path, name: str, size: int) -> None:
    """Make ``name`` declare ``size`` uncompressed bytes, in its local header and its
    central directory record alike (the compressed bytes and CRC stay)."""
    raw = bytearray(pkg.read_bytes())
    with zipfile.ZipFile(pkg) as z:
        info = z.getinfo(name)
        start = z.start_dir
    assert raw[info.header_offset : info.header_offset + 4] == b"PK\x03\x04"
    struct.pack_into("<I", raw, info.header_offset + 22, size)
    at = start
    while raw[at : at + 4] == b"PK\x01\x02":
        n, e, c = struct.unpack_from("<HHH", raw, at + 28)
        if raw[at + 46 : at + 46 + n].decode() == name:
            struct.pack_into("<I", raw, at + 24, size)
            break
        at += 46 + n + e + c
    else:
        raise AssertionError(f"{name} not in the central directory")
    pkg.write_bytes(bytes(raw))


def _refused(pkg: Path, repo: Path, code: int, *needles: str, extra: tuple[str, ...] = ()) -> str:
    before = repo_state(repo)
    line = assert_one_line_error(run_cli("import", pkg, *extra, repo=repo), code, *needles)
    assert_repo_unchanged(repo, before)
    return line


BIG_MEMBER = "data/datasets/ds@v1/big.bin"


def test_a_real_package_imports(base: Path, tmp_path: Path) -> None:
    """The package the hostile ones are made from imports (so each refusal below is
    the hostile change's), and a rebuilt copy of it too."""
    assert_ok(run_cli("import", base, repo=_fresh(tmp_path / "r1")))
    copy = _rebuild(base, tmp_path / "copy.zip")
    assert_ok(run_cli("import", copy, repo=_fresh(tmp_path / "r2")))


def test_zip_bomb_ratio_refused(base: Path, tmp_path: Path) -> None:
    pkg = _rebuild(base, tmp_path / "bomb.zip")
    with zipfile.ZipFile(pkg) as z:
        packed = z.getinfo(BIG_MEMBER).compress_size
    _patch_size(pkg, BIG_MEMBER, min(packed * 5000, (1 << 32) - 1))
    line = _refused(pkg, _fresh(tmp_path / "r"), 6, BIG_MEMBER, "ratio over 1000:1")
    assert "zip bomb" in line


def test_real_high_ratio_member_refused(base: Path, tmp_path: Path) -> None:
    """Not a forged header: 64 MiB of zeros, deflated as a zip bomb would be (over
    1000:1 at level 9)."""
    info = zipfile.ZipInfo("data/datasets/ds@v1/zeros.bin", (1980, 1, 1, 0, 0, 0))
    info.compress_type = zipfile.ZIP_DEFLATED
    pkg = tmp_path / "zeros.zip"
    with zipfile.ZipFile(pkg, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as z:
        for i, data in _members(base):
            z.writestr(i, data)
        z.writestr(info, bytes(64 << 20), compresslevel=9)
    with zipfile.ZipFile(pkg) as z:
        zi = z.getinfo(info.filename)
        assert zi.file_size > 1000 * zi.compress_size
    _refused(pkg, _fresh(tmp_path / "r"), 6, info.filename, "zip bomb")


@pytest.mark.parametrize("delta", [+1000, -1000])
def test_declared_size_that_lies_refused(base: Path, tmp_path: Path, delta: int) -> None:
    pkg = _rebuild(base, tmp_path / "lies.zip")
    _patch_size(pkg, BIG_MEMBER, 300_000 + delta)
    line = _refused(pkg, _fresh(tmp_path / "r"), 6, BIG_MEMBER)
    if delta > 0:
        assert f"declares {300_000 + delta} bytes but holds 300000" in line
    else:
        assert "does not read back as it declares" in line


def test_too_many_members_refused(base: Path, tmp_path: Path) -> None:
    n = len(_members(base))
    repo = _fresh(tmp_path / "r")
    _refused(base, repo, 6, f"has {n} members", f"more than the {n - 1}",
             extra=("--max-members", str(n - 1)))  # fmt: skip
    assert_ok(run_cli("import", base, "--max-members", str(n), repo=repo))


def test_end_record_whose_count_lies_refused(base: Path, tmp_path: Path) -> None:
    """300 members whose end-of-central-directory record says 1: refused before
    zipfile parses the directory (it would hold an object per member)."""
    pad = [_odd(f"data/datasets/ds@v1/pad/{i:04d}-{'x' * 40}") for i in range(300)]
    pkg = _rebuild(base, tmp_path / "count.zip", pad)
    raw = bytearray(pkg.read_bytes())
    end = raw.rindex(b"PK\x05\x06")
    struct.pack_into("<HH", raw, end + 8, 1, 1)
    pkg.write_bytes(bytes(raw))
    _refused(pkg, _fresh(tmp_path / "r"), 6, str(pkg), "declares 1 members", "the count lies")


def _odd(name: str, mode: int = 0o100644, **attrs: Any) -> tuple[zipfile.ZipInfo, bytes]:
    info = zipfile.ZipInfo(name, (1980, 1, 1, 0, 0, 0))
    info.create_system = 3
    info.external_attr = mode << 16
    info.compress_type = zipfile.ZIP_DEFLATED
    for k, v in attrs.items():
        setattr(info, k, v)
    return info, b"odd bytes\n"


ODD = {
    "nested bag": (_odd("inner/bagit.txt"), "outside data/"),
    "foreign top-level file": (_odd("evil.sh"), "outside data/"),
    "device node": (_odd("data/datasets/ds@v1/dev", 0o020644), "not a regular file"),
    "fifo": (_odd("data/datasets/ds@v1/fifo", 0o010644), "not a regular file"),
    "bzip2": (
        _odd("data/datasets/ds@v1/b.bz2", compress_type=zipfile.ZIP_BZIP2),
        "compression method 12",
    ),
    "file and directory": (_odd("data/datasets/ds@v1/big.bin/x"), "is a file and the directory"),
    "too deep": (_odd("data/" + "d/" * 130 + "f"), "levels"),
}


@pytest.mark.parametrize("case", sorted(ODD))
def test_odd_entries_refused(base: Path, tmp_path: Path, case: str) -> None:
    (info, data), needle = ODD[case]
    pkg = _rebuild(base, tmp_path / "odd.zip", [(info, data)])
    name = info.filename if case != "file and directory" else BIG_MEMBER
    _refused(pkg, _fresh(tmp_path / "r"), 6, needle, name[:40])


def test_encrypted_and_data_holding_directory_refused(base: Path, tmp_path: Path) -> None:
    # zipfile cannot write either: flip the flag bit / give a directory entry bytes.
    pkg = _rebuild(base, tmp_path / "enc.zip")
    raw = bytearray(pkg.read_bytes())
    with zipfile.ZipFile(pkg) as z:
        info = z.getinfo(BIG_MEMBER)
        start = z.start_dir
    at = start
    while raw[at : at + 4] == b"PK\x01\x02":
        n, e, c = struct.unpack_from("<HHH", raw, at + 28)
        if raw[at + 46 : at + 46 + n].decode() == BIG_MEMBER:
            struct.pack_into("<H", raw, at + 8, info.flag_bits | 0x1)
        at += 46 + n + e + c
    pkg.write_bytes(bytes(raw))
    _refused(pkg, _fresh(tmp_path / "r1"), 6, BIG_MEMBER, "is encrypted")

    d = zipfile.ZipInfo("data/datasets/ds@v1/dir/", (1980, 1, 1, 0, 0, 0))
    d.external_attr = (0o040755 << 16) | 0x10
    pkg2 = _rebuild(base, tmp_path / "dir.zip", [(d, b"hidden payload")])
    _refused(pkg2, _fresh(tmp_path / "r2"), 6, "data/datasets/ds@v1/dir/", "directory that holds")


# --- the disk ------------------------------------------------------------------------


def test_more_data_than_the_disk_has_refused_before_staging(tmpfs: Path, tmp_path: Path) -> None:
    pkg = _dataset_package(tmp_path, "ds", {"big.bin": 10 << 20}, 31)
    repo = _fresh(tmpfs / "repo")
    line = _refused(pkg, repo, 5, str(pkg), "unpacks to")
    assert "bytes free" in line


def test_disk_full_during_ingest_aborts_cleanly(tmpfs: Path, tmp_path: Path) -> None:
    """5 MiB of random data: the free-space check passes (it fits staged), the store's
    packs do not fit beside the staged file; the import fails in the ingest, leaves the
    repository exactly as it was, and the repository takes a small import after."""
    pkg = _dataset_package(tmp_path, "ds", {"big.bin": 5 << 20}, 41)
    repo = _fresh(tmpfs / "repo")
    before = repo_state(repo)
    res = run_cli("import", pkg, repo=repo)
    line = assert_one_line_error(res, 5, "the disk filled while", "nothing of it was kept")
    assert str(pkg) in line
    assert_repo_unchanged(repo, before)
    assert not list((repo / "tmp").iterdir())
    small = _dataset_package(tmp_path, "small", {"a.bin": 64 << 10}, 42)
    assert_ok(run_cli("import", small, repo=repo))
    verify_ok(repo, read_data=True)
