"""The paper-ready files of a package: README.md, REPRODUCING.md, CHECKLIST.md,
CITATION.cff, requirements.txt and Dockerfile, each filled from the recorded evidence."""

from __future__ import annotations

import json
import os
import shlex
from typing import Any

from reprocas.environment import export as env_export
from reprocas.package import requirements

REPRODUCE_FENCE = "```sh reproduce"


PARAMS_DIR = "params"


def _argv(r: Any) -> list[str]:
    """The command as the replay runs it (a template expanded from the params), with
    the recorded interpreter's path replaced by the venv's ``python``."""
    from reprocas.provenance.run_argv import recorded_command_line

    argv = list(recorded_command_line(list(r.run.command), r.run.params, r.run.extra).argv)
    if argv and os.path.basename(argv[0]).startswith("python"):
        argv[0] = "python"
    return argv


def params_file(r: Any) -> str:
    return f"{PARAMS_DIR}/{r.key}.json"


def params_json(r: Any) -> bytes:
    """The params as the command received them in the file named by REPROCAS_PARAMS."""
    return json.dumps(dict(r.run.params), indent=2, sort_keys=True, ensure_ascii=False).encode()


def _env_prefix(r: Any) -> str:
    from reprocas.provenance.run_argv import PARAMS_ENV, param_variables

    variables, _ = param_variables(r.run.params)
    if not r.run.params:
        return ""
    pairs = [f"{k}={shlex.quote(v)}" for k, v in sorted(variables.items())]
    pairs.append(f'{PARAMS_ENV}="$PKG/{params_file(r)}"')
    return "env " + " ".join(pairs) + " "


def work_cwd(r: Any) -> str:
    return f"work/{r.key}" if r.rel_cwd in ("", ".") else f"work/{r.key}/{r.rel_cwd}"


def _steps(r: Any) -> list[str]:
    """Shell lines, run from the package's ``data/`` directory."""
    work = f"work/{r.key}"
    lines = [f"rm -rf {work}", f"mkdir -p {work}", f"cp -R code/{r.key}/. {work}/"]
    cwd = work_cwd(r)
    for i, v in zip(r.run.inputs, r.inputs, strict=True):
        if i.get("path") is None:
            continue  # read through the Python API: needs reprocas
        dest = f"{cwd}/{i['path']}"
        sub = str(i.get("subpath") or "").strip("/")
        src = f"datasets/{v.ref}" + (f"/{sub}" if sub else "")
        lines.append(f"mkdir -p {shlex.quote(dest)}")
        lines.append(f"cp -R {shlex.quote(src)}/. {shlex.quote(dest)}/")
    lines.append(f"(cd {shlex.quote(cwd)} && {_env_prefix(r)}{shlex.join(_argv(r))})")
    return lines


def expected_digests(r: Any) -> list[tuple[str, str]]:
    """(path from data/, sha256) of each output file a replay must reproduce, and the
    metrics file when the run recorded where it came from."""
    from reprocas.provenance.run_common import METRICS_PATH_KEY

    cwd = work_cwd(r)
    out: dict[str, str] = {}
    for v in r.outputs:
        for p, (_b3, _size, _mode, sha) in sorted(v.entries.items()):
            out[f"{cwd}/{p}"] = sha
    metrics = r.run.extra.get(METRICS_PATH_KEY)
    if isinstance(metrics, str) and metrics and r.metrics_sha256:
        out[os.path.normpath(f"{cwd}/{metrics}")] = r.metrics_sha256
    return sorted(out.items())


def reproducing(plan: Any) -> str:
    lines = [
        "# Reproducing this package by hand",
        "",
        "You need Python and this unzipped package; reprocas is not needed.",
        "",
        "1. In a new virtual environment, install what the code imports: "
        "`pip install -r requirements.txt`",
        "   (`requirements-lock.txt` pins every distribution of the recorded environment; "
        "`Dockerfile` builds it).",
    ]
    if plan.data != "include":
        lines.append(
            "2. This package holds no data bytes (`--data metadata-only`): put each "
            "version's files under `datasets/NAME@vN/` first and check them with "
            "`reprocas check-dir DIR --package PACKAGE.zip NAME@vN`, or against "
            "`reprocas/files.json` (size and BLAKE3 of every file)."
        )
    lines += [
        "",
        "From the package's `data/` directory, run:",
        "",
        REPRODUCE_FENCE,
        'PKG="$(pwd)"',
    ]
    for r in plan.runs:
        lines += _steps(r)
    lines += [
        "```",
        "",
        "Then check the outputs' SHA-256 digests (`sha256sum -c` reads this block):",
        "",
        "```sha256",
    ]
    for r in plan.runs:
        lines += [f"{d}  {p}" for p, d in expected_digests(r)]
    lines += [
        "```",
        "",
        "With reprocas: `reprocas import PACKAGE.zip`, then `reprocas replay RUN`.",
        "",
    ]
    return "\n".join(lines)


