"""Remotes: remote add/list/remove, push, pull, fetch, clone (issue 18)."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Annotated

import typer

from reprocas.cli.common import JsonOpt, open_repo, progress_bar
from reprocas.cli.output import emit_json, human_bytes, plural
from reprocas.errors import UsageError

app = typer.Typer(help="Remotes: object storage many machines share.", no_args_is_help=True)

RemoteArg = typer.Argument(help="The remote's name (default: origin).")
RefsArg = typer.Argument(help="Refs: NAME (all its refs), NAME@vN, NAME@TAG or a ref key.")
LazyOpt = typer.Option(
    "--lazy",
    help="Index the remote's packs without their data: reads fetch the frames they need "
    "(bounded cache: remote.cache-size).",
)
OptionOpt = typer.Option(
    "--option", "-o", help="A backend setting KEY=VALUE (s3: endpoint, region, ...); repeatable."
)


@app.command("add")
def remote_add(
    name: Annotated[str, typer.Argument(help="A name for the remote (e.g. origin).")],
    url: Annotated[str, typer.Argument(help="file:///absolute/path or s3://bucket/prefix.")],
    option: Annotated[list[str] | None, OptionOpt] = None,
    single_writer: Annotated[
        bool,
        typer.Option(
            "--single-writer",
            help="Only this machine writes: allow a server that ignores conditional writes.",
        ),
    ] = False,
    as_json: Annotated[bool, JsonOpt] = False,
) -> None:
    """Add a remote, after checking that its server honours conditional writes."""
    from reprocas.remote import config as rconf
    from reprocas.remote.backend import ConditionalWritesUnsupported, probe_conditional_writes
    from reprocas.remote.protocol import LocalState, check_format
    from reprocas.remote.registry import open_backend

    rc = rconf.RemoteConfig(rconf.check_name(name), url, rconf.parse_options(option), single_writer)
    with open_repo() as repo:
        check_format(repo.store)
        if url.startswith("file://"):
            from reprocas.remote.file import FileBackend

            root = FileBackend(url, rc.options).root
            if not root.exists() and root.parent.is_dir():
                root.mkdir()
        backend = open_backend(url, rc.options)
        try:
            probe_conditional_writes(backend, uuid.uuid4().hex)
            probed = True
        except ConditionalWritesUnsupported:
            if not single_writer:
                raise
            probed = False
        finally:
            backend.close()
        rconf.add(repo.store, rc)
        if probed:
            LocalState(repo.store, name).mark_probed()
    if as_json:
        emit_json({**rc.to_json(), "conditional_writes": probed})
    else:
        typer.echo(f"added remote {name} → {url}")


@app.command("list")
def remote_list(as_json: Annotated[bool, JsonOpt] = False) -> None:
    """List the remotes of this repository."""
    from reprocas.remote import config as rconf

    with open_repo() as repo:
        found = rconf.remotes(repo.store)
    if as_json:
        emit_json([r.to_json() for r in found.values()])
        return
    for r in found.values():
        opts = " ".join(f"{k}={v}" for k, v in sorted(r.options.items()))
        extra = (" " + opts if opts else "") + (" (single writer)" if r.single_writer else "")
        typer.echo(f"{r.name}\t{r.url}{extra}")


@app.command("remove")
def remote_remove(
    name: Annotated[str, typer.Argument(help="The remote to forget (its data stays).")],
    as_json: Annotated[bool, JsonOpt] = False,
) -> None:
    """Forget a remote here; nothing on the remote is deleted."""
    from reprocas.remote import config as rconf

    with open_repo() as repo:
        rc = rconf.remove(repo.store, name)
    if as_json:
        emit_json(rc.to_json())
    else:
        typer.echo(f"removed remote {name} ({rc.url})")


@app.command("prune")
def remote_prune(
    remote: Annotated[str | None, RemoteArg] = None,
    grace: Annotated[
        str, typer.Option("--grace", help="How long a mark waits (server clock): 24h, 7d, 90s.")
    ] = "24h",
    allow_short_grace: Annotated[
        bool,
        typer.Option("--allow-short-grace", help="Permit a grace under 1h (tests only)."),
    ] = False,
    as_json: Annotated[bool, JsonOpt] = False,
) -> None:
    """Remove packs no index segment lists, in two phases (mark, then sweep after --grace)."""
    from reprocas.remote import config as rconf
    from reprocas.remote.prune import prune
    from reprocas.retention.policy import parse_duration

    text = grace.strip().lower()
    if text.endswith("s") and text[:-1].isdigit():  # seconds: for tests, with the flag
        grace_ns = int(text[:-1]) * 10**9
    else:
        grace_ns = parse_duration(grace)
    if grace_ns < 3600 * 10**9 and not allow_short_grace:
        raise UsageError(
            f"--grace {grace} is under 1h: a push still uploading could lose packs; "
            "pass --allow-short-grace only when no push can be running"
        )
    with open_repo() as repo:
        rc = rconf.get(repo.store, remote)
        report = prune(repo.store, rc, grace_ns=grace_ns)
    if as_json:
        emit_json(report.to_json())
        return
    typer.echo(
        f"marked {plural(len(report.marked), 'pack')}; swept {plural(len(report.deleted), 'pack')} "
        f"({human_bytes(report.deleted_bytes)}); {plural(len(report.waiting), 'mark')} waiting "
        f"for the grace period; {plural(len(report.kept), 'candidate')} kept"
    )
    for why in report.postponed:
        typer.echo(f"postponed: {why}")


def push(
    remote: Annotated[str | None, RemoteArg] = None,
    refs: Annotated[list[str] | None, RefsArg] = None,
    force: Annotated[
        bool, typer.Option("--force", help="Move tags even when it is not a fast-forward.")
    ] = False,
    as_json: Annotated[bool, JsonOpt] = False,
) -> None:
    """Upload what the remote lacks (packs, then an index segment), then move its refs.

    A version another writer numbered first is pushed as the next free number, here too.
    """
    from reprocas.remote import config as rconf
    from reprocas.remote.push import NonFastForwardError
    from reprocas.remote.push import push as do_push

    with open_repo() as repo:
        rc = rconf.get(repo.store, remote)
        with progress_bar(f"pushing to {rc.name}", not as_json, unit="pack") as bar:
            report = do_push(repo.store, rc, refs, force=force, progress=bar)
    if as_json:
        emit_json(report.to_json())
    else:
        typer.echo(
            f"uploaded {plural(report.uploaded_packs, 'pack')} "
            f"({human_bytes(report.uploaded_bytes)}), skipped {report.skipped_packs}"
        )
        for r in report.refs:
            if r.status == "renumbered":
                typer.echo(f"renumbered {r.ref} → {r.remote_ref} (the number was taken)")
            elif r.status in ("created", "moved"):
                typer.echo(f"{r.status} {r.ref}")
    if report.rejected:
        raise NonFastForwardError(
            "refused to move "
            + ", ".join(r.ref for r in report.rejected)
            + " on the remote: not a fast-forward (pull first, or pass --force)"
        )


def pull(
    remote: Annotated[str | None, RemoteArg] = None,
    refs: Annotated[list[str] | None, RefsArg] = None,
    force: Annotated[
        bool, typer.Option("--force", help="Move local tags even when not a fast-forward.")
    ] = False,
    lazy: Annotated[bool, LazyOpt] = False,
    as_json: Annotated[bool, JsonOpt] = False,
) -> None:
    """Download the packs this repository lacks, then move local refs (fast-forward).

    With --lazy only the packs' indexes come; without it, packs a lazy pull left on the
    remote are downloaded whole (and their cache copies removed).
    """
    from reprocas.remote import config as rconf
    from reprocas.remote.pull import pull as do_pull

    with open_repo() as repo:
        rc = rconf.get(repo.store, remote)
        with progress_bar(f"pulling from {rc.name}", not as_json, unit="pack") as bar:
            report = do_pull(repo.store, rc, refs, force=force, progress=bar, lazy=lazy)
    if as_json:
        emit_json(report.to_json())
    else:
        _pull_text(report)
    if report.conflicts or report.missing:
        raise typer.Exit(1)


def _pull_text(report: object) -> None:
    from reprocas.remote.pull import PullReport

    assert isinstance(report, PullReport)
    typer.echo(
        f"downloaded {plural(report.downloaded_packs, 'pack')} "
        f"({human_bytes(report.downloaded_bytes)}), skipped {report.skipped_packs}"
        + (
            f", indexed {plural(report.lazy_packs, 'pack')} lazily (read on demand)"
            if report.lazy_packs
            else ""
        )
    )
    for r in report.refs:
        if r.status == "conflict":
            typer.echo(f"conflict: {r.ref} holds another version here (push it to renumber)")
        elif r.status == "rejected":
            typer.echo(f"rejected: {r.ref} is not a fast-forward here (pass --force)")
    for m in report.missing:
        typer.echo(f"missing: the remote's {m} names data it does not hold")


def fetch(
    remote: Annotated[str | None, RemoteArg] = None,
    as_json: Annotated[bool, JsonOpt] = False,
) -> None:
    """Read the remote's refs and index segments (no pack data)."""
    from reprocas.remote import config as rconf
    from reprocas.remote.pull import fetch as do_fetch

    with open_repo() as repo:
        rc = rconf.get(repo.store, remote)
        report = do_fetch(repo.store, rc)
    if as_json:
        emit_json(report.to_json())
        return
    typer.echo(f"{plural(len(report.refs), 'ref')}, {plural(report.segments, 'new segment')}")
    for m in report.missing:
        typer.echo(f"missing: the remote's {m} names data it does not hold")


def clone(
    url: Annotated[str, typer.Argument(help="file:///absolute/path or s3://bucket/prefix.")],
    path: Annotated[
        Path | None, typer.Argument(help="A new directory (default: the URL's last part).")
    ] = None,
    option: Annotated[list[str] | None, OptionOpt] = None,
    lazy: Annotated[bool, LazyOpt] = False,
    as_json: Annotated[bool, JsonOpt] = False,
) -> None:
    """Make a new repository from a remote: its refs and all its data; origin is set."""
    from reprocas.remote.clone import clone as do_clone
    from reprocas.remote.config import parse_options

    with progress_bar("cloning", not as_json, unit="pack") as bar:
        dest, report = do_clone(url, path, options=parse_options(option), progress=bar, lazy=lazy)
    if as_json:
        emit_json({"path": str(dest), **report.to_json()})
    else:
        typer.echo(f"cloned {url} into {dest}")
        _pull_text(report)
    if report.conflicts or report.missing:
        raise typer.Exit(1)
