"""Drift between two facts documents: packages grouped, fields compared, ignores."""

from __future__ import annotations

import copy
from typing import Any

from reprocas.environment.diff import diff, diff_packages, render


def _facts() -> dict[str, Any]:
    return {
        "schema": 1,
        "python": {"version": "3.11.7", "executable": "/a/bin/python", "flags": {"optimize": 0}},
        "platform": {"system": "Linux", "release": "6.1", "cpu": {"count": 8}},
        "packages": [
            {"name": "NumPy", "version": "1.26.0", "source": None},
            {"name": "torch", "version": "2.1.0", "source": None},
            {
                "name": "mylib",
                "version": "0.1",
                "source": {"kind": "vcs", "vcs": "git", "url": "https://g/o/r", "commit": "a"},
            },
        ],
        "conda": None,
        "gpu": None,
        "container": None,
        "env": {"OMP_NUM_THREADS": "4", "LANG": "C"},
        "git": {"commit": "abc", "branch": "main", "dirty": False, "diff": None},
        "files": [{"path": "requirements.txt", "blake3": "11"}],
    }


def test_equal_facts_are_the_same() -> None:
    d = diff(_facts(), _facts())
    assert d.same and d.to_json()["same"] is True
    assert render(d, "x", "y") == ["no differences between x and y"]


def test_every_section() -> None:
    a, b = _facts(), _facts()
    b["packages"] = [
        {"name": "numpy", "version": "1.26.4", "source": None},  # renamed case: same package
        {
            "name": "mylib",
            "version": "0.1",
            "source": {"kind": "vcs", "vcs": "git", "url": "https://g/o/r", "commit": "b"},
        },
        {"name": "pandas", "version": "2.2.0", "source": None},
    ]
    b["python"]["version"] = "3.11.9"
    b["platform"]["cpu"]["count"] = 16
    b["gpu"] = {"driver": "535.1", "cuda": "12.2", "devices": [{"name": "A100"}]}
    b["env"] = {"OMP_NUM_THREADS": "8", "TZ": "UTC"}
    b["git"]["commit"] = "def"
    b["files"] = [{"path": "requirements.txt", "blake3": "22"}, {"path": "uv.lock", "blake3": "3"}]
    d = diff(a, b)
    j = d.to_json()
    assert not d.same
    assert j["packages"]["added"] == [{"name": "pandas", "version": "2.2.0"}]
    assert j["packages"]["removed"] == [{"name": "torch", "version": "2.1.0"}]
    assert j["packages"]["changed"] == [{"name": "numpy", "from": "1.26.0", "to": "1.26.4"}]
    assert j["packages"]["source_changed"] == [
        {"name": "mylib", "from": "git+https://g/o/r@a", "to": "git+https://g/o/r@b"}
    ]
    assert j["python"] == [{"field": "python.version", "from": "3.11.7", "to": "3.11.9"}]
    assert j["platform"] == [{"field": "platform.cpu.count", "from": 8, "to": 16}]
    assert j["gpu"] == [{"field": "gpu", "from": None, "to": b["gpu"]}]  # appeared: one change
    assert j["git"] == [{"field": "git.commit", "from": "abc", "to": "def"}]
    assert j["env"] == {
        "added": {"TZ": "UTC"},
        "removed": {"LANG": "C"},
        "changed": {"OMP_NUM_THREADS": {"from": "4", "to": "8"}},
    }
    assert j["files"]["added"] == {"uv.lock": "3"} and "requirements.txt" in j["files"]["changed"]
    text = "\n".join(render(d, "A", "B"))
    for needle in (
        "+ pandas 2.2.0",
        "- torch 2.1.0",
        "~ numpy 1.26.0 -> 1.26.4",
        "python.version: 3.11.7 -> 3.11.9",
        "+ TZ=UTC",
        "- LANG",
    ):
        assert needle in text, needle


def test_ignore_sections_and_fields() -> None:
    a, b = _facts(), copy.deepcopy(_facts())
    b["python"]["executable"] = "/b/bin/python"
    b["git"]["commit"] = "zzz"
    b["env"]["OMP_NUM_THREADS"] = "1"
    assert diff(a, b, ignore=("python.executable", "git", "env.OMP_NUM_THREADS")).same
    assert not diff(a, b, ignore=("python.flags", "git", "env")).same


def test_conda_builds() -> None:
    a = [{"name": "numpy", "version": "1.26.0", "build": "py311h1"}]
    b = [{"name": "numpy", "version": "1.26.0", "build": "py311h2"}]
    d = diff_packages(a, b)
    assert d.changed == [
        {
            "name": "numpy",
            "from": "1.26.0",
            "to": "1.26.0",
            "build_from": "py311h1",
            "build_to": "py311h2",
        }
    ]
