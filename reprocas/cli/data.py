"""Dataset commands: init, commit, log, show, ls, cat, tag, checkout."""

from __future__ import annotations

import errno
import os
import sys
from pathlib import Path
from typing import Annotated

import typer

from reprocas.cli.common import STATE, JsonOpt, open_repo, progress_bar
from reprocas.cli.completion import complete_dataset, complete_ref
from reprocas.cli.output import cell_text, emit_json, human_bytes, plural, quote_name
from reprocas.errors import IntegrityError, StorageIOError
from reprocas.model.chunking import DEFAULT_MAX_DEPTH, DeltaConfig


def init(
    path: Annotated[
        Path | None,
        typer.Argument(help="Directory to make a repository (default: ./.reprocas)."),
    ] = None,
    deltas: Annotated[
        bool,
        typer.Option(
            "--deltas/--no-deltas",
            help="Store new chunks of changed files as deltas against the previous "
            "version's (docs/FORMAT.md, format 2).",
        ),
    ] = True,
    max_depth: Annotated[
        int,
        typer.Option("--delta-depth", help="Longest chain of deltas a chunk may need (1-16)."),
    ] = DEFAULT_MAX_DEPTH,
    format_: Annotated[
        int | None,
        typer.Option(
            "--format",
            help="Storage format: 2 (the default) or 3, where a version's content id "
            "depends only on its files, not on chunking (docs/FORMAT.md, format 3).",
        ),
    ] = None,
    as_json: Annotated[bool, JsonOpt] = False,
) -> None:
    """Create a repository: PATH, or .reprocas/ in the current directory."""
    from reprocas.api import Repo

    target = path if path is not None else (Path(STATE.repo_path) if STATE.repo_path else None)
    repo = Repo.init(
        target, deltas=DeltaConfig(enabled=deltas, max_depth=max_depth), format=format_
    )
    try:
        if as_json:
            emit_json({"path": str(repo.root), "format": repo.store.format_version})
        else:
            typer.echo(f"Initialised empty reprocas repository in {repo.root}")
    finally:
        repo.close()


def commit(
    src: Annotated[Path, typer.Argument(help="A directory or a file to commit.")],
    dataset: Annotated[
        str | None,
        typer.Option(
            "--dataset",
            "-d",
            help="Dataset name (default: the dataset SRC was last committed as, on this host).",
            autocompletion=complete_dataset,
        ),
    ] = None,
    message: Annotated[str, typer.Option("--message", "-m", help="Why this version.")] = "",
    tag: Annotated[
        list[str] | None, typer.Option("--tag", "-t", help="Tag the version (repeatable).")
    ] = None,
    step: Annotated[
        str | None, typer.Option(help="The transformation that produced this version.")
    ] = None,
    from_: Annotated[
        list[str] | None,
        typer.Option(
            "--from",
            help="A version this one was derived from (repeatable): recorded as a "
            "derived-from edge, shown by `reprocas lineage`.",
        ),
    ] = None,
    allow_changing: Annotated[
        bool,
        typer.Option(
            "--allow-changing",
            help="Store files that change while they are read as they were read "
            "(recorded in the version, with a warning) instead of failing.",
        ),
    ] = False,
    dry_run: Annotated[
        bool,
        typer.Option(
            "--dry-run",
            help="Say what would be stored (files added, removed, changed) and at most how "
            "many bytes are new; store nothing.",
        ),
    ] = False,
    as_json: Annotated[bool, JsonOpt] = False,
) -> None:
    """Commit SRC as the next version of a dataset (NAME@v1, @v2, ...).

    A new version is made only if the content differs from the latest one. Files
    unchanged since the last commit are not read again. Without --dataset, SRC's own
    dataset (recorded by its last commit) is used.
    """
    from reprocas.cli.status import commit_dry_run

    if dry_run:
        commit_dry_run(src, dataset, as_json)
        return
    with open_repo() as repo, progress_bar("committing", not as_json) as bar:
        if dataset is None:
            from reprocas.ops.status import dataset_for

            dataset = dataset_for(repo.store, src)
        r = repo.commit(
            src,
            dataset,
            message=message,
            tags=tuple(tag or ()),
            step=step,
            progress=bar,
            derived_from=tuple(from_ or ()),
            allow_changing=allow_changing,
        )
    for p in r.changed:
        typer.echo(
            f"warning: {p} changed while it was being read; the version holds what was "
            "read (recorded as changed_during_read)",
            err=True,
        )
    if as_json:
        emit_json(
            {
                "ref": r.ref,
                "id": r.id.hex,
                "created": r.created,
                "files": r.files,
                "logical_bytes": r.logical_bytes,
                "new_bytes": r.new_bytes,
                "skipped": list(r.skipped),
                "changed_during_read": list(r.changed),
            }
        )
        return
    if r.created:
        typer.echo(f"{r.ref}  {r.id.short}")
    else:
        typer.echo(f"nothing changed: {src} equals {r.ref} ({r.id.short}); no new version")
    typer.echo(
        f"  {plural(r.files, 'file')}, {human_bytes(r.logical_bytes)} logical, "
        f"{human_bytes(r.new_bytes)} new in the store"
    )
    for p in r.skipped:
        typer.echo(f"  skipped (not a file, directory or link): {p}", err=True)


