"""Rebuild recipes from a snapshot's facts: a pinned requirements file, a Dockerfile,
a conda environment file. Pure functions of the facts; nothing touches the disk."""

from __future__ import annotations

from typing import Any
from urllib.parse import unquote, urlparse

from reprocas.environment.capture import normalise
from reprocas.environment.errors import ExportFormatError

FORMATS = ("requirements", "dockerfile", "conda")


def _file_path(url: str) -> str:
    p = urlparse(url)
    return unquote(p.path) if p.scheme == "file" else url


def requirement(pkg: dict[str, Any]) -> str:
    """One requirements line: ``name==version``, or how it was installed when
    ``direct_url.json`` says (editable, VCS at its commit, local path, archive URL)."""
    name, version = pkg["name"], pkg["version"]
    src = pkg.get("source") or {}
    kind = src.get("kind")
    url = src.get("url")
    if not url or kind is None:
        return f"{name}=={version}"
    sub = f"#subdirectory={src['subdirectory']}" if src.get("subdirectory") else ""
    if kind == "editable":
        return f"-e {_file_path(url)}"
    if kind == "vcs":
        vcs = src.get("vcs") or "git"
        rev = src.get("commit") or src.get("requested_revision") or ""
        return f"{name} @ {vcs}+{url}" + (f"@{rev}" if rev else "") + sub
    if kind == "archive":
        frag = f"#{src['hash']}" if src.get("hash") and not sub else sub
        return f"{name} @ {url}{frag}"
    return f"{name} @ {url}{sub}"


def _is_local(line: str) -> bool:
    return line.startswith("-e ") or " @ file:" in line


def _header(facts: dict[str, Any], label: str) -> list[str]:
    py = facts.get("python") or {}
    plat = facts.get("platform") or {}
    return [
        f"# Exported by reprocas from {label}",
        f"# {py.get('implementation', 'Python')} {py.get('version', '?')} on "
        f"{plat.get('system', '?')} {plat.get('machine', '?')}",
    ]


def requirements(facts: dict[str, Any], label: str = "an environment snapshot") -> str:
    """Every installed distribution, pinned (pip, setuptools and wheel included: a
    restore must reproduce them too)."""
    lines = _header(facts, label)
    lines.append("# Install with: pip install --no-deps -r requirements.txt")
    pkgs = sorted(facts.get("packages") or [], key=lambda p: normalise(p["name"]))
    lines += [requirement(p) for p in pkgs]
    return "\n".join(lines) + "\n"


def base_image(facts: dict[str, Any]) -> str:
    """``python:X.Y.Z-slim`` for a final CPython release, else ``python:X.Y-slim``."""
    py = facts.get("python") or {}
    vi = py.get("version_info") or [3, 0, 0]
    if py.get("implementation") == "CPython" and py.get("release_level") == "final":
        return f"python:{vi[0]}.{vi[1]}.{vi[2]}-slim"
    return f"python:{vi[0]}.{vi[1]}-slim"


def dockerfile(facts: dict[str, Any], label: str = "an environment snapshot") -> str:
    """A Dockerfile on the matching ``python`` image that installs the pinned
    requirements file (export it beside the Dockerfile as ``requirements.txt``)."""
    lines = _header(facts, label)
    gpu = facts.get("gpu") or {}
    if gpu.get("cuda") or gpu.get("driver"):
        lines.append(
            f"# The snapshot ran with NVIDIA driver {gpu.get('driver') or '?'}, CUDA "
            f"{gpu.get('cuda') or '?'}: run with --gpus and a matching host driver."
        )
    local = [requirement(p) for p in facts.get("packages") or [] if _is_local(requirement(p))]
    if local:
        lines.append("# These were installed from local paths; copy them into the build")
        lines.append("# context and edit requirements.txt to install them:")
        lines += [f"#   {line}" for line in local]
    lines += [f"FROM {base_image(facts)}", ""]
    env = facts.get("env") or {}
    if env:
        lines.append("ENV " + " \\\n    ".join(f"{k}={_quote(v)}" for k, v in sorted(env.items())))
    lines += [
        "ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1",
        "COPY requirements.txt /tmp/requirements.txt",
        "RUN grep -v -e '^-e ' -e ' @ file:' /tmp/requirements.txt > /tmp/requirements.pinned \\",
        "    && pip install --no-deps -r /tmp/requirements.pinned",
        "WORKDIR /work",
        "",
    ]
    return "\n".join(lines)


def _quote(value: str) -> str:
    if value and all(c.isalnum() or c in "._-:/,=+" for c in value):
        return value
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"').replace("$", "\\$") + '"'


def conda(facts: dict[str, Any], label: str = "an environment snapshot") -> str:
    """A conda environment file (``name=version=build`` from conda-meta, channels in
    order of first use, pip-only distributions under ``pip:``)."""
    c = facts.get("conda")
    if not c:
        raise ExportFormatError(
            f"{label} was not captured from a conda environment; use --format requirements "
            "or --format dockerfile"
        )
    pkgs = c.get("packages") or []
    channels: list[str] = []
    for p in pkgs:
        ch = _channel(p.get("channel", ""))
        if ch and ch not in channels:
            channels.append(ch)
    conda_names = {normalise(p["name"]) for p in pkgs}
    pip_only = sorted(
        (
            p
            for p in facts.get("packages") or []
            if normalise(p["name"]) not in conda_names and (p.get("installer") or "pip") != "conda"
        ),
        key=lambda p: normalise(p["name"]),
    )
    lines = [f"# {line[2:]}" for line in _header(facts, label)]
    lines.append(f"name: {c.get('prefix_name') or 'env'}")
    lines.append("channels:")
    lines += [f"  - {ch}" for ch in channels or ["defaults"]]
    lines.append("dependencies:")
    lines += [f"  - {p['name']}={p['version']}={p['build']}" for p in pkgs]
    if pip_only:
        lines.append("  - pip:")
        lines += [f"    - {requirement(p)}" for p in pip_only]
    return "\n".join(lines) + "\n"


def _channel(channel: str) -> str:
    """``https://conda.anaconda.org/conda-forge/linux-64`` -> ``conda-forge``."""
    ch = channel.rstrip("/")
    if "://" not in ch:
        return ch
    parts = urlparse(ch).path.strip("/").split("/")
    if parts and parts[-1] in (
        "noarch",
        "linux-64",
        "linux-aarch64",
        "osx-64",
        "osx-arm64",
        "win-64",
    ):
        parts = parts[:-1]
    return parts[-1] if parts and parts[-1] else ch


def export(facts: dict[str, Any], fmt: str, label: str = "an environment snapshot") -> str:
    """The text of ``fmt`` (one of :data:`FORMATS`) for these facts."""
    if fmt == "requirements":
        return requirements(facts, label)
    if fmt == "dockerfile":
        return dockerfile(facts, label)
    if fmt == "conda":
        return conda(facts, label)
    raise ExportFormatError(f"unknown export format {fmt!r}; use one of {', '.join(FORMATS)}")
