"""Build only the command a process runs.

Typer turns every registered function into a click command (reading its signature and
type hints) before it parses the command line: ~60 commands, about 0.15 s of every
``reprocas`` process. :class:`LazyGroup` keeps the registrations of a second
:class:`typer.Typer` (``REGISTRY``) and builds a command the first time click asks for
it: one for a normal invocation, all of them for ``--help`` and shell completion, which
list them."""

from __future__ import annotations

from collections.abc import Callable, ItemsView, Iterator, KeysView, ValuesView
from functools import partial
from typing import Any

import click
import typer
from typer.core import TyperGroup
from typer.main import get_command_from_info, get_command_name, get_group_from_info

#: Where the sub-commands of ``reprocas`` are registered (reprocas.cli.main).
REGISTRY = typer.Typer()
#: Settings the built commands share with the top-level app.
SETTINGS: dict[str, Any] = {"pretty_exceptions_short": True, "rich_markup_mode": "rich"}


def _builders() -> dict[str, Callable[[], click.Command]]:
    out: dict[str, Callable[[], click.Command]] = {}
    pretty = bool(SETTINGS["pretty_exceptions_short"])
    markup = SETTINGS["rich_markup_mode"]
    for info in REGISTRY.registered_commands:
        assert info.callback is not None
        name = info.name or get_command_name(info.callback.__name__)
        out[name] = partial(
            get_command_from_info, info, pretty_exceptions_short=pretty, rich_markup_mode=markup
        )
    for group in REGISTRY.registered_groups:
        assert group.name, "every sub-typer of reprocas is named"
        out[group.name] = partial(
            get_group_from_info,
            group,
            pretty_exceptions_short=pretty,
            rich_markup_mode=markup,
            suggest_commands=False,  # click suggests already (typer would say it twice)
        )
    return out


class _Commands(dict[str, click.Command]):
    """A command mapping that knows every name and builds a command when it is read."""

    def __init__(self, builders: dict[str, Callable[[], click.Command]]) -> None:
        super().__init__()
        self._builders = builders

    def _build(self, name: str) -> click.Command:
        if not dict.__contains__(self, name):
            dict.__setitem__(self, name, self._builders[name]())
        return dict.__getitem__(self, name)

    def __getitem__(self, name: str) -> click.Command:
        if name not in self._builders:
            raise KeyError(name)
        return self._build(name)

    def get(self, name: str, default: Any = None) -> Any:
        return self._build(name) if name in self._builders else default

    def __contains__(self, name: object) -> bool:
        return name in self._builders

    def __iter__(self) -> Iterator[str]:
        return iter(self._builders)

    def __len__(self) -> int:
        return len(self._builders)

    def keys(self) -> KeysView[str]:  # type: ignore[override]  # a view of the names
        return self._builders.keys()

    def items(self) -> ItemsView[str, click.Command]:  # type: ignore[override]
        return {n: self._build(n) for n in self._builders}.items()

    def values(self) -> ValuesView[click.Command]:  # type: ignore[override]
        return {n: self._build(n) for n in self._builders}.values()


class LazyGroup(TyperGroup):
    """The top-level group: its commands are REGISTRY's, built when first asked for."""

    def __init__(self, **attrs: Any) -> None:
        super().__init__(**attrs)
        self.commands = _Commands(_builders())

    def list_commands(self, ctx: click.Context) -> list[str]:
        """The names in the order they were registered (building none of them)."""
        return list(self.commands.keys())
