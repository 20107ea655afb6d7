"""Repository benchmark: the whole ``reprocas`` command on versioned datasets.

One run measures, on this machine and in this run:

1. reference rates: zstd at the repository's default level (one thread, whole file),
   zstd decompression (one thread) and BLAKE3 (one thread) on the v1 CSV, plus the
   start-up time of the CLI;
2. the clinical CSV series (v1..v5 from :mod:`benchmarks.generate`) committed as five
   versions of one dataset into a fresh repository through the CLI (a subprocess per
   command, so start-up is included): MB/s, ``new_bytes``, stored bytes after each
   version, a re-commit with nothing changed, checkouts of v1 and v5 (verified by
   BLAKE3), and the peak RSS of every command; the same for the Parquet series;
3. v1's stored size against its whole-file zstd size at the same level;
4. the same CSV series backed up by restic (if installed), for the stored size;
5. a tree of 10,000+ small files: first commit, re-commit (the files cache), checkout.

Targets are printed beside the figures; nothing asserts. Run from the project root::

    .venv/bin/python -m benchmarks.bench_repo [--scale 1.0] [--data-dir bench-data]
        [--json] [--skip-restic] [--keep]

See ``benchmarks/README-repo.md`` for what every row means.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import math
import os
import platform
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import blake3
import zstandard

from benchmarks import generate
from reprocas.model.chunking import DEFAULT_LEVEL

T = TypeVar("T")

MB = 1_000_000
"""Rates and sizes are in decimal megabytes (10^6 bytes)."""

DATASET = "encounters"
GNU_TIME = Path("/usr/bin/time")
RESTIC_PASSWORD = "bench"

# Targets (see the module docstring and README-repo.md).
COMMIT_FACTOR = 0.8
"""First commit >= this x (zstd 1-thread compression rate x cores)."""
CHECKOUT_FACTOR = 0.5
"""Checkout >= this x (zstd 1-thread decompression rate x cores)."""
RECOMMIT_SMALL_MAX_S = 1.0
"""Re-commit of the unchanged small-files tree: under this many seconds."""
RESTIC_MAX_RATIO = 0.9
"""Stored bytes after five CSV versions <= this x restic's repository."""
PEAK_RSS_MAX = 300 * MB
"""Peak RSS of every reprocas command: below this."""
ZSTD_MAX_RATIO = 1.05
"""v1 stored <= this x its whole-file zstd size at the same level."""


class StepError(Exception):
    """A benchmark step failed; the message says what and why."""


def progress(message: str) -> None:
    """A progress line on stderr (stdout is the report)."""
    print(message, file=sys.stderr, flush=True)


def best_of(repeat: int, fn: Callable[[], T]) -> tuple[float, T]:
    """The shortest wall time of ``repeat`` calls of ``fn``, and that call's result."""
    best = math.inf
    out: T | None = None
    for _ in range(max(1, repeat)):
        started = time.perf_counter()
        value = fn()
        elapsed = time.perf_counter() - started
        if elapsed < best:
            best, out = elapsed, value
    assert out is not None
    return best, out


def rate(nbytes: int, seconds: float) -> float:
    """MB/s (decimal)."""
    return nbytes / seconds / MB if seconds > 0 else math.inf


