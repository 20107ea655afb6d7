"""Seeded generators of directory trees for the integration tests, and an exact
description of a tree (bytes, modes, links) to compare a checkout against.

Everything here is reproducible from the seed: the same seed gives the same names,
contents, modes and links.
"""

from __future__ import annotations

import os
import random
import stat
from dataclasses import dataclass
from pathlib import Path

import blake3

# --- describing a tree ---------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Entry:
    """One path of a tree as the tests compare it."""

    kind: str  # "file", "dir" or "symlink"
    mode: int  # permission bits (files and directories); 0 for links
    size: int
    digest: str | None  # BLAKE3-256 hex of a file's bytes
    target: str | None  # a link's text


def file_digest(path: Path) -> str:
    """BLAKE3-256 (hex) of a file, streamed: works for files larger than memory."""
    h = blake3.blake3(max_threads=blake3.blake3.AUTO)
    with open(path, "rb") as f:
        while block := f.read(8 << 20):
            h.update(block)
    return str(h.hexdigest())


def describe_entry(path: Path) -> Entry:
    st = os.lstat(path)
    if stat.S_ISLNK(st.st_mode):
        return Entry("symlink", 0, 0, None, os.readlink(path))
    if stat.S_ISDIR(st.st_mode):
        return Entry("dir", stat.S_IMODE(st.st_mode), 0, None, None)
    if stat.S_ISREG(st.st_mode):
        return Entry("file", stat.S_IMODE(st.st_mode), st.st_size, file_digest(path), None)
    return Entry("other", stat.S_IMODE(st.st_mode), 0, None, None)


def describe(root: Path) -> dict[str, Entry]:
    """Every path below ``root`` (relative, '/'-separated; the root itself excluded)."""
    out: dict[str, Entry] = {}

    def walk(d: Path, rel: str) -> None:
        with os.scandir(d) as it:
            items = sorted(it, key=lambda e: e.name)
        for de in items:
            p = Path(de.path)
            r = rel + de.name
            e = describe_entry(p)
            out[r] = e
            if e.kind == "dir":
                walk(p, r + "/")

    walk(root, "")
    return out


def diff(expected: dict[str, Entry], actual: dict[str, Entry]) -> list[str]:
    """Human-readable differences ([] when equal), for assertion messages."""
    out = []
    for p in sorted(expected.keys() | actual.keys()):
        a, b = expected.get(p), actual.get(p)
        if a != b:
            out.append(f"{p!r}: expected {a}, got {b}")
    return out


# --- building trees -----------------------------------------------------------------

UNICODE_NAMES = (
    "données.csv",
    "日本語のファイル.txt",
    "emoji 😀 name.bin",
    "Ωmega-ß.dat",
    "space in name.txt",
    "semi;colon,comma=eq.txt",
    "quote'double\"q.txt",
    "tab\there.txt",
    "new\nline.txt",
    "-leading-dash",
    ".hidden",
    "caf\u00e9-composed.txt",  # NFC ...
    "cafe\u0301-decomposed.txt",  # ... and NFD: different names, both kept
    "x" * 250 + ".bin",  # a 254-byte name
    "Ä" * 100 + ".txt",  # 200 ASCII-free bytes
)


def _write(path: Path, data: bytes, mode: int = 0o644) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    os.chmod(path, mode)


def _blob(rng: random.Random, n: int) -> bytes:
    """Half random, half text-like bytes (so both zstd and raw frames occur)."""
    if rng.random() < 0.5:
        return rng.randbytes(n)
    words = [b"alpha", b"beta", b"gamma", b"delta", b"0.125", b"\n", b",", b"P00042"]
    out = bytearray()
    while len(out) < n:
        out += rng.choice(words)
    return bytes(out[:n])


def generate_tree(root: Path, seed: int, *, scale: int = 1) -> dict[str, Entry]:
    """A tree with every kind of thing a checkout has to reproduce; returns ``describe``.

    ``scale`` multiplies the sizes of the larger files (1: about 3 MB in all).
    """
    rng = random.Random(seed)
    root.mkdir(parents=True, exist_ok=True)
    _write(root / "README.txt", b"reprocas test tree\nseed %d\n" % seed)
    for i, name in enumerate(UNICODE_NAMES):
        _write(root / name, _blob(rng, rng.randrange(0, 5000)), 0o644 if i % 3 else 0o640)
    _write(root / "日本語" / "ファイル.bin", _blob(rng, 7000))
    _write(root / "ñ" / "ü" / "ø.dat", _blob(rng, 3000))
    # Empty files, at the top and deeper down.
    _write(root / "empty.txt", b"")
    _write(root / "sub" / "empty-too", b"", 0o600)
    # Empty directories, one of them nested, one with unusual permissions.
    (root / "emptydir").mkdir()
    (root / "nested" / "empty" / "deeper").mkdir(parents=True)
    (root / "emptydir-700").mkdir(mode=0o700)
    os.chmod(root / "emptydir-700", 0o700)
    # Deep nesting.
    deep = root.joinpath(*(f"d{i:02d}" for i in range(40)))
    _write(deep / "leaf.txt", b"at the bottom\n")
    # Permission bits: executable, private, read-only; directories too.
    _write(root / "bin" / "run.sh", b"#!/bin/sh\necho hi\n", 0o755)
    _write(root / "bin" / "tool", _blob(rng, 2000), 0o750)
    _write(root / "bin" / "user-only-exec", b"x", 0o700)
    _write(root / "secret.key", rng.randbytes(64), 0o600)
    _write(root / "readonly.txt", b"do not touch\n", 0o444)
    _write(root / "private" / "inner.txt", b"inner\n")
    os.chmod(root / "private", 0o750)
    _write(root / "ro-dir" / "inside.txt", b"in a read-only directory\n")
    os.chmod(root / "ro-dir", 0o555)
    # Larger files: several chunks each (the default average chunk is 32 KiB).
    for i in range(3):
        _write(root / "data" / f"part-{i}.bin", _blob(rng, scale * rng.randrange(200_000, 600_000)))
    _write(root / "data" / "table.csv", csv_table(scale * 8000, seed))
    # Symbolic links: relative, upward, absolute, to a directory, dangling.
    os.symlink("README.txt", root / "link-rel")
    os.symlink("../données.csv", root / "sub" / "link-up")
    os.symlink("/etc/hostname", root / "link-abs")
    os.symlink("nested", root / "link-to-dir")
    os.symlink("does/not/exist", root / "dangling")
    os.symlink("/nonexistent/absolute/target", root / "dangling-abs")
    os.symlink("日本語/ファイル.bin", root / "link-unicode")
    # A duplicate of a file under another name (dedup inside one version).
    _write(root / "copy-of-part-0.bin", (root / "data" / "part-0.bin").read_bytes())
    return describe(root)


