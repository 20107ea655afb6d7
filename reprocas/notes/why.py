"""``reprocas why``: answers from the record, every statement citing the ids it rests on.

* a version: when and by whom it was committed, its parent, its step and sources, the
  runs that produced and used it, its pin, the notes about it;
* a run: what changed against the previous run of its name (the run diff:
  :func:`reprocas.provenance.rundiff.diff_runs`) and the notes on any of those things;
* two runs (``why A B``, or ``why RUN --metric NAME``): how the metric moved and which
  changes came in between, run by run, in timeline order.

Superseded notes are never cited (they are history, ``note ls --all``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from itertools import pairwise
from typing import Any

import lmdb

from reprocas.errors import InvalidParameterError, ReprocasError
from reprocas.model.display import format_number, iso_time
from reprocas.model.ids import ObjectId
from reprocas.model.objects import Run
from reprocas.notes.store import NoteRecord, notes_about
from reprocas.notes.subjects import describe, resolve_subject
from reprocas.provenance import graph
from reprocas.provenance.names import RunHandle, get_summary, iter_runs, load_run
from reprocas.provenance.run_params import metric_values
from reprocas.store.repository import Repository


@dataclass
class Statement:
    """One sentence of an answer and the object ids (hex) it rests on."""

    text: str
    cites: list[str]
    kind: str  # committed, parent, step, produced-by, used-by, pin, note, params, ...
    time_ns: int = 0
    data: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "text": self.text,
            "cites": self.cites,
            "time_ns": self.time_ns,
            "time": iso_time(self.time_ns) if self.time_ns else None,
            **({"data": self.data} if self.data else {}),
        }

    def line(self) -> str:
        return f"{self.text} [{', '.join(c[:12] for c in self.cites)}]"


@dataclass
class Answer:
    question: str
    subject: dict[str, Any]
    statements: list[Statement] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "question": self.question,
            "subject": self.subject,
            "statements": [s.to_json() for s in self.statements],
        }

    def lines(self) -> list[str]:
        return [self.question, *(f"- {s.line()}" for s in self.statements)]


def _v(x: Any) -> str:
    if isinstance(x, list):
        return format_number(x[-1]) if x else "[]"
    return format_number(x) if isinstance(x, int | float) else repr(x)


# -- notes --------------------------------------------------------------------------------


class _Notes:
    """Current notes about objects, each cited once per answer."""

    def __init__(self, repo: Repository, txn: lmdb.Transaction) -> None:
        self.repo, self.txn = repo, txn
        self.seen: set[bytes] = set()

    def about(self, raw: bytes, label: str) -> list[Statement]:
        out = []
        for r in notes_about(self.repo, self.txn, raw):
            if r.id.raw in self.seen:
                continue
            self.seen.add(r.id.raw)
            out.append(note_statement(r, label))
        return out


def note_statement(r: NoteRecord, label: str) -> Statement:
    who = f" by {r.note.by}" if r.note.by else ""
    return Statement(
        f"a {r.note.kind}{who} about {label} says: {r.note.text}",
        [r.id.hex],
        "note",
        r.time_ns,
        {"note": r.id.hex, "about": label},
    )


# -- a version ----------------------------------------------------------------------------


def why_version(repo: Repository, txn: lmdb.Transaction, sid: ObjectId, label: str) -> Answer:
    snap = repo.load_snapshot(txn, sid)
    ans = Answer(f"why {label}?", {"type": "version", "id": sid.hex, "label": label})
    says = ans.statements.append
    msg = f": {snap.message!r}" if snap.message else ""
    says(Statement(f"{label} was committed by {snap.author}{msg}", [sid.hex], "committed",
                   snap.time_ns))  # fmt: skip
    if snap.parent is not None:
        says(Statement(f"its parent is {describe(repo, txn, snap.parent.raw).label}",
                       [snap.parent.hex, sid.hex], "parent"))  # fmt: skip
    else:
        says(Statement(f"it is the first version of {snap.name}", [sid.hex], "parent"))
    if snap.step:
        says(Statement(f"it was made by the step {snap.step!r}", [sid.hex], "step"))
    for e in graph.out_edges(repo, txn, sid.raw, graph.DERIVED):
        src = describe(repo, txn, e.dst).label
        step = e.value.get("step")
        says(Statement(f"it was derived from {src}" + (f" by {step!r}" if step else ""),
                       [e.dst.hex(), sid.hex], "derived-from"))  # fmt: skip
    for kind, verb in ((graph.GENERATED, "produced"), (graph.USED, "used")):
        users = []
        for e in graph.in_edges(repo, txn, sid.raw, kind):
            try:
                sm = get_summary(repo, txn, ObjectId(e.src))
            except ReprocasError:
                continue
            users.append((int(sm["start_ns"]), f"{sm['name']}#{sm['number']}", e.src.hex()))
        for start, label_, rid in sorted(users):
            says(Statement(f"run {label_} {verb} it", [rid, sid.hex], f"{verb}-by", start))
    from reprocas.notes.pins import get_pin

    p = get_pin(repo, txn, snap.name)
    if p is not None:
        if p.version == sid:
            says(Statement(f"it is the pinned version of {snap.name}: {p.reason}",
                           [p.note.id.hex], "pin", p.note.time_ns))  # fmt: skip
        else:
            says(Statement(f"it is not the pinned version of {snap.name} ({p.ref}: {p.reason})",
                           [p.note.id.hex, p.version.hex], "pin", p.note.time_ns))  # fmt: skip
    ans.statements += _Notes(repo, txn).about(sid.raw, label)
    return ans


# -- runs ---------------------------------------------------------------------------------


def previous_run(repo: Repository, txn: lmdb.Transaction, h: RunHandle) -> RunHandle | None:
    """The latest run of the same name before ``h`` that is not a replay."""
    before = [x for x in iter_runs(repo, txn, h.name) if x.number < h.number]
    for x in reversed(before):
        if get_summary(repo, txn, x.id).get("replay_of") is None:
            return x
    return None


def _label(repo: Repository, txn: lmdb.Transaction, raw: bytes | None) -> str:
    return describe(repo, txn, raw).label if raw else "none"


def changes(
    repo: Repository, txn: lmdb.Transaction, d: dict[str, Any], ra: Run, rb: Run
) -> list[Statement]:
    """The statements of a run diff ``d`` (A -> B); at B's start time."""
    a, b = d["a"], d["b"]
    ids = [a["id"], b["id"]]
    t = rb.start_ns
    since = f"since {a['ref']}"
    out: list[Statement] = []
    p = d["params"]
    for k, c in p["changed"].items():
        out.append(Statement(f"parameter {k} changed from {_v(c['from'])} to {_v(c['to'])} "
                             f"{since}", ids, "params", t, {"param": k, **c}))  # fmt: skip
    for k, v in p["added"].items():
        out.append(Statement(f"parameter {k}={_v(v)} was added {since}", ids, "params", t))
    for k, v in p["removed"].items():
        out.append(Statement(f"parameter {k}={_v(v)} was removed {since}", ids, "params", t))
    ia = {i["dataset"]: i for i in ra.inputs}
    ib = {i["dataset"]: i for i in rb.inputs}
    for i in d["inputs"]:
        if i["status"] == "same":
            continue
        cites = [bytes(x["snapshot"]).hex() for x in (ia.get(i["dataset"]), ib.get(i["dataset"]))
                 if x is not None]  # fmt: skip
        summary = ", ".join(f"{n} {s}" for s, n in sorted((i.get("summary") or {}).items()))
        if i["status"] == "changed":
            text = f"input {i['dataset']} changed from {i['a']} to {i['b']}"
        elif i["status"] == "added":
            text = f"input {i['b']} was added"
        else:
            text = f"input {i['a']} was no longer used"
        data = {"dataset": i["dataset"], "a": i["a"], "b": i["b"]}
        text += f" (files: {summary})" if summary else ""
        out.append(Statement(text, cites, "inputs", t, data))
    env = d["environment"]
    if not env["same"]:
        ea = bytes.fromhex(env["a"]) if env["a"] else None
        eb = bytes.fromhex(env["b"]) if env["b"] else None
        detail = "; ".join(str(x).strip() for x in env.get("lines", [])[2:5])
        out.append(Statement(
            f"the environment changed from {_label(repo, txn, ea)} to {_label(repo, txn, eb)}"
            + (f" ({detail})" if detail else ""),
            [x for x in (env["a"], env["b"]) if x], "environment", t))  # fmt: skip
    c = d["code"]
    if not c["same_commit"]:
        out.append(Statement(
            f"the code commit changed from {str(c['a']['commit'] or '-')[:12]} to "
            f"{str(c['b']['commit'] or '-')[:12]}", ids, "code", t))  # fmt: skip
    if not c["same_diff"]:
        out.append(Statement("the uncommitted code changes differ", ids, "code", t))
    if not c.get("same_files", True):
        out.append(Statement("the code files outside git differ", ids, "code", t))
    if not d["command"]["same"]:
        out.append(Statement(f"the command changed to {' '.join(d['command']['b'])}", ids,
                             "command", t))  # fmt: skip
    return out


