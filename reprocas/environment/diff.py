"""Drift between two environments: a pure function of two facts documents.

Packages are compared by normalised name: added, removed, changed version (from -> to)
and changed source (a different VCS commit, an editable install, another URL). The
interpreter, platform, GPU, container and git sections are compared field by field;
environment variables and lock files by name. Nothing here reads the disk.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from reprocas.environment.capture import normalise

SECTIONS = ("packages", "conda", "python", "platform", "gpu", "container", "git", "env", "files")
"""The sections a diff reports, in order; ``--ignore`` takes these names, or a dotted
field (``python.executable``) to ignore one field."""


@dataclass(frozen=True, slots=True)
class Change:
    """One field that differs: ``python.version``: ``3.11.7`` -> ``3.12.1``."""

    field: str
    before: Any
    after: Any

    def to_json(self) -> dict[str, Any]:
        return {"field": self.field, "from": self.before, "to": self.after}


@dataclass
class PackageDiff:
    """Added, removed and changed distributions (pip's view, or conda's)."""

    added: list[dict[str, Any]] = field(default_factory=list)
    removed: list[dict[str, Any]] = field(default_factory=list)
    changed: list[dict[str, Any]] = field(default_factory=list)
    source_changed: list[dict[str, Any]] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.added or self.removed or self.changed or self.source_changed)

    def to_json(self) -> dict[str, Any]:
        return {
            "added": self.added,
            "removed": self.removed,
            "changed": self.changed,
            "source_changed": self.source_changed,
        }


@dataclass
class KeyedDiff:
    """Added, removed and changed entries of a name -> value map."""

    added: dict[str, Any] = field(default_factory=dict)
    removed: dict[str, Any] = field(default_factory=dict)
    changed: dict[str, dict[str, Any]] = field(default_factory=dict)

    def __bool__(self) -> bool:
        return bool(self.added or self.removed or self.changed)

    def to_json(self) -> dict[str, Any]:
        return {"added": self.added, "removed": self.removed, "changed": self.changed}


@dataclass
class EnvDiff:
    """Everything that differs between environment A and environment B."""

    packages: PackageDiff = field(default_factory=PackageDiff)
    conda: PackageDiff = field(default_factory=PackageDiff)
    python: list[Change] = field(default_factory=list)
    platform: list[Change] = field(default_factory=list)
    gpu: list[Change] = field(default_factory=list)
    container: list[Change] = field(default_factory=list)
    git: list[Change] = field(default_factory=list)
    env: KeyedDiff = field(default_factory=KeyedDiff)
    files: KeyedDiff = field(default_factory=KeyedDiff)

    @property
    def same(self) -> bool:
        return not any(getattr(self, s) for s in SECTIONS)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"same": self.same}
        for s in SECTIONS:
            value = getattr(self, s)
            out[s] = [c.to_json() for c in value] if isinstance(value, list) else value.to_json()
        return out


def _fields(section: str, a: Any, b: Any, ignore: tuple[str, ...]) -> list[Change]:
    """Field-by-field changes, descending into maps present on both sides; a map on one
    side only (a GPU appeared, a tree became dirty) is one change."""
    changes: list[Change] = []

    def walk(key: str, x: Any, y: Any) -> None:
        if _ignored(key, ignore):
            return
        if isinstance(x, dict) and isinstance(y, dict):
            for k in sorted(set(x) | set(y)):
                walk(f"{key}.{k}", x.get(k), y.get(k))
        elif x != y:
            changes.append(Change(key, x, y))

    walk(section, a, b)
    return changes


def _ignored(key: str, ignore: tuple[str, ...]) -> bool:
    return any(key == i or key.startswith(i + ".") for i in ignore)


def _source_label(src: dict[str, Any] | None) -> str | None:
    if not src:
        return None
    kind = src.get("kind")
    url = src.get("url", "")
    if kind == "vcs":
        return f"{src.get('vcs', 'vcs')}+{url}@{src.get('commit', '')}"
    if kind == "editable":
        return f"editable {url}"
    return str(url)


def diff_packages(a: Iterable[dict[str, Any]], b: Iterable[dict[str, Any]]) -> PackageDiff:
    """Compare two package lists (``[{"name", "version", ...}]``) by normalised name."""
    pa = {normalise(p["name"]): p for p in a}
    pb = {normalise(p["name"]): p for p in b}
    d = PackageDiff()
    for key in sorted(set(pa) | set(pb)):
        x, y = pa.get(key), pb.get(key)
        if x is None and y is not None:
            d.added.append({"name": y["name"], "version": y["version"]})
        elif y is None and x is not None:
            d.removed.append({"name": x["name"], "version": x["version"]})
        elif x is not None and y is not None:
            if x["version"] != y["version"] or x.get("build") != y.get("build"):
                c: dict[str, Any] = {"name": y["name"], "from": x["version"], "to": y["version"]}
                if x.get("build") != y.get("build"):
                    c["build_from"], c["build_to"] = x.get("build"), y.get("build")
                d.changed.append(c)
            elif _source_label(x.get("source")) != _source_label(y.get("source")):
                d.source_changed.append(
                    {
                        "name": y["name"],
                        "from": _source_label(x.get("source")),
                        "to": _source_label(y.get("source")),
                    }
                )
    return d


def _keyed(
    a: dict[str, Any], b: dict[str, Any], section: str, ignore: tuple[str, ...]
) -> KeyedDiff:
    d = KeyedDiff()
    for k in sorted(set(a) | set(b)):
        if _ignored(f"{section}.{k}", ignore):
            continue
        if k not in a:
            d.added[k] = b[k]
        elif k not in b:
            d.removed[k] = a[k]
        elif a[k] != b[k]:
            d.changed[k] = {"from": a[k], "to": b[k]}
    return d


def diff(a: dict[str, Any], b: dict[str, Any], *, ignore: Iterable[str] = ()) -> EnvDiff:
    """What changed from facts ``a`` to facts ``b``; ``ignore`` holds section names or
    dotted fields to leave out (see :data:`SECTIONS`)."""
    ig = tuple(ignore)
    d = EnvDiff()
    if "packages" not in ig:
        d.packages = diff_packages(a.get("packages") or [], b.get("packages") or [])
    if "conda" not in ig:
        d.conda = diff_packages(
            (a.get("conda") or {}).get("packages") or [],
            (b.get("conda") or {}).get("packages") or [],
        )
    for section in ("python", "platform", "gpu", "container", "git"):
        if section in ig:
            continue
        setattr(d, section, _fields(section, a.get(section), b.get(section), ig))
    if "env" not in ig:
        d.env = _keyed(a.get("env") or {}, b.get("env") or {}, "env", ig)
    if "files" not in ig:
        fa = {f["path"]: f["blake3"] for f in a.get("files") or []}
        fb = {f["path"]: f["blake3"] for f in b.get("files") or []}
        d.files = _keyed(fa, fb, "files", ig)
    return d


def _short(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, list):
        return ", ".join(_short(v) for v in value) or "[]"
    text = str(value)
    return text if len(text) <= 72 else text[:69] + "..."


def render(d: EnvDiff, a_label: str = "A", b_label: str = "B") -> list[str]:
    """The diff as lines of text for people, grouped by section."""
    if d.same:
        return [f"no differences between {a_label} and {b_label}"]
    lines = [f"--- {a_label}", f"+++ {b_label}"]
    for title, pd in (("packages", d.packages), ("conda packages", d.conda)):
        if not pd:
            continue
        lines.append(f"{title}:")
        lines += [f"  + {p['name']} {p['version']}" for p in pd.added]
        lines += [f"  - {p['name']} {p['version']}" for p in pd.removed]
        for c in pd.changed:
            extra = f" (build {c['build_from']} -> {c['build_to']})" if "build_from" in c else ""
            lines.append(f"  ~ {c['name']} {c['from']} -> {c['to']}{extra}")
        lines += [
            f"  ~ {c['name']} source {_short(c['from'])} -> {_short(c['to'])}"
            for c in pd.source_changed
        ]
    for section in ("python", "platform", "gpu", "container", "git"):
        changes: list[Change] = getattr(d, section)
        if changes:
            lines.append(f"{section}:")
            lines += [f"  {c.field}: {_short(c.before)} -> {_short(c.after)}" for c in changes]
    for title, kd in (("environment variables", d.env), ("lock files", d.files)):
        if not kd:
            continue
        lines.append(f"{title}:")
        lines += [f"  + {k}={_short(v)}" for k, v in kd.added.items()]
        lines += [f"  - {k}" for k in kd.removed]
        lines += [
            f"  ~ {k}: {_short(v['from'])} -> {_short(v['to'])}" for k, v in kd.changed.items()
        ]
    return lines
