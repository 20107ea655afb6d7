"""Remote benchmark: push and clone of the five-version clinical series to a
``file://`` remote and to moto's S3 server on loopback (issue 18).

Commits v1..v5 of the clinical CSV series (benchmarks/generate.py, seeded) into a
fresh local repository (the commit rate, MB/s of logical bytes), then, for each remote
(a ``file://`` directory in a temporary dir, and an S3 bucket on moto started here as a
subprocess on 127.0.0.1 and stopped at the end):

* push v1..v5: seconds, MB/s of bytes uploaded and of logical bytes made available
  (beside the local commit rate), bytes uploaded against the packs stored locally;
* a second push with nothing new (its time and requests: the cost of "up to date");
* clone into a fresh directory: MB/s, checked (same latest snapshot, v5 checked out
  byte for byte);
* one extra version v6 (``--edit-pattern``: scattered in-place edits, an append,
  scattered inserts or deletes of v5) committed locally and pushed: bytes uploaded
  against that commit's new local stored bytes.

Requests are counted per operation: for ``file://`` by a counting proxy around the
backend object the push and pull code is handed (one request per backend call; a batch
upload counts one per file), for S3 on the server side (benchmarks/moto_counting.py,
a counter in front of moto's WSGI app: every HTTP request, retries and list pages
included); the S3 client's backend calls are counted too. Printed as requests and
requests per GB transferred.

Reference rates measured in the same run: single-core BLAKE3 and zstd -3 (as the
other benchmarks print) and each remote's raw rate: one 32 MiB object put and got
through the same backend, no reprocas protocol around it.

    python -m benchmarks.bench_remote [--scale 0.5] [--seed 1] [--edit-pattern edit]
        [--remotes file,s3] [--json]
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from benchmarks.bench_core import OtherLoad
from benchmarks.bench_deltas import machine_limits
from benchmarks.generate import (
    EPOCH,
    LABS,
    Rng,
    csv_pieces,
    encounter_rows,
    encounter_versions,
    rows_for_scale,
)
from reprocas.native import core
from reprocas.remote import clone as clone_mod
from reprocas.remote.backend import Backend, ObjectInfo
from reprocas.remote.config import RemoteConfig
from reprocas.remote.push import push
from reprocas.remote.registry import open_backend
from reprocas.store import checkout as checkout_mod
from reprocas.store.commit import commit
from reprocas.store.repository import Repository

MB = 1e6
GB = 1e9
BUCKET = "reprocas-bench"
DATASET = "clinical"
PATTERNS = ("edit", "append", "insert", "delete")

# --- counting --------------------------------------------------------------------------


def _area(key: str) -> str:
    if "/" in key:
        return key.split("/", 1)[0]
    return "marker" if key.endswith(".json") else (key or "-")


class CountingBackend(Backend):
    """A backend that forwards every call and counts it: one request per call (a batch
    upload counts one per file, as each is one PUT), by operation and key area."""

    def __init__(self, inner: Backend) -> None:
        self.inner = inner
        self.url = inner.url
        self.reset()

    def reset(self) -> None:
        self.by_op: Counter[str] = Counter()
        self.by_area: Counter[str] = Counter()
        self.seconds = 0.0  # wall time spent inside the backend's calls
        self.bytes_in = 0  # bytes sent to the remote
        self.bytes_out = 0  # bytes read from it

    def _count(self, op: str, key: str, n: int = 1) -> None:
        self.by_op[op] += n
        self.by_area[_area(key)] += n

    @property
    def requests(self) -> int:
        return sum(self.by_op.values())

    def snapshot(self) -> dict[str, Any]:
        return {
            "requests": self.requests,
            "by_op": dict(self.by_op),
            "by_area": dict(self.by_area),
            "seconds": self.seconds,
            "bytes_in": self.bytes_in,
            "bytes_out": self.bytes_out,
        }

    @contextlib.contextmanager
    def _timed(self) -> Iterator[None]:
        t = time.perf_counter()
        try:
            yield
        finally:
            self.seconds += time.perf_counter() - t

    def put_if_absent(self, key: str, data: bytes) -> str:
        self._count("PUT", key)
        self.bytes_in += len(data)
        with self._timed():
            return self.inner.put_if_absent(key, data)

    def put_if_match(self, key: str, data: bytes, etag: str | None) -> str:
        self._count("PUT", key)
        self.bytes_in += len(data)
        with self._timed():
            return self.inner.put_if_match(key, data, etag)

    def put(self, key: str, data: bytes) -> str:
        self._count("PUT", key)
        self.bytes_in += len(data)
        with self._timed():
            return self.inner.put(key, data)

    def put_files_if_absent(self, items: Sequence[tuple[str, Path]]) -> list[bool]:
        for key, path in items:
            self._count("PUT", key)
            self.bytes_in += Path(path).stat().st_size
        with self._timed():
            return self.inner.put_files_if_absent(items)

    def get(self, key: str, start: int | None = None, end: int | None = None) -> bytes:
        self._count("GET" if start is None and end is None else "GET range", key)
        with self._timed():
            data = self.inner.get(key, start, end)
        self.bytes_out += len(data)
        return data

    def get_with_etag(self, key: str) -> tuple[bytes, str]:
        self._count("GET", key)
        with self._timed():
            data, etag = self.inner.get_with_etag(key)
        self.bytes_out += len(data)
        return data, etag

    def get_to_file(self, key: str, path: Path) -> int:
        self._count("GET", key)
        with self._timed():
            n = self.inner.get_to_file(key, path)
        self.bytes_out += n
        return n

    def head(self, key: str) -> ObjectInfo:
        self._count("HEAD", key)
        with self._timed():
            return self.inner.head(key)

    def list(self, prefix: str, start_after: str | None = None) -> Iterator[ObjectInfo]:
        self._count("LIST", prefix)
        with self._timed():  # listed here, so the time of the listing is counted
            return iter(list(self.inner.list(prefix, start_after)))

    def delete(self, key: str) -> None:
        self._count("DELETE", key)
        with self._timed():
            self.inner.delete(key)

    def close(self) -> None:
        self.inner.close()


@contextlib.contextmanager
def counted_clone_backend(sink: list[CountingBackend]) -> Iterator[None]:
    """Make :func:`reprocas.remote.clone.clone` open a counting backend (put in SINK):
    clone opens its backend itself, so the module's ``open_backend`` is wrapped."""
    namespace = vars(clone_mod)
    real = namespace["open_backend"]

    def wrapped(url: str, options: dict[str, Any] | None = None) -> Backend:
        b = CountingBackend(real(url, options))
        sink.append(b)
        return b

    namespace["open_backend"] = wrapped
    try:
        yield
    finally:
        namespace["open_backend"] = real


