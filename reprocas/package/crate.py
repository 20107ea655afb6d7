"""The RO-Crate 1.2 metadata (``ro-crate-metadata.json``) of a package, following the
Process Run Crate profile: one CreateAction per run, datasets with their content ids,
the code as a SoftwareApplication, the environment as entities."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

RO_CRATE = "https://w3id.org/ro/crate/1.2"
CONTEXT = "https://w3id.org/ro/crate/1.2/context"
PROCESS_RUN = "https://w3id.org/ro/wfrun/process/0.5"


def _iso(ns: int) -> str:
    return datetime.fromtimestamp(ns / 1e9, tz=UTC).isoformat().replace("+00:00", "Z")


def decision_notes(repo: Any, run_ids: list[str], versions: dict[str, str]) -> list[dict[str, Any]]:
    """Decision notes: ``reprocas.notes.crate_entities(repo, run_ids, versions)`` gives
    a ``CreativeWork`` per current note, ``about`` the packaged runs (``#run-<hex>``)
    and datasets (VERSIONS: version id hex -> crate id)."""
    import importlib

    try:
        notes = importlib.import_module("reprocas.notes")
    except ImportError:
        return []
    hook = getattr(notes, "crate_entities", None)
    if hook is None:
        return []
    return sorted(hook(repo, run_ids, versions), key=lambda e: str(e.get("@id")))


def crate_metadata(plan: Any, files: dict[str, bytes]) -> bytes:
    """The JSON-LD for ``plan`` (an :class:`~reprocas.package.export.Plan`); ``files``
    are the payload files other than the metadata (paths relative to ``data/``)."""
    graph: list[dict[str, Any]] = []
    parts: list[dict[str, str]] = []
    graph.append(
        {
            "@id": "ro-crate-metadata.json",
            "@type": "CreativeWork",
            "conformsTo": {"@id": RO_CRATE},
            "about": {"@id": "./"},
        }
    )
    profiles = [
        {
            "@id": PROCESS_RUN,
            "@type": ["CreativeWork", "Profile"],
            "name": "Process Run Crate",
            "version": "0.5",
        },
    ]
    for p in sorted(files):
        if p.startswith(("datasets/", "code/", "reprocas/")):
            continue
        graph.append({"@id": p, "@type": "File", "name": p, "contentSize": str(len(files[p]))})
        parts.append({"@id": p})
    actions: list[dict[str, str]] = []
    agents: dict[str, dict[str, Any]] = {}
    for r in plan.runs:
        run = r.run
        code_id = f"code/{r.key}/"
        graph.append(
            {
                "@id": code_id,
                "@type": "SoftwareApplication",
                "name": f"code of run {r.ref}",
                "identifier": (run.code or {}).get("commit") or "no git commit recorded",
                "description": "the recorded commit's tree with the stored uncommitted diff "
                "applied and the stored working-tree files",
            }
        )
        parts.append({"@id": code_id})
        agent_id = f"#person-{run.user}"
        agents[agent_id] = {"@id": agent_id, "@type": "Person", "name": run.user}
        objs: list[dict[str, str]] = []
        for v in r.inputs:
            objs.append({"@id": v.crate_id})
        for k in sorted(run.params):
            pid = f"#{r.key}-param-{k}"
            graph.append(
                {
                    "@id": pid,
                    "@type": "PropertyValue",
                    "name": k,
                    "value": json.dumps(run.params[k]),
                }
            )
            objs.append({"@id": pid})
        action: dict[str, Any] = {
            "@id": f"#run-{r.id_hex}",
            "@type": "CreateAction",
            "name": f"run {r.ref}",
            "identifier": r.id_hex,
            "instrument": {"@id": code_id},
            "agent": {"@id": agent_id},
            "object": objs,
            "result": [{"@id": v.crate_id} for v in r.outputs],
            "startTime": _iso(run.start_ns),
            "endTime": _iso(run.end_ns),
            "actionStatus": {
                "@id": "http://schema.org/CompletedActionStatus"
                if run.status == "ok"
                else "http://schema.org/FailedActionStatus"
            },
            "description": " ".join(run.command),
        }
        if r.env is not None:
            env_id = f"#environment-{r.env.id_hex}"
            facts = r.env.facts or {}
            graph.append(
                {
                    "@id": env_id,
                    "@type": "PropertyValue",
                    "name": "environment snapshot",
                    "identifier": r.env.id_hex,
                    "value": json.dumps(
                        {
                            "python": (facts.get("python") or {}).get("version"),
                            "os": facts.get("os"),
                            "hardware": facts.get("hardware"),
                        },
                        sort_keys=True,
                        default=str,
                    ),
                }
            )
            action["environment"] = [{"@id": env_id}]
        graph.append(action)
        actions.append({"@id": action["@id"]})
    for v in plan.versions.values():
        graph.append(
            {
                "@id": v.crate_id,
                "@type": "Dataset",
                "name": v.ref,
                "identifier": [v.id_hex] + ([v.content_hex] if v.content_hex else []),
                "description": f"snapshot id {v.id_hex}; content id {v.content_hex}",
            }
        )
        parts.append({"@id": v.crate_id})
    graph.extend(agents[k] for k in sorted(agents))
    graph.extend(getattr(plan, "notes", []))
    graph.extend(profiles)
    root = {
        "@id": "./",
        "@type": "Dataset",
        "name": plan.title,
        "description": "a reproducible package made by reprocas export",
        "license": {"@id": "https://spdx.org/licenses/CC-BY-4.0"},
        "conformsTo": [{"@id": PROCESS_RUN}],
        "hasPart": sorted(parts, key=lambda x: x["@id"]),
        "mentions": actions,
    }
    if plan.date:
        root["datePublished"] = plan.date
    graph.insert(1, root)
    graph.append(
        {"@id": "https://spdx.org/licenses/CC-BY-4.0", "@type": "CreativeWork", "name": "CC BY 4.0"}
    )
    return (
        json.dumps({"@context": CONTEXT, "@graph": graph}, indent=2, sort_keys=True) + "\n"
    ).encode()
