"""Lazy clones and pulls (issue 18): packs indexed from range reads, frames fetched when
read into a bounded cache, damage on the remote caught before anything is written."""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import reprocas
from reprocas.remote.config import parse_options
from reprocas.remote.protocol import pack_key
from reprocas.remote.registry import open_backend
from reprocas.store.packs import read_trailer
from tests.integration._helpers import run_cli

Remote = tuple[str, list[str]]
VERSIONS = 5


def _csv(path: Path, rows: int, seed: int) -> None:
    r = random.Random(seed)
    lines = [f"{i},{r.random():.9f},{r.choice('abcdef')}{r.getrandbits(40)}\n" for i in range(rows)]
    path.write_text("id,value,label\n" + "".join(lines))


def _source(tmp_path: Path, remote: Remote) -> tuple[Path, dict[int, bytes], int]:
    """Five versions of distinct data, pushed; their bytes and the packs' total size."""
    url, opts = remote
    repo, data = tmp_path / "src", tmp_path / "d.csv"
    assert run_cli("init", "--format", "3", repo=repo).returncode == 0
    files = {}
    for n in range(1, VERSIONS + 1):
        _csv(data, 6000, n)
        files[n] = data.read_bytes()
        assert run_cli("commit", data, "--dataset", "clin", repo=repo).returncode == 0
    assert run_cli("remote", "add", "origin", url, *opts, repo=repo).returncode == 0
    pushed = run_cli("push", "--json", repo=repo).json()
    assert pushed["uploaded_packs"] >= VERSIONS
    return repo, files, pushed["uploaded_bytes"]


def _lazy_clone(tmp_path: Path, remote: Remote, name: str = "lazy") -> tuple[Path, dict[str, Any]]:
    url, opts = remote
    dest = tmp_path / name
    out = run_cli("clone", "--lazy", url, dest, *opts, "--json", repo=None).json()
    return dest, out


def _cache(repo: Path) -> Path:
    return repo / "cache" / "remote-packs"


def _fetched(repo: Path) -> int:
    """Pack bytes the cache holds (the sum of its range records)."""
    d = _cache(repo)
    if not d.is_dir():
        return 0
    return sum(e - s for p in d.glob("*.ranges") for s, e in json.loads(p.read_text())["ranges"])


def _disk(repo: Path) -> int:
    d = _cache(repo)
    return sum(p.stat().st_blocks * 512 for p in d.iterdir()) if d.is_dir() else 0


def test_lazy_clone_fetches_only_what_a_read_needs(tmp_path: Path, remote_url: Remote) -> None:
    src, files, total = _source(tmp_path, remote_url)
    clone, out = _lazy_clone(tmp_path, remote_url)
    assert out["downloaded_packs"] == 0 and out["lazy_packs"] >= VERSIONS
    assert 0 < out["downloaded_bytes"] < total * 0.1, (out["downloaded_bytes"], total)
    assert not list((clone / "packs").glob("*/*.pack"))
    assert _fetched(clone) == 0

    dest = tmp_path / "v3"
    assert run_cli("checkout", "clin@v3", dest, repo=clone).returncode == 0
    assert (dest / "d.csv").read_bytes() == files[3]
    one = _fetched(clone)
    assert 0 < one < total * 0.6, (one, total)
    assert one >= len(files[3]) // 8  # it did fetch the version's frames

    cat = run_cli("cat", "clin@v5", "d.csv", repo=clone)
    assert cat.returncode == 0 and cat.stdout == files[5]
    assert _fetched(clone) < total * 0.6  # two of five versions
    # Read again: served by the cache, nothing more fetched.
    before = _fetched(clone)
    assert run_cli("cat", "clin@v3", "d.csv", repo=clone).stdout == files[3]
    assert _fetched(clone) == before

    plain = run_cli("verify", "--json", repo=clone).json()
    assert plain["ok"] and plain["remote_packs"] >= VERSIONS
    text = run_cli("verify", repo=clone)
    assert text.returncode == 0 and "remote-backed" in text.out
    gc = run_cli("gc", "--json", repo=clone).json()
    assert gc["removed_packs"] == []
    full = run_cli("verify", "--read-data", "--json", repo=clone).json()
    assert full["ok"] and full["chunks_read"] > 0
    for n in (1, 2, 4):
        got = run_cli("cat", f"clin@v{n}", "d.csv", repo=clone)
        assert got.returncode == 0 and got.stdout == files[n]
    # Ids agree with the source.
    for n in range(1, VERSIONS + 1):
        a = run_cli("show", f"clin@v{n}", "--json", repo=src).json()["id"]
        assert run_cli("show", f"clin@v{n}", "--json", repo=clone).json()["id"] == a

    # A rebuild from the local packs would lose the remote-backed ones: refused.
    rb = run_cli("index", "rebuild", repo=clone)
    assert rb.returncode != 0 and "lazy pull" in rb.err
    # Forget and prune: nothing without a local file is touched, nothing crashes.
    assert run_cli("forget", "--keep-last", "2", repo=clone).returncode == 0
    assert run_cli("prune", repo=clone).returncode == 0
    after = run_cli("verify", "--json", repo=clone).json()
    assert after["ok"] and after["versions"] == 2 and after["remote_packs"] >= VERSIONS
    got = run_cli("cat", "clin@v4", "d.csv", repo=clone)
    assert got.returncode == 0 and got.stdout == files[4]


