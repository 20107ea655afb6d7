"""`reprocas upgrade`: bring a format-2 repository to format 3 (content ids), in place.

Three steps, each leaving a repository that opens (docs/FORMAT.md, "Upgrade"):

1. Under the exclusive lock, every snapshot anything keeps or names — versions, tags,
   forgotten versions whose data is still stored, the inputs, outputs and
   environments of runs — is written in its format-3 form, bottom up, into new packs
   (:mod:`.convert`). Nothing indexes them yet: a crash here leaves format 2 and
   packs `gc` removes.
2. One LMDB transaction (:mod:`.apply`) indexes the new packs with their ``chunkmaps``
   and ``tables`` entries, writes ``aliases`` (old snapshot id -> new), moves every ref
   (logged in the ref log, two-phase), moves the ``snapshots`` and ``forgotten``
   records, rewrites the provenance edges, recounts the references and sets
   ``meta.format_version = 3`` and ``meta.upgrade = "marker-pending"``.
3. ``reprocas.json`` is replaced by its version-3 form, then ``meta.upgrade`` cleared
   (:mod:`.marker`; a crash between 2 and 3 is finished by the next open).

Run records are not rewritten (they are content-addressed and cited): the snapshot ids
they name resolve through ``aliases``. The format-2 objects stay until `gc` finds
nothing names them.
"""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass, field
from typing import Any

import lmdb

from reprocas.errors import FormatVersionError, ReprocasError
from reprocas.model.ids import ID_BYTES, ObjectId
from reprocas.model.objects import Run, Snapshot
from reprocas.progress import Progress
from reprocas.store.repository import (
    FORMAT_VERSION_CONTENT_IDS,
    FORMAT_VERSION_DELTAS,
    Repository,
)
from reprocas.store.upgrade.apply import apply
from reprocas.store.upgrade.convert import Converter, in_order
from reprocas.store.upgrade.marker import write_marker_3
from reprocas.store.writer import Writer

# Where ``upgrade(stop_after=...)`` may stop, as a crash after that step would.
STEPS = ("convert", "index", "marker")


@dataclass
class UpgradeReport:
    """What `reprocas upgrade` did (or, with ``dry_run``, would do)."""

    from_version: int
    to_version: int
    snapshots: int = 0
    trees: int = 0
    chunkmaps: int = 0
    tables: int = 0
    aliases: int = 0
    refs: int = 0
    new_packs: int = 0
    new_bytes: int = 0
    seconds: float = 0.0
    dry_run: bool = False
    already: bool = False
    skipped: list[str] = field(default_factory=list)  # snapshots named but not stored

    def to_json(self) -> dict[str, Any]:
        return {
            "from": self.from_version,
            "to": self.to_version,
            "already": self.already,
            "dry_run": self.dry_run,
            "snapshots": self.snapshots,
            "trees": self.trees,
            "chunkmaps": self.chunkmaps,
            "tables": self.tables,
            "aliases": self.aliases,
            "refs": self.refs,
            "new_packs": self.new_packs,
            "new_bytes": self.new_bytes,
            "skipped": self.skipped,
            "seconds": round(self.seconds, 3),
        }


def _snapshot(repo: Repository, txn: lmdb.Transaction, sid: bytes) -> Snapshot | None:
    """The snapshot object ``sid`` (not through aliases), or None when it is not one
    or not stored."""
    try:
        obj = repo.load(txn, ObjectId(sid))
    except (ReprocasError, ValueError, KeyError, TypeError):
        return None
    return obj if isinstance(obj, Snapshot) else None


