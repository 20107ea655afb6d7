"""What an index rebuild found and did (``reprocas index rebuild --json``)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from reprocas.store.rebuild.reflog import DamagedLine


@dataclass(frozen=True, slots=True)
class SalvagedPack:
    """A pack whose trailer or footer was damaged: what was kept, what was lost."""

    path: str
    moved_to: str
    new_pack: str | None
    chunks: int
    objects: int
    lost: tuple[tuple[int, int, str], ...]

    def to_json(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "moved_to": self.moved_to,
            "new_pack": self.new_pack,
            "chunks": self.chunks,
            "objects": self.objects,
            "lost": [{"offset": o, "length": n, "why": w} for o, n, w in self.lost],
        }


@dataclass(frozen=True, slots=True)
class RebuildReport:
    packs: int
    chunks: int
    objects: int
    refs: int
    skipped_packs: tuple[str, ...]
    missing_snapshots: tuple[str, ...]
    runs: int = 0
    missing_runs: tuple[str, ...] = ()
    damaged_reflog_lines: tuple[DamagedLine, ...] = ()
    recovered_versions: tuple[str, ...] = ()
    lost_tags: tuple[str, ...] = ()
    salvaged_packs: tuple[SalvagedPack, ...] = ()
    unreadable: tuple[str, ...] = ()  # what verify finds missing after the rebuild
    unreadable_versions: tuple[str, ...] = ()
    broken_index: str | None = None  # where a damaged index was set aside
    # Snapshots no committed ref-log line names, not made versions (gc keeps their data).
    unfinished: tuple[str, ...] = ()

    def losses(self) -> list[str]:
        """What could not be recovered, one phrase each; empty when nothing was lost
        (a set-aside index, recovered versions and whole salvages are repairs)."""
        lost = []
        if self.skipped_packs:
            lost.append(f"{len(self.skipped_packs)} pack(s) are unreadable")
        if self.unreadable_versions:
            lost.append(f"versions {', '.join(self.unreadable_versions)} are unreadable")
        elif self.missing_snapshots:
            lost.append(f"{len(self.missing_snapshots)} version(s) lost their snapshot")
        if self.missing_runs:
            lost.append(f"{len(self.missing_runs)} run(s) lost their record")
        if self.damaged_reflog_lines:
            lines = ", ".join(str(d.number) for d in self.damaged_reflog_lines[:10])
            lost.append(f"ref log line(s) {lines} are damaged")
        if self.lost_tags:
            lost.append(f"tag(s) {', '.join(self.lost_tags)} are lost")
        bytes_lost = sum(n for s in self.salvaged_packs for _, n, _ in s.lost)
        if bytes_lost:
            lost.append(f"{bytes_lost} bytes of damaged packs could not be salvaged")
        return lost

    @property
    def ok(self) -> bool:
        return not self.losses()

    def to_json(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "packs": self.packs,
            "chunks": self.chunks,
            "objects": self.objects,
            "refs": self.refs,
            "skipped_packs": list(self.skipped_packs),
            "missing_snapshots": list(self.missing_snapshots),
            "runs": self.runs,
            "missing_runs": list(self.missing_runs),
            "damaged_reflog_lines": [d.to_json() for d in self.damaged_reflog_lines],
            "recovered_versions": list(self.recovered_versions),
            "lost_tags": list(self.lost_tags),
            "salvaged_packs": [s.to_json() for s in self.salvaged_packs],
            "unreadable": list(self.unreadable),
            "unreadable_versions": list(self.unreadable_versions),
            "broken_index": self.broken_index,
            "unfinished": list(self.unfinished),
        }
