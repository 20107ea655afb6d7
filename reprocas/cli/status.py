"""`reprocas status`: what changed in a working directory since its version; and the
plan `commit --dry-run` prints."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from reprocas.cli.common import JsonOpt, open_repo, progress_bar
from reprocas.cli.completion import complete_dataset
from reprocas.cli.output import emit_json, human_bytes, plural, quote_name
from reprocas.errors import ReprocasError

# Paths listed per kind of change before "… and N more" (all of them with --json).
_SHOWN = 50


def status(
    path: Annotated[
        Path, typer.Argument(help="The working directory or file (default: the current one).")
    ] = Path("."),
    dataset: Annotated[
        str | None,
        typer.Option(
            "--dataset",
            "-d",
            help="Compare with this dataset (default: the one PATH was "
            "committed as, recorded by `commit`).",
            autocompletion=complete_dataset,
        ),
    ] = None,
    as_json: Annotated[bool, JsonOpt] = False,
) -> None:
    """Show what changed in PATH since the version it was committed as.

    Files added, removed and changed; for tables, rows before and after and whether
    the schema changed. Unchanged files are not read again (the files cache).
    Outputs that runs recorded in PATH but that hold something no run produced are
    listed as unrecorded (a project directory that is no dataset shows only those).
    Exit code 0 when clean, 1 when something changed, 2 on any error.
    Example: reprocas status data/ && echo clean
    """
    from reprocas.errors import RefNotFoundError
    from reprocas.ops.status import status as compare
    from reprocas.provenance.adopt import unrecorded_outputs

    st = None
    try:
        with open_repo() as repo:
            loose = unrecorded_outputs(repo.store, path) if path.is_dir() else []
            try:
                with progress_bar("comparing", not as_json) as bar:
                    st = compare(repo.store, path, dataset, progress=bar)
            except RefNotFoundError:
                # a project directory that is no dataset: only its runs' outputs
                if dataset is not None or not _has_runs_here(repo.store, path):
                    raise
    except ReprocasError as err:
        err.exit_code = 2  # scripts tell "changed" (1) from "could not tell" (2)
        raise
    if as_json:
        emit_json({**(st.to_json() if st else {"path": str(path.resolve())}),
                   "unrecorded_outputs": loose})  # fmt: skip
    else:
        if st is not None:
            _print(st)
        _print_loose(path, loose, st is None)
    if (st is not None and not st.clean) or loose:
        raise typer.Exit(1)


def _has_runs_here(repo: object, path: Path) -> bool:
    import os

    from reprocas.provenance.names import iter_runs, load_run
    from reprocas.store.repository import Repository

    assert isinstance(repo, Repository)
    here = os.fsdecode(path.resolve())
    with repo.index.read() as txn:
        return any(load_run(repo, txn, h.id).cwd == here for h in iter_runs(repo, txn))


def _print_loose(path: Path, loose: list[dict[str, str]], alone: bool) -> None:
    if alone and not loose:
        typer.echo(f"{path.resolve()}: every output a run recorded here is what it produced")
    for o in loose[:_SHOWN]:
        typer.echo(
            f"unrecorded {quote_name(o['path'])}  (no run produced this; last written by "
            f"run {o['last_run']}; record it with `reprocas adopt` or `reprocas run`)"
        )
    if len(loose) > _SHOWN:
        typer.echo(f"unrecorded … and {len(loose) - _SHOWN} more (all with --json)")


def _print(st: object) -> None:
    from reprocas.ops.status import Status

    assert isinstance(st, Status)
    against = f"{st.ref} ({(st.id or '')[:12]})" if st.ref else f"{st.dataset} (no versions yet)"
    typer.echo(f"{st.path} against {against}")
    if st.pin is not None:
        pin = st.pin
        typer.echo(f"  pinned: {pin['ref']} (note {pin['note'][:12]}): {pin['reason']}")
        if not pin["latest_is_pinned"]:
            typer.echo(f"  warning: {st.ref} is not the pinned version {pin['ref']}")
    if st.clean:
        typer.echo("  clean: nothing changed")
        return
    typer.echo(
        f"  {len(st.added)} added, {len(st.removed)} removed, {len(st.changed)} changed"
        f" ({plural(st.hashed, 'file')} read, {st.cached} vouched for by the files cache)"
    )
    for label, paths in (("added", st.added), ("removed", st.removed), ("changed", st.changed)):
        for p in paths[:_SHOWN]:
            note = ""
            t = st.tables.get(p)
            if t is not None:
                note = f"  rows {t.rows[0]} -> {t.rows[1] if t.rows[1] is not None else '?'}"
                note += ", schema changed" if t.schema_changed else ""
            typer.echo(f"{label:<8} {quote_name(p)}{note}")
        if len(paths) > _SHOWN:
            typer.echo(f"{label:<8} … and {len(paths) - _SHOWN} more (all with --json)")


def commit_dry_run(src: Path, dataset: str | None, as_json: bool) -> None:
    """What `commit SRC` would store, without storing anything."""
    from reprocas.ops.status import status as compare

    with open_repo() as repo, progress_bar("comparing", not as_json) as bar:
        st = compare(repo.store, src, dataset, allow_new=dataset is not None, progress=bar)
    if as_json:
        emit_json({**st.to_json(), "dry_run": True})
        return
    _print(st)
    if st.clean:
        typer.echo(f"dry run: nothing would be committed ({st.ref} is the same)")
    else:
        typer.echo(
            f"dry run: would commit {st.dataset}@v{_next(st.ref)}; at most "
            f"{human_bytes(st.new_bytes_estimate)} new (the added and changed files, before "
            "deduplication and compression)"
        )


def _next(ref: str | None) -> int:
    return int(ref.rpartition("@v")[2]) + 1 if ref else 1
