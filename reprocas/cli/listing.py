"""Listing commands: datasets and tags (what `git branch` and `git tag` are to git)."""

from __future__ import annotations

from typing import Annotated

import typer

from reprocas.cli.common import JsonOpt, open_repo
from reprocas.cli.completion import complete_dataset
from reprocas.cli.output import emit_json, human_bytes, plural, quote_name


def datasets(as_json: Annotated[bool, JsonOpt] = False) -> None:
    """List datasets: versions, latest version, its size, last change and tags.

    Environment snapshots (env/...) and run outputs (runs/...) are datasets too; KIND
    says which. Example: reprocas datasets --json
    """
    from reprocas.ops.listing import list_datasets

    with open_repo() as repo:
        rows = list_datasets(repo.store)
    if as_json:
        emit_json([r.to_json() for r in rows])
        return
    if not rows:
        typer.echo("no datasets yet; commit one with `reprocas commit SRC --dataset NAME`")
        return
    width = max(len(quote_name(r.name)) for r in rows)
    for r in rows:
        tags = f"  [{', '.join(r.tags)}]" if r.tags else ""
        kind = "" if r.kind == "dataset" else f"  ({r.kind})"
        typer.echo(
            f"{quote_name(r.name):<{width}}  {plural(r.versions, 'version'):>12}  "
            f"latest v{r.latest_ref.rpartition('@v')[2]} {r.latest_id[:12]}  "
            f"{human_bytes(r.logical_bytes):>10}  {r.last_change}{tags}{kind}"
        )


def tags(
    dataset: Annotated[
        str | None,
        typer.Argument(
            help="Only this dataset's tags (default: every dataset's).",
            autocompletion=complete_dataset,
        ),
    ] = None,
    as_json: Annotated[bool, JsonOpt] = False,
) -> None:
    """List tags and the versions they name (DATASET@TAG -> DATASET@vN).

    Example: reprocas tags clinical
    """
    from reprocas.ops.listing import list_tags

    with open_repo() as repo:
        rows = list_tags(repo.store, dataset)
    if as_json:
        emit_json([r.to_json() for r in rows])
        return
    if not rows:
        typer.echo("no tags yet; add one with `reprocas tag REF NAME`")
        return
    width = max(len(quote_name(f"{r.dataset}@{r.tag}")) for r in rows)
    for r in rows:
        typer.echo(
            f"{quote_name(f'{r.dataset}@{r.tag}'):<{width}}  -> {r.ref}  {r.id[:12]}  {r.time}"
        )
