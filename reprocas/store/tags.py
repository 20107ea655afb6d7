"""Tags: ``DATASET@TAG`` names one version; setting one that names another version
moves it only when asked (``force``), and deleting one removes only the name.

Both go through :meth:`Repository.ref_transaction` (logged to the ref log, reference
counts kept), and both re-read the tag inside that transaction, so what they report is
what they did even when another process moved the tag meanwhile.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import lmdb

from reprocas.errors import RefNotFoundError, UsageError
from reprocas.model.ids import ObjectId
from reprocas.store.repository import Repository, check_tag_name, tag_ref


class TagConflictError(UsageError):
    """A tag already names another version; it moves only with ``--force``."""


@dataclass(frozen=True, slots=True)
class TagChange:
    """What setting or deleting a tag did: ``before``/``after`` are version refs
    (``NAME@vN``) or None (the tag did not exist / no longer exists)."""

    dataset: str
    tag: str
    before: str | None
    after: str | None
    before_id: str | None = None
    after_id: str | None = None

    @property
    def moved(self) -> bool:
        return self.before is not None and self.after is not None and self.before != self.after

    def describe(self) -> str:
        """``tag v-final moved from cohort@v2 to cohort@v3`` and the like."""
        name = f"{self.dataset}@{self.tag}"
        if self.after is None:
            return f"deleted tag {name} (it named {self.before})"
        if self.before is None:
            return f"{name} -> {self.after}"
        if self.before == self.after:
            return f"{name} -> {self.after} (unchanged)"
        return f"tag {self.tag} moved from {self.before} to {self.after}"

    def to_json(self) -> dict[str, Any]:
        return {
            "dataset": self.dataset,
            "tag": self.tag,
            "before": self.before,
            "before_id": self.before_id,
            "after": self.after,
            "after_id": self.after_id,
            "moved": self.moved,
            "deleted": self.after is None,
        }


def label(repo: Repository, txn: lmdb.Transaction, sid: bytes) -> str:
    """``NAME@vN`` of a version id (the id's start when it is no longer a version)."""
    info = repo.version_info(txn, ObjectId(sid))
    return f"{info[0]}@v{info[1]}" if info else sid.hex()[:12]


def set_tag(
    repo: Repository, dataset: str, sid: ObjectId, tag: str, *, force: bool = False
) -> TagChange:
    """Point ``DATASET@TAG`` at version ``sid``. A tag that names another version is
    moved only with ``force`` (otherwise :class:`TagConflictError`, nothing changed)."""
    check_tag_name(tag)
    key = tag_ref(dataset, tag)
    with repo.ref_transaction() as rt:
        old = repo.index.get_ref(rt.txn, key)
        after = label(repo, rt.txn, sid.raw)
        before = label(repo, rt.txn, old) if old is not None else None
        if old is not None and old != sid.raw and not force:
            raise TagConflictError(
                f"tag {dataset}@{tag} already names {before}; pass --force to move it to {after}",
                tag=tag,
            )
        if old != sid.raw:
            rt.set([(key, sid)])
    return TagChange(
        dataset,
        tag,
        before,
        after,
        None if old is None else bytes(old).hex(),
        sid.hex,
    )


def parse_tag(repo: Repository, txn: lmdb.Transaction, spec: str) -> tuple[str, str]:
    """``DATASET@TAG`` -> (dataset, tag); a bare ``TAG`` when exactly one dataset has
    it."""
    spec = spec.strip()
    if "@" in spec:
        name, _, tag = spec.rpartition("@")
        return name, tag
    holders = [n for n in repo.datasets(txn) if repo.index.get_ref(txn, tag_ref(n, spec))]
    if len(holders) == 1:
        return holders[0], spec
    if not holders:
        raise RefNotFoundError(f"no dataset has a tag {spec!r}", ref=spec)
    raise UsageError(
        f"tag {spec!r} exists in {len(holders)} datasets ({', '.join(holders[:5])}); "
        f"name one: {holders[0]}@{spec}"
    )


def delete_tag(repo: Repository, dataset: str, tag: str) -> TagChange:
    """Remove ``DATASET@TAG`` (the version stays)."""
    key = tag_ref(dataset, tag)
    with repo.ref_transaction() as rt:
        old = repo.index.get_ref(rt.txn, key)
        if old is None:
            tags = sorted({t for ts in repo.tags_of(rt.txn, dataset).values() for t in ts})
            raise RefNotFoundError(
                f"{dataset} has no tag {tag!r}"
                + (f"; its tags: {', '.join(tags)}" if tags else "; it has no tags"),
                ref=f"{dataset}@{tag}",
            )
        before = label(repo, rt.txn, old)
        rt.delete([(key, ObjectId(bytes(old)))])
    return TagChange(dataset, tag, before, None, bytes(old).hex(), None)