def _metric_statements(d: dict[str, Any], only: str | None, t: int) -> list[Statement]:
    out = []
    ids = [d["a"]["id"], d["b"]["id"]]
    for k, m in d["metrics"].items():
        if only is not None and k != only:
            continue
        delta = m["delta"]
        if delta is None and m["a"] == m["b"]:
            continue
        if delta == 0:
            text = f"metric {k} stayed {_v(m['b'])}"
        else:
            sign = f" ({format_number(delta, sign=True)})" if delta is not None else ""
            text = f"metric {k} went from {_v(m['a'])} to {_v(m['b'])}{sign}"
        out.append(Statement(f"{text} between {d['a']['ref']} and {d['b']['ref']}", ids,
                             "metric", t, {"metric": k, **m}))  # fmt: skip
    return out


def _run_facts(repo: Repository, txn: lmdb.Transaction, h: RunHandle, run: Run) -> list[Statement]:
    cmd = " ".join(run.command)
    cmd = cmd if len(cmd) <= 60 else cmd[:59] + "…"
    out = []
    if run.extra.get("provenance") != "declared":
        out.append(Statement(f"{h.ref} ran `{cmd}`: {run.status}, exit {run.exit_code}",
                             [h.id.hex], "ran", run.start_ns))  # fmt: skip
    else:
        out.append(Statement(
            f"{h.ref} was not observed: it was declared with `reprocas adopt` "
            f"({run.extra.get('how') or 'no description'})", [h.id.hex], "declared",
            run.start_ns))  # fmt: skip
        for i in run.inputs:
            out.append(Statement(f"it was declared to be made from {i['dataset']}@v{i['number']}",
                                 [bytes(i["snapshot"]).hex(), h.id.hex], "declared",
                                 run.start_ns))  # fmt: skip
    for u in run.extra.get("unpinned_inputs") or ():
        out.append(Statement(f"its input {u['ref']} was not the pinned {u['pinned']}",
                             [h.id.hex, u["note"]], "unpinned", run.start_ns))  # fmt: skip
    for u in run.extra.get("uncommitted_inputs") or ():
        out.append(Statement(
            f"its input path {u['path']} had changes not committed to {u['ref']}",
            [h.id.hex], "uncommitted", run.start_ns))  # fmt: skip
    rep = run.extra.get("replay_of")
    if isinstance(rep, bytes):
        out.append(Statement(f"it is a replay of {_label(repo, txn, rep)}: "
                             f"{run.extra.get('verdict') or '?'}", [h.id.hex, rep.hex()],
                             "replay", run.start_ns))  # fmt: skip
    return out


