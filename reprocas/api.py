"""The Python API: ``reprocas.Repo``. The CLI is a thin layer over the same calls."""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from reprocas.errors import PathNotInVersionError, ReprocasError
from reprocas.model.chunking import ChunkingConfig, CompressionConfig, DeltaConfig
from reprocas.model.display import iso_time
from reprocas.model.ids import ObjectId
from reprocas.progress import Progress
from reprocas.provenance import run_reads
from reprocas.store import accounting
from reprocas.store import checkout as checkout_mod
from reprocas.store import gc as gc_mod
from reprocas.store import rebuild as rebuild_mod
from reprocas.store import verify as verify_mod
from reprocas.store.commit import CommitResult, commit
from reprocas.store.overlap import refuse as refuse_overlap
from reprocas.store.reachability import iter_tree
from reprocas.store.reader import StoreFile
from reprocas.store.repository import DEFAULT_PACK_SIZE, DOT_DIR, Repository, Version, find_root
from reprocas.store.tags import TagChange, delete_tag, parse_tag, set_tag


@dataclass(frozen=True, slots=True)
class LogEntry:
    """One version in ``log``."""

    ref: str
    id: str
    time: str
    message: str
    step: str | None
    tags: tuple[str, ...]
    files: int
    logical_bytes: int
    parent: str | None
    author: str
    damaged: bool = False
    # The root tree id: a content id in format 3; in format 1/2 it depends on chunking.
    content_id: str = ""
    content_ids: bool = False  # whether content_id depends only on content (format 3)
    # The format-2 id the version was asked for by, when `reprocas upgrade` replaced it.
    aliased_from: str | None = None

    def to_json(self) -> dict[str, Any]:
        extra = {"aliased_from": self.aliased_from} if self.aliased_from else {}
        return {
            "ref": self.ref,
            "id": self.id,
            "time": self.time,
            "message": self.message,
            "step": self.step,
            "tags": list(self.tags),
            "files": self.files,
            "logical_bytes": self.logical_bytes,
            "parent": self.parent,
            "author": self.author,
            "damaged": self.damaged,
            "content_id": self.content_id,
            **extra,
        }


@dataclass(frozen=True, slots=True)
class LsEntry:
    path: str
    kind: str
    mode: int
    size: int
    target: str | None

    def to_json(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "kind": self.kind,
            "mode": f"{self.mode:o}",
            "size": self.size,
            "target": self.target,
        }


def _entry(v: Version, content_ids: bool = False) -> LogEntry:
    s = v.snapshot
    return LogEntry(
        ref=v.ref,
        id=v.id.hex,
        time=iso_time(s.time_ns),
        message=s.message,
        step=s.step,
        tags=v.tags,
        files=s.files,
        logical_bytes=s.logical_bytes,
        parent=s.parent.hex if s.parent else None,
        author=s.author,
        content_id=s.root.hex,
        content_ids=content_ids,
        aliased_from=v.aliased_from.hex if v.aliased_from is not None else None,
    )


def _damaged_entry(name: str, number: int, sid: ObjectId, exc: Exception) -> LogEntry:
    return LogEntry(
        ref=f"{name}@v{number}",
        id=sid.hex,
        time="",
        message=f"(damaged: {exc})",
        step=None,
        tags=(),
        files=0,
        logical_bytes=0,
        parent=None,
        author="",
        damaged=True,
    )


class _ClassOrInstance:
    """``Repo.open(...)`` on the class opens a repository; ``repo.open(...)`` on an
    instance opens a file of a version. Both spellings are part of the API."""

    def __init__(self, on_class: Any, on_instance: Any) -> None:
        self.on_class = on_class
        self.on_instance = on_instance

    def __get__(self, obj: Any, objtype: Any = None) -> Any:
        if obj is None:
            return self.on_class.__get__(objtype, objtype)
        return self.on_instance.__get__(obj, objtype)


