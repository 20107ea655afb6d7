"""`reprocas report` in a real browser: headless Chromium (Debian's ``chromium``, which
``make test`` installs) loads the generated file from ``file://`` with every host name
resolving to nowhere, dumps the DOM it built and takes a screenshot.

The history is real: two committed versions of a dataset, three runs through
``reprocas run`` (the second on the new version, with another parameter), a replay with
its verdict; hostile strings sit in a commit message, a step, a parameter value and a note.
"""

from __future__ import annotations

import html as htmlmod
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import skip_outside_ci
from tests.integration._helpers import assert_ok, run_cli

HOSTILE = "<script>alert(1)</script>"
# Would change the title if it ran (or if the markup were parsed as markup).
HOSTILE_TITLE = "<script>document.title='pwned'</script><img src=x onerror=document.title='img'>"
TIMEOUT = 60


def _chromium() -> str:
    exe = shutil.which("chromium")
    if exe is None:
        skip_outside_ci("Debian's chromium is not installed (make test installs it)")
    return exe


def _browse(tmp_path: Path, page: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    """Headless Chromium on ``page``, networking blocked (every host name resolves to
    nowhere), logging to stderr; a fresh profile in ``tmp_path``."""
    profile = tmp_path / "chromium-profile"
    profile.mkdir(parents=True, exist_ok=True)
    argv = [
        _chromium(),
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--no-first-run",
        "--no-default-browser-check",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={profile}",
        "--host-resolver-rules=MAP * ~NOTFOUND",
        "--enable-logging=stderr",
        "--v=0",
        *extra,
        page.resolve().as_uri(),
    ]
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=TIMEOUT)
    assert proc.returncode == 0, proc.stderr[-4000:]
    return proc


def _page_requests(net_log: Path) -> list[str]:
    """The URLs the page asked for, from Chromium's NetLog: requests whose network
    isolation key is the file:// page (Chromium's own background requests have none)."""
    log = json.loads(net_log.read_text())
    start = log["constants"]["logEventTypes"]["URL_REQUEST_START_JOB"]
    return [
        p["url"]
        for e in log["events"]
        if e["type"] == start
        and "file://" in str((p := e.get("params") or {}).get("network_isolation_key"))
    ]


def _history(tmp_path: Path) -> tuple[Path, dict[str, object]]:
    """A real history; returns the repository and what the report must show."""
    repo = tmp_path / "repo"
    assert_ok(run_cli("init", repo=repo))
    data = tmp_path / "data"
    data.mkdir()
    (data / "table.csv").write_text("x,y\n1,2\n3,4\n")
    assert_ok(run_cli("commit", data, "-d", "survey", "-m", f"first {HOSTILE}",
                      "--step", f"clean {HOSTILE_TITLE}", repo=repo))  # fmt: skip
    project = tmp_path / "proj"
    project.mkdir()
    (project / "train.py").write_text(
        "import json, os, sys\n"
        "rows = sum(1 for _ in open('inputs/survey/table.csv')) - 1\n"
        "score = round(float(sys.argv[1]) * rows, 6)\n"
        "json.dump({'accuracy': score, 'loss': round(10 / score, 6)}, open('m.json', 'w'))\n"
        "os.makedirs('out', exist_ok=True)\n"
        "open('out/model.txt', 'w').write(str(score))\n"
    )

    def train(scale: str, param: str) -> None:
        assert_ok(run_cli(
            "run", "-n", "train", "--env", "none", "-i", "survey", "--param", f"tag={param}",
            "--metrics", "m.json", "-o", "out", "--", sys.executable, "train.py", scale,
            repo=repo, cwd=project,
        ))  # fmt: skip

    train("0.125", "baseline")  # 2 rows: accuracy 0.25
    (data / "table.csv").write_text("x,y\n1,2\n3,4\n5,6\n7,8\n")
    assert_ok(run_cli("commit", data, "-d", "survey", "-m", "two rows more", repo=repo))
    train("0.1875", HOSTILE)  # 4 rows: accuracy 0.75
    train("0.2375", HOSTILE_TITLE)  # 4 rows: accuracy 0.95
    replay = assert_ok(run_cli("replay", "train#2", "--json", repo=repo)).json()
    assert replay["verdict"] == "identical"
    assert_ok(run_cli("note", "add", f"note {HOSTILE_TITLE}", "--about", "survey@v2", repo=repo))
    return repo, {"verdict": replay["verdict"]}


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    tmp = tmp_path_factory.mktemp("report")
    repo, _ = _history(tmp)
    out = tmp / "report.html"
    assert_ok(run_cli("report", "--to", out, "--compare", "train#1", "train#3", repo=repo))
    return out, out.read_text(encoding="utf-8")


def _text(dom: str) -> str:
    """The visible text of a dumped DOM (tags dropped, entities decoded)."""
    body = re.sub(r"<script\b.*?</script>", " ", dom, flags=re.S)
    return htmlmod.unescape(re.sub(r"<[^>]+>", " ", body))


