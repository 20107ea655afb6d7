"""A damaged package is refused by `reprocas import` with one line naming the file, and
the importing repository is left exactly as it was: a flipped byte, a missing file, a
manifest that lies (at each layer: the bag, the BLAKE3 list, the trees, the index), a
path that escapes the bag."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from pathlib import Path

import pytest

from reprocas.native import core
from tests.integration._helpers import (
    assert_ok,
    assert_one_line_error,
    assert_repo_unchanged,
    repo_state,
    run_cli,
)
from tests.integration._package import Scenario, build, entries, rewrite

FILE = "data/datasets/clinical@v1/README.txt"


@pytest.fixture(scope="module")
def scenario(tmp_path_factory: pytest.TempPathFactory) -> Scenario:
    return build(tmp_path_factory.mktemp("package-damage"))


@pytest.fixture(scope="module")
def target(scenario: Scenario) -> Path:
    """The importing repository, holding a version of its own (so "unchanged" means
    something)."""
    repo = scenario.fresh_repo("target")
    assert_ok(run_cli("commit", scenario.root / "clinical", "--dataset", "mine", repo=repo))
    return repo


def _rebag(files: dict[str, bytes]) -> dict[str, bytes]:
    """Recompute the bag's manifests (as a forger would) for the payload given."""
    from reprocas.package import bagit

    payload = {p[5:]: b for p, b in files.items() if p.startswith("data/")}
    info = files["bag-info.txt"].decode()
    fields = dict(line.split(": ", 1) for line in info.splitlines() if ": " in line)
    fields.pop("Payload-Oxum", None)
    return bagit.make_bag(payload, fields)


def _relist(files: dict[str, bytes]) -> dict[str, bytes]:
    """Recompute the BLAKE3 list too (a forger who knows the format)."""
    from reprocas.package import bagit
    from reprocas.package.export import UNLISTED

    listed = sorted(p[5:] for p in files if p.startswith("data/") and p[5:] not in UNLISTED)
    files["data/reprocas/blake3.txt"] = "".join(
        f"{core.blake3_digest(files['data/' + p]).hex()}  {bagit._quote(p)}\n" for p in listed
    ).encode()
    return _rebag(files)


def _flip(b: bytes) -> bytes:
    return bytes([b[0] ^ 1]) + b[1:]


def _lie_in_index(files: dict[str, bytes]) -> dict[str, bytes]:
    index = json.loads(files["data/reprocas/package.json"])
    index["versions"][0]["content_id"] = "00" * 32
    files["data/reprocas/package.json"] = json.dumps(index).encode()
    return _relist(files)


def _swap_object(files: dict[str, bytes]) -> dict[str, bytes]:
    name = next(n for n in sorted(files) if n.startswith("data/reprocas/objects/"))
    files[name] = _flip(files[name])
    return _relist(files)


