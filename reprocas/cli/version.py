"""``reprocas version`` and ``reprocas --version``."""

from __future__ import annotations

from typing import Annotated

import typer

from reprocas.cli.common import JsonOpt
from reprocas.cli.output import emit_json


def show_version(as_json: bool = False) -> None:
    from reprocas.ops.version import render, version_info

    info = version_info()
    if as_json:
        emit_json(info)
        return
    for line in render(info):
        typer.echo(line)


def version(as_json: Annotated[bool, JsonOpt] = False) -> None:
    """Print the version, the formats it reads and writes, and the native build.

    The storage formats this reprocas reads, writes and creates, and whether the native
    core is a release or a debug build. Needs no repository."""
    show_version(as_json)


def version_option(value: bool) -> None:
    """The eager ``--version`` of the top-level command."""
    if value:
        show_version()
        raise typer.Exit(0)
