"""What the repository holds, by name: datasets with their version counts and latest
version, and tags with the versions they name (`reprocas datasets`, `reprocas tags`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from reprocas.errors import RefNotFoundError, known_names
from reprocas.model.display import iso_time
from reprocas.model.ids import ObjectId
from reprocas.store.repository import Repository


@dataclass(frozen=True, slots=True)
class DatasetSummary:
    """One dataset: how many versions, its latest, and when it last changed."""

    name: str
    kind: str
    versions: int
    latest_ref: str
    latest_id: str
    logical_bytes: int
    files: int
    last_change: str
    tags: tuple[str, ...]

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "kind": self.kind,
            "versions": self.versions,
            "latest": {"ref": self.latest_ref, "id": self.latest_id},
            "logical_bytes": self.logical_bytes,
            "files": self.files,
            "last_change": self.last_change,
            "tags": list(self.tags),
        }


@dataclass(frozen=True, slots=True)
class TagEntry:
    """A tag and the version it names."""

    dataset: str
    tag: str
    ref: str
    id: str
    time: str

    def to_json(self) -> dict[str, Any]:
        return {
            "dataset": self.dataset,
            "tag": self.tag,
            "name": f"{self.dataset}@{self.tag}",
            "ref": self.ref,
            "id": self.id,
            "time": self.time,
        }


def list_datasets(repo: Repository) -> list[DatasetSummary]:
    """Every dataset (environment and run-output datasets too, by kind), by name. The
    size is the latest version's logical size: what a checkout of it writes."""
    out: list[DatasetSummary] = []
    with repo.index.read() as txn:
        for name in repo.datasets(txn):
            versions = repo.versions(txn, name)
            if not versions:
                continue
            number, sid = versions[-1]
            snap = repo.load_snapshot(txn, sid)
            tags = sorted({t for ts in repo.tags_of(txn, name).values() for t in ts})
            out.append(
                DatasetSummary(
                    name=name,
                    kind=snap.kind,
                    versions=len(versions),
                    latest_ref=f"{name}@v{number}",
                    latest_id=sid.hex,
                    logical_bytes=snap.logical_bytes,
                    files=snap.files,
                    last_change=iso_time(snap.time_ns),
                    tags=tuple(tags),
                )
            )
    return out


def list_tags(repo: Repository, dataset: str | None = None) -> list[TagEntry]:
    """Tags of one dataset (an unknown name is an error) or of all, by dataset and tag."""
    out: list[TagEntry] = []
    with repo.index.read() as txn:
        names = repo.datasets(txn)
        if dataset is not None:
            if dataset not in names:
                raise RefNotFoundError(
                    f"unknown dataset {dataset!r}; {known_names(names)}", ref=dataset
                )
            names = [dataset]
        for name in names:
            for raw, tags in repo.tags_of(txn, name).items():
                oid = ObjectId(raw)
                info = repo.version_info(txn, oid)
                ref = f"{info[0]}@v{info[1]}" if info else oid.hex[:12]
                time = iso_time(repo.load_snapshot(txn, oid).time_ns)
                out.extend(TagEntry(name, t, ref, oid.hex, time) for t in tags)
    out.sort(key=lambda e: (e.dataset, e.tag))
    return out