def test_the_browser_shows_versions_runs_metrics_and_verdicts(
    report: tuple[Path, str], tmp_path: Path
) -> None:
    page, _ = report
    dom = _browse(tmp_path, page, "--dump-dom").stdout
    assert dom.lstrip().lower().startswith("<!doctype html>") and "</body>" in dom
    text = _text(dom)
    assert "survey@v1" in text and "survey@v2" in text and "two rows more" in text
    for n in (1, 2, 3, 4):  # train#4 is the replay of train#2
        assert f"train#{n}" in text
    for value in ("accuracy=0.25", "accuracy=0.75", "accuracy=0.95", "loss=40", "loss=10.5263"):
        assert value in text, value
    assert "replay of train#2: identical" in text
    # one chart per metric, the replay's point coloured by its verdict
    assert re.search(r"<figcaption>accuracy \(min 0\.25, max 0\.95\)", dom)
    assert re.search(r"<figcaption>loss \(min", dom)
    assert re.search(r'<circle class="replay"[^>]*fill="#2a7"', dom)
    assert len(re.findall(r'<circle class="run"', dom)) == 3 * 2  # 3 originals, 2 metrics
    assert "train#3 accuracy=0.95" in text
    # the lineage of the last run and the side-by-side comparison asked for
    assert re.search(r'<svg class="lineage"', dom) and "runs/train@v" in text
    cmp = re.search(r"<table class=\"compare\">.*?</table>", dom, flags=re.S)
    assert cmp is not None
    ctext = _text(cmp.group(0))
    assert "train#1" in ctext and "train#3" in ctext and "0.25" in ctext and "0.95" in ctext
    # the embedded data is still the data (the browser did not rewrite it)
    m = re.search(r'<script type="application/json" id="data">(.*?)</script>', dom, re.S)
    assert m is not None
    embedded = json.loads(m.group(1))
    assert embedded["runs"] == ["train#1", "train#2", "train#3", "train#4"]
    assert embedded["versions"][:2] == ["survey@v1", "runs/train@v1"]
    rows = [dict(zip(embedded["run_columns"], r, strict=True)) for r in embedded["run_rows"]]
    assert [(r["ref"], r["replay_of"], r["verdict"]) for r in rows][-1] == (
        "train#4",
        "train#2",
        "identical",
    )
    assert [r["metrics"][embedded["metrics"].index("accuracy")] for r in rows] == [
        0.25,
        0.75,
        0.95,
        0.75,
    ]


def test_the_screenshot_is_written_and_sane(report: tuple[Path, str], tmp_path: Path) -> None:
    page, _ = report
    shot = tmp_path / "report.png"
    _browse(tmp_path, page, f"--screenshot={shot}", "--window-size=1280,2000")
    data = shot.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
    assert (width, height) == (1280, 2000)
    # a rendered page (text, lanes, charts), not a blank one: a blank 1280x2000 PNG is ~10 KB
    assert 30_000 < len(data) < 20_000_000


def test_the_page_makes_no_network_request(report: tuple[Path, str], tmp_path: Path) -> None:
    page, html = report
    # statically: a CSP forbidding every fetch, and no external reference of any kind
    csp = re.search(r'<meta http-equiv="Content-Security-Policy" content="([^"]*)">', html)
    assert csp is not None
    rules = dict(r.strip().split(" ", 1) for r in csp.group(1).split(";"))
    assert rules["default-src"] == "'none'" and rules["script-src"] == "'none'"
    assert not re.search(r"""(src|href|action|xlink:href)\s*=\s*["']?\s*(https?:)?//""", html, re.I)
    assert not re.search(r"""url\(\s*["']?\s*(https?:)?//""", html, re.I)
    assert "@import" not in html
    # dynamically: with every host name resolving to nowhere, Chromium's NetLog records
    # no request of the page, and its log no failed load or CSP violation
    net = tmp_path / "net.json"
    proc = _browse(tmp_path, page, "--dump-dom", f"--log-net-log={net}")
    assert _page_requests(net) == []
    for sign in ("ERR_NAME_NOT_RESOLVED", "Content Security Policy", "Failed to load resource",
                 "Refused to"):  # fmt: skip
        assert sign not in proc.stderr, proc.stderr[-4000:]
    # the check can fail: a page with an external image is caught by the same NetLog
    bad = tmp_path / "bad.html"
    bad.write_text("<!DOCTYPE html><html><body><img src='http://example.com/x.png'>"
                   "<p>x</p></body></html>")  # fmt: skip
    _browse(tmp_path / "b", bad, "--dump-dom", f"--log-net-log={tmp_path / 'bad.json'}")
    assert _page_requests(tmp_path / "bad.json") == ["http://example.com/x.png"]


def test_hostile_strings_are_rendered_as_text(report: tuple[Path, str], tmp_path: Path) -> None:
    page, html = report
    assert HOSTILE not in html and "<img" not in html
    dom = _browse(tmp_path, page, "--dump-dom").stdout
    # the title is unchanged (no injected script or onerror handler ran) ...
    assert re.search(r"<title>reprocas report</title>", dom)
    assert "pwned" not in re.sub(r"&lt;.*?&gt;", "", dom.split("<body")[0])
    # ... there is one script element (the inert JSON data) and no image at all ...
    assert len(re.findall(r"<script\b", dom)) == 1 and "<img" not in dom
    # ... and the hostile strings are there, literally, as text: the commit message,
    # the step (in the version's detail) and the parameter values
    text = _text(dom)
    assert f"first {HOSTILE}" in text
    assert HOSTILE_TITLE in text
    assert f"'{HOSTILE}'" in text  # the param change of train#2, repr'd
    assert f"note {HOSTILE_TITLE}" in text  # a decision note, in the notes lane
