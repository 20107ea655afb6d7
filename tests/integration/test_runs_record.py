"""`reprocas run`, `runs`, `lineage` and run `diff`, through the real command, with real
scripts reading committed tables with pyarrow."""

from __future__ import annotations

import json
import sys
import textwrap
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import reprocas
from reprocas.model.ids import ObjectId
from reprocas.provenance.names import load_run, resolve_run
from tests.integration._helpers import assert_ok, assert_one_line_error, verify_ok
from tests.integration.conftest import Cli

PY = sys.executable

TRAIN = textwrap.dedent(
    """
    import json, os, sys
    import pyarrow.parquet as pq
    t = pq.read_table("inputs/clinical/data.parquet")
    lr = float(sys.argv[1])
    os.makedirs("out", exist_ok=True)
    score = sum(t.column("x").to_pylist()) * lr
    with open("out/model.txt", "w") as f:
        f.write(f"{score}\\n")
    with open("metrics.json", "w") as f:
        json.dump({"score": score, "loss": [1.0, 0.5], "val": {"rows": t.num_rows}}, f)
    print("trained", score)
    print("a warning", file=sys.stderr)
    """
)

NOISY = textwrap.dedent(
    """
    import os
    with open("noise.bin", "wb") as f:
        f.write(os.urandom(64))
    """
)


def _table(d: Path, rows: int) -> Path:
    d.mkdir(parents=True, exist_ok=True)
    pq.write_table(
        pa.table({"id": list(range(rows)), "x": [float(i) for i in range(rows)]}),
        d / "data.parquet",
    )
    return d


@pytest.fixture
def project(tmp_path: Path, cli: Cli) -> Path:
    """A project directory with train.py and dataset clinical@v1 (3 rows), @v2 (5 rows)."""
    proj = tmp_path / "proj"
    proj.mkdir()
    (proj / "train.py").write_text(TRAIN)
    (proj / "noisy.py").write_text(NOISY)
    assert_ok(cli("init"))
    assert_ok(cli("commit", _table(tmp_path / "v1", 3), "-d", "clinical"))
    assert_ok(cli("commit", _table(tmp_path / "v2", 5), "-d", "clinical"))
    return proj


def _run(cli: Cli, proj: Path, *args: str) -> Any:
    res = cli("run", "--json", *args, cwd=proj)
    assert_ok(res)
    return json.loads(res.stdout)


def test_run_records_inputs_params_outputs_metrics_and_logs(
    cli: Cli, project: Path, repo_path: Path
) -> None:
    r = _run(
        cli, project, "-n", "train", "-i", "clinical@v1", "-p", "lr=0.5", "-p", "tag=a",
        "-o", "out", "--metrics", "metrics.json", "--env", "light", "--", PY, "train.py", "0.5",
    )  # fmt: skip
    assert r["name"] == "train" and r["ref"] == "train#1" and r["exit_code"] == 0
    assert r["params"] == {"lr": 0.5, "tag": "a"}
    with reprocas.Repo.open(repo_path) as repo:
        v1 = repo.resolve("clinical@v1")
        assert r["inputs"] == [
            {"ref": "clinical@v1", "version": "clinical@v1", "id": v1.id.hex,
             "content": v1.snapshot.root.hex, "path": "inputs/clinical", "via": "input",
             "api_refs": [], "api_paths": []}
        ]  # fmt: skip
        assert r["outputs"][0]["path"] == "out"
        assert r["outputs"][0]["version"] == "runs/train@v1"
        assert repo.cat("runs/train@v1", "out/model.txt") == b"1.5\n"
        assert r["metrics"] == {"score": 1.5, "loss": [1.0, 0.5], "val/rows": 3}
        assert r["environment"]["ref"].startswith("env/")
        with repo.store.index.read() as txn:
            run = load_run(repo.store, txn, resolve_run(repo.store, txn, "train").id)
        assert run.root is not None
        assert run.status == "ok" and run.cwd == str(project.resolve())
    # the logs are files of the run's tree, streamed and stored
    with reprocas.Repo.open(repo_path) as repo, repo.store.index.read() as txn:
        from reprocas.provenance.run_store import tree_files

        assert run.root is not None
        files = tree_files(repo.store, txn, run.root.raw)
        assert {"stdout.txt", "stderr.txt", "metrics.json"} <= set(files)
    # the input was checked out exactly at its default path
    assert pq.read_table(project / "inputs/clinical/data.parquet").num_rows == 3
    listed = assert_ok(cli("runs", "--json")).json()
    assert [x["ref"] for x in listed] == ["train#1"]
    assert listed[0]["metrics"] == {"score": 1.5, "val/rows": 3}
    verify_ok(repo_path)


