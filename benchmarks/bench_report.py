"""Report benchmark: the provenance report of a long history, its size and its load time
in a real browser.

A generated history (seeded): 20 versions of a dataset, ``--runs`` recorded runs
(10,000 by default; 98% originals under 10 run names, 2% replays with a verdict),
stored in-process in batches through ``reprocas.provenance.run_store.store_runs``
(the index is built as ``reprocas run`` builds it, without 10,000 processes). Each
run uses one version; its parameters change now and then, its metrics (accuracy,
loss) drift and jump when the version changes.

Measured: the time to build the report (``reprocas.Repo.report``, in-process), the
size of the file (the summarised view; target < 5 MB) and the time headless Chromium
takes to load it from ``file://`` and dump its DOM (``--dump-dom``, the best of
``--repeat``; target < 5 s; networking blocked), beside the same on an empty page
(Chromium's own start-up). Targets are printed beside the
figures; nothing asserts. From the project root::

    .venv/bin/python -m benchmarks.bench_report [--runs 10000] [--repeat 3] [--json]
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import reprocas
from reprocas.provenance.run_store import Draft, store_runs

NAMES = 10
VERSIONS = 20
BATCH = 1000
VERDICTS = ("identical", "within-tolerance", "diverged")


def history(root: Path, n_runs: int, seed: int = 21) -> tuple[reprocas.Repo, float]:
    """A repository with ``n_runs`` runs; returns it and the seconds it took."""
    rng = random.Random(seed)
    t0 = time.perf_counter()
    repo = reprocas.Repo.init(root / "repo")
    src = root / "data"
    src.mkdir(parents=True)
    versions = []
    for i in range(VERSIONS):
        (src / "table.csv").write_text("".join(f"{i},{rng.random():.6f}\n" for _ in range(50)))
        versions.append(repo.resolve(repo.commit(src, "clinical", message=f"extract {i}").ref))
    n_replays = n_runs // 50
    n_orig = n_runs - n_replays
    t_ns = time.time_ns()
    lr, acc = 0.1, 0.6
    drafts: list[Draft] = []
    originals: list[Any] = []
    for i in range(n_orig):
        v = versions[i * VERSIONS // n_orig]
        if rng.random() < 0.02:
            lr = round(lr * rng.choice((0.5, 2.0)), 6)
        if i and i * VERSIONS // n_orig != (i - 1) * VERSIONS // n_orig:
            acc += rng.uniform(-0.05, 0.08)  # a new version: a jump
        acc = min(0.99, max(0.3, acc + rng.gauss(0, 0.002)))
        start = t_ns + i * 60_000_000_000
        drafts.append(
            Draft(
                name=f"exp{i % NAMES}",
                command=["python", "train.py", "--lr", str(lr)],
                cwd="/work/project",
                params={"lr": lr, "epochs": 10, "seed": i % 5},
                inputs=[
                    {
                        "ref": v.ref,
                        "dataset": v.name,
                        "number": v.number,
                        "snapshot": v.id.raw,
                        "path": "inputs/clinical",
                    }
                ],
                metrics={
                    "accuracy": {"kind": "scalar", "value": round(acc, 4)},
                    "loss": {"kind": "scalar", "value": round(1 - acc + rng.random() / 20, 4)},
                },
                start_ns=start,
                end_ns=start + rng.randint(1, 50) * 1_000_000_000,
            )
        )
        if len(drafts) == BATCH:
            originals += store_runs(repo.store, drafts)
            drafts = []
    if drafts:
        originals += store_runs(repo.store, drafts)
    replays = []
    for k in range(n_replays):
        h, run = originals[rng.randrange(len(originals))]
        start = run.end_ns + 30_000_000_000 + k
        replays.append(
            Draft(
                name=h.name,
                command=list(run.command),
                cwd=run.cwd,
                params=dict(run.params),
                inputs=[dict(i) for i in run.inputs],
                metrics=dict(run.metrics),
                start_ns=start,
                end_ns=start + 1_000_000_000,
                extra={"replay_of": h.id.raw, "verdict": rng.choice(VERDICTS)},
            )
        )
    for b in range(0, len(replays), BATCH):
        store_runs(repo.store, replays[b : b + BATCH])
    return repo, time.perf_counter() - t0


def load_time(page: Path, tmp: Path, repeat: int) -> tuple[float, int] | None:
    """Best seconds of ``chromium --headless --dump-dom`` on ``page`` and the DOM's size;
    None without chromium."""
    exe = shutil.which("chromium")
    if exe is None:
        return None
    best, size = float("inf"), 0
    for k in range(repeat):
        argv = [exe, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                f"--user-data-dir={tmp / f'profile{k}'}", "--host-resolver-rules=MAP * ~NOTFOUND",
                "--dump-dom", page.resolve().as_uri()]  # fmt: skip
        t = time.perf_counter()
        proc = subprocess.run(argv, capture_output=True, timeout=300, check=True)
        best = min(best, time.perf_counter() - t)
        size = len(proc.stdout)
    return best, size


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=int, default=10_000)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="reprocas-bench-report-") as tmp_s:
        tmp = Path(tmp_s)
        repo, build_s = history(tmp, args.runs)
        page = tmp / "report.html"
        t = time.perf_counter()
        res = repo.report(to=page)
        report_s = time.perf_counter() - t
        repo.close()
        loaded = load_time(page, tmp, args.repeat)
        empty = tmp / "empty.html"
        empty.write_text("<!DOCTYPE html><html><body><p>-</p></body></html>")
        baseline = load_time(empty, tmp, args.repeat)
    out: dict[str, Any] = {
        "runs": res.runs,
        "versions": res.versions,
        "history_s": build_s,
        "report_s": report_s,
        "report_bytes": res.bytes,
        "chromium_load_s": loaded[0] if loaded else None,
        "dom_bytes": loaded[1] if loaded else None,
        "chromium_empty_page_s": baseline[0] if baseline else None,
    }
    if args.json:
        print(json.dumps(out, indent=2))
        return
    print(f"history of {out['runs']} runs, {out['versions']} versions   {build_s:.1f} s")
    print(f"report built (Repo.report)              {report_s:.2f} s")
    print(f"report size                             {res.bytes / 1e6:.2f} MB   target < 5 MB")
    if loaded is None:
        print("headless Chromium load                  skipped: chromium is not installed")
    else:
        print(f"headless Chromium load (--dump-dom)     {loaded[0]:.2f} s   target < 5 s")
        if baseline is not None:
            print(f"  (Chromium on an empty page: {baseline[0]:.2f} s)")


if __name__ == "__main__":
    main()
