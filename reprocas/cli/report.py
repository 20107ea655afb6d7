"""`reprocas report`: the self-contained HTML provenance report."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Annotated

import typer

from reprocas.cli.common import JsonOpt, open_repo
from reprocas.cli.output import emit_json


def report(
    names: Annotated[
        list[str] | None, typer.Argument(help="Dataset or run names (default: everything).")
    ] = None,
    to: Annotated[Path, typer.Option("--to", help="The HTML file to write.")] = Path("report.html"),
    since: Annotated[
        str | None, typer.Option("--since", help="Only events from this date (ISO 8601).")
    ] = None,
    compare: Annotated[
        tuple[str, str] | None, typer.Option("--compare", help="Two runs to compare.")
    ] = None,
    prov: Annotated[
        Path | None, typer.Option("--prov", help="Also write W3C PROV-JSON here.")
    ] = None,
    as_json: Annotated[bool, JsonOpt] = False,
) -> None:
    """Write a self-contained HTML report: timeline, metrics, lineage, run comparison.

    One file with inline CSS and SVG, no script and no external fetch (a CSP forbids
    it); every user-written string is escaped. docs/REPORT.md describes it."""
    from reprocas.errors import InvalidParameterError
    from reprocas.report.build import build

    since_ns = None
    if since is not None:
        try:
            d = dt.datetime.fromisoformat(since)
        except ValueError as exc:
            raise InvalidParameterError(f"--since: not an ISO date: {since!r}") from exc
        if d.tzinfo is None:
            d = d.replace(tzinfo=dt.UTC)
        since_ns = int(d.timestamp() * 1e9)
    with open_repo() as repo:
        out = build(repo.store, list(names or []), to, since_ns=since_ns,
                    compare_refs=compare, prov_path=prov)  # fmt: skip
    if as_json:
        emit_json(out)
    else:
        typer.echo(f"{out['path']} ({out['bytes']} bytes, {out['versions']} versions, "
                   f"{out['runs']} runs)")  # fmt: skip
