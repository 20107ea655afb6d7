"""`reprocas report --json-data` (the page's data for scripts) and the Python API
``Repo.report``, on a real history (two versions, two runs through `reprocas run`)."""

from __future__ import annotations

import datetime as dt
import json
import re
import sys
from pathlib import Path
from typing import Any

import pytest

from reprocas import Repo
from reprocas.errors import InvalidParameterError, RefNotFoundError
from tests.integration._helpers import assert_ok, run_cli


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp = tmp_path_factory.mktemp("data")
    repo = tmp / "repo"
    assert_ok(run_cli("init", repo=repo))
    data = tmp / "d"
    data.mkdir()
    (data / "x.txt").write_text("1\n")
    assert_ok(run_cli("commit", data, "-d", "obs", "-m", "one", repo=repo))
    (data / "x.txt").write_text("1\n2\n")
    assert_ok(run_cli("commit", data, "-d", "obs", "-m", "two", repo=repo))
    project = tmp / "p"
    project.mkdir()
    (project / "s.py").write_text(
        "import json, sys\njson.dump({'f1': float(sys.argv[1])}, open('m.json', 'w'))\n"
    )
    for ref, f1 in (("obs@v1", "0.5"), ("obs@v2", "0.625")):
        assert_ok(run_cli(
            "run", "-n", "score", "--env", "none", "-i", ref, "--metrics", "m.json", "--",
            sys.executable, "s.py", f1, repo=repo, cwd=project,
        ))  # fmt: skip
    return repo


