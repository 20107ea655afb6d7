"""`reprocas report`: the self-contained HTML file and the PROV-JSON, checked as files
(test_report_browser.py opens it in headless Chromium)."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

from tests.integration._helpers import assert_ok, run_cli

HOSTILE = "<script>alert(1)</script>"


def _history(tmp_path: Path) -> Path:
    repo = tmp_path / "repo"
    assert_ok(run_cli("init", repo=repo))
    data = tmp_path / "data.csv"
    data.write_text("a,b\n1,2\n")
    assert_ok(run_cli("commit", data, "-d", "clinical", "-m", HOSTILE, repo=repo))
    project = tmp_path / "proj"
    project.mkdir()
    (project / "train.py").write_text(
        "import json, os, sys\n"
        "json.dump({'score': float(sys.argv[1])}, open('m.json', 'w'))\n"
        "os.makedirs('out', exist_ok=True)\n"
        "open('out/model.txt', 'w').write(sys.argv[1])\n"
    )
    for score in ("1.5", "2.5"):
        assert_ok(run_cli(
            "run", "-n", "train", "--env", "none", "-i", "clinical", "--param", f"lr={HOSTILE}",
            "--metrics", "m.json", "-o", "out", "--", sys.executable, "train.py", score,
            repo=repo, cwd=project,
        ))  # fmt: skip
    return repo


def test_report_is_one_escaped_offline_file_with_prov(tmp_path: Path) -> None:
    repo = _history(tmp_path)
    out, prov = tmp_path / "r.html", tmp_path / "prov.json"
    info = assert_ok(run_cli("report", "--to", out, "--prov", prov, "--json", repo=repo)).json()
    assert info["path"] == str(out) and info["bytes"] == out.stat().st_size
    datasets = assert_ok(run_cli("datasets", "--json", repo=repo)).json()
    # clinical@v1 and each run's outputs, stored as versions
    assert (
        info["versions"]
        == sum(
            len(d.get("versions", [])) if isinstance(d.get("versions"), list) else d["versions"]
            for d in datasets
        )
        == 3
    )
    assert info["runs"] == 2
    html = out.read_text()
    # a CSP forbids every fetch; no external reference of any kind
    assert re.search(
        r'<meta http-equiv="Content-Security-Policy" content="default-src \'none\'', html
    )
    assert not re.search(r'(src|href)\s*=\s*["\']?(https?:)?//', html)
    # user-written strings are text, never markup
    assert HOSTILE not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "train#1" in html and "train#2" in html and "2.5" in html
    doc = json.loads(prov.read_text())
    assert doc["entity"] and doc["activity"] and doc["used"] and doc["wasGeneratedBy"]
    assert len(doc["activity"]) == 2


def test_report_refuses_a_bad_since(tmp_path: Path) -> None:
    repo = _history(tmp_path)
    res = run_cli("report", "--to", tmp_path / "r.html", "--since", "yesterday-ish", repo=repo)
    assert res.returncode == 2 and "since" in res.err.lower() and not (tmp_path / "r.html").exists()
