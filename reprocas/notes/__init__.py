"""Decision notes, pins and ``why``: the reasoning kept next to the records.

* :mod:`reprocas.notes.subjects` — what a note can be about (versions, runs,
  environments, notes) and how a ref names it;
* :mod:`reprocas.notes.store` — writing notes (object, ``note:<id>`` ref, ``notes``
  record, ``about``/``supersedes`` edges), listing them, restoring them at rebuild;
* :mod:`reprocas.notes.pins` — canonical versions (``pin:<dataset>`` refs);
* :mod:`reprocas.notes.why` — answering "why?" from the record, citing ids;
* :mod:`reprocas.notes.events` — notes as ``log --timeline`` events;
* :mod:`reprocas.notes.crate` — notes as RO-Crate entities of export packages.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from reprocas.store.repository import Repository


def crate_entities(
    repo: Repository, run_ids: list[str], versions: dict[str, str]
) -> list[dict[str, Any]]:
    """The current notes about packaged runs and versions, as RO-Crate entities."""
    from reprocas.notes.crate import crate_entities as entities

    return entities(repo, run_ids, versions)


def report_notes(repo: Repository) -> list[dict[str, Any]]:
    """The current notes for ``reprocas report``, oldest first: ``time_ns``, ``time``,
    ``ref`` (what each is about, comma-separated labels), ``text``, and ``id``, ``kind``,
    ``by``, ``about`` (the subjects' ids, types and labels)."""
    from reprocas.notes.store import list_notes

    out = []
    for r in list_notes(repo):
        j = r.to_json()
        out.append(
            {
                "time_ns": r.time_ns,
                "time": j["time"],
                "ref": ", ".join(s.label for s in r.about),
                "text": r.note.text,
                "id": r.id.hex,
                "kind": r.note.kind,
                "by": r.note.by,
                "about": j["about"],
            }
        )
    return out