# --- moto with a server-side counter ----------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Moto:
    """benchmarks.moto_counting in a subprocess on 127.0.0.1 (stopped by :meth:`stop`)."""

    def __init__(self) -> None:
        self.port = _free_port()
        self.endpoint = f"http://127.0.0.1:{self.port}"
        env = dict(os.environ, AWS_ACCESS_KEY_ID="test", AWS_SECRET_ACCESS_KEY="test")
        root = Path(__file__).resolve().parent.parent
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "benchmarks.moto_counting", "--port", str(self.port)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            env=env,
            cwd=root,
        )
        deadline = time.monotonic() + 60
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"the moto server exited with {self.proc.returncode}")
            try:
                self.counts()
                break
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                if time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError("the moto server did not answer within 60 s") from None
                time.sleep(0.2)
        self._call("PUT", f"/{BUCKET}")
        self.options = {
            "endpoint": self.endpoint,
            "region": "us-east-1",
            "access_key_id": "test",
            "secret_access_key": "test",
            "allow_http": "true",
        }

    def _call(self, method: str, path: str) -> bytes:
        req = urllib.request.Request(f"{self.endpoint}{path}", method=method, data=b"")
        with urllib.request.urlopen(req, timeout=10) as r:
            return bytes(r.read())

    def counts(self) -> dict[str, Any]:
        with urllib.request.urlopen(f"{self.endpoint}/__counts", timeout=2) as r:
            out: dict[str, Any] = json.loads(r.read())
            return out

    def reset(self) -> None:
        self._call("POST", "/__counts/reset")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


