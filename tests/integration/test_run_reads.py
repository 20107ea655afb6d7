"""Reads through the Python API inside a recorded run are its inputs (docs/RUNS.md,
"Reads through the API"), a replay reads what the original read, and the command is
told where the repository is ("Where the repository is"). Every script here is a real
process started by ``reprocas run`` or ``reprocas replay``."""

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
from reprocas.errors import RepositoryNotFoundError
from reprocas.store.repository import find_root
from tests.integration._helpers import assert_ok, git, verify_ok
from tests.integration.conftest import Cli

PY = sys.executable

# Each entry of the API that reads a version's content, on a version of its own.
EVERY_ENTRY = textwrap.dedent(
    """
    import reprocas
    repo = reprocas.Repo.open()
    reprocas.read_table("cohort@v1", "cohort.parquet")
    reprocas.dataset("cohort@v2", "cohort.parquet").to_table()
    repo.read_table("cohort@v3", "cohort.parquet")
    repo.dataset("cohort@v4").to_table()
    with repo.open("cohort@v5", "cohort.parquet") as f:
        f.read()
    repo.checkout("cohort@v6", "got")
    repo.cat("cohort@v7", "cohort.parquet")
    with open("cat.bin", "wb") as f:
        repo.cat_to("cohort@v8", "cohort.parquet", f.fileno())
    repo.export_table("cohort@v9", "cohort.parquet", "exported.csv")
    repo.diff("cohort@v10", "cohort@v11")
    repo.ls("cohort@v12")
    repo.table_info("cohort@v13", "cohort.parquet")
    print("read them all")
    # pyarrow's scanner threads can outlive a dataset into interpreter shutdown and abort
    # it (apache/arrow#36389); collecting here joins them while Arrow is still alive.
    import gc; gc.collect()
    """
)
ENTRIES = {
    1: "reprocas.read_table",
    2: "reprocas.dataset",
    3: "Repo.read_table",
    4: "Repo.dataset",
    5: "Repo.open",
    6: "Repo.checkout",
    7: "Repo.cat",
    8: "Repo.cat_to",
    9: "Repo.export_table",
    10: "Repo.diff",
    11: "Repo.diff",
    12: "Repo.ls",
    13: "Repo.table_info",
}

# Reads the latest cohort (from the repository named on its command line) and writes a
# result that depends on every row.
TRAIN = textwrap.dedent(
    """
    import json, os, sys, reprocas
    t = reprocas.Repo.open(sys.argv[1]).read_table("cohort", "cohort.parquet")
    os.makedirs("out", exist_ok=True)
    total = sum(t.column("x").to_pylist())
    with open("out/result.txt", "w") as f:
        f.write(f"{total}\\n")
    with open("metrics.json", "w") as f:
        json.dump({"total": total}, f)
    """
)


def _cohort(d: Path, rows: int) -> Path:
    d.mkdir(parents=True, exist_ok=True)
    pq.write_table(
        pa.table({"id": list(range(rows)), "x": [float(i * i) for i in range(rows)]}),
        d / "cohort.parquet",
    )
    return d


def _commit(cli: Cli, tmp_path: Path, rows: int) -> None:
    assert_ok(cli("commit", _cohort(tmp_path / f"src{rows}", rows), "-d", "cohort"))


@pytest.fixture
def project(tmp_path: Path, cli: Cli) -> Path:
    """A git repository holding the scripts; the reprocas repository (outside it, at
    ``tmp_path/repo``) holds cohort@v1 (3 rows)."""
    proj = tmp_path / "proj"
    proj.mkdir()
    (proj / "train.py").write_text(TRAIN)
    (proj / "every.py").write_text(EVERY_ENTRY)
    (proj / ".gitignore").write_text("out/\nmetrics.json\ngot/\n*.bin\n*.csv\n")
    git(proj, "init", "-q")
    git(proj, "add", "-A")
    git(proj, "commit", "-q", "-m", "scripts")
    assert_ok(cli("init"))
    _commit(cli, tmp_path, 3)
    return proj


