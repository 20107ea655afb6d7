"""A large file's table record is taken on a worker thread while the file is chunked
and compressed (issue 17): the record is the one the serial pass gives, small files are
still inspected inline, and an inspection that fails fails the commit, storing nothing."""

from __future__ import annotations

import threading
from pathlib import Path

import pyarrow.csv as pacsv
import pytest

import reprocas
from reprocas.model.objects import TableRecord
from reprocas.store import commit as commit_mod
from reprocas.tabular.inspect import CSV_PARSE, inspect_file
from tests.integration._helpers import pack_files, verify_ok
from tests.integration.trees import csv_table

THRESHOLD = 256 << 10


def _big_csv(path: Path) -> Path:
    """A CSV above the threshold with quoted values that hold newlines (so the record
    count is not the line count)."""
    body = csv_table(6000, seed=17)
    head, _, rows = body.partition(b"\n")
    quoted = b'9999999,"p\nq",2024-01-01,AMS,120,80,5.5,ok,"two\nlines ""quoted"""\n'
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(head + b"\n" + quoted + rows + quoted)
    assert path.stat().st_size > THRESHOLD
    return path


def test_overlapped_record_equals_the_serial_one_and_runs_on_the_worker(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    src = tmp_path / "src"
    big = _big_csv(src / "big.csv")
    (src / "small.csv").write_bytes(csv_table(20, seed=3))
    threads: dict[str, str] = {}

    def inspector(path: Path) -> TableRecord | None:
        threads[path.name] = threading.current_thread().name
        return inspect_file(path)

    records = {}
    for mode, limit in (("serial", 1 << 62), ("overlapped", THRESHOLD)):
        monkeypatch.setattr(commit_mod, "INSPECT_ASYNC_BYTES", limit)
        root = tmp_path / f"repo-{mode}"
        with reprocas.Repo.init(root) as repo:
            res = commit_mod.commit(repo.store, src, "t", inspect=inspector)
            assert res.created
            records[mode] = (
                repo.resolve(res.ref).snapshot.root,
                repo.table_info(res.ref, "big.csv"),
            )
            rows = repo.read_table(res.ref, "big.csv").num_rows
        verify_ok(root, read_data=True)
        if mode == "serial":
            assert threads == {"big.csv": "MainThread", "small.csv": "MainThread"}
        else:
            assert threads["big.csv"].startswith("reprocas-inspect")
            assert threads["small.csv"] == "MainThread"
        threads.clear()
    want = pacsv.read_csv(big, parse_options=CSV_PARSE).num_rows
    assert want == 6002 and rows == want
    serial, overlapped = records["serial"], records["overlapped"]
    assert overlapped[1] is not None and overlapped[1].rows == want
    assert overlapped == serial  # the same tree and the same table record


def test_a_failing_overlapped_inspection_fails_the_commit_and_stores_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(commit_mod, "INSPECT_ASYNC_BYTES", THRESHOLD)
    big = _big_csv(tmp_path / "src" / "big.csv")

    def broken(path: Path) -> TableRecord | None:
        raise RuntimeError(f"inspection of {path.name} broke")

    root = tmp_path / "repo"
    with reprocas.Repo.init(root) as repo:
        with pytest.raises(RuntimeError, match=r"inspection of big\.csv broke"):
            commit_mod.commit(repo.store, big.parent, "t", inspect=broken)
        assert repo.log() == []
    assert pack_files(root) == set()
    verify_ok(root, read_data=True)