def readme(plan: Any) -> str:
    lines = [f"# {plan.title}", ""]
    for r in plan.runs:
        run = r.run
        lines += [
            f"## Run {r.ref} (`{r.id_hex}`)",
            "",
            f"Command: `{shlex.join(run.command)}` (exit {run.exit_code}, {run.status})",
            "",
            "Inputs: " + ", ".join(f"{v.ref} (`{v.id_hex[:16]}`)" for v in r.inputs),
            "",
            "Outputs: " + ", ".join(f"{v.ref} (`{v.id_hex[:16]}`)" for v in r.outputs),
            "",
            "| metric | value |",
            "|---|---|",
        ]
        for k in sorted(run.metrics):
            m = run.metrics[k]
            lines.append(f"| {k} | {m.get('value', m.get('values'))} |")
        lines += ["", "Replay: `reprocas import PACKAGE.zip && reprocas replay " + r.ref + "`", ""]
    lines += ["See REPRODUCING.md to replay without reprocas.", ""]
    return "\n".join(lines)


def checklist(plan: Any) -> str:
    lines = ["# ML reproducibility checklist (filled from recorded evidence)", ""]
    for r in plan.runs:
        run = r.run
        seeds = sorted(k for k in run.params if "seed" in k.lower())
        code = run.code or {}
        lines += [
            f"## {r.ref}",
            "",
            f"- [x] Code available: `code/{r.key}/` (commit {code.get('commit') or 'none'}, "
            f"dirty diff {'applied' if code.get('dirty') else 'none'})"
            f" — from run object {r.id_hex}",
            "- [x] Data versions: "
            + ", ".join(f"{v.ref} snapshot {v.id_hex}" for v in r.inputs)
            + " — from the run's inputs",
            f"- [{'x' if r.env else ' '}] Environment: "
            + (
                f"snapshot {r.env.id_hex}, requirements.txt, Dockerfile"
                if r.env
                else "not recorded"
            ),
            f"- [{'x' if seeds else ' '}] Random seeds: "
            + (
                ", ".join(f"{k}={run.params[k]}" for k in seeds)
                if seeds
                else "no seed seen in params"
            )
            + " — from the run's params",
            f"- [{'x' if run.metrics else ' '}] Metrics: "
            + (", ".join(sorted(run.metrics)) or "none")
            + f"; replay verdict of this package: {run.extra.get('verdict') or 'not replayed yet'}",
            "",
        ]
    return "\n".join(lines)


def citation(plan: Any) -> str:
    authors = sorted({r.run.user for r in plan.runs}) or ["unknown"]
    lines = [
        "cff-version: 1.2.0",
        "message: If you use this result, please cite it as below.",
        f"title: {json.dumps(plan.title)}",
        "authors:",
    ]
    lines += [f"  - name: {json.dumps(a)}" for a in authors]
    if plan.date:
        lines.append(f"date-released: {plan.date}")
    return "\n".join(lines) + "\n"


def documents(plan: Any, listing: list[dict[str, Any]]) -> dict[str, bytes]:
    out = {
        "README.md": readme(plan),
        "REPRODUCING.md": reproducing(plan),
        "CHECKLIST.md": checklist(plan),
        "CITATION.cff": citation(plan),
    }
    for r in plan.runs:
        if r.run.params:
            out[params_file(r)] = params_json(r).decode()
    env = next((r.env for r in plan.runs if r.env is not None and r.env.facts), None)
    if env is not None and env.facts:
        label = f"environment snapshot {env.ref} ({env.id_hex[:16]})"
        code = {p: b for r in plan.runs for p, b in r.code.items()}
        out["requirements.txt"] = requirements.imported(env.facts, code, label)
        out["requirements-lock.txt"] = env_export.requirements(env.facts, label)
        out["Dockerfile"] = env_export.dockerfile(env.facts, label).replace(
            "requirements.txt", "requirements-lock.txt"
        )
    else:
        out["requirements.txt"] = "# no environment was recorded\n"
    return {k: v.encode() for k, v in out.items()}
