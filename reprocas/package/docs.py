"""The paper-ready files of a package: README.md, REPRODUCING.md, CHECKLIST.md,
CITATION.cff, requirements.txt and Dockerfile, each filled from the recorded evidence."""

from __future__ import annotations

import json
import os
import shlex
from typing import Any

from reprocas.environment import export as env_export

REPRODUCE_FENCE = "```sh reproduce"


def _command(r: Any) -> list[str]:
    argv = list(r.run.command)
    if argv and os.path.basename(argv[0]).startswith("python"):
        argv[0] = "python"
    return argv


def _steps(r: Any) -> list[str]:
    """Shell lines, run from the package's ``data/`` directory."""
    work = f"work/{r.key}"
    lines = [f"rm -rf {work}", f"mkdir -p {work}", f"cp -R code/{r.key}/. {work}/"]
    cwd = work if r.rel_cwd in ("", ".") else f"{work}/{r.rel_cwd}"
    for i, v in zip(r.run.inputs, r.inputs):
        dest = f"{cwd}/{i.get('path') or 'inputs/' + i['dataset']}"
        lines.append(f"mkdir -p {shlex.quote(dest)}")
        lines.append(f"cp -R {shlex.quote('datasets/' + v.ref)}/. {shlex.quote(dest)}/")
    lines.append(f"(cd {shlex.quote(cwd)} && {shlex.join(_command(r))})")
    return lines


def _outputs(r: Any) -> list[tuple[str, str]]:
    """(path from data/, sha256) of each output file the replay must reproduce."""
    import hashlib

    cwd = f"work/{r.key}" if r.rel_cwd in ("", ".") else f"work/{r.key}/{r.rel_cwd}"
    out = []
    for o, v in zip(r.run.outputs, r.outputs):
        for p, b in sorted(v.files.items()):
            out.append((f"{cwd}/{o['path']}/{p}", hashlib.sha256(b).hexdigest()))
    return out


def reproducing(plan: Any) -> str:
    lines = [
        "# Reproducing this package by hand",
        "",
        "You need Python and this unzipped package; reprocas is not needed.",
        "",
        "1. Install the recorded requirements: `pip install -r requirements.txt`.",
    ]
    if plan.data != "include":
        lines.append(
            "2. This package holds no data bytes (`--data metadata-only`): put each input "
            "version's files under `datasets/NAME@vN/` first and check them against "
            "`reprocas/files.json` (sha256 and BLAKE3 of every file)."
        )
    lines += [
        "",
        "From the package's `data/` directory, run:",
        "",
        REPRODUCE_FENCE,
    ]
    for r in plan.runs:
        lines += _steps(r)
    lines += ["```", "", "Then check the outputs' SHA-256 digests:", "", "```sha256"]
    for r in plan.runs:
        lines += [f"{d}  {p}" for p, d in _outputs(r)]
    lines += ["```", "", "With reprocas: `reprocas import PACKAGE.zip`, then `reprocas replay RUN`.", ""]
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
            f"dirty diff {'applied' if code.get('dirty') else 'none'}) — from run object {r.id_hex}",
            "- [x] Data versions: "
            + ", ".join(f"{v.ref} snapshot {v.id_hex}" for v in r.inputs)
            + " — from the run's inputs",
            f"- [{'x' if r.env else ' '}] Environment: "
            + (f"snapshot {r.env.id_hex}, requirements.txt, Dockerfile" if r.env else "not recorded"),
            f"- [{'x' if seeds else ' '}] Random seeds: "
            + (", ".join(f"{k}={run.params[k]}" for k in seeds) if seeds else "no seed seen in params")
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
    env = next((r.env for r in plan.runs if r.env is not None and r.env.facts), None)
    if env is not None and env.facts:
        label = f"environment snapshot {env.id_hex[:16]}"
        out["requirements.txt"] = env_export.requirements(env.facts, label)
        out["Dockerfile"] = env_export.dockerfile(env.facts, label)
    else:
        out["requirements.txt"] = "# no environment was recorded\n"
    return {k: v.encode() for k, v in out.items()}
