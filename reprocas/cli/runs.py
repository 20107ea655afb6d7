"""Run and provenance commands: run, replay, runs, lineage, and the run side of diff."""

from __future__ import annotations

import datetime as dt
import sys
from pathlib import Path
from typing import Annotated

import typer

from reprocas.cli.common import AllowSecretsOpt, JsonOpt, open_repo
from reprocas.cli.output import emit_json


def _say(text: str) -> None:
    print(f"reprocas: {text}", file=sys.stderr, flush=True)


def _size_option(text: str, option: str) -> int:
    from reprocas.errors import InvalidParameterError
    from reprocas.retention.policy import parse_size

    try:
        return parse_size(text)
    except InvalidParameterError as exc:
        raise InvalidParameterError(f"{option}: {exc}") from exc


def run(
    command: Annotated[
        list[str], typer.Argument(help="The command and its arguments, after `--`.")
    ],
    name: Annotated[
        str | None,
        typer.Option("--name", "-n", help="Run name (default: from the command, e.g. train)."),
    ] = None,
    input_: Annotated[
        list[str] | None,
        typer.Option(
            "--input",
            "-i",
            help="REF[=PATH]: check out this exact version at PATH (default inputs/<dataset>) "
            "before the command starts (repeatable).",
        ),
    ] = None,
    param: Annotated[
        list[str] | None,
        typer.Option(
            "--param",
            "-p",
            help="KEY=VALUE parameter (repeatable). The command gets it as {KEY} in its "
            "arguments, REPROCAS_PARAM_KEY and the JSON file named by REPROCAS_PARAMS.",
        ),
    ] = None,
    params_file: Annotated[
        list[Path] | None,
        typer.Option("--params-file", help="JSON, TOML or YAML file of parameters (repeatable)."),
    ] = None,
    output: Annotated[
        list[str] | None,
        typer.Option(
            "--output",
            "-o",
            help="A file or directory the command writes (repeatable); "
            "committed as a version of runs/NAME.",
        ),
    ] = None,
    metrics: Annotated[
        str | None,
        typer.Option(
            "--metrics", help="JSON file of numbers (or lists of numbers) written by the command."
        ),
    ] = None,
    env: Annotated[
        str,
        typer.Option(
            "--env", help="Environment snapshot: light (default), full (site-packages too) or none."
        ),
    ] = "light",
    env_name: Annotated[
        str | None,
        typer.Option(
            "--env-name",
            help="Name of the environment snapshot (env/NAME; default: the working "
            "directory's name).",
        ),
    ] = None,
    allow_differ: Annotated[
        list[str] | None,
        typer.Option(
            "--allow-differ",
            metavar="GLOB",
            help="Output files that may legitimately differ when the run is replayed "
            "(logs, timestamps), e.g. 'logs/*'; recorded with the run (repeatable).",
        ),
    ] = None,
    code_limit: Annotated[
        str,
        typer.Option(
            "--code-limit",
            metavar="SIZE",
            help="At most this much of the code git does not track (or, outside git, of "
            "the working directory) is stored with the run, e.g. 50MiB.",
        ),
    ] = "10MiB",
    code_file_limit: Annotated[
        str,
        typer.Option(
            "--code-file-limit",
            metavar="SIZE",
            help="Larger files of that code are not stored (each is named in a warning), "
            "e.g. 4MiB.",
        ),
    ] = "1MiB",
    allow_secrets: Annotated[bool, AllowSecretsOpt] = False,
    yes: Annotated[
        bool,
        typer.Option("--yes", "-y", help="Answer yes to the prompt.* questions without waiting."),
    ] = False,
    no_input: Annotated[
        bool,
        typer.Option("--no-input", help="Never ask a question (also: REPROCAS_NO_INPUT, CI)."),
    ] = False,
    as_json: Annotated[bool, JsonOpt] = False,
) -> None:
    """Record a run of COMMAND (after `--`): inputs, environment, code, params, metrics.

    Records its exact inputs, environment, code, parameters, output
    and metrics. Use `--` before the command: `reprocas run -n train -- python train.py`.

    Parameters reach the command: `--param lr=0.1 -- python train.py --lr {lr}` runs
    `--lr 0.1` ({{ and }} are literal braces); an argument `--lr 0.5` that disagrees
    with a parameter is warned about and recorded (param_conflicts).

    The command's output is streamed (with --json, its stdout goes to stderr) and stored.
    A failed command is recorded too; reprocas then exits with the command's exit code.
    """
    from reprocas.provenance.run import Spec, default_name, record
    from reprocas.provenance.run_code import CodeLimits
    from reprocas.provenance.run_inputs import parse_input
    from reprocas.provenance.run_params import parse_params
    from reprocas.provenance.run_store import run_json
    from reprocas.provenance.verdict import ALLOW_DIFFER_KEY, check_glob

    globs = [check_glob(g, "--allow-differ") for g in allow_differ or ()]
    limits = CodeLimits(
        total=_size_option(code_limit, "--code-limit"),
        per_file=_size_option(code_file_limit, "--code-file-limit"),
    )
    spec = Spec(
        command=list(command),
        name=name,
        inputs=[parse_input(t) for t in input_ or ()],
        params=parse_params(param or (), params_file or ()),
        outputs=list(output or ()),
        metrics=metrics,
        env=env,
        env_name=env_name,
        extra={ALLOW_DIFFER_KEY: globs} if globs else {},
        code_limits=limits,
        allow_secrets=allow_secrets,
    )
    from reprocas.prompts import run as prompts
    from reprocas.prompts.ask import Asker
    from reprocas.prompts.settings import get as setting

    asker = Asker(yes=yes, no_input=no_input)
    out_sink = sys.stderr.buffer if as_json else sys.stdout.buffer
    with open_repo() as repo:
        refs = [ref for ref, _ in spec.inputs]
        run_name = name or default_name(spec.command)
        went_on = prompts.before_run(
            repo, setting(repo.store, "data-change"), refs, spec.cwd, asker, _say, run_name
        )
        if went_on:
            spec.extra["uncommitted_inputs"] = went_on
        r = record(repo.store, spec, say=_say, stdout_to=out_sink, stderr_to=sys.stderr.buffer)
        if r.error is None and r.run.exit_code == 0 and r.run.outputs:
            prompts.after_run(
                repo, setting(repo.store, "snapshot-on-save"), r.handle.ref, spec.cwd, asker,
                _say, refs,
            )  # fmt: skip
    if as_json:
        emit_json(run_json(r.handle, r.run, r.environment_ref))
    elif r.error is None:
        dur = (r.run.end_ns - r.run.start_ns) / 1e9
        _say(
            f"recorded run {r.handle.ref} ({r.handle.id.short}): {r.run.status}, "
            f"exit {r.run.exit_code}, {dur:.2f}s"
        )
        if r.environment_ref:
            origin = "--env-name" if env_name else f"named after the working directory {r.run.cwd}"
            _say(f"environment {r.environment_ref} ({origin})")
    if r.error is not None:
        raise r.error
    if r.run.exit_code != 0:
        raise typer.Exit(r.run.exit_code)