CASES: dict[str, tuple[Callable[[dict[str, bytes]], dict[str, bytes | None]], str]] = {
    "flipped byte": (lambda f: {FILE: _flip(f[FILE])}, FILE),
    "missing file": (lambda f: {FILE: None}, FILE),
    "extra file": (lambda f: {"data/datasets/clinical@v1/planted.txt": b"x"}, "planted.txt"),
    "manifest lies": (
        lambda f: {
            "manifest-sha256.txt": f["manifest-sha256.txt"].replace(
                hashlib.sha256(f[FILE]).hexdigest().encode(), b"0" * 64
            )
        },
        FILE,
    ),
    "tag manifest lies": (lambda f: {"bag-info.txt": f["bag-info.txt"] + b"X: y\n"}, "bag-info"),
    "bag rebuilt, BLAKE3 list lies": (
        lambda f: dict(_rebag({**f, FILE: b"forged\n"})),
        "clinical@v1/README.txt",
    ),
    "every list rebuilt, the tree disagrees": (
        lambda f: dict(_relist({**f, FILE: b"forged\n"})),
        "clinical@v1/README.txt",
    ),
    "index lies about a content id": (lambda f: dict(_lie_in_index(dict(f))), "package.json"),
    "object does not hash to its name": (lambda f: dict(_swap_object(dict(f))), "objects/"),
    "zip-slip": (lambda f: {"data/../../escaped.txt": b"gotcha"}, "escaped.txt"),
    "absolute path": (lambda f: {"/tmp/escaped-abs.txt": b"gotcha"}, "escaped-abs.txt"),
    "not a zip": (lambda f: {}, "zip"),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_damaged_package_is_refused_and_nothing_is_imported(
    scenario: Scenario, target: Path, tmp_path: Path, case: str
) -> None:
    make, needle = CASES[case]
    bad = tmp_path / "bad.zip"
    if case == "not a zip":
        bad.write_bytes(scenario.package.read_bytes()[:-100])
    else:
        rewrite(scenario.package, bad, make(entries(scenario.package)))
    before = repo_state(target)
    res = run_cli("import", bad, repo=target, cwd=tmp_path)
    assert_one_line_error(res, 6, needle)
    assert_repo_unchanged(target, before)
    assert not (tmp_path.parent / "escaped.txt").exists()
    assert not Path("/tmp/escaped-abs.txt").exists()


def test_metadata_only_with_a_missing_supplied_file_is_refused(
    scenario: Scenario, target: Path, tmp_path: Path
) -> None:
    pkg = tmp_path / "meta.zip"
    assert_ok(run_cli("export", "train", "--to", pkg, "--data", "metadata-only",
                      repo=scenario.origin, cwd=scenario.project))  # fmt: skip
    supplied = tmp_path / "supplied"
    for ref in ("clinical@v1", "clinical@v2", "runs/train@v1"):
        assert_ok(run_cli("checkout", ref, supplied / ref, repo=scenario.origin))
    (supplied / "runs/train@v1" / "out" / "model.txt").unlink()  # the last one checked
    before = repo_state(target)
    res = run_cli("import", pkg, "--data-dir", supplied, repo=target)
    assert_one_line_error(res, 6, "out/model.txt", "missing")
    assert_repo_unchanged(target, before)


def test_a_taken_version_number_is_renumbered_not_overwritten(
    scenario: Scenario, tmp_path: Path
) -> None:
    repo = scenario.fresh_repo("taken")
    other = tmp_path / "other"
    other.mkdir()
    (other / "f.txt").write_text("another clinical v1\n")
    assert_ok(run_cli("commit", other, "--dataset", "clinical", repo=repo))
    mine = assert_ok(run_cli("show", "clinical@v1", "--json", repo=repo)).json()["id"]
    out = assert_ok(run_cli("import", scenario.package, "--json", repo=repo)).json()
    by = {v["packaged_as"]: v for v in out["versions"]}
    assert by["clinical@v1"]["status"] == "renumbered"
    assert by["clinical@v1"]["id"] == scenario.versions["clinical@v1"]["id"]
    assert assert_ok(run_cli("show", "clinical@v1", "--json", repo=repo)).json()["id"] == mine
    moved = by["clinical@v1"]["ref"]
    got = assert_ok(run_cli("show", moved, "--json", repo=repo)).json()
    assert got["id"] == scenario.versions["clinical@v1"]["id"]


def test_import_into_a_format_2_repository_is_refused(scenario: Scenario, tmp_path: Path) -> None:
    old = tmp_path / "old"
    assert_ok(run_cli("init", "--format", "2", old))
    before = repo_state(old)
    assert_one_line_error(run_cli("import", scenario.package, repo=old), 2, "upgrade")
    assert_repo_unchanged(old, before)


def test_a_taken_run_number_is_renumbered_and_listed_so(scenario: Scenario) -> None:
    repo = scenario.fresh_repo("run-taken")
    assert_ok(run_cli("run", "-n", "train", "--env", "none", "--", "true", repo=repo,
                      cwd=scenario.root))  # fmt: skip
    out = assert_ok(run_cli("import", scenario.package, "--json", repo=repo)).json()
    [r] = out["runs"]
    assert (r["status"], r["ref"], r["id"]) == ("renumbered", "train#2", scenario.run_id)
    runs = {x["ref"]: x for x in assert_ok(run_cli("runs", "--json", repo=repo)).json()}
    assert runs["train#2"]["id"] == scenario.run_id and runs["train#2"]["number"] == 2
