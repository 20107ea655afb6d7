"""How a run's parameters reach its command, so that they are typed once.

Three ways, all from the recorded params: ``{name}`` placeholders in the command's
arguments are replaced by the values (``{{`` and ``}}`` stand for literal braces); the
child gets ``REPROCAS_PARAMS``, the path of a JSON file holding every parameter, and
one ``REPROCAS_PARAM_<NAME>`` variable per parameter; and :func:`read_params` (that is
``reprocas.params()``) reads the file back, typed. An argument ``--NAME VALUE`` that
disagrees with the recorded param of the same name is a *conflict*: warned about and
recorded with the run, because the script may have used the argument's value.

A replay expands the recorded template again from the recorded params, so the
recorded command is the one source of truth.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import re
import shutil
import tempfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from reprocas.provenance.errors import ParamsError
from reprocas.provenance.run_params import param_value

PARAMS_ENV = "REPROCAS_PARAMS"
"""The child's variable naming the JSON file of all params."""
PARAM_ENV_PREFIX = "REPROCAS_PARAM_"
"""The prefix of the child's one-variable-per-param (``REPROCAS_PARAM_LR``)."""
ARGV_KEY = "argv"
"""The ``extra`` key holding the expanded command (the run's ``command`` is the template)."""
CONFLICTS_KEY = "param_conflicts"
"""The ``extra`` key listing arguments that disagree with a param: ``{name, param, argv}``."""
PARAMS_FILE_NAME = "params.json"

_NAME = r"[A-Za-z_][A-Za-z0-9_.\-]*"
_TOKEN = re.compile(r"\{\{|\}\}|\{(" + _NAME + r")\}")


# -- the values as text -------------------------------------------------------------------------


def param_text(value: Any) -> str:
    """A value as the command sees it: a string as it is, anything else as JSON
    (``0.1``, ``true``, ``[1, 2]``), the same in arguments and variables."""
    if isinstance(value, str):
        return value
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def _lookup(params: Mapping[str, Any], name: str) -> tuple[bool, Any]:
    """The param ``name``; a dotted ``model.lr`` also names ``{"model": {"lr": ..}}``."""
    if name in params:
        return True, params[name]
    node: Any = params
    for part in name.split("."):
        if not isinstance(node, Mapping) or part not in node:
            return False, None
        node = node[part]
    return True, node


# -- placeholders -------------------------------------------------------------------------------


def placeholders(command: list[str]) -> list[str]:
    """The ``{name}`` placeholders of a command, in order (escaped ones excluded)."""
    return [m.group(1) for arg in command for m in _TOKEN.finditer(arg) if m.group(1)]


def expand(command: list[str], params: Mapping[str, Any]) -> list[str]:
    """The command with every ``{name}`` replaced by its param's value and ``{{`` /
    ``}}`` by ``{`` / ``}``; other braces are kept (``{}``, ``{'a': 1}``). A name that is
    no param is an error (exit 2) before anything runs."""
    unknown = [n for n in placeholders(command) if not _lookup(params, n)[0]]
    if unknown:
        names = ", ".join(sorted(params)) or "none were given"
        first = unknown[0]
        raise ParamsError(
            f"the command names {{{first}}}, which is not a parameter (parameters: {names}); "
            f"give --param {first}=VALUE, or write {{{{{first}}}}} for literal braces"
        )

    def sub(m: re.Match[str]) -> str:
        tok = m.group(0)
        if tok == "{{":
            return "{"
        if tok == "}}":
            return "}"
        return param_text(_lookup(params, m.group(1))[1])

    return [_TOKEN.sub(sub, arg) for arg in command]


# -- the child's environment --------------------------------------------------------------------


def env_name(name: str) -> str:
    """``lr`` -> ``REPROCAS_PARAM_LR``; ``model.hidden-size`` -> ``..._MODEL_HIDDEN_SIZE``."""
    return PARAM_ENV_PREFIX + "".join(c if c.isalnum() else "_" for c in name.upper())


def param_variables(params: Mapping[str, Any]) -> tuple[dict[str, str], list[str]]:
    """``REPROCAS_PARAM_<NAME>`` for every param, and notes for names that map to the
    same variable (the JSON file has them all, apart)."""
    out: dict[str, str] = {}
    by: dict[str, str] = {}
    notes: list[str] = []
    for name in sorted(params):
        var = env_name(name)
        if var in by:
            notes.append(
                f"params {by[var]} and {name} both become {var}: it holds {name}; "
                f"read both from the JSON file named by {PARAMS_ENV} (reprocas.params())"
            )
        by[var] = name
        out[var] = param_text(params[name])
    return out, notes


