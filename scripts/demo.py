"""The main job end to end, on generated sample data, in an embedded local repository.

Generates a seeded clinical "encounters" table in five versions (append, scattered
edits, deletions, insertions), commits all five as versions of one dataset through the
real ``reprocas`` command (later versions cost a few percent of the first: delta
chunks), reads the history, checks v1 and v5 out and proves them byte-identical,
verifies every stored chunk, and shows what deduplication and deltas saved. Then
records two runs of a small analysis (on v1 and v5) and a replay, and writes the
provenance report (one self-contained HTML file) and its PROV-JSON.

Run by ``make demo``; ``python scripts/demo.py --rows N`` for a bigger table.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import time
from pathlib import Path

import blake3

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.generate import clinical_csv_series  # noqa: E402

REPROCAS = str(Path(sys.executable).with_name("reprocas"))

# The analysis the demo records as runs: a rate and a mean of the checked-out table.
ANALYSIS = """\
import csv, json, sys
limit = float(sys.argv[1])
rows = list(csv.DictReader(open("inputs/clinical/encounters.csv", newline="")))
high = sum(1 for r in rows if float(r["lactate"] or 0) > limit)
home = sum(1 for r in rows if r["disposition"] == "HOME")
metrics = {"rows": len(rows), "high_lactate_rate": round(high / len(rows), 6),
           "home_rate": round(home / len(rows), 6)}
json.dump(metrics, open("metrics.json", "w"))
open("summary.txt", "w").write(json.dumps(metrics, sort_keys=True) + "\\n")
"""


def step(title: str) -> None:
    print(f"\n\033[1m== {title}\033[0m", flush=True)


def run(
    *args: str, check: bool = True, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    print("$ reprocas " + " ".join(args), flush=True)
    proc = subprocess.run([REPROCAS, *args], text=True, capture_output=True, cwd=cwd)
    sys.stdout.write(proc.stdout)
    sys.stderr.write(proc.stderr)
    if check and proc.returncode != 0:
        raise SystemExit(f"demo: `reprocas {' '.join(args)}` failed ({proc.returncode})")
    return proc


def digest(path: Path) -> str:
    h = blake3.blake3()
    with open(path, "rb") as f:
        while block := f.read(1 << 20):
            h.update(block)
    return h.hexdigest()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--rows", type=int, default=200_000, help="rows of v1 (200k: ~40 MB)")
    ap.add_argument("--dir", type=Path, default=ROOT / "demo-data")
    args = ap.parse_args()

    work: Path = args.dir
    shutil.rmtree(work, ignore_errors=True)
    data = work / "data"
    repo = work / "repo"

    step(f"generating a seeded clinical table ({args.rows} rows) in five versions")
    t = time.perf_counter()
    versions = clinical_csv_series(work / "generated", args.rows, seed=7)
    for v in versions:
        print(f"  {v.name:<8} {v.stat().st_size / 1e6:8.1f} MB")
    print(f"  ({time.perf_counter() - t:.1f} s)")

    step("a new repository")
    run("init", str(repo))
    r = ("--repo", str(repo))

    step("commit five versions as they change (later ones are stored as deltas)")
    data.mkdir()
    messages = {
        0: "first extract",
        1: "2% new encounters appended",
        2: "0.5% of rows corrected at scattered places",
        3: "1% of rows deleted",
        4: "1% late records inserted",
    }
    (data / "README.txt").write_text("Encounters extract, demo.\n")
    for i, msg in messages.items():
        shutil.copyfile(versions[i], data / "encounters.csv")
        tag = ("--tag", "published") if i == 4 else ()
        run(*r, "commit", str(data), "--dataset", "clinical", "-m", msg, *tag)

    step("committing unchanged data makes no new version")
    run(*r, "commit", str(data), "--dataset", "clinical", "-m", "nothing new")

    step("the history")
    run(*r, "log", "clinical")

    step("check v1 out and compare it with the original, byte for byte")
    out = work / "checkout-v1"
    run(*r, "checkout", "clinical@v1", str(out))
    a, b = digest(versions[0]), digest(out / "encounters.csv")
    print(f"  original  {a}\n  checkout  {b}")
    if a != b:
        raise SystemExit("demo: checkout differs from the original")
    print("  identical")

    step("check the latest out too (its chunks decode through a chain of deltas)")
    out5 = work / "checkout-v5"
    run(*r, "checkout", "clinical@v5", str(out5))
    if digest(versions[4]) != digest(out5 / "encounters.csv"):
        raise SystemExit("demo: checkout of v5 differs from the original")
    print("  identical")

    step("verify: re-hash every stored chunk")
    run(*r, "verify", "--read-data")

    step("what the store costs")
    run(*r, "du")

    step("how the chunker cuts the latest file")
    run("debug", "chunk", str(data / "encounters.csv"))

    step("record two runs of an analysis (on v1 and on v5) and replay the first")
    project = work / "analysis"
    project.mkdir()
    (project / "analyse.py").write_text(ANALYSIS)
    # Its own git repository: the run records that commit, and replay checks it out. (The
    # demo's work directory sits under this project's .gitignore, and files git ignores
    # are not stored as a run's code.)
    if shutil.which("git"):
        for cmd in (["init", "-q"], ["add", "analyse.py"], ["commit", "-qm", "the analysis"]):
            subprocess.run(
                ["git", "-c", "user.name=reprocas demo", "-c", "user.email=demo@invalid", *cmd],
                cwd=project,
                check=True,
            )
    for ref, limit in (("clinical@v1", "2.0"), ("clinical@v5", "2.5")):
        run(*r, "run", "-n", "analyse", "--env", "none", "-i", ref, "--param",
            f"lactate_limit={limit}", "--metrics", "metrics.json", "-o", "summary.txt",
            "--", sys.executable, "analyse.py", "{lactate_limit}", cwd=project)  # fmt: skip
    run(*r, "replay", "analyse#1", "--workdir", str(work / "replay"))

    step("the provenance report: timeline, metrics, lineage, run comparison")
    report = work / "report.html"
    run(*r, "report", "--to", str(report), "--prov", str(work / "prov.json"))
    print(f"  report: {report}\n  open it in a browser: {report.resolve().as_uri()}")

    print(f"\ndemo done: repository at {repo}, report at {report}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
