"""Rebuild recipes: requirement lines per install kind, the Dockerfile, the conda file."""

from __future__ import annotations

from typing import Any

import pytest

from reprocas.environment import export
from reprocas.environment.errors import ExportFormatError


@pytest.mark.parametrize(
    ("source", "line"),
    [
        (None, "pkg==1.0"),
        ({"kind": "editable", "url": "file:///home/me/pkg"}, "-e /home/me/pkg"),
        ({"kind": "directory", "url": "file:///src/pkg"}, "pkg @ file:///src/pkg"),
        (
            {"kind": "vcs", "vcs": "git", "url": "https://github.com/o/pkg", "commit": "abc123"},
            "pkg @ git+https://github.com/o/pkg@abc123",
        ),
        (
            {
                "kind": "vcs",
                "vcs": "git",
                "url": "https://g/o/r",
                "commit": "c",
                "subdirectory": "sub",
            },
            "pkg @ git+https://g/o/r@c#subdirectory=sub",
        ),
        (
            {"kind": "archive", "url": "https://h/pkg-1.0.tar.gz", "hash": "sha256=ff"},
            "pkg @ https://h/pkg-1.0.tar.gz#sha256=ff",
        ),
    ],
)
def test_requirement_lines(source: dict[str, Any] | None, line: str) -> None:
    assert export.requirement({"name": "pkg", "version": "1.0", "source": source}) == line


def _facts(**over: Any) -> dict[str, Any]:
    facts: dict[str, Any] = {
        "python": {
            "implementation": "CPython",
            "version": "3.11.7",
            "version_info": [3, 11, 7],
            "release_level": "final",
        },
        "platform": {"system": "Linux", "machine": "x86_64"},
        "packages": [
            {"name": "torch", "version": "2.1.0", "installer": "pip", "source": None},
            {"name": "Numpy", "version": "1.26.0", "installer": "conda", "source": None},
            {
                "name": "mine",
                "version": "0.1",
                "installer": "pip",
                "source": {"kind": "editable", "url": "file:///w/mine"},
            },
        ],
        "env": {"PYTHONHASHSEED": "0", "LANG": "C.UTF-8"},
        "gpu": {"driver": "535.104", "cuda": "12.2", "devices": []},
        "conda": None,
    }
    facts.update(over)
    return facts


def test_requirements_sorted_and_pinned() -> None:
    text = export.requirements(_facts(), "env/x@v1")
    body = [ln for ln in text.splitlines() if not ln.startswith("#")]
    assert body == ["-e /w/mine", "Numpy==1.26.0", "torch==2.1.0"]
    assert "env/x@v1" in text


def test_dockerfile() -> None:
    text = export.dockerfile(_facts(), "env/x@v1")
    assert "FROM python:3.11.7-slim" in text
    assert "PYTHONHASHSEED=0" in text and "CUDA 12.2" in text
    assert "#   -e /w/mine" in text  # local installs are called out, not silently broken
    rc = _facts(
        python={
            "implementation": "CPython",
            "version": "3.13.0rc1",
            "version_info": [3, 13, 0],
            "release_level": "candidate",
        }
    )
    assert "FROM python:3.13-slim" in export.dockerfile(rc)


def test_conda_file() -> None:
    conda = {
        "prefix_name": "ml",
        "packages": [
            {
                "name": "numpy",
                "version": "1.26.0",
                "build": "py311h1",
                "channel": "https://conda.anaconda.org/conda-forge/linux-64",
            },
            {"name": "python", "version": "3.11.7", "build": "h2", "channel": "pkgs/main"},
        ],
    }
    text = export.conda(_facts(conda=conda))
    assert "name: ml" in text
    assert "  - conda-forge\n  - pkgs/main" in text
    assert "  - numpy=1.26.0=py311h1" in text
    assert "  - pip:\n    - -e /w/mine\n    - torch==2.1.0" in text
    with pytest.raises(ExportFormatError, match="not captured from a conda"):
        export.conda(_facts())
    with pytest.raises(ExportFormatError, match="unknown export format"):
        export.export(_facts(), "zip")
