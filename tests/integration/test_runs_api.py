"""The Python API (`with reprocas.run(...) as run:`) inside real scripts."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

import reprocas
from tests.integration._helpers import assert_ok, clean_env, verify_ok
from tests.integration.conftest import Cli

SCRIPT = textwrap.dedent(
    """
    import sys
    import reprocas
    with reprocas.run(name="api", params={"k": 2}, repo=sys.argv[1], env="none") as run:
        t = run.input("clinical@v1").to_table()
        p = run.input_path("clinical@v1")
        run.log_params(extra="yes")
        n = t.num_rows
        open("result.txt", "w").write(str(n * 2))
        run.output("result.txt")
        run.log_metrics({"rows": n, "curve": [0.5, 0.25]})
        if sys.argv[2] == "raise":
            raise RuntimeError("deliberate")
    """
)


def test_api_records_a_run_and_a_failing_block(tmp_path: Path, cli: Cli, repo_path: Path) -> None:
    assert_ok(cli("init"))
    d = tmp_path / "v1"
    d.mkdir()
    pq.write_table(pa.table({"id": [1, 2, 3]}), d / "data.parquet")
    assert_ok(cli("commit", d, "-d", "clinical"))
    proj = tmp_path / "proj"
    proj.mkdir()
    (proj / "s.py").write_text(SCRIPT)
    p = subprocess.run(
        [sys.executable, "s.py", str(repo_path), "ok"], cwd=proj, env=clean_env(),
        capture_output=True, check=False,
    )  # fmt: skip
    assert p.returncode == 0, p.stderr.decode()
    p = subprocess.run(
        [sys.executable, "s.py", str(repo_path), "raise"], cwd=proj, env=clean_env(),
        capture_output=True, check=False,
    )  # fmt: skip
    assert p.returncode == 1 and b"deliberate" in p.stderr
    runs = assert_ok(cli("runs", "--json")).json()
    assert [(r["ref"], r["status"]) for r in runs] == [("api#1", "ok"), ("api#2", "failed")]
    assert runs[0]["params"] == {"k": 2, "extra": "yes"}
    assert runs[0]["metrics"] == {"rows": 3}
    lin = assert_ok(cli("lineage", "api#1", "--json")).json()
    assert {n["label"] for n in lin["nodes"]} == {"api#1", "clinical@v1", "runs/api@v1"}
    with reprocas.Repo.open(repo_path) as repo:
        assert repo.cat("runs/api@v1", "result.txt") == b"6"
    assert (proj / "inputs/clinical/data.parquet").is_file()
    verify_ok(repo_path)
