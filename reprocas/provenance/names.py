"""Run names: refs ``run:<name>:<N>``, the ``runs`` summary index, and resolving
``NAME`` (latest run of that name; for a replay, its latest original run), ``NAME#N``
or an id prefix to a run."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import lmdb

from reprocas.errors import AmbiguousRefError, IntegrityError, ReprocasError
from reprocas.model.ids import ObjectId, is_hex_prefix, prefix_range
from reprocas.model.objects import Run
from reprocas.provenance.errors import RunNotFoundError
from reprocas.store.index import pack, unpack
from reprocas.store.repository import Repository, check_dataset_name

RUN_PREFIX = "run:"
OUTPUT_PREFIX = "runs/"


def check_run_name(name: str) -> str:
    """A run name is a dataset name (its outputs go to ``runs/NAME``) without ``#``;
    like a dataset name it may not look like an id prefix."""
    return check_dataset_name(name, kind="run")


def run_ref(name: str, number: int) -> str:
    """The ref key of run ``NAME#N`` (':' never appears in names, as for datasets)."""
    return f"{RUN_PREFIX}{name}:{number:010d}"


def parse_run_ref(key: str) -> tuple[str, int] | None:
    parts = key.split(":")
    if len(parts) != 3 or parts[0] != "run" or not parts[2].isdigit():
        return None
    return parts[1], int(parts[2])


@dataclass(frozen=True, slots=True)
class RunHandle:
    """A resolved run: its name, number and id."""

    name: str
    number: int
    id: ObjectId

    @property
    def ref(self) -> str:
        return f"{self.name}#{self.number}"


def summary_of(run: Run) -> dict[str, Any]:
    """What ``reprocas runs`` lists, kept in the ``runs`` sub-database so that listing
    never loads every run object."""
    scalars = {k: v["value"] for k, v in run.metrics.items() if v.get("kind") == "scalar"}
    return {
        "name": run.name,
        "number": run.number,
        "start_ns": run.start_ns,
        "end_ns": run.end_ns,
        "exit_code": run.exit_code,
        "status": run.status,
        "params": run.params,
        "metrics": scalars,
        "replay_of": run.extra.get("replay_of"),
        "verdict": run.extra.get("verdict"),
        "param_conflicts": list(run.extra.get("param_conflicts") or []),
        "provenance": run.extra.get("provenance") or "observed",  # "declared": adopt
    }


def put_summary(repo: Repository, txn: lmdb.Transaction, rid: ObjectId, run: Run) -> None:
    txn.put(rid.raw, pack(summary_of(run)), db=repo.index.db["runs"])


def get_summary(repo: Repository, txn: lmdb.Transaction, rid: ObjectId) -> dict[str, Any]:
    raw = txn.get(rid.raw, db=repo.index.db["runs"])
    if raw is not None:
        return dict(unpack(raw))
    return summary_of(load_run(repo, txn, rid))  # an index rebuilt without summaries


def iter_runs(
    repo: Repository, txn: lmdb.Transaction, name: str | None = None
) -> Iterator[RunHandle]:
    """Runs in ref order (by name, then number); of one name when given."""
    prefix = f"{RUN_PREFIX}{name}:" if name is not None else RUN_PREFIX
    for key, value in repo.index.iter_refs(txn, prefix):
        parsed = parse_run_ref(key)
        if parsed is not None:
            yield RunHandle(parsed[0], parsed[1], ObjectId(value))


def latest_run(repo: Repository, txn: lmdb.Transaction, name: str) -> RunHandle | None:
    cur = txn.cursor(db=repo.index.db["refs"])
    hi = f"{RUN_PREFIX}{name};".encode()  # ';' sorts right after ':'
    ok = cur.prev() if cur.set_range(hi) else cur.last()
    if not ok:
        return None
    parsed = parse_run_ref(bytes(cur.key()).decode())
    if parsed is None or parsed[0] != name:
        return None
    return RunHandle(parsed[0], parsed[1], ObjectId(bytes(cur.value())))


