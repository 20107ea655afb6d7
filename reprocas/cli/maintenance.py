"""Repository care: verify, du, gc, index rebuild."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from reprocas.cli.common import JsonOpt, open_repo
from reprocas.cli.completion import complete_dataset, complete_ref
from reprocas.cli.output import emit_json, human_bytes, stored_parts_text
from reprocas.errors import IntegrityError, InvalidParameterError

if TYPE_CHECKING:  # the rebuild package is imported by the commands that rebuild
    from reprocas.store.rebuild import RebuildReport

index_app = typer.Typer(help="The LMDB index.", no_args_is_help=True)


def verify(
    read_data: Annotated[
        bool, typer.Option("--read-data", help="Re-hash every stored chunk.")
    ] = False,
    read_data_subset: Annotated[
        float | None,
        typer.Option("--read-data-subset", help="Re-hash the chunks of PCT percent of the packs."),
    ] = None,
    as_json: Annotated[bool, JsonOpt] = False,
) -> None:
    """Check the repository; exit code 6 on any problem.

    By default checks structure: every version's objects and chunks are indexed, and
    every pack exists with a sound trailer. --read-data also re-hashes the data.
    """
    if read_data_subset is not None and not 0 < read_data_subset <= 100:
        raise InvalidParameterError(
            f"--read-data-subset takes a percentage in (0, 100], not {read_data_subset:g}"
        )
    from reprocas.cli.common import progress_bar

    reading = read_data or read_data_subset is not None
    with (
        open_repo() as repo,
        progress_bar("verifying", reading and not as_json, unit="pack") as bar,
    ):
        report = repo.verify(read_data=read_data, read_data_subset=read_data_subset, progress=bar)
    if as_json:
        emit_json(report.to_json())
    else:
        for p in report.problems:
            affects = f" (affects {', '.join(p.versions)})" if p.versions else ""
            typer.echo(f"PROBLEM {p.kind}: {p.message}{affects}", err=True)
        what = f"{report.versions} versions, {report.chunks} chunks, {report.packs} packs"
        if report.chunks_read:
            what += f", {report.chunks_read} chunks re-hashed"
        if report.remote_packs:
            what += f"; {report.remote_packs} packs are remote-backed (a lazy pull): " + (
                "read through the cache"
                if reading
                else "their data is on the remote, not checked (--read-data reads it)"
            )
        typer.echo(("ok: " if report.ok else f"{len(report.problems)} problems: ") + what)
    if not report.ok:
        raise typer.Exit(6)


def du(
    ref: Annotated[
        str | None, typer.Argument(help="Only this version.", autocompletion=complete_ref)
    ] = None,
    as_json: Annotated[bool, JsonOpt] = False,
) -> None:
    """What the store costs: logical and stored bytes, and what each version holds alone.

    Logical vs stored bytes, dedup and compression ratios,
    and the bytes that only each version holds.

    Stored bytes are the repository directory, shown as its parts: packs + index +
    other (ref log, config) — the same figure `forget` prints. With REF, also what
    forgetting that version alone would free at prune, counted as `forget` does.
    Example: reprocas du clinical@v1"""
    with open_repo() as repo:
        r = repo.du(ref)
        frees = repo.frees_if_forgotten(ref) if ref is not None else None
    if as_json:
        data = r.to_json()
        if ref is not None:
            v = r.versions[0]
            data = {
                **v.to_json(),
                "stored_bytes": r.stored_bytes,
                "stored": r.stored.to_json() if r.stored else None,
                "frees_if_forgotten": frees,
            }
        emit_json(data)
        return
    if ref is None:
        typer.echo(f"logical bytes      {r.logical_bytes:>14}  ({human_bytes(r.logical_bytes)})")
    typer.echo(f"stored bytes       {r.stored_bytes:>14}  ({human_bytes(r.stored_bytes)})")
    if r.stored is not None:
        typer.echo(f"  {stored_parts_text(r.stored)}")
    if ref is None:
        typer.echo(f"dedup ratio        {r.dedup_ratio:>14.2f}")
        typer.echo(f"compression ratio  {r.compression_ratio:>14.2f}")
    for v in r.versions:
        typer.echo(
            f"{v.ref:<28} logical {human_bytes(v.logical_bytes):>10}   "
            f"only here {human_bytes(v.exclusive_bytes):>10}"
        )
    if ref is None and r.versions:
        typer.echo(
            "(only here: the stored cost of chunks no other version or run reaches; "
            "`reprocas du REF` also shows what forgetting REF frees at prune)"
        )
    if frees is not None:
        typer.echo(
            f"forgetting it alone frees {frees} bytes ({human_bytes(frees)}) at prune "
            "(what `forget` counts: blobs only it needs, with trailers and repacks)"
        )


def gc(
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Say what would go; delete nothing.")
    ] = False,
    as_json: Annotated[bool, JsonOpt] = False,
) -> None:
    """Remove temporary files and packs that nothing references (what crashed commits left)."""
    from reprocas.cli.common import progress_bar

    with open_repo() as repo, progress_bar("checking packs", not as_json, unit="pack") as bar:
        r = repo.gc(dry_run=dry_run, progress=bar)
    if as_json:
        emit_json(r.to_json())
        return
    verb = "would remove" if dry_run else "removed"
    for p in r.removed_tmp + r.removed_packs:
        typer.echo(f"{verb} {p}")
    typer.echo(
        f"{verb} {len(r.removed_tmp)} temporary files and {len(r.removed_packs)} packs, "
        f"{human_bytes(r.freed_bytes)}"
    )
    if r.leased_packs:
        typer.echo(
            f"left {len(r.leased_packs)} packs ({human_bytes(r.leased_bytes)}) on disk: "
            "readers still use them (the next gc removes them)"
        )


def repack(
    deltas: Annotated[
        bool,
        typer.Option(
            "--deltas",
            help="Re-encode chunks of each dataset's history as deltas against the "
            "previous version's chunks (upgrades a format 1 repository to format 2).",
        ),
    ] = False,
    dataset: Annotated[
        list[str] | None,
        typer.Option(
            "--dataset",
            "-d",
            help="Only this dataset (repeatable); default all.",
            autocompletion=complete_dataset,
        ),
    ] = None,
    as_json: Annotated[bool, JsonOpt] = False,
) -> None:
    """Re-encode stored data (with --deltas: as deltas against earlier versions).

    With --deltas, chunks written before delta chunks existed
    (or whose deltas were lost) are stored again as deltas; `reprocas prune` then
    reclaims their old copies."""
    from reprocas.cli.common import progress_bar
    from reprocas.errors import RefNotFoundError, known_names
    from reprocas.store.repack import repack_deltas

    if not deltas:
        raise InvalidParameterError("nothing to do: say what to re-encode, e.g. `--deltas`")
    with open_repo() as repo, progress_bar("re-encoding", not as_json) as bar:
        with repo.store.index.read() as txn:
            known = set(repo.store.datasets(txn))
        for d in dataset or []:
            if d not in known:
                raise RefNotFoundError(
                    f"no dataset named {d!r}; "
                    + known_names(sorted(known), empty="the repository has none"),
                    ref=d,
                )
        r = repack_deltas(repo.store, list(dataset or []) or None, progress=bar)
    if as_json:
        emit_json(r.to_json())
        return
    if r.upgraded:
        typer.echo("upgraded the repository to format 2 (delta chunks)")
    typer.echo(
        f"re-encoded {r.chunks_reencoded} of {r.chunks_examined} candidate chunks as deltas "
        f"in {len(r.datasets)} datasets: {human_bytes(r.bytes_before)} -> "
        f"{human_bytes(r.bytes_after)}; run `reprocas prune` to reclaim the old copies"
    )


def upgrade(
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Say what would be written; change nothing.")
    ] = False,
    as_json: Annotated[bool, JsonOpt] = False,
) -> None:
    """Upgrade a format 2 repository to format 3 (content ids), in place.

    Every version, tag, forgotten version and run input is rewritten as format-3 trees
    and chunk maps over the same chunks (no data is re-read or re-stored); refs move to
    the new snapshot ids in one index transaction, and the old ids keep resolving
    (`reprocas show OLD_ID` says what each became). Runs are not rewritten.

    Crash-safe: killed at any moment, the repository opens as format 2 (run upgrade
    again) or as format 3 (an interrupted last step is finished by the next command).
    The format-2 trees and manifests stay in the packs until `reprocas gc` removes
    what nothing names any more. On a format 3 repository it does nothing."""
    from reprocas.cli.common import progress_bar

    with open_repo() as repo, progress_bar("upgrading", not as_json, unit="snapshot") as bar:
        r = repo.upgrade(dry_run=dry_run, progress=bar)
    if as_json:
        emit_json(r.to_json())
        return
    if r.already:
        typer.echo(f"already format {r.to_version}; nothing to do")
        return
    verb = "would write" if dry_run else "wrote"
    typer.echo(
        f"{verb} {r.snapshots} snapshots, {r.trees} trees, {r.chunkmaps} chunk maps and "
        f"{r.tables} table records"
        + ("" if dry_run else f" in {r.new_packs} new packs ({human_bytes(r.new_bytes)})")
    )
    for s in r.skipped:
        typer.echo(f"note: not stored, left as it is: {s}")
    if dry_run:
        typer.echo(f"would move the refs to the new ids and upgrade format {r.from_version} -> 3")
        return
    typer.echo(
        f"upgraded format {r.from_version} -> {r.to_version}: {r.refs} refs moved, "
        f"{r.aliases} old ids aliased, in {r.seconds:.2f}s; `reprocas gc` removes the "
        "format-2 objects nothing names any more"
    )


@index_app.command("rebuild")
def index_rebuild(as_json: Annotated[bool, JsonOpt] = False) -> None:
    """Rebuild the LMDB index from the packs and the ref log.

    Rebuilds chunks, objects, refs,
    the forgotten list, run summaries and provenance edges. Damage is reported and
    what can still be read is kept: damaged ref-log lines are skipped, versions the
    snapshots prove are recovered, damaged packs are salvaged, a damaged index is set
    aside. Exit code 6 when something could not be recovered."""
    from reprocas.cli.common import progress_bar

    with (
        open_repo(rebuilding=True) as repo,
        progress_bar("rebuilding", not as_json, unit="pack") as bar,
    ):
        r = repo.rebuild_index(bar)
    if as_json:
        emit_json(r.to_json())
        _rebuild_failed(r)
        return
    typer.echo(
        f"rebuilt index: {r.packs} packs, {r.chunks} chunks, {r.objects} objects, {r.refs} refs, "
        f"{r.runs} runs"
    )
    if r.broken_index:
        typer.echo(f"NOTE the damaged index was set aside as {r.broken_index}")
    for d in r.damaged_reflog_lines:
        typer.echo(
            f"PROBLEM ref log line {d.number} is damaged ({d.reason}) and was skipped; "
            "a tag or forget it recorded is lost"
        )
    for v in r.recovered_versions:
        typer.echo(f"NOTE {v} recovered from its snapshot (the ref log did not account for it)")
    for t in r.lost_tags:
        typer.echo(f"PROBLEM tag {t} is not restored: only the ref log knew where it points")
    for s in r.salvaged_packs:
        kept = f"{s.chunks} chunks and {s.objects} objects copied to {s.new_pack}"
        typer.echo(f"NOTE damaged pack {s.path} salvaged: {kept}; the file is kept as {s.moved_to}")
        for off, n, why in s.lost:
            typer.echo(f"PROBLEM {s.path}: {n} bytes at offset {off} are lost ({why})")
    for p in r.skipped_packs:
        typer.echo(f"PROBLEM damaged pack kept as is (its contents are unreadable): {p}")
    for v in r.missing_snapshots:
        typer.echo(f"PROBLEM {v}: its snapshot is in no readable pack")
    for run in r.missing_runs:
        typer.echo(f"PROBLEM run {run}: its record is in no readable pack")
    for draft in r.unfinished:
        typer.echo(
            f"NOTE {draft}: a commit that never moved its ref (or a version a ref log cut at a "
            "line boundary lost); not restored, its data is kept"
        )
    for u in r.unreadable:
        typer.echo(f"PROBLEM unreadable: {u}")
    _rebuild_failed(r)


def _rebuild_failed(r: RebuildReport) -> None:
    """Exit 6 (one line) when the rebuild could not recover everything."""
    lost = r.losses()
    if lost:
        raise IntegrityError(
            f"the index was rebuilt, but {'; '.join(lost)}; run `reprocas verify --read-data`"
        )
