"""The scenario the package tests share: a real git repository whose training script
(standard library only) has an uncommitted change and an untracked helper file, two
versions of a seeded dataset, and a run with params, outputs and metrics, recorded
through the real CLI; then exported."""

from __future__ import annotations

import json
import shutil
import textwrap
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import reprocas
from reprocas.model.chunking import ChunkingConfig
from tests.integration._helpers import assert_ok, git, run_cli
from tests.integration.trees import generate_tree, mutate_tree

SMALL_CHUNKS = ChunkingConfig(min_size=1024, avg_size=2048, max_size=8192)

TRAIN = textwrap.dedent(
    """
    import hashlib, json, os, sys
    from helper import digest_tree
    seed = int(os.environ["REPROCAS_PARAM_SEED"])
    with open(os.environ["REPROCAS_PARAMS"]) as f:
        params = json.load(f)
    a, na = digest_tree("inputs/a")
    b, nb = digest_tree("inputs/b")
    os.makedirs("out", exist_ok=True)
    with open("out/model.txt", "w") as f:
        f.write(f"{a} {b} seed={seed} lr={params['lr']}\\n")
    with open("out/summary.json", "w") as f:
        json.dump({"files": [na, nb], "seed": seed}, f, sort_keys=True)
    score = int(a[:6], 16) / 2**24 * params["lr"]
    with open("metrics.json", "w") as f:
        json.dump({"score": score, "loss": [1.0, 0.5, 0.25]}, f)
    print("trained", score)
    """
)

# Untracked by git: stored with the run (code.files) and packaged with the code.
HELPER = textwrap.dedent(
    """
    import hashlib, os

    def digest_tree(root):
        h, n = hashlib.sha256(), 0
        for dirpath, dirnames, filenames in os.walk(root):
            dirnames.sort()
            for name in sorted(filenames):
                p = os.path.join(dirpath, name)
                if os.path.islink(p) or not os.path.isfile(p):
                    continue
                h.update(os.path.relpath(p, root).encode() + b"\\0")
                with open(p, "rb") as f:
                    h.update(f.read())
                n += 1
        return h.hexdigest(), n
    """
)


@dataclass
class Scenario:
    root: Path
    origin: Path  # the repository the run was recorded in
    project: Path  # the git working tree
    package: Path  # exported with --data include
    run_id: str
    versions: dict[str, dict[str, Any]]  # ref -> show --json

    def fresh_repo(self, name: str) -> Path:
        """A new format-3 repository with chunk sizes unlike the origin's."""
        path = self.root / name
        reprocas.Repo.init(path, chunking=SMALL_CHUNKS, format=3).close()
        return path


def show(repo: Path, ref: str) -> dict[str, Any]:
    return assert_ok(run_cli("show", ref, "--json", repo=repo)).json()  # type: ignore[no-any-return]


def build(root: Path) -> Scenario:
    origin = root / "origin"
    assert_ok(run_cli("init", "--format", "3", origin))
    data = root / "clinical"
    generate_tree(data, 1901)
    assert_ok(run_cli("commit", data, "--dataset", "clinical", repo=origin))
    mutate_tree(data, 1902)
    assert_ok(run_cli("commit", data, "--dataset", "clinical", repo=origin))
    project = root / "project"
    project.mkdir()
    git(project, "init", "-q", ".")
    (project / "train.py").write_text("# training\n")
    git(project, "add", "train.py")
    git(project, "commit", "-qm", "first")
    (project / "train.py").write_text(TRAIN)  # the uncommitted diff
    (project / "helper.py").write_text(HELPER)  # untracked
    assert_ok(
        run_cli(
            "run", "-n", "train",
            "-i", "clinical@v1=inputs/a", "-i", "clinical@v2=inputs/b",
            "-p", "seed=7", "-p", "lr=0.5",
            "-o", "out", "--metrics", "metrics.json",
            "--", "python", "train.py",
            repo=origin, cwd=project,
        )
    )  # fmt: skip
    runs = assert_ok(run_cli("runs", "--json", repo=origin)).json()
    package = root / "train.zip"
    assert_ok(run_cli("export", "train", "--to", package, repo=origin, cwd=project))
    versions = {r: show(origin, r) for r in ("clinical@v1", "clinical@v2", "runs/train@v1")}
    return Scenario(root, origin, project, package, runs[0]["id"], versions)


def rewrite(src: Path, dest: Path, change: dict[str, bytes | None]) -> None:
    """Copy a zip, replacing (bytes), removing (None) or adding entries."""
    with zipfile.ZipFile(src) as z:
        entries = {i.filename: z.read(i) for i in z.infolist()}
    for name, data in change.items():
        if data is None:
            entries.pop(name, None)
        else:
            entries[name] = data
    with zipfile.ZipFile(dest, "w", zipfile.ZIP_DEFLATED) as z:
        for name, data in entries.items():
            z.writestr(name, data)


def entries(zip_path: Path) -> dict[str, bytes]:
    with zipfile.ZipFile(zip_path) as z:
        return {i.filename: z.read(i) for i in z.infolist()}


def extract(zip_path: Path, dest: Path) -> Path:
    if dest.exists():
        shutil.rmtree(dest)
    with zipfile.ZipFile(zip_path) as z:
        z.extractall(dest)
    return dest


def index_of(zip_path: Path) -> dict[str, Any]:
    return json.loads(entries(zip_path)["data/reprocas/package.json"])  # type: ignore[no-any-return]