def test_tables_read_lazily(tmp_path: Path, remote_url: Remote) -> None:
    src, _, total = _source(tmp_path, remote_url)
    clone, _ = _lazy_clone(tmp_path, remote_url)
    with reprocas.Repo.open_repo(src) as a, reprocas.Repo.open_repo(clone) as b:
        want = a.read_table("clin@v2", "d.csv")
        got = b.read_table("clin@v2", "d.csv")
        assert got.equals(want) and got.schema == want.schema
        assert b.dataset("clin@v4").to_table().equals(a.dataset("clin@v4").to_table())
    assert 0 < _fetched(clone) < total * 0.6


def test_cache_bound_and_a_full_pull(tmp_path: Path, remote_url: Remote) -> None:
    _, files, total = _source(tmp_path, remote_url)
    clone, _ = _lazy_clone(tmp_path, remote_url)
    bound = 200_000
    assert total > 2 * bound  # the bound must bite
    assert run_cli("config", "set", "remote.cache-size", "200KB", repo=clone).returncode == 0
    assert run_cli("config", "get", "remote.cache-size", repo=clone).out.strip() == "200KB"
    bad = run_cli("config", "set", "remote.cache-size", "lots", repo=clone)
    assert bad.returncode != 0 and "size" in bad.err
    for n in range(1, VERSIONS + 1):
        got = run_cli("cat", f"clin@v{n}", "d.csv", repo=clone)
        assert got.returncode == 0 and got.stdout == files[n]
        assert 0 < _disk(clone) <= bound, (n, _disk(clone))
    dest = tmp_path / "all"
    for n in (5, 1):
        r = run_cli("checkout", f"clin@v{n}", dest, "--force", repo=clone)
        assert r.returncode == 0 and (dest / "d.csv").read_bytes() == files[n]
        assert _disk(clone) <= bound

    # A commit in the lazy clone pushes its own pack only (it lacks the others' files).
    data = tmp_path / "d.csv"
    _csv(data, 3000, 99)
    assert run_cli("commit", data, "--dataset", "clin", repo=clone).returncode == 0
    pushed = run_cli("push", "--json", repo=clone).json()
    assert pushed["uploaded_packs"] == 1 and pushed["skipped_packs"] >= VERSIONS
    files[VERSIONS + 1] = data.read_bytes()

    # A plain pull downloads the packs the lazy one left on the remote; the cache goes.
    pulled = run_cli("pull", "--json", repo=clone).json()
    assert pulled["downloaded_packs"] >= VERSIONS and pulled["lazy_packs"] == 0
    assert len(list((clone / "packs").glob("*/*.pack"))) >= VERSIONS
    assert not list(_cache(clone).glob("*.pack"))
    v = run_cli("verify", "--read-data", "--json", repo=clone).json()
    assert v["ok"] and v["remote_packs"] == 0 and v["versions"] == VERSIONS + 1
    got = run_cli("cat", f"clin@v{VERSIONS + 1}", "d.csv", repo=clone)
    assert got.returncode == 0 and got.stdout == files[VERSIONS + 1]


