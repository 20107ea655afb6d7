"""`make demo` (scripts/demo.py) ends with the provenance report: a small run of the
demo writes the report and its PROV-JSON and prints the report's path."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

from tests.integration._helpers import PROJECT_ROOT


def test_the_demo_writes_a_report_and_prints_its_path(tmp_path: Path) -> None:
    work = tmp_path / "demo"
    proc = subprocess.run(
        [sys.executable, str(PROJECT_ROOT / "scripts" / "demo.py"), "--rows", "2000",
         "--dir", str(work)],
        capture_output=True, text=True, timeout=600, cwd=tmp_path,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    report = work / "report.html"
    assert f"report: {report}" in proc.stdout and report.resolve().as_uri() in proc.stdout
    html = report.read_text()
    assert "analyse#1" in html and "analyse#2" in html and "replay of analyse#1: identical" in html
    assert re.search(r"clinical@v5", html) and "lactate_limit" in html
    prov = json.loads((work / "prov.json").read_text())
    assert set(prov["activity"]) == {f"reprocas:run/analyse#{n}" for n in (1, 2, 3)}
