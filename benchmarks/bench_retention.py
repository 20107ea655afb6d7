"""Retention benchmark: forget + prune on a repository of many versions.

The issue's figure is 1,000 versions of ~5 GB logical. Here each version is a
directory of FILES files of FILE_SIZE bytes in which CHANGED files change per version;
the files cache means a commit reads only the changed files, so the full 1,000 x 5 MB
(= 5 GB logical, ~200 MB stored) builds in a few minutes. ``--versions`` and
``--file-size`` scale it down (e.g. for CI).

Prints: the time of the decision (pure ``apply_policy``; target < 1 s) and of gathering
its inputs (index walk + pack trailers), the time of the prune, and bytes freed vs
predicted (must be equal), plus a `verify --read-data`.

    python -m benchmarks.bench_retention [--versions 1000] [--file-size 102400]
"""

from __future__ import annotations

import argparse
import random
import shutil
import tempfile
import time
from pathlib import Path

import reprocas
from reprocas.retention.budget import build_model
from reprocas.retention.forget import apply_decision, records
from reprocas.retention.policy import Policy, Rules, apply_policy
from reprocas.store import accounting, refcounts

FILES = 50
CHANGED = 2


def _packs_bytes(root: Path) -> int:
    return sum(p.stat().st_size for p in (root / "packs").glob("*/*.pack"))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--versions", type=int, default=1000)
    ap.add_argument("--file-size", type=int, default=100 * 1024)
    args = ap.parse_args()
    rng = random.Random(1)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        src = root / "src"
        src.mkdir()
        for i in range(FILES):
            (src / f"f{i:03d}.bin").write_bytes(rng.randbytes(args.file_size))
        repo = reprocas.Repo.init(root / "repo", pack_size=4 << 20)
        t0 = time.perf_counter()
        logical = 0
        day = 86400 * 10**9
        for v in range(args.versions):
            for i in rng.sample(range(FILES), CHANGED):
                (src / f"f{i:03d}.bin").write_bytes(rng.randbytes(args.file_size))
            tags = ["published"] if v % 97 == 0 else []
            repo.commit(src, "clinical", message=f"v{v}", tags=tags)
            logical += FILES * args.file_size
        t_build = time.perf_counter() - t0
        store = repo.store
        before = _packs_bytes(store.root)
        print(
            f"built {args.versions} versions, {logical / 1e9:.2f} GB logical, "
            f"{before / 1e6:.1f} MB in packs, in {t_build:.1f} s"
        )
        # du: exclusive bytes from the reference counts kept by every commit, vs the walk
        # of every version (the reference); and the one-off recount an old repo needs.
        t_du = time.perf_counter()
        du_inc = accounting.du(store)
        t_du_inc = time.perf_counter() - t_du
        du_walk = accounting.du(store, recompute=True)
        t_du_walk = time.perf_counter() - t_du - t_du_inc
        t_du = time.perf_counter()
        with store.index.write() as wtxn:
            refcounts.recompute(store, wtxn)
        t_recount = time.perf_counter() - t_du
        same = [v.to_json() for v in du_inc.versions] == [v.to_json() for v in du_walk.versions]
        print(
            f"du of {len(du_inc.versions)} versions: incremental {t_du_inc:.3f} s, walk "
            f"{t_du_walk:.3f} s ({'EQUAL' if same else 'DIFFERENT'}); one-off recount "
            f"{t_recount:.3f} s"
        )
        if not same:
            raise SystemExit("du from the reference counts differs from the walk")
        # Versions were committed seconds apart; spread them over days for the rules.
        t1 = time.perf_counter()
        with store.index.read() as txn:
            recs = records(store, txn)
            model = build_model(store, txn, [bytes.fromhex(r.id) for r in recs])
        t_inputs = time.perf_counter() - t1
        base = recs[0].time_ns
        from dataclasses import replace

        recs = [replace(r, time_ns=base + i * day // 4) for i, r in enumerate(recs)]
        budget = int(before * 0.5)
        policy = Policy(rules=Rules(keep_daily=60, keep_weekly=52, keep_monthly=24), budget=budget)
        t2 = time.perf_counter()
        decision = apply_policy(recs, policy, recs[-1].time_ns + day, model)
        t_decide = time.perf_counter() - t2
        print(
            f"decision: {t_decide:.3f} s (pure apply_policy; target < 1 s); gathering "
            f"its inputs (walk {len(recs)} versions + trailers): {t_inputs:.3f} s"
        )
        print(
            f"  keep {len(decision.keep)}, forget {len(decision.remove)}, budget "
            f"{budget} bytes met: {decision.budget_met}; predicted freed "
            f"{decision.freed_bytes} bytes"
        )
        done, skipped = apply_decision(store, decision, policy)
        assert not skipped and len(done) == len(decision.remove)
        t3 = time.perf_counter()
        plan = repo.prune_plan()
        t_plan = time.perf_counter() - t3
        t4 = time.perf_counter()
        report = plan.execute()
        t_exec = time.perf_counter() - t4
        after = _packs_bytes(store.root)
        print(
            f"prune: plan {t_plan:.2f} s ({len(plan.delete)} delete, {len(plan.repack)} "
            f"repack), execute {t_exec:.2f} s"
        )
        print(
            f"freed: predicted {decision.freed_bytes}, prune reported {report.freed_bytes}, "
            f"measured {before - after} -> "
            + (
                "EQUAL"
                if decision.freed_bytes == report.freed_bytes == before - after
                else "DIFFERENT"
            )
        )
        t5 = time.perf_counter()
        ok = repo.verify(read_data=True).ok
        print(
            f"verify --read-data: {'ok' if ok else 'PROBLEMS'} ({time.perf_counter() - t5:.1f} s)"
        )
        repo.close()
        shutil.rmtree(root / "repo", ignore_errors=True)
        if not ok or decision.freed_bytes != before - after:
            raise SystemExit(1)


if __name__ == "__main__":
    main()
