"""Reading the ref log for a rebuild: every line checked, damaged ones reported.

The ref log is JSON lines (docs/FORMAT.md). A line that is not UTF-8, not JSON, not an
object, or lacks the fields of its op is *damaged*: it is skipped and reported with its
line number, never allowed to stop the rebuild. What only such a line held (a tag, a
forget mark, a commit line) is unknowable; the caller reports that instead of guessing.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from reprocas.errors import StorageIOError
from reprocas.model.objects import Snapshot
from reprocas.store.repository import parse_ref_key, version_ref

_OPS = ("set", "delete", "commit", "forget")


@dataclass(frozen=True, slots=True)
class DamagedLine:
    """A ref-log line that could not be used: its 1-based number and why."""

    number: int
    reason: str

    def to_json(self) -> dict[str, Any]:
        return {"line": self.number, "reason": self.reason}


@dataclass
class Reflog:
    """The ref log as a rebuild sees it.

    ``present``: the file exists and holds at least one change line. ``entries``: the
    change lines of committed transactions, in order. ``committed_ids``: snapshot ids a
    committed ``set`` named. ``damaged``: the lines skipped.
    """

    present: bool = False
    entries: list[dict[str, Any]] = field(default_factory=list)
    committed_ids: set[bytes] = field(default_factory=set)
    damaged: list[DamagedLine] = field(default_factory=list)

    @property
    def sound(self) -> bool:
        """Present and without a damaged line: it then accounts for every version."""
        return self.present and not self.damaged


def _check(e: Any) -> str | None:
    """Why a parsed line cannot be used, or None."""
    if not isinstance(e, dict):
        return "not a JSON object"
    op = e.get("op")
    if op not in _OPS:
        return f"unknown op {op!r}"
    if op == "commit":
        return None if isinstance(e.get("txn"), str) else "commit line without a txn"
    if op in ("set", "delete") and not isinstance(e.get("ref"), str):
        return f"{op} line without a ref"
    oid = e.get("id")
    if not isinstance(oid, str) or len(oid) != 64:
        return f"{op} line without a 64-digit id"
    try:
        bytes.fromhex(oid)
    except ValueError:
        return f"{op} line with an id that is not hex"
    if op == "forget" and not isinstance(e.get("forgotten"), dict):
        return "forget line without its record"
    return None


def read_reflog(path: Path) -> Reflog:
    """Parse the ref log line by line; a damaged line is reported and skipped."""
    out = Reflog()
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return out
    except OSError as exc:
        raise StorageIOError(f"cannot read the ref log {path}: {exc}", path=str(path)) from exc
    changes: list[dict[str, Any]] = []
    committed: set[str] = set()
    for number, raw in enumerate(data.split(b"\n"), start=1):
        if not raw.strip():
            continue
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            out.damaged.append(DamagedLine(number, f"not UTF-8 (byte {exc.start})"))
            continue
        try:
            e = json.loads(text)
        except ValueError:
            out.damaged.append(DamagedLine(number, "not JSON"))
            continue
        why = _check(e)
        if why is not None:
            out.damaged.append(DamagedLine(number, why))
            continue
        if e["op"] == "commit":
            committed.add(e["txn"])
        else:
            changes.append(e)
    out.present = bool(changes)
    # Only transactions that committed: the process may have died before the index moved
    # these refs. A line without a txn (written before the two-phase log) is committed.
    out.entries = [e for e in changes if e.get("txn") is None or e.get("txn") in committed]
    out.committed_ids = {bytes.fromhex(e["id"]) for e in out.entries if e["op"] == "set"}
    return out


def replay(entries: list[dict[str, Any]]) -> dict[str, bytes]:
    """The refs the committed changes leave."""
    refs: dict[str, bytes] = {}
    for e in entries:
        if e["op"] == "delete":
            refs.pop(e["ref"], None)
        elif e["op"] == "set":
            refs[e["ref"]] = bytes.fromhex(e["id"])
    return refs


def replay_forgotten(
    entries: list[dict[str, Any]],
    refs: dict[str, bytes],
    snapshots: dict[bytes, Snapshot],
) -> dict[bytes, dict[str, Any]]:
    """The ``forgotten`` table: the records ``forget`` logged (``"op": "forget"``
    lines). A version ref deleted by an older reprocas, which logged no record (only
    ``forget`` deletes refs), gets one from its snapshot when that is still stored
    (no reasons: they were not logged)."""
    out: dict[bytes, dict[str, Any]] = {}
    deleted: dict[bytes, tuple[str, int, int]] = {}
    tags: dict[bytes, list[str]] = {}
    for e in entries:
        op = e["op"]
        try:
            if op == "forget":
                out[bytes.fromhex(e["id"])] = dict(e["forgotten"])
            elif op == "delete":
                parsed = parse_ref_key(e["ref"])
                sid = bytes.fromhex(e["id"])
                if parsed is not None and parsed[1] == "v" and parsed[2].isdigit():
                    deleted[sid] = (parsed[0], int(parsed[2]), int(e.get("time_ns") or 0))
                elif parsed is not None and parsed[1] == "tag":
                    tags.setdefault(sid, []).append(parsed[2])
        except (KeyError, ValueError, TypeError):
            continue
    for sid, (name, number, when) in deleted.items():
        if sid in out or refs.get(version_ref(name, number)) == sid:
            continue
        snap = snapshots.get(sid)
        out[sid] = {
            "ref": f"{name}@v{number}",
            "name": name,
            "number": number,
            "kind": snap.kind if snap is not None else "unknown",
            "time_ns": snap.time_ns if snap is not None else 0,
            "logical_bytes": snap.logical_bytes if snap is not None else 0,
            "forgotten_ns": when,
            "reasons": [],
            "tags": sorted(set(tags.get(sid, []))),
        }
    return out