def latest_original_run(repo: Repository, txn: lmdb.Transaction, name: str) -> RunHandle | None:
    """The latest run of ``name`` that is not a replay (None when it has no runs; its
    latest run when, oddly, every run of it is a replay)."""
    last = latest_run(repo, txn, name)
    if last is None:
        return None
    for h in reversed(list(iter_runs(repo, txn, name))):
        if get_summary(repo, txn, h.id).get("replay_of") is None:
            return h
    return last


def replay_of_ref(repo: Repository, txn: lmdb.Transaction, of: Any) -> str | None:
    """``NAME#N`` of the run a replay replayed (``extra["replay_of"]``), or None."""
    if not isinstance(of, bytes) or len(of) != 32:
        return None
    try:
        s = get_summary(repo, txn, ObjectId(of))
    except ReprocasError:
        return None
    return f"{s['name']}#{s['number']}"


def load_run(repo: Repository, txn: lmdb.Transaction, rid: ObjectId) -> Run:
    obj = repo.load(txn, rid)
    if not isinstance(obj, Run):
        raise IntegrityError(f"object {rid.hex} is not a run", object=rid.hex)
    return obj


def _names(repo: Repository, txn: lmdb.Transaction) -> list[str]:
    seen: list[str] = []
    for h in iter_runs(repo, txn):
        if not seen or seen[-1] != h.name:
            seen.append(h.name)
    return seen


def resolve_run(
    repo: Repository, txn: lmdb.Transaction, ref: str, *, original: bool = False
) -> RunHandle:
    """``NAME`` (its latest run; with ``original``, its latest run that is not a
    replay), ``NAME#N``, or a run id prefix."""
    ref = ref.strip()
    name, sep, num = ref.partition("#")
    if sep:
        if not num.isdigit():
            raise RunNotFoundError(f"bad run ref {ref!r}: use NAME#N with N a number", ref=ref)
        rid = repo.index.get_ref(txn, run_ref(name, int(num)))
        if rid is None:
            last = latest_run(repo, txn, name)
            raise RunNotFoundError(
                f"unknown run {ref!r}; "
                + (f"{name} has runs #1..#{last.number}" if last else _known(repo, txn)),
                ref=ref,
            )
        return RunHandle(name, int(num), ObjectId(rid))
    find = latest_original_run if original else latest_run
    last = find(repo, txn, ref) if "@" not in ref and ":" not in ref else None
    if last is not None:
        return last
    if is_hex_prefix(ref):
        lo, hi = prefix_range(ref)
        matches = list(itertools.islice(repo.index.iter_prefix(txn, "runs", lo, hi), 11))
        matches = [k for k in matches if k.hex().startswith(ref.lower())]
        if len(matches) > 1:
            raise AmbiguousRefError(f"run id prefix {ref} is ambiguous", ref=ref)
        if matches:
            s = get_summary(repo, txn, ObjectId(matches[0]))
            return RunHandle(str(s["name"]), int(s["number"]), ObjectId(matches[0]))
    raise RunNotFoundError(f"unknown run {ref!r}; {_known(repo, txn)}", ref=ref)


def _known(repo: Repository, txn: lmdb.Transaction) -> str:
    names = _names(repo, txn)
    if not names:
        return "no runs recorded yet: record one with `reprocas run -- COMMAND`"
    shown = ", ".join(names[:10]) + (" ..." if len(names) > 10 else "")
    return f"runs: {shown}"


def is_run_ref(repo: Repository, txn: lmdb.Transaction, ref: str) -> bool:
    """Whether ``ref`` names a run (``@`` refs name dataset versions)."""
    if "@" in ref:
        return False
    try:
        resolve_run(repo, txn, ref)
    except (RunNotFoundError, AmbiguousRefError):
        return False
    return True
