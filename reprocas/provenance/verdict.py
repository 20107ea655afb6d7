"""Replay, last step: compare the replay with the original and give a verdict that
means what it says.

Every difference — the exit status, an output file (changed, missing or added), a
metric — is listed, and each says which explicit rule, if any, covers it
(``covered_by``):

* a metric within the relative tolerance (``--tolerance REL``:
  ``|a - b| <= REL * max(|a|, |b|)``, element-wise for a series);
* an output file matching an ``--allow-differ GLOB`` given to the replay, or one
  recorded with the run (``reprocas run --allow-differ GLOB``: ``extra["allow_differ"]``);
* a table output (Parquet, CSV, Arrow IPC) whose bytes changed but whose values did not:
  same schema, same rows in the same order, numeric cells within ``--table-tolerance``
  — for the files matching ``--compare-table GLOB``, or every table when only
  ``--table-tolerance`` is given.

``identical``: no difference at all. ``within-tolerance``: every difference covered.
``diverged``: anything else (a different exit status is never covered).
"""

from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Any

import lmdb

from reprocas.errors import InvalidParameterError
from reprocas.model.ids import ObjectId
from reprocas.provenance.run_params import metric_values
from reprocas.provenance.run_store import tree_files
from reprocas.store.files import target_digest
from reprocas.store.repository import Repository

DEFAULT_TOLERANCE = 1e-6
"""Default relative tolerance for metrics (``--tolerance``)."""

DIVERGED_EXIT = 10
"""Exit code of ``reprocas replay`` when the verdict is ``diverged`` (docs/CLI.md)."""

IDENTICAL = "identical"
WITHIN_TOLERANCE = "within-tolerance"
DIVERGED = "diverged"
VERDICTS = (IDENTICAL, WITHIN_TOLERANCE, DIVERGED)

ALLOW_DIFFER_KEY = "allow_differ"
"""The run's ``extra`` key holding its recorded ``--allow-differ`` globs."""


# -- rules -------------------------------------------------------------------------------------


def check_tolerance(value: float, option: str) -> float:
    """A relative tolerance: a finite number >= 0."""
    if not (isinstance(value, int | float) and math.isfinite(value) and value >= 0):
        raise InvalidParameterError(
            f"{option} must be a finite number >= 0 (a relative tolerance), not {value}"
        )
    return float(value)


def check_glob(pattern: str, option: str) -> str:
    """A glob over output paths: relative, inside the working directory."""
    p = pattern.strip().rstrip("/")
    parts = PurePosixPath(p).parts
    if not p or p.startswith("/") or ".." in parts or "\\" in p or not parts:
        raise InvalidParameterError(
            f"{option} {pattern!r}: give a glob relative to the run's working directory, "
            "e.g. 'logs/*' or 'out/**/*.log'"
        )
    return "/".join(parts)  # ./logs/* is logs/*


def _glob_re(pattern: str) -> re.Pattern[str]:
    """``*`` and ``?`` stay inside one path part, ``**`` crosses parts, ``[...]`` is a
    class; the pattern matches a path or any directory above it (``logs`` covers
    ``logs/a.txt``)."""
    out, i = [], 0
    while i < len(pattern):
        c = pattern[i]
        if pattern.startswith("**/", i):
            out.append("(?:.*/)?")
            i += 3
            continue
        if pattern.startswith("**", i):
            out.append(".*")
            i += 2
            continue
        if c == "*":
            out.append("[^/]*")
        elif c == "?":
            out.append("[^/]")
        elif c == "[":
            j = i + 1
            j += pattern[j : j + 1] == "!"
            j += pattern[j : j + 1] == "]"
            k = pattern.find("]", j)
            if k < 0:
                out.append(re.escape(c))
            else:
                body = pattern[i + 1 : k]
                neg = body.startswith("!")
                body = (body[1:] if neg else body).replace("\\", "\\\\")
                out.append(("[^/" if neg else "[") + body + "]")
                i = k
        else:
            out.append(re.escape(c))
        i += 1
    return re.compile("".join(out) + "(?:/.*)?")