def _notes_on_runs(
    repo: Repository, txn: lmdb.Transaction, notes: _Notes, runs: list[tuple[RunHandle, Run]]
) -> list[Statement]:
    """Notes about the runs, their inputs, environments and outputs."""
    out: list[Statement] = []
    for h, run in runs:
        out += notes.about(h.id.raw, h.ref)
        for sid in run.snapshot_ids():
            out += notes.about(sid.raw, _label(repo, txn, sid.raw))
    return out


def _diff(repo: Repository, a: RunHandle, b: RunHandle) -> dict[str, Any]:
    from reprocas.provenance.rundiff import diff_runs

    return diff_runs(repo, a.id.hex, b.id.hex)


def why_run(repo: Repository, h: RunHandle, metric: str | None = None) -> Answer:
    with repo.index.read() as txn:
        run = load_run(repo, txn, h.id)
        prev = previous_run(repo, txn, h)
        prun = load_run(repo, txn, prev.id) if prev is not None else None
    if prev is not None and metric is not None:
        return why_between(repo, prev, h, metric)
    ans = Answer(f"why {h.ref}?", {"type": "run", "id": h.id.hex, "label": h.ref})
    d = _diff(repo, prev, h) if prev is not None else None
    with repo.index.read() as txn:
        ans.statements += _run_facts(repo, txn, h, run)
        if prev is None or prun is None or d is None:
            ans.statements.append(Statement(f"it is the first run of {h.name}", [h.id.hex],
                                            "first", run.start_ns))  # fmt: skip
            mets = metric_values(run.metrics)
            if mets:
                got = ", ".join(f"{k}={_v(v)}" for k, v in sorted(mets.items()))
                ans.statements.append(Statement(f"its metrics: {got}", [h.id.hex], "metric",
                                                run.end_ns))  # fmt: skip
            ans.statements += _notes_on_runs(repo, txn, _Notes(repo, txn), [(h, run)])
            return ans
        found = changes(repo, txn, d, prun, run)
        if not found:
            ans.statements.append(Statement(
                f"nothing it was given changed since {prev.ref}", [prev.id.hex, h.id.hex],
                "same", run.start_ns))  # fmt: skip
        ans.statements += found
        ans.statements += _metric_statements(d, metric, run.end_ns)
        ans.statements += _notes_on_runs(repo, txn, _Notes(repo, txn), [(prev, prun), (h, run)])
    return ans