# --- data ------------------------------------------------------------------------------


def extra_version(v5: pa.Table, pattern: str, seed: int) -> pa.Table:
    """v6: v5 changed once more, seeded (``encounters:<seed>:v6``), by PATTERN: ``edit``
    (0.5% of rows get a new creatinine value at scattered positions), ``append`` (2%
    new rows at the end), ``insert`` (1% new rows at scattered positions) or ``delete``
    (1% of rows removed at scattered positions)."""
    rng = Rng(f"encounters:{seed}:v6")
    n = v5.num_rows
    n_patients = max(1000, n // 3)
    next_id = pc.max(v5["encounter_id"]).as_py() + 1
    if pattern == "edit":
        rows = set(rng.sorted_sample(n, max(1, round(n * 0.005))))
        mask = pa.array([i in rows for i in range(n)], pa.bool_())
        creat = next(lab for lab in LABS if lab.name == "creatinine")
        span = creat.hi - creat.lo + 1
        old = pc.coalesce(v5["creatinine"], rng.bell(n, span // 4))
        changed = pc.modulo(pc.add(old, pc.add(rng.uints(n, 20), 1)), span)
        new = pc.if_else(mask, changed, v5["creatinine"])
        return v5.set_column(v5.schema.get_field_index("creatinine"), "creatinine", new)
    if pattern == "delete":
        gone = set(rng.sorted_sample(n, max(1, round(n * 0.01))))
        return v5.filter(pa.array([i not in gone for i in range(n)], pa.bool_()))
    k = max(1, round(n * (0.02 if pattern == "append" else 0.01)))
    first_ts = pc.max(v5["admit"]).as_py() if pattern == "append" else EPOCH + 86400 * 60
    added = encounter_rows(rng, k, first_id=next_id, first_ts=first_ts, n_patients=n_patients)
    both = pa.concat_tables([v5, added.cast(v5.schema)]).combine_chunks()
    if pattern == "append":
        return both
    positions = rng.sorted_sample(n + 1, k)
    order: list[int] = []
    prev = 0
    for j, p in enumerate(positions):
        order.extend(range(prev, p))
        order.append(n + j)
        prev = p
    order.extend(range(prev, n))
    return both.take(pa.array(order, pa.int64()))


def write_csv(path: Path, table: pa.Table) -> Path:
    with open(path, "wb") as f:
        for piece in csv_pieces(table):
            f.write(piece)
    return path


def make_series(directory: Path, rows: int, seed: int, pattern: str) -> list[Path]:
    """v1..v5 of the clinical CSV series and the extra v6."""
    directory.mkdir(parents=True)
    files = []
    last: pa.Table | None = None
    for name, table in encounter_versions(rows, seed):
        files.append(write_csv(directory / f"{name}.csv", table))
        last = table
    assert last is not None
    files.append(write_csv(directory / "v6.csv", extra_version(last, pattern, seed)))
    return files


def packs_bytes(root: Path) -> int:
    return sum(p.stat().st_size for p in (root / "packs").rglob("*.pack"))


# --- the measurements --------------------------------------------------------------------


def commit_version(repo: Repository, src: Path, f: Path, v: int) -> tuple[float, int, int]:
    """Commit F as the next version; (seconds, logical bytes, new stored bytes)."""
    shutil.copyfile(f, src / "encounters.csv")  # a new inode, as a new export would be
    t = time.perf_counter()
    r = commit(repo, src, DATASET, message=f"v{v}")
    return time.perf_counter() - t, r.logical_bytes, r.new_bytes


def raw_rates(url: str, options: dict[str, str], blob: bytes) -> dict[str, float]:
    """One object of len(BLOB) put and got through the bare backend, best of three."""
    b = open_backend(url, options)
    put_s, get_s = [], []
    try:
        for i in range(3):
            key = f"raw/{i}.bin"
            t = time.perf_counter()
            b.put_if_absent(key, blob)
            put_s.append(time.perf_counter() - t)
            t = time.perf_counter()
            got = b.get(key)
            get_s.append(time.perf_counter() - t)
            if len(got) != len(blob):
                raise RuntimeError(f"{url}: raw get returned {len(got)} of {len(blob)} bytes")
            b.delete(key)
    finally:
        b.close()
    return {"put_mb_s": len(blob) / min(put_s) / MB, "get_mb_s": len(blob) / min(get_s) / MB}


class Remote:
    """One remote under test: its URL, options and how its requests are counted."""

    def __init__(self, kind: str, url: str, options: dict[str, str], moto: Moto | None) -> None:
        self.kind, self.url, self.options, self.moto = kind, url, options, moto
        self.rc = RemoteConfig(kind, url, dict(options))

    def begin(self) -> None:
        if self.moto is not None:
            self.moto.reset()

    def requests(self, client: CountingBackend) -> dict[str, Any]:
        out: dict[str, Any] = {"client": client.snapshot()}
        if self.moto is not None:
            out["server"] = self.moto.counts()
        return out


def _op(
    name: str, seconds: float, moved: int, logical: int, counts: dict[str, Any]
) -> dict[str, Any]:
    counted = counts.get("server", counts["client"])
    return {
        "op": name,
        "seconds": seconds,
        "bytes": moved,
        "logical_bytes": logical,
        "mb_s": moved / seconds / MB,
        "logical_mb_s": logical / seconds / MB,
        "requests": counted["requests"],
        "requests_per_gb": counted["requests"] / (moved / GB) if moved else None,
        "counts": counts,
    }


def timed_push(repo: Repository, remote: Remote, logical: int, name: str) -> dict[str, Any]:
    b = CountingBackend(open_backend(remote.url, remote.options))
    try:
        remote.begin()
        t = time.perf_counter()
        report = push(repo, remote.rc, backend=b)
        seconds = time.perf_counter() - t
    finally:
        b.close()
    if report.rejected:
        raise RuntimeError(f"{name} to {remote.url}: refs rejected {report.rejected}")
    row = _op(name, seconds, report.uploaded_bytes, logical, remote.requests(b))
    row.update(uploaded_packs=report.uploaded_packs, skipped_packs=report.skipped_packs)
    return row


def timed_clone(
    remote: Remote, dest: Path, logical: int, expect_root: str, v5: Path
) -> dict[str, Any]:
    sink: list[CountingBackend] = []
    remote.begin()
    with counted_clone_backend(sink):
        t = time.perf_counter()
        path, report = clone_mod.clone(remote.url, dest, options=remote.options)
        seconds = time.perf_counter() - t
    counts = remote.requests(sink[0])
    with Repository.open(path) as repo:
        with repo.index.read() as txn:
            root = repo.resolve(txn, f"{DATASET}@latest").snapshot.root.hex
        if root != expect_root:
            raise RuntimeError(f"clone of {remote.url}: latest root {root} != {expect_root}")
        out = dest.parent / f"{dest.name}-v5"
        checkout_mod.checkout(repo, f"{DATASET}@v5", out)
        if core.blake3_digest((out / "encounters.csv").read_bytes()) != core.blake3_digest(
            v5.read_bytes()
        ):
            raise RuntimeError(f"clone of {remote.url}: v5 checks out different bytes")
        shutil.rmtree(out)
    row = _op("clone", seconds, report.downloaded_bytes, logical, counts)
    row.update(downloaded_packs=report.downloaded_packs, stored_bytes=packs_bytes(path))
    shutil.rmtree(path)
    return row


def run(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    load = OtherLoad()
    rows = rows_for_scale(args.scale)
    print(f"generating the series ({rows:,} rows in v1, seed {args.seed}) ...", file=sys.stderr)
    files = make_series(work / "data", rows, args.seed, args.edit_pattern)
    result: dict[str, Any] = {
        "scale": args.scale,
        "seed": args.seed,
        "edit_pattern": args.edit_pattern,
        "rows_v1": rows,
        "machine": machine_limits(files[0].read_bytes()[: 64 << 20]),
    }
    print("committing v1..v5 locally ...", file=sys.stderr)
    repo = Repository.init(work / "local")
    src = work / "src"
    src.mkdir()
    try:
        commit_s, logical = 0.0, 0
        versions = []
        for v, f in enumerate(files[:5], 1):
            s, lg, new = commit_version(repo, src, f, v)
            commit_s += s
            logical += lg
            versions.append({"version": v, "seconds": s, "logical": lg, "new_bytes": new})
        stored = packs_bytes(repo.root)
        with repo.index.read() as txn:
            latest_root = repo.resolve(txn, f"{DATASET}@latest").snapshot.root.hex
        result["local"] = {
            "versions": versions,
            "logical_bytes": logical,
            "commit_seconds": commit_s,
            "commit_mb_s": logical / commit_s / MB,
            "stored_bytes": stored,
        }
        biggest = max((repo.root / "packs").rglob("*.pack"), key=lambda p: p.stat().st_size)
        blob = biggest.read_bytes()[: 32 << 20]

        moto = Moto() if "s3" in args.remotes else None
        try:
            remotes = []
            if "file" in args.remotes:
                (work / "remote-file").mkdir()
                remotes.append(Remote("file", (work / "remote-file").as_uri(), {}, None))
            if moto is not None:
                remotes.append(Remote("s3", f"s3://{BUCKET}", moto.options, moto))
            for r in remotes:
                print(f"{r.kind}: raw rates, push, no-op push, clone ...", file=sys.stderr)
                res: dict[str, Any] = {"url": r.url, "raw": raw_rates(r.url, r.options, blob)}
                res["ops"] = [
                    timed_push(repo, r, logical, "push v1..v5"),
                    timed_push(repo, r, 0, "push (no-op)"),
                    timed_clone(r, work / f"clone-{r.kind}", logical, latest_root, files[4]),
                ]
                result[r.kind] = res
            print(f"committing v6 ({args.edit_pattern}) and pushing it ...", file=sys.stderr)
            before = packs_bytes(repo.root)
            s, lg, new = commit_version(repo, src, files[5], 6)
            result["v6"] = {
                "seconds": s,
                "logical": lg,
                "new_bytes": new,
                "new_pack_bytes": packs_bytes(repo.root) - before,
                "commit_mb_s": lg / s / MB,
            }
            for r in remotes:
                result[r.kind]["ops"].append(timed_push(repo, r, lg, "push v6"))
        finally:
            if moto is not None:
                moto.stop()
    finally:
        repo.close()
    # After moto has been waited for, so its CPU time counts as ours, not the others'.
    result["noise"] = load.report()
    return result


# --- the report --------------------------------------------------------------------------


def _f(x: float | None, fmt: str = ".0f") -> str:
    return "-" if x is None else format(x, fmt)


def _breakdown(c: dict[str, Any]) -> str:
    ops = ", ".join(f"{k} {v}" for k, v in sorted(c["by_op"].items(), key=lambda kv: -kv[1]))
    areas = ", ".join(f"{k} {v}" for k, v in sorted(c["by_area"].items(), key=lambda kv: -kv[1]))
    return f"{ops}  |  {areas}"


def print_report(res: dict[str, Any]) -> None:
    m, loc = res["machine"], res["local"]
    commit_rate = loc["commit_mb_s"]
    print(
        f"clinical CSV series, seed {res['seed']}, scale {res['scale']:g} "
        f"({res['rows_v1']:,} rows in v1): v1..v5 {loc['logical_bytes'] / MB:.1f} MB logical, "
        f"{loc['stored_bytes'] / MB:.2f} MB stored (packs)"
    )
    print(
        f"machine: blake3 1 core {m['blake3_1t_mb_s']:.0f} MB/s, zstd -3 1 core "
        f"{m['zstd3_1t_mb_s']:.0f} MB/s; local commit v1..v5 {commit_rate:.1f} MB/s logical "
        f"({commit_rate / m['zstd3_1t_mb_s']:.2f}x zstd 1 core)"
    )
    noise = res.get("noise")
    if noise:
        print(
            f"other processes used {noise['other_cores']:.2f} cores, steal "
            f"{noise['steal_cores']:.2f}, over {noise['wall_seconds']:.0f} s"
            + ("  NOISY: rerun on a quiet machine" if noise["other_cores"] > 0.1 else "")
        )
    for kind in ("file", "s3"):
        if kind not in res:
            continue
        r = res[kind]
        raw = r["raw"]
        who = "backend calls" if kind == "file" else "HTTP requests counted by the server"
        print(
            f"\n{kind}: {r['url'] if kind == 's3' else 'file:// (temp dir)'}   raw 32 MiB object: "
            f"put {raw['put_mb_s']:.0f} MB/s, get {raw['get_mb_s']:.0f} MB/s   (requests = {who})"
        )
        head = (
            f"  {'operation':<14}{'seconds':>9}{'MB moved':>10}{'MB/s':>8}{'x raw':>7}"
            f"{'logical MB/s':>14}{'x commit':>10}{'requests':>10}{'req/GB':>9}"
        )
        print(head)
        for op in r["ops"]:
            rawrate = raw["get_mb_s"] if op["op"] == "clone" else raw["put_mb_s"]
            moved = op["bytes"]
            commit_ref = res["v6"]["commit_mb_s"] if op["op"] == "push v6" else commit_rate
            print(
                f"  {op['op']:<14}{op['seconds']:>9.2f}{moved / MB:>10.2f}"
                f"{_f(op['mb_s'] if moved else None, '.1f'):>8}"
                f"{_f(op['mb_s'] / rawrate if moved else None, '.2f'):>7}"
                f"{_f(op['logical_mb_s'] if op['logical_bytes'] else None, '.1f'):>14}"
                f"{_f(op['logical_mb_s'] / commit_ref if op['logical_bytes'] else None, '.2f'):>10}"
                f"{op['requests']:>10}{_f(op['requests_per_gb']):>9}"
            )
        for op in r["ops"]:
            c = op["counts"]
            print(f"    {op['op']:<14} {_breakdown(c.get('server', c['client']))}")
            cl = c["client"]
            line = f"    {'':<14} {cl['seconds']:.2f} s inside {cl['requests']} backend calls"
            if "server" in c:
                s = c["server"]
                line += (
                    f"; server: status {s['by_status']}, body bytes in {s['bytes_in']:,}, "
                    f"out {s['bytes_out']:,}"
                )
            print(line)
        first = r["ops"][0]
        v6 = r["ops"][-1]
        print(
            f"  first push uploaded {first['bytes']:,} bytes = "
            f"{first['bytes'] / loc['stored_bytes']:.4f}x the local packs "
            f"({loc['stored_bytes']:,}; {first['uploaded_packs']} packs)"
        )
        print(
            f"  push v6 ({res['edit_pattern']}) uploaded {v6['bytes']:,} bytes = "
            f"{v6['bytes'] / max(1, res['v6']['new_pack_bytes']):.3f}x the new local packs "
            f"({res['v6']['new_pack_bytes']:,}; commit new_bytes {res['v6']['new_bytes']:,})"
        )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scale", type=float, default=0.5, help="1.0 = ~500 MB of CSV in v1")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--edit-pattern", choices=PATTERNS, default="edit", help="how v6 changes v5")
    ap.add_argument("--remotes", default="file,s3", help="comma-separated: file, s3")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    args.remotes = {r.strip() for r in args.remotes.split(",") if r.strip()}
    if not args.remotes <= {"file", "s3"}:
        ap.error("--remotes takes file and/or s3")
    if "s3" in args.remotes and importlib.util.find_spec("moto") is None:
        print("note: moto[server] is not installed; the S3 remote is skipped", file=sys.stderr)
        args.remotes.discard("s3")
    with tempfile.TemporaryDirectory(prefix="reprocas-bench-remote-") as tmp:
        res = run(args, Path(tmp))
    if args.json:
        print(json.dumps(res, indent=1))
    else:
        print_report(res)


if __name__ == "__main__":
    main()
