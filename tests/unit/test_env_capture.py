"""Pieces of the capture that need no venv: the probe's parsers, GPUs through a fake
``nvidia-smi``, container markers under a fake root, lock files, default names."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from reprocas.environment import _probe, capture, hardware
from reprocas.environment.errors import EnvironmentCaptureError
from reprocas.environment.store import env_name, site_name
from reprocas.security import Finding

GPU_LINE = "NVIDIA A100-SXM4-80GB, 535.104.05, 81920, 8.0"
NVIDIA_SMI = f"""#!/bin/sh
case "$1" in
  --query-gpu=*) printf '{GPU_LINE}\\n{GPU_LINE}\\n' ;;
  *) printf '| NVIDIA-SMI 535.104.05   Driver Version: 535.104.05   CUDA Version: 12.2 |\\n' ;;
esac
"""


def test_metadata_headers_stop_at_the_body() -> None:
    text = "Name: Foo\nVersion: 1.0\nSummary: x\n  continued\n\nName: not-a-header\n"
    assert _probe._headers(text) == {"Name": "Foo", "Version": "1.0", "Summary": "x"}


def test_direct_url_kinds() -> None:
    vcs = {"url": "https://tok@github.com/o/r", "vcs_info": {"vcs": "git", "commit_id": "abc"}}
    assert _probe._source(json.dumps(vcs)) == {
        "url": "https://***@github.com/o/r",
        "kind": "vcs",
        "vcs": "git",
        "commit": "abc",
    }
    ed = {"url": "file:///w/p", "dir_info": {"editable": True}}
    assert _probe._source(json.dumps(ed)) == {"url": "file:///w/p", "kind": "editable"}
    arch = {"url": "https://h/p.whl", "archive_info": {"hashes": {"sha256": "ff"}}}
    assert _probe._source(json.dumps(arch))["hash"] == "sha256=ff"  # type: ignore[index]
    assert _probe._source(None) is None
    assert _probe._source("{not json") == {"error": "unreadable direct_url.json"}


def test_probe_in_this_interpreter() -> None:
    facts = capture.probe(sys.executable)
    assert facts["python"]["executable"] == sys.executable
    names = {p["name"].lower() for p in facts["packages"]}
    assert {"msgpack", "lmdb"} <= names


def test_gpu_from_a_fake_nvidia_smi(tmp_path: Path) -> None:
    exe = tmp_path / "nvidia-smi"
    exe.write_text(NVIDIA_SMI)
    exe.chmod(0o755)
    gpu = hardware.gpu(str(exe))
    assert gpu == {
        "driver": "535.104.05",
        "cuda": "12.2",
        "devices": [
            {"name": "NVIDIA A100-SXM4-80GB", "memory_mib": 81920, "compute_capability": "8.0"}
        ]
        * 2,
    }


def test_gpu_absent_or_failing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    assert hardware.gpu() is None
    broken = tmp_path / "nvidia-smi"
    broken.write_text("#!/bin/sh\necho 'NVIDIA-SMI has failed' >&2\nexit 9\n")
    broken.chmod(0o755)
    assert hardware.gpu() is None
    assert hardware.nvcc_version() is None


def test_container_markers(tmp_path: Path) -> None:
    assert hardware.container({}, tmp_path) is None
    (tmp_path / "proc/1").mkdir(parents=True)
    (tmp_path / "proc/1/cgroup").write_text("0::/system.slice/docker-0123abcd.scope\n")
    (tmp_path / ".dockerenv").touch()
    c = hardware.container({"IMAGE_DIGEST": "sha256:aa"}, tmp_path)
    assert c == {
        "runtime": "docker",
        "markers": ["/.dockerenv"],
        "image": None,
        "image_digest": "sha256:aa",
    }
    assert "0123abcd" not in json.dumps(c)  # container ids change on every start
    (tmp_path / "run").mkdir()
    (tmp_path / "run/.containerenv").write_text(
        'engine="podman"\nimage="quay.io/x/y:1"\nimageid="f00d"\n'
    )
    c = hardware.container({"KUBERNETES_SERVICE_HOST": "10.0.0.1"}, tmp_path)
    assert c is not None and c["runtime"] == "kubernetes"
    assert c["image"] == "quay.io/x/y:1" and c["image_digest"] == "f00d"


def test_lock_files(tmp_path: Path) -> None:
    (tmp_path / "requirements.txt").write_text("a==1\n")
    (tmp_path / "requirements-dev.txt").write_text("--index-url https://u:p@h/s\nb==2\n")
    (tmp_path / "requirements").mkdir()
    (tmp_path / "requirements" / "gpu.txt").write_text("c==3\n")
    (tmp_path / "uv.lock").write_text("version = 1\n")
    (tmp_path / "notes.txt").write_text("not a lock file\n")
    files, facts, notes, found = capture.lock_files(tmp_path)
    assert sorted(files) == [
        "requirements-dev.txt",
        "requirements.txt",
        "requirements/gpu.txt",
        "uv.lock",
    ]
    assert files["requirements-dev.txt"] == b"--index-url https://***@h/s\nb==2\n"
    assert [f["redacted"] for f in facts] == [True, False, False, False]
    assert found == [Finding("requirements-dev.txt", 1, "password-in-url")] and notes == []
    verbatim, facts, _, kept = capture.lock_files(tmp_path, allow_secrets=True)
    assert verbatim["requirements-dev.txt"] == b"--index-url https://u:p@h/s\nb==2\n"
    assert kept == found and not any(f["redacted"] for f in facts)


def test_default_python_follows_the_active_environment(tmp_path: Path) -> None:
    venv = tmp_path / "v"
    (venv / "bin").mkdir(parents=True)
    (venv / "bin" / "python").touch()
    assert capture.default_python({"VIRTUAL_ENV": str(venv)}) == str(venv / "bin" / "python")
    assert capture.default_python({"VIRTUAL_ENV": str(tmp_path / "gone")}) == sys.executable
    assert capture.default_python({}) == sys.executable


def test_probe_errors(tmp_path: Path) -> None:
    script = tmp_path / "fake-python"
    script.write_text("#!/bin/sh\necho hello\n")
    script.chmod(0o755)
    with pytest.raises(EnvironmentCaptureError, match="not a working Python"):
        capture.probe(str(script))
    script.chmod(0o644)
    with pytest.raises(EnvironmentCaptureError, match="permission denied"):
        capture.probe(str(script))


def test_names() -> None:
    assert env_name(None, Path("/x/My Project!")) == "env/My-Project"
    assert env_name(None, Path("/")) == "env/default"
    assert env_name("gpu-box", Path("/x")) == "env/gpu-box"
    assert env_name("env/a/b", Path("/x")) == "env/a/b"
    assert site_name("env/p", 0) == "env/p/site-packages"
    assert site_name("env/p", 2) == "env/p/site-packages-2"


def test_probe_source_is_self_contained(tmp_path: Path) -> None:
    # Runs with -I (no site, no reprocas on the path) from an unrelated directory.
    out = subprocess.run(
        [sys.executable, "-I", "-c", capture.probe_source()],
        capture_output=True,
        cwd=tmp_path,
        check=True,
        env={k: v for k, v in os.environ.items() if k != "PYTHONPATH"},
    ).stdout.decode()
    facts = json.loads(out.rsplit(_probe.MARKER, 1)[1])
    assert set(facts) == {"python", "platform", "packages", "conda"}
