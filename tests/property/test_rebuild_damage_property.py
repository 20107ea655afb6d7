"""Property: whatever damage the ref log and the index take, `index rebuild` followed by
`gc` never deletes a chunk of a version that was readable before (issue 13, item 1).

One repository is built once; each example copies it, damages its ref log and/or its
LMDB files at random (garbage lines, overwritten or cut lines, a truncated or deleted
log; a deleted index, an overwritten header, a truncated or deleted data.mdb or
lock.mdb), then runs `index rebuild` and `gc` as real processes.
"""

from __future__ import annotations

import atexit
import functools
import os
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import reprocas
from reprocas.store.packs import read_trailer
from reprocas.store.reachability import all_versions, reach_snapshot
from tests.integration._helpers import clean_env, cli_argv
from tests.integration.trees import describe, generate_tree, mutate_tree


@functools.cache
def _base() -> tuple[Path, dict[str, set[bytes]], dict[str, Any]]:
    """The repository, the chunks each version needs, and one version's content."""
    work = Path(tempfile.mkdtemp(prefix="reprocas-prop-rebuild-"))
    atexit.register(shutil.rmtree, work, True)
    repo_path = work / "repo"
    src = work / "src"
    with reprocas.Repo.init(repo_path, pack_size=128 << 10) as repo:
        generate_tree(src, 5)
        repo.commit(src, "a", message="a1", tags=["t"])
        mutate_tree(src, 6)
        repo.commit(src, "a", message="a2")
        repo.tag("a@v2", "t", force=True)
        other = work / "other"
        generate_tree(other, 7)
        repo.commit(other, "b", message="b1")
        mutate_tree(src, 8)
        repo.commit(src, "a", message="a3")
        expected = describe(src)
        store = repo.store
        needs: dict[str, set[bytes]] = {}
        with store.index.read() as txn:
            for name, number, sid in all_versions(store, txn):
                needs[f"{name}@v{number}:{sid.hex}"] = set(reach_snapshot(store, txn, sid).chunks)
    return repo_path, needs, {"a@v3": expected}


_damage = st.one_of(
    st.tuples(st.just("reflog-append"), st.binary(min_size=1, max_size=40)),
    st.tuples(st.just("reflog-line"), st.integers(0, 30), st.binary(max_size=40)),
    st.tuples(st.just("reflog-cut"), st.floats(0, 1)),
    st.tuples(st.just("reflog-cut-at-line"), st.integers(0, 30)),
    st.tuples(st.just("reflog-delete")),
    st.tuples(st.just("index-delete")),
    st.tuples(
        st.just("mdb-header"), st.sampled_from([0, 4096]), st.binary(min_size=1, max_size=24)
    ),
    st.tuples(st.just("mdb-cut"), st.floats(0, 0.99)),
    st.tuples(st.just("mdb-delete")),
    st.tuples(st.just("lock-delete")),
)


def _apply(repo: Path, op: tuple[Any, ...]) -> None:
    reflog, data, lock = repo / "reflog", repo / "index" / "data.mdb", repo / "index" / "lock.mdb"
    kind = op[0]
    if kind.startswith("reflog") and not reflog.exists():
        return
    if kind.startswith("mdb") and not data.exists():
        return
    if kind == "reflog-append":
        with open(reflog, "ab") as f:
            f.write(op[1] + b"\n")
    elif kind == "reflog-line":
        lines = reflog.read_bytes().split(b"\n")
        lines[op[1] % len(lines)] = op[2]
        reflog.write_bytes(b"\n".join(lines))
    elif kind == "reflog-cut":
        os.truncate(reflog, int(reflog.stat().st_size * op[1]))
    elif kind == "reflog-cut-at-line":
        lines = reflog.read_bytes().splitlines(keepends=True)
        reflog.write_bytes(b"".join(lines[: op[1] % (len(lines) + 1)]))
    elif kind == "reflog-delete":
        reflog.unlink()
    elif kind == "index-delete":
        shutil.rmtree(repo / "index", ignore_errors=True)
    elif kind == "mdb-header":
        with open(data, "r+b") as f:
            f.seek(op[1])
            f.write(op[2])
    elif kind == "mdb-cut":
        os.truncate(data, int(data.stat().st_size * op[1]))
    elif kind == "mdb-delete":
        data.unlink()
    elif kind == "lock-delete" and lock.exists():
        lock.unlink()


def _run(repo: Path, *args: str) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        cli_argv(list(args), repo), env=clean_env(), capture_output=True, timeout=120, check=False
    )


def _stored_chunks(repo: Path) -> set[bytes]:
    out: set[bytes] = set()
    for p in (repo / "packs").glob("*/*.pack"):
        for f in read_trailer(p).frames:
            out.update(d for d, _, _ in f.chunks)
    return out


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(st.lists(_damage, min_size=1, max_size=3))
def test_damage_then_rebuild_and_gc_never_deletes_a_readable_versions_chunks(
    damage: list[tuple[Any, ...]],
) -> None:
    base, needs, expected = _base()
    work = Path(tempfile.mkdtemp(prefix="reprocas-prop-case-"))
    try:
        repo = work / "repo"
        shutil.copytree(base, repo)
        for op in damage:
            _apply(repo, op)
        rebuilt = _run(repo, "index", "rebuild")
        assert rebuilt.returncode in (0, 6), rebuilt
        assert b"Traceback" not in rebuilt.stderr, rebuilt.stderr.decode()
        gc = _run(repo, "gc")
        assert gc.returncode in (0, 6), gc
        assert b"Traceback" not in gc.stderr, gc.stderr.decode()
        stored = _stored_chunks(repo)
        for version, chunks in needs.items():
            assert chunks <= stored, f"{damage}: gc deleted chunks of {version}"
        # Every version is still a version, or its data was kept as an unfinished commit.
        with reprocas.Repo.open(repo) as r:
            ids = {e.id for e in r.log()}
            report = r.verify(read_data=False)
            assert report.ok, report.to_json()["problems"]
            sid = next(v.split(":")[1] for v in needs if v.startswith("a@v3:"))
            if sid in ids:  # the latest version checks out byte for byte
                r.checkout(sid[:16], work / "co")
                assert describe(work / "co") == expected["a@v3"]
    finally:
        shutil.rmtree(work, ignore_errors=True)