def wanted_snapshots(
    repo: Repository, txn: lmdb.Transaction, skipped: list[str]
) -> dict[bytes, Snapshot]:
    """Every stored snapshot that anything keeps or names: refs (versions, tags,
    environments), forgotten versions, and what runs used, produced and ran in —
    and, through them, the ``derived_from`` sources and parents that are stored and
    named as well. A named snapshot that is not stored is listed in ``skipped``."""
    named: dict[bytes, str] = {}
    for key, value in repo.index.iter_refs(txn):
        if len(value) == ID_BYTES:
            named.setdefault(value, key)
    for k in txn.cursor(db=repo.index.db["forgotten"]).iternext(values=False):
        named.setdefault(bytes(k), "forgotten")
    out: dict[bytes, Snapshot] = {}
    runs: list[tuple[str, Run]] = []
    for sid, why in named.items():
        try:
            obj = repo.load(txn, ObjectId(sid))
        except ReprocasError:
            if why == "forgotten":
                continue  # pruned: only its record is left, and it stays as it is
            skipped.append(f"{why} -> {sid.hex()[:12]}")
            continue
        if isinstance(obj, Snapshot):
            out[sid] = obj
        elif isinstance(obj, Run):
            runs.append((why, obj))
    for why, run in runs:
        for s in run.snapshot_ids():
            if s.raw in out:
                continue
            snap = _snapshot(repo, txn, s.raw)
            if snap is None:
                skipped.append(f"{why} names {s.hex[:12]}")
            else:
                out[s.raw] = snap
    return out


def upgrade(
    repo: Repository,
    *,
    dry_run: bool = False,
    progress: Progress | None = None,
    stop_after: str | None = None,
) -> UpgradeReport:
    """Upgrade ``repo`` to format 3 (see the module docstring). ``stop_after`` (tests):
    one of :data:`STEPS`, to leave the repository as a crash after that step would."""
    t0 = time.monotonic()
    if repo.format_version >= FORMAT_VERSION_CONTENT_IDS:
        return UpgradeReport(repo.format_version, repo.format_version, already=True)
    if repo.format_version != FORMAT_VERSION_DELTAS:
        raise FormatVersionError(
            f"repository {repo.root} has format version {repo.format_version}; "
            "`reprocas upgrade` brings format 2 to 3: run `reprocas repack --deltas` "
            "first (it upgrades format 1 to 2)",
            version=repo.format_version,
        )
    report = UpgradeReport(FORMAT_VERSION_DELTAS, FORMAT_VERSION_CONTENT_IDS, dry_run=dry_run)
    with repo.lock("gc", exclusive=True):
        if repo.format_version >= FORMAT_VERSION_CONTENT_IDS:  # another upgrade won
            return UpgradeReport(repo.format_version, repo.format_version, already=True)
        writer = Writer(repo)
        try:
            with repo.index.read() as txn:
                wanted = wanted_snapshots(repo, txn, report.skipped)
                conv = Converter(repo, writer, txn)
                p = progress or Progress()
                p.start(len(wanted), len(wanted))
                for _ in in_order(wanted, conv.snapshot):
                    p.advance(1)
                    p.file_done()
            report.snapshots = len(conv.snapshots)
            report.trees = len(set(conv.trees.values()))
            report.chunkmaps = len(set(writer.file_keys.values()))
            report.tables = len(set(writer.table_keys.values()))
            report.aliases = len(conv.snapshots)
            if dry_run:
                writer.abort()
                report.seconds = time.monotonic() - t0
                return report
            writer.seal_packs()
            report.new_packs = len(writer.unindexed)
            report.new_bytes = writer.new_bytes
            if stop_after == "convert":
                return report
            report.refs = apply(repo, writer, conv)
        except BaseException:
            writer.abort()
            raise
        finally:
            writer.close()
        writer.indexed()
        if stop_after == "index":
            return report
        # The marker goes last, still under the lock: an open meanwhile reads format 3.
        write_marker_3(repo)
    report.seconds = time.monotonic() - t0
    return report


def pending(repo: Repository) -> bool:
    """Whether the index says an upgrade's marker step is still to do."""
    from reprocas.store.upgrade.marker import PENDING

    with contextlib.suppress(ReprocasError), repo.index.read() as txn:
        return bool(repo.index.get_meta(txn, "upgrade") == PENDING)
    return False