def log(
    dataset: Annotated[
        str | None,
        typer.Argument(
            help="Dataset (default: all); with --timeline, a dataset or run name.",
            autocompletion=complete_dataset,
        ),
    ] = None,
    timeline: Annotated[
        bool,
        typer.Option(
            "--timeline",
            help="One time-ordered stream of versions, environment, code and parameter "
            "changes, run results and notes (oldest first).",
        ),
    ] = False,
    as_json: Annotated[bool, JsonOpt] = False,
) -> None:
    """List versions, newest first; with --timeline, everything that happened, in order."""
    if timeline:
        _timeline(dataset, as_json)
        return
    with open_repo() as repo:
        entries = repo.log(dataset)
    damaged = [e.ref for e in entries if e.damaged]
    if as_json:
        emit_json([e.to_json() for e in entries])
        _fail_if_damaged(damaged)
        return
    if not entries:
        typer.echo("no versions yet; commit one with `reprocas commit SRC --dataset NAME`")
    for e in entries:
        tags = f" [{', '.join(e.tags)}]" if e.tags else ""
        typer.echo(f"{e.ref:<24} {e.id[:12]}  {e.time}  {human_bytes(e.logical_bytes):>10}{tags}")
        if e.message:
            typer.echo(f"    {e.message}")
        if e.step:
            typer.echo(f"    step: {e.step}")
    _fail_if_damaged(damaged)


def _timeline(name: str | None, as_json: bool) -> None:
    from reprocas.provenance.timeline import render, timeline

    with open_repo() as repo:
        events = timeline(repo.store, name, notes=True)
    if as_json:
        emit_json([e.to_json() for e in events])
        return
    for line in render(events):
        typer.echo(line)


def _fail_if_damaged(refs: list[str]) -> None:
    if refs:
        raise IntegrityError(
            f"{len(refs)} version(s) are damaged ({', '.join(refs[:5])}); "
            "run `reprocas verify` to see what is affected"
        )


def show(
    ref: Annotated[
        str,
        typer.Argument(
            help="NAME, NAME@vN, NAME@TAG, NAME@latest or id prefix.", autocompletion=complete_ref
        ),
    ],
    path: Annotated[
        str | None,
        typer.Option("--path", help="Show one file: for a table, its schema and row count."),
    ] = None,
    manifest: Annotated[
        bool,
        typer.Option(
            "--manifest",
            help="Print the version's content listing as JSON (paths, modes, sizes, "
            "digests, link targets, content id), for `check-dir --manifest`.",
        ),
    ] = False,
    as_json: Annotated[bool, JsonOpt] = False,
) -> None:
    """Show one version (or, with --path, one file of it)."""
    if manifest:
        with open_repo() as repo:
            emit_json(repo.content_listing(ref))
        return
    if path is not None:
        _show_path(ref, path, as_json)
        return
    from reprocas.cli.notes import note_lines
    from reprocas.notes.store import notes_for

    with open_repo() as repo:
        e = repo.show(ref)
        notes = notes_for(repo.store, [e.id])[e.id]
    if as_json:
        emit_json({**e.to_json(), "notes": [n.to_json() for n in notes]})
        return
    if e.aliased_from:
        typer.echo(f"snapshot {e.aliased_from} was upgraded to {e.id} (format 3)")
    typer.echo(f"ref       {e.ref}")
    typer.echo(f"id        {e.id}")
    note = "" if e.content_ids else "  (format 1/2: depends on chunking)"
    typer.echo(f"content   {e.content_id}{note}")
    typer.echo(f"time      {e.time}")
    typer.echo(f"author    {e.author}")
    typer.echo(f"files     {e.files}")
    typer.echo(f"size      {e.logical_bytes} bytes ({human_bytes(e.logical_bytes)})")
    typer.echo(f"tags      {', '.join(e.tags) or '-'}")
    typer.echo(f"parent    {e.parent or '-'}")
    typer.echo(f"step      {e.step or '-'}")
    typer.echo(f"message   {e.message or '-'}")
    if notes:
        typer.echo("notes")
        for line in note_lines(notes):
            typer.echo(line)


