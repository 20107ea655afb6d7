"""Corruption: damaged packs are found, named, and never turned into wrong files."""

from __future__ import annotations

import json
import os
import random
from dataclasses import dataclass
from pathlib import Path

import pytest

import reprocas
from reprocas.errors import CorruptDataError, IntegrityError
from reprocas.native import core
from reprocas.store.checkout import find_entry
from tests.integration._helpers import assert_ok, assert_one_line_error, repo_state, run_cli
from tests.integration.trees import csv_table, describe, diff


@dataclass(frozen=True)
class Damage:
    repo_path: Path
    src_v1: Path
    src_v2: Path
    pack: Path
    offset: int


def _text(n: int, seed: int) -> bytes:
    return csv_table(n // 60 + 1, seed)[:n]


def _build(tmp_path: Path, content: str) -> tuple[Path, Path, Path]:
    """ds@v1 = {a.bin, b.txt}; ds@v2 adds c.dat (random or text), which only v2 has."""
    rng = random.Random(99)
    repo_path = tmp_path / "repo"
    reprocas.Repo.init(repo_path, pack_size=256 << 10).close()
    v1 = tmp_path / "v1"
    v1.mkdir()
    (v1 / "a.bin").write_bytes(rng.randbytes(300_000))
    (v1 / "b.txt").write_bytes(_text(300_000, 1))
    v2 = tmp_path / "v2"
    v2.mkdir()
    for f in v1.iterdir():
        (v2 / f.name).write_bytes(f.read_bytes())
    data = rng.randbytes(400_000) if content == "random" else _text(2_000_000, 2)
    (v2 / "c.dat").write_bytes(data)
    with reprocas.Repo.open(repo_path) as repo:
        assert repo.commit(v1, "ds").ref == "ds@v1"
        assert repo.commit(v2, "ds").ref == "ds@v2"
    return repo_path, v1, v2


def _chunk_frame(repo_path: Path, ref: str, path: str, n: int) -> tuple[Path, int, int, int]:
    """(pack path, frame offset, frame stored length, codec) of chunk ``n`` of a file."""
    with reprocas.Repo.open(repo_path) as repo:
        store = repo.store
        with store.index.read() as txn:
            v = store.resolve(txn, ref)
            entry = find_entry(store, txn, v, path)
            manifest = store.entry_manifest(txn, entry)
            loc = store.index.get_chunk(txn, manifest.chunks[n][0])
            assert loc is not None
            return store.pack_path(loc.pack), loc.frame_offset, loc.stored_len, loc.codec


def _flip(path: Path, offset: int) -> None:
    with open(path, "r+b") as f:
        f.seek(offset)
        b = f.read(1)
        f.seek(offset)
        f.write(bytes([b[0] ^ 0x40]))


@pytest.fixture(params=["random", "text"])
def damaged(request: pytest.FixtureRequest, tmp_path: Path) -> Damage:
    """A byte flipped in the middle of the first frame of c.dat (raw frame for random
    content, zstd frame for text)."""
    content = str(request.param)
    repo_path, v1, v2 = _build(tmp_path, content)
    pack, off, stored_len, codec = _chunk_frame(repo_path, "ds@v2", "c.dat", 0)
    assert codec == (core.CODEC_RAW if content == "random" else core.CODEC_ZSTD)
    _flip(pack, off + stored_len // 2)
    return Damage(repo_path, v1, v2, pack, off)


def test_verify_read_data_names_pack_offset_and_versions(damaged: Damage) -> None:
    res = run_cli("verify", "--read-data", "--json", repo=damaged.repo_path)
    assert res.returncode == 6, res.describe()
    assert "Traceback" not in res.err

    report = json.loads(res.stdout)
    assert report["ok"] is False
    assert report["problems"], report
    for p in report["problems"]:
        assert set(p) >= {"pack", "offset", "versions", "kind", "message"}
    hits = [p for p in report["problems"] if p["pack"] == str(damaged.pack)]
    assert hits, report["problems"]
    assert any(p["offset"] == damaged.offset for p in hits), hits
    for p in hits:
        assert "ds@v2" in p["versions"], p
        assert "ds@v1" not in p["versions"], p  # v1 does not hold c.dat
    # The human form names the pack and the affected version too.
    human = run_cli("verify", "--read-data", repo=damaged.repo_path)
    assert human.returncode == 6, human.describe()
    assert str(damaged.pack) in human.err and "ds@v2" in human.err, human.describe()


def test_structure_check_does_not_read_data(damaged: Damage) -> None:
    """A flipped data byte leaves every trailer sound: plain verify passes (and says
    how to find data damage: --read-data)."""
    res = assert_ok(run_cli("verify", "--json", repo=damaged.repo_path))
    assert res.json()["ok"] is True


def test_checkout_of_damaged_version_fails_cleanly(damaged: Damage, tmp_path: Path) -> None:
    dest = tmp_path / "out"
    res = run_cli("checkout", "ds@v2", dest, repo=damaged.repo_path)
    line = assert_one_line_error(res, 6, "damaged")
    assert str(damaged.pack) in line, line
    # No wrong file: c.dat is absent, anything else written is exactly right.
    assert not (dest / "c.dat").exists()
    want = describe(damaged.src_v2)
    if dest.exists():
        for p, e in describe(dest).items():
            assert want[p] == e, p
    # Through the API it is a CorruptDataError carrying the pack.
    with reprocas.Repo.open(damaged.repo_path) as repo:
        with pytest.raises(CorruptDataError) as info:
            repo.checkout("ds@v2", tmp_path / "api-out")
        assert getattr(info.value, "pack", None) == str(damaged.pack)
        assert not (tmp_path / "api-out" / "c.dat").exists()
        with pytest.raises(CorruptDataError):
            repo.cat("ds@v2", "c.dat")
        # The files v2 shares with v1 are fine.
        assert repo.cat("ds@v2", "a.bin") == (damaged.src_v1 / "a.bin").read_bytes()
    # cat of the damaged file: one-line error, exit 6.
    cat = run_cli("cat", "ds@v2", "c.dat", repo=damaged.repo_path)
    assert_one_line_error(cat, 6, "damaged")


def test_unaffected_version_still_checks_out(damaged: Damage, tmp_path: Path) -> None:
    dest = tmp_path / "v1-out"
    assert_ok(run_cli("checkout", "ds@v1", dest, repo=damaged.repo_path))
    assert not diff(describe(damaged.src_v1), describe(dest))


def test_damaged_object_copy_in_pack_is_reported(tmp_path: Path) -> None:
    """Objects are read from the index, but the pack copy is what rebuild trusts:
    verify --read-data checks it."""
    repo_path, _, _ = _build(tmp_path, "random")
    with reprocas.Repo.open(repo_path) as repo:
        store = repo.store
        with store.index.read() as txn:
            v2 = store.resolve(txn, "ds@v2")
            loc = store.index.get_object(txn, v2.snapshot.root.raw)
            assert loc is not None
            pack, off, n = store.pack_path(loc.pack), loc.offset, loc.stored_len
    _flip(pack, off + n // 2)
    res = run_cli("verify", "--read-data", "--json", repo=repo_path)
    assert res.returncode == 6, res.describe()

    problems = json.loads(res.stdout)["problems"]
    assert any(p["pack"] == str(pack) and p["offset"] == off for p in problems), problems


def _pack_of_file(repo_path: Path) -> Path:
    return _chunk_frame(repo_path, "ds@v2", "c.dat", 0)[0]


@pytest.mark.parametrize("how", ["truncated", "deleted", "footer"])
def test_structure_check_finds_truncated_and_missing_packs(tmp_path: Path, how: str) -> None:
    repo_path, v1, v2 = _build(tmp_path, "random")
    pack = _pack_of_file(repo_path)
    if how == "truncated":  # data and trailer cut off
        os.truncate(pack, os.path.getsize(pack) // 2)
    elif how == "deleted":
        pack.unlink()
    else:  # the last byte of the footer magic
        _flip(pack, os.path.getsize(pack) - 1)
    res = run_cli("verify", "--json", repo=repo_path)
    assert res.returncode == 6, res.describe()

    report = json.loads(res.stdout)
    assert report["ok"] is False
    hits = [p for p in report["problems"] if p["pack"] == str(pack)]
    assert hits, report["problems"]
    assert all("ds@v2" in p["versions"] for p in hits), hits
    human = run_cli("verify", repo=repo_path)
    assert human.returncode == 6 and str(pack) in human.err, human.describe()
    if how == "deleted":
        assert "missing" in human.err
    # Checking out the version that needs it fails with one line (or, when only the
    # footer is damaged and every chunk still reads and verifies, succeeds exactly).
    res = run_cli("checkout", "ds@v2", tmp_path / "out", repo=repo_path)
    if how == "footer" and res.returncode == 0:
        assert not diff(describe(v2), describe(tmp_path / "out"))
    else:
        assert_one_line_error(res, 6)
        assert not (tmp_path / "out" / "c.dat").exists()
    # v1 is unaffected.
    assert_ok(run_cli("checkout", "ds@v1", tmp_path / "v1-out", repo=repo_path))
    assert not diff(describe(v1), describe(tmp_path / "v1-out"))


def test_rebuild_past_a_damaged_pack_keeps_the_damage_visible(tmp_path: Path) -> None:
    """`index rebuild` skips a pack it cannot read. The versions that needed it must
    not silently vanish: afterwards verify still fails and names them (or the rebuild
    itself fails)."""
    repo_path, _, _ = _build(tmp_path, "random")
    with reprocas.Repo.open(repo_path) as repo:
        store = repo.store
        with store.index.read() as txn:
            sid = store.resolve(txn, "ds@v2").id
            loc = store.index.get_object(txn, sid.raw)
            assert loc is not None
            pack = store.pack_path(loc.pack)  # the pack holding v2's snapshot
    os.truncate(pack, os.path.getsize(pack) - 10)
    before_log = run_cli("log", "--json", repo=repo_path).json()
    before_packs = repo_state(repo_path)["packs"]
    res = run_cli("index", "rebuild", "--json", repo=repo_path)
    if res.returncode != 0:
        # Exit 6: rebuilt, with the damage reported in one line.
        assert_one_line_error(res, 6)
    else:
        report = res.json()
        # Skipped, or (since issue 13) salvaged into a new pack.
        salvaged = [s["path"] for s in report["salvaged_packs"]]
        assert str(pack) in report["skipped_packs"] + salvaged
    # On either path: the damaged pack is kept (as it was, or salvaged under its name
    # while a copy of the damaged bytes is kept), ...
    assert pack.exists(), "rebuild deleted the damaged pack"
    assert set(before_packs) <= set(repo_state(repo_path)["packs"]), "a pack vanished"
    log_res = run_cli("log", "--json", repo=repo_path)
    if log_res.returncode != 0:  # log lists damaged versions and exits 6
        assert_one_line_error(log_res, 6, "ds@v2")
    log = json.loads(log_res.stdout)
    verify = run_cli("verify", "--json", repo=repo_path)
    # ... what the damaged pack does not hold survives: v1 is listed as before and
    # checks out, ...
    v1 = next(e for e in before_log if e["ref"] == "ds@v1")
    assert v1 in log, f"ds@v1 changed or vanished in the rebuild: {log}"
    assert_ok(run_cli("checkout", "ds@v1", tmp_path / "v1-out", repo=repo_path))
    # ... and the loss is not hidden: v2 is listed, or verify fails.
    lost = "ds@v2" not in [e["ref"] for e in log]
    assert not (lost and verify.returncode == 0), (
        "after rebuilding past a damaged pack, ds@v2 is gone from the log and verify "
        f"reports the repository as sound: {verify.out}"
    )
    if res.returncode != 0:
        assert verify.returncode != 0, "rebuild reported damage that verify does not see"


def test_checkout_error_for_missing_pack_through_api(tmp_path: Path) -> None:
    repo_path, _, _ = _build(tmp_path, "text")
    _pack_of_file(repo_path).unlink()
    with reprocas.Repo.open(repo_path) as repo, pytest.raises(IntegrityError):
        repo.checkout("ds@v2", tmp_path / "out")
    assert not (tmp_path / "out" / "c.dat").exists()
