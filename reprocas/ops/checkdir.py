"""``reprocas check-dir``: does a plain directory hold exactly a version's content?

Against a version (its trees, read from the repository) or a published content
listing (``show --manifest``, no repository needed). For content ids that depend only
on content (format 3, docs/FORMAT.md) the directory's content id is recomputed too, so
a reviewer holding only the published files can confirm a cited id.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from reprocas.errors import InvalidParameterError, UsageError
from reprocas.store.content import (
    Item,
    compare,
    content_id,
    dir_items,
    parse_listing,
    version_items,
)
from reprocas.store.repository import Repository


@dataclass
class CheckResult:
    """What ``check-dir`` found. ``same`` is True when nothing differs."""

    dir: str
    against: str  # the ref, or the listing's path
    differences: list[dict[str, Any]] = field(default_factory=list)
    expected_id: str | None = None  # the format-3 content id of the version/listing
    actual_id: str | None = None  # the content id recomputed from the directory
    listing_id: str | None = None  # recomputed from the listing's own entries

    @property
    def same(self) -> bool:
        if self.expected_id is not None and self.actual_id != self.expected_id:
            return False
        if self.listing_id is not None and self.listing_id != self.expected_id:
            return False
        return not self.differences

    def to_json(self) -> dict[str, Any]:
        return {
            "dir": self.dir,
            "against": self.against,
            "same": self.same,
            "differences": self.differences,
            "content_id": None
            if self.expected_id is None
            else {
                "expected": self.expected_id,
                "actual": self.actual_id,
                "listing": self.listing_id,
            },
        }

    def render(self) -> list[str]:
        lines = []
        for d in self.differences:
            if d["change"] in ("missing", "extra"):
                where = "the directory" if d["change"] == "missing" else "the version"
                lines.append(f"{d['change']:8} {d['path']}  (not in {where})")
            else:
                lines.append(
                    f"{d['change']:8} {d['path']}  expected {d['expected']}, found {d['actual']}"
                )
        if self.listing_id is not None and self.listing_id != self.expected_id:
            lines.append(
                f"listing  its entries give content id {self.listing_id}, "
                f"not the {self.expected_id} it claims"
            )
        if self.expected_id is not None and self.actual_id != self.expected_id:
            lines.append(f"content  id expected {self.expected_id}, found {self.actual_id}")
        verdict = "same" if self.same else "differs"
        tail = f" (content id {self.actual_id})" if self.same and self.actual_id else ""
        lines.append(f"{self.dir}: {verdict} from {self.against}{tail}")
        return lines


def _dir(path: Path) -> Path:
    if not path.is_dir():
        raise InvalidParameterError(f"{path} is not a directory")
    return path


def check_against_ref(store: Repository, directory: Path, ref: str) -> CheckResult:
    """Compare ``directory`` with version ``ref`` of an open repository."""
    directory = _dir(directory)
    with store.index.read() as txn:
        version = store.resolve(txn, ref)
        want = version_items(store, txn, version)
    rst = os.stat(store.root)
    have = dir_items(directory, skip=(rst.st_dev, rst.st_ino))
    res = CheckResult(str(directory), version.ref, compare(want, have))
    if store.content_ids:
        res.expected_id = version.snapshot.root.hex
        res.actual_id = _hex(content_id(have))
    return res


def check_against_listing(directory: Path, listing: Path) -> CheckResult:
    """Compare ``directory`` with a content listing file (no repository)."""
    directory = _dir(directory)
    try:
        data = json.loads(listing.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise InvalidParameterError(f"cannot read the content listing {listing}: {exc}") from exc
    return _check_listing(directory, data, str(listing))


def _check_listing(directory: Path, data: Any, where: str) -> CheckResult:
    want, cid = parse_listing(data, where)
    have: list[Item] = dir_items(directory)
    res = CheckResult(str(directory), where, compare(want, have))
    if cid is not None:
        res.expected_id = cid.hex()
        res.actual_id = _hex(content_id(have))
        res.listing_id = _hex(content_id(want))
    return res


def check_against_package(directory: Path, package: Path, ref: str | None) -> CheckResult:
    """Compare ``directory`` with version ``ref`` as a reproducible package lists it
    (``reprocas export``, metadata-only or not): the package is checked whole first
    (every checksum), then its content listing of ``ref`` is compared (no repository)."""
    from reprocas.errors import NotFoundError
    from reprocas.package.export import LISTINGS
    from reprocas.package.reader import read_package

    directory = _dir(directory)
    pkg = read_package(package)  # data members hashed, not kept
    refs = sorted(str(v.get("ref")) for v in pkg.index.get("versions") or [])
    if ref is None and len(refs) == 1:
        ref = refs[0]
    if ref is None or ref not in refs:
        raise NotFoundError(
            f"{'give the version to check: ' if ref is None else f'{ref} is not in {package}; '}"
            f"the package holds {', '.join(refs) or 'no versions'}",
            ref=ref,
        )
    raw = pkg.payload.get(f"{LISTINGS}{ref}.json")
    if raw is None:
        raise NotFoundError(f"{package} holds no content listing of {ref}", ref=ref)
    try:
        data = json.loads(raw)
    except ValueError as exc:
        raise InvalidParameterError(f"the listing of {ref} in {package} is not JSON") from exc
    return _check_listing(directory, data, f"{ref} in {package}")


def _hex(cid: bytes | None) -> str | None:
    return None if cid is None else cid.hex()


def check_args(ref: str | None, manifest: Path | None, package: Path | None = None) -> None:
    if package is not None:
        if manifest is not None:
            raise UsageError("give --package or --manifest, not both")
        return
    if (ref is None) == (manifest is None):
        raise UsageError("give a REF or --manifest FILE, exactly one of them")
