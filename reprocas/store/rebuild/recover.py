"""Versions the packs prove existed, when the ref log cannot say so.

Every dataset snapshot carries its dataset name, its parent and the number it was
committed as (``extra.version``), so a version chain can be rebuilt from the snapshots
alone. Tags cannot: a tag moves after the commit that first set it, and only the ref
log records the move, so a tag is never guessed from ``extra.tags`` — it is reported.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from reprocas.model.objects import Snapshot
from reprocas.store.repository import parse_ref_key, tag_ref, version_ref


def snapshot_slot(snap: Snapshot) -> tuple[str, int] | None:
    """The (dataset, version number) a snapshot was committed as, if it says."""
    n = snap.extra.get("version") if isinstance(snap.extra, dict) else None
    if type(n) is int and n > 0 and snap.name:
        return snap.name, n
    return None


def taken_slots(refs: Mapping[str, bytes], forgotten: Mapping[bytes, Any]) -> set[tuple[str, int]]:
    """The (dataset, number) pairs a version ref or a forgotten record holds."""
    out: set[tuple[str, int]] = set()
    for key in refs:
        parsed = parse_ref_key(key)
        if parsed is not None and parsed[1] == "v" and parsed[2].isdigit():
            out.add((parsed[0], int(parsed[2])))
    for rec in forgotten.values():
        if isinstance(rec, dict) and isinstance(rec.get("number"), int):
            out.add((str(rec.get("name")), int(rec["number"])))
    return out


@dataclass
class Recovered:
    refs: dict[str, bytes] = field(default_factory=dict)
    versions: list[str] = field(default_factory=list)  # "name@vN" recovered
    lost_tags: list[str] = field(default_factory=list)  # "name@tag" not restored


def recover_versions(
    refs: Mapping[str, bytes],
    forgotten: Mapping[bytes, Any],
    snapshots: Mapping[bytes, Snapshot],
) -> Recovered:
    """Version refs for the snapshots that neither ``refs`` nor ``forgotten`` account
    for, at the number each was committed as. A slot already held is left alone (the
    other snapshot is a commit's superseded draft). Among snapshots claiming one free
    slot, the one whose parent is the version below wins, then the newest."""
    out = Recovered()
    known = set(refs.values()) | set(forgotten)
    taken = taken_slots(refs, forgotten)
    claims: dict[tuple[str, int], list[tuple[bytes, Snapshot]]] = {}
    for sid, snap in snapshots.items():
        slot = snapshot_slot(snap)
        if slot is None or sid in known or slot in taken:
            continue
        claims.setdefault(slot, []).append((sid, snap))
    chosen: dict[str, bytes] = dict(refs)
    for name, number in sorted(claims):
        below = chosen.get(version_ref(name, number - 1))
        sid, snap = max(
            claims[(name, number)],
            key=lambda c: (c[1].parent is not None and c[1].parent.raw == below, c[1].time_ns),
        )
        chosen[version_ref(name, number)] = sid
        out.refs[version_ref(name, number)] = sid
        out.versions.append(f"{name}@v{number}")
        tags = snap.extra.get("tags") if isinstance(snap.extra, dict) else None
        for t in tags if isinstance(tags, list) else []:
            if tag_ref(name, str(t)) not in chosen:
                out.lost_tags.append(f"{name}@{t}")
    return out