def _run(cli: Cli, cwd: Path, *args: str) -> dict[str, Any]:
    res = assert_ok(cli("run", "--json", "--env", "none", *args, cwd=cwd))
    out: dict[str, Any] = json.loads(res.stdout)
    return out


def _ids(repo_path: Path) -> dict[str, str]:
    with reprocas.Repo.open(repo_path) as repo:
        return {e.ref: e.id for e in repo.log()}


def test_every_api_entry_is_an_input(
    cli: Cli, project: Path, repo_path: Path, tmp_path: Path
) -> None:
    for rows in range(4, 16):
        _commit(cli, tmp_path, rows)  # cohort@v2 .. v13
    ids = _ids(repo_path)
    r = _run(cli, project, "-n", "every", "-i", "cohort@v1", "--", PY, "every.py")
    assert r["status"] == "ok", r
    by_id = {i["id"]: i for i in r["inputs"]}
    for n, entry in ENTRIES.items():
        rec = by_id.get(ids[f"cohort@v{n}"])
        assert rec is not None, f"{entry} (cohort@v{n}) was not recorded as an input"
        assert f"cohort@v{n}" in rec["api_refs"], (entry, rec)
        assert rec["version"] == f"cohort@v{n}"
    # cohort@v1 was declared too: one input, the declared one, also read through the API
    assert len(r["inputs"]) == 13
    v1 = by_id[ids["cohort@v1"]]
    assert v1["via"] == "input" and v1["path"] == "inputs/cohort"
    assert v1["api_refs"] == ["cohort@v1"] and v1["api_paths"] == ["cohort.parquet"]
    assert {by_id[ids[f"cohort@v{n}"]]["via"] for n in range(2, 14)} == {"api"}
    assert by_id[ids["cohort@v2"]]["path"] is None
    # the runs listing and the lineage see them
    [listed] = assert_ok(cli("runs", "--json")).json()
    assert {i["id"] for i in listed["inputs"]} == set(by_id)
    lineage = assert_ok(cli("lineage", "cohort@v7", "--json")).json()
    assert "every#1" in json.dumps(lineage)


def test_a_read_in_a_child_process_counts(cli: Cli, project: Path, tmp_path: Path) -> None:
    """The script's own subprocesses (Python, and the reprocas CLI) inherit the run; a
    read from another repository is none of its inputs."""
    _commit(cli, tmp_path, 4)
    _commit(cli, tmp_path, 5)
    other = tmp_path / "other"
    with reprocas.Repo.init(other) as repo:
        repo.commit(_cohort(tmp_path / "o", 2), "elsewhere")
    script = textwrap.dedent(
        f"""
        import subprocess, sys, reprocas
        reprocas.Repo.open({str(other)!r}).read_table("elsewhere", "cohort.parquet")
        subprocess.run([sys.executable, "-c",
            "import reprocas; reprocas.read_table('cohort@v2', 'cohort.parquet')"], check=True)
        subprocess.run([{str(Path(PY).with_name("reprocas"))!r}, "cat", "cohort@v3",
            "cohort.parquet"], check=True, stdout=subprocess.DEVNULL)
        """
    )
    r = _run(cli, project, "-n", "kids", "--", PY, "-c", script)
    assert r["status"] == "ok", r
    assert sorted((i["version"], i["via"]) for i in r["inputs"]) == [
        ("cohort@v2", "api"),
        ("cohort@v3", "api"),
    ]


def test_forget_and_prune_keep_the_version_a_script_read(
    cli: Cli, project: Path, repo_path: Path, tmp_path: Path
) -> None:
    r = _run(cli, project, "-n", "train", "-o", "out", "--metrics", "metrics.json",
             "--", PY, "train.py", str(repo_path))  # fmt: skip
    _commit(cli, tmp_path, 4)
    forgot = assert_ok(cli("forget", "--keep-last", "1", "-d", "cohort", "--json")).json()
    assert forgot["forgotten"] == [], forgot
    assert [(i["version"], i["api_refs"]) for i in r["inputs"]] == [("cohort@v1", ["cohort"])]
    assert_ok(cli("prune"))
    verify_ok(repo_path)
    with reprocas.Repo.open(repo_path) as repo:
        assert repo.read_table("cohort@v1", "cohort.parquet").num_rows == 3
    res = cli("replay", "--json", "train", cwd=project)
    assert res.returncode == 0, res.describe()
    assert json.loads(res.stdout)["verdict"] == "identical"