def cores() -> int:
    """CPUs this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def file_digest(path: Path) -> str:
    """BLAKE3 hex digest of a file (all threads; not timed)."""
    h = blake3.blake3(max_threads=blake3.blake3.AUTO)
    h.update_mmap(str(path))
    return str(h.hexdigest())


def tree_bytes(root: Path) -> int:
    """Sum of the apparent sizes of the regular files below ``root``.

    Directories are not counted, so restic's 256 pre-created data directories do not
    weigh against it (``du -sb`` would count 4 KiB for each).
    """
    total = 0
    for dirpath, _, names in os.walk(root):
        for name in names:
            with contextlib.suppress(FileNotFoundError):
                st = os.lstat(os.path.join(dirpath, name))
                total += st.st_size
    return total


def remove(path: Path) -> None:
    """Delete a file or a directory tree if it exists."""
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    else:
        path.unlink(missing_ok=True)


def place(source: Path, target: Path) -> str:
    """Put ``source`` at ``target`` (hard link, else copy); returns how."""
    target.parent.mkdir(parents=True, exist_ok=True)
    target.unlink(missing_ok=True)
    try:
        os.link(source, target)
        return "link"
    except OSError:
        shutil.copyfile(source, target)
        return "copy"


# --- timed subprocesses ---------------------------------------------------------------


@dataclass(frozen=True)
class Timed:
    """One finished command: wall seconds, peak RSS (bytes, if known) and its stdout."""

    seconds: float
    peak_rss: int | None
    stdout: str

    def json(self) -> Any:
        """Its stdout parsed as JSON (the last non-empty line if the first parse fails)."""
        try:
            return json.loads(self.stdout)
        except json.JSONDecodeError:
            lines = [line for line in self.stdout.splitlines() if line.strip()]
            if not lines:
                raise
            return json.loads(lines[-1])


def _tail(text: str, lines: int = 8) -> str:
    return "\n".join(text.strip().splitlines()[-lines:])


class Runner:
    """Runs commands, timing them and measuring their peak RSS.

    Peak RSS comes from GNU time (``/usr/bin/time -f %M``) when it exists: its figure
    is the command's own. Otherwise the command is forked (not vforked) and its
    ``ru_maxrss`` read with ``wait4``; that figure can include the RSS this process had
    at fork time. (``RUSAGE_CHILDREN`` is not used: it is a maximum over all children,
    and after a vfork it carries this process's own peak into the child's figure.)
    """

    def __init__(self, scratch: Path) -> None:
        self.scratch = scratch
        self.gnu_time = GNU_TIME if os.access(GNU_TIME, os.X_OK) else None
        self.rss_method = "/usr/bin/time -f %M" if self.gnu_time else "fork + wait4 ru_maxrss"

    def run(self, argv: Sequence[str], what: str, env: Mapping[str, str] | None = None) -> Timed:
        """Run ``argv`` to completion; a non-zero exit raises :class:`StepError`."""
        rss_file = self.scratch / "peak-rss.txt"
        rss_file.unlink(missing_ok=True)
        cmd = list(argv)
        if self.gnu_time is not None:
            cmd = [str(self.gnu_time), "-f", "%M", "-o", str(rss_file), *cmd]
        with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
            started = time.perf_counter()
            try:
                proc = subprocess.Popen(
                    cmd,
                    stdin=subprocess.DEVNULL,
                    stdout=out,
                    stderr=err,
                    env=dict(env) if env is not None else None,
                    start_new_session=True,
                    # A preexec_fn makes Python fork instead of vfork (see the class doc).
                    preexec_fn=None if self.gnu_time else _noop,
                )
            except OSError as exc:
                raise StepError(f"{what}: cannot start {argv[0]}: {exc}") from exc
            try:
                _, status, usage = os.wait4(proc.pid, 0)
            except BaseException:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
                raise
            elapsed = time.perf_counter() - started
            proc.returncode = code = os.waitstatus_to_exitcode(status)
            out.seek(0)
            stdout = out.read().decode("utf-8", "replace")
            err.seek(0)
            stderr = err.read().decode("utf-8", "replace")
        if code != 0:
            raise StepError(
                f"{what} failed (exit {code}): {' '.join(argv)}\n{_tail(stderr) or '(no stderr)'}"
            )
        peak: int | None = None
        if self.gnu_time is not None:
            with contextlib.suppress(OSError, ValueError, IndexError):
                peak = int(rss_file.read_text().split()[-1]) * 1024
        else:
            peak = usage.ru_maxrss * 1024
        return Timed(elapsed, peak, stdout)


def _noop() -> None:
    """Forces a real fork in :class:`subprocess.Popen` (see :class:`Runner`)."""


class Cli:
    """The ``reprocas`` command next to this interpreter, run through a :class:`Runner`."""

    def __init__(self, runner: Runner, exe: Path) -> None:
        self.runner = runner
        self.exe = exe
        self.rss: list[int] = []
        """Peak RSS of every reprocas command run so far (for the RSS target)."""

    def run(self, repo: Path | None, *args: str, what: str) -> tuple[Timed, Any]:
        """Run ``reprocas [--repo REPO] ARGS`` (which must include ``--json``)."""
        argv = [str(self.exe)]
        if repo is not None:
            argv += ["--repo", str(repo)]
        timed = self.runner.run([*argv, *args], what)
        if timed.peak_rss is not None:
            self.rss.append(timed.peak_rss)
        try:
            return timed, timed.json()
        except json.JSONDecodeError as exc:
            raise StepError(f"{what}: output is not JSON: {_tail(timed.stdout, 3)!r}") from exc

    def commit(self, repo: Path, src: Path, message: str, what: str) -> tuple[Timed, Any]:
        """``reprocas commit SRC --dataset encounters --json``."""
        return self.run(
            repo, "commit", str(src), "--dataset", DATASET, "-m", message, "--json", what=what
        )

    def init(self, repo: Path) -> None:
        """``reprocas init REPO``."""
        self.run(None, "init", str(repo), "--json", what=f"init {repo.name}")


# --- noise ----------------------------------------------------------------------------


class Noise:
    """CPU used by other processes during the run, from ``/proc/stat`` (Linux only).

    Busy time of all CPUs minus our own and our children's CPU time, divided by the
    wall time: how many cores other processes kept busy. Steal is the hypervisor's.
    """

    def __init__(self) -> None:
        self.start = self._sample()
        self.own = self._own()
        self.t0 = time.monotonic()

    @staticmethod
    def _sample() -> tuple[float, float] | None:
        try:
            fields = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
            ticks = [int(x) / os.sysconf("SC_CLK_TCK") for x in fields]
        except (OSError, ValueError, IndexError):
            return None
        user, nice, system, _idle, _iowait, irq, softirq = ticks[:7]
        steal = ticks[7] if len(ticks) > 7 else 0.0
        return user + nice + system + irq + softirq, steal

    @staticmethod
    def _own() -> float:
        t = os.times()
        return t.user + t.system + t.children_user + t.children_system

    def report(self) -> dict[str, float] | None:
        """``{"other_cores", "steal_cores", "seconds"}`` since construction."""
        end = self._sample()
        wall = time.monotonic() - self.t0
        if self.start is None or end is None or wall <= 0:
            return None
        busy = end[0] - self.start[0]
        own = self._own() - self.own
        return {
            "other_cores": max(0.0, busy - own) / wall,
            "steal_cores": (end[1] - self.start[1]) / wall,
            "seconds": wall,
        }


# --- the steps ------------------------------------------------------------------------


def measure_references(v1: Path, repeat: int, out: dict[str, Any]) -> None:
    """zstd (default level, one thread, one frame), zstd decompression and BLAKE3 rates."""
    data = v1.read_bytes()
    size = len(data)
    out.update(file=str(v1), bytes=size, level=DEFAULT_LEVEL, repeat=repeat)
    cctx = zstandard.ZstdCompressor(level=DEFAULT_LEVEL, threads=0)
    seconds, compressed = best_of(repeat, lambda: bytes(cctx.compress(data)))
    out.update(
        zstd_seconds=seconds,
        zstd_mbps=rate(size, seconds),
        zstd_bytes=len(compressed),
        zstd_ratio=size / len(compressed),
    )
    dctx = zstandard.ZstdDecompressor()
    seconds, restored = best_of(repeat, lambda: bytes(dctx.decompress(compressed)))
    if restored != data:
        raise StepError("zstd round trip of v1 did not give the same bytes")
    restored = compressed = b""  # free ~700 MB before the next measurement
    out.update(zstd_dec_seconds=seconds, zstd_dec_mbps=rate(size, seconds))
    seconds, _ = best_of(repeat, lambda: blake3.blake3(data, max_threads=1).digest())
    out.update(blake3_seconds=seconds, blake3_mbps=rate(size, seconds))
    # The zstd command with two worker threads: what two cores give a plain compressor.
    exe = shutil.which("zstd")
    if exe is not None:
        argv = [exe, f"-{DEFAULT_LEVEL}", "-T2", "-q", "-c", str(v1)]

        def _cli() -> int:
            return subprocess.run(argv, stdout=subprocess.DEVNULL, check=True).returncode

        seconds, _ = best_of(repeat, _cli)
        out.update(zstd_t2_seconds=seconds, zstd_t2_mbps=rate(size, seconds))


def measure_startup(cli: Cli, repo: Path, repeat: int, out: dict[str, Any]) -> None:
    """Wall time of ``reprocas --repo REPO log --json`` on a repository: start-up cost."""
    runs = [cli.run(repo, "log", "--json", what="log")[0] for _ in range(max(1, repeat))]
    out.update(
        cli_startup_seconds=min(r.seconds for r in runs),
        cli_startup_rss=max((r.peak_rss or 0) for r in runs) or None,
    )


def first_commit_extra(
    cli: Cli, work: Path, src: Path, label: str, repeat: int
) -> list[tuple[float, int | None]]:
    """``repeat - 1`` extra first commits of ``src``, each into a throwaway repository."""
    runs: list[tuple[float, int | None]] = []
    for r in range(max(0, repeat - 1)):
        scratch = work / f"{label}-first-{r}"
        try:
            cli.init(scratch)
            timed, _ = cli.commit(scratch, src, "timing", f"first commit of {label} (extra)")
            runs.append((timed.seconds, timed.peak_rss))
        finally:
            remove(scratch)
    return runs


def _max_rss(*values: int | None) -> int | None:
    known = [v for v in values if v is not None]
    return max(known) if known else None


def bench_series(
    kind: str,
    files: Sequence[Path],
    work: Path,
    cli: Cli,
    repeat: int,
    first_repeat: int,
    out: dict[str, Any],
    startup: dict[str, Any] | None = None,
) -> None:
    """Commit v1..v5 as one dataset, re-commit, check out v1 and v5; results into ``out``."""
    repo = work / f"{kind}-repo"
    src = work / f"{kind}-src"
    target = src / "data" / f"encounters{files[0].suffix}"
    out.update(repo=str(repo), path=str(target.relative_to(src)), versions=[], checkouts=[])
    cli.init(repo)
    if startup is not None:
        measure_startup(cli, repo, repeat, startup)
    for i, path in enumerate(files):
        name = f"v{i + 1}"
        size = path.stat().st_size
        out["placed_by"] = place(path, target)
        extra = first_commit_extra(cli, work, src, kind, first_repeat) if i == 0 else []
        timed, res = cli.commit(repo, src, name, f"commit of {kind} {name}")
        if not res.get("created") or res.get("logical_bytes") != size:
            raise StepError(f"commit of {kind} {name}: unexpected result {res}")
        seconds = min([timed.seconds] + [s for s, _ in extra])
        du_timed, du = cli.run(repo, "du", "--json", what=f"du after {kind} {name}")
        out["versions"].append(
            {
                "version": name,
                "bytes": size,
                "seconds": seconds,
                "runs": 1 + len(extra),
                "mbps": rate(size, seconds),
                "new_bytes": res["new_bytes"],
                "stored_bytes": du["stored_bytes"],
                "peak_rss": _max_rss(timed.peak_rss, *(r for _, r in extra)),
                "du_seconds": du_timed.seconds,
                "du_peak_rss": du_timed.peak_rss,
            }
        )
    versions = out["versions"]
    v1_new = versions[0]["new_bytes"]
    for v in versions:
        v["cost_pct_of_v1"] = 100.0 * v["new_bytes"] / v1_new if v1_new else None
    out["final_du"] = du

    runs: list[Timed] = []
    for _ in range(max(1, repeat)):
        timed, res = cli.commit(repo, src, "unchanged", f"re-commit of {kind} (unchanged)")
        if res.get("created") or res.get("new_bytes") != 0:
            raise StepError(f"re-commit of unchanged {kind}: unexpected result {res}")
        runs.append(timed)
    size = versions[-1]["bytes"]
    best = min(r.seconds for r in runs)
    out["recommit"] = {
        "bytes": size,
        "seconds": best,
        "mbps": rate(size, best),
        "runs": len(runs),
        "peak_rss": _max_rss(*(r.peak_rss for r in runs)),
    }

    for index in (0, len(files) - 1):
        name = f"v{index + 1}"
        expected = file_digest(files[index])
        size = files[index].stat().st_size
        dest = work / f"{kind}-checkout"
        runs = []
        for r in range(max(1, repeat)):
            remove(dest)
            timed, res = cli.run(
                repo,
                "checkout",
                f"{DATASET}@{name}",
                str(dest),
                "--json",
                what=f"checkout of {kind} {name}",
            )
            runs.append(timed)
            if res.get("bytes") != size:
                raise StepError(f"checkout of {kind} {name}: wrote {res.get('bytes')} of {size}")
            if r == 0:
                got = file_digest(dest / target.relative_to(src))
                if got != expected:
                    raise StepError(
                        f"checkout of {kind} {name}: BLAKE3 {got[:16]}... differs from "
                        f"the original's {expected[:16]}..."
                    )
        remove(dest)
        best = min(r.seconds for r in runs)
        out["checkouts"].append(
            {
                "version": name,
                "bytes": size,
                "seconds": best,
                "mbps": rate(size, best),
                "runs": len(runs),
                "verified": True,
                "peak_rss": _max_rss(*(r.peak_rss for r in runs)),
            }
        )


def bench_restic(files: Sequence[Path], work: Path, runner: Runner, out: dict[str, Any]) -> None:
    """Back up v1..v5 at the same path with restic (default compression); sizes into ``out``."""
    exe = shutil.which("restic")
    if exe is None:
        out.update(
            available=False,
            note="restic is not on PATH (apt-get install -y restic); comparison skipped",
        )
        return
    env = dict(os.environ)
    env.update(RESTIC_PASSWORD=RESTIC_PASSWORD, RESTIC_CACHE_DIR=str(work / "restic-cache"))
    env.pop("RESTIC_REPOSITORY", None)
    env.pop("RESTIC_PASSWORD_FILE", None)
    env.pop("RESTIC_PASSWORD_COMMAND", None)
    version = subprocess.run(
        [exe, "version"], capture_output=True, text=True, check=False
    ).stdout.strip()
    repo = work / "restic-repo"
    src = work / "restic-src"
    target = src / "data" / "encounters.csv"
    out.update(available=True, version=version, repo=str(repo), versions=[])
    runner.run([exe, "init", "--repo", str(repo), "-q"], "restic init", env)
    with contextlib.suppress(StepError, ValueError, json.JSONDecodeError):
        config = runner.run([exe, "--repo", str(repo), "cat", "config"], "restic config", env)
        out["repository_version"] = config.json().get("version")
    previous = 0
    for i, path in enumerate(files):
        name = f"v{i + 1}"
        size = path.stat().st_size
        place(path, target)
        timed = runner.run(
            [exe, "--repo", str(repo), "backup", str(src), "--host", "bench", "--json", "-q"],
            f"restic backup of {name}",
            env,
        )
        summary: dict[str, Any] = {}
        for line in timed.stdout.splitlines():
            with contextlib.suppress(json.JSONDecodeError):
                msg = json.loads(line)
                if isinstance(msg, dict) and msg.get("message_type") == "summary":
                    summary = msg
        stored = tree_bytes(repo)
        out["versions"].append(
            {
                "version": name,
                "bytes": size,
                "seconds": timed.seconds,
                "mbps": rate(size, timed.seconds),
                "repo_bytes": stored,
                "added_bytes": stored - previous,
                "data_added_raw": summary.get("data_added"),
                "peak_rss": timed.peak_rss,
            }
        )
        previous = stored
    v1 = out["versions"][0]["added_bytes"]
    for v in out["versions"]:
        v["cost_pct_of_v1"] = 100.0 * v["added_bytes"] / v1 if v1 else None


def ensure_small_files(data_dir: Path, n: int, seed: int) -> Path:
    """The cached :func:`generate.small_files_tree` (generated if missing)."""
    base = data_dir / f"small-files-g{generate.GENERATOR_VERSION}-n{n}-s{seed}"
    tree = base / "tree"
    marker = base / "complete"
    if not marker.exists():
        remove(base)
        started = time.perf_counter()
        progress(f"generating {tree} ({n} files) ...")
        generate.small_files_tree(tree, n, seed)
        marker.write_text(f"n={n} seed={seed}\n")
        progress(f"  done in {time.perf_counter() - started:.1f} s")
    return tree


def tree_digests(root: Path) -> dict[str, str]:
    """``{relative path: BLAKE3 hex}`` of every regular file below ``root``."""
    out: dict[str, str] = {}
    for dirpath, _, names in os.walk(root):
        for name in names:
            p = Path(dirpath, name)
            out[str(p.relative_to(root))] = str(blake3.blake3(p.read_bytes()).hexdigest())
    return out


def copy_tree(src: Path, dest: Path) -> float:
    """Seconds to copy a tree with ``cp -r`` (``shutil.copytree`` without cp).

    The floor for a checkout: the same files created in the same filesystem by a
    plain tool. (On ext4, new directories are spread over block groups, so creating
    files in many fresh directories costs far more per file than in one.)
    """
    cp = shutil.which("cp")
    started = time.perf_counter()
    if cp is not None:
        done = subprocess.run([cp, "-r", str(src), str(dest)], capture_output=True, text=True)
        if done.returncode != 0:
            raise StepError(f"cp -r {src} {dest} failed: {_tail(done.stderr)}")
    else:
        shutil.copytree(src, dest, symlinks=True)
    return time.perf_counter() - started


def bench_small_files(
    tree: Path, work: Path, cli: Cli, repeat: int, first_repeat: int, out: dict[str, Any]
) -> None:
    """First commit, unchanged re-commit and checkout of the small-files tree."""
    digests = tree_digests(tree)
    nfiles = len(digests)
    size = tree_bytes(tree)
    repo = work / "small-repo"
    out.update(files=nfiles, bytes=size, repo=str(repo))
    cli.init(repo)
    extra = first_commit_extra(cli, work, tree, "small", first_repeat)
    timed, res = cli.commit(repo, tree, "v1", "commit of the small-files tree")
    if not res.get("created") or res.get("files") != nfiles:
        raise StepError(f"commit of the small-files tree: unexpected result {res}")
    seconds = min([timed.seconds] + [s for s, _ in extra])
    out["commit"] = {
        "seconds": seconds,
        "mbps": rate(size, seconds),
        "files_per_s": nfiles / seconds,
        "runs": 1 + len(extra),
        "new_bytes": res["new_bytes"],
        "peak_rss": _max_rss(timed.peak_rss, *(r for _, r in extra)),
    }
    runs: list[Timed] = []
    for _ in range(max(1, repeat)):
        t, res = cli.commit(repo, tree, "unchanged", "re-commit of the small-files tree")
        if res.get("created") or res.get("new_bytes") != 0:
            raise StepError(f"re-commit of the unchanged small-files tree: unexpected {res}")
        runs.append(t)
    best = min(r.seconds for r in runs)
    out["recommit"] = {
        "seconds": best,
        "files_per_s": nfiles / best,
        "runs": len(runs),
        "peak_rss": _max_rss(*(r.peak_rss for r in runs)),
    }
    _, du = cli.run(repo, "du", "--json", what="du of the small-files repository")
    out["stored_bytes"] = du["stored_bytes"]
    # Checkouts and plain copies alternate, so both see the filesystem in the same mood
    # (on a shared VM, creating 10,000 files varies by 3x from minute to minute).
    dest = work / "small-checkout"
    copies: list[float] = []
    runs = []
    for r in range(max(1, repeat)):
        remove(dest)
        copies.append(copy_tree(tree, dest))
        remove(dest)
        t, _ = cli.run(
            repo, "checkout", f"{DATASET}@v1", str(dest), "--json", what="checkout of small files"
        )
        runs.append(t)
        if r == 0:
            got = tree_digests(dest)
            if got != digests:
                bad = sorted(set(got.items()) ^ set(digests.items()))[:3]
                raise StepError(f"checkout of the small-files tree differs, e.g. {bad}")
    remove(dest)
    best = min(copies)
    out["copy"] = {
        "seconds": best,
        "mbps": rate(size, best),
        "files_per_s": nfiles / best,
        "runs": len(copies),
        "how": "cp -r" if shutil.which("cp") else "shutil.copytree",
    }
    best = min(r.seconds for r in runs)
    out["checkout"] = {
        "seconds": best,
        "mbps": rate(size, best),
        "files_per_s": nfiles / best,
        "runs": len(runs),
        "verified": True,
        "peak_rss": _max_rss(*(r.peak_rss for r in runs)),
    }


# --- targets --------------------------------------------------------------------------


def _meets(value: float | None, op: str, limit: float | None) -> bool | None:
    if value is None or limit is None:
        return None
    return {">=": value >= limit, "<=": value <= limit, "<": value < limit}[op]


def compute_targets(result: dict[str, Any]) -> list[dict[str, Any]]:
    """Every target with its figure, the limit and whether it is met (None: unknown)."""
    refs = result.get("references") or {}
    n = result["context"]["cores"]
    commit_min = COMMIT_FACTOR * refs["zstd_mbps"] * n if "zstd_mbps" in refs else None
    checkout_min = CHECKOUT_FACTOR * refs["zstd_dec_mbps"] * n if "zstd_dec_mbps" in refs else None
    commit_basis = f"{COMMIT_FACTOR} x zstd-{DEFAULT_LEVEL} 1T x {n} cores"
    checkout_basis = f"{CHECKOUT_FACTOR} x zstd dec 1T x {n} cores"
    rows: list[dict[str, Any]] = []

    def add(
        what: str, value: float | None, unit: str, op: str, limit: float | None, basis: str
    ) -> None:
        rows.append(
            {
                "what": what,
                "value": value,
                "unit": unit,
                "op": op,
                "limit": limit,
                "basis": basis,
                "meets": _meets(value, op, limit),
            }
        )

    series = result.get("series", {})
    for kind in ("csv", "parquet"):
        s = series.get(kind) or {}
        if s.get("versions"):
            add(
                f"{kind} first commit",
                s["versions"][0]["mbps"],
                "MB/s",
                ">=",
                commit_min,
                commit_basis,
            )
        for c in s.get("checkouts", []):
            add(
                f"{kind} checkout {c['version']}",
                c["mbps"],
                "MB/s",
                ">=",
                checkout_min,
                checkout_basis,
            )
    small = result.get("small_files") or {}
    if "commit" in small:
        add(
            "small files first commit",
            small["commit"]["mbps"],
            "MB/s",
            ">=",
            commit_min,
            commit_basis,
        )
    if "recommit" in small:
        add(
            f"re-commit {small['files']} unchanged files",
            small["recommit"]["seconds"],
            "s",
            "<",
            RECOMMIT_SMALL_MAX_S,
            "files cache",
        )
    if "checkout" in small:
        add(
            "small files checkout",
            small["checkout"]["mbps"],
            "MB/s",
            ">=",
            checkout_min,
            checkout_basis,
        )
    csv = series.get("csv") or {}
    restic = result.get("restic") or {}
    if (
        csv.get("versions")
        and restic.get("versions")
        and len(restic["versions"]) == len(csv["versions"])
    ):
        ours = csv["versions"][-1]["stored_bytes"]
        theirs = restic["versions"][-1]["repo_bytes"]
        add(
            "stored after 5 CSV versions / restic",
            ours / theirs,
            "x",
            "<=",
            RESTIC_MAX_RATIO,
            "restic 0.14+ default (auto) compression",
        )
    if csv.get("versions") and refs.get("zstd_bytes"):
        add(
            "CSV v1 stored / whole-file zstd",
            csv["versions"][0]["stored_bytes"] / refs["zstd_bytes"],
            "x",
            "<=",
            ZSTD_MAX_RATIO,
            f"zstd -{DEFAULT_LEVEL}, one frame",
        )
    rss = result.get("reprocas_peak_rss")
    if rss:
        add(
            f"peak RSS, max of {rss['commands']} reprocas commands",
            rss["max"] / MB,
            "MB",
            "<",
            PEAK_RSS_MAX / MB,
            result["context"]["rss_method"],
        )
    return rows


# --- the report -----------------------------------------------------------------------


def text_table(header: Sequence[str], lines: Sequence[Sequence[str]], left: int = 1) -> str:
    """Columns aligned; the first ``left`` columns left-aligned, the rest right-aligned."""
    widths = [max(len(str(row[i])) for row in [header, *lines]) for i in range(len(header))]

    def fmt(row: Sequence[str]) -> str:
        cells = [
            str(c).ljust(w) if i < left else str(c).rjust(w)
            for i, (c, w) in enumerate(zip(row, widths, strict=True))
        ]
        return "  ".join(cells).rstrip()

    rule = "  ".join("-" * w for w in widths)
    return "\n".join([fmt(header), rule, *(fmt(r) for r in lines)])


def f_rate(v: float | None) -> str:
    """A rate: no decimals from 100 up, one below."""
    if v is None:
        return "-"
    return f"{v:.0f}" if v >= 100 else f"{v:.1f}"


def f_mb(v: float | None) -> str:
    """Bytes as decimal MB, two decimals below 10 MB."""
    if v is None:
        return "-"
    mb = v / MB
    return f"{mb:.2f}" if mb < 10 else f"{mb:.1f}"


def f_s(v: float | None) -> str:
    """Seconds."""
    return "-" if v is None else f"{v:.2f}"


def f_pct(v: float | None) -> str:
    """A percentage."""
    return "-" if v is None else f"{v:.1f}%"


def f_rss(v: int | None) -> str:
    """Peak RSS in MB."""
    return "-" if v is None else f"{v / MB:.0f}"


def _series_table(kind: str, s: dict[str, Any], commit_min: float | None) -> str:
    rows: list[list[str]] = []
    for i, v in enumerate(s.get("versions", [])):
        rows.append(
            [
                f"commit {v['version']}" + (" (first)" if i == 0 else ""),
                f_mb(v["bytes"]),
                f_s(v["seconds"]),
                f_rate(v["mbps"]),
                f_mb(v["new_bytes"]),
                f_pct(v.get("cost_pct_of_v1")) if i else "100%",
                f_mb(v["stored_bytes"]),
                f_rss(v["peak_rss"]),
                f"best of {v['runs']}; du {f_s(v['du_seconds'])} s, {f_rss(v['du_peak_rss'])} MB"
                + (f"; target >= {f_rate(commit_min)} MB/s" if i == 0 and commit_min else ""),
            ]
        )
    if "recommit" in s:
        r = s["recommit"]
        rows.append(
            [
                "re-commit, unchanged",
                f_mb(r["bytes"]),
                f_s(r["seconds"]),
                f_rate(r["mbps"]),
                "0",
                "",
                "",
                f_rss(r["peak_rss"]),
                f"best of {r['runs']}",
            ]
        )
    for c in s.get("checkouts", []):
        rows.append(
            [
                f"checkout {c['version']}",
                f_mb(c["bytes"]),
                f_s(c["seconds"]),
                f_rate(c["mbps"]),
                "",
                "",
                "",
                f_rss(c["peak_rss"]),
                f"best of {c['runs']}; BLAKE3 verified",
            ]
        )
    header = ["step", "MB", "s", "MB/s", "new MB", "% of v1", "stored MB", "RSS MB", "notes"]
    title = f"{kind.upper()} series: five versions of {s.get('path', '?')} in one repository"
    return title + "\n" + text_table(header, rows)


def format_report(result: dict[str, Any]) -> str:
    """The human-readable report of a result dictionary."""
    ctx = result["context"]
    parts: list[str] = []
    noise = ctx.get("noise")
    noise_s = (
        f"other processes used {noise['other_cores']:.2f} cores, steal {noise['steal_cores']:.2f}"
        + (" - NOISY, rerun for clean figures" if noise["other_cores"] > 0.1 else "")
        if noise
        else "noise unknown"
    )
    parts.append(
        f"reprocas repository benchmark - {ctx['date']} - {ctx['cpu']} x {ctx['cores']} cores\n"
        f"scale {ctx['scale']:g}, seed {ctx['seed']}, repeat {ctx['repeat']}, "
        f"first-commit repeat {ctx['first_repeat']}; wall {ctx.get('wall_seconds', 0):.0f} s; "
        f"{noise_s}\nMB = 10^6 bytes; peak RSS by {ctx['rss_method']}; every reprocas figure is "
        "a whole CLI process (start-up included)"
    )
    refs = result.get("references") or {}
    if "zstd_mbps" in refs:
        lines = [
            [
                f"zstd -{refs['level']} compress, 1 thread, one frame",
                f_rate(refs["zstd_mbps"]),
                f"{f_mb(refs['bytes'])} MB -> {f_mb(refs['zstd_bytes'])} MB "
                f"({refs['zstd_ratio']:.2f}x)",
            ],
            ["zstd decompress, 1 thread", f_rate(refs["zstd_dec_mbps"]), ""],
        ]
        if "zstd_t2_mbps" in refs:
            lines.append(
                [
                    f"zstd -{refs['level']} -T2 (the zstd command, 2 threads)",
                    f_rate(refs["zstd_t2_mbps"]),
                    "process start-up included",
                ]
            )
        if "blake3_mbps" in refs:
            lines.append(["BLAKE3, 1 thread", f_rate(refs["blake3_mbps"]), ""])
        if "cli_startup_seconds" in refs:
            lines.append(
                [
                    "CLI start-up (reprocas log --json)",
                    "",
                    f"{f_s(refs['cli_startup_seconds'])} s, "
                    f"{f_rss(refs['cli_startup_rss'])} MB RSS",
                ]
            )
        parts.append(
            f"Reference rates on {Path(refs['file']).name} (best of {refs['repeat']})\n"
            + text_table(["reference", "MB/s", "notes"], lines)
        )
    n = ctx["cores"]
    commit_min = COMMIT_FACTOR * refs["zstd_mbps"] * n if "zstd_mbps" in refs else None
    for kind, s in (result.get("series") or {}).items():
        if s:
            parts.append(_series_table(kind, s, commit_min))
    restic = result.get("restic") or {}
    if restic.get("versions"):
        ours = ((result.get("series") or {}).get("csv") or {}).get("versions", [])
        rows = []
        for i, v in enumerate(restic["versions"]):
            o = ours[i] if i < len(ours) else None
            rows.append(
                [
                    v["version"],
                    f_s(v["seconds"]),
                    f_rate(v["mbps"]),
                    f_mb(v["added_bytes"]),
                    f_pct(v["cost_pct_of_v1"]) if i else "100%",
                    f_mb(v["repo_bytes"]),
                    f_mb(o["stored_bytes"]) if o else "-",
                    f"{o['stored_bytes'] / v['repo_bytes']:.3f}" if o else "-",
                    f_pct(o.get("cost_pct_of_v1")) if o and i else ("100%" if o else "-"),
                    f_rss(v["peak_rss"]),
                ]
            )
        header = [
            "version", "restic s", "MB/s", "added MB", "% of v1", "repo MB", "ours MB",
            "ours/restic", "ours % v1", "RSS MB",
        ]  # fmt: skip
        parts.append(
            f"restic on the CSV series ({restic.get('version', '?')}, repository version "
            f"{restic.get('repository_version', '?')}, default compression); sizes are the "
            "files in each repository\n" + text_table(header, rows)
        )
    elif restic:
        parts.append("restic: " + str(restic.get("note") or restic.get("skipped") or "no data"))
    small = result.get("small_files") or {}
    if "commit" in small:
        rows = []
        c = small["commit"]
        rows.append(
            [
                "first commit",
                f_s(c["seconds"]),
                f_rate(c["mbps"]),
                f"{c['files_per_s']:.0f}",
                f_rss(c["peak_rss"]),
                f"best of {c['runs']}; {f_mb(c['new_bytes'])} MB new",
            ]
        )
        if "recommit" in small:
            r = small["recommit"]
            rows.append(
                [
                    "re-commit, unchanged",
                    f_s(r["seconds"]),
                    "",
                    f"{r['files_per_s']:.0f}",
                    f_rss(r["peak_rss"]),
                    f"best of {r['runs']}; target < {RECOMMIT_SMALL_MAX_S:g} s"
                    + (
                        f"; CLI start-up alone {f_s(refs['cli_startup_seconds'])} s"
                        if "cli_startup_seconds" in refs
                        else ""
                    ),
                ]
            )
        if "copy" in small:
            k = small["copy"]
            rows.append(
                [
                    f"{k['how']} of the tree (floor, not reprocas)",
                    f_s(k["seconds"]),
                    f_rate(k["mbps"]),
                    f"{k['files_per_s']:.0f}",
                    "",
                    f"best of {k['runs']}; same filesystem as the checkout",
                ]
            )
        if "checkout" in small:
            k = small["checkout"]
            rows.append(
                [
                    "checkout",
                    f_s(k["seconds"]),
                    f_rate(k["mbps"]),
                    f"{k['files_per_s']:.0f}",
                    f_rss(k["peak_rss"]),
                    f"best of {k['runs']}; every file's BLAKE3 verified"
                    + (
                        f"; {k['seconds'] / small['copy']['seconds']:.2f} x cp time"
                        if "copy" in small
                        else ""
                    ),
                ]
            )
        parts.append(
            f"Small files: {small['files']} files, {f_mb(small['bytes'])} MB, stored "
            f"{f_mb(small.get('stored_bytes'))} MB\n"
            + text_table(["step", "s", "MB/s", "files/s", "RSS MB", "notes"], rows)
        )
    targets = result.get("targets") or []
    if targets:
        rows = []
        for t in targets:
            value, limit = t["value"], t["limit"]
            fmt = f_rate if t["unit"] == "MB/s" else (lambda x: "-" if x is None else f"{x:.3g}")
            rows.append(
                [
                    t["what"],
                    f"{fmt(value)} {t['unit']}",
                    f"{t['op']} {fmt(limit)}",
                    f"{value / limit:.2f}" if value is not None and limit else "-",
                    {True: "yes", False: "NO", None: "?"}[t["meets"]],
                    t["basis"],
                ]
            )
        parts.append(
            "Targets\n"
            + text_table(["figure", "value", "target", "value/target", "meets", "basis"], rows)
        )
    if result.get("errors"):
        parts.append("FAILED STEPS\n" + "\n".join(f"* {e}" for e in result["errors"]))
    if ctx.get("kept"):
        parts.append(f"repositories kept in {ctx['work_dir']}")
    return "\n\n".join(parts)


# --- driver ---------------------------------------------------------------------------


@contextlib.contextmanager
def step(result: dict[str, Any], name: str) -> Iterator[None]:
    """Run a step; a failure is recorded in ``result["errors"]`` and the run goes on."""
    progress(f"{name} ...")
    started = time.perf_counter()
    try:
        yield
    except KeyboardInterrupt:
        raise
    except Exception as exc:
        kind = "" if isinstance(exc, StepError) else f"{type(exc).__name__}: "
        message = f"{name}: {kind}{exc}"
        result["errors"].append(message)
        progress(f"  FAILED after {time.perf_counter() - started:.1f} s: {kind}{exc}")
    else:
        progress(f"  done in {time.perf_counter() - started:.1f} s")


def _cpu_model() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Every step; returns the result dictionary (``errors`` lists what failed)."""
    data_dir = Path(args.data_dir)
    data_dir.mkdir(parents=True, exist_ok=True)
    exe = Path(sys.executable).with_name("reprocas")
    scratch_parent = Path(args.work_dir) if args.work_dir else data_dir
    scratch_parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="bench-repo-", dir=scratch_parent)).resolve()
    runner = Runner(work)
    cli = Cli(runner, exe)
    result: dict[str, Any] = {
        "context": {
            "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
            "cpu": _cpu_model(),
            "cores": cores(),
            "python": platform.python_version(),
            "scale": args.scale,
            "seed": args.seed,
            "repeat": args.repeat,
            "first_repeat": args.first_commit_repeat,
            "level": DEFAULT_LEVEL,
            "rss_method": runner.rss_method,
            "reprocas": str(exe),
            "work_dir": str(work),
            "kept": args.keep,
        },
        "references": {},
        "series": {},
        "restic": {},
        "small_files": {},
        "errors": [],
    }
    noise = Noise()
    started = time.perf_counter()
    try:
        if not exe.exists():
            raise StepError(f"{exe} does not exist: install the project (make build)")
        series: dict[str, list[Path]] = {}
        with step(result, f"data: clinical series at scale {args.scale:g}"):
            series = generate.ensure_series(data_dir, args.scale, args.seed)
            result["context"]["series"] = {k: [str(p) for p in v] for k, v in series.items()}
        if series:
            with step(result, "reference rates (zstd, BLAKE3) on v1.csv"):
                measure_references(series["csv"][0], args.repeat, result["references"])
            for kind in ("csv", "parquet"):
                out: dict[str, Any] = {}
                result["series"][kind] = out
                with step(result, f"{kind} series: 5 commits, re-commit, 2 checkouts"):
                    bench_series(
                        kind,
                        series[kind],
                        work,
                        cli,
                        args.repeat,
                        args.first_commit_repeat,
                        out,
                        startup=result["references"] if kind == "csv" else None,
                    )
                if not args.keep:
                    remove(work / f"{kind}-repo")
                    remove(work / f"{kind}-src")
            if args.skip_restic:
                result["restic"] = {"skipped": "--skip-restic given"}
            else:
                with step(result, "restic on the CSV series"):
                    bench_restic(series["csv"], work, runner, result["restic"])
                if not args.keep:
                    remove(work / "restic-repo")
        tree: Path | None = None
        with step(result, f"data: {args.small_files} small files"):
            tree = ensure_small_files(data_dir, args.small_files, args.seed)
        if tree is not None:
            with step(result, "small files: commit, re-commit, checkout"):
                bench_small_files(
                    tree, work, cli, args.repeat, args.first_commit_repeat, result["small_files"]
                )
    except StepError as exc:
        result["errors"].append(str(exc))
        progress(f"FAILED: {exc}")
    finally:
        result["context"]["noise"] = noise.report()
        result["context"]["wall_seconds"] = time.perf_counter() - started
        if args.keep:
            progress(f"kept repositories and sources in {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    if cli.rss:
        result["reprocas_peak_rss"] = {"max": max(cli.rss), "commands": len(cli.rss)}
    result["targets"] = compute_targets(result)
    return result


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    """The command line."""
    p = argparse.ArgumentParser(
        prog="python -m benchmarks.bench_repo",
        description="Benchmark reprocas commits, checkouts and stored size on versioned "
        "datasets (CLI subprocesses), against zstd/BLAKE3 rates and restic.",
    )
    p.add_argument("--scale", type=float, default=1.0, help="1.0: v1 CSV is ~500 MB")
    p.add_argument("--data-dir", default="bench-data", help="generated data and scratch repos")
    p.add_argument(
        "--work-dir",
        help="where the scratch repositories go (default: the data dir); keep it on the "
        "data dir's filesystem so versions are hard-linked, not copied",
    )
    p.add_argument("--seed", type=int, default=1, help="generator seed")
    p.add_argument("--small-files", type=int, default=10_000, help="files in the small tree")
    p.add_argument("--repeat", type=int, default=3, help="runs of cheap steps (best is reported)")
    p.add_argument(
        "--first-commit-repeat",
        type=int,
        default=2,
        help="runs of each first commit (extra runs go to throwaway repositories)",
    )
    p.add_argument("--json", action="store_true", help="print the results as JSON")
    p.add_argument("--skip-restic", action="store_true", help="skip the restic comparison")
    p.add_argument("--keep", action="store_true", help="keep the repositories made")
    p.add_argument("--from-json", metavar="FILE", help="print the report of an earlier --json run")
    args = p.parse_args(argv)
    if args.scale <= 0 or args.repeat < 1 or args.first_commit_repeat < 1 or args.small_files < 1:
        p.error("--scale, --repeat, --first-commit-repeat and --small-files must be positive")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark and print the report (or JSON); 1 if any step failed."""
    args = parse_args(argv)
    if args.from_json:
        print(format_report(json.loads(Path(args.from_json).read_text())))
        return 0
    try:
        result = run(args)
    except KeyboardInterrupt:
        progress("interrupted")
        return 130
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print(format_report(result))
    return 1 if result["errors"] else 0


if __name__ == "__main__":
    sys.exit(main())
