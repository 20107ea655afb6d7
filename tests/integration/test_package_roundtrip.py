"""`reprocas export` and `reprocas import` through the real CLI: a run with two dataset
versions as inputs, code in a git repository with an uncommitted change, params,
outputs and metrics; imported into a repository with other chunk sizes, where the ids
come out the same and `reprocas replay` gives `identical`."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.integration._helpers import assert_ok, assert_one_line_error, run_cli, verify_ok
from tests.integration._package import Scenario, build, entries, extract, index_of, show


@pytest.fixture(scope="module")
def scenario(tmp_path_factory: pytest.TempPathFactory) -> Scenario:
    return build(tmp_path_factory.mktemp("package"))


def _replay(repo: Path, cwd: Path) -> dict[str, object]:
    return assert_ok(run_cli("replay", "train#1", "--json", repo=repo, cwd=cwd)).json()  # type: ignore[no-any-return]


def _same_ids(s: Scenario, repo: Path) -> None:
    for ref, want in s.versions.items():
        got = show(repo, ref)
        assert got["id"] == want["id"], ref
        assert got["content_id"] == want["content_id"], ref
    runs = assert_ok(run_cli("runs", "--json", repo=repo)).json()
    assert runs[0]["id"] == s.run_id and runs[0]["ref"] == "train#1"


def test_import_into_other_chunking_keeps_ids_and_replays_identical(scenario: Scenario) -> None:
    s = scenario
    repo = s.fresh_repo("imported")
    out = assert_ok(run_cli("import", s.package, "--json", repo=repo)).json()
    assert [r["id"] for r in out["runs"]] == [s.run_id]
    assert {v["ref"]: v["id"] for v in out["versions"]} == {
        r: v["id"] for r, v in s.versions.items()
    }
    assert all(v["status"] == "imported" for v in out["versions"])
    _same_ids(s, repo)
    verify_ok(repo, read_data=True)
    # The files come back byte for byte under the other chunking.
    for ref in s.versions:
        dest = s.root / "co" / ref
        assert_ok(run_cli("checkout", ref, dest, repo=repo))
        assert_ok(run_cli("check-dir", dest, ref, repo=s.origin))
    replay = _replay(repo, s.root)
    assert replay["verdict"] == "identical", replay["differences"]
    assert replay["original"]["id"] == s.run_id  # type: ignore[index]
    # Importing again changes nothing: everything is present.
    again = assert_ok(run_cli("import", s.package, "--json", repo=repo)).json()
    assert {v["status"] for v in again["versions"]} == {"present"}
    assert again["new_bytes"] == 0


def test_reexport_is_byte_identical_also_from_the_importing_repository(scenario: Scenario) -> None:
    s = scenario
    again = s.root / "again.zip"
    assert_ok(run_cli("export", "train#1", "--to", again, repo=s.origin, cwd=s.project))
    assert again.read_bytes() == s.package.read_bytes()
    repo = s.fresh_repo("reexport")
    assert_ok(run_cli("import", s.package, repo=repo))
    third = s.root / "third.zip"
    assert_ok(run_cli("export", "train", "--to", third, repo=repo, cwd=s.root))
    assert third.read_bytes() == s.package.read_bytes()


def test_package_is_a_valid_bag_and_a_process_run_crate(scenario: Scenario) -> None:
    import bagit  # type: ignore[import-untyped]
    from rocrate.rocrate import ROCrate  # type: ignore[import-untyped]

    s = scenario
    bag_dir = extract(s.package, s.root / "bag")
    bag = bagit.Bag(str(bag_dir))
    bag.validate()  # every payload checksum, the Payload-Oxum, the tag manifests
    assert set(bag.algorithms) >= {"sha256", "sha512"}
    crate = ROCrate(str(bag_dir / "data"))
    meta = json.loads((bag_dir / "data" / "ro-crate-metadata.json").read_text())
    graph = {e["@id"]: e for e in meta["@graph"]}
    profile = "https://w3id.org/ro/wfrun/process/0.5"
    conforms = graph["./"]["conformsTo"]
    assert {"@id": profile} in (conforms if isinstance(conforms, list) else [conforms])
    assert graph["ro-crate-metadata.json"]["conformsTo"]["@id"] == "https://w3id.org/ro/crate/1.2"
    actions = [e for e in crate.get_entities() if e.type == "CreateAction"]
    assert len(actions) == 1
    action = graph[actions[0].id]
    assert action["identifier"] == s.run_id
    assert action["instrument"]["@id"] == "code/train-1/"
    objects = {o["@id"] for o in action["object"]}
    assert {"datasets/clinical@v1/", "datasets/clinical@v2/"} <= objects
    params = {graph[o]["name"]: graph[o]["value"] for o in objects if o.startswith("#")}
    assert params == {"seed": "7", "lr": "0.5"}
    assert [r["@id"] for r in action["result"]] == ["datasets/runs/train@v1/"]
    assert graph["datasets/clinical@v2/"]["identifier"] == [
        s.versions["clinical@v2"]["id"],
        s.versions["clinical@v2"]["content_id"],
    ]
    assert action["actionStatus"]["@id"] == "http://schema.org/CompletedActionStatus"
    # The paper-ready files are there and name what they came from.
    files = entries(s.package)
    checklist = files["data/CHECKLIST.md"].decode()
    assert "seed=7" in checklist and s.run_id in checklist
    assert s.run_id in files["data/README.md"].decode()
    assert b"cff-version: 1.2.0" in files["data/CITATION.cff"]
    # The code: the commit's tree with the stored diff applied, and the untracked file.
    assert b"digest_tree" in files["data/code/train-1/train.py"]
    assert b"def digest_tree" in files["data/code/train-1/helper.py"]
    assert index_of(s.package)["data"] == "include"


def test_metadata_only_then_data_supplied_separately(scenario: Scenario) -> None:
    s = scenario
    pkg = s.root / "meta.zip"
    out = assert_ok(
        run_cli("export", "train", "--to", pkg, "--data", "metadata-only", "--json",
                repo=s.origin, cwd=s.project)
    ).json()  # fmt: skip
    assert not any(v["included"] for v in out["versions"])
    names = entries(pkg)
    assert not [n for n in names if n.startswith("data/datasets/")]
    # No byte of the data travelled: the largest input file is nowhere in the zip.
    big = (s.root / "clinical" / "data" / "part-0.bin").read_bytes()[:4096]
    assert not any(big in b for b in names.values())
    # Without the data the import is refused and changes nothing.
    repo = s.fresh_repo("meta-import")
    assert_one_line_error(run_cli("import", pkg, repo=repo), 2, "--data-dir", "clinical@v1")
    # The colleague gets the data another way and checks it against the package.
    supplied = s.root / "supplied"
    for ref in s.versions:
        assert_ok(run_cli("checkout", ref, supplied / ref, repo=s.origin))
        res = assert_ok(run_cli("check-dir", supplied / ref, ref, "--package", pkg, "--json"))
        assert res.json()["same"] is True
    tampered = supplied / "clinical@v2" / "README.txt"
    tampered.write_bytes(b"changed\n")
    res = run_cli("check-dir", supplied / "clinical@v2", "clinical@v2", "--package", pkg)
    assert res.returncode == 1 and "README.txt" in res.out
    err = run_cli("import", pkg, "--data-dir", supplied, repo=repo)
    assert_one_line_error(err, 6, "clinical@v2/README.txt")
    tampered.write_bytes(b"")  # back as it was (mutate_tree emptied it)
    got = assert_ok(run_cli("import", pkg, "--data-dir", supplied, "--json", repo=repo)).json()
    assert {v["status"] for v in got["versions"]} == {"imported"}
    _same_ids(s, repo)
    verify_ok(repo, read_data=True)
    assert _replay(repo, s.root)["verdict"] == "identical"


def test_export_refuses_a_format_2_repository_and_bad_options(
    scenario: Scenario, tmp_path: Path
) -> None:
    old = tmp_path / "old"
    assert_ok(run_cli("init", "--format", "2", old))
    assert_ok(run_cli("commit", scenario.root / "clinical", "--dataset", "c", repo=old))
    assert_one_line_error(
        run_cli("export", "c@v1", "--to", tmp_path / "p.zip", repo=old), 2, "upgrade"
    )
    assert not (tmp_path / "p.zip").exists()
    res = run_cli("export", "train", "--to", tmp_path / "p.zip", "--data", "some",
                  repo=scenario.origin)  # fmt: skip
    assert_one_line_error(res, 2, "--data")


def test_replay_where_no_git_repository_holds_the_commit(scenario: Scenario) -> None:
    """On another machine the run's git repository does not exist: the replay runs the
    code the package brought (the commit's tree, the stored diff, the untracked file)."""
    s = scenario
    repo = s.fresh_repo("elsewhere")
    assert_ok(run_cli("import", s.package, repo=repo))
    away = s.root / "project-away"
    s.project.rename(away)
    try:
        res = assert_ok(run_cli("replay", "train", "--json", repo=repo, cwd=s.root))
    finally:
        away.rename(s.project)
    replay = res.json()
    assert replay["verdict"] == "identical", replay["differences"]
    assert replay["code"]["source"] == "package"
    assert "imported with its package" in res.err
    # The origin has no packaged code: there the same replay cannot find the commit.
    s.project.rename(away)
    try:
        res = run_cli("replay", "train", repo=s.origin, cwd=s.root)
    finally:
        away.rename(s.project)
    assert_one_line_error(res, 4, "no git repository")


def test_with_report_adds_the_html_report_to_the_bag(scenario: Scenario) -> None:
    import bagit

    s = scenario
    pkg = s.root / "report.zip"
    assert_ok(run_cli("export", "train#1", "--to", pkg, "--with-report", repo=s.origin,
                      cwd=s.project))  # fmt: skip
    files = entries(pkg)
    html = files["data/report.html"].decode()
    assert html.startswith("<!DOCTYPE html>") or "<html" in html[:500]
    assert "train#1" in html
    meta = json.loads(files["data/ro-crate-metadata.json"])
    assert any(e["@id"] == "report.html" and e["@type"] == "File" for e in meta["@graph"])
    bagit.Bag(str(extract(pkg, s.root / "report-bag"))).validate()
    assert "data/report.html" not in entries(s.package)  # not made unless asked


def test_with_env_lock_carries_the_recipe_not_the_snapshot(scenario: Scenario) -> None:
    s = scenario
    pkg = s.root / "lock.zip"
    out = assert_ok(run_cli("export", "train", "--to", pkg, "--with-env", "lock", "--json",
                            repo=s.origin, cwd=s.project)).json()  # fmt: skip
    assert out["environments"] == []
    env_id = index_of(s.package)["runs"][0]["environment"]
    files = entries(pkg)
    assert f"data/reprocas/objects/{env_id}" not in files
    assert (
        b"==" in files["data/requirements-lock.txt"] and b"FROM python:" in files["data/Dockerfile"]
    )
    repo = s.fresh_repo("lock-import")
    assert_ok(run_cli("import", pkg, repo=repo))
    # The run names an environment this repository never had: recorded as purged, so
    # gc and a rebuilt index accept it; the replay notes that drift is not checked.
    assert_ok(run_cli("gc", repo=repo))
    res = assert_ok(run_cli("replay", "train", "--json", repo=repo, cwd=s.root))
    assert res.json()["verdict"] == "identical"
    assert "drift not checked" in res.err
    assert_ok(run_cli("index", "rebuild", repo=repo))
    assert_ok(run_cli("gc", repo=repo))
    verify_ok(repo, read_data=True)


def test_decision_notes_go_into_the_crate(scenario: Scenario) -> None:
    import shutil

    s = scenario
    origin = s.root / "noted"
    shutil.copytree(s.origin, origin)
    about_v1 = assert_ok(run_cli("note", "add", "v1 is the frozen cohort", "--about",
                                 "clinical@v1", "--kind", "decision", "--by", "ana", "--json",
                                 repo=origin)).json()  # fmt: skip
    old = assert_ok(run_cli("note", "add", "lr too high?", "--about", "train#1", "--json",
                            repo=origin)).json()  # fmt: skip
    new = assert_ok(run_cli("note", "add", "lr 0.5 is fine", "--about", "train#1",
                            "--supersedes", old["id"], "--kind", "answer", "--json",
                            repo=origin)).json()  # fmt: skip
    pkg = s.root / "noted.zip"
    assert_ok(run_cli("export", "train#1", "--to", pkg, repo=origin, cwd=s.project))
    meta = json.loads(entries(pkg)["data/ro-crate-metadata.json"])
    notes = {e["identifier"]: e for e in meta["@graph"] if e["@id"].startswith("#note-")}
    assert set(notes) == {about_v1["id"], new["id"]}  # the superseded one is left out
    ids = {e["@id"] for e in meta["@graph"]}
    v1 = notes[about_v1["id"]]
    assert v1["text"] == "v1 is the frozen cohort" and v1["additionalType"] == "decision"
    assert v1["author"] == "ana" and v1["about"] == [{"@id": "datasets/clinical@v1/"}]
    assert notes[new["id"]]["about"] == [{"@id": f"#run-{s.run_id}"}]
    assert all(a["@id"] in ids for e in notes.values() for a in e["about"])
    # The same notes give the same bytes.
    again = s.root / "noted-again.zip"
    assert_ok(run_cli("export", "train#1", "--to", again, repo=origin, cwd=s.project))
    assert again.read_bytes() == pkg.read_bytes()
