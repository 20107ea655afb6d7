"""``reprocas env``: environment snapshots — capture, show, log, diff, export, restore, check."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from reprocas.cli.common import AllowSecretsOpt, JsonOpt, open_repo, progress_bar, warn
from reprocas.cli.output import emit_json, human_bytes
from reprocas.model.display import iso_time

if TYPE_CHECKING:
    from reprocas.environment.store import EnvRecord

app = typer.Typer(
    help=(
        "Environment snapshots: capture exactly what a result ran on (interpreter, OS, "
        "hardware, packages, lock files, allowlisted variables, git state), see how it "
        "drifted, and rebuild it."
    ),
    no_args_is_help=True,
)

PythonOpt = typer.Option(
    "--python",
    help="The interpreter to capture, e.g. a venv's bin/python "
    "(default: $VIRTUAL_ENV's, then $CONDA_PREFIX's, then reprocas's own).",
)
ProjectOpt = typer.Option(
    "--project", help="Project directory: lock files and git state (default: current directory)."
)
EnvAllowOpt = typer.Option(
    "--env-allow",
    help="Also keep environment variables matching this glob (repeatable; also "
    "$REPROCAS_ENV_ALLOW, comma-separated). Names containing TOKEN, KEY, SECRET, "
    "PASSWORD, PASSWD, PWD, CREDENTIAL, AUTH, PRIVATE, SALT, COOKIE or SESSION are never "
    "kept.",
)
IgnoreOpt = typer.Option(
    "--ignore",
    help="Leave a section (packages, conda, python, platform, gpu, container, git, env, "
    "files) or a dotted field (python.executable) out of the comparison. Repeatable.",
)


def _default_name(project: Path | None) -> str:
    from reprocas.environment.store import env_name

    return env_name(None, (project or Path.cwd()).resolve())


def _record_json(rec: EnvRecord) -> dict[str, Any]:
    snap = rec.snapshot
    out: dict[str, Any] = {
        "ref": rec.ref,
        "id": rec.version.id.hex,
        "environment_id": rec.environment_id.hex,
        "name": snap.name,
        "time": iso_time(snap.time_ns),
        "author": snap.author,
        "message": snap.message,
        "tags": list(rec.version.tags),
        "full": rec.full,
        "site_packages": rec.site_packages,
        "env_allow": list(rec.env_allow),
    }
    out.update(rec.facts)
    return out


# -- snapshot ---------------------------------------------------------------------------


def snapshot(
    python: Annotated[str | None, PythonOpt] = None,
    project: Annotated[Path | None, ProjectOpt] = None,
    name: Annotated[
        str | None,
        typer.Option(
            "--name",
            help="Snapshot name, env/NAME (default: env/<project dir>, e.g. env/myproj for "
            "~/myproj; the output says which was used).",
        ),
    ] = None,
    full: Annotated[
        bool,
        typer.Option(
            "--full",
            help="Also store the site-packages tree(s) as content (deduplicated across "
            "snapshots), so that `env restore` works offline even when packages vanish.",
        ),
    ] = False,
    tag: Annotated[
        list[str] | None, typer.Option("--tag", "-t", help="Tag the snapshot (repeatable).")
    ] = None,
    message: Annotated[str, typer.Option("--message", "-m", help="Why this snapshot.")] = "",
    env_allow: Annotated[list[str] | None, EnvAllowOpt] = None,
    allow_secrets: Annotated[bool, AllowSecretsOpt] = False,
    as_json: Annotated[bool, JsonOpt] = False,
) -> None:
    """Capture the environment as the next snapshot env/NAME@vN.

    Equal environments give equal facts ids; a snapshot identical to the latest one
    (same facts, same lock files, same patch, same site-packages) is not stored again.
    Secrets in the uncommitted diff, the lock files and the kept variables are redacted
    first, with a warning naming the file and line (--allow-secrets keeps them).
    """
    from reprocas.environment.capture import capture
    from reprocas.environment.store import env_name, save

    with open_repo() as repo:
        cap = capture(
            python,
            project,
            env_allow=tuple(env_allow or ()),
            exclude=(repo.root.resolve(),),
            allow_secrets=allow_secrets,
        )
        warn(cap.warnings())
        target = env_name(name, cap.project)
        name_from = "--name" if name else f"the project directory {cap.project}"
        with progress_bar("storing site-packages", full and not as_json) as bar:
            r = save(
                repo.store,
                cap,
                target,
                full=full,
                message=message,
                tags=tuple(tag or ()),
                progress=bar,
            )
    py = cap.facts["python"]
    git = cap.facts.get("git") or {}
    if as_json:
        emit_json(
            {
                "ref": r.ref,
                "id": r.id.hex,
                "created": r.created,
                "name": r.name,
                "name_from": "option" if name else "project",
                "environment_id": r.environment_id.hex,
                "full": r.full,
                "python": py["version"],
                "executable": py["executable"],
                "packages": len(cap.facts["packages"]),
                "files": r.files,
                "logical_bytes": r.logical_bytes,
                "new_bytes": r.new_bytes,
                "site_packages": [s.to_json() for s in r.site_packages],
                "notes": list(r.notes),
                "redacted": []
                if allow_secrets
                else [f.to_json() for f in (*cap.git_findings, *cap.findings)],
                "secrets_allowed": allow_secrets,
            }
        )
        return
    for note in r.notes:
        typer.echo(f"note: {note}", err=True)
    if r.created:
        typer.echo(f"{r.ref}  {r.id.short}")
    else:
        typer.echo(f"unchanged: the environment equals the latest snapshot, reused {r.ref}")
    hint = "" if name else "; choose another with --name"
    typer.echo(f"  name {r.name} (from {name_from}{hint})")
    code = f", git {str(git.get('commit') or '')[:12]}" if git.get("commit") else ""
    dirty = " (dirty)" if git.get("dirty") else ""
    typer.echo(
        f"  {py['implementation']} {py['version']}, {len(cap.facts['packages'])} packages"
        f"{code}{dirty}; facts {r.environment_id.short}"
    )
    if r.full:
        logical = sum(s.logical_bytes for s in r.site_packages)
        typer.echo(f"  site-packages: {human_bytes(logical)} in {len(r.site_packages)} tree(s)")
    typer.echo(
        f"  {human_bytes(r.logical_bytes)} logical, {human_bytes(r.new_bytes)} new in the store"
    )


# -- show / log ---------------------------------------------------------------------------


def show(
    ref: Annotated[
        str | None,
        typer.Argument(help="env/NAME[@vN|@TAG], NAME, or an id prefix (default: latest)."),
    ] = None,
    as_json: Annotated[bool, JsonOpt] = False,
) -> None:
    """Show one environment snapshot: interpreter, platform, GPU, packages, git, variables."""
    from reprocas.environment.store import latest_ref, load

    with open_repo() as repo:
        rec = load(repo.store, ref or latest_ref(repo.store, _default_name(None)))
    if as_json:
        emit_json(_record_json(rec))
        return
    for line in describe(rec):
        typer.echo(line)


def _secret_lines(facts: dict[str, Any]) -> list[str]:
    """What the snapshot redacted (or kept under --allow-secrets): where, never what."""
    from reprocas.security import Finding

    git = facts.get("git") or {}
    redacted = [*(git.get("redacted") or []), *(facts.get("redacted") or [])]
    kept = [*(git.get("secrets_kept") or []), *(facts.get("secrets_kept") or [])]
    out = []
    for label, found in (("redacted", redacted), ("kept", kept)):
        where = [Finding.from_json(d) for d in found if isinstance(d, dict)]
        if where:
            out.append(
                f"secrets     {len(where)} {label}: "
                + ", ".join(f"{w.where} ({w.kind})" for w in where)
            )
    if (facts.get("secrets_allowed") or git.get("secrets_allowed")) and not kept:
        out.append("secrets     --allow-secrets (none found)")
    return out


def describe(rec: EnvRecord) -> list[str]:
    """A snapshot as text for people."""
    f = rec.facts
    py, plat = f.get("python") or {}, f.get("platform") or {}
    dist = plat.get("distribution") or {}
    libc = plat.get("libc") or ["", ""]
    cpu = plat.get("cpu") or {}
    out = [
        f"ref         {rec.ref}",
        f"id          {rec.version.id.hex}",
        f"facts       {rec.environment_id.hex}",
        f"time        {iso_time(rec.snapshot.time_ns)}   {rec.snapshot.author}",
        f"tags        {', '.join(rec.version.tags) or '-'}",
        f"python      {py.get('implementation')} {py.get('version')} ({py.get('executable')})"
        + (" venv" if py.get("venv") else "")
        + (" conda" if py.get("conda") else ""),
        f"platform    {plat.get('system')} {plat.get('release')} {plat.get('machine')}, "
        f"{dist.get('pretty_name') or dist.get('id') or '?'}, {' '.join(libc)}",
        f"cpu         {cpu.get('model')} x{cpu.get('count')}, "
        f"{human_bytes(plat.get('memory_bytes') or 0)} memory",
    ]
    gpu = f.get("gpu")
    if gpu:
        names = ", ".join(d.get("name", "?") for d in gpu.get("devices") or []) or "none"
        out.append(
            f"gpu         {names}; driver {gpu.get('driver') or '-'}, CUDA {gpu.get('cuda') or '-'}"
            + (f", nvcc {gpu['nvcc']}" if gpu.get("nvcc") else "")
        )
    else:
        out.append("gpu         none seen (no nvidia-smi)")
    c = f.get("container")
    if c:
        out.append(
            f"container   {c.get('runtime')}"
            + (f", image {c['image']}" if c.get("image") else "")
            + (f" {c['image_digest']}" if c.get("image_digest") else "")
        )
    git = f.get("git")
    if git:
        diff = git.get("diff") or {}
        out.append(
            f"git         {git.get('commit') or '(no commits)'} on "
            f"{git.get('branch') or '(detached HEAD)'}"
            + (f", {git['remote_url']}" if git.get("remote_url") else "")
        )
        if diff:
            out.append(
                f"            uncommitted: {diff['files']} file{'' if diff['files'] == 1 else 's'}"
                " changed "
                f"({diff['binary_files']} binary), patch {human_bytes(diff['bytes'])}"
            )
        if git.get("untracked_count"):
            out.append(f"            untracked: {git['untracked_count']} paths")
    else:
        out.append("git         not a git repository")
    env = f.get("env") or {}
    out.append(f"variables   {len(env)} kept by the allowlist")
    out += [f"            {k}={v}" for k, v in sorted(env.items())]
    files = f.get("files") or []
    out.append(f"lock files  {', '.join(x['path'] for x in files) or '-'}")
    out += _secret_lines(f)
    if rec.full:
        out.append(
            "stored      site-packages: " + ", ".join(str(s["path"]) for s in rec.site_packages)
        )
    pkgs = f.get("packages") or []
    out.append(f"packages    {len(pkgs)}")
    out += [f"            {p['name']}=={p['version']}" + _src(p) for p in pkgs]
    conda = f.get("conda")
    if conda:
        out.append(f"conda       {len(conda.get('packages') or [])} packages")
    return out


def _src(p: dict[str, Any]) -> str:
    s = p.get("source") or {}
    if not s:
        return ""
    if s.get("kind") == "vcs":
        return f"  ({s.get('vcs')} {s.get('url')} @ {str(s.get('commit', ''))[:12]})"
    return f"  ({s.get('kind')} {s.get('url')})"


def log(
    name: Annotated[str | None, typer.Argument(help="env/NAME (default: all).")] = None,
    as_json: Annotated[bool, JsonOpt] = False,
) -> None:
    """List environment snapshots, newest first."""
    from reprocas.environment.store import history

    with open_repo() as repo:
        records = history(repo.store, name)
    rows: list[dict[str, Any]] = []
    for rec in records:
        f = rec.facts
        git = f.get("git") or {}
        rows.append(
            {
                "ref": rec.ref,
                "id": rec.version.id.hex,
                "environment_id": rec.environment_id.hex,
                "time": iso_time(rec.snapshot.time_ns),
                "python": (f.get("python") or {}).get("version"),
                "packages": len(f.get("packages") or []),
                "full": rec.full,
                "git_commit": git.get("commit"),
                "dirty": bool(git.get("dirty")),
                "tags": list(rec.version.tags),
                "message": rec.snapshot.message,
            }
        )
    if as_json:
        emit_json(rows)
        return
    if not rows:
        typer.echo("no environment snapshots yet; take one with `reprocas env snapshot`")
    for r in rows:
        tags = f" [{', '.join(r['tags'])}]" if r["tags"] else ""
        code = str(r["git_commit"] or "-")[:12] + ("*" if r["dirty"] else "")
        full = " full" if r["full"] else ""
        typer.echo(
            f"{r['ref']:<28} {r['id'][:12]}  {r['time']}  python {r['python']}  "
            f"{r['packages']:>4} pkgs  git {code}{full}{tags}"
        )
        if r["message"]:
            typer.echo(f"    {r['message']}")


# -- diff / check -------------------------------------------------------------------------


def diff(
    a: Annotated[str, typer.Argument(help="The older snapshot.")],
    b: Annotated[str, typer.Argument(help="The newer snapshot.")],
    ignore: Annotated[list[str] | None, IgnoreOpt] = None,
    as_json: Annotated[bool, JsonOpt] = False,
) -> None:
    """What changed from snapshot A to snapshot B, grouped by section.

    Packages added, removed and changed (from -> to); interpreter, OS, GPU, driver and
    CUDA; container; code commit and uncommitted changes; environment variables; lock
    files.
    """
    from reprocas.environment.diff import diff as diff_facts
    from reprocas.environment.diff import render
    from reprocas.environment.store import load

    with open_repo() as repo:
        ra, rb = load(repo.store, a), load(repo.store, b)
    d = diff_facts(ra.facts, rb.facts, ignore=tuple(ignore or ()))
    if as_json:
        emit_json({"a": ra.ref, "b": rb.ref, **d.to_json()})
        return
    for line in render(d, ra.ref, rb.ref):
        typer.echo(line)


def check(
    ref: Annotated[
        str | None,
        typer.Argument(help="The snapshot to compare with (default: the latest of this project)."),
    ] = None,
    python: Annotated[str | None, PythonOpt] = None,
    project: Annotated[Path | None, ProjectOpt] = None,
    ignore: Annotated[list[str] | None, IgnoreOpt] = None,
    as_json: Annotated[bool, JsonOpt] = False,
) -> None:
    """Compare the current environment with a snapshot and print the drift.

    Exit code 0 when they match, 1 when they differ: the drift alarm to run before a
    job starts. The interpreter checked is --python, else the snapshot's own
    interpreter when it still exists; variables use the snapshot's allowlist.
    """
    from reprocas.environment.capture import capture, default_python
    from reprocas.environment.diff import diff as diff_facts
    from reprocas.environment.diff import render
    from reprocas.environment.store import latest_ref, load

    with open_repo() as repo:
        rec = load(repo.store, ref or latest_ref(repo.store, _default_name(project)))
        if python is None:
            exe = (rec.facts.get("python") or {}).get("executable")
            python = exe if exe and Path(exe).exists() else default_python()
        cap = capture(
            python,
            project,
            env_allow=rec.env_allow,
            default_allow=not rec.env_allow,
            exclude=(repo.root.resolve(),),
            # Redact as the snapshot did, so that a kept secret is not reported as drift.
            allow_secrets=bool(rec.facts.get("secrets_allowed")),
        )
    d = diff_facts(rec.facts, cap.facts, ignore=tuple(ignore or ()))
    if as_json:
        emit_json({"ref": rec.ref, "python": python, **d.to_json()})
    else:
        for line in render(d, rec.ref, f"current ({python})"):
            typer.echo(line)
    if not d.same:
        raise typer.Exit(1)


# -- export / restore -----------------------------------------------------------------------


def export(
    ref: Annotated[
        str | None, typer.Argument(help="The snapshot (default: the latest of this project).")
    ] = None,
    fmt: Annotated[
        str,
        typer.Option(
            "--format",
            "-f",
            help="requirements (pinned; VCS/editable installs as such), dockerfile (on the "
            "matching python image; installs requirements.txt) or conda (conda envs only).",
        ),
    ] = "requirements",
    output: Annotated[
        Path | None,
        typer.Option(
            "--output",
            "-o",
            help="Write to this file (default: standard output). For dockerfile, "
            "requirements.txt is written beside it (or into it, if a directory).",
        ),
    ] = None,
) -> None:
    """Write a recipe that rebuilds a snapshot: requirements, Dockerfile or conda file."""
    from reprocas.environment.export import export as export_text
    from reprocas.environment.export import requirements
    from reprocas.environment.store import latest_ref, load

    with open_repo() as repo:
        rec = load(repo.store, ref or latest_ref(repo.store, _default_name(None)))
    text = export_text(rec.facts, fmt, rec.ref)
    if output is None:
        sys.stdout.write(text)
        return
    if fmt == "dockerfile":
        if output.is_dir():
            output = output / "Dockerfile"
        (output.parent / "requirements.txt").write_text(requirements(rec.facts, rec.ref))
    output.write_text(text)
    typer.echo(f"{rec.ref} -> {output}", err=True)


def restore(
    ref: Annotated[str, typer.Argument(help="The snapshot to rebuild.")],
    dest: Annotated[Path, typer.Argument(help="Where to create the venv (new or empty).")],
    method: Annotated[
        str,
        typer.Option(
            "--method",
            help="store: check the site-packages out of the store (offline, exact; needs a "
            "--full snapshot); pip: install the pinned requirements; auto: store when possible.",
        ),
    ] = "auto",
    python: Annotated[
        str | None,
        typer.Option(
            "--python",
            help="Interpreter to create the venv with (must match the snapshot's X.Y; "
            "default: the snapshot's base interpreter, else pythonX.Y on PATH).",
        ),
    ] = None,
    as_json: Annotated[bool, JsonOpt] = False,
) -> None:
    """Create a venv at DEST that reproduces a snapshot.

    From a --full snapshot the site-packages are checked out of the store (offline,
    exact); otherwise the pinned requirements are installed with pip. The new venv's
    packages are then compared with the snapshot's: exit code 1 if they differ.
    Console scripts (bin/) are not restored from the store: run them as python -m NAME.
    """
    from reprocas.environment.restore import restore as do_restore

    with open_repo() as repo, progress_bar("restoring site-packages", not as_json) as bar:
        r = do_restore(repo.store, ref, dest, method=method, python=python, progress=bar)
    if as_json:
        emit_json(r.to_json())
    else:
        for note in r.notes:
            typer.echo(f"note: {note}", err=True)
        how = "from the store" if r.method == "store" else "with pip"
        typer.echo(f"{r.ref} -> {r.dest} ({how}): {r.packages} packages, python {r.python}")
        if r.method == "store":
            typer.echo(f"  {r.files} files, {human_bytes(r.bytes)} checked out and verified")
        if r.exact:
            typer.echo("  the package set equals the snapshot's")
        else:
            from reprocas.environment.diff import EnvDiff, render

            for line in render(EnvDiff(packages=r.diff), r.ref, str(r.dest))[2:]:
                typer.echo(f"  {line}")
    if not r.exact:
        raise typer.Exit(1)


for _command in (snapshot, show, log, diff, export, restore, check):
    app.command(_command.__name__)(_command)