def test_a_replay_reads_what_the_original_read(
    cli: Cli, project: Path, repo_path: Path, tmp_path: Path
) -> None:
    _run(cli, project, "-n", "train", "-o", "out", "--metrics", "metrics.json",
         "--", PY, "train.py", str(repo_path))  # fmt: skip
    _commit(cli, tmp_path, 10)  # `cohort` now means cohort@v2, with other rows
    v1 = _ids(repo_path)["cohort@v1"]
    res = cli("replay", "--json", "train", cwd=project)
    assert res.returncode == 0, res.describe()
    out = json.loads(res.stdout)
    assert out["verdict"] == "identical", out["differences"]
    assert [(i["id"], i["via"], i["api_refs"]) for i in out["run"]["inputs"]] == [
        (v1, "api", ["cohort"])
    ]
    assert any("cohort as cohort@v1" in n and "cohort@v2" in n for n in out["notes"]), out
    assert "cohort now means cohort@v2" in res.err
    # outside a replay the name means the latest version again
    fresh = _run(cli, project, "-n", "train", "-o", "out", "--", PY, "train.py", str(repo_path))
    assert [i["version"] for i in fresh["inputs"]] == ["cohort@v2"]


def test_a_damaged_reads_file_is_reported_and_the_rest_recorded(
    cli: Cli, project: Path, repo_path: Path
) -> None:
    script = textwrap.dedent(
        """
        import json, os, reprocas
        with open(os.environ["REPROCAS_RUN_READS"], "a") as f:
            f.write("not json\\n")
            f.write(json.dumps({"ref": "ghost", "snapshot": "ab" * 32}) + "\\n")
        reprocas.read_table("cohort", "cohort.parquet")
        """
    )
    res = assert_ok(cli("run", "--json", "--env", "none", "-n", "junk", "--", PY, "-c", script,
                        cwd=project))  # fmt: skip
    r = json.loads(res.stdout)
    assert r["status"] == "ok" and [i["version"] for i in r["inputs"]] == ["cohort@v1"]
    assert "line 1 of the run's reads is malformed" in res.err
    assert "the command read ghost, which cannot be recorded" in res.err
    verify_ok(repo_path)


def test_a_run_inside_a_replayed_run_reads_the_pinned_version(
    cli: Cli, project: Path, tmp_path: Path
) -> None:
    """`reprocas run -i cohort` run by a script: the enclosing run used cohort too, and
    under replay the inner `--input cohort` means the version the original used."""
    inner = [str(Path(PY).with_name("reprocas")), "run", "-n", "inner", "--env", "none",
             "-i", "cohort", "--", PY, "-c", "pass"]  # fmt: skip
    outer = _run(cli, project, "-n", "outer", "--", *inner)
    assert [(i["version"], i["api_refs"]) for i in outer["inputs"]] == [("cohort@v1", ["cohort"])]
    _commit(cli, tmp_path, 4)
    res = cli("replay", "--json", "outer", cwd=project)
    assert res.returncode == 0, res.describe()
    runs = {x["ref"]: x for x in assert_ok(cli("runs", "--json")).json()}
    assert [i["version"] for i in runs["inner#2"]["inputs"]] == ["cohort@v1"]
    assert [i["version"] for i in runs["outer#2"]["inputs"]] == ["cohort@v1"]


