"""Make a frozen fixture repository: ``python scripts/make_fixture.py [--format N] OUT_DIR``.

It runs the ``reprocas`` command found beside this interpreter (so the format written is
that reprocas's) on seeded generated data and writes, next to the repository, an
``expected.json`` with what every later reprocas must read back from it: the refs and
their version ids, and each version's files (mode, size, BLAKE3 of the content, link
target) computed from the generated sources, not from the repository.

The committed fixtures under ``tests/fixtures/`` were made this way:

* ``format1``: reprocas at commit ``ca85f39~1`` (the last commit writing format 1),
  built with ``maturin develop --release`` in a worktree of that commit;
* ``format2``: reprocas at the commit that added this script;
* ``format3``: ``--format 3`` (passed to ``reprocas init``) with the reprocas of the
  commit that added the fixture; its ``expected.json`` also holds each version's
  content id, as ``show --json`` printed it.

Only the CLI is used, and only commands and options format-1 releases already had
(``--format`` apart, which only format 3 needs).
The index is compacted and the lock file, temporary and lock directories are left out,
so each fixture stays well under 200 KB.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import stat
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import blake3
import lmdb

SEED = 20261202


def _cohort(rng: random.Random, rows: int, start: int = 0) -> str:
    lines = ["patient_id,age,sex,site,biomarker,outcome"]
    for i in range(start, start + rows):
        lines.append(
            f"P{i:05d},{rng.randint(18, 90)},{rng.choice('MF')},{rng.choice(['A', 'B', 'C'])},"
            f"{rng.gauss(5.0, 1.5):.3f},{rng.randint(0, 1)}"
        )
    return "\n".join(lines) + "\n"


def _write_v1(src: Path, rng: random.Random) -> None:
    (src / "notes").mkdir(parents=True)
    (src / "scripts").mkdir()
    (src / "empty-dir").mkdir()
    (src / "cohort.csv").write_text(_cohort(rng, 300))
    (src / "notes" / "README.txt").write_text("Synthetic cohort for the format fixture.\n")
    (src / "notes" / "empty.txt").write_bytes(b"")
    (src / "blob.bin").write_bytes(rng.randbytes(36 * 1024))
    tool = src / "scripts" / "prepare.sh"
    tool.write_text("#!/bin/sh\necho prepare\n")
    tool.chmod(0o755)
    os.symlink("notes/README.txt", src / "readme-link")


def _edit_v2(src: Path, rng: random.Random) -> None:
    text = (src / "cohort.csv").read_text().splitlines(keepends=True)
    text[10] = "P00009,41,F,B,4.200,1\n"
    (src / "cohort.csv").write_text("".join(text) + _cohort(rng, 40, 300).split("\n", 1)[1])
    blob = bytearray((src / "blob.bin").read_bytes())
    blob[20000:20000] = rng.randbytes(3000)
    (src / "blob.bin").write_bytes(bytes(blob))
    (src / "notes" / "empty.txt").unlink()
    (src / "notes" / "changes.txt").write_text("v2: one row fixed, 40 rows added\n")


def describe(root: Path) -> dict[str, dict[str, Any]]:
    """Every entry under ``root`` by relative POSIX path: kind, mode, size, digest."""
    out: dict[str, dict[str, Any]] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        for name in sorted(dirnames + filenames):
            p = Path(dirpath) / name
            rel = p.relative_to(root).as_posix()
            st = p.lstat()
            if stat.S_ISLNK(st.st_mode):
                out[rel] = {"kind": "symlink", "target": os.readlink(p)}
            elif stat.S_ISDIR(st.st_mode):
                out[rel] = {"kind": "dir"}
            else:
                data = p.read_bytes()
                out[rel] = {
                    "kind": "file",
                    "executable": bool(st.st_mode & 0o100),
                    "size": len(data),
                    "blake3": blake3.blake3(data).hexdigest(),
                }
    return out


def _cli(repo: Path, *args: str, cwd: Path | None = None) -> Any:
    exe = Path(sys.executable).with_name("reprocas")
    res = subprocess.run(
        [str(exe), "--repo", str(repo), *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        check=False,
    )
    if res.returncode != 0:
        raise SystemExit(f"reprocas {' '.join(args)} failed: {res.stderr.strip()}")
    return json.loads(res.stdout) if "--json" in args else res.stdout


def _compact(index: Path) -> None:
    tmp = index.with_name("index.compact")
    tmp.mkdir()
    env = lmdb.open(str(index), readonly=True, lock=False, max_dbs=64)
    env.copy(str(tmp), compact=True)
    env.close()
    shutil.rmtree(index)
    tmp.rename(index)


def make(out: Path, fmt: int | None = None) -> dict[str, Any]:
    rng = random.Random(SEED)
    out.mkdir(parents=True)
    out = out.resolve()
    repo = (out / "repo").resolve()
    with tempfile.TemporaryDirectory() as work_dir:
        work = Path(work_dir)
        src = work / "cohort"
        _write_v1(src, rng)
        expected: dict[str, Any] = {"versions": {}}
        _cli(repo, "init", *(("--format", str(fmt)) if fmt is not None else ()))
        v1 = _cli(repo, "commit", str(src), "-d", "cohort", "-m", "first extract", "--json")
        expected["versions"]["cohort@v1"] = {"id": v1["id"], "files": describe(src)}
        _edit_v2(src, rng)
        v2 = _cli(repo, "commit", str(src), "-d", "cohort", "-m", "fixed P00009", "--json")
        expected["versions"]["cohort@v2"] = {"id": v2["id"], "files": describe(src)}
        images = work / "images"
        (images / "scans").mkdir(parents=True)
        for i in range(3):
            (images / "scans" / f"scan{i}.raw").write_bytes(rng.randbytes(3000 + 500 * i))
        img = _cli(repo, "commit", str(images), "-d", "images", "--json")
        expected["versions"]["images@v1"] = {"id": img["id"], "files": describe(images)}
        _cli(repo, "tag", "cohort@v1", "paper")
        expected["tags"] = {"paper": v1["id"]}
        proj = work / "project"
        proj.mkdir()
        script = "import pathlib; d = pathlib.Path('inputs/cohort/cohort.csv').read_text(); "
        script += "pathlib.Path('out').mkdir(); "
        script += "pathlib.Path('out/rows.txt').write_text(str(d.count(chr(10))))"
        _cli(
            repo,
            "run",
            "--name",
            "count",
            "--input",
            "cohort@v2",
            "--output",
            "out",
            "--param",
            "k=3",
            "--env",
            "none",
            "--",
            sys.executable,
            "-c",
            script,
            cwd=proj,
        )
        expected["runs"] = {
            "count#1": {
                "inputs": [v2["id"]],
                "params": {"k": 3},
                "output_files": describe(proj / "out"),
            }
        }
    if fmt is not None and fmt >= 3:
        for ref, want in expected["versions"].items():
            want["content_id"] = _cli(repo, "show", ref, "--json")["content_id"]
    for junk in ("tmp", "locks"):
        shutil.rmtree(repo / junk, ignore_errors=True)
        (repo / junk).mkdir()
    (repo / "index" / "lock.mdb").unlink(missing_ok=True)
    _compact(repo / "index")
    expected["format_version"] = json.loads((repo / "reprocas.json").read_text())["version"]
    (out / "expected.json").write_text(json.dumps(expected, indent=1, sort_keys=True) + "\n")
    return expected


if __name__ == "__main__":
    args = sys.argv[1:]
    fmt: int | None = None
    if args[:1] == ["--format"] and len(args) == 3 and args[1].isdigit():
        fmt, args = int(args[1]), args[2:]
    if len(args) != 1 or args[0].startswith("-"):
        raise SystemExit(__doc__)
    result = make(Path(args[0]), fmt)
    total = sum(f.stat().st_size for f in Path(args[0]).rglob("*") if f.is_file())
    print(f"format {result['format_version']} fixture: {total} bytes")
