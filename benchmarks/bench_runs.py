"""Runs benchmark: what recording costs, and how fast run queries stay at scale.

1. **overhead**: ``reprocas run --env light -- python -c pass`` (a real process, with a
   light environment snapshot reused when unchanged) against ``python -c pass`` alone;
   target < 0.5 s of overhead (the median of ``--repeat`` runs).
2. **queries**: a repository holding ``--runs`` recorded runs (10,000 by default;
   created in-process in batches through ``reprocas.provenance.run_store.store_runs``), each
   using one of 20 dataset versions: ``reprocas runs --name NAME`` over 100 runs,
   ``runs`` over all of them (in-process, the listing without printing), and
   ``lineage clinical@v1 --down`` (which runs used a version: one index lookup);
   target < 0.2 s each.

Targets are printed beside the figures; nothing asserts. From the project root::

    .venv/bin/python -m benchmarks.bench_runs [--runs 10000] [--repeat 5] [--json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import reprocas
from reprocas.provenance.lineage import lineage
from reprocas.provenance.names import get_summary, iter_runs
from reprocas.provenance.run_store import Draft, store_runs

REPROCAS = Path(sys.executable).with_name("reprocas")


def _time(fn: Any, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def overhead(tmp: Path, repeat: int) -> dict[str, float]:
    """Median seconds of a bare trivial command and of the same under ``reprocas run``."""
    repo = tmp / "ov" / "repo"
    proj = tmp / "ov" / "proj"
    proj.mkdir(parents=True)
    reprocas.Repo.init(repo).close()
    bare = [sys.executable, "-c", "pass"]
    wrapped = [str(REPROCAS), "--repo", str(repo), "run", "-n", "t", "--env", "light", "--", *bare]
    subprocess.run(wrapped, cwd=proj, check=True, capture_output=True)  # first snapshot
    t_bare = _time(lambda: subprocess.run(bare, cwd=proj, check=True), repeat)
    t_run = _time(
        lambda: subprocess.run(wrapped, cwd=proj, check=True, capture_output=True), repeat
    )
    return {"bare_s": t_bare, "run_s": t_run, "overhead_s": t_run - t_bare}


def queries(tmp: Path, n_runs: int, repeat: int) -> dict[str, float]:
    """Seconds of run listing and lineage queries on ``n_runs`` recorded runs."""
    repo = reprocas.Repo.init(tmp / "q" / "repo")
    src = tmp / "q" / "data"
    src.mkdir(parents=True)
    versions = []
    for i in range(20):
        (src / "x.txt").write_text(f"version {i}\n")
        versions.append(repo.resolve(repo.commit(src, "clinical").ref))
    t0 = time.perf_counter()
    batch: list[Draft] = []
    for i in range(n_runs):
        v = versions[i % len(versions)]
        batch.append(
            Draft(
                name=f"exp{i % (n_runs // 100 or 1)}",
                command=["python", "train.py"],
                cwd="/w",
                params={"lr": i / n_runs, "seed": i},
                inputs=[
                    {
                        "ref": v.ref,
                        "dataset": v.name,
                        "number": v.number,
                        "snapshot": v.id.raw,
                        "path": "inputs/clinical",
                    }
                ],
                metrics={"acc": {"kind": "scalar", "value": (i % 97) / 97}},
                start_ns=time.time_ns(),
                end_ns=time.time_ns(),
            )
        )
        if len(batch) == 1000:
            store_runs(repo.store, batch)
            batch = []
    if batch:
        store_runs(repo.store, batch)
    build = time.perf_counter() - t0
    store = repo.store

    def list_runs(name: str | None) -> int:
        with store.index.read() as txn:
            return sum(1 for h in iter_runs(store, txn, name) if get_summary(store, txn, h.id))

    out = {
        "build_s": build,
        "runs_name_s": _time(lambda: list_runs("exp7"), repeat),
        "runs_all_s": _time(lambda: list_runs(None), repeat),
        "lineage_down_s": _time(lambda: lineage(store, "clinical@v1", up=False), repeat),
        "lineage_run_s": _time(lambda: lineage(store, "exp7#1"), repeat),
    }
    cli = [str(REPROCAS), "--repo", str(repo.root)]
    out["cli_runs_name_s"] = _time(
        lambda: subprocess.run([*cli, "runs", "--name", "exp7"], check=True, capture_output=True),
        repeat,
    )
    out["cli_lineage_s"] = _time(
        lambda: subprocess.run(
            [*cli, "lineage", "clinical@v1", "--down", "--json"], check=True, capture_output=True
        ),
        repeat,
    )
    repo.close()
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=int, default=10_000)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="reprocas-bench-runs-") as tmp:
        res = {"overhead": overhead(Path(tmp), args.repeat)}
        res["queries"] = queries(Path(tmp), args.runs, args.repeat)
    if args.json:
        print(json.dumps(res, indent=2))
        return
    o, q = res["overhead"], res["queries"]
    print(f"reprocas run overhead (light env)  {o['overhead_s']:.3f} s   target < 0.5 s")
    print(f"  bare command {o['bare_s']:.3f} s, under reprocas run {o['run_s']:.3f} s")
    print(f"{args.runs} runs recorded in-process    {q['build_s']:.1f} s")
    for k, label in (
        ("runs_name_s", "runs --name (100 runs), in-process"),
        ("runs_all_s", f"runs (all {args.runs}), in-process"),
        ("lineage_down_s", "lineage VERSION --down, in-process"),
        ("lineage_run_s", "lineage RUN, in-process"),
        ("cli_runs_name_s", "reprocas runs --name (process)"),
        ("cli_lineage_s", "reprocas lineage --down (process)"),
    ):
        print(f"{label:<36} {q[k]:.3f} s   target < 0.2 s")


if __name__ == "__main__":
    main()
