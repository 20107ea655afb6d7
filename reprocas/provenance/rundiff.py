"""Why do two runs differ: parameters, inputs (with the dataset diff of each changed
input), environment, code, metrics, outputs (byte-identical or not) and run time."""

from __future__ import annotations

from typing import Any

from reprocas.errors import ReprocasError
from reprocas.model.objects import Run
from reprocas.provenance.names import RunHandle, load_run, resolve_run
from reprocas.provenance.run_params import metric_values
from reprocas.provenance.run_store import tree_files
from reprocas.store.repository import Repository


def _params(a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
    return {
        "added": {k: b[k] for k in sorted(set(b) - set(a))},
        "removed": {k: a[k] for k in sorted(set(a) - set(b))},
        "changed": {k: {"from": a[k], "to": b[k]} for k in sorted(set(a) & set(b)) if a[k] != b[k]},
    }


def _inputs(repo: Repository, ra: Run, rb: Run) -> list[dict[str, Any]]:
    from reprocas.tabular.diff import diff_versions

    ia = {i["dataset"]: i for i in ra.inputs}
    ib = {i["dataset"]: i for i in rb.inputs}
    out: list[dict[str, Any]] = []
    for ds in sorted(set(ia) | set(ib)):
        a, b = ia.get(ds), ib.get(ds)
        entry: dict[str, Any] = {
            "dataset": ds,
            "a": f"{ds}@v{a['number']}" if a else None,
            "b": f"{ds}@v{b['number']}" if b else None,
        }
        if a is None or b is None:
            entry["status"] = "added" if a is None else "removed"
        elif bytes(a["snapshot"]) == bytes(b["snapshot"]):
            entry["status"] = "same"
        else:
            entry["status"] = "changed"
            try:
                with repo.index.read() as txn:
                    va = repo.make_version(txn, _oid(a["snapshot"]))
                    vb = repo.make_version(txn, _oid(b["snapshot"]))
                d = diff_versions(repo, va, vb)
                counts: dict[str, int] = {}
                for f in d.files.values():
                    counts[f.status] = counts.get(f.status, 0) + 1
                entry["summary"] = counts
                entry["files"] = [f.to_json() for f in d.files.values() if f.status != "same"]
            except ReprocasError as exc:
                entry["summary"] = {"error": str(exc)}
        out.append(entry)
    return out


def _oid(raw: Any) -> Any:
    from reprocas.model.ids import ObjectId

    return ObjectId(bytes(raw))


def _environment(repo: Repository, ra: Run, rb: Run) -> dict[str, Any]:
    ea, eb = ra.environment, rb.environment
    res: dict[str, Any] = {
        "a": ea.hex if ea else None,
        "b": eb.hex if eb else None,
        "same": ea == eb,
        "diff": None,
    }
    if ea and eb and ea != eb:
        from reprocas.environment import diff as envdiff
        from reprocas.environment.store import load

        try:
            fa, fb = load(repo, ea.hex), load(repo, eb.hex)
        except ReprocasError as exc:
            res["diff"] = {"error": str(exc)}
            return res
        d = envdiff.diff(fa.facts, fb.facts)
        res["same"] = d.same
        res["diff"] = d.to_json()
        res["lines"] = envdiff.render(d, "A", "B")
    return res


def _code(ra: Run, rb: Run) -> dict[str, Any]:
    ca, cb = ra.code or {}, rb.code or {}
    da, db = (ca.get("diff") or {}).get("blake3"), (cb.get("diff") or {}).get("blake3")
    return {
        "a": {"commit": ca.get("commit"), "dirty": ca.get("dirty")},
        "b": {"commit": cb.get("commit"), "dirty": cb.get("dirty")},
        "same_commit": ca.get("commit") == cb.get("commit"),
        "same_diff": da == db,
        # the code no commit holds (docs/RUNS.md, "What is stored of the code")
        "same_files": (ca.get("files") or {}).get("blake3")
        == (cb.get("files") or {}).get("blake3"),
    }


def _metrics(ra: Run, rb: Run) -> dict[str, Any]:
    ma, mb = metric_values(ra.metrics), metric_values(rb.metrics)
    out: dict[str, Any] = {}
    for k in sorted(set(ma) | set(mb)):
        a, b = ma.get(k), mb.get(k)
        e: dict[str, Any] = {"a": a, "b": b, "delta": None}
        la = a[-1] if isinstance(a, list) and a else a
        lb = b[-1] if isinstance(b, list) and b else b
        if isinstance(la, int | float) and isinstance(lb, int | float):
            e["delta"] = lb - la
        out[k] = e
    return out


def _outputs(repo: Repository, ra: Run, rb: Run) -> list[dict[str, Any]]:
    oa = {o["path"]: o for o in ra.outputs}
    ob = {o["path"]: o for o in rb.outputs}
    out: list[dict[str, Any]] = []
    with repo.index.read() as txn:
        for p in sorted(set(oa) | set(ob)):
            a, b = oa.get(p), ob.get(p)
            if a is None or b is None:
                out.append(
                    {"path": p, "identical": False, "status": "added" if a is None else "removed"}
                )
                continue
            fa = _files_under(repo, txn, a, p)
            fb = _files_under(repo, txn, b, p)
            differing = sorted(k for k in set(fa) | set(fb) if fa.get(k) != fb.get(k))
            out.append({"path": p, "identical": not differing, "differing": differing})
    return out


def _files_under(repo: Repository, txn: Any, o: dict[str, Any], path: str) -> dict[str, Any]:
    root = repo.load_snapshot(txn, _oid(o["snapshot"])).root.raw
    files = tree_files(repo, txn, root)
    return {k: v for k, v in files.items() if k == path or k.startswith(path + "/")}


def diff_runs(repo: Repository, ref_a: str, ref_b: str) -> dict[str, Any]:
    """Everything that differs between two runs, as JSON-able data."""
    with repo.index.read() as txn:
        ha: RunHandle = resolve_run(repo, txn, ref_a)
        hb: RunHandle = resolve_run(repo, txn, ref_b)
        ra, rb = load_run(repo, txn, ha.id), load_run(repo, txn, hb.id)
    ta, tb = (ra.end_ns - ra.start_ns) / 1e9, (rb.end_ns - rb.start_ns) / 1e9
    return {
        "a": {"ref": ha.ref, "id": ha.id.hex, "exit_code": ra.exit_code},
        "b": {"ref": hb.ref, "id": hb.id.hex, "exit_code": rb.exit_code},
        "command": {"same": ra.command == rb.command, "a": list(ra.command), "b": list(rb.command)},
        "params": _params(ra.params, rb.params),
        "inputs": _inputs(repo, ra, rb),
        "environment": _environment(repo, ra, rb),
        "code": _code(ra, rb),
        "metrics": _metrics(ra, rb),
        "outputs": _outputs(repo, ra, rb),
        "time": {"a_s": round(ta, 6), "b_s": round(tb, 6), "delta_s": round(tb - ta, 6)},
    }


def render(d: dict[str, Any]) -> list[str]:
    """The diff as lines for people."""
    lines = [f"run {d['a']['ref']} -> {d['b']['ref']}"]
    if not d["command"]["same"]:
        lines.append(f"command: {' '.join(d['command']['a'])} -> {' '.join(d['command']['b'])}")
    p = d["params"]
    if any(p.values()):
        lines.append("params:")
        lines += [f"  + {k}={v!r}" for k, v in p["added"].items()]
        lines += [f"  - {k}={v!r}" for k, v in p["removed"].items()]
        lines += [f"  ~ {k}: {c['from']!r} -> {c['to']!r}" for k, c in p["changed"].items()]
    else:
        lines.append("params: same")
    for i in d["inputs"]:
        if i["status"] == "same":
            lines.append(f"input {i['dataset']}: same ({i['a']})")
            continue
        summary = ", ".join(f"{n} {s}" for s, n in sorted((i.get("summary") or {}).items()))
        lines.append(
            f"input {i['dataset']}: {i['a'] or '-'} -> {i['b'] or '-'}"
            + (f" ({summary})" if summary else "")
        )
    env = d["environment"]
    if env["same"]:
        lines.append("environment: same")
    else:
        lines.append("environment:")
        lines += [f"  {ln}" for ln in env.get("lines", [])[2:]]
    c = d["code"]
    lines.append(
        "code: same"
        if c["same_commit"] and c["same_diff"] and c.get("same_files", True)
        else f"code: {c['a']['commit']} -> {c['b']['commit']}"
        + ("" if c["same_diff"] else " (uncommitted changes differ)")
        + ("" if c.get("same_files", True) else " (the files outside git differ)")
    )
    for k, m in d["metrics"].items():
        delta = f" ({m['delta']:+g})" if isinstance(m["delta"], int | float) else ""
        lines.append(f"metric {k}: {m['a']} -> {m['b']}{delta}")
    for o in d["outputs"]:
        state = "identical" if o["identical"] else "differs"
        lines.append(f"output {o['path']}: {state}")
    t = d["time"]
    lines.append(f"time: {t['a_s']:.2f}s -> {t['b_s']:.2f}s ({t['delta_s']:+.2f}s)")
    return lines