def adopt(
    output: Annotated[
        Path, typer.Argument(metavar="OUTPUT", help="The file or directory that was made.")
    ],
    from_: Annotated[
        list[str] | None,
        typer.Option(
            "--from",
            "-f",
            help="A version it was made from (NAME@vN, a run's outputs runs/NAME@vN; repeatable).",
        ),
    ] = None,
    message: Annotated[
        str | None, typer.Option("--message", "-m", help="How it was made (recorded).")
    ] = None,
    name: Annotated[
        str | None,
        typer.Option("--name", "-n", help="Run name (default: from OUTPUT's name)."),
    ] = None,
    as_json: Annotated[bool, JsonOpt] = False,
) -> None:
    """Record a result made without `reprocas run` as a run whose provenance is declared.

    OUTPUT is committed as the run's output (runs/NAME), --from are its inputs and -m
    says how it was made; the run is marked declared (not observed): it has no command,
    environment or code, so it cannot be replayed, but it can be linked, noted and asked
    `why` about. Example: reprocas adopt model/ --from clinical@v4 -m "trained in a notebook"
    """
    from reprocas.provenance.adopt import adopt as do_adopt
    from reprocas.provenance.run_store import run_json

    with open_repo() as repo:
        a = do_adopt(repo.store, output, list(from_ or ()), message or "", name=name)
    if as_json:
        emit_json(
            {**run_json(a.handle, a.run), "provenance": "declared", "how": a.run.extra["how"]}
        )
        return
    outs = ", ".join(f"{o['dataset']}@v{o['number']}" for o in a.run.outputs)
    _say(f"recorded run {a.handle.ref} ({a.handle.id.short}) as declared: output {outs}")