def _micro(ns: int) -> dt.datetime:
    """The time ``ns`` floored to the microsecond (what a datetime can hold), exactly."""
    return dt.datetime(1970, 1, 1, tzinfo=dt.UTC) + dt.timedelta(microseconds=ns // 1000)


def _embedded(html: str) -> Any:
    m = re.search(r'<script type="application/json" id="data">(.*?)</script>', html, re.S)
    assert m is not None
    return json.loads(m.group(1))


def _summarises(full: dict[str, Any], emb: dict[str, Any]) -> None:
    """``emb`` (what the page embeds) is the summary of ``full`` (what --json-data
    writes): the change events in full, the runs as a table."""
    assert emb["format"] == "reprocas-report-summary/1"
    assert emb["versions"] == full["versions"] and emb["runs"] == full["runs"]
    assert emb["events"] == [e for e in full["events"] if e["kind"] != "run"]
    rows = [dict(zip(emb["run_columns"], r, strict=True)) for r in emb["run_rows"]]
    runs = [e for e in full["events"] if e["kind"] == "run"]
    assert [r["ref"] for r in rows] == [r["ref"] for r in runs]
    assert [r["time_ns"] for r in rows] == [r["time_ns"] for r in runs]
    assert [dict(zip(emb["metrics"], r["metrics"], strict=True)) for r in rows] == [
        r["metrics"] for r in runs
    ]
    assert [r["inputs"] for r in rows] == [[i["ref"] for i in r["inputs"]] for r in runs]
    assert [r["user"] for r in rows] == [r["user"] for r in runs]


def test_json_data_on_stdout_is_the_full_data_the_page_summarises(
    repo: Path, tmp_path: Path
) -> None:
    page = tmp_path / "r.html"
    res = assert_ok(run_cli("report", "--to", page, "--json-data", "-", repo=repo))
    data = json.loads(res.out)
    _summarises(data, _embedded(page.read_text()))
    assert data["versions"] == ["obs@v1", "obs@v2"] and data["runs"] == ["score#1", "score#2"]
    runs = [e for e in data["events"] if e["kind"] == "run"]
    assert [r["metrics"] for r in runs] == [{"f1": 0.5}, {"f1": 0.625}]
    assert runs[1]["metric_deltas"] == {"f1": 0.125}
    assert [i["ref"] for r in runs for i in r["inputs"]] == ["obs@v1", "obs@v2"]
    assert all(isinstance(r["user"], str) and r["user"] for r in runs)
    times = [int(e["time_ns"]) for e in data["events"]]
    assert times == sorted(times)


def test_json_data_to_a_file_and_the_json_summary(repo: Path, tmp_path: Path) -> None:
    page, out = tmp_path / "r.html", tmp_path / "data.json"
    info = assert_ok(
        run_cli("report", "--to", page, "--json-data", out, "--json", "obs", repo=repo)
    ).json()
    assert info["json_data"] == str(out) and info["path"] == str(page)
    data = json.loads(out.read_text())
    _summarises(data, _embedded(page.read_text()))
    assert data["versions"] == ["obs@v1", "obs@v2"] and info["versions"] == 2
    # both on stdout cannot be: refused before anything is written
    bad = tmp_path / "bad.html"
    res = run_cli("report", "--to", bad, "--json-data", "-", "--json", repo=repo)
    assert res.returncode == 2 and "--json-data" in res.err and not bad.exists()


def test_since_keeps_the_later_events(repo: Path, tmp_path: Path) -> None:
    full = json.loads(assert_ok(run_cli("report", "--to", tmp_path / "a.html",
                                        "--json-data", "-", repo=repo)).out)  # fmt: skip
    v2 = next(e for e in full["events"] if e["ref"] == "obs@v2")
    since = _micro(int(v2["time_ns"]))
    later = json.loads(assert_ok(run_cli("report", "--to", tmp_path / "b.html", "--since",
                                         since.isoformat(), "--json-data", "-",
                                         repo=repo)).out)  # fmt: skip
    assert later["versions"] == ["obs@v2"]
    assert later["events"] == [e for e in full["events"] if int(e["time_ns"]) >= int(v2["time_ns"])]


def test_repo_report_api(repo: Path, tmp_path: Path) -> None:
    page, prov = tmp_path / "api.html", tmp_path / "prov.json"
    with Repo.open_repo(repo) as r:
        res = r.report(to=page, refs=["score"], prov=prov, compare=("score#1", "score#2"))
        assert res.path == page and res.bytes == page.stat().st_size
        assert (res.versions, res.runs) == (2, 2) and res.prov == prov
        _summarises(res.data, _embedded(page.read_text()))
        assert set(json.loads(prov.read_text())["activity"]) == {
            "reprocas:run/score#1",
            "reprocas:run/score#2",
        }
        assert res.to_json()["path"] == str(page)
        v2_ns = next(int(e["time_ns"]) for e in res.data["events"] if e["ref"] == "obs@v2")
        since = _micro(v2_ns)
        later = r.report(to=tmp_path / "later.html", since=since, json_data=tmp_path / "d.json")
        assert later.data["versions"] == ["obs@v2"] and later.runs == 2  # both ran after v2
        assert json.loads((tmp_path / "d.json").read_text()) == later.data
        with pytest.raises(RefNotFoundError):
            r.report(to=tmp_path / "x.html", refs=["nope"])
        with pytest.raises(InvalidParameterError):
            r.report(to=tmp_path / "y.html", since="last tuesday")
    assert not (tmp_path / "x.html").exists() and not (tmp_path / "y.html").exists()


def test_a_long_lane_folds_its_earlier_changes(tmp_path: Path) -> None:
    """15 runs (stored through the run store, as `reprocas run` stores them), each with
    another learning rate: 14 parameter changes, the latest 10 in view."""
    import time

    from reprocas.provenance.run_store import Draft, store_runs

    with Repo.init(tmp_path / "repo") as r:
        src = tmp_path / "d"
        src.mkdir()
        (src / "x.txt").write_text("x\n")
        v = r.resolve(r.commit(src, "obs").ref)
        t = time.time_ns()
        store_runs(r.store, [
            Draft(name="sweep", command=["python", "t.py"], cwd="/w", params={"lr": k / 100},
                  inputs=[{"ref": v.ref, "dataset": v.name, "number": v.number,
                           "snapshot": v.id.raw, "path": "inputs/obs"}],
                  metrics={"acc": {"kind": "scalar", "value": k / 20}},
                  start_ns=t + k * 10**9, end_ns=t + k * 10**9 + 1)
            for k in range(1, 16)
        ])  # fmt: skip
        res = r.report(to=tmp_path / "r.html")
    html = (tmp_path / "r.html").read_text()
    lane = re.search(r'<section class="lane lane-params">(.*?)</section>', html, re.S)
    assert lane is not None and "<h3>Parameters (14)</h3>" in lane.group(1)
    folded = re.search(r"<details class='earlier'><summary>4 earlier changes</summary>"
                       r"<ul>(.*?)</ul></details><ul>(.*)</ul>", lane.group(1), re.S)  # fmt: skip
    assert folded is not None
    earlier, latest = folded.group(1), folded.group(2)
    assert "sweep#2: lr: 0.01 -&gt; 0.02" in earlier and "sweep#5" in earlier
    assert "sweep#6" not in earlier and "sweep#6: lr: 0.05 -&gt; 0.06" in latest
    assert latest.count("<li>") == 10 and "sweep#15: lr: 0.14 -&gt; 0.15" in latest
    assert res.runs == 15 and len(re.findall(r'<circle class="run"', html)) == 15
