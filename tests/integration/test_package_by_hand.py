"""REPRODUCING.md followed by hand, as a reader without reprocas would: a fresh virtual
environment (reprocas not installed in it), `pip install -r requirements.txt`, the
command lines of its `sh reproduce` block run by a shell from the package's `data/`
directory, then the SHA-256 digests it lists compared with the files produced."""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

from tests.conftest import skip_outside_ci
from tests.integration._package import build, extract


def _block(text: str, fence: str) -> str:
    m = re.search(rf"^```{re.escape(fence)}\n(.*?)^```$", text, re.S | re.M)
    assert m, f"REPRODUCING.md has no ```{fence} block"
    return m.group(1)


def test_reproducing_md_by_hand_in_a_fresh_venv(tmp_path: Path) -> None:
    if shutil.which("bash") is None:
        skip_outside_ci("following REPRODUCING.md needs bash")
    s = build(tmp_path / "s")
    data = extract(s.package, tmp_path / "unzipped") / "data"
    text = (data / "REPRODUCING.md").read_text()
    assert "pip install -r requirements.txt" in text
    # The code imports only the standard library: the requirements hold no pin.
    reqs = (data / "requirements.txt").read_text()
    assert [ln for ln in reqs.splitlines() if ln and not ln.startswith("#")] == []
    assert "==" in (data / "requirements-lock.txt").read_text()  # the whole environment
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300)
    py = venv / "bin" / "python"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("VIRTUAL_ENV", "PYTHON"))}
    env["PATH"] = f"{venv / 'bin'}{os.pathsep}{env.get('PATH', '')}"
    env["PIP_NO_INDEX"] = "1"  # nothing to fetch: a trivial requirements file needs no network
    probe = subprocess.run(
        [str(py), "-c", "import reprocas.api"], cwd=data, env=env, capture_output=True
    )
    assert probe.returncode != 0, f"the fresh venv must not see reprocas: {probe.stdout!r}"
    subprocess.run(
        [str(venv / "bin" / "pip"), "install", "-r", "requirements.txt"],
        cwd=data, env=env, check=True, capture_output=True, timeout=300,
    )  # fmt: skip
    proc = subprocess.run(
        ["bash", "-e", "-c", _block(text, "sh reproduce")],
        cwd=data, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    listed = [ln.split("  ", 1) for ln in _block(text, "sha256").splitlines() if ln.strip()]
    assert {p for _, p in listed} >= {"work/train-1/out/model.txt", "work/train-1/metrics.json"}
    for digest, rel in listed:
        assert hashlib.sha256((data / rel).read_bytes()).hexdigest() == digest, rel
    # The same digests the run recorded (the package's outputs listing).
    assert (data / "work/train-1/out/model.txt").read_bytes() == (
        data / "datasets/runs/train@v1/out/model.txt"
    ).read_bytes()
    if shutil.which("sha256sum"):
        check = subprocess.run(
            ["sha256sum", "-c", "-"], cwd=data, input=_block(text, "sha256"),
            text=True, capture_output=True,
        )  # fmt: skip
        assert check.returncode == 0, check.stdout + check.stderr