def replay(
    ref: Annotated[
        str,
        typer.Argument(
            metavar="RUN",
            help="The run: NAME (its latest original run, not a replay), NAME#N (any run, "
            "a replay too) or an id prefix.",
        ),
    ],
    workdir: Annotated[
        Path | None,
        typer.Option(
            "--workdir",
            help="Replay here (must be empty or absent; default: a new temporary directory, "
            "kept and printed).",
        ),
    ] = None,
    tolerance: Annotated[
        float,
        typer.Option(
            "--tolerance",
            help="Relative tolerance for metrics: |a-b| <= REL*max(|a|,|b|) (default 1e-6).",
        ),
    ] = 1e-6,
    allow_differ: Annotated[
        list[str] | None,
        typer.Option(
            "--allow-differ",
            metavar="GLOB",
            help="Output files that may differ (added or missing too), e.g. 'logs/*' "
            "(repeatable; adds to the rules recorded with the run).",
        ),
    ] = None,
    compare_table: Annotated[
        list[str] | None,
        typer.Option(
            "--compare-table",
            metavar="GLOB",
            help="Compare these table outputs (Parquet, CSV, Arrow IPC) by value: same "
            "schema, same rows in order, numeric cells within --table-tolerance (repeatable).",
        ),
    ] = None,
    table_tolerance: Annotated[
        float | None,
        typer.Option(
            "--table-tolerance",
            metavar="REL",
            help="Relative tolerance for table cells (default: --tolerance); alone, it "
            "compares every table output by value.",
        ),
    ] = None,
    as_json: Annotated[bool, JsonOpt] = False,
) -> None:
    """Replay a recorded run in a fresh directory and say whether its results match.

    Restores its code (git commit + stored diff),
    exact inputs and command; report the environment drift; compare every output by
    digest and every metric by value. The replay is recorded as a run linked to the
    original, with its verdict: identical (nothing differs), within-tolerance (an
    explicit rule covers every difference) or diverged (exit 10).
    """
    from reprocas.provenance.replay import describe
    from reprocas.provenance.replay import replay as do_replay

    out_sink = sys.stderr.buffer if as_json else sys.stdout.buffer
    with open_repo() as repo:
        r = do_replay(
            repo.store,
            ref,
            workdir=workdir,
            tolerance=tolerance,
            allow_differ=list(allow_differ or ()),
            compare_table=list(compare_table or ()),
            table_tolerance=table_tolerance,
            say=_say,
            stdout_to=out_sink,
            stderr_to=sys.stderr.buffer,
        )
    if as_json:
        emit_json(r.to_json())
    else:
        for d in r.differences:
            _say(f"  {describe(d, r.tolerance)}")
        _say(
            f"verdict: {r.verdict} — replay of {r.original.ref} recorded as {r.handle.ref} "
            f"({r.handle.id.short}), workdir {r.workdir}"
        )
    if r.exit_code:
        raise typer.Exit(r.exit_code)


