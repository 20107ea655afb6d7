"""``reprocas export`` and ``reprocas import``: reproducible packages (docs/PACKAGES.md)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from reprocas.cli.common import JsonOpt, open_repo, progress_bar
from reprocas.cli.output import emit_json, human_bytes


def export(
    refs: Annotated[
        list[str],
        typer.Argument(
            metavar="RUN|REF...",
            help="Runs (NAME, NAME#N, id prefix) or dataset versions (NAME@vN) to package.",
        ),
    ],
    to: Annotated[Path, typer.Option("--to", help="The package (a .zip) to write.")],
    data: Annotated[
        str,
        typer.Option(
            "--data",
            help="include (default): the files' bytes; metadata-only: only names, sizes "
            "and digests (for data that may not leave the institution).",
        ),
    ] = "include",
    with_env: Annotated[
        str,
        typer.Option(
            "--with-env",
            help="full (default): the environment snapshots as stored; lock: only the "
            "lock file, requirements.txt and Dockerfile made from them.",
        ),
    ] = "full",
    with_report: Annotated[
        bool,
        typer.Option(
            "--with-report",
            help="Add data/report.html (`reprocas report` of the runs and their datasets); "
            "its bytes follow the repository's timeline, so a later replay changes them.",
        ),
    ] = False,
    as_json: Annotated[bool, JsonOpt] = False,
) -> None:
    """Write a reproducible package: a BagIt zip whose data/ is an RO-Crate of the runs.

    The package holds the code (commit + stored diff + stored files), the inputs'
    and outputs' files at their dataset paths, the canonical objects and a BLAKE3
    list (so `reprocas import` re-derives the same ids), README.md, REPRODUCING.md,
    CHECKLIST.md, CITATION.cff, requirements.txt and a Dockerfile. The same runs give a
    byte-identical zip. docs/PACKAGES.md describes the layout.
    """
    from reprocas.package.export import export as do_export

    with open_repo() as repo, progress_bar("exporting", not as_json) as bar:
        out = do_export(
            repo.store, list(refs), to, data=data, with_env=with_env, progress=bar,
            report=with_report,
        )  # fmt: skip
    if as_json:
        emit_json(out)
        return
    what = ", ".join(r["ref"] for r in out["runs"]) or ", ".join(v["ref"] for v in out["versions"])
    typer.echo(
        f"{out['package']}: {what} ({out['files']} files, {human_bytes(out['bytes'])}, "
        f"data {out['data']}, sha256 {out['sha256'][:16]})"
    )


def import_(
    package: Annotated[Path, typer.Argument(metavar="PKG.zip", help="The package to import.")],
    data_dir: Annotated[
        Path | None,
        typer.Option(
            "--data-dir",
            help="For a metadata-only package: a directory holding each version's files "
            "under NAME@vN/ (as the package's datasets/ would), obtained another way.",
        ),
    ] = None,
    max_members: Annotated[
        int,
        typer.Option(
            "--max-members",
            min=1,
            help="Refuse a package of more zip members than this (a bound on hostile "
            "archives; default 1000000).",
        ),
    ] = 1_000_000,
    as_json: Annotated[bool, JsonOpt] = False,
) -> None:
    """Import a package: check every checksum, re-derive every id, then store it all.

    Validates the bag (SHA-256 and SHA-512 of every file), checks every file against
    the package's BLAKE3 list, stores the files under this repository's chunking and
    the canonical objects, and re-derives the content ids, snapshot ids and run ids; a
    package that disagrees anywhere is refused naming the file, and nothing of it is
    kept. Then `reprocas replay RUN` replays a packaged run here. The package is read
    in bounded memory (its data staged under the repository's tmp/); a hostile zip (a
    zip bomb's ratio, sizes that lie, too many members, odd entries, more data than
    the disk has room for) is refused naming the member, before anything is stored.
    """
    from reprocas.package.importer import import_package

    with open_repo() as repo, progress_bar("importing", not as_json) as bar:
        out = import_package(
            repo.store, package, data_dir=data_dir, progress=bar, max_members=max_members
        )
    if as_json:
        emit_json(out)
        return
    for r in out["runs"]:
        typer.echo(f"run {r['ref']} {r['id'][:12]} {r['status']}")
    for v in out["versions"]:
        typer.echo(f"version {v['ref']} {v['id'][:12]} {v['status']}")
    typer.echo(
        f"imported {package}: {len(out['runs'])} run(s), {len(out['versions'])} version(s), "
        f"{out['files']} file(s), {human_bytes(out['new_bytes'])} new"
    )