def _show_path(ref: str, path: str, as_json: bool) -> None:
    import pyarrow as pa

    with open_repo() as repo:
        v = repo.resolve(ref)
        [entry] = repo.ls(ref, path)
        record = repo.table_info(ref, path) if entry.kind == "file" else None
    info: dict[str, object] = {
        "ref": v.ref,
        "path": entry.path,
        "kind": entry.kind,
        "size": entry.size,
        "table": None,
    }
    schema = None
    if record is not None:
        schema = pa.ipc.read_schema(pa.py_buffer(record.schema))
        info["table"] = {
            "format": record.format,
            "rows": record.rows,
            "columns": [{"name": f.name, "type": str(f.type)} for f in schema],
            "schema_fingerprint": record.fingerprint.hex(),
            "row_groups": [{"rows": r, "bytes": b} for r, b in record.row_groups],
        }
    if as_json:
        emit_json(info)
        return
    typer.echo(f"ref       {v.ref}")
    typer.echo(f"path      {entry.path}")
    typer.echo(f"size      {entry.size} bytes ({human_bytes(entry.size)})")
    if record is None or schema is None:
        typer.echo(f"table     - ({entry.kind}, not a table)")
        return
    typer.echo(f"table     {record.format}, {record.rows} rows, {len(schema)} columns")
    typer.echo(f"schema    fingerprint {record.fingerprint.hex()[:16]}")
    for f in schema:
        typer.echo(f"  {f.name:<24} {f.type}")
    if record.row_groups:
        typer.echo(
            f"row groups {len(record.row_groups)}: "
            + ", ".join(f"{r} rows" for r, _ in record.row_groups[:8])
            + (" …" if len(record.row_groups) > 8 else "")
        )


def export_table(
    ref: Annotated[str, typer.Argument(help="The version.", autocompletion=complete_ref)],
    path: Annotated[str, typer.Argument(help="The table in it.")],
    to: Annotated[Path, typer.Option("--to", help="The file to write.")],
    fmt: Annotated[
        str | None,
        typer.Option(
            "--format",
            help="parquet, arrow or csv (default: from --to's suffix: .parquet/.pq, "
            ".arrow/.feather/.ipc, .csv; another suffix is refused).",
        ),
    ] = None,
    force: Annotated[
        bool, typer.Option("--force", help="Overwrite --to if it exists (refused otherwise).")
    ] = False,
    as_json: Annotated[bool, JsonOpt] = False,
) -> None:
    """Write one table of a version to a local file, read exactly as committed.

    Example: reprocas export-table clinical@v2 visits.parquet --to v2.csv
    """
    with open_repo() as repo, progress_bar("exporting", not as_json, unit="table") as bar:
        out = repo.export_table(ref, path, to, fmt, force=force, progress=bar)
        rows = repo.table_info(ref, path)
    n = rows.rows if rows is not None else None
    if as_json:
        emit_json({"ref": ref, "path": path, "to": str(out), "rows": n})
    else:
        typer.echo(f"{ref}:{path} -> {out} ({n} rows)")


