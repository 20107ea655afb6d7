"""Decision notes in an export package's RO-Crate (issue 19 x issue 20): each current
note about a packaged run or version becomes a ``CreativeWork`` entity ``about`` the
crate entities of those runs and datasets. Superseded notes are left out, as from
every answer; the note's id is kept as its ``identifier`` so an import can tell it."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from reprocas.model.display import iso_time

if TYPE_CHECKING:
    from reprocas.store.repository import Repository


def crate_entities(
    repo: Repository, run_ids: list[str], versions: dict[str, str]
) -> list[dict[str, Any]]:
    """RUN_IDS are the packaged runs' ids (hex; crate ids ``#run-<hex>``), VERSIONS maps
    each packaged version's id (hex) to its crate id."""
    from reprocas.notes.store import notes_for

    subjects = {h: f"#run-{h}" for h in run_ids} | dict(versions)
    entities: dict[str, dict[str, Any]] = {}
    for subject, records in notes_for(repo, list(subjects)).items():
        for rec in records:
            e = entities.get(rec.id.hex)
            if e is None:
                e = entities[rec.id.hex] = {
                    "@id": f"#note-{rec.id.hex}",
                    "@type": "CreativeWork",
                    "additionalType": rec.note.kind,
                    "identifier": rec.id.hex,
                    "text": rec.note.text,
                    "about": [],
                }
                if rec.note.by:
                    e["author"] = rec.note.by
                if rec.time_ns:
                    e["dateCreated"] = iso_time(rec.time_ns)
            e["about"].append({"@id": subjects[subject]})
    for e in entities.values():
        e["about"] = sorted(e["about"], key=lambda a: a["@id"])
    return [entities[k] for k in sorted(entities)]