@contextlib.contextmanager
def child_env(
    params: Mapping[str, Any], base: Mapping[str, str] | None = None
) -> Iterator[tuple[dict[str, str], list[str]]]:
    """The environment the command runs in: ``base`` (default ours) without params
    inherited from an enclosing run, plus this run's; the params file lives (outside
    the working directory) while the block runs. Yields (environment, notes)."""
    env = {
        k: v
        for k, v in (os.environ if base is None else base).items()
        if k != PARAMS_ENV and not k.startswith(PARAM_ENV_PREFIX)
    }
    variables, notes = param_variables(params)
    tmp = Path(tempfile.mkdtemp(prefix="reprocas-params-"))
    try:
        path = tmp / PARAMS_FILE_NAME
        path.write_text(json.dumps(dict(params), indent=2, sort_keys=True, ensure_ascii=False))
        env.update(variables)
        env[PARAMS_ENV] = str(path)
        yield env, notes
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def read_params() -> dict[str, Any]:
    """The params of the run this process is part of (``reprocas.params()``): typed
    values from the JSON file named by ``REPROCAS_PARAMS``; ``{}`` outside a run."""
    where = os.environ.get(PARAMS_ENV)
    if not where:
        return {}
    try:
        value = json.loads(Path(where).read_bytes())
    except FileNotFoundError as exc:
        raise ParamsError(
            f"{PARAMS_ENV} names {where}, which does not exist (it lives only while the "
            "run's command runs)"
        ) from exc
    except (OSError, ValueError) as exc:
        raise ParamsError(f"{PARAMS_ENV} names {where}, which cannot be read: {exc}") from exc
    if not isinstance(value, dict):
        raise ParamsError(f"{PARAMS_ENV} names {where}, which does not hold a map of params")
    return value


# -- arguments that disagree with a param -------------------------------------------------------


def _norm(name: str) -> str:
    return name.replace("_", "-")


def _same(param: Any, text: str) -> bool:
    """Whether argument text means the param's value, both read as ``--param`` reads a
    value (``0.5`` vs ``0.1`` differ, ``1e-3`` vs ``0.001`` agree)."""
    arg = param_value(text)
    if isinstance(param, bool) or isinstance(arg, bool):
        return param is arg or (isinstance(param, str) and param == text)
    if isinstance(param, int | float) and isinstance(arg, int | float):
        return param == arg or (math.isnan(param) and math.isnan(arg))
    if isinstance(param, str):
        return param in (text, arg)
    return bool(param == arg)


def _is_value(token: str) -> bool:
    """Whether ``--name TOKEN`` gives TOKEN as the value (a negative number does)."""
    if not token.startswith("-") or token == "-":
        return True
    return isinstance(param_value(token), int | float) and not isinstance(param_value(token), bool)


def conflicts(argv: list[str], params: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Each param whose ``--NAME VALUE`` / ``--NAME=VALUE`` argument (the last one, as
    argparse takes it; ``-`` and ``_`` alike) disagrees with its recorded value:
    ``{"name", "param", "argv", "flag"}`` (``flag`` as the command wrote it). A bool
    param takes a bare ``--NAME`` as true. Nested params are not compared."""
    by_flag = {_norm(k): k for k, v in params.items() if not isinstance(v, dict)}
    seen: dict[str, tuple[str, str]] = {}
    i = 0
    args = argv[1:]
    while i < len(args):
        a = args[i]
        i += 1
        if a == "--":
            break
        if not a.startswith("--") or len(a) < 3:
            continue
        flag, eq, value = a[2:].partition("=")
        name = by_flag.get(_norm(flag))
        if name is None:
            continue
        flag = "--" + flag
        if eq:
            seen[name] = (flag, value)
        elif isinstance(params[name], bool):
            nxt = args[i] if i < len(args) else ""
            if nxt in ("true", "false"):
                seen[name] = (flag, nxt)
                i += 1
            else:
                seen[name] = (flag, "true")
        elif i < len(args) and _is_value(args[i]):
            seen[name] = (flag, args[i])
            i += 1
    return [
        {"name": name, "param": params[name], "argv": text, "flag": flag}
        for name, (flag, text) in seen.items()
        if not _same(params[name], text)
    ]


def conflict_warning(c: Mapping[str, Any]) -> str:
    """The record-time warning for one conflict."""
    flag = c.get("flag") or f"--{c['name']}"
    return (
        f"warning: the command's {flag} {c['argv']} disagrees with the recorded "
        f"parameter {c['name']}={param_text(c['param'])} (recorded in the run's "
        f"{CONFLICTS_KEY}); write {flag} {{{c['name']}}} to pass the parameter"
    )


# -- the whole command line ---------------------------------------------------------------------


@dataclass
class CommandLine:
    """A run's command: the template as given, the argv that runs, and its conflicts."""

    template: list[str]
    argv: list[str]
    conflicts: list[dict[str, Any]] = field(default_factory=list)

    def extra(self) -> dict[str, Any]:
        """What the run records beside its ``command`` (the template)."""
        out: dict[str, Any] = {}
        if self.argv != self.template or placeholders(self.template):
            out[ARGV_KEY] = list(self.argv)
        if self.conflicts:
            out[CONFLICTS_KEY] = list(self.conflicts)
        return out


def command_line(command: list[str], params: Mapping[str, Any]) -> CommandLine:
    """Expand ``command`` with ``params`` and find the arguments that disagree."""
    argv = expand(command, params)
    return CommandLine(list(command), argv, conflicts(argv, params))


def recorded_command_line(
    command: list[str], params: Mapping[str, Any], extra: Mapping[str, Any]
) -> CommandLine:
    """The command a replay runs: a template expanded again from the recorded params
    when the run recorded one (``extra["argv"]``), else the command as recorded (runs
    recorded before placeholders were expanded ran their braces literally)."""
    if ARGV_KEY not in extra:
        return CommandLine(list(command), list(command), conflicts(list(command), params))
    return command_line(command, params)