def glob_matches(pattern: str, path: str) -> bool:
    """Whether output path ``path`` is matched by ``pattern`` (see :func:`_glob_re`)."""
    return _glob_re(pattern).fullmatch(path) is not None


@dataclass(frozen=True, slots=True)
class Rules:
    """What a replay accepts as a reproduction despite a difference."""

    tolerance: float = DEFAULT_TOLERANCE
    allow_differ: tuple[str, ...] = ()  # --allow-differ given to the replay
    recorded_allow_differ: tuple[str, ...] = ()  # recorded with the run
    compare_table: tuple[str, ...] = ()
    table_tolerance: float | None = None  # None: the metric tolerance

    @property
    def cell_tolerance(self) -> float:
        return self.tolerance if self.table_tolerance is None else self.table_tolerance

    def output_rule(self, path: str) -> str | None:
        """The allow-differ rule that covers any difference of output file ``path``."""
        for g in self.allow_differ:
            if glob_matches(g, path):
                return f"--allow-differ {g}"
        for g in self.recorded_allow_differ:
            if glob_matches(g, path):
                return f"recorded --allow-differ {g}"
        return None

    def table_rule(self, path: str) -> str | None:
        """The rule under which output file ``path`` is compared by value, if any."""
        from reprocas.tabular.formats import format_of

        if format_of(PurePosixPath(path).name) is None:
            return None
        for g in self.compare_table:
            if glob_matches(g, path):
                return f"--compare-table {g}"
        if not self.compare_table and self.table_tolerance is not None:
            return f"--table-tolerance {self.table_tolerance:g}"
        return None

    def to_json(self) -> dict[str, Any]:
        return {
            "tolerance": self.tolerance,
            "allow_differ": list(self.allow_differ),
            "recorded_allow_differ": list(self.recorded_allow_differ),
            "compare_table": list(self.compare_table),
            "table_tolerance": self.cell_tolerance,
        }


def make_rules(
    tolerance: float,
    allow_differ: list[str] | tuple[str, ...] = (),
    recorded: Any = None,
    compare_table: list[str] | tuple[str, ...] = (),
    table_tolerance: float | None = None,
) -> Rules:
    """Rules from the replay's options and the run's recorded ``allow_differ``, checked."""
    rec = [str(g) for g in recorded] if isinstance(recorded, list | tuple) else []
    return Rules(
        tolerance=check_tolerance(tolerance, "--tolerance"),
        allow_differ=tuple(check_glob(g, "--allow-differ") for g in allow_differ),
        recorded_allow_differ=tuple(rec),
        compare_table=tuple(check_glob(g, "--compare-table") for g in compare_table),
        table_tolerance=None
        if table_tolerance is None
        else check_tolerance(table_tolerance, "--table-tolerance"),
    )


# -- outputs -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _File:
    output: str  # the output path it is at or under
    kind: str  # "file" | "symlink"
    target: bytes  # manifest id, or link target
    snapshot: bytes  # the output version


def _output_files(
    repo: Repository, txn: lmdb.Transaction, outputs: list[dict[str, Any]] | tuple[Any, ...]
) -> dict[str, _File]:
    """Every file and link below the outputs (each output's files are those at or under
    its path in its version), by path."""
    out: dict[str, _File] = {}
    roots: dict[bytes, dict[str, tuple[str, bytes, int]]] = {}
    for o in outputs:
        sid = bytes(o["snapshot"])
        if sid not in roots:
            root = repo.load_snapshot(txn, ObjectId(sid)).root.raw
            roots[sid] = tree_files(repo, txn, root)
        p = str(o["path"])
        for k, (kind, target, _mode) in roots[sid].items():
            if k == p or k.startswith(p + "/"):
                out[k] = _File(p, kind, target, sid)
    return out


