"""``reprocas check-dir``: whether a plain directory holds exactly a version's content."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from reprocas.cli.common import JsonOpt, open_repo
from reprocas.cli.output import emit_json


def check_dir(
    directory: Annotated[Path, typer.Argument(help="The directory to check.")],
    ref: Annotated[
        str | None,
        typer.Argument(help="The version it should hold (NAME@vN, NAME@TAG, id prefix)."),
    ] = None,
    manifest: Annotated[
        Path | None,
        typer.Option(
            "--manifest",
            help="Check against a content listing written by `reprocas show REF "
            "--manifest` instead of a version (no repository needed).",
        ),
    ] = None,
    package: Annotated[
        Path | None,
        typer.Option(
            "--package",
            "--against",
            help="Check against version REF as a package written by `reprocas export` "
            "lists it (metadata-only too; no repository needed; REF may be left out "
            "when the package holds one version).",
        ),
    ] = None,
    as_json: Annotated[bool, JsonOpt] = False,
) -> None:
    """Check that a plain directory holds exactly the content of a version.

    Compares names, kinds, modes (with the executable bit), sizes, BLAKE3 digests and
    link targets, reading only DIR and the version's trees. For format-3 content the
    content id is recomputed from DIR too.

    Exit status: 0 same, 1 differs, 2 or more an error.
    """
    from reprocas.ops.checkdir import (
        check_against_listing,
        check_against_package,
        check_against_ref,
        check_args,
    )

    check_args(ref, manifest, package)
    if package is not None:
        res = check_against_package(directory, package, ref)
    elif manifest is not None:
        res = check_against_listing(directory, manifest)
    else:
        assert ref is not None
        with open_repo() as repo:
            res = check_against_ref(repo.store, directory, ref)
    if as_json:
        emit_json(res.to_json())
    else:
        for line in res.render():
            typer.echo(line)
    if not res.same:
        raise typer.Exit(1)
