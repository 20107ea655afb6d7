"""``reprocas debug …``: plumbing commands for checking the engine from the shell."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from reprocas.cli.output import human_bytes
from reprocas.model import ChunkingConfig
from reprocas.model.chunking import DEFAULT_AVG_SIZE, DEFAULT_MAX_SIZE, DEFAULT_MIN_SIZE

app = typer.Typer(help="Plumbing commands for checking the engine from the shell.")


@app.command("chunk")
def chunk(
    file: Annotated[Path, typer.Argument(help="The file to cut into chunks.")],
    min_size: Annotated[int, typer.Option("--min", help="Minimum chunk size in bytes.")] = (
        DEFAULT_MIN_SIZE
    ),
    avg_size: Annotated[int, typer.Option("--avg", help="Average chunk size in bytes.")] = (
        DEFAULT_AVG_SIZE
    ),
    max_size: Annotated[int, typer.Option("--max", help="Maximum chunk size in bytes.")] = (
        DEFAULT_MAX_SIZE
    ),
    seed: Annotated[int, typer.Option(help="Gear-table seed (0: the default table).")] = 0,
    threads: Annotated[int, typer.Option(help="Worker threads (0: one per core).")] = 0,
    as_json: Annotated[
        bool,
        typer.Option(
            "--json",
            help='Print {"file_digest": hex, "chunks": [{"offset", "length", "digest"}]}.',
        ),
    ] = False,
) -> None:
    """Cut FILE with FastCDC and hash every chunk and the whole file with BLAKE3-256."""
    from reprocas.ops.debug import chunk_report

    config = ChunkingConfig(min_size, avg_size, max_size, seed)
    report = chunk_report(file, config, threads=threads)
    if as_json:
        sys.stdout.write(report.to_json_text())
        sys.stdout.write("\n")
        return
    n = len(report.lengths)
    rate = report.size / report.seconds / 1e6 if report.seconds > 0 else float("inf")
    typer.echo(f"file     {report.path}")
    typer.echo(f"size     {report.size} bytes ({human_bytes(report.size)})")
    typer.echo(f"digest   {report.file_digest.hex()}")
    typer.echo(f"params   min={min_size} avg={avg_size} max={max_size} seed={seed}")
    if n:
        typer.echo(
            f"chunks   {n}  (mean {human_bytes(report.size / n)}, "
            f"smallest {human_bytes(min(report.lengths))}, "
            f"largest {human_bytes(max(report.lengths))})"
        )
    else:
        typer.echo("chunks   0 (empty file)")
    typer.echo(f"speed    {rate:.0f} MB/s ({report.seconds:.3f} s)")