def _key(repo: Repository, txn: lmdb.Transaction, f: _File) -> str:
    """What a file is compared by: the BLAKE3 of its bytes, a link's target."""
    if f.kind == "file":
        return target_digest(repo, txn, f.target).hex()
    return "link:" + os.fsdecode(f.target)


def _compare_table(
    repo: Repository, path: str, a: _File, b: _File, tolerance: float
) -> dict[str, Any]:
    """Both versions of a table output read back (schema-checked) and compared by value."""
    from reprocas.errors import ReprocasError
    from reprocas.tabular.compare import compare_tables
    from reprocas.tabular.read import read_table

    if a.kind != "file" or b.kind != "file":
        return {"equal": False, "reason": "a symbolic link is not a table"}
    try:
        with repo.index.read() as txn:
            va = repo.make_version(txn, ObjectId(a.snapshot))
            vb = repo.make_version(txn, ObjectId(b.snapshot))
        result = compare_tables(read_table(repo, va, path), read_table(repo, vb, path), tolerance)
    except ReprocasError as exc:
        return {"equal": False, "reason": str(exc)}
    return {**result.to_json(), "tolerance": tolerance}


def compare_outputs(
    repo: Repository,
    original: tuple[dict[str, Any], ...],
    replayed: list[dict[str, Any]],
    missing: list[str],
    rules: Rules,
) -> list[dict[str, Any]]:
    """One entry per output file that differs (or per output path that was not made),
    each with the rule that covers it (``covered_by``, None when none does)."""
    diffs: list[dict[str, Any]] = []
    gone = set(missing)
    for p in sorted(gone):
        diffs.append(
            {
                "kind": "output",
                "path": p,
                "output": p,
                "status": "missing",
                "covered_by": rules.output_rule(p),
            }
        )
    tables: list[tuple[dict[str, Any], _File, _File, str]] = []
    with repo.index.read() as txn:
        a = _output_files(repo, txn, tuple(o for o in original if o["path"] not in gone))
        b = _output_files(repo, txn, replayed)
        for path in sorted(set(a) | set(b)):
            ea, eb = a.get(path), b.get(path)
            entry: dict[str, Any] = {"kind": "output", "path": path}
            if ea is None:
                assert eb is not None
                entry.update(output=eb.output, status="added", original=None)
                entry["replay"] = _key(repo, txn, eb)
            elif eb is None:
                entry.update(output=ea.output, status="missing", replay=None)
                entry["original"] = _key(repo, txn, ea)
            elif (ea.kind, ea.target) == (eb.kind, eb.target):
                continue
            else:
                ka, kb = _key(repo, txn, ea), _key(repo, txn, eb)
                if ka == kb:
                    continue
                entry.update(output=ea.output, status="changed", original=ka, replay=kb)
            entry["covered_by"] = rules.output_rule(path)
            diffs.append(entry)
            table = rules.table_rule(path)
            if entry["covered_by"] is None and entry["status"] == "changed" and table:
                assert ea is not None and eb is not None
                tables.append((entry, ea, eb, table))
    for entry, ea, eb, table in tables:  # read outside the transaction above
        entry["table"] = _compare_table(repo, entry["path"], ea, eb, rules.cell_tolerance)
        if entry["table"]["equal"]:
            entry["covered_by"] = table
    return diffs


# -- metrics -----------------------------------------------------------------------------------


def _rel(a: float, b: float) -> float:
    """The relative difference ``|a - b| / max(|a|, |b|)`` (0 when equal; inf when one
    is infinite or NaN and the other is not)."""
    if a == b or (math.isnan(a) and math.isnan(b)):
        return 0.0
    if not (math.isfinite(a) and math.isfinite(b)):
        return math.inf
    return abs(a - b) / max(abs(a), abs(b))


def _number(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool)


