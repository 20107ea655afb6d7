"""`reprocas report --prov`: the W3C PROV-JSON of a real history (versions, runs in a
captured environment, a replay), validated against the vendored PROV-JSON schema
(tests/data/prov-json.schema.json) with ``jsonschema``; every relation names records
of the same document."""

from __future__ import annotations

import copy
import getpass
import json
import socket
import sys
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from tests.integration._helpers import assert_ok, run_cli

SCHEMA = json.loads((Path(__file__).parents[1] / "data" / "prov-json.schema.json").read_text())
VALIDATOR = jsonschema.Draft7Validator(SCHEMA, format_checker=jsonschema.FormatChecker())
# which record kind each relation's participants must be
ROLES = {
    "used": {"prov:activity": "activity", "prov:entity": "entity"},
    "wasGeneratedBy": {"prov:entity": "entity", "prov:activity": "activity"},
    "wasDerivedFrom": {
        "prov:generatedEntity": "entity",
        "prov:usedEntity": "entity",
        "prov:activity": "activity",
    },
    "wasAssociatedWith": {"prov:activity": "activity", "prov:agent": "agent"},
}


@pytest.fixture(scope="module")
def prov_doc(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    tmp = tmp_path_factory.mktemp("prov")
    repo = tmp / "repo"
    assert_ok(run_cli("init", repo=repo))
    data = tmp / "data"
    data.mkdir()
    (data / "t.csv").write_text("a\n1\n")
    assert_ok(run_cli("commit", data, "-d", "raw", "-m", "<b>first</b>", repo=repo))
    (data / "t.csv").write_text("a\n1\n2\n")
    assert_ok(run_cli("commit", data, "-d", "raw", "-m", "second", repo=repo))
    project = tmp / "proj"
    project.mkdir()
    (project / "fit.py").write_text(
        "import json, os\n"
        "n = len(open('inputs/raw/t.csv').read().split())\n"
        "json.dump({'rmse': 1.0 / n}, open('m.json', 'w'))\n"
        "os.makedirs('out', exist_ok=True)\n"
        "open('out/w.txt', 'w').write(str(n))\n"
    )
    for ref, seed in (("raw@v1", "1"), ("raw@v2", "2")):
        assert_ok(run_cli(
            "run", "-n", "fit", "-i", ref, "--param", f"seed={seed}", "--metrics", "m.json",
            "-o", "out", "--", sys.executable, "fit.py", repo=repo, cwd=project,
        ))  # fmt: skip
    assert_ok(run_cli("replay", "fit#2", "--json", repo=repo))
    out = tmp / "prov.json"
    assert_ok(run_cli("report", "--to", tmp / "r.html", "--prov", out, repo=repo))
    doc: dict[str, Any] = json.loads(out.read_text())
    return doc


def test_prov_is_valid_prov_json(prov_doc: dict[str, Any]) -> None:
    errors = [f"{list(e.path)}: {e.message}" for e in VALIDATOR.iter_errors(prov_doc)]
    assert errors == []
    assert prov_doc["prefix"] == {"reprocas": "urn:reprocas:"}


def test_prov_records_and_agents(prov_doc: dict[str, Any]) -> None:
    ents, acts, agents = prov_doc["entity"], prov_doc["activity"], prov_doc["agent"]
    assert {"reprocas:raw@v1", "reprocas:raw@v2"} <= set(ents)
    assert ents["reprocas:raw@v1"]["reprocas:message"] == "<b>first</b>"  # data, not markup
    assert set(acts) == {"reprocas:run/fit#1", "reprocas:run/fit#2", "reprocas:run/fit#3"}
    a2, a3 = acts["reprocas:run/fit#2"], acts["reprocas:run/fit#3"]
    assert a2["reprocas:metric/rmse"] == pytest.approx(1 / 3)
    assert a2["reprocas:param/seed"] in ("2", 2)
    assert a2["prov:startTime"] <= a2["prov:endTime"]
    assert a3["reprocas:replayOf"] == "fit#2" and a3["reprocas:verdict"] == "identical"
    # the agent: the user who ran the runs, on this host
    user = getpass.getuser()
    assert agents == {
        f"reprocas:user/{user}": {
            "prov:label": user,
            "prov:type": {"$": "prov:Person", "type": "prov:QUALIFIED_NAME"},
        }
    }
    assoc = prov_doc["wasAssociatedWith"]
    assert sorted(a["prov:activity"] for a in assoc.values()) == sorted(acts)
    assert {a["reprocas:host"] for a in assoc.values()} == {socket.gethostname()}
    # inputs and the captured environment are used; outputs generated and derived
    used = prov_doc["used"].values()
    roles = {(u["prov:activity"], u["prov:entity"], u["prov:role"]["$"]) for u in used}
    assert ("reprocas:run/fit#1", "reprocas:raw@v1", "reprocas:input") in roles
    assert ("reprocas:run/fit#2", "reprocas:raw@v2", "reprocas:input") in roles
    envs = {e for a, e, role in roles if role == "reprocas:environment"}
    assert len(envs) == 1 and next(iter(envs)).startswith("reprocas:env/")
    gen = {(g["prov:entity"], g["prov:activity"]) for g in prov_doc["wasGeneratedBy"].values()}
    assert ("reprocas:runs/fit@v1", "reprocas:run/fit#1") in gen
    der = {(d["prov:generatedEntity"], d["prov:usedEntity"])
           for d in prov_doc["wasDerivedFrom"].values()}  # fmt: skip
    assert ("reprocas:runs/fit@v1", "reprocas:raw@v1") in der


def test_every_relation_names_records_of_the_document(prov_doc: dict[str, Any]) -> None:
    checked = 0
    for relation, roles in ROLES.items():
        for rid, rec in prov_doc[relation].items():
            assert rid.startswith("_:")
            for key, kind in roles.items():
                if key in rec:
                    assert rec[key] in prov_doc[kind], (relation, rid, key, rec[key])
                    checked += 1
    assert checked >= 20


@pytest.mark.parametrize(
    "damage",
    [
        lambda d: d.update(wasAssociatedwith=d.pop("wasAssociatedWith")),  # misspelt
        lambda d: next(iter(d["used"].values())).pop("prov:activity"),  # required
        lambda d: next(iter(d["activity"].values())).update({"prov:startTime": "yesterday"}),
        lambda d: next(iter(d["entity"].values())).update({"prov:label": {"x": 1}}),
        lambda d: d["agent"].update({"no colon": {}}),  # not a qualified name
    ],
)
def test_the_schema_refuses_broken_documents(prov_doc: dict[str, Any], damage: Any) -> None:
    doc = copy.deepcopy(prov_doc)
    damage(doc)
    assert list(VALIDATOR.iter_errors(doc))