class Repo:
    """A reprocas repository: commit datasets, read their history, check them out."""

    def __init__(self, store: Repository) -> None:
        if not isinstance(store, Repository):
            raise TypeError(
                f"Repo() takes an open store, not {type(store).__name__}: use "
                "reprocas.Repo.open_repo(path) or reprocas.Repo.init(path)"
            )
        self.store = store

    # -- opening ----------------------------------------------------------------------

    @classmethod
    def init(
        cls,
        path: str | os.PathLike[str] | None = None,
        *,
        chunking: ChunkingConfig | None = None,
        compression: CompressionConfig | None = None,
        pack_size: int = DEFAULT_PACK_SIZE,
        deltas: DeltaConfig | None = None,
        format: int | None = None,
    ) -> Repo:
        """Create a repository: at ``path``, or in ``./.reprocas`` without one.
        ``deltas`` sets delta chunks (on by default); ``format`` 3 makes version ids
        content ids, independent of chunking (None: format 3; 2 on request; docs/FORMAT.md)."""
        root = Path(path) if path is not None else Path.cwd() / DOT_DIR
        return cls(Repository.init(root, chunking, compression, pack_size, deltas, format=format))

    @classmethod
    def open_repo(
        cls, path: str | os.PathLike[str] | None = None, *, rebuilding: bool = False
    ) -> Repo:
        """Open ``path``, or $REPROCAS_REPO, or the ``.reprocas`` above the current directory.

        ``rebuilding=True`` opens a repository whose index is missing, for
        :meth:`rebuild_index`.
        """
        return cls(Repository.open(find_root(explicit=path), rebuilding=rebuilding))

    @property
    def root(self) -> Path:
        return self.store.root

    def close(self) -> None:
        self.store.close()

    def __enter__(self) -> Repo:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- writing ----------------------------------------------------------------------

    def commit(
        self,
        src: str | os.PathLike[str],
        dataset: str,
        *,
        message: str = "",
        tags: tuple[str, ...] | list[str] = (),
        step: str | None = None,
        progress: Progress | None = None,
        derived_from: tuple[str, ...] | list[str] = (),
        allow_changing: bool = False,
    ) -> CommitResult:
        """Commit a directory or file as the next version of ``dataset``.

        A file that changes while it is read is read again; if it changes again the
        commit fails (``SourceChangedError``) unless ``allow_changing``, which stores
        what was read and names the file in ``result.changed`` and in the snapshot's
        ``extra["changed_during_read"]``.

        ``derived_from`` are refs of the versions this one was made from (``step`` says
        how): recorded in the snapshot and as ``derived-from`` edges of the provenance
        graph (``reprocas lineage``)."""
        from reprocas.provenance import graph
        from reprocas.tabular.inspect import inspect_file

        with self.store.index.read() as txn:
            sources = tuple(self.store.resolve(txn, r).id for r in derived_from)

        def edges(txn: Any, sid: ObjectId) -> None:
            snap_step = {"step": step}
            graph.put_edges(
                self.store,
                txn,
                [graph.Edge(sid.raw, graph.DERIVED, s.raw, snap_step) for s in sources],
            )

        return commit(
            self.store,
            Path(src),
            dataset,
            message=message,
            tags=tuple(tags),
            step=step,
            progress=progress,
            inspect=inspect_file,
            derived_from=sources,
            in_txn=edges if sources else None,
            allow_changing=allow_changing,
        )

    def tag(self, ref: str, tag: str, *, force: bool = False) -> Version:
        """Name a version ``DATASET@TAG``. A tag that names another version moves only
        with ``force`` (otherwise ``TagConflictError``, exit code 2)."""
        v = self.resolve(ref)
        set_tag(self.store, v.name, v.id, tag, force=force)
        with self.store.index.read() as txn:
            return self.store.make_version(txn, v.id)

    def set_tag(self, ref: str, tag: str, *, force: bool = False) -> TagChange:
        """As :meth:`tag`, returning what changed (``.before``, ``.after``, ``.moved``)."""
        v = self.resolve(ref)
        return set_tag(self.store, v.name, v.id, tag, force=force)

    def delete_tag(self, tag: str, dataset: str | None = None) -> TagChange:
        """Delete ``DATASET@TAG`` (``tag`` may be written so; a bare tag that exactly one
        dataset has also works). The version stays."""
        with self.store.index.read() as txn:
            if dataset is not None:
                name = self.store.resolve(txn, dataset).name
            else:
                name, tag = parse_tag(self.store, txn, tag)
        return delete_tag(self.store, name, tag)

    # -- reading ----------------------------------------------------------------------

    def resolve(self, ref: str) -> Version:
        """``NAME``, ``NAME@vN``, ``NAME@latest``, ``NAME@TAG`` or an id prefix. Inside a
        replay, a ref the original run read through the API means the version it read
        then (``REPROCAS_RUN_PIN``, docs/RUNS.md, "Reads through the API")."""
        with self.store.index.read() as txn:
            return self.store.resolve(txn, run_reads.pinned(self.store, ref) or ref)

    def _read(self, ref: str, path: str | None = None) -> Version:
        """``ref`` resolved for a read of its content, which a run records as an input
        (``REPROCAS_RUN_READS``; nothing outside a run)."""
        v = self.resolve(ref)
        run_reads.note(self.store, v, ref, (path.strip("/") or None) if path else None)
        return v

    def datasets(self) -> list[str]:
        with self.store.index.read() as txn:
            return self.store.datasets(txn)

    def log(self, dataset: str | None = None) -> list[LogEntry]:
        """Versions, newest first: of one dataset, or of all of them."""
        out: list[tuple[int, LogEntry]] = []
        with self.store.index.read() as txn:
            names = [dataset] if dataset else self.store.datasets(txn)
            if dataset and not self.store.versions(txn, dataset):
                self.store.resolve(txn, dataset)  # a clear error for an unknown name
            for name in names:
                for number, sid in self.store.versions(txn, name):
                    try:
                        v = self.store.make_version(txn, sid)
                    except ReprocasError as exc:
                        # A damaged version stays listed: history is never silently lost.
                        out.append((0, _damaged_entry(name, number, sid, exc)))
                        continue
                    out.append((v.snapshot.time_ns, _entry(v, self.store.content_ids)))
        out.sort(key=lambda t: t[0], reverse=True)
        return [e for _, e in out]

    def show(self, ref: str) -> LogEntry:
        return _entry(self.resolve(ref), self.store.content_ids)

    def ls(self, ref: str, path: str = "", *, recursive: bool = False) -> list[LsEntry]:
        """Entries of a directory of a version (or the one entry, for a file)."""
        store = self.store
        v = self._read(ref, path)
        with store.index.read() as txn:
            entry = checkout_mod.find_entry(store, txn, v, path)
            base = path.strip("/")
            if entry.kind != "dir":
                return [
                    LsEntry(
                        base,
                        entry.kind,
                        entry.mode,
                        entry.size,
                        os.fsdecode(entry.target) if entry.kind == "symlink" else None,
                    )
                ]
            prefix = f"{base}/" if base else ""
            found = (
                iter_tree(store, txn, entry.target, prefix)
                if recursive
                else (
                    (prefix + e.name, e)
                    for e in store.load_tree(txn, ObjectId(entry.target)).entries
                )
            )
            return [
                LsEntry(
                    p + ("/" if e.kind == "dir" else ""),
                    e.kind,
                    e.mode,
                    e.size,
                    os.fsdecode(e.target) if e.kind == "symlink" else None,
                )
                for p, e in found
            ]

    def content_listing(self, ref: str) -> dict[str, Any]:
        """A version's content listing (paths, kinds, modes, sizes, digests, link
        targets, content id) as ``show --manifest`` writes it; ``check-dir
        --manifest`` checks a directory against it (reprocas.store.content)."""
        from reprocas.store.content import listing

        store = self.store
        with store.index.read() as txn:
            return listing(store, txn, store.resolve(txn, ref))

    def cat(self, ref: str, path: str) -> bytes:
        """One file of a version, as bytes (verified)."""
        with tempfile.TemporaryFile() as f:
            checkout_mod.cat(self.store, self._read(ref, path).id.hex, path, f.fileno())
            f.seek(0)
            return f.read()

    def open_file(self, ref: str, path: str) -> StoreFile:
        """A seekable, read-only binary file object over one file of a version.

        Reads go straight to the packs (no checkout), find their chunks by binary
        search, and are verified against the chunks' digests.
        """
        store = self.store
        v = self._read(ref, path)
        with store.index.read() as txn:
            entry = checkout_mod.find_entry(store, txn, v, path)
            if entry.kind != "file":
                raise PathNotInVersionError(
                    f"{path!r} is a {'directory' if entry.kind == 'dir' else 'symbolic link'} "
                    f"in {v.ref}, not a file",
                    path=path,
                )
            manifest = store.entry_manifest(txn, entry)
        return StoreFile(store, manifest, f"{v.ref}:{path}")

    def cat_to(self, ref: str, path: str, fd: int) -> int:
        """Write one file of a version to an open file descriptor."""
        return checkout_mod.cat(self.store, self._read(ref, path).id.hex, path, fd)

    def checkout(
        self,
        ref: str,
        dest: str | os.PathLike[str],
        *,
        path: str | None = None,
        force: bool = False,
        special_modes: bool = False,
        progress: Progress | None = None,
    ) -> checkout_mod.CheckoutResult:
        """Write a version (or one path of it) to ``dest``, exactly.

        ``force`` makes a non-empty ``dest`` exactly the version (what it lacks is
        removed, and listed in the result); setuid, setgid and sticky bits are
        restored only with ``special_modes`` (otherwise refused)."""
        return checkout_mod.checkout(
            self.store,
            self._read(ref, path).id.hex,
            Path(dest),
            subpath=path,
            force=force,
            special_modes=special_modes,
            progress=progress,
        )

    # -- tables (pyarrow) ----------------------------------------------------------------

    def dataset(self, ref: str, path: str | None = None, format: str | None = None) -> Any:
        """A ``pyarrow.dataset.Dataset`` over the Parquet, Arrow IPC or CSV files of a
        version (or of one path in it), read straight from the store."""
        from reprocas.tabular.read import arrow_errors, open_dataset

        with arrow_errors(f"{ref}:{path or '/'}"):
            return open_dataset(self.store, self._read(ref, path), path, format)

    def read_table(
        self,
        ref: str,
        path: str,
        *,
        columns: list[str] | None = None,
        filter: Any = None,
    ) -> Any:
        """One table of a version as a ``pyarrow.Table``, exactly as committed."""
        from reprocas.tabular.read import arrow_errors, read_table

        with arrow_errors(f"{ref}:{path}"):
            return read_table(self.store, self._read(ref, path), path, columns, filter)

    def table_info(self, ref: str, path: str) -> Any:
        """The table record committed for a file (schema, rows, row groups), or None."""
        from reprocas.tabular.read import table_record

        return table_record(self.store, self._read(ref, path), path)

    def export_table(
        self,
        ref: str,
        path: str,
        to: str | os.PathLike[str],
        format: str | None = None,
        *,
        force: bool = False,
        progress: Progress | None = None,
    ) -> Path:
        """Write one table of a version to a local file. The format is ``format``, else
        ``to``'s suffix (an unknown suffix is refused rather than guessed); an existing
        file is replaced only with ``force``, as `checkout` refuses a non-empty DEST."""
        from reprocas.errors import DestinationError, InvalidParameterError
        from reprocas.tabular.formats import FORMATS, format_of
        from reprocas.tabular.read import arrow_errors, export_table, read_table

        out = Path(to)
        refuse_overlap(self.store.root, out, "export to", ("is", "inside", "holds"))
        fmt = format or format_of(out.name)
        if fmt is None:
            raise InvalidParameterError(
                f"cannot tell the format of {out.name!r} from its suffix; name it .parquet, "
                f".arrow or .csv, or say --format ({', '.join(FORMATS)})"
            )
        if (out.exists() or out.is_symlink()) and not force:
            raise DestinationError(f"{out} exists; pass --force to overwrite it")
        if out.is_dir():
            raise DestinationError(f"{out} is a directory; name the file to write")
        with arrow_errors(f"{ref}:{path}"):
            table = read_table(self.store, self._read(ref, path), path)
            export_table(table, out, fmt, progress)
        return out

    def diff(
        self,
        ref_a: str,
        ref_b: str,
        *,
        path: str | None = None,
        key: list[str] | None = None,
        limit: int = 5,
        progress: Progress | None = None,
    ) -> Any:
        """What changed between two versions: files, table schemas and row counts, and
        with ``key`` the rows added, removed and changed (``DatasetDiff``); ``progress``
        hears of each column compared."""
        from reprocas.tabular.diff import diff_versions
        from reprocas.tabular.read import arrow_errors

        with arrow_errors(f"diff {ref_a} {ref_b}"):
            return diff_versions(
                self.store,
                self._read(ref_a, path),
                self._read(ref_b, path),
                path=path,
                key=key,
                limit=limit,
                progress=progress,
            )

    open = _ClassOrInstance(open_repo, open_file)
    """``Repo.open(path=None)`` opens a repository; ``repo.open(REF, PATH)`` opens a file
    of a version (see :meth:`open_repo` and :meth:`open_file`)."""

    # -- maintenance --------------------------------------------------------------------

    def verify(
        self,
        *,
        read_data: bool = False,
        read_data_subset: float | None = None,
        progress: Progress | None = None,
    ) -> verify_mod.VerifyReport:
        return verify_mod.verify(
            self.store, read_data=read_data, subset_pct=read_data_subset, progress=progress
        )

    def du(self, ref: str | None = None) -> accounting.DuReport:
        report = accounting.du(self.store)
        if ref is not None:
            v = self.resolve(ref)
            report.versions = [u for u in report.versions if u.id == v.id.hex]
            if not report.versions:
                raise PathNotInVersionError(f"{ref} has no usage entry")
        return report

    def frees_if_forgotten(self, ref: str) -> int:
        """Pack bytes a prune would free were ``ref`` alone forgotten (as `forget` counts)."""
        from reprocas.retention import config as cfg
        from reprocas.retention.budget import DEFAULT_MAX_UNUSED, frees_if_forgotten

        v = self.resolve(ref)
        mu = cfg.policy_from_config(self.store)[1]
        return frees_if_forgotten(
            self.store, v.id.raw, max_unused=DEFAULT_MAX_UNUSED if mu is None else mu
        )

    def gc(
        self,
        *,
        dry_run: bool = False,
        lease_wait: float | None = None,
        progress: Progress | None = None,
    ) -> gc_mod.GcReport:
        """Remove what failed writes left; ``lease_wait`` bounds the wait (seconds) for
        readers still using packs it removes (docs/FORMAT.md, read leases)."""
        from reprocas.store.lease import DEFAULT_LEASE_WAIT

        wait = DEFAULT_LEASE_WAIT if lease_wait is None else lease_wait
        return gc_mod.gc(self.store, dry_run=dry_run, lease_wait=wait, progress=progress)

    def rebuild_index(self, progress: Progress | None = None) -> rebuild_mod.RebuildReport:
        return rebuild_mod.rebuild(self.store, progress)

    def upgrade(self, *, dry_run: bool = False, progress: Progress | None = None) -> Any:
        """Upgrade a format-2 repository to format 3 in place (``reprocas upgrade``);
        returns a :class:`reprocas.store.upgrade.UpgradeReport`."""
        from reprocas.store.upgrade import upgrade

        return upgrade(self.store, dry_run=dry_run, progress=progress)

    # -- retention ----------------------------------------------------------------------

    def forget(
        self,
        policy: Any,
        *,
        datasets: tuple[str, ...] | list[str] = (),
        kinds: tuple[str, ...] | list[str] = (),
        dry_run: bool = False,
        now: Any = None,
        max_unused: float | None = None,
    ) -> Any:
        """Apply a retention ``Policy`` (reprocas.retention.policy): decide which versions
        to keep, and forget the others; returns a ``ForgetResult``."""
        from reprocas.retention.budget import DEFAULT_MAX_UNUSED
        from reprocas.retention.forget import forget

        return forget(
            self.store,
            policy,
            datasets=tuple(datasets),
            kinds=tuple(kinds),
            dry_run=dry_run,
            now=now,
            max_unused=DEFAULT_MAX_UNUSED if max_unused is None else max_unused,
        )

    def prune_plan(self, *, max_unused: float | None = None) -> Any:
        """What prune would delete and repack (a ``PrunePlan``; ``.execute()`` runs it)."""
        from reprocas.retention.budget import DEFAULT_MAX_UNUSED
        from reprocas.retention.prune import plan_prune

        return plan_prune(self.store, DEFAULT_MAX_UNUSED if max_unused is None else max_unused)

    def prune(
        self,
        *,
        max_unused: float | None = None,
        dry_run: bool = False,
        lease_wait: float | None = None,
    ) -> Any:
        """Plan a prune and (unless ``dry_run``) execute it; returns the plan, or the
        ``PruneReport`` of what was done. ``lease_wait`` bounds the wait (seconds) for
        readers that started before (their packs are left for the next prune after it)."""
        from reprocas.store.lease import DEFAULT_LEASE_WAIT

        plan = self.prune_plan(max_unused=max_unused)
        if dry_run:
            return plan
        return plan.execute(lease_wait=DEFAULT_LEASE_WAIT if lease_wait is None else lease_wait)

    def rm(
        self,
        refs: list[str] | tuple[str, ...],
        *,
        force: bool = False,
        dry_run: bool = False,
        purge: bool = False,
        lease_wait: float = 60.0,
        progress: Progress | None = None,
    ) -> Any:
        """Forget the named versions (a bare dataset name: all its versions); returns a
        ``RemoveResult``. Refused (``RemovalRefusedError``) for a version a kept run
        needs or a tag names, unless ``force`` (runs orphaned, tags deleted, all named
        in the result). With ``purge`` their bytes are deleted at once and the store is
        verified (``result.purge_report``); ``purge`` with no refs finishes earlier
        purges. ``lease_wait`` bounds the wait for readers still using old packs."""
        from reprocas.retention.remove import RemoveResult, remove

        if purge and not refs and not dry_run:
            result = RemoveResult([], False, force, True)
        else:
            result = remove(self.store, refs, force=force, dry_run=dry_run, purge=purge)
        if purge and not dry_run:
            result.purge_report = self.purge(lease_wait=lease_wait, progress=progress)
        return result

    def purge(self, *, lease_wait: float = 60.0, progress: Progress | None = None) -> Any:
        """Delete now the bytes of every version removed with ``purge`` (finishing a
        purge that was interrupted), prove them gone and verify; a ``PurgeReport``.
        ``progress`` hears of each pack examined, then of each pack verified."""
        from reprocas.retention.purge import purge as run_purge

        return run_purge(self.store, lease_wait=lease_wait, progress=progress)

    def forgotten(self) -> list[dict[str, Any]]:
        """Versions forgotten so far, with their metadata (their data may be pruned)."""
        from reprocas.retention.forget import list_forgotten

        return list_forgotten(self.store)

    # -- runs ---------------------------------------------------------------------------

    def replay(
        self,
        run: str,
        *,
        workdir: str | os.PathLike[str] | None = None,
        tolerance: float | None = None,
        allow_differ: list[str] | tuple[str, ...] = (),
        compare_table: list[str] | tuple[str, ...] = (),
        table_tolerance: float | None = None,
    ) -> Any:
        """Replay run ``run`` (``NAME`` — its latest original run —, ``NAME#N`` or an id
        prefix) in a fresh working directory and record the replay; returns a
        ``ReplayResult`` (``.verdict``, ``.differences``, ``.to_json()``). The rules
        are those of ``reprocas replay`` (docs/RUNS.md, "Replay")."""
        from reprocas.provenance.replay import DEFAULT_TOLERANCE, replay

        return replay(
            self.store,
            run,
            workdir=Path(workdir) if workdir is not None else None,
            tolerance=DEFAULT_TOLERANCE if tolerance is None else tolerance,
            allow_differ=tuple(allow_differ),
            compare_table=tuple(compare_table),
            table_tolerance=table_tolerance,
        )