def compare_metrics(
    original: dict[str, Any], replayed: dict[str, Any], rules: Rules
) -> list[dict[str, Any]]:
    """One entry per metric whose value differs, covered by ``--tolerance`` when it is
    numeric and within it; a metric only one side has, or one that is not a number
    and differs, is covered by nothing."""
    ma, mb = metric_values(original), metric_values(replayed)
    tol = rules.tolerance
    diffs: list[dict[str, Any]] = []
    for k in sorted(set(ma) | set(mb)):
        a, b = ma.get(k), mb.get(k)
        entry: dict[str, Any] = {"kind": "metric", "metric": k, "original": a, "replay": b}
        if k not in mb:
            entry.update(status="missing", rel_diff=None, within_tolerance=False)
        elif k not in ma:
            entry.update(status="added", rel_diff=None, within_tolerance=False)
        else:
            la = a if isinstance(a, list) else [a]
            lb = b if isinstance(b, list) else [b]
            if isinstance(a, list) != isinstance(b, list) or len(la) != len(lb):
                rel = math.inf
            elif not all(_number(x) and _number(y) for x, y in zip(la, lb, strict=True)):
                rel = 0.0 if la == lb else math.inf  # not numbers: equal or not
            else:
                rel = max(
                    (_rel(float(x), float(y)) for x, y in zip(la, lb, strict=True)), default=0
                )
            exact = isinstance(a, list) == isinstance(b, list) and la == lb
            if exact or rel == 0.0:
                continue
            entry.update(
                status="changed",
                rel_diff=rel if math.isfinite(rel) else None,
                within_tolerance=rel <= tol,
            )
        entry["covered_by"] = f"--tolerance {tol:g}" if entry["within_tolerance"] else None
        diffs.append(entry)
    return diffs


def not_compared(original: dict[str, Any], why: str) -> list[dict[str, Any]]:
    """The original's metrics, when the replay could not read its own: unverified, so
    covered by nothing."""
    return [
        {
            "kind": "metric",
            "metric": k,
            "status": "not-compared",
            "original": v,
            "replay": None,
            "rel_diff": None,
            "within_tolerance": False,
            "reason": why,
            "covered_by": None,
        }
        for k, v in sorted(metric_values(original).items())
    ]


# -- the verdict -------------------------------------------------------------------------------


def exit_status_difference(original: int, replay: int) -> dict[str, Any]:
    """A different exit status: never covered."""
    return {"kind": "exit_status", "original": original, "replay": replay, "covered_by": None}


def verdict_of(differences: list[dict[str, Any]]) -> str:
    """``identical`` with no difference; ``within-tolerance`` when a rule covers each;
    else ``diverged``."""
    if not differences:
        return IDENTICAL
    if all(d.get("covered_by") for d in differences):
        return WITHIN_TOLERANCE
    return DIVERGED


def describe(d: dict[str, Any], tolerance: float) -> str:
    """One difference as a line for people, with the rule that covers it."""
    cover = f"covered by {d['covered_by']}" if d.get("covered_by") else "not covered"
    if d["kind"] == "exit_status":
        return f"exit status: {d['original']} -> {d['replay']} ({cover})"
    if d["kind"] == "metric":
        if d["status"] == "not-compared":
            return f"metric {d['metric']}: not compared ({d.get('reason')}; {cover})"
        if d["status"] != "changed":
            return (
                f"metric {d['metric']}: {d['status']} ({d['original']} -> {d['replay']}; {cover})"
            )
        rel = d["rel_diff"]
        how = "within" if d["within_tolerance"] else "beyond"
        return (
            f"metric {d['metric']}: {d['original']} -> {d['replay']} "
            f"(relative difference {'inf' if rel is None else f'{rel:.3g}'}, "
            f"{how} tolerance {tolerance:g}; {cover})"
        )
    table = d.get("table")
    extra = ""
    if table is not None:
        extra = "; values equal" if table["equal"] else f"; {table.get('reason')}"
    return f"output {d['path']}: {d['status']} ({cover}{extra})"
