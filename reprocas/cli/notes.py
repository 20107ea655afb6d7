"""Decision notes: `note add`, `note ls`, `note show` (docs/CLI.md, "Notes")."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from reprocas.cli.common import JsonOpt, open_repo
from reprocas.cli.output import emit_json

if TYPE_CHECKING:
    from reprocas.notes.store import NoteRecord

app = typer.Typer(
    help="Decision notes: what was decided or seen about versions, runs and environments.",
    no_args_is_help=True,
)


def print_record(r: NoteRecord, *, full: bool = False) -> None:
    if not full:
        typer.echo(r.line())
        return
    j = r.to_json()
    typer.echo(f"note      {r.id.hex}")
    typer.echo(f"kind      {r.note.kind}")
    typer.echo(f"by        {r.note.by or '-'}")
    typer.echo(f"time      {j['time'] or '- (not in the ref log)'}")
    for s in r.about:
        typer.echo(f"about     {s.label} ({s.type} {s.id.hex[:12]})")
    for old in r.note.supersedes:
        typer.echo(f"retires   note {old.hex[:12]}")
    for new in r.superseded_by:
        typer.echo(f"retired   by note {new[:12]}")
    typer.echo(f"protects  {'yes' if r.note.protect else 'no'}")
    typer.echo("")
    for line in r.note.text.splitlines() or [""]:
        typer.echo(f"    {line}")


@app.command("add")
def add(
    text: Annotated[str, typer.Argument(help="What was decided, seen, asked or answered.")],
    about: Annotated[
        list[str] | None,
        typer.Option(
            "--about",
            "-a",
            help="What the note is about: NAME@vN, NAME#N (a run), an environment "
            "version, a note id prefix (repeatable).",
        ),
    ] = None,
    supersedes: Annotated[
        list[str] | None,
        typer.Option(
            "--supersedes",
            help="A note this one retires (id prefix; repeatable). Retired notes are kept "
            "but hidden from listings and from `why`.",
        ),
    ] = None,
    kind: Annotated[
        str,
        typer.Option("--kind", "-k", help="decision, observation (default), question or answer."),
    ] = "observation",
    by: Annotated[
        str | None, typer.Option("--by", help="Who says it (default: the login name).")
    ] = None,
    protect: Annotated[
        bool,
        typer.Option(
            "--protect",
            help="Keep what the note is about: `forget` and `prune` leave those versions "
            "while the note is current.",
        ),
    ] = False,
    as_json: Annotated[bool, JsonOpt] = False,
) -> None:
    """Record a note about versions, runs, environments or other notes.

    A note is an immutable object: the same text, kind, author and links make the
    same note (adding it again changes nothing). Example:
    reprocas note add "train on v4 from now on" --about clinical@v4 --kind decision
    """
    with open_repo() as repo:
        r = repo.note(
            text,
            about=list(about or ()),
            kind=kind,
            by=by,
            supersedes=list(supersedes or ()),
            protect=protect,
        )
    if as_json:
        emit_json(r.to_json())
        return
    typer.echo(f"recorded note {r.id.hex[:12]}")
    print_record(r)


@app.command("ls")
def ls(
    about: Annotated[
        str | None, typer.Option("--about", "-a", help="Only notes about this (a ref).")
    ] = None,
    all_: Annotated[
        bool, typer.Option("--all", help="Also the notes that newer notes superseded.")
    ] = False,
    as_json: Annotated[bool, JsonOpt] = False,
) -> None:
    """List notes, oldest first (current ones; --all also superseded ones)."""
    with open_repo() as repo:
        rows = repo.notes(about=about, include_superseded=all_)
    if as_json:
        emit_json([r.to_json() for r in rows])
        return
    if not rows:
        typer.echo("no notes; add one with `reprocas note add TEXT --about REF`")
    for r in rows:
        typer.echo(f"{r.to_json()['time'] or '-':<20} {r.line()}")


@app.command("show")
def show(
    note: Annotated[str, typer.Argument(metavar="NOTE", help="A note id (or a unique prefix).")],
    as_json: Annotated[bool, JsonOpt] = False,
) -> None:
    """Show one note: text, kind, author, time, what it is about and supersedes."""
    with open_repo() as repo:
        r = repo.show_note(note)
    if as_json:
        emit_json(r.to_json())
        return
    print_record(r, full=True)


def note_lines(records: list[NoteRecord], indent: str = "  ") -> list[str]:
    """``note 1a2b3c4d5e6f decision (ana): TEXT`` lines, for `show`, `runs`, `lineage`."""
    out = []
    for r in records:
        who = f" by {r.note.by}" if r.note.by else ""
        first = r.note.text.splitlines()[0] if r.note.text else ""
        out.append(f"{indent}note {r.id.hex[:12]} {r.note.kind}{who}: {first}")
    return out


def pin(
    ref: Annotated[
        str | None,
        typer.Argument(
            metavar="DATASET@vN",
            help="The version to make canonical (NAME@vN or NAME@TAG); `ls` or nothing "
            "lists the pins.",
        ),
    ] = None,
    reason: Annotated[
        str | None, typer.Option("--reason", "-r", help="Why this version (recorded).")
    ] = None,
    by: Annotated[str | None, typer.Option("--by", help="Who decides (default: login).")] = None,
    as_json: Annotated[bool, JsonOpt] = False,
) -> None:
    """Pin the canonical version of a dataset (`pin ls` lists the pins).

    Records a decision note about the version and the pin; `reprocas run` then warns
    when an input is another version of that dataset, and `status` shows the pin.
    Example: reprocas pin clinical@v4 --reason "cleaned export, agreed 3 Dec"
    """
    from reprocas.errors import InvalidParameterError
    from reprocas.notes import pins

    with open_repo() as repo:
        if ref is None or ref == "ls":
            rows = pins.list_pins(repo.store)
            if as_json:
                emit_json([p.to_json() for p in rows])
            elif not rows:
                typer.echo("no pins; pin a version with `reprocas pin NAME@vN --reason TEXT`")
            for p in rows if not as_json else ():
                typer.echo(p.line())
            return
        if reason is None:
            raise InvalidParameterError("say why the version is canonical: --reason TEXT")
        p = pins.pin(repo.store, ref, reason, by=by)
    if as_json:
        emit_json(p.to_json())
    else:
        typer.echo(p.line())


def unpin(
    dataset: Annotated[str, typer.Argument(metavar="DATASET", help="The pinned dataset.")],
    reason: Annotated[str, typer.Option("--reason", "-r", help="Why (recorded in the note).")] = "",
    by: Annotated[str | None, typer.Option("--by", help="Who decides (default: login).")] = None,
    as_json: Annotated[bool, JsonOpt] = False,
) -> None:
    """Remove a dataset's pin (a note retires the pin's note)."""
    from reprocas.notes import pins

    with open_repo() as repo:
        old = pins.unpin(repo.store, dataset, reason, by=by)
    if as_json:
        emit_json({"unpinned": old.to_json()})
    else:
        typer.echo(f"unpinned {old.ref}")


def why(
    ref: Annotated[
        str,
        typer.Argument(help="A version (NAME@vN), an environment version or a run (NAME#N)."),
    ],
    other: Annotated[
        str | None,
        typer.Argument(metavar="[RUN_B]", help="A second run: what changed from REF to it."),
    ] = None,
    metric: Annotated[
        str | None,
        typer.Option(
            "--metric",
            "-m",
            help="Explain this metric's change (against the previous run of REF's name "
            "when RUN_B is not given).",
        ),
    ] = None,
    as_json: Annotated[bool, JsonOpt] = False,
) -> None:
    """Answer "why?" about a version or run from the record, citing object ids.

    A version: its parent, step and sources, the runs that produced and used it, its pin
    and the notes about it. A run: what changed since the previous run of its name
    (inputs, params, code, environment, metrics) and the notes on those. Two runs (or
    --metric): how the metric moved and the changes in between, in timeline order.
    Superseded notes are left out. Example: reprocas why train#3 --metric acc
    """
    from reprocas.notes.why import why as answer

    with open_repo() as repo:
        a = answer(repo.store, ref, other, metric=metric)
    if as_json:
        emit_json(a.to_json())
        return
    for line in a.lines():
        typer.echo(line)