def test_damaged_remote_frame_is_caught_before_writing(tmp_path: Path, remote_url: Remote) -> None:
    url, opts = remote_url
    _, files, _ = _source(tmp_path, remote_url)
    clone, _ = _lazy_clone(tmp_path, remote_url)
    backend = open_backend(url, parse_options([o for o in opts if o != "--option"]))
    originals: dict[str, bytes] = {}
    try:
        for info in backend.list("packs/"):
            data = backend.get(info.key)
            tmp = tmp_path / "p.pack"
            tmp.write_bytes(data)
            damaged = bytearray(data)
            for f in read_trailer(tmp).frames:  # one byte in the middle of every frame
                damaged[f.offset + f.stored_len // 2] ^= 0x55
            originals[info.key] = data
            backend.put(info.key, bytes(damaged))
        assert originals and all(k.startswith("packs/") for k in originals)
        dest = tmp_path / "out"
        r = run_cli("checkout", "clin@v2", dest, repo=clone)
        assert r.returncode != 0
        assert "damaged" in r.err and "remote" in r.err, r.describe()
        assert len(r.err.strip().splitlines()) <= 3  # a message, not a traceback
        assert not (dest / "d.csv").exists()
        c = run_cli("cat", "clin@v2", "d.csv", repo=clone)
        assert c.returncode != 0 and c.stdout == b""
        assert _fetched(clone) == 0  # nothing damaged was kept
        vr = run_cli("verify", "--read-data", "--json", repo=clone)
        assert vr.returncode == 6
        assert any(p["kind"] == "data" for p in json.loads(vr.stdout)["problems"])
    finally:
        for key, data in originals.items():
            backend.put(key, data)
        backend.close()
    # Repaired remote: the same clone reads it (no damaged bytes were recorded).
    r = run_cli("checkout", "clin@v2", tmp_path / "out2", repo=clone)
    assert r.returncode == 0 and (tmp_path / "out2" / "d.csv").read_bytes() == files[2]


def test_damaged_remote_object_fails_the_lazy_clone(tmp_path: Path, remote_url: Remote) -> None:
    url, opts = remote_url
    _source(tmp_path, remote_url)
    backend = open_backend(url, parse_options([o for o in opts if o != "--option"]))
    try:
        info = next(iter(backend.list("packs/")))
        data = backend.get(info.key)
        tmp = tmp_path / "p.pack"
        tmp.write_bytes(data)
        obj = read_trailer(tmp).objects[0]
        damaged = bytearray(data)
        damaged[obj.offset + obj.stored_len // 2] ^= 0x55
        backend.put(info.key, bytes(damaged))
        assert info.key == pack_key(bytes.fromhex(info.key.rsplit("/", 1)[1][:64]))
    finally:
        backend.close()
    r = run_cli("clone", "--lazy", url, tmp_path / "c", *opts, repo=None)
    assert r.returncode != 0 and "damaged" in r.err, r.describe()
    assert not (tmp_path / "c").exists()


def test_concurrent_readers_under_a_tiny_bound(tmp_path: Path, remote_url: Remote) -> None:
    """Every reader's files are held while it reads: with a bound that evicts all the
    others leave, concurrent reads of different versions still all succeed."""
    import subprocess

    from tests.integration._helpers import clean_env, cli_argv

    _, files, _ = _source(tmp_path, remote_url)
    clone, _ = _lazy_clone(tmp_path, remote_url)
    assert run_cli("config", "set", "remote.cache-size", "1KB", repo=clone).returncode == 0
    for _ in range(3):
        procs = {
            n: subprocess.Popen(
                cli_argv(["cat", f"clin@v{n}", "d.csv"], repo=clone),
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                env=clean_env(),
            )
            for n in range(1, VERSIONS + 1)
        }
        for n, p in procs.items():
            out, err = p.communicate(timeout=120)
            assert p.returncode == 0, err.decode()
            assert out == files[n]
    assert _disk(clone) <= 1000


def test_delta_frames_fetch_their_bases(tmp_path: Path, remote_url: Remote) -> None:
    """A version stored as delta frames against an earlier one reads lazily: its bases
    (in another pack) are fetched with it, natively and through open_file."""
    url, opts = remote_url
    src, data = tmp_path / "src", tmp_path / "e.csv"
    assert run_cli("init", "--format", "3", repo=src).returncode == 0
    r = random.Random(1)
    rows = [f"{i},{r.random():.9f},{r.getrandbits(40)}\n" for i in range(20000)]
    data.write_text("id,value,label\n" + "".join(rows))
    assert run_cli("commit", data, "--dataset", "t", repo=src).returncode == 0
    for k in range(0, len(rows), 50):
        rows[k] = f"{k},0.5,zz\n"
    data.write_text("id,value,label\n" + "".join(rows))
    want = data.read_bytes()
    assert run_cli("commit", data, "--dataset", "t", repo=src).returncode == 0
    codecs = [f.codec for p in (src / "packs").glob("*/*.pack") for f in read_trailer(p).frames]
    assert 2 in codecs  # delta frames exist
    assert run_cli("remote", "add", "origin", url, *opts, repo=src).returncode == 0
    assert run_cli("push", repo=src).returncode == 0
    clone, _ = _lazy_clone(tmp_path, remote_url)
    got = run_cli("cat", "t@v2", "e.csv", repo=clone)
    assert got.returncode == 0 and got.stdout == want
    assert len(list(_cache(clone).glob("*.ranges"))) == 2  # the bases' pack as well
    other, _ = _lazy_clone(tmp_path, remote_url, "lazy2")
    with reprocas.Repo.open_repo(other) as b, b.open_file("t@v2", "e.csv") as f:
        assert f.read() == want
        f.seek(len(want) // 2)
        assert f.read(1000) == want[len(want) // 2 : len(want) // 2 + 1000]
    assert run_cli("verify", "--read-data", repo=other).returncode == 0