def why_between(repo: Repository, a: RunHandle, b: RunHandle, metric: str | None) -> Answer:
    """How ``metric`` (every metric when None) moved from run A to run B, and the
    changes in between: each run of B's name from A to B against the one before it, in
    timeline order, then the notes on all of them."""
    with repo.index.read() as txn:
        ra, rb = load_run(repo, txn, a.id), load_run(repo, txn, b.id)
        if ra.start_ns > rb.start_ns:
            a, b, ra, rb = b, a, rb, ra
        chain: list[tuple[RunHandle, Run]] = [(a, ra)]
        for h in iter_runs(repo, txn, b.name):
            if h.id in (a.id, b.id) or get_summary(repo, txn, h.id).get("replay_of") is not None:
                continue
            r = load_run(repo, txn, h.id)
            if ra.start_ns < r.start_ns < rb.start_ns:
                chain.append((h, r))
        chain.sort(key=lambda hr: hr[1].start_ns)
        chain.append((b, rb))
    if metric is not None:
        ma, mb = metric_values(ra.metrics), metric_values(rb.metrics)
        if metric not in ma and metric not in mb:
            known = sorted(set(ma) | set(mb))
            raise InvalidParameterError(
                f"neither {a.ref} nor {b.ref} has the metric {metric!r}; "
                + (f"they have: {', '.join(known)}" if known else "they have no metrics")
            )
    what = f"metric {metric}" if metric else "the metrics"
    ans = Answer(f"why did {what} change from {a.ref} to {b.ref}?",
                 {"type": "runs", "a": a.id.hex, "b": b.id.hex, "labels": [a.ref, b.ref],
                  "metric": metric})  # fmt: skip
    whole = _diff(repo, a, b)
    pairs = list(pairwise(chain))
    steps = [_diff(repo, x, y) for (x, _), (y, _) in pairs]
    with repo.index.read() as txn:
        ans.statements += _metric_statements(whole, metric, rb.end_ns)
        if not ans.statements:
            ans.statements.append(Statement(f"{what} did not change between {a.ref} and {b.ref}",
                                            [a.id.hex, b.id.hex], "metric", rb.end_ns))  # fmt: skip
        between: list[Statement] = []
        for d, ((_, rx), (_, ry)) in zip(steps, pairs, strict=True):
            between += changes(repo, txn, d, rx, ry)
            if len(chain) > 2:
                between += _metric_statements(d, metric, ry.end_ns)
        if not between:
            between.append(Statement(f"nothing the runs were given changed between {a.ref} "
                                     f"and {b.ref}", [a.id.hex, b.id.hex], "same"))  # fmt: skip
        in_window = _notes_on_runs(repo, txn, _Notes(repo, txn), chain)
    between.sort(key=lambda s: s.time_ns)
    ans.statements += between + in_window
    return ans


# -- entry point ----------------------------------------------------------------------------


def why(
    repo: Repository, ref: str, other: str | None = None, *, metric: str | None = None
) -> Answer:
    """Answer ``reprocas why REF [OTHER] [--metric NAME]`` (see the module docstring)."""
    with repo.index.read() as txn:
        s = resolve_subject(repo, txn, ref)
        t = resolve_subject(repo, txn, other) if other is not None else None
        if t is not None and (s.type != "run" or t.type != "run"):
            raise InvalidParameterError(
                f"`why A B` compares two runs; {s.label if s.type != 'run' else t.label} "
                "is not a run"
            )
        if s.type in ("version", "environment"):
            if metric is not None:
                raise InvalidParameterError("--metric asks about runs; give a run (NAME#N)")
            return why_version(repo, txn, s.id, s.label)
        if s.type == "note":
            raise InvalidParameterError(
                f"{s.label} is a note; `reprocas note show {s.id.hex[:12]}` shows it"
            )
        ha = _handle(repo, txn, s.id)
        hb = _handle(repo, txn, t.id) if t is not None else None
    if hb is not None:
        return why_between(repo, ha, hb, metric)
    return why_run(repo, ha, metric)


def _handle(repo: Repository, txn: lmdb.Transaction, rid: ObjectId) -> RunHandle:
    try:
        s = get_summary(repo, txn, rid)
    except ReprocasError:
        run = load_run(repo, txn, rid)
        return RunHandle(run.name, run.number, rid)
    return RunHandle(str(s["name"]), int(s["number"]), rid)
