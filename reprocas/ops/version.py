"""What this reprocas is: its version, the storage formats it reads and writes
(docs/FORMAT.md), and how its native core was built (``reprocas version``)."""

from __future__ import annotations

import platform
from typing import Any


def version_info() -> dict[str, Any]:
    """The facts ``reprocas version --json`` prints (a stable schema, docs/CLI.md)."""
    from reprocas import __version__
    from reprocas.native import core
    from reprocas.store.packs import PACK_VERSION, PACK_VERSION_DELTA, PACK_VERSIONS
    from reprocas.store.refcounts import VERSION as REFCOUNTS_VERSION
    from reprocas.store.repository import (
        FORMAT_NAME,
        FORMAT_VERSION,
        FORMAT_VERSION_DEFAULT,
        FORMAT_VERSION_NO_DELTAS,
        FORMAT_VERSIONS_CREATED,
    )

    return {
        "version": __version__,
        "python": platform.python_version(),
        "formats": {
            "repository": {
                "name": FORMAT_NAME,
                "reads": list(range(1, FORMAT_VERSION + 1)),
                # A format 1 repository is written as format 1 until `repack --deltas`.
                "writes": [FORMAT_VERSION_NO_DELTAS, *FORMAT_VERSIONS_CREATED],
                # Format 3 (content ids) by default; format 2 on request (`init --format 2`).
                "creates": FORMAT_VERSION_DEFAULT,
                "can_create": list(FORMAT_VERSIONS_CREATED),
            },
            "pack": {
                "reads": list(PACK_VERSIONS),
                "writes": [PACK_VERSION, PACK_VERSION_DELTA],
            },
            # Counts of another version are not read: they are recounted.
            "refcounts": {"reads": [REFCOUNTS_VERSION], "writes": [REFCOUNTS_VERSION]},
        },
        "native": {
            "version": core.__version__,
            "build": "release" if core.is_release_build() else "debug",
            "path": str(getattr(core, "__file__", "") or ""),
        },
    }


def _versions(vs: list[int]) -> str:
    return ", ".join(str(v) for v in vs)


def render(info: dict[str, Any]) -> list[str]:
    """``reprocas version`` as text."""
    f = info["formats"]
    repo, packs, counts = f["repository"], f["pack"], f["refcounts"]
    native = info["native"]
    build = native["build"] + (
        " — many times slower; rebuild with `make build`" if native["build"] == "debug" else ""
    )
    return [
        f"reprocas {info['version']} (Python {info['python']})",
        f"repository format: reads {_versions(repo['reads'])}, writes "
        f"{_versions(repo['writes'])}, creates {repo['creates']}"
        + "".join(
            f" ({v} with `init --format {v}`)" for v in repo["can_create"] if v != repo["creates"]
        ),
        f"pack trailers: reads {_versions(packs['reads'])}, writes {_versions(packs['writes'])}",
        f"reference counts: version {_versions(counts['writes'])}",
        f"native core: {native['version']}, {build} build ({native['path']})",
    ]
