"""Entry point of the ``reprocas`` command: the app, its sub-commands, and the one
place where exceptions become a message and an exit code."""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Annotated

import typer

from reprocas.cli import content as content_cli
from reprocas.cli import data, debug, maintenance
from reprocas.cli import env as env_cli
from reprocas.cli import notes as notes_cli
from reprocas.cli import package as package_cli
from reprocas.cli import remote as remote_cli
from reprocas.cli import remove as remove_cli
from reprocas.cli import report as report_cli
from reprocas.cli import retention as retention_cli
from reprocas.cli import runs as runs_cli
from reprocas.cli import version as version_cli
from reprocas.cli.common import STATE
from reprocas.cli.lazy import REGISTRY, SETTINGS, LazyGroup
from reprocas.cli.listing import datasets, tags
from reprocas.cli.status import status
from reprocas.errors import ReprocasError

app = typer.Typer(
    name="reprocas",
    help="A deduplicating, content-addressed store that makes ML work reproducible.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=True,
    context_settings={"help_option_names": ["-h", "--help"]},
    cls=LazyGroup,  # commands are built when first asked for (reprocas.cli.lazy)
    suggest_commands=False,  # click suggests a close name itself; typer would say it twice
)
SETTINGS.update(
    pretty_exceptions_short=app.pretty_exceptions_short, rich_markup_mode=app.rich_markup_mode
)


@app.callback()
def main(
    repo: Annotated[
        str | None,
        typer.Option(
            "--repo",
            help="Repository path (default: $REPROCAS_REPO, then .reprocas/ here or above).",
        ),
    ] = None,
    _version: Annotated[
        bool,
        typer.Option(
            "--version",
            is_eager=True,
            callback=version_cli.version_option,
            help="Print the version, storage formats and native build, and exit.",
        ),
    ] = False,
) -> None:
    """reprocas: version datasets; check out any version exactly; see what it costs."""
    STATE.repo_path = repo


COMMANDS: list[Callable[..., None]] = [
    data.init,
    data.commit,
    data.log,
    data.show,
    data.ls,
    data.cat,
    data.tag,
    data.checkout,
    data.export_table,
    data.diff,
    content_cli.check_dir,
    maintenance.verify,
    maintenance.du,
    maintenance.gc,
    maintenance.repack,
    maintenance.upgrade,
    retention_cli.forget,
    retention_cli.prune,
    remove_cli.rm,
    runs_cli.replay,
    runs_cli.adopt,
    runs_cli.runs,
    runs_cli.lineage,
    remote_cli.push,
    remote_cli.pull,
    remote_cli.fetch,
    remote_cli.clone,
    report_cli.report,
    package_cli.export,
    version_cli.version,
    notes_cli.pin,
    notes_cli.unpin,
    notes_cli.why,
]
for command in COMMANDS:
    REGISTRY.command(command.__name__.replace("_", "-"))(command)
REGISTRY.command("import")(package_cli.import_)
REGISTRY.command(
    "run",
    context_settings={"allow_interspersed_args": False},
)(runs_cli.run)
for command in (datasets, tags, status):  # issue 15: listing and status
    REGISTRY.command(command.__name__)(command)
REGISTRY.add_typer(maintenance.index_app, name="index")
REGISTRY.add_typer(debug.app, name="debug")
REGISTRY.add_typer(env_cli.app, name="env")
REGISTRY.add_typer(notes_cli.app, name="note")
REGISTRY.add_typer(retention_cli.config_app, name="config")
REGISTRY.add_typer(remote_cli.app, name="remote")


def run(argv: list[str] | None = None) -> int:
    """Run the CLI; errors become one line on stderr and an exit code, never a traceback."""
    try:
        app(args=argv, prog_name="reprocas")
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    except ReprocasError as err:
        print(f"reprocas: error: {err}", file=sys.stderr)
        return err.exit_code
    except KeyboardInterrupt:
        print("reprocas: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 141
    return 0


def entry() -> None:
    """Console-script entry point."""
    sys.exit(run())
