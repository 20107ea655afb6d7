"""Host facts the probe cannot see from inside Python: GPUs and containers.

Every probe here is optional: a missing ``nvidia-smi`` or an unreadable ``/proc``
yields ``None`` or an empty answer, never an error. Only stable facts are kept: no
container ids, no GPU utilisation or free memory.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from reprocas.security import redact_urls

_CUDA_RE = re.compile(r"CUDA Version:\s*([0-9.]+)")
_NVCC_RE = re.compile(r"release\s+([0-9.]+)")
_RUNTIMES = ("docker", "kubepods", "containerd", "libpod", "podman", "lxc", "garden")
IMAGE_VARS = ("REPROCAS_CONTAINER_IMAGE", "CONTAINER_IMAGE", "IMAGE_NAME", "DOCKER_IMAGE")
DIGEST_VARS = ("REPROCAS_CONTAINER_DIGEST", "IMAGE_DIGEST", "CONTAINER_IMAGE_DIGEST")


def _run(argv: list[str], timeout: float = 10.0) -> str | None:
    try:
        proc = subprocess.run(
            argv,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
            stdin=subprocess.DEVNULL,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return proc.stdout if proc.returncode == 0 else None


def gpu(nvidia_smi: str | None = None) -> dict[str, Any] | None:
    """GPUs, driver and CUDA version from ``nvidia-smi``; ``None`` when it is absent
    or fails (no GPU, no driver)."""
    exe = nvidia_smi or shutil.which("nvidia-smi")
    if exe is None:
        return None
    fields = "name,driver_version,memory.total,compute_cap"
    out = _run([exe, f"--query-gpu={fields}", "--format=csv,noheader,nounits"])
    if out is None:  # older drivers do not know compute_cap
        fields = "name,driver_version,memory.total"
        out = _run([exe, f"--query-gpu={fields}", "--format=csv,noheader,nounits"])
    if out is None:
        return None
    devices: list[dict[str, Any]] = []
    drivers: set[str] = set()
    for line in out.splitlines():
        parts = [p.strip() for p in line.split(",")]
        if len(parts) < 3 or not parts[0]:
            continue
        dev: dict[str, Any] = {"name": parts[0]}
        try:
            dev["memory_mib"] = int(float(parts[2]))
        except ValueError:
            dev["memory_mib"] = None
        if len(parts) > 3:
            dev["compute_capability"] = parts[3]
        devices.append(dev)
        drivers.add(parts[1])
    header = _run([exe]) or ""
    m = _CUDA_RE.search(header)
    return {
        "driver": ", ".join(sorted(drivers)) or None,
        "cuda": m.group(1) if m else None,
        "devices": devices,
    }


def nvcc_version() -> str | None:
    """The CUDA toolkit release of ``nvcc`` on PATH, if any."""
    exe = shutil.which("nvcc")
    if exe is None:
        return None
    out = _run([exe, "--version"])
    m = _NVCC_RE.search(out or "")
    return m.group(1) if m else None


def container(environ: Mapping[str, str], root: Path = Path("/")) -> dict[str, Any] | None:
    """Docker/Podman/Kubernetes facts when running inside a container, else ``None``.

    Reads the marker files, the cgroup of PID 1 and of this process (only the runtime's
    name is kept: container ids change on every start), Podman's
    ``/run/.containerenv`` (image name and id) and image variables from the
    environment.
    """
    markers = [m for m in ("/.dockerenv", "/run/.containerenv") if (root / m[1:]).exists()]
    runtime: str | None = None
    for cg in ("proc/1/cgroup", "proc/self/cgroup"):
        try:
            text = (root / cg).read_text(errors="replace")
        except OSError:
            continue
        for name in _RUNTIMES:
            if name in text:
                runtime = runtime or name
    if runtime == "kubepods" or "KUBERNETES_SERVICE_HOST" in environ:
        runtime = "kubernetes"
    kind = environ.get("container")
    if runtime is None and "/.dockerenv" in markers:
        runtime = "docker"
    if runtime is None and "/run/.containerenv" in markers:
        runtime = "podman"
    if runtime is None and kind:
        runtime = kind
    if runtime is None and not markers:
        return None
    image: str | None = None
    digest: str | None = None
    try:
        for line in (root / "run/.containerenv").read_text(errors="replace").splitlines():
            key, _, value = line.partition("=")
            if key == "image":
                image = value.strip('"') or None
            elif key == "imageid":
                digest = value.strip('"') or None
    except OSError:
        pass
    image = image or next((environ[v] for v in IMAGE_VARS if environ.get(v)), None)
    digest = digest or next((environ[v] for v in DIGEST_VARS if environ.get(v)), None)
    return {
        "runtime": runtime,
        "markers": markers,
        "image": redact_urls(image) if image else None,
        "image_digest": digest,
    }
