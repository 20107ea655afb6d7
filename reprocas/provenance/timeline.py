"""The timeline: one time-ordered stream of dataset versions, environment changes, code
changes, parameter changes and run results, so that a person sees which change came
before which jump in a metric (``reprocas log --timeline [NAME]``).

Everything is found through the indexes: versions through the refs (and the
``forgotten`` table, so history is never silently rewritten), runs through their refs,
and what links them through the provenance edges (``edges_out``/``edges_in``). Only the
runs and versions in scope are loaded.

Events (each with ``time_ns``, ``time``, ``kind`` and ``ref``):

* ``version`` — a version was committed (at its snapshot's time);
* ``environment`` — a run ran in another environment than the previous run of its name
  (at the run's start; a difference in git state alone is a ``code`` event);
* ``code`` — the commit, or the uncommitted changes, differ from the previous run's;
* ``params`` — parameters added, removed or changed since the previous run;
* ``run`` — a run's result: status, exit code, metrics and their deltas (at its end);
* ``note`` — a current decision note about something in scope (when it was recorded;
  only with ``notes=True``, as ``log --timeline`` asks).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import lmdb

from reprocas.errors import RefNotFoundError, ReprocasError, known_names
from reprocas.model.display import format_number, iso_time
from reprocas.model.ids import ObjectId
from reprocas.model.objects import Run, Snapshot
from reprocas.provenance import graph
from reprocas.provenance.names import RunHandle, iter_runs, load_run, replay_of_ref
from reprocas.provenance.run_params import metric_values
from reprocas.store.index import unpack
from reprocas.store.repository import Repository

KINDS = ("version", "environment", "code", "params", "run", "note")
_ORDER = {k: i for i, k in enumerate(KINDS)}


@dataclass
class Event:
    """One entry of the timeline; ``details`` depend on ``kind``."""

    time_ns: int
    kind: str
    ref: str
    details: dict[str, Any] = field(default_factory=dict)

    def sort_key(self) -> tuple[int, int, str]:
        return (self.time_ns, _ORDER[self.kind], self.ref)

    def to_json(self) -> dict[str, Any]:
        return {
            "time_ns": self.time_ns,
            "time": iso_time(self.time_ns),
            "kind": self.kind,
            "ref": self.ref,
            **self.details,
        }


# -- gathering ------------------------------------------------------------------------


@dataclass
class _Scope:
    versions: dict[bytes, None] = field(default_factory=dict)  # ordered set of snapshot ids
    runs: dict[bytes, RunHandle] = field(default_factory=dict)


def _forgotten(repo: Repository, txn: lmdb.Transaction, sid: bytes) -> dict[str, Any] | None:
    raw = txn.get(sid, db=repo.index.db["forgotten"])
    return dict(unpack(raw)) if raw is not None else None


def _all_forgotten(repo: Repository, txn: lmdb.Transaction) -> list[tuple[bytes, dict[str, Any]]]:
    return [(bytes(k), dict(unpack(v))) for k, v in txn.cursor(db=repo.index.db["forgotten"])]


def _gather(repo: Repository, txn: lmdb.Transaction, name: str | None) -> _Scope:
    scope = _Scope()
    if name is None:
        for ds in repo.datasets(txn):
            for _, sid in repo.versions(txn, ds):
                scope.versions[sid.raw] = None
        for sid_raw, _ in _all_forgotten(repo, txn):
            scope.versions[sid_raw] = None
        for h in iter_runs(repo, txn):
            scope.runs[h.id.raw] = h
        return scope
    found = False
    # A run name: its runs and the versions they used (environments and code are the
    # change events of those runs).
    for h in iter_runs(repo, txn, name):
        found = True
        scope.runs[h.id.raw] = h
        for e in graph.out_edges(repo, txn, h.id.raw, graph.USED):
            scope.versions[e.dst] = None
    # A dataset (or environment, or runs/NAME) name: its versions, forgotten ones too,
    # and the runs that used, produced or ran in them.
    sids = [sid.raw for _, sid in repo.versions(txn, name)]
    sids += [s for s, rec in _all_forgotten(repo, txn) if rec.get("name") == name]
    for sid_raw in sids:
        found = True
        scope.versions[sid_raw] = None
        for kind in (graph.USED, graph.GENERATED, graph.ENVIRONMENT):
            for e in graph.in_edges(repo, txn, sid_raw, kind):
                if e.src not in scope.runs:
                    user = _handle(repo, txn, e.src)
                    if user is not None:
                        scope.runs[e.src] = user
    if not found:
        datasets = repo.datasets(txn)
        names = sorted({h.name for h in iter_runs(repo, txn)})
        known = "; ".join(
            part
            for part in (
                known_names(datasets, empty=""),
                known_names(names, what="runs", command="reprocas runs", empty=""),
            )
            if part
        )
        raise RefNotFoundError(
            f"unknown dataset or run {name!r}; " + (known or "the repository is empty"),
            ref=name,
        )
    return scope


def _handle(repo: Repository, txn: lmdb.Transaction, rid: bytes) -> RunHandle | None:
    """The handle of a run id that an edge names (None if it has no summary or object)."""
    from reprocas.provenance.names import get_summary

    try:
        s = get_summary(repo, txn, ObjectId(rid))
    except ReprocasError:
        return None
    return RunHandle(str(s["name"]), int(s["number"]), ObjectId(rid))


def _version_label(repo: Repository, txn: lmdb.Transaction, sid: bytes) -> str:
    info = repo.version_info(txn, ObjectId(sid))
    if info is not None:
        return f"{info[0]}@v{info[1]}"
    rec = _forgotten(repo, txn, sid)
    if rec is not None:
        return str(rec.get("ref") or sid.hex()[:12])
    return sid.hex()[:12]


def _version_event(repo: Repository, txn: lmdb.Transaction, sid: bytes) -> Event | None:
    oid = ObjectId(sid)
    info = repo.version_info(txn, oid)
    rec = _forgotten(repo, txn, sid) if info is None else None
    snap: Snapshot | None = None
    try:
        snap = repo.load_snapshot(txn, oid)
    except ReprocasError:
        snap = None  # a forgotten version whose bytes were pruned, or damage
    if info is not None:
        name, number = info
    elif rec is not None:
        name, number = str(rec.get("name")), int(rec.get("number", 0))
    elif snap is not None:
        name, number = snap.name, int(snap.extra.get("version", 0))
    else:
        return None
    if snap is not None:
        time_ns = snap.time_ns
    elif rec is not None:
        time_ns = int(rec.get("time_ns", 0))
    else:
        return None
    details: dict[str, Any] = {
        "id": sid.hex(),
        "dataset": name,
        "number": number,
        "snapshot_kind": snap.kind if snap is not None else rec.get("kind") if rec else None,
        "message": snap.message if snap is not None else "",
        "step": snap.step if snap is not None else None,
        "author": snap.author if snap is not None else None,
        "files": snap.files if snap is not None else None,
        "logical_bytes": (
            snap.logical_bytes if snap is not None else (rec or {}).get("logical_bytes")
        ),
        "tags": (
            sorted(repo.tags_of(txn, name).get(sid, []))
            if info is not None
            else list((rec or {}).get("tags") or [])
        ),
        "forgotten": info is None and rec is not None,
    }
    if details["forgotten"] and rec is not None:
        details["forgotten_ns"] = rec.get("forgotten_ns")
    return Event(time_ns, "version", f"{name}@v{number}", details)


# -- comparing a run with the previous run of its name ----------------------------------


def param_changes(a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
    """Parameters added, removed and changed from ``a`` to ``b``."""
    return {
        "added": {k: b[k] for k in sorted(set(b) - set(a))},
        "removed": {k: a[k] for k in sorted(set(a) - set(b))},
        "changed": {k: {"from": a[k], "to": b[k]} for k in sorted(set(a) & set(b)) if a[k] != b[k]},
    }


def _code_state(run: Run) -> dict[str, Any] | None:
    c = run.code
    if not c:
        return None
    diff = c.get("diff") or {}
    return {
        "commit": c.get("commit"),
        "branch": c.get("branch"),
        "dirty": bool(c.get("dirty")),
        "diff": diff.get("blake3") if isinstance(diff, dict) else None,
        "files": (c.get("files") or {}).get("blake3"),  # the code stored outside git
    }


def _last(value: Any) -> Any:
    return value[-1] if isinstance(value, list) and value else value


def _metric_deltas(prev: dict[str, Any], cur: dict[str, Any]) -> dict[str, float]:
    out: dict[str, float] = {}
    for k, v in cur.items():
        a, b = _last(prev.get(k)), _last(v)
        if isinstance(a, int | float) and isinstance(b, int | float):
            out[k] = b - a
    return out


def env_summary(d: Any) -> tuple[dict[str, Any], str]:
    """Counts of what changed in an environment diff, and one line for people."""
    counts: dict[str, Any] = {}
    parts: list[str] = []
    for section in ("packages", "conda"):
        pd = getattr(d, section)
        if pd:
            c = {
                "added": len(pd.added),
                "removed": len(pd.removed),
                "changed": len(pd.changed) + len(pd.source_changed),
            }
            counts[section] = c
            words = ", ".join(f"{n} {w}" for w, n in c.items() if n)
            parts.append(f"{'conda packages' if section == 'conda' else 'packages'}: {words}")
    for section in ("python", "platform", "gpu", "container"):
        changes = getattr(d, section)
        if changes:
            counts[section] = [c.field for c in changes]
            shown = [
                f"{c.field} {c.before} -> {c.after}"
                if not isinstance(c.before, dict | list) and not isinstance(c.after, dict | list)
                else c.field
                for c in changes[:2]
            ]
            more = f" (+{len(changes) - 2} more)" if len(changes) > 2 else ""
            parts.append("; ".join(shown) + more)
    for section, title in (("env", "environment variables"), ("files", "lock files")):
        kd = getattr(d, section)
        if kd:
            c = {"added": len(kd.added), "removed": len(kd.removed), "changed": len(kd.changed)}
            counts[section] = c
            names = sorted({*kd.added, *kd.removed, *kd.changed})
            parts.append(f"{title}: {', '.join(names[:3])}" + (" ..." if len(names) > 3 else ""))
    return counts, "; ".join(parts)


class _Facts:
    """Environment facts by snapshot id, loaded once each."""

    def __init__(self, repo: Repository) -> None:
        self.repo = repo
        self.cache: dict[bytes, dict[str, Any] | str] = {}

    def get(self, sid: bytes) -> dict[str, Any] | str:
        if sid not in self.cache:
            from reprocas.environment.store import load

            try:
                self.cache[sid] = load(self.repo, sid.hex()).facts
            except ReprocasError as exc:
                self.cache[sid] = str(exc)
        return self.cache[sid]


def _env_event(
    facts: _Facts,
    labels: dict[bytes, str],
    todo: tuple[RunHandle, RunHandle, bytes, bytes, int],
) -> Event | None:
    from reprocas.environment import diff as envdiff

    h, prev, a, b, start = todo
    details: dict[str, Any] = {
        "run": h.ref,
        "previous": prev.ref,
        "from": labels.get(a, a.hex()[:12]),
        "to": labels.get(b, b.hex()[:12]),
        "from_id": a.hex(),
        "to_id": b.hex(),
    }
    fa, fb = facts.get(a), facts.get(b)
    if isinstance(fa, str) or isinstance(fb, str):
        details["changes"] = None
        details["summary"] = f"cannot compare: {fa if isinstance(fa, str) else fb}"
    else:
        d = envdiff.diff(fa, fb, ignore=("git",))
        if d.same:
            return None  # only the git state differs: that is a code event
        details["changes"], details["summary"] = env_summary(d)
    return Event(start, "environment", details["to"], details)


def _run_events(
    repo: Repository,
    txn: lmdb.Transaction,
    scope: _Scope,
    labels: dict[bytes, str],
) -> tuple[list[Event], list[tuple[RunHandle, RunHandle, bytes, bytes, int]]]:
    """Run, code and params events; environment comparisons to do after the read."""
    events: list[Event] = []
    env_todo: list[tuple[RunHandle, RunHandle, bytes, bytes, int]] = []
    by_name: dict[str, list[RunHandle]] = {}
    cache: dict[bytes, Run] = {}

    def run_of(h: RunHandle) -> Run | None:
        if h.id.raw not in cache:
            try:
                cache[h.id.raw] = load_run(repo, txn, h.id)
            except ReprocasError:
                return None
        return cache[h.id.raw]

    def label(sid: bytes) -> str:
        if sid not in labels:
            labels[sid] = _version_label(repo, txn, sid)
        return labels[sid]

    position: dict[bytes, int] = {}
    for h in scope.runs.values():
        if h.name not in by_name:
            by_name[h.name] = sorted(iter_runs(repo, txn, h.name), key=lambda x: x.number)
            position.update((x.id.raw, i) for i, x in enumerate(by_name[h.name]))
        siblings = by_name[h.name]
        i = position.get(h.id.raw, 0)
        prev_h = siblings[i - 1] if i > 0 else None
        run = run_of(h)
        if run is None:
            continue
        prev = run_of(prev_h) if prev_h is not None else None
        start, end = run.start_ns, run.end_ns
        cur_metrics = metric_values(run.metrics)
        details: dict[str, Any] = {
            "id": h.id.hex,
            "name": h.name,
            "number": h.number,
            "status": run.status,
            "exit_code": run.exit_code,
            "user": run.user,
            "host": run.host,
            "start_ns": start,
            "end_ns": end,
            "duration_s": round((end - start) / 1e9, 6),
            "metrics": cur_metrics,
            "metric_deltas": {},
            "params": run.params,
            "inputs": [
                {"ref": label(bytes(i["snapshot"])), "id": bytes(i["snapshot"]).hex()}
                for i in run.inputs
            ],
            "input_changes": [],
            "outputs": [label(bytes(o["snapshot"])) for o in run.outputs if o.get("snapshot")],
            "environment": label(run.environment.raw) if run.environment else None,
            "code": _code_state(run),
            "previous": prev_h.ref if prev_h is not None and prev is not None else None,
            "replay_of": run.extra["replay_of"].hex()
            if isinstance(run.extra.get("replay_of"), bytes)
            else None,
            "replay_of_ref": replay_of_ref(repo, txn, run.extra.get("replay_of")),
            "verdict": run.extra.get("verdict"),
        }
        if prev is not None and prev_h is not None:
            details["metric_deltas"] = _metric_deltas(metric_values(prev.metrics), cur_metrics)
            ia = {i["dataset"]: bytes(i["snapshot"]) for i in prev.inputs}
            ib = {i["dataset"]: bytes(i["snapshot"]) for i in run.inputs}
            details["input_changes"] = [
                {
                    "dataset": ds,
                    "from": label(ia[ds]) if ds in ia else None,
                    "to": label(ib[ds]) if ds in ib else None,
                }
                for ds in sorted(set(ia) | set(ib))
                if ia.get(ds) != ib.get(ds)
            ]
            pc = param_changes(prev.params, run.params)
            if any(pc.values()):
                events.append(
                    Event(start, "params", h.ref, {"run": h.ref, "previous": prev_h.ref, **pc})
                )
            ca, cb = _code_state(prev), _code_state(run)
            ca_, cb_ = ca or {}, cb or {}
            # The commit, the uncommitted changes, or the files stored outside git.
            files_changed = ca_.get("files") != cb_.get("files")
            if (
                ca_.get("commit") != cb_.get("commit")
                or ca_.get("diff") != cb_.get("diff")
                or files_changed
            ):
                commit = cb_.get("commit")
                events.append(
                    Event(
                        start,
                        "code",
                        f"git {str(commit)[:12]}" if commit else "git -",
                        {
                            "run": h.ref,
                            "previous": prev_h.ref,
                            "from": ca,
                            "to": cb,
                            "commit_changed": ca_.get("commit") != cb_.get("commit"),
                            "diff_changed": ca_.get("diff") != cb_.get("diff"),
                            "files_changed": files_changed,
                        },
                    )
                )
            ea, eb = prev.environment, run.environment
            if ea is not None and eb is not None and ea != eb:
                label(ea.raw)
                label(eb.raw)
                env_todo.append((h, prev_h, ea.raw, eb.raw, start))
        events.append(Event(end, "run", h.ref, details))
    return events, env_todo


def timeline(repo: Repository, name: str | None = None, *, notes: bool = False) -> list[Event]:
    """The events of ``name`` (a run name, a dataset name, or both) or of everything,
    oldest first; with ``notes``, the current notes about them too."""
    labels: dict[bytes, str] = {}
    events: list[Event] = []
    with repo.index.read() as txn:
        scope = _gather(repo, txn, name)
        for sid in scope.versions:
            ev = _version_event(repo, txn, sid)
            if ev is not None:
                events.append(ev)
        run_events, env_todo = _run_events(repo, txn, scope, labels)
        if notes:
            from reprocas.notes.events import note_events

            events += note_events(
                repo, txn, None if name is None else list(scope.versions) + list(scope.runs)
            )
    events += run_events
    facts = _Facts(repo)  # environment facts are read outside the index transaction
    for todo in env_todo:
        ev = _env_event(facts, labels, todo)
        if ev is not None:
            events.append(ev)
    events.sort(key=Event.sort_key)
    return events


# -- for people -----------------------------------------------------------------------


def _line(e: Event) -> str:
    d = e.details
    if e.kind == "version":
        what = d.get("message") or (
            "environment snapshot" if d.get("snapshot_kind") == "environment" else ""
        )
        extras = []
        if d.get("tags"):
            extras.append(f"[{', '.join(d['tags'])}]")
        if d.get("step"):
            extras.append(f"step: {d['step']}")
        if d.get("forgotten"):
            extras.append("(forgotten)")
        return " ".join(x for x in (what, *extras) if x)
    if e.kind == "note":
        who = f" by {d['by']}" if d.get("by") else ""
        first = (d["text"].splitlines() or [""])[0]
        return f"{d['note_kind']}{who} (note {d['id'][:12]}): {first}"
    if e.kind == "params":
        parts = [f"+{k}={v!r}" for k, v in d["added"].items()]
        parts += [f"-{k}" for k in d["removed"]]
        parts += [f"{k}: {c['from']!r} -> {c['to']!r}" for k, c in d["changed"].items()]
        return ", ".join(parts)
    if e.kind == "environment":
        return f"{d['run']}: {d['from']} -> {d['to']}" + (
            f" ({d['summary']})" if d.get("summary") else ""
        )
    if e.kind == "code":
        a, b = d.get("from") or {}, d.get("to") or {}
        what = []
        if d["commit_changed"]:
            what.append(
                f"commit {str(a.get('commit') or '-')[:12]} -> {str(b.get('commit') or '-')[:12]}"
            )
        if d["diff_changed"]:
            what.append("uncommitted changes differ")
        if d.get("files_changed"):
            what.append("the files outside git differ")
        return f"{d['run']}: " + "; ".join(what)
    # run
    mets = []
    for k, v in d["metrics"].items():
        last = _last(v)
        delta = d["metric_deltas"].get(k)
        mets.append(
            f"{k}={format_number(last)}"
            + (f" ({format_number(delta, sign=True)})" if delta else "")
        )
    inputs = ", ".join(i["ref"] for i in d["inputs"])
    return " ".join(
        x
        for x in (
            f"{d['status']} exit {d['exit_code']}",
            " ".join(mets),
            f"inputs {inputs}" if inputs else "",
            f"replay of {d.get('replay_of_ref') or d['replay_of'][:12]}: {d.get('verdict') or '?'}"
            if d.get("replay_of")
            else "",
        )
        if x
    )


def render(events: list[Event]) -> list[str]:
    """The timeline as lines: time, kind, ref, what happened."""
    if not events:
        return ["nothing recorded yet"]
    width = min(28, max(len(e.ref) for e in events))
    return [
        f"{iso_time(e.time_ns)}  {e.kind:<11}  {e.ref:<{width}}  {_line(e)}".rstrip()
        for e in events
    ]
