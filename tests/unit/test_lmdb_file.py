"""The check made before LMDB maps data.mdb: a sound file that is shorter than its
header's page count (the unwritten pages are free) opens; a file cut short anywhere
else is refused — never a SIGBUS in a reader."""

from __future__ import annotations

import os
import random
import shutil
import struct
import subprocess
import sys
from pathlib import Path

import lmdb

from reprocas.store.lmdb_file import header_damage

# Reads every record of every named database; a page past the end kills it with SIGBUS.
_READ_ALL = """
import sys, lmdb
env = lmdb.open(sys.argv[1], readonly=True, lock=False, max_dbs=8)
with env.begin() as txn:
    names = [k for k, _ in txn.cursor()]
    for name in names:
        db = env.open_db(name, txn=txn, create=False)
        for _k, v in txn.cursor(db=db):
            bytes(v)
"""


def _short_by(path: Path) -> int:
    head = (path / "data.mdb").read_bytes()[:8192]
    _, last_pg = max(struct.unpack_from("<QQ", head, off + 136)[::-1] for off in (0, 4096))
    return int(last_pg) + 1 - (path / "data.mdb").stat().st_size // 4096


def _history(path: Path, seed: int, txns: int) -> int:
    """Random transactions that insert and then delete in the same transaction (which
    leaves freed, never-written pages at the top); returns how often the file ended up
    shorter than its header says, each time checked sound."""
    rng = random.Random(seed)
    env = lmdb.open(str(path), map_size=1 << 30, max_dbs=8)
    dbs = [env.open_db(f"d{i}".encode()) for i in range(3)]
    short = 0
    for _ in range(txns):
        with env.begin(write=True) as txn:
            keys = []
            for _ in range(rng.randint(1, 300)):
                db = rng.choice(dbs)
                key = rng.randbytes(rng.randint(8, 40))
                txn.put(key, rng.randbytes(rng.choice([10, 100, 3000, 9000])), db=db)
                keys.append((key, db))
            rng.shuffle(keys)
            for key, db in keys[: int(len(keys) * rng.random())]:
                txn.delete(key, db=db)
        short += _short_by(path) > 0
        assert header_damage(path) is None
    env.close()
    return short


def test_a_sound_file_shorter_than_its_header_opens(tmp_path: Path) -> None:
    path = tmp_path / "env"
    path.mkdir()
    assert _history(path, seed=2, txns=120) > 0  # the case that was refused before


def test_a_file_cut_anywhere_is_refused_or_still_fully_readable(tmp_path: Path) -> None:
    path = tmp_path / "env"
    path.mkdir()
    _history(path, seed=7, txns=60)
    size = (path / "data.mdb").stat().st_size
    rng = random.Random(11)
    refused = 0
    cuts = [size - 4096, size - 1, size // 2, 3 * 4096 + 17] + [
        rng.randrange(2 * 4096, size) for _ in range(12)
    ]
    for i, cut in enumerate(cuts):
        copy = tmp_path / f"cut{i}"
        shutil.copytree(path, copy)
        os.truncate(copy / "data.mdb", cut)
        why = header_damage(copy)
        if why is not None:
            refused += 1
            assert "cut short" in why or "only" in why
            continue
        res = subprocess.run([sys.executable, "-c", _READ_ALL, str(copy)], capture_output=True)
        assert res.returncode == 0, (cut, res.returncode, res.stderr[-300:])
    assert refused >= len(cuts) - 2


def test_garbage_instead_of_the_free_list_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "env"
    path.mkdir()
    for seed in range(3, 12):
        _history(path, seed=seed, txns=8)
        if _short_by(path) > 0:
            break
    else:
        raise AssertionError("no short file in 9 histories")
    head = (path / "data.mdb").read_bytes()[:8192]
    _, off = max((struct.unpack_from("<Q", head, o + 144)[0], o) for o in (0, 4096))
    (free_root,) = struct.unpack_from("<Q", head, off + 80)
    with open(path / "data.mdb", "r+b") as f:
        f.seek(free_root * 4096 + 16)
        f.write(b"\xff" * 64)
    why = header_damage(path)
    assert why is not None and "cut short" in why
