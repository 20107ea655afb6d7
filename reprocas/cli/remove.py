"""``reprocas rm``: forget named versions, and with --purge delete their bytes now."""

from __future__ import annotations

from typing import Annotated

import typer

from reprocas.cli.common import JsonOpt, open_repo
from reprocas.cli.output import emit_json, human_bytes


def rm(
    refs: Annotated[
        list[str] | None,
        typer.Argument(
            help="Versions: DATASET (all its versions), DATASET@vN, DATASET@TAG, "
            "DATASET@latest or an id prefix.",
            show_default=False,
        ),
    ] = None,
    force: Annotated[
        bool,
        typer.Option(
            "--force",
            help="Remove versions that kept runs used, produced or ran in (the runs are "
            "orphaned, and named) or that tags name (the tags are deleted).",
        ),
    ] = False,
    purge: Annotated[
        bool,
        typer.Option(
            "--purge",
            help="Delete their bytes now and prove it: no pack keeps a chunk or object "
            "only removed versions used (delta chunks are rewritten); then verify. "
            "Without versions: finish earlier purges.",
        ),
    ] = False,
    lease_wait: Annotated[
        float,
        typer.Option(
            "--lease-wait",
            help="With --purge: seconds to wait for readers still using old packs.",
        ),
    ] = 60.0,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Say what would be removed; change nothing.")
    ] = False,
    as_json: Annotated[bool, JsonOpt] = False,
) -> None:
    """Forget named versions; with --purge delete their bytes at once.

    For consent withdrawn or a wrong extract: the versions leave `log`, their tags go,
    and their bytes go at the next prune, or at once with --purge.

    Refused (exit code 2, nothing changed) for a version a kept run needs or a tag
    names, unless --force. A removed number is never given again; the version's
    record stays (Repo.forgotten()) and `index rebuild` keeps it removed.
    """
    from reprocas.cli.common import progress_bar

    bar_on = purge and not dry_run and not as_json
    with open_repo() as repo, progress_bar("purging", bar_on, unit="pack") as bar:
        result = repo.rm(
            refs or [],
            force=force,
            dry_run=dry_run,
            purge=purge,
            lease_wait=lease_wait,
            progress=bar,
        )
    if as_json:
        emit_json(result.to_json())
        return
    verb = "would remove" if dry_run else "removed"
    for t in result.targets:
        needs = t.needs()
        typer.echo(f"{verb} {t.ref:<28} {t.id[:12]}" + (f"  ({'; '.join(needs)})" if needs else ""))
    for tag in result.deleted_tags:
        typer.echo(f"{'would delete' if dry_run else 'deleted'} tag {tag}")
    if result.orphaned_runs:
        typer.echo(
            f"{'would orphan' if dry_run else 'orphaned'} runs: {', '.join(result.orphaned_runs)}"
            + ("" if purge else " (they keep the removed data until it is purged)")
        )
    if dry_run:
        typer.echo("dry run: nothing removed")
        return
    p = result.purge_report
    if p is None:
        typer.echo(
            f"{len(result.removed)} versions removed; their bytes go at the next "
            "`reprocas prune` (or now with `reprocas rm --purge`)"
        )
        return
    size = (
        f"freed {p.freed_bytes} bytes ({human_bytes(p.freed_bytes)})"
        if p.freed_bytes >= 0
        else f"the store grew by {-p.freed_bytes} bytes (kept delta chunks stored whole)"
    )
    typer.echo(
        f"purged: {p.chunks_purged} chunks and {p.objects_purged} objects are gone "
        f"(versions removed with --purge: {', '.join(p.versions) or 'none'}); deleted "
        f"{len(p.deleted)} packs, rewrote {len(p.rewritten)}, {p.reencoded_chunks} kept "
        f"delta chunks stored anew; {size}"
    )
    if p.shared_chunks:
        typer.echo(
            f"{p.shared_chunks} chunks the removed versions used stay: kept versions or "
            "runs hold the same bytes (stored once, they go only with the last holder)"
        )
    typer.echo(
        f"checked: every pack file ({p.packs_checked}) holds only what kept versions and "
        f"runs use; {p.index_records} index records and {p.filecache_entries} files-cache "
        "entries that named purged data removed"
    )
    typer.echo(
        f"verified: {p.verify['versions']} versions, {p.verify['packs']} packs, "
        f"{p.verify['chunks_read']} chunks read: ok"
    )