def mutate_tree(root: Path, seed: int) -> dict[str, Entry]:
    """Change a generated tree the ways a dataset changes; returns the new ``describe``.

    Edits bytes in place, appends, deletes and adds files, flips permission bits
    (without touching content), retargets a link, adds and removes empty directories.
    """
    rng = random.Random(seed)
    # Edit a few bytes inside a large file (same size): part-1, or after enough rounds
    # have deleted it (one part goes each time), the first part left.
    part = root / "data" / "part-1.bin"
    if not part.exists():
        part = sorted(root.glob("data/part-*.bin"))[0]
    data = bytearray(part.read_bytes())
    for _ in range(3):
        pos = rng.randrange(len(data))
        data[pos] ^= 0xFF
    part.write_bytes(bytes(data))
    # Append to the table.
    with open(root / "data" / "table.csv", "ab") as f:
        f.write(csv_table(500, seed + 1000, header=False, first_row=10**6 + seed))
    # Delete one file, add two.
    victims = sorted(p for p in root.glob("data/part-*.bin"))
    if len(victims) > 1:
        victims[-1].unlink()
    _write(root / "data" / f"new-{seed}.bin", _blob(rng, rng.randrange(50_000, 150_000)))
    _write(root / f"added-{seed}-ä.txt", b"added in a later version\n", 0o664)
    # Flip the executable bit of a file without changing its content.
    tool = root / "bin" / "tool"
    os.chmod(tool, stat.S_IMODE(os.stat(tool).st_mode) ^ 0o111)
    # Retarget a link; replace a file by an empty file.
    os.unlink(root / "link-rel")
    os.symlink(f"target-{seed}", root / "link-rel")
    (root / "empty.txt").write_bytes(b"not empty any more\n")
    (root / "README.txt").write_bytes(b"")
    # Empty directories come and go.
    (root / f"fresh-empty-{seed}").mkdir()
    emptied = root / "nested" / "empty" / "deeper"
    if emptied.exists():
        emptied.rmdir()
    return describe(root)


def csv_table(n_rows: int, seed: int, *, header: bool = True, first_row: int = 0) -> bytes:
    """A clinical-looking CSV table (about 70 bytes a row), reproducible from ``seed``."""
    rng = random.Random(seed)
    sites = ("AMS", "BER", "CPH", "DUB", "EDI", "FRA", "GVA", "HEL")
    flags = ("ok", "ok", "ok", "ok", "recheck", "missing")
    notes = (
        "fasting sample",
        "follow-up in 6 weeks",
        "no adverse events reported",
        "medication adjusted",
        "patient reports mild headache",
        "",
        "",
        "repeat measurement requested",
    )
    cols = "row_id,patient,visit_date,site,systolic,diastolic,glucose,flag,note\n"
    lines = [cols] if header else []
    r = rng.random
    for i in range(first_row, first_row + n_rows):
        x = int(r() * 2**52)
        lines.append(
            f"{i},P{1000 + x % 9000:05d},2026-{1 + (x >> 13) % 12:02d}-{1 + (x >> 17) % 28:02d},"
            f"{sites[(x >> 22) % 8]},{90 + (x >> 25) % 80},{50 + (x >> 31) % 50},"
            f"{(x >> 36) % 20000 / 100:.2f},{flags[(x >> 45) % 6]},{notes[(x >> 48) % 8]}\n"
        )
    return "".join(lines).encode("ascii")


def make_sparse(path: Path, size: int, regions: list[tuple[int, bytes]]) -> None:
    """A sparse file of ``size`` bytes that holds ``regions`` and zeros elsewhere."""
    with open(path, "wb") as f:
        f.truncate(size)
        for offset, data in regions:
            f.seek(offset)
            f.write(data)


def sparse_digest(size: int, regions: list[tuple[int, bytes]]) -> str:
    """BLAKE3-256 (hex) of what :func:`make_sparse` writes, computed without the file
    (regions must be sorted and must not overlap)."""
    h = blake3.blake3(max_threads=blake3.blake3.AUTO)
    zeros = bytes(8 << 20)
    pos = 0

    def fill(upto: int) -> None:
        nonlocal pos
        while pos < upto:
            n = min(len(zeros), upto - pos)
            h.update(zeros[:n] if n < len(zeros) else zeros)
            pos += n

    for offset, data in regions:
        fill(offset)
        h.update(data)
        pos += len(data)
    fill(size)
    return str(h.hexdigest())