def diff(
    ref_a: Annotated[
        str, typer.Argument(help="The older version (or run).", autocompletion=complete_ref)
    ],
    ref_b: Annotated[
        str, typer.Argument(help="The newer version (or run).", autocompletion=complete_ref)
    ],
    path: Annotated[
        str | None, typer.Option("--path", help="Versions only: only this file or directory.")
    ] = None,
    key: Annotated[
        str | None,
        typer.Option(
            "--key", help="Versions only: key column(s), comma-separated: diff tables row by row."
        ),
    ] = None,
    limit: Annotated[
        int, typer.Option("--limit", help="Versions only: sample changed rows to show.")
    ] = 5,
    as_json: Annotated[bool, JsonOpt] = False,
) -> None:
    """What changed between two dataset versions, or between two runs.

    Two dataset versions (NAME@vN, NAME@TAG, id prefix): files added, removed and
    changed; for tables, schema changes and row counts; with --key, rows added,
    removed and changed. --path, --key and --limit apply to versions only.
    Example: reprocas diff clinical@v1 clinical@v2 --key encounter_id

    Two runs (NAME, NAME#N or run id prefix): what differs between the runs:
    params, inputs, environment, code, metrics, outputs and run time.
    Example: reprocas diff train#1 train#2"""
    from reprocas.cli.runs import diff_if_runs

    if path is None and key is None and diff_if_runs(ref_a, ref_b, as_json):
        return
    keys = [k.strip() for k in key.split(",") if k.strip()] if key else None
    bar_on = keys is not None and not as_json
    with open_repo() as repo, progress_bar("comparing rows", bar_on, unit="column") as bar:
        d = repo.diff(ref_a, ref_b, path=path, key=keys, limit=limit, progress=bar)
    if as_json:
        emit_json(d.to_json())
        return
    typer.echo(f"{d.a} -> {d.b}")
    counts: dict[str, int] = {}
    for f in d.files.values():
        counts[f.status] = counts.get(f.status, 0) + 1
    typer.echo("  " + ", ".join(f"{n} {s}" for s, n in sorted(counts.items())))
    for p, f in d.files.items():
        if f.status == "same" and not f.rows:
            continue
        a, b = f.bytes
        sa = human_bytes(a) if a is not None else "-"
        sb = human_bytes(b) if b is not None else "-"
        sizes = f"{sa} -> {sb}"
        typer.echo(f"{f.status:<8} {quote_name(p)}  ({sizes})")
        if f.note:
            typer.echo(f"         {f.note}")
        if f.schema and any(f.schema.values()):
            sch = f.schema
            if sch["added"]:
                typer.echo(f"         columns added: {', '.join(sch['added'])}")
            if sch["removed"]:
                typer.echo(f"         columns removed: {', '.join(sch['removed'])}")
            for c, (ta, tb) in sch["retyped"].items():
                typer.echo(f"         column {c}: {ta} -> {tb}")
        if f.row_counts:
            typer.echo(f"         rows {f.row_counts[0]} -> {f.row_counts[1]}")
        if f.rows:
            r = f.rows
            typer.echo(
                f"         by key: {r['added']} added, {r['removed']} removed, "
                f"{r['changed']} changed"
            )
            for c, n in sorted(r["columns"].items(), key=lambda kv: -kv[1]):
                typer.echo(f"           {c}: {n} rows")
            for sample in r["samples"]:
                key_text = ", ".join(f"{k}={cell_text(v)}" for k, v in sample["key"].items())
                ch = "; ".join(
                    f"{c}: {cell_text(x)} -> {cell_text(y)}"
                    for c, (x, y) in sample["changes"].items()
                )
                typer.echo(f"           {key_text}  {ch}")


def ls(
    ref: Annotated[str, typer.Argument(help="The version.", autocompletion=complete_ref)],
    path: Annotated[str, typer.Argument(help="A directory or file in it.")] = "",
    recursive: Annotated[
        bool, typer.Option("--recursive", "-r", help="List subdirectories.")
    ] = False,
    as_json: Annotated[bool, JsonOpt] = False,
) -> None:
    """List the files of a version."""
    with open_repo() as repo:
        entries = repo.ls(ref, path, recursive=recursive)
    if as_json:
        emit_json([e.to_json() for e in entries])
        return
    for e in entries:
        extra = f" -> {quote_name(e.target)}" if e.target is not None else ""
        typer.echo(f"{e.mode:04o} {e.size:>12}  {quote_name(e.path)}{extra}")


