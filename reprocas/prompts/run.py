"""What ``reprocas run`` checks before and after the command (opt-in: ``prompt.*``).

Before: each committed dataset whose working path (where its latest version was
committed from, on this host) is an input's dataset or lies inside the run's working
directory is compared with that version (the ``status`` machinery). A change is said
(``warn``) or asked about (``ask``: commit it first, with a step); when the user goes on,
the run records it in ``extra.uncommitted_inputs``.

After a run that produced outputs (``prompt.snapshot-on-save = ask``): snapshot the
environment (a light one when the run took none), commit the changed dataset paths, and
keep it all together with a ``--protect`` note about the run, so that the results can be
reproduced (and later packaged).
"""

from __future__ import annotations

import os
import socket
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from reprocas.errors import ReprocasError
from reprocas.prompts.ask import Asker

if TYPE_CHECKING:
    from reprocas.api import Repo
    from reprocas.ops.status import Status

Say = Callable[[str], None]


@dataclass
class DataChange:
    dataset: str
    path: Path
    status: Status

    def describe(self) -> str:
        """``encounters.csv changed since clinical@v3 (1,204 rows added)``."""
        st = self.status
        what = self.path.name
        if len(st.changed) == 1 and not st.added and not st.removed:
            rel = st.changed[0]
            what = rel if self.path.is_dir() else self.path.name
            t = st.tables.get(rel)
            if t is not None and None not in t.rows:
                a, b = t.rows
                assert a is not None and b is not None
                n = b - a
                rows = (
                    f"{n:,} rows added" if n > 0 else f"{-n:,} rows removed" if n else "rows edited"
                )
                return f"{what} changed since {st.ref} ({rows})"
            return f"{what} changed since {st.ref}"
        parts = [
            f"{len(x)} {label}"
            for x, label in ((st.added, "added"), (st.removed, "removed"), (st.changed, "changed"))
            if x
        ]
        return f"{what} changed since {st.ref} ({', '.join(parts)} files)"

    def to_json(self) -> dict[str, Any]:
        st = self.status
        return {
            "dataset": self.dataset,
            "path": os.fsdecode(self.path),
            "ref": st.ref,
            "id": st.id,
            "added": len(st.added),
            "removed": len(st.removed),
            "changed": len(st.changed),
        }


def _candidates(repo: Repo, input_refs: list[str], cwd: Path) -> dict[str, Path]:
    """Datasets (name -> working path) whose latest version came from a path on this
    host that still exists, and that are an input's dataset or inside ``cwd``."""
    from reprocas.ops.status import _source_of

    store = repo.store
    host = socket.gethostname()
    here = cwd.resolve()
    wanted: set[str] = set()
    out: dict[str, Path] = {}
    with store.index.read() as txn:
        for ref in input_refs:
            try:
                wanted.add(store.resolve(txn, ref).name)
            except ReprocasError:
                continue  # the run reports a bad input itself
        for name in store.datasets(txn):
            latest = store.latest(txn, name)
            if latest is None:
                continue
            snap = store.load_snapshot(txn, latest[1])
            src = _source_of(snap) if snap.kind == "dataset" else None
            if src is None or src[1] != host:
                continue
            path = Path(src[0])
            inside = path == here or here in path.parents
            if (name in wanted or inside) and (path.exists() or path.is_symlink()):
                out[name] = path
    return out


def data_changes(repo: Repo, input_refs: list[str], cwd: Path) -> list[DataChange]:
    from reprocas.ops.status import status

    out = []
    for name, path in sorted(_candidates(repo, input_refs, cwd).items()):
        try:
            st = status(repo.store, path, name)
        except ReprocasError:
            continue
        if not st.clean:
            out.append(DataChange(name, path, st))
    return out


def before_run(
    repo: Repo, mode: str, input_refs: list[str], cwd: Path, asker: Asker, say: Say, run_name: str
) -> list[dict[str, Any]]:
    """The data-change check (``mode``: off, warn, ask); returns the changes the user
    went on with (for ``extra.uncommitted_inputs``)."""
    if mode == "off":
        return []
    went_on = []
    for c in data_changes(repo, input_refs, cwd):
        msg = c.describe()
        if mode == "ask":
            nxt = f"{c.dataset}@v{int((c.status.ref or '@v0').rpartition('@v')[2]) + 1}"
            yes = asker.confirm(f"{msg}. Commit it as {nxt} first, with a step?", default=False)
            if yes:
                step = asker.text("step (how it was made; empty for none): ")
                r = repo.commit(
                    c.path, c.dataset, step=step or None, message=f"committed before run {run_name}"
                )
                say(f"committed {r.ref} ({r.id.short})" + (f", step: {step}" if step else ""))
                continue
        say(f"warning: {msg}; the run goes on with the committed version")
        went_on.append(c.to_json())
    return went_on


SNAPSHOT_QUESTION = (
    "Snapshot the environment and the datasets with the results? This makes a reproducible package."
)


def after_run(
    repo: Repo,
    mode: str,
    run_ref: str,
    cwd: Path,
    asker: Asker,
    say: Say,
    input_refs: list[str],
) -> dict[str, Any] | None:
    """The snapshot question after a run with outputs; what was snapshotted, or None."""
    if mode != "ask":
        return None
    if not asker.confirm(SNAPSHOT_QUESTION, default=True):
        return None
    from reprocas.provenance.names import load_run, resolve_run

    store = repo.store
    with store.index.read() as txn:
        h = resolve_run(store, txn, run_ref)
        run = load_run(store, txn, h.id)
    about = [h.id.hex]
    env_ref = None
    if run.environment is None:
        from reprocas.provenance.run_exec import capture_environment

        env = capture_environment(store, "light", cwd)
        if env.snapshot is not None:
            about.append(env.snapshot.hex)
            env_ref = env.ref
    else:
        about.append(run.environment.hex)
    committed = []
    for c in data_changes(repo, input_refs, cwd):
        r = repo.commit(c.path, c.dataset, step=f"snapshot with the results of {h.ref}")
        committed.append(r.ref)
        about.append(r.id.hex)
    about += [bytes(o["snapshot"]).hex() for o in run.outputs]
    about += [bytes(i["snapshot"]).hex() for i in run.inputs]
    note = repo.note(
        f"snapshot with the results of {h.ref}",
        about,
        kind="observation",
        protect=True,
    )
    parts = [p for p in (env_ref, *committed) if p]
    say(
        f"snapshot with the results of {h.ref}: "
        + (", ".join(parts) + "; " if parts else "")
        + f"kept together by note {note.id.hex[:12]}"
    )
    return {"note": note.id.hex, "environment": env_ref, "committed": committed}
