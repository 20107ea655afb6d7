"""W3C PROV-JSON (https://www.w3.org/submissions/prov-json/) of the report's events.

* entities: dataset versions (inputs, outputs, environment snapshots), ``prov:type``
  ``reprocas:Version``;
* activities: runs (``prov:startTime``/``prov:endTime``, status, exit code, metrics,
  parameters, the replay verdict);
* agents: the users who ran them (``prov:Person``, from each run record's user);
* relations: ``used`` (inputs, role ``input``; the environment, role ``environment``),
  ``wasGeneratedBy`` (outputs), ``wasDerivedFrom`` (each output from each input),
  ``wasAssociatedWith`` (run and user, with the host it ran on).

Identifiers are qualified names in the ``reprocas`` namespace (``urn:reprocas:``);
relation identifiers are blank nodes (``_:u1``...). Every relation names records of
the same document.
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Any
from urllib.parse import quote

NS = "urn:reprocas:"


def _qn(kind: str, local: str) -> str:
    # A PROV qualified name: no whitespace; '%' escapes what a user name may hold.
    return f"reprocas:{kind}{quote(local, safe='@/#._-~+')}"


def _time(ns: int) -> str:
    return (
        dt.datetime.fromtimestamp(ns / 1e9, tz=dt.UTC)
        .isoformat(timespec="milliseconds")
        .replace("+00:00", "Z")
    )


def _qname_literal(q: str) -> dict[str, str]:
    return {"$": q, "type": "prov:QUALIFIED_NAME"}


def _scalar(v: Any) -> str | int | float | bool:
    if isinstance(v, bool | int | float | str):
        return v
    return json.dumps(v, sort_keys=True, default=str)


def prov(events: list[dict[str, Any]]) -> dict[str, Any]:
    """The PROV-JSON document of ``events`` (the report's data model)."""
    doc: dict[str, Any] = {
        "prefix": {"reprocas": NS},
        "entity": {},
        "activity": {},
        "agent": {},
        "wasGeneratedBy": {},
        "used": {},
        "wasDerivedFrom": {},
        "wasAssociatedWith": {},
    }
    entity: dict[str, dict[str, Any]] = doc["entity"]

    def version(ref: str) -> str:
        eid = _qn("", ref)
        entity.setdefault(eid, {"prov:label": ref, "prov:type": _qname_literal("reprocas:Version")})
        return eid

    for e in events:
        if e["kind"] == "version":
            attrs = entity.setdefault(version(e["ref"]), {})
            attrs["reprocas:id"] = str(e.get("id") or "")
            attrs["reprocas:time"] = _time(int(e["time_ns"]))
            for key in ("message", "step", "author"):
                if e.get(key):
                    attrs[f"reprocas:{key}"] = str(e[key])
            if e.get("tags"):
                attrs["reprocas:tags"] = [str(t) for t in e["tags"]]
    for n, r in enumerate((e for e in events if e["kind"] == "run"), 1):
        act = _qn("run/", r["ref"])
        attrs = {
            "prov:label": r["ref"],
            "prov:type": _qname_literal("reprocas:Run"),
            "prov:startTime": _time(int(r.get("start_ns") or r["time_ns"])),
            "prov:endTime": _time(int(r.get("end_ns") or r["time_ns"])),
            "reprocas:status": str(r.get("status")),
            "reprocas:exitCode": int(r.get("exit_code") or 0),
        }
        for k, v in sorted((r.get("params") or {}).items()):
            attrs[f"reprocas:param/{quote(str(k), safe='')}"] = _scalar(v)
        for k, v in sorted((r.get("metrics") or {}).items()):
            attrs[f"reprocas:metric/{quote(str(k), safe='')}"] = _scalar(v)
        if r.get("replay_of"):
            attrs["reprocas:replayOf"] = str(r.get("replay_of_ref") or r["replay_of"])
            attrs["reprocas:verdict"] = str(r.get("verdict"))
        doc["activity"][act] = attrs
        inputs = [version(i["ref"]) for i in r.get("inputs") or []]
        for i, ent in enumerate(inputs):
            doc["used"][f"_:u{n}.{i}"] = {
                "prov:activity": act,
                "prov:entity": ent,
                "prov:role": _qname_literal("reprocas:input"),
            }
        if r.get("environment"):
            doc["used"][f"_:e{n}"] = {
                "prov:activity": act,
                "prov:entity": version(r["environment"]),
                "prov:role": _qname_literal("reprocas:environment"),
            }
        for i, out in enumerate(r.get("outputs") or []):
            ent = version(out)
            doc["wasGeneratedBy"][f"_:g{n}.{i}"] = {
                "prov:entity": ent,
                "prov:activity": act,
                "prov:time": attrs["prov:endTime"],
            }
            for j, src in enumerate(inputs):
                doc["wasDerivedFrom"][f"_:d{n}.{i}.{j}"] = {
                    "prov:generatedEntity": ent,
                    "prov:usedEntity": src,
                    "prov:activity": act,
                }
        user = str(r.get("user") or "")
        if user:
            agent = _qn("user/", user)
            doc["agent"].setdefault(
                agent, {"prov:label": user, "prov:type": _qname_literal("prov:Person")}
            )
            doc["wasAssociatedWith"][f"_:a{n}"] = {
                "prov:activity": act,
                "prov:agent": agent,
                "reprocas:host": str(r.get("host") or ""),
            }
    return {k: v for k, v in doc.items() if v}
