"""`reprocas report`: the self-contained HTML provenance report."""

from __future__ import annotations

import sys
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
    json_data: Annotated[
        str | None,
        typer.Option(
            "--json-data",
            metavar="PATH",
            help="Also write the report's full data (every event; the page embeds a "
            "summary) here, for scripts; '-' prints it on stdout.",
        ),
    ] = None,
    as_json: Annotated[bool, JsonOpt] = False,
) -> None:
    """Write a self-contained HTML report: timeline, metrics, lineage, run comparison.

    One file with inline CSS and SVG, no script and no external fetch (a CSP forbids
    it); every user-written string is escaped. docs/REPORT.md describes it."""
    from reprocas.errors import InvalidParameterError
    from reprocas.report.build import build, data_json, parse_since

    to_stdout = json_data == "-"
    if to_stdout and as_json:
        raise InvalidParameterError("--json-data - and --json both print on stdout; pick one")
    since_ns = parse_since(since)
    with open_repo() as repo:
        out = build(repo.store, list(names or []), to, since_ns=since_ns, compare_refs=compare,
                    prov_path=prov, json_data_path=None if to_stdout or json_data is None
                    else Path(json_data))  # fmt: skip
    if to_stdout:
        sys.stdout.write(data_json(out.data))
    elif as_json:
        emit_json(out.to_json())
    else:
        typer.echo(f"{out.path} ({out.bytes} bytes, {out.versions} versions, {out.runs} runs)")