def test_a_run_block_records_what_it_reads_and_so_does_the_run_around_it(
    cli: Cli, project: Path, repo_path: Path, tmp_path: Path
) -> None:
    _commit(cli, tmp_path, 4)
    script = textwrap.dedent(
        """
        import reprocas
        with reprocas.run(name="block", env="none") as run:
            reprocas.read_table("cohort@v2", "cohort.parquet")
        """
    )
    outer = _run(cli, project, "-n", "outer", "--", PY, "-c", script)
    assert [(i["version"], i["via"]) for i in outer["inputs"]] == [("cohort@v2", "api")]
    runs = {x["ref"]: x for x in assert_ok(cli("runs", "--json")).json()}
    assert [(i["version"], i["via"]) for i in runs["block#1"]["inputs"]] == [("cohort@v2", "api")]
    # in this process, outside any run: a block counts its reads, and leaves no trace
    with reprocas.Repo.open(repo_path) as repo:
        with reprocas.run(name="here", repo=repo, env="none", cwd=tmp_path) as run:
            repo.read_table("cohort@v1", "cohort.parquet")
        assert run.handle is not None
        repo.read_table("cohort@v2", "cohort.parquet")  # after the block: not its input
    runs = {x["ref"]: x for x in assert_ok(cli("runs", "--json")).json()}
    assert [i["version"] for i in runs["here#1"]["inputs"]] == ["cohort@v1"]


# -- where the repository is -------------------------------------------------------------------

FINDS_ITS_REPO = textwrap.dedent(
    """
    import os, reprocas
    repo = reprocas.Repo.open()  # no path: $REPROCAS_REPO, else .reprocas/ here or above
    t = repo.read_table("cohort@v1", "cohort.parquet")
    os.makedirs("out", exist_ok=True)
    with open("out/rows.txt", "w") as f:
        f.write(f"{t.num_rows} {repo.root.name}\\n")
    """
)


def test_a_script_that_finds_its_repository_replays_from_a_clone(
    tmp_path: Path, cli: Cli, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The README's layout: the store in ``.reprocas/`` of the project, found from the
    working directory; the replay runs in a fresh directory elsewhere, from a clone.
    Precedence: an explicit path, then $REPROCAS_REPO, then the walk up from the cwd."""
    proj = tmp_path / "proj"
    proj.mkdir()
    (proj / "rows.py").write_text(FINDS_ITS_REPO)
    (proj / ".gitignore").write_text(".reprocas/\nout/\n")
    git(proj, "init", "-q")
    git(proj, "add", "-A")
    git(proj, "commit", "-q", "-m", "script")
    assert_ok(cli("init", repo=None, cwd=proj))
    assert_ok(cli("commit", _cohort(tmp_path / "src", 3), "-d", "cohort", repo=None, cwd=proj))
    res = assert_ok(cli("run", "--json", "--env", "none", "-n", "rows", "-o", "out",
                        "--", PY, "rows.py", repo=None, cwd=proj))  # fmt: skip
    assert json.loads(res.stdout)["inputs"][0]["version"] == "cohort@v1"
    clone = tmp_path / "colleague"
    git(tmp_path, "clone", "-q", str(proj), str(clone))
    store = proj / ".reprocas"
    r = cli("replay", "--json", "rows", repo=store, cwd=clone)
    assert r.returncode == 0, r.describe()
    out = json.loads(r.stdout)
    assert out["verdict"] == "identical", out
    assert not Path(out["workdir"]).is_relative_to(proj)
    assert (Path(out["cwd"]) / "out" / "rows.txt").read_text() == "3 .reprocas\n"
    other = tmp_path / "other"
    reprocas.Repo.init(other).close()
    monkeypatch.chdir(proj)
    assert find_root() == store  # discovery
    monkeypatch.setenv("REPROCAS_REPO", str(other))
    assert find_root() == other  # the environment over discovery
    assert find_root(explicit=store) == store  # the argument over both
    with reprocas.Repo.open() as repo:
        assert repo.root == other
    monkeypatch.setenv("REPROCAS_REPO", str(tmp_path / "nowhere"))
    with pytest.raises(RepositoryNotFoundError, match="REPROCAS_REPO"):
        find_root()
