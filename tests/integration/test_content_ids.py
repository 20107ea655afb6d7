"""Format 3 content ids (docs/FORMAT.md, "Format 3"): a version's root tree id depends
only on its files — not on chunk sizes — and ``check-dir`` confirms a directory holds
exactly a version's content, from the repository or from a published listing alone."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

import reprocas
from reprocas.model.chunking import ChunkingConfig
from reprocas.store.content import content_id, dir_items
from tests.conftest import random_bytes
from tests.integration._helpers import assert_ok, assert_one_line_error, run_cli

SMALL_CHUNKS = ChunkingConfig(min_size=1024, avg_size=2048, max_size=8192)
LARGE_CHUNKS = ChunkingConfig(min_size=16384, avg_size=32768, max_size=131072)


def _tree(root: Path) -> Path:
    """A directory with files large enough to be cut differently by the two chunkings,
    an executable, an empty file, a link and an empty directory."""
    (root / "data" / "deep").mkdir(parents=True)
    (root / "empty-dir").mkdir()
    (root / "data" / "big.bin").write_bytes(random_bytes(300_000, 1))
    (root / "data" / "deep" / "table.csv").write_bytes(b"a,b\n" + b"1,2\n" * 20_000)
    (root / "empty.txt").write_bytes(b"")
    tool = root / "run.sh"
    tool.write_text("#!/bin/sh\necho hi\n")
    tool.chmod(0o755)
    os.symlink("data/big.bin", root / "link")
    return root


def _cid(src: Path) -> str:
    """The content id of a directory, recomputed without a repository."""
    cid = content_id(dir_items(src))
    assert cid is not None
    return cid.hex()


def _commit(repo_path: Path, src: Path, chunking: ChunkingConfig, fmt: int = 3) -> tuple[str, str]:
    """(snapshot id, content id) of ``src`` committed into a new repository."""
    with reprocas.Repo.init(repo_path, chunking=chunking, format=fmt) as repo:
        res = repo.commit(src, "ds")
        return res.id.hex, repo.show("ds@v1").content_id


def _chunk_counts(repo_path: Path) -> int:
    with reprocas.Repo.open_repo(repo_path) as repo:
        store = repo.store
        with store.index.read() as txn:
            return int(txn.stat(store.index.db["chunks"])["entries"])


def test_same_directory_gets_one_content_id_whatever_the_chunking(tmp_path: Path) -> None:
    src = _tree(tmp_path / "src")
    sid_a, cid_a = _commit(tmp_path / "a", src, SMALL_CHUNKS)
    sid_b, cid_b = _commit(tmp_path / "b", src, LARGE_CHUNKS)
    # The files really were cut differently...
    assert _chunk_counts(tmp_path / "a") > 2 * _chunk_counts(tmp_path / "b")
    # ...yet the content id is the same, and is what the directory itself gives.
    assert cid_a == cid_b == _cid(src)
    assert sid_a != sid_b  # snapshots differ (time), and name the same content
    # In format 2 the root tree id depends on the chunking: the reason for format 3.
    _, old_a = _commit(tmp_path / "c", src, SMALL_CHUNKS, fmt=2)
    _, old_b = _commit(tmp_path / "d", src, LARGE_CHUNKS, fmt=2)
    assert old_a != old_b


@pytest.mark.parametrize("change", ["byte", "mode", "name", "link", "empty-dir", "dir-mode"])
def test_any_change_of_content_changes_the_content_id(tmp_path: Path, change: str) -> None:
    src = _tree(tmp_path / "src")
    _, before = _commit(tmp_path / "a", src, SMALL_CHUNKS)
    if change == "byte":
        data = bytearray((src / "data" / "big.bin").read_bytes())
        data[150_000] ^= 1
        (src / "data" / "big.bin").write_bytes(bytes(data))
    elif change == "mode":
        (src / "run.sh").chmod(0o644)
    elif change == "name":
        (src / "empty.txt").rename(src / "empty2.txt")
    elif change == "link":
        (src / "link").unlink()
        os.symlink("data/deep/table.csv", src / "link")
    elif change == "empty-dir":
        (src / "empty-dir").rmdir()
    else:
        (src / "empty-dir").chmod(0o700)
    _, after = _commit(tmp_path / "b", src, SMALL_CHUNKS)
    assert after != before
    assert after == _cid(src)


def test_format3_versions_read_back_exactly(tmp_path: Path) -> None:
    """commit, checkout, cat, open, verify, rebuild and gc on a format-3 repository."""
    src = _tree(tmp_path / "src")
    repo_path = tmp_path / "repo"
    assert_ok(run_cli("init", "--format", "3", repo_path))
    assert json.loads((repo_path / "reprocas.json").read_text())["version"] == 3
    assert_ok(run_cli("commit", src, "-d", "ds", repo=repo_path))
    (src / "data" / "deep" / "table.csv").write_bytes(b"a,b\n" + b"1,3\n" * 20_000)
    assert_ok(run_cli("commit", src, "-d", "ds", repo=repo_path))
    steps = (["verify", "--read-data"], ["index", "rebuild"], ["gc"], ["verify", "--read-data"])
    for step in steps:
        assert_ok(run_cli(*step, repo=repo_path))
    out = tmp_path / "out"
    assert_ok(run_cli("checkout", "ds@v2", out, repo=repo_path))
    assert_ok(run_cli("check-dir", out, "ds@v2", repo=repo_path))
    cat = assert_ok(run_cli("cat", "ds@v1", "data/deep/table.csv", repo=repo_path))
    assert cat.stdout == b"a,b\n" + b"1,2\n" * 20_000
    with reprocas.Repo.open_repo(repo_path) as repo, repo.open("ds@v1", "data/big.bin") as f:
        f.seek(100_000)
        assert f.read(10) == random_bytes(300_000, 1)[100_000:100_010]


def test_show_prints_the_content_id_in_every_format(tmp_path: Path) -> None:
    src = _tree(tmp_path / "src")
    for fmt in ("2", "3"):
        repo_path = tmp_path / f"repo{fmt}"
        assert_ok(run_cli("init", "--format", fmt, repo_path))
        assert_ok(run_cli("commit", src, "-d", "ds", repo=repo_path))
        shown = assert_ok(run_cli("show", "ds", "--json", repo=repo_path)).json()
        text = assert_ok(run_cli("show", "ds", repo=repo_path)).out
        line = next(ln for ln in text.splitlines() if ln.startswith("content "))
        assert shown["content_id"] in line
        assert ("depends on chunking" in line) == (fmt == "2")
        if fmt == "3":
            assert shown["content_id"] == _cid(src)


def test_init_refuses_an_unknown_format(tmp_path: Path) -> None:
    res = run_cli("init", "--format", "4", tmp_path / "r")
    assert_one_line_error(res, 2, "format 4")
    assert not (tmp_path / "r" / "reprocas.json").exists()


# -- check-dir ---------------------------------------------------------------------------


@pytest.fixture
def checked(tmp_path: Path) -> tuple[Path, Path]:
    """A format-3 repository with ``ds@v1`` and a checkout of it."""
    src = _tree(tmp_path / "src")
    repo_path = tmp_path / "repo"
    assert_ok(run_cli("init", "--format", "3", repo_path))
    assert_ok(run_cli("commit", src, "-d", "ds", repo=repo_path))
    out = tmp_path / "out"
    assert_ok(run_cli("checkout", "ds@v1", out, repo=repo_path))
    return repo_path, out


def _differences(repo_path: Path, out: Path) -> list[dict[str, object]]:
    res = run_cli("check-dir", out, "ds@v1", "--json", repo=repo_path)
    assert res.returncode == 1, res.describe()
    got = json.loads(res.stdout)
    assert got["same"] is False
    return list(got["differences"])


def test_check_dir_names_every_kind_of_difference(checked: tuple[Path, Path]) -> None:
    repo_path, out = checked
    same = assert_ok(run_cli("check-dir", out, "ds@v1", "--json", repo=repo_path)).json()
    assert same["same"] is True and same["differences"] == []
    assert same["content_id"]["expected"] == same["content_id"]["actual"]
    (out / "run.sh").chmod(0o644)
    (out / "empty.txt").write_bytes(b"x")
    data = bytearray((out / "data" / "big.bin").read_bytes())
    data[7] ^= 0xFF
    (out / "data" / "big.bin").write_bytes(bytes(data))
    (out / "link").unlink()
    os.symlink("elsewhere", out / "link")
    shutil.rmtree(out / "data" / "deep")
    (out / "empty-dir").rmdir()
    (out / "empty-dir").write_bytes(b"")
    (out / "new.txt").write_text("not in the version\n")
    got = {(d["path"], d["change"]) for d in _differences(repo_path, out)}
    assert got == {
        ("run.sh", "mode"),
        ("empty.txt", "size"),
        ("empty.txt", "digest"),
        ("data/big.bin", "digest"),
        ("link", "target"),
        ("data/deep", "missing"),  # named once, not each file below it
        ("empty-dir", "kind"),
        ("new.txt", "extra"),
    }
    text = run_cli("check-dir", out, "ds@v1", repo=repo_path)
    assert text.returncode == 1
    assert "differs from ds@v1" in text.out
    assert "mode     run.sh  expected 755, found 644" in text.out


def test_check_dir_against_a_published_listing_needs_no_repository(
    checked: tuple[Path, Path], tmp_path: Path
) -> None:
    repo_path, out = checked
    listing = tmp_path / "m.json"
    listing.write_bytes(assert_ok(run_cli("show", "ds@v1", "--manifest", repo=repo_path)).stdout)
    shutil.rmtree(repo_path)  # the reviewer has only the files and the listing
    got = assert_ok(run_cli("check-dir", out, "--manifest", listing, "--json", cwd=tmp_path)).json()
    assert got["same"] is True
    assert got["content_id"]["actual"] == json.loads(listing.read_text())["content_id"]
    # A listing edited to match other files no longer hashes to the id it claims.
    (out / "empty.txt").write_bytes(b"forged")
    data = json.loads(listing.read_text())
    for e in data["entries"]:
        if e["path"] == "empty.txt":
            e["size"] = 6
            e["digest"] = content_digest(out / "empty.txt")
    listing.write_text(json.dumps(data))
    res = run_cli("check-dir", out, "--manifest", listing, "--json", cwd=tmp_path)
    assert res.returncode == 1, res.describe()
    forged = json.loads(res.stdout)
    assert forged["differences"] == []
    assert forged["content_id"]["listing"] == forged["content_id"]["actual"]
    assert forged["content_id"]["listing"] != forged["content_id"]["expected"]


def content_digest(path: Path) -> str:
    from tests.integration.trees import file_digest

    return file_digest(path)


def test_check_dir_bad_input_is_one_line(checked: tuple[Path, Path], tmp_path: Path) -> None:
    repo_path, out = checked
    assert_one_line_error(run_cli("check-dir", out, repo=repo_path), 2, "REF or --manifest")
    bad = tmp_path / "bad.json"
    bad.write_text("{}")
    assert_one_line_error(run_cli("check-dir", out, "--manifest", bad), 2, "content listing")
    assert_one_line_error(
        run_cli("check-dir", tmp_path / "nowhere", "ds@v1", repo=repo_path), 2, "not a directory"
    )
    assert_one_line_error(run_cli("check-dir", out, "ds@v9", repo=repo_path), 4, "ds")


def test_check_dir_on_a_format2_version_compares_without_a_content_id(tmp_path: Path) -> None:
    src = _tree(tmp_path / "src")
    repo_path = tmp_path / "repo"
    assert_ok(run_cli("init", "--format", "2", repo_path))
    assert_ok(run_cli("commit", src, "-d", "ds", repo=repo_path))
    got = assert_ok(run_cli("check-dir", src, "ds", "--json", repo=repo_path)).json()
    assert got["same"] is True and got["content_id"] is None
    (src / "run.sh").chmod(0o700)
    res = run_cli("check-dir", src, "ds", "--json", repo=repo_path)
    assert res.returncode == 1
    assert json.loads(res.stdout)["differences"] == [
        {"path": "run.sh", "change": "mode", "expected": "755", "actual": "700"}
    ]


def test_runs_record_the_content_id_of_their_inputs(checked: tuple[Path, Path]) -> None:
    repo_path, out = checked
    proj = out.parent / "proj"
    proj.mkdir()
    assert_ok(
        run_cli(
            "run", "--name", "r", "--input", "ds@v1", "--env", "none", "--", "true",
            repo=repo_path, cwd=proj,
        )
    )  # fmt: skip
    [run] = assert_ok(run_cli("runs", "--json", repo=repo_path)).json()
    shown = assert_ok(run_cli("show", "ds@v1", "--json", repo=repo_path)).json()
    [inp] = run["inputs"]
    assert inp["id"] == shown["id"] and inp["content"] == shown["content_id"]


def test_prune_takes_a_dead_files_chunk_map_entry_along(tmp_path: Path) -> None:
    """After prune removes a chunk map, no ``chunkmaps`` entry names it, and the same
    file committed again is stored again and reads back."""
    from reprocas.store.files import lookup_chunkmap

    src = tmp_path / "src"
    src.mkdir()
    gone = random_bytes(50_000, 7)
    (src / "gone.bin").write_bytes(gone)
    (src / "kept.txt").write_text("kept\n")
    repo_path = tmp_path / "repo"
    assert_ok(run_cli("init", "--format", "3", repo_path))
    assert_ok(run_cli("commit", src, "-d", "ds", repo=repo_path))
    (src / "gone.bin").unlink()
    assert_ok(run_cli("commit", src, "-d", "ds", repo=repo_path))
    digest = bytes.fromhex(content_digest_bytes(gone))

    def entry() -> bytes | None:
        with reprocas.Repo.open_repo(repo_path) as repo, repo.store.index.read() as txn:
            return lookup_chunkmap(repo.store, txn, digest)

    assert entry() is not None
    assert_ok(run_cli("forget", "--keep-last", "1", repo=repo_path))
    assert_ok(run_cli("prune", "--max-unused", "0%", repo=repo_path))
    assert entry() is None
    (src / "gone.bin").write_bytes(gone)
    assert_ok(run_cli("commit", src, "-d", "ds", repo=repo_path))
    assert entry() is not None
    assert_ok(run_cli("verify", "--read-data", repo=repo_path))
    assert assert_ok(run_cli("cat", "ds@v3", "gone.bin", repo=repo_path)).stdout == gone


def content_digest_bytes(data: bytes) -> str:
    import blake3

    return str(blake3.blake3(data).hexdigest())


def test_index_rebuild_recreates_chunk_maps_and_table_records(tmp_path: Path) -> None:
    """Both format-3 sub-databases come back from the packs alone."""
    src = tmp_path / "src"
    src.mkdir()
    (src / "t.csv").write_text("a,b\n1,2\n3,4\n")
    (src / "big.bin").write_bytes(random_bytes(40_000, 3))
    repo_path = tmp_path / "repo"
    assert_ok(run_cli("init", "--format", "3", repo_path))
    assert_ok(run_cli("commit", src, "-d", "ds", repo=repo_path))
    table = assert_ok(run_cli("show", "ds", "--path", "t.csv", "--json", repo=repo_path)).json()
    assert table["table"]["rows"] == 2
    shutil.rmtree(repo_path / "index")
    assert_ok(run_cli("index", "rebuild", repo=repo_path))
    again = assert_ok(run_cli("show", "ds", "--path", "t.csv", "--json", repo=repo_path)).json()
    assert again == table
    assert_ok(run_cli("verify", "--read-data", repo=repo_path))
    out = tmp_path / "out"
    assert_ok(run_cli("checkout", "ds", out, repo=repo_path))
    assert_ok(run_cli("check-dir", out, "ds", repo=repo_path))


def test_check_dir_names_a_name_that_is_not_utf8(checked: tuple[Path, Path]) -> None:
    """No version can hold it (commit refuses such names): an extra entry, printed
    with its bytes escaped, and no content id for the directory — never a traceback."""
    repo_path, out = checked
    (out / os.fsdecode(b"bad\xff")).write_bytes(b"x")
    res = run_cli("check-dir", out, "ds@v1", "--json", repo=repo_path)
    assert res.returncode == 1 and "Traceback" not in res.err, res.describe()
    got = json.loads(res.stdout)
    assert got["differences"] == [{"path": "bad\\xff", "change": "extra"}]
    assert got["content_id"]["actual"] is None
    text = run_cli("check-dir", out, "ds@v1", repo=repo_path)
    assert text.returncode == 1 and "extra    bad\\xff" in text.out, text.describe()
