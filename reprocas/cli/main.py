"""Entry point of the ``reprocas`` command: the app, its sub-commands, and the one
place where exceptions become a message and an exit code."""

from __future__ import annotations

import sys

import typer

from reprocas.cli import debug
from reprocas.errors import ReprocasError

app = typer.Typer(
    name="reprocas",
    help="A deduplicating, content-addressed store that makes ML work reproducible.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
app.add_typer(debug.app, name="debug")


@app.callback()
def main() -> None:
    """reprocas: version datasets, environments and runs; check out any of them exactly."""


def run(argv: list[str] | None = None) -> int:
    """Run the CLI; a ReprocasError becomes a one-line message and its exit code."""
    try:
        app(args=argv, prog_name="reprocas", standalone_mode=False)
    except ReprocasError as err:
        print(f"reprocas: error: {err}", file=sys.stderr)
        return err.exit_code
    except KeyboardInterrupt:
        print("reprocas: interrupted", file=sys.stderr)
        return 130
    except SystemExit as exc:  # typer.Exit and friends
        return int(exc.code or 0) if not isinstance(exc.code, str) else 1
    return 0


def entry() -> None:
    """Console-script entry point."""
    sys.exit(run())