def test_streams_output_and_names(cli: Cli, project: Path) -> None:
    res = cli("run", "-n", "train", "--env", "none", "-i", "clinical", "-o", "out",
              "--", PY, "train.py", "1", cwd=project)  # fmt: skip
    assert_ok(res)
    assert "trained 10.0" in res.out  # clinical = latest = v2 (0+1+2+3+4)
    assert "a warning" in res.err
    res = cli("run", "-n", "train", "--env", "none", "-i", "clinical@v1", "-o", "out",
              "--", PY, "train.py", "1", cwd=project)  # fmt: skip
    assert_ok(res)
    runs = assert_ok(cli("runs", "--name", "train", "--json")).json()
    assert [r["ref"] for r in runs] == ["train#1", "train#2"]
    # NAME is the latest run, NAME#N a given one, an id prefix works too
    lin = assert_ok(cli("lineage", "train", "--up", "--json")).json()
    assert lin["root"] == runs[1]["id"]
    lin = assert_ok(cli("lineage", runs[0]["id"][:10], "--up", "--json")).json()
    labels = {n["label"] for n in lin["nodes"]}
    assert "clinical@v2" in labels and "train#1" in labels


def test_failed_command_is_recorded_with_its_exit_code(
    cli: Cli, project: Path, repo_path: Path
) -> None:
    (project / "fail.py").write_text("import sys\nprint('boom', file=sys.stderr)\nsys.exit(3)\n")
    res = cli("run", "-n", "bad", "--env", "none", "--", PY, "fail.py", cwd=project)
    assert res.returncode == 3, res.describe()
    assert "Traceback" not in res.err and "boom" in res.err
    runs = assert_ok(cli("runs", "--json")).json()
    assert runs[0]["ref"] == "bad#1"
    assert runs[0]["status"] == "failed" and runs[0]["exit_code"] == 3
    res = cli("run", "-n", "bad", "--env", "none", "--", "no-such-command-xyz", cwd=project)
    assert res.returncode == 127, res.describe()
    runs = assert_ok(cli("runs", "--json")).json()
    assert [r["exit_code"] for r in runs] == [3, 127]
    verify_ok(repo_path)


def test_diff_two_runs_in_params_and_data_version(cli: Cli, project: Path) -> None:
    common = ["-n", "train", "--env", "none", "-o", "out", "--metrics", "metrics.json"]
    _run(cli, project, *common, "-i", "clinical@v1", "-p", "lr=0.5", "--", PY, "train.py", "0.5")
    _run(cli, project, *common, "-i", "clinical@v2", "-p", "lr=1", "--", PY, "train.py", "1")
    d = assert_ok(cli("diff", "train#1", "train#2", "--json")).json()
    assert d["params"]["changed"] == {"lr": {"from": 0.5, "to": 1}}
    [inp] = d["inputs"]
    assert (inp["a"], inp["b"], inp["status"]) == ("clinical@v1", "clinical@v2", "changed")
    assert inp["summary"] == {"changed": 1}
    assert d["metrics"]["score"]["delta"] == pytest.approx(10.0 - 1.5)
    assert d["outputs"] == [{"path": "out", "identical": False, "differing": ["out/model.txt"]}]
    assert d["code"]["same_commit"] and "delta_s" in d["time"]
    text = assert_ok(cli("diff", "train#1", "train#2")).out
    assert "lr: 0.5 -> 1" in text and "clinical@v1 -> clinical@v2" in text
    # dataset versions still diff as before
    assert assert_ok(cli("diff", "clinical@v1", "clinical@v2", "--json")).json()["a"] == (
        "clinical@v1"
    )


def test_nondeterministic_outputs_differ_deterministic_ones_do_not(cli: Cli, project: Path) -> None:
    for _ in range(2):
        _run(cli, project, "-n", "noisy", "--env", "none", "-o", "noise.bin", "--", PY, "noisy.py")
        _run(cli, project, "-n", "det", "--env", "none", "-i", "clinical@v1", "-o", "out",
             "--", PY, "train.py", "2")  # fmt: skip
    assert not assert_ok(cli("diff", "noisy#1", "noisy#2", "--json")).json()["outputs"][0][
        "identical"
    ]
    assert assert_ok(cli("diff", "det#1", "det#2", "--json")).json()["outputs"][0]["identical"]


