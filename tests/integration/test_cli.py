"""The command line: JSON schemas, refs, repository discovery, init, debug chunk."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path
from typing import Any

import blake3
import pytest

import reprocas
from reprocas.model.chunking import DEFAULT_MAX_SIZE, DEFAULT_MIN_SIZE
from tests.integration._helpers import (
    assert_ok,
    assert_one_line_error,
    clean_env,
    cli_argv,
    run_cli,
)
from tests.integration.conftest import Cli, TreeFactory
from tests.integration.trees import csv_table, describe, diff

HEX64 = re.compile(r"^[0-9a-f]{64}$")
ISO = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\+00:00|Z)$")


def _keys(obj: dict[str, Any], *required: str) -> None:
    missing = set(required) - set(obj)
    assert not missing, f"missing keys {sorted(missing)} in {obj}"


@pytest.fixture
def populated(repo: reprocas.Repo, tmp_path: Path, make_tree: TreeFactory) -> dict[str, Any]:
    """clinical@v1, clinical@v2 (tagged 'published'), and 'copy' holding the same
    data as clinical@v1 (so dedup has something to show). Made through the API (fast);
    the tests read it through the CLI."""
    src, desc1 = make_tree(21)
    copy_src = tmp_path / "copy-src"
    subprocess.run(["cp", "-a", str(src), str(copy_src)], check=True)
    r1 = repo.commit(src, "clinical", message="first cut", step="extract")
    (src / "extra.csv").write_bytes(csv_table(20_000, 5))
    desc2 = describe(src)
    r2 = repo.commit(src, "clinical", message="more rows", tags=["published"])
    r3 = repo.commit(copy_src, "copy")
    repo.close()  # the CLI processes open it themselves

    def as_json(r: Any) -> dict[str, Any]:
        return {"ref": r.ref, "id": r.id.hex, "logical_bytes": r.logical_bytes, "files": r.files}

    return {
        "c1": as_json(r1),
        "c2": as_json(r2),
        "c3": as_json(r3),
        "desc1": desc1,
        "desc2": desc2,
        "src": src,
    }


def test_commit_json(cli: Cli, make_tree: TreeFactory, tmp_path: Path) -> None:
    assert_ok(cli("init"))
    src, desc1 = make_tree(21)
    copy_src = tmp_path / "copy-src"
    subprocess.run(["cp", "-a", str(src), str(copy_src)], check=True)
    c1 = cli("commit", src, "-d", "clinical", "-m", "first cut", "--json").json()
    (src / "extra.csv").write_bytes(csv_table(20_000, 5))
    c2 = cli("commit", src, "-d", "clinical", "-t", "published", "--json").json()
    c3 = cli("commit", copy_src, "-d", "copy", "--json").json()
    for c in (c1, c2, c3):
        _keys(c, "ref", "id", "files", "logical_bytes", "new_bytes")
        assert HEX64.match(c["id"])
        assert isinstance(c["files"], int) and isinstance(c["new_bytes"], int)
        assert c["created"] is True
    assert (c1["ref"], c2["ref"], c3["ref"]) == ("clinical@v1", "clinical@v2", "copy@v1")
    files = [e for e in desc1.values() if e.kind == "file"]
    assert c1["files"] == len(files)
    assert c1["logical_bytes"] == sum(e.size for e in files)
    assert c1["new_bytes"] > 0
    assert c2["files"] == c1["files"] + 1
    # The copy's data is all stored already: only its snapshot is new.
    assert c3["new_bytes"] < 4096, c3
    assert c3["logical_bytes"] == c1["logical_bytes"]
    # The human form names the new version.
    (src / "more.txt").write_text("more")
    human = assert_ok(cli("commit", src, "-d", "clinical"))
    assert "clinical@v3" in human.out


def test_log_json(cli: Cli, populated: dict[str, Any]) -> None:
    log = assert_ok(cli("log", "--json")).json()
    assert isinstance(log, list) and len(log) == 3
    for e in log:
        _keys(e, "ref", "id", "time", "message", "tags", "logical_bytes")
        assert HEX64.match(e["id"]) and ISO.match(e["time"]), e
        assert isinstance(e["tags"], list)
    # Newest first.
    assert [e["ref"] for e in log] == ["copy@v1", "clinical@v2", "clinical@v1"]
    by_ref = {e["ref"]: e for e in log}
    assert by_ref["clinical@v1"]["message"] == "first cut"
    assert by_ref["clinical@v1"]["step"] == "extract"
    assert by_ref["clinical@v2"]["tags"] == ["published"]
    assert by_ref["clinical@v2"]["parent"] == by_ref["clinical@v1"]["id"]
    assert by_ref["clinical@v1"]["id"] == populated["c1"]["id"]
    # Filtered by dataset.
    only = assert_ok(cli("log", "clinical", "--json")).json()
    assert [e["ref"] for e in only] == ["clinical@v2", "clinical@v1"]
    # Human form: refs, short ids, tags, message.
    human = assert_ok(cli("log")).out
    assert "clinical@v2" in human and "[published]" in human and "first cut" in human
    assert populated["c1"]["id"][:12] in human


def test_verify_json(cli: Cli, populated: dict[str, Any]) -> None:
    for args in (("verify", "--json"), ("verify", "--read-data", "--json")):
        v = assert_ok(cli(*args)).json()
        _keys(v, "ok", "problems")
        assert v["ok"] is True and v["problems"] == []
    v = assert_ok(cli("verify", "--read-data-subset", "50", "--json")).json()
    assert v["ok"] is True and v["chunks_read"] > 0
    assert "ok:" in assert_ok(cli("verify")).out
    res = cli("verify", "--read-data-subset", "0")
    assert res.returncode == 2 and "Traceback" not in res.err, res.describe()


def test_du_json(cli: Cli, populated: dict[str, Any], repo_path: Path) -> None:
    du = assert_ok(cli("du", "--json")).json()
    _keys(du, "logical_bytes", "stored_bytes", "dedup_ratio", "compression_ratio", "versions")
    c1, c2, c3 = populated["c1"], populated["c2"], populated["c3"]
    assert du["logical_bytes"] == c1["logical_bytes"] + c2["logical_bytes"] + c3["logical_bytes"]
    on_disk = sum(p.stat().st_size for p in repo_path.rglob("*") if p.is_file())
    assert 0 < du["stored_bytes"] <= on_disk * 1.01 + 4096
    # Three versions that share most of their data: dedup well above 1.
    assert du["dedup_ratio"] > 2.0, du
    assert du["compression_ratio"] >= 1.0
    refs = {v["ref"]: v for v in du["versions"]}
    assert set(refs) == {"clinical@v1", "clinical@v2", "copy@v1"}
    for v in du["versions"]:
        _keys(v, "ref", "logical_bytes", "exclusive_bytes")
    # Only v2 holds extra.csv; v1's data is shared with copy@v1 and v2.
    assert refs["clinical@v2"]["exclusive_bytes"] > 0
    assert refs["clinical@v1"]["exclusive_bytes"] == 0
    assert refs["copy@v1"]["exclusive_bytes"] == 0
    one = assert_ok(cli("du", "clinical@published", "--json")).json()
    _keys(one, "logical_bytes", "exclusive_bytes")
    assert one["logical_bytes"] == c2["logical_bytes"]
    assert one["exclusive_bytes"] == refs["clinical@v2"]["exclusive_bytes"]
    human = assert_ok(cli("du")).out
    assert "dedup ratio" in human and "clinical@v2" in human
    assert_one_line_error(cli("du", "nope@v1"), 4)


def test_other_json_outputs(cli: Cli, populated: dict[str, Any], tmp_path: Path) -> None:
    show = assert_ok(cli("show", "clinical@v2", "--json")).json()
    _keys(show, "ref", "id", "time", "message", "tags", "logical_bytes", "files", "parent")
    ls = assert_ok(cli("ls", "clinical@v1", "--json")).json()
    assert {e["path"] for e in ls} >= {"README.txt", "data/", "link-abs"}
    for e in ls:
        _keys(e, "path", "kind", "mode", "size", "target")
    link = next(e for e in ls if e["path"] == "link-abs")
    assert link["kind"] == "symlink" and link["target"] == "/etc/hostname"
    deep = assert_ok(cli("ls", "clinical@v1", "data", "-r", "--json")).json()
    assert "data/table.csv" in {e["path"] for e in deep}
    co = assert_ok(cli("checkout", "clinical@v1", tmp_path / "co", "--json")).json()
    _keys(co, "ref", "id", "dest", "files", "bytes")
    assert co["files"] == populated["c1"]["files"]
    assert co["bytes"] == populated["c1"]["logical_bytes"]
    tag = assert_ok(cli("tag", "clinical@v1", "baseline", "--json")).json()
    _keys(tag, "ref", "id", "tags")
    assert tag["ref"] == "clinical@v1" and "baseline" in tag["tags"]
    gc = assert_ok(cli("gc", "--dry-run", "--json")).json()
    _keys(gc, "removed_tmp", "removed_packs", "freed_bytes")
    rb = assert_ok(cli("index", "rebuild", "--json")).json()
    _keys(rb, "packs", "chunks", "objects", "refs", "skipped_packs")


def test_refs_resolve(cli: Cli, populated: dict[str, Any]) -> None:
    id1, id2 = populated["c1"]["id"], populated["c2"]["id"]

    def show(ref: str) -> str:
        return str(assert_ok(cli("show", ref, "--json")).json()["id"])

    assert show("clinical@v1") == id1
    assert show("clinical@v2") == id2
    assert show("clinical@latest") == id2
    assert show("clinical") == id2
    assert show("clinical@published") == id2
    assert show(id1[:6]) == id1
    assert show(id1[:10]) == id1
    assert show(id1) == id1
    # A tag moves when set again with --force (tests/integration/test_remove.py).
    assert_ok(cli("tag", "clinical@v1", "published", "--force"))
    assert show("clinical@published") == id1
    log = {e["ref"]: e for e in assert_ok(cli("log", "--json")).json()}
    assert log["clinical@v1"]["tags"] == ["published"] and log["clinical@v2"]["tags"] == []
    # Checkout by tag and by prefix gives the right content.
    dest = Path(str(populated["src"]) + "-co")
    assert_ok(cli("checkout", id2[:8], dest))
    assert not diff(populated["desc2"], describe(dest))


def test_commit_of_unchanged_data_with_a_tag_tags_the_latest(
    cli: Cli, populated: dict[str, Any]
) -> None:
    res = assert_ok(cli("commit", populated["src"], "-d", "clinical", "-t", "again", "--json"))
    out = res.json()
    assert out["created"] is False and out["ref"] == "clinical@v2"
    assert assert_ok(cli("show", "clinical@again", "--json")).json()["id"] == out["id"]


def _make_repo(path: Path, dataset: str) -> None:
    with reprocas.Repo.init(path) as repo:
        src = path.parent / f"src-{dataset}"
        src.mkdir()
        (src / "f.txt").write_text(dataset)
        repo.commit(src, dataset)


def _datasets(res: Any) -> list[str]:
    return sorted({e["ref"].split("@")[0] for e in res.json()})


def test_repository_discovery_order(tmp_path: Path) -> None:
    a = tmp_path / "explicit" / "repo"
    b = tmp_path / "from-env" / "repo"
    project = tmp_path / "project"
    c = project / ".reprocas"
    for path, name in ((a, "explicit"), (b, "fromenv"), (c, "walked")):
        path.parent.mkdir(parents=True, exist_ok=True)
        _make_repo(path, name)
    cwd = project / "sub" / "deeper"
    cwd.mkdir(parents=True)
    env = {"REPROCAS_REPO": str(b)}
    # --repo wins over REPROCAS_REPO and over the walk.
    res = run_cli("--repo", str(a), "log", "--json", cwd=cwd, env=env)
    assert _datasets(res) == ["explicit"]
    # Then REPROCAS_REPO, over the walk.
    assert _datasets(run_cli("log", "--json", cwd=cwd, env=env)) == ["fromenv"]
    # Then the nearest .reprocas/ above the current directory.
    assert _datasets(run_cli("log", "--json", cwd=cwd)) == ["walked"]
    assert _datasets(run_cli("log", "--json", cwd=project)) == ["walked"]
    # --repo and REPROCAS_REPO may name the directory that holds .reprocas/.
    assert _datasets(run_cli("--repo", str(project), "log", "--json")) == ["walked"]
    assert _datasets(run_cli("log", "--json", env={"REPROCAS_REPO": str(project)})) == ["walked"]
    # An empty REPROCAS_REPO counts as unset.
    assert _datasets(run_cli("log", "--json", cwd=cwd, env={"REPROCAS_REPO": ""})) == ["walked"]
    # A nearer repository shadows a farther one.
    inner = project / "sub" / ".reprocas"
    _make_repo(inner, "inner")
    assert _datasets(run_cli("log", "--json", cwd=cwd)) == ["inner"]
    # The Python API discovers the same way.
    old = Path.cwd()
    try:
        os.chdir(cwd)
        with reprocas.Repo.open() as repo:
            assert repo.datasets() == ["inner"]
    finally:
        os.chdir(old)


def test_init_without_path_creates_dot_dir_in_cwd(tmp_path: Path) -> None:
    proj = tmp_path / "proj"
    proj.mkdir()
    res = assert_ok(run_cli("init", "--json", cwd=proj))
    assert Path(res.json()["path"]).resolve() == (proj / ".reprocas").resolve()
    assert (proj / ".reprocas" / "reprocas.json").is_file()
    assert sorted(os.listdir(proj)) == [".reprocas"]
    human = assert_ok(run_cli("init", "--json", cwd=tmp_path / "proj" / ".."))
    assert (tmp_path / ".reprocas").is_dir() and human.returncode == 0
    # Commands from a subdirectory find it.
    sub = proj / "data"
    sub.mkdir()
    (sub / "x.txt").write_text("x")
    assert_ok(run_cli("commit", ".", "-d", "ds", cwd=sub))
    log = assert_ok(run_cli("log", "--json", cwd=sub)).json()
    assert [e["ref"] for e in log] == ["ds@v1"]
    # A second init in the same place is refused.
    assert_one_line_error(run_cli("init", cwd=proj), 2, "already")
    # --repo PATH init creates it there.
    other = tmp_path / "other-repo"
    assert_ok(run_cli("--repo", str(other), "init"))
    assert (other / "reprocas.json").is_file()


def test_debug_chunk_json_matches_blake3(tmp_path: Path) -> None:
    data = csv_table(30_000, 3) + os.urandom(700_000) + bytes(300_000)
    f = tmp_path / "input.bin"
    f.write_bytes(data)
    res = assert_ok(run_cli("debug", "chunk", str(f), "--json"))
    out = res.json()
    assert set(out) == {"file_digest", "chunks"}
    assert out["file_digest"] == blake3.blake3(data).hexdigest()
    chunks = out["chunks"]
    assert len(chunks) > 10
    pos = 0
    for i, c in enumerate(chunks):
        assert set(c) == {"offset", "length", "digest"}
        assert c["offset"] == pos
        piece = data[pos : pos + c["length"]]
        assert c["digest"] == blake3.blake3(piece).hexdigest(), i
        if i < len(chunks) - 1:
            assert DEFAULT_MIN_SIZE <= c["length"] <= DEFAULT_MAX_SIZE
        pos += c["length"]
    assert pos == len(data)
    # Other sizes: smaller chunks, same whole-file digest, still contiguous.
    small = assert_ok(
        run_cli(
            "debug", "chunk", str(f), "--min", "1024", "--avg", "4096", "--max", "16384", "--json"
        )
    ).json()
    assert small["file_digest"] == out["file_digest"]
    assert len(small["chunks"]) > 3 * len(chunks)
    assert sum(c["length"] for c in small["chunks"]) == len(data)
    # An empty file: no chunks, the digest of nothing.
    e = tmp_path / "empty"
    e.write_bytes(b"")
    empty = assert_ok(run_cli("debug", "chunk", str(e), "--json")).json()
    assert empty == {"file_digest": blake3.blake3(b"").hexdigest(), "chunks": []}
    # Bad parameters are a usage error.
    bad = run_cli("debug", "chunk", str(f), "--min", "100000", "--avg", "10", "--max", "5")
    assert_one_line_error(bad, 2)
    # The human form names the digest.
    assert out["file_digest"] in assert_ok(run_cli("debug", "chunk", str(f))).out


def test_debug_chunk_agrees_with_what_commit_stores(repo: reprocas.Repo, tmp_path: Path) -> None:
    f = tmp_path / "one.bin"
    f.write_bytes(csv_table(10_000, 9) + os.urandom(100_000))
    r = repo.commit(f, "one")
    out = assert_ok(run_cli("debug", "chunk", str(f), "--json")).json()
    with repo.store.index.read() as txn:
        v = repo.store.resolve(txn, r.ref)
        [entry] = repo.store.load_tree(txn, v.snapshot.root).entries

        manifest = repo.store.entry_manifest(txn, entry)
    assert manifest.digest.hex() == out["file_digest"]
    assert [(d.hex(), n) for d, n in manifest.chunks] == [
        (c["digest"], c["length"]) for c in out["chunks"]
    ]


def test_cat_into_a_closed_pipe_is_quiet(cli: Cli, repo: reprocas.Repo, tmp_path: Path) -> None:
    """`reprocas cat ... | head -c 10`: no traceback and no error message; the exit
    code is the broken-pipe convention (141) that the CLI sets up, or 0."""
    f = tmp_path / "big.bin"
    f.write_bytes(os.urandom(20 << 20))
    repo.commit(f, "big")
    proc = subprocess.Popen(
        cli_argv(["cat", "big", "big.bin"], repo.root),
        env=clean_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert proc.stdout is not None and proc.stderr is not None
    head = proc.stdout.read(10)
    proc.stdout.close()
    err = proc.stderr.read()
    proc.wait(timeout=60)
    assert len(head) == 10
    assert b"Traceback" not in err, err.decode()
    assert proc.returncode in (0, 141), (proc.returncode, err.decode())


def test_help_works(tmp_path: Path) -> None:
    res = assert_ok(run_cli("--help", cwd=tmp_path))
    for cmd in ("init", "commit", "log", "checkout", "verify", "du", "gc", "index", "debug"):
        assert cmd in res.out
    assert_ok(run_cli("commit", "--help", cwd=tmp_path))
