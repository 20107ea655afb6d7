"""The probe: run *inside the interpreter being captured* and print what it sees.

``reprocas.environment.capture`` sends this file's source to the target interpreter
(``python -c SOURCE``), so it must stay self-contained: standard library only, and
valid on every CPython/PyPy 3.8 or newer. It prints one line, ``MARKER`` followed by a
JSON document, last on standard output (a noisy ``sitecustomize`` cannot confuse the
reader). Nothing here reads environment variables' values: those are chosen by the
allowlist in the parent process, never here.

Only stable facts are reported: no PIDs, no free memory, no timestamps.
"""

from __future__ import annotations

import json
import os
import platform
import re
import site
import sys
import sysconfig
from typing import Any

MARKER = "\x00reprocas-probe-v1\x00"

_URL_USERINFO = re.compile(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*://)(?P<info>[^/@\s]+)@")


def _redact_url(url: str) -> str:
    """Drop a password (``user:pass@``) or an http(s) user/token from a URL."""

    def sub(m: re.Match[str]) -> str:
        scheme, info = m.group("scheme"), m.group("info")
        if ":" in info or scheme.lower().startswith("http"):
            return scheme + "***@"
        return m.group(0)

    return _URL_USERINFO.sub(sub, url)


def _headers(text: str) -> dict[str, str]:
    """The first value of each header of a METADATA / PKG-INFO file (body skipped)."""
    out: dict[str, str] = {}
    for line in text.splitlines():
        if not line.strip():
            break
        if line[:1] in (" ", "\t") or ":" not in line:
            continue
        key, _, value = line.partition(":")
        out.setdefault(key.strip(), value.strip())
    return out


def _normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _source(raw: str | None) -> dict[str, Any] | None:
    """Where a distribution came from, from its PEP 610 ``direct_url.json``."""
    if not raw:
        return None
    try:
        d = json.loads(raw)
    except ValueError:
        return {"error": "unreadable direct_url.json"}
    if not isinstance(d, dict) or not isinstance(d.get("url"), str):
        return {"error": "unreadable direct_url.json"}
    src: dict[str, Any] = {"url": _redact_url(d["url"])}
    if d.get("subdirectory"):
        src["subdirectory"] = str(d["subdirectory"])
    vcs = d.get("vcs_info")
    if isinstance(vcs, dict):
        src["kind"] = "vcs"
        src["vcs"] = str(vcs.get("vcs", ""))
        src["commit"] = str(vcs.get("commit_id", ""))
        if vcs.get("requested_revision"):
            src["requested_revision"] = str(vcs["requested_revision"])
    elif isinstance(d.get("archive_info"), dict):
        src["kind"] = "archive"
        a = d["archive_info"]
        digest = a.get("hash")
        hashes = a.get("hashes")
        if isinstance(hashes, dict) and hashes:
            algo = "sha256" if "sha256" in hashes else sorted(hashes)[0]
            digest = f"{algo}={hashes[algo]}"
        if isinstance(digest, str):
            src["hash"] = digest
    else:
        info = d.get("dir_info")
        if not isinstance(info, dict):
            info = {}
        src["kind"] = "editable" if info.get("editable") else "directory"
    return src


def packages() -> list[dict[str, Any]]:
    """Every distribution the interpreter can import, the first on sys.path winning."""
    from importlib import metadata

    seen: set[str] = set()
    out: list[dict[str, Any]] = []
    for dist in metadata.distributions():
        text = dist.read_text("METADATA") or dist.read_text("PKG-INFO") or ""
        h = _headers(text)
        name = h.get("Name")
        version = h.get("Version")
        if not name or version is None:
            continue
        key = _normalise(name)
        if key in seen:
            continue  # shadowed by a distribution earlier on sys.path
        seen.add(key)
        installer = (dist.read_text("INSTALLER") or "").strip() or None
        out.append(
            {
                "name": name,
                "version": version,
                "installer": installer,
                "requested": dist.read_text("REQUESTED") is not None,
                "source": _source(dist.read_text("direct_url.json")),
            }
        )
    out.sort(key=lambda p: _normalise(p["name"]))
    return out


def site_dirs() -> list[str]:
    """The directories distributions are installed into, in sys.path order."""
    candidates: list[str] = []
    if hasattr(site, "getsitepackages"):  # missing in some embedded / old virtualenv builds
        candidates += site.getsitepackages()
    if site.ENABLE_USER_SITE:
        candidates.append(site.getusersitepackages())
    paths = sysconfig.get_paths()
    candidates += [paths.get("purelib", ""), paths.get("platlib", "")]
    on_path = {os.path.realpath(p) for p in sys.path if p}
    seen: set[str] = set()
    found: list[tuple[int, str]] = []
    order = [os.path.realpath(p) for p in sys.path if p]
    for c in candidates:
        if not c or not os.path.isdir(c):
            continue
        real = os.path.realpath(c)
        if real in seen or real not in on_path:
            continue
        seen.add(real)
        found.append((order.index(real), real))
    return [p for _, p in sorted(found)]


def python() -> dict[str, Any]:
    flags = sys.flags
    wanted = (
        "optimize",
        "dont_write_bytecode",
        "hash_randomization",
        "utf8_mode",
        "dev_mode",
        "no_user_site",
        "safe_path",
        "int_max_str_digits",
    )
    return {
        "implementation": platform.python_implementation(),
        "version": platform.python_version(),
        "version_info": [sys.version_info[0], sys.version_info[1], sys.version_info[2]],
        "release_level": sys.version_info[3],
        "build": list(platform.python_build()),
        "compiler": platform.python_compiler(),
        "executable": sys.executable,
        "base_executable": getattr(sys, "_base_executable", None) or sys.executable,
        "prefix": sys.prefix,
        "base_prefix": getattr(sys, "base_prefix", sys.prefix),
        "venv": sys.prefix != getattr(sys, "base_prefix", sys.prefix),
        "conda": os.path.isdir(os.path.join(sys.prefix, "conda-meta")),
        "abiflags": getattr(sys, "abiflags", ""),
        "soabi": sysconfig.get_config_var("SOABI"),
        "cache_tag": sys.implementation.cache_tag,
        "platform_tag": sysconfig.get_platform(),
        "pointer_bits": 64 if sys.maxsize > 2**32 else 32,
        "byteorder": sys.byteorder,
        "flags": {k: int(getattr(flags, k)) for k in wanted if hasattr(flags, k)},
        "site_packages": site_dirs(),
    }


def _os_release() -> dict[str, str] | None:
    for path in ("/etc/os-release", "/usr/lib/os-release"):
        try:
            with open(path, encoding="utf-8") as f:
                text = f.read()
        except OSError:
            continue
        info: dict[str, str] = {}
        for line in text.splitlines():
            key, sep, value = line.partition("=")
            if sep and key in ("ID", "VERSION_ID", "PRETTY_NAME"):
                info[key.lower()] = value.strip().strip('"').strip("'")
        return info
    if sys.platform == "darwin":
        return {"id": "macos", "version_id": platform.mac_ver()[0]}
    return None


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            for line in f:
                key, _, value = line.partition(":")
                if key.strip() in ("model name", "Model", "cpu model", "Hardware"):
                    return value.strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _memory_bytes() -> int | None:
    try:
        with open("/proc/meminfo", encoding="ascii", errors="replace") as f:
            for line in f:
                if line.startswith("MemTotal:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))
    except (AttributeError, ValueError, OSError):
        return None


def platform_facts() -> dict[str, Any]:
    libc, libc_version = platform.libc_ver()
    return {
        "system": platform.system(),
        "release": platform.release(),
        "kernel_version": platform.version(),
        "machine": platform.machine(),
        "distribution": _os_release(),
        "libc": [libc, libc_version] if libc else None,
        "cpu": {"model": _cpu_model(), "count": os.cpu_count()},
        "memory_bytes": _memory_bytes(),
    }


def conda() -> dict[str, Any] | None:
    """The conda packages of the prefix, read from ``conda-meta`` (no conda needed)."""
    meta = os.path.join(sys.prefix, "conda-meta")
    if not os.path.isdir(meta):
        return None
    pkgs: list[dict[str, Any]] = []
    for fn in sorted(os.listdir(meta)):
        if not fn.endswith(".json"):
            continue
        try:
            with open(os.path.join(meta, fn), encoding="utf-8") as f:
                rec = json.load(f)
        except (OSError, ValueError):
            continue
        if not isinstance(rec, dict) or "name" not in rec:
            continue
        channel = rec.get("channel") or rec.get("schannel") or ""
        pkgs.append(
            {
                "name": str(rec["name"]),
                "version": str(rec.get("version", "")),
                "build": str(rec.get("build", "")),
                "channel": _redact_url(str(channel)),
            }
        )
    pkgs.sort(key=lambda p: p["name"])
    return {"prefix_name": os.path.basename(sys.prefix), "packages": pkgs}


def main() -> None:
    # The probe must not see the directory it was started from as an import root.
    cwd = os.getcwd()
    sys.path[:] = [p for p in sys.path if p not in ("", cwd)]
    facts = {
        "python": python(),
        "platform": platform_facts(),
        "packages": packages(),
        "conda": conda(),
    }
    sys.stdout.write(MARKER + json.dumps(facts, sort_keys=True) + "\n")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