def test_lineage_both_ways_and_dot(cli: Cli, project: Path) -> None:
    _run(cli, project, "-n", "train", "--env", "light", "-i", "clinical@v1", "-o", "out",
         "--", PY, "train.py", "1")  # fmt: skip
    up = assert_ok(cli("lineage", "runs/train@v1", "--up", "--json")).json()
    kinds = {(e["kind"]) for e in up["edges"]}
    assert {"generated", "used", "environment"} <= kinds
    assert {n["label"] for n in up["nodes"]} >= {"runs/train@v1", "train#1", "clinical@v1"}
    down = assert_ok(cli("lineage", "clinical@v1", "--down", "--json")).json()
    assert {n["label"] for n in down["nodes"]} == {"clinical@v1", "train#1", "runs/train@v1"}
    dot = assert_ok(cli("lineage", "train", "--dot")).out
    assert dot.startswith("digraph lineage {") and "->" in dot


def test_environment_drift_is_printed_before_the_command(cli: Cli, project: Path) -> None:
    args = ["run", "-n", "e", "--env", "light", "--", PY, "-c", "print('hi')"]
    assert_ok(cli(*args, cwd=project))
    res = assert_ok(cli(*args, cwd=project))
    assert "environment unchanged since e#1" in res.err
    (project / "requirements.txt").write_text("numpy==1.0\n")  # a lock file changed
    res = assert_ok(cli(*args, cwd=project))
    assert "environment drift since e#2" in res.err and "requirements.txt" in res.err
    assert res.err.index("drift") < res.err.index("recorded run")


def test_params_files_json_toml(cli: Cli, project: Path, tmp_path: Path) -> None:
    (tmp_path / "p.json").write_text('{"lr": 0.1, "layers": [1, 2]}')
    (tmp_path / "p.toml").write_text('lr = 0.2\nname = "x"\n')
    files = ["--params-file", str(tmp_path / "p.json"), "--params-file", str(tmp_path / "p.toml")]
    r = _run(cli, project, "-n", "p", "--env", "none", *files, "-p", "extra=1", "--", PY, "-c", "0")
    assert r["params"] == {"lr": 0.2, "layers": [1, 2], "name": "x", "extra": 1}
    res = cli("run", "--params-file", str(tmp_path / "nope.json"), "--", PY, "-c", "0",
              cwd=project)  # fmt: skip
    assert_one_line_error(res, 2, "nope.json")


def test_bad_input_is_a_clear_error_and_the_record_stays_consistent(
    cli: Cli, project: Path, repo_path: Path
) -> None:
    res = cli("run", "--env", "none", "-i", "nosuch@v1", "--", PY, "-c", "0", cwd=project)
    assert_one_line_error(res, 4, "nosuch")
    res = cli("run", "--env", "none", "-i", "clinical@v9", "--", PY, "-c", "0", cwd=project)
    assert_one_line_error(res, 4, "clinical", "v9")
    assert assert_ok(cli("runs", "--json")).json() == []  # nothing ran, nothing recorded
    res = cli("run", "-n", "m", "--env", "none", "-o", "never.txt", "--", PY, "-c", "0",
              cwd=project)  # fmt: skip
    assert res.returncode == 3 and "Traceback" not in res.err, res.describe()
    last = res.err.splitlines()[-1]
    assert last.startswith("reprocas: error: ") and "never.txt" in last and "m#1" in last
    assert res.err.count("error:") == 1
    [rec] = assert_ok(cli("runs", "--json")).json()
    assert rec["status"] == "failed" and rec["exit_code"] == 0
    res = cli("diff", "m#7", "m#1")
    assert res.returncode == 4, res.describe()
    assert_one_line_error(cli("lineage", "nosuch#2"), 4, "nosuch#2")
    assert_one_line_error(cli("runs", "--name", "zzz"), 4, "zzz")
    res = cli("run", "-n", "bad:name", "--env", "none", "--", PY, "-c", "0", cwd=project)
    assert_one_line_error(res, 2, "bad:name")
    verify_ok(repo_path)


def test_gc_and_prune_keep_what_runs_need(cli: Cli, project: Path, repo_path: Path) -> None:
    _run(cli, project, "-n", "train", "--env", "light", "-i", "clinical@v1", "-o", "out",
         "--metrics", "metrics.json", "--", PY, "train.py", "1")  # fmt: skip
    assert_ok(cli("gc"))
    assert_ok(cli("prune"))
    with reprocas.Repo.open(repo_path) as repo:
        assert repo.log() and repo.datasets() == ["clinical", "env/proj", "runs/train"]
        with repo.store.index.read() as txn:
            h = resolve_run(repo.store, txn, "train#1")
            run = load_run(repo.store, txn, h.id)
            assert run.root is not None
            for sid in run.snapshot_ids():
                repo.store.load_snapshot(txn, ObjectId(sid.raw))
    assert assert_ok(cli("diff", "train#1", "train#1", "--json")).json()["outputs"][0]["identical"]
    verify_ok(repo_path)
