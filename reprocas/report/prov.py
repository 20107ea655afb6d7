"""W3C PROV-JSON: entities = versions/outputs, activities = runs, agents = users."""

from __future__ import annotations

from typing import Any


def prov(events: list[dict[str, Any]]) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "prefix": {"reprocas": "urn:reprocas:"},
        "entity": {},
        "activity": {},
        "agent": {},
        "wasGeneratedBy": {},
        "used": {},
        "wasDerivedFrom": {},
        "wasAssociatedWith": {},
    }
    for e in events:
        if e["kind"] == "version":
            doc["entity"][f"reprocas:{e['ref']}"] = {"prov:label": e["ref"]}
    for n, r in enumerate(e for e in events if e["kind"] == "run"):
        act = f"reprocas:run/{r['ref']}"
        doc["activity"][act] = {"prov:label": r["ref"]}
        for i, inp in enumerate(r["inputs"]):
            ent = f"reprocas:{inp['ref']}"
            doc["entity"].setdefault(ent, {"prov:label": inp["ref"]})
            doc["used"][f"_:u{n}_{i}"] = {"prov:activity": act, "prov:entity": ent}
        for i, out in enumerate(r["outputs"]):
            ent = f"reprocas:{out}"
            doc["entity"].setdefault(ent, {"prov:label": out})
            doc["wasGeneratedBy"][f"_:g{n}_{i}"] = {"prov:entity": ent, "prov:activity": act}
            for j, inp in enumerate(r["inputs"]):
                doc["wasDerivedFrom"][f"_:d{n}_{i}_{j}"] = {
                    "prov:generatedEntity": ent,
                    "prov:usedEntity": f"reprocas:{inp['ref']}",
                }
    return {k: v for k, v in doc.items() if v}
