"""Small files share frames (issue 17): a directory of small files is stored as a few
frames of neighbouring files, smaller than the files compressed one by one, and every
way of reading them back (checkout, cat, the index rebuilt from the packs, after a
prune that repacks half-dead frames, through damage) still gives exact bytes or a
clear error naming a file."""

from __future__ import annotations

import random
from collections import Counter
from pathlib import Path

import pytest

import reprocas
from reprocas.errors import CorruptDataError
from reprocas.model.chunking import SMALL_FILE
from reprocas.native import core
from reprocas.retention.policy import Policy, Rules
from reprocas.store.grouped import GROUP_BYTES
from reprocas.store.packs import read_trailer
from tests.integration._helpers import (
    assert_ok,
    pack_files,
    stored_bytes,
    verify_ok,
    where_in_repository,
)
from tests.integration.conftest import Cli

VOCABULARY = (
    "import def return self class from for in if else None True False lambda yield "
    "with as try except raise pass while async await dict list tuple set str int "
    "numpy pandas arrow table column schema record batch version commit"
)
WORDS = VOCABULARY.split()


def source_like(rng: random.Random, size: int) -> bytes:
    """Text that looks like Python source: a shared vocabulary, so files compress
    better together than apart."""
    out: list[str] = []
    n = 0
    while n < size:
        line = "    " * rng.randrange(4) + " ".join(rng.choices(WORDS, k=rng.randrange(3, 12)))
        line += f"  # {rng.randrange(10**6)}\n"
        out.append(line)
        n += len(line)
    return "".join(out).encode()[:size]


def small_tree(root: Path, seed: int, n: int = 120, big: bool = True) -> dict[str, bytes]:
    rng = random.Random(seed)
    files: dict[str, bytes] = {}
    for i in range(n):
        rel = f"pkg{i % 7}/mod_{i:03d}.py"
        files[rel] = source_like(rng, rng.randrange(200, 12_000))
    if big:
        files["big/blob.bin"] = rng.randbytes(SMALL_FILE + 4096)  # its own frames
    for rel, data in files.items():
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(data)
    return files


def frames_by_chunks(repo_path: Path) -> Counter[int]:
    """How many frames hold how many chunks, over every pack."""
    out: Counter[int] = Counter()
    for p in pack_files(repo_path):
        for f in read_trailer(p).frames:
            out[len(f.chunks)] += 1
    return out


def frame_bytes(repo_path: Path) -> int:
    """The stored bytes of every frame (no objects, no trailers)."""
    return sum(f.stored_len for p in pack_files(repo_path) for f in read_trailer(p).frames)