def runs(
    name: Annotated[
        str | None, typer.Option("--name", "-n", help="Only runs of this name.")
    ] = None,
    as_json: Annotated[bool, JsonOpt] = False,
) -> None:
    """List recorded runs with their status, key parameters and metrics."""
    from reprocas.cli.notes import note_lines
    from reprocas.notes.store import notes_for
    from reprocas.provenance.names import get_summary, iter_runs, replay_of_ref
    from reprocas.provenance.run_store import run_inputs

    with open_repo() as repo:
        store = repo.store
        rows = []
        with store.index.read() as txn:
            if name is not None:
                from reprocas.provenance.names import resolve_run

                resolve_run(store, txn, name)  # a clear error for an unknown name
            for h in iter_runs(store, txn, name):
                s = get_summary(store, txn, h.id)
                s["replay_of_ref"] = replay_of_ref(store, txn, s.get("replay_of"))
                s["inputs"] = run_inputs(store, txn, h.id) if as_json else None
                rows.append((h, s))
        notes = notes_for(store, [h.id.hex for h, _ in rows])
    rows.sort(key=lambda hs: hs[1]["start_ns"])
    if as_json:
        emit_json(
            [
                {
                    "id": h.id.hex,
                    "ref": h.ref,
                    "name": h.name,
                    "number": h.number,
                    "status": s["status"],
                    "exit_code": s["exit_code"],
                    "start_ns": s["start_ns"],
                    "end_ns": s["end_ns"],
                    "params": s["params"],
                    "metrics": s["metrics"],
                    "replay_of": s["replay_of"].hex()
                    if isinstance(s["replay_of"], bytes)
                    else None,
                    "replay_of_ref": s["replay_of_ref"],
                    "verdict": s["verdict"],
                    "inputs": s["inputs"],
                    "param_conflicts": s.get("param_conflicts") or [],
                    "notes": [n.to_json() for n in notes[h.id.hex]],
                    "provenance": s.get("provenance") or "observed",
                }
                for h, s in rows
            ]
        )
        return
    from reprocas.model.display import format_number

    if not rows:
        typer.echo("no runs yet; record one with `reprocas run -- COMMAND`")
    for h, s in rows:
        when = dt.datetime.fromtimestamp(s["start_ns"] / 1e9, tz=dt.UTC).isoformat(
            timespec="seconds"
        )
        params = " ".join(f"{k}={format_number(v)}" for k, v in list(s["params"].items())[:4])
        mets = " ".join(f"{k}={format_number(v)}" for k, v in list(s["metrics"].items())[:4])
        replayed = ""
        if s.get("replay_of") is not None:
            of = s["replay_of_ref"] or "a run no longer here"
            replayed = f"  replay of {of}: {s.get('verdict') or '?'}"
        if s.get("provenance") == "declared":
            replayed += "  declared (adopt)"
        disagree = ", ".join(
            f"{c.get('flag') or '--' + c['name']} {c['argv']}"
            for c in s.get("param_conflicts") or ()
        )
        if disagree:
            disagree = f"  arguments disagree with params: {disagree}"
        typer.echo(
            f"{h.ref:<20} {h.id.short}  {when}  {s['status']:<6} "
            f"exit {s['exit_code']:<3} {params}  {mets}{replayed}{disagree}".rstrip()
        )
        for line in note_lines(notes[h.id.hex], indent="    "):
            typer.echo(line)


def lineage(
    ref: Annotated[
        str, typer.Argument(help="A run (NAME, NAME#N, id prefix) or a version (NAME@vN).")
    ],
    up: Annotated[bool, typer.Option("--up", help="Only upstream: what produced it.")] = False,
    down: Annotated[bool, typer.Option("--down", help="Only downstream: what used it.")] = False,
    as_json: Annotated[bool, JsonOpt] = False,
    dot: Annotated[bool, typer.Option("--dot", help="Print Graphviz DOT.")] = False,
) -> None:
    """What produced a run, version or environment, and what used it.

    Upstream (what produced it) and downstream (what used it) of a run, a dataset
    version or an environment snapshot."""
    from reprocas.provenance.lineage import lineage as walk

    both = not up and not down
    with open_repo() as repo:
        g = walk(repo.store, ref, up=up or both, down=down or both)
    if dot:
        sys.stdout.write(g.dot())
        return
    if as_json:
        emit_json(g.to_json())
        return
    typer.echo(g.nodes[g.root]["label"])
    for e in g.edges:
        typer.echo(f"  {g.nodes[e['from']]['label']} --{e['kind']}--> {g.nodes[e['to']]['label']}")
    if not g.edges:
        typer.echo("  (no recorded provenance)")


def diff_if_runs(ref_a: str, ref_b: str, as_json: bool) -> bool:
    """`reprocas diff` on two runs: print the run diff and return True; False when the
    refs are not both runs (the caller diffs dataset versions)."""
    from reprocas.provenance.names import is_run_ref
    from reprocas.provenance.rundiff import diff_runs, render

    with open_repo() as repo:
        with repo.store.index.read() as txn:
            both = is_run_ref(repo.store, txn, ref_a) and is_run_ref(repo.store, txn, ref_b)
        if not both:
            return False
        d = diff_runs(repo.store, ref_a, ref_b)
    if as_json:
        emit_json(d)
    else:
        for ln in render(d):
            typer.echo(ln)
    return True