def cat(
    ref: Annotated[str, typer.Argument(help="The version.", autocompletion=complete_ref)],
    path: Annotated[str, typer.Argument(help="The file in it.")],
) -> None:
    """Write one file of a version to standard output (verified as it is read)."""
    with open_repo() as repo:
        sys.stdout.flush()
        try:
            repo.cat_to(ref, path, sys.stdout.fileno())
        except StorageIOError as exc:
            if getattr(exc, "errno", None) != errno.EPIPE:
                raise
            # The reader went away (`| head`): stop quietly, as cat does.
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
            raise typer.Exit(141) from None


def tag(
    ref: Annotated[
        str,
        typer.Argument(
            help="The version; with --delete, the tag: DATASET@TAG (or a TAG only one "
            "dataset has, or DATASET followed by TAG).",
            autocompletion=complete_ref,
        ),
    ],
    name: Annotated[
        str | None, typer.Argument(help="The tag, e.g. published.", show_default=False)
    ] = None,
    delete: Annotated[
        bool, typer.Option("--delete", "-d", help="Delete the tag (the version stays).")
    ] = False,
    force: Annotated[
        bool,
        typer.Option("--force", "-f", help="Move the tag when it already names another version."),
    ] = False,
    as_json: Annotated[bool, JsonOpt] = False,
) -> None:
    """Tag a version: afterwards DATASET@TAG names it.

    A tag that already names another version moves only with --force (exit code 2
    otherwise, nothing changed); --delete removes a tag and keeps the version."""
    from reprocas.errors import UsageError

    with open_repo() as repo:
        if delete:
            if force:
                raise UsageError("--force has no meaning with --delete")
            change = repo.delete_tag(ref if name is None else name, None if name is None else ref)
        else:
            if name is None:
                raise UsageError("name the tag: reprocas tag REF TAG (or --delete DATASET@TAG)")
            change = repo.set_tag(ref, name, force=force)
            v = repo.resolve(ref)
    if as_json:
        out = change.to_json()
        if not delete:
            out |= {"ref": v.ref, "id": v.id.hex, "tags": list(v.tags)}
        emit_json(out)
    elif delete or change.moved:
        typer.echo(change.describe())
    else:
        typer.echo(f"{v.name}@{name} -> {v.ref} ({v.id.short})")


def checkout(
    ref: Annotated[str, typer.Argument(help="The version.", autocompletion=complete_ref)],
    dest: Annotated[
        Path,
        typer.Argument(
            help="Where to write it (must not exist, or be empty; outside the repository). "
            "With --path FILE and an existing directory, FILE is written into it."
        ),
    ],
    path: Annotated[str | None, typer.Option("--path", help="Only this file or directory.")] = None,
    force: Annotated[
        bool,
        typer.Option(
            help="Write into a non-empty DEST and make it exactly the version: files are "
            "overwritten, and what the version lacks is removed (and listed)."
        ),
    ] = False,
    special_modes: Annotated[
        bool,
        typer.Option(
            "--special-modes",
            help="Restore setuid, setgid and sticky bits (refused without this option).",
        ),
    ] = False,
    as_json: Annotated[bool, JsonOpt] = False,
) -> None:
    """Write a version to DEST: exact bytes, modes and symlinks, every chunk verified."""
    with open_repo() as repo, progress_bar("checking out", not as_json) as bar:
        r = repo.checkout(
            ref, dest, path=path, force=force, special_modes=special_modes, progress=bar
        )
    if as_json:
        emit_json(
            {
                "ref": r.ref,
                "id": r.id.hex,
                "dest": str(r.dest),
                "files": r.files,
                "bytes": r.bytes,
                "removed": list(r.removed),
            }
        )
        return
    typer.echo(f"{r.ref} -> {r.dest}: {plural(r.files, 'file')}, {human_bytes(r.bytes)}")
    if r.removed:
        typer.echo(
            f"  removed {plural(len(r.removed), 'entry', 'entries')} the version does not have:"
        )
        for p in r.removed[:_SHOW_REMOVED]:
            typer.echo(f"    {quote_name(p)}")
        if len(r.removed) > _SHOW_REMOVED:
            typer.echo(f"    … and {len(r.removed) - _SHOW_REMOVED} more (all with --json)")


_SHOW_REMOVED = 50