def read_tree(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def test_small_files_share_frames_and_read_back_exactly(
    repo: reprocas.Repo, repo_path: Path, tmp_path: Path
) -> None:
    src = tmp_path / "src"
    files = small_tree(src, 1, big=False)
    repo.commit(src, "sp")
    frames = frames_by_chunks(repo_path)
    # Far fewer frames than small files: they are grouped, not one frame each.
    assert sum(frames.values()) < len(files) // 4, frames
    # And smaller than the same files compressed one by one (by a clear margin: the
    # files share their words).
    alone = sum(len(p) for _, p in core.compress_chunks(list(files.values()), 3))
    assert frame_bytes(repo_path) < 0.9 * alone, (frame_bytes(repo_path), alone)
    repo.checkout("sp@v1", tmp_path / "out")
    assert read_tree(tmp_path / "out") == files
    for rel in ("pkg0/mod_000.py", "pkg3/mod_059.py"):
        assert repo.cat("sp@v1", rel) == files[rel]
    verify_ok(repo)


def test_a_large_file_between_small_ones_keeps_frames_of_its_own(
    repo: reprocas.Repo, repo_path: Path, tmp_path: Path
) -> None:
    src = tmp_path / "src"
    files = small_tree(src, 11)
    repo.commit(src, "sp")
    blob = files["big/blob.bin"]
    repo.checkout("sp@v1", tmp_path / "out")
    assert read_tree(tmp_path / "out") == files
    assert repo.cat("sp@v1", "big/blob.bin") == blob
    # Its chunks are in frames that hold none of the small files' bytes: every frame
    # is either all blob or all small files (raw lengths add up either way).
    small_total = sum(len(d) for rel, d in files.items() if rel != "big/blob.bin")
    raw = [f.raw_len for p in pack_files(repo_path) for f in read_trailer(p).frames]
    assert sum(raw) == small_total + len(blob)


def test_the_same_small_file_twice_in_one_commit_is_stored_once(
    repo: reprocas.Repo, tmp_path: Path
) -> None:
    src = tmp_path / "src"
    data = source_like(random.Random(2), 5000)
    for i in range(30):
        (src / f"d{i}").mkdir(parents=True)
        (src / f"d{i}" / "same.py").write_bytes(data)
    (src / "other.py").write_bytes(source_like(random.Random(3), 5000))
    r = repo.commit(src, "dup")
    # Two distinct contents: at most a little more than two compressed copies.
    twice = sum(len(p) for _, p in core.compress_chunks([data * 2], 3))
    assert r.new_bytes < twice + 20_000, r.new_bytes
    repo.checkout("dup@v1", tmp_path / "out")
    assert all((tmp_path / "out" / f"d{i}" / "same.py").read_bytes() == data for i in range(30))


def test_a_prune_that_repacks_half_dead_shared_frames_keeps_the_rest(
    repo: reprocas.Repo, tmp_path: Path
) -> None:
    """v1's shared frames hold files v2 dropped or changed: once v1 is forgotten, prune
    repacks those frames, and v2 still reads back exactly (and verifies)."""
    src = tmp_path / "src"
    files = small_tree(src, 4)
    repo.commit(src, "sp")
    rng = random.Random(5)
    for i, rel in enumerate(sorted(files)):
        if rel.endswith(".py") and i % 3 == 0:
            (src / rel).unlink()
            del files[rel]
        elif rel.endswith(".py") and i % 3 == 1:
            files[rel] = source_like(rng, rng.randrange(200, 9000))
            (src / rel).write_bytes(files[rel])
    repo.commit(src, "sp")
    res = repo.forget(Policy(rules=Rules(keep_last=1)))
    assert res.forgotten == ["sp@v1"], res.to_json()
    report = repo.prune(max_unused=0.0)
    assert report.repacked or report.deleted, report.to_json()
    assert report.freed_bytes > 0, report.to_json()
    repo.checkout("sp@v2", tmp_path / "out")
    assert read_tree(tmp_path / "out") == files
    verify_ok(repo)


def test_the_index_rebuilt_from_packs_reads_shared_frames(
    repo: reprocas.Repo, repo_path: Path, tmp_path: Path
) -> None:
    src = tmp_path / "src"
    files = small_tree(src, 6)
    repo.commit(src, "sp")
    repo.rebuild_index()
    repo.checkout("sp@v1", tmp_path / "out")
    assert read_tree(tmp_path / "out") == files


def test_damage_in_a_shared_frame_names_a_file_and_writes_nothing_wrong(
    repo: reprocas.Repo, repo_path: Path, tmp_path: Path
) -> None:
    """Checkout reads neighbouring small files as one group; when that read finds
    damage, the files are read one by one, so the error names the damaged file and
    every file written before it is exact."""
    src = tmp_path / "src"
    files = small_tree(src, 7, n=40, big=False)
    repo.commit(src, "sp")
    # Damage the middle of the largest shared frame.
    best = None
    for p in pack_files(repo_path):
        for f in read_trailer(p).frames:
            if len(f.chunks) > 3 and (best is None or f.stored_len > best[1].stored_len):
                best = (p, f)
    assert best is not None
    pack, frame = best
    raw = bytearray(pack.read_bytes())
    raw[frame.offset + frame.stored_len // 2] ^= 0xFF
    pack.chmod(0o644)
    pack.write_bytes(bytes(raw))
    out = tmp_path / "out"
    with pytest.raises(CorruptDataError) as err:
        repo.checkout("sp@v1", out)
    message = str(err.value)
    assert "sp@v1:" in message and ".py" in message, message
    written = read_tree(out) if out.exists() else {}
    for rel, data in written.items():
        assert data == files[rel], f"{rel} was written with wrong bytes"


@pytest.mark.parametrize("n_files", [1, 2, 3])
def test_trees_of_one_two_and_three_small_files(
    repo: reprocas.Repo, tmp_path: Path, n_files: int
) -> None:
    src = tmp_path / "src"
    src.mkdir()
    rng = random.Random(n_files)
    files = {f"f{i}.txt": source_like(rng, 100 + 50 * i) for i in range(n_files)}
    files["empty.txt"] = b""
    for rel, data in files.items():
        (src / rel).write_bytes(data)
    repo.commit(src, "t")
    repo.checkout("t@v1", tmp_path / "out")
    assert read_tree(tmp_path / "out") == files


def test_a_checkout_group_is_bounded(repo: reprocas.Repo, tmp_path: Path) -> None:
    """More small files than one group holds: several groups, all exact."""
    src = tmp_path / "src"
    src.mkdir()
    rng = random.Random(9)
    files: dict[str, bytes] = {}
    total = 0
    i = 0
    while total < 2 * GROUP_BYTES + 1000:
        data = source_like(rng, 60_000)
        files[f"f{i:04d}.py"] = data
        (src / f"f{i:04d}.py").write_bytes(data)
        total += len(data)
        i += 1
    repo.commit(src, "g")
    repo.checkout("g@v1", tmp_path / "out")
    assert read_tree(tmp_path / "out") == files


def test_purge_removes_a_small_file_from_the_frame_it_shared(
    cli: Cli, repo_path: Path, tmp_path: Path
) -> None:
    """A secret in a small file shares its frame with files a kept version still
    holds: `rm --purge` stores those anew and the secret is stored nowhere after."""
    src = tmp_path / "src"
    files = small_tree(src, 12, n=30, big=False)
    marker = b"PATIENT-SECRET-" + bytes(random.Random(13).randbytes(12)).hex().encode()
    (src / "pkg1" / "leak.txt").write_bytes(b"name,id\n" + marker + b"\n")
    assert_ok(cli("init"))
    assert_ok(cli("commit", src, "-d", "sp"))
    assert stored_bytes(repo_path).where(marker), "the marker must be stored first"
    (src / "pkg1" / "leak.txt").unlink()
    assert_ok(cli("commit", src, "-d", "sp"))
    out = assert_ok(cli("rm", "sp@v1", "--purge", "--json")).json()
    assert out["purged"]["verify"]["ok"], out
    after = stored_bytes(repo_path)
    assert after.where(marker) == [], after.where(marker)
    assert where_in_repository(repo_path, marker) == []
    assert_ok(cli("checkout", "sp@v2", tmp_path / "out"))
    assert read_tree(tmp_path / "out") == files
