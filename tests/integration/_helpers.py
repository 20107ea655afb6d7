"""Helpers shared by the integration tests: running the CLI as a real process,
checking one-line errors, checking out and comparing versions."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import reprocas
from tests.conftest import TEST_FORMAT
from tests.integration.trees import Entry, describe, diff

REPROCAS = Path(sys.executable).with_name("reprocas")
"""The installed console script (there is no ``python -m reprocas`` yet)."""

PROJECT_ROOT = Path(__file__).resolve().parents[2]


def find_python(wanted: Callable[[tuple[int, int]], bool]) -> tuple[Path, tuple[int, int]] | None:
    """The oldest installed CPython whose (major, minor) satisfies ``wanted``: looked
    for on PATH (python3.N), under pyenv and under uv's managed interpreters."""
    import glob
    import shutil

    found: set[Path] = set()
    for minor in range(6, 20):
        w = shutil.which(f"python3.{minor}")
        if w:
            found.add(Path(w))
    roots = [os.environ.get("PYENV_ROOT", ""), os.path.expanduser("~/.pyenv")]
    for root in filter(None, roots):
        found.update(Path(p) for p in glob.glob(f"{root}/versions/*/bin/python3.*[0-9]"))
    uv = os.path.expanduser("~/.local/share/uv/python")
    found.update(Path(p) for p in glob.glob(f"{uv}/*/bin/python3.*[0-9]"))
    versions: list[tuple[tuple[int, int], Path]] = []
    for exe in sorted(found):
        try:
            out = subprocess.run(
                [str(exe), "-c", "import sys; print(*sys.version_info[:2])"],
                capture_output=True,
                timeout=30,
                check=True,
            ).stdout.split()
        except (OSError, subprocess.SubprocessError):
            continue
        version = (int(out[0]), int(out[1]))
        if wanted(version):
            versions.append((version, exe))
    if not versions:
        return None
    version, exe = min(versions)
    return exe, version


@dataclass(frozen=True, slots=True)
class CliResult:
    args: tuple[str, ...]
    returncode: int
    stdout: bytes
    stderr: bytes

    @property
    def out(self) -> str:
        return self.stdout.decode("utf-8", "replace")

    @property
    def err(self) -> str:
        return self.stderr.decode("utf-8", "replace")

    def json(self) -> Any:
        assert self.returncode == 0, self.describe()
        return json.loads(self.stdout)

    def describe(self) -> str:
        return (
            f"reprocas {' '.join(self.args)} -> exit {self.returncode}\n"
            f"--- stdout ---\n{self.out[-3000:]}\n--- stderr ---\n{self.err[-3000:]}"
        )


def clean_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment for a CLI process: no REPROCAS_REPO unless given."""
    env = {k: v for k, v in os.environ.items() if k != "REPROCAS_REPO"}
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    if extra:
        env.update(extra)
    return env


def cli_argv(args: Sequence[str | os.PathLike[str]], repo: Path | None = None) -> list[str]:
    argv = [str(REPROCAS)]
    if repo is not None:
        argv += ["--repo", str(repo)]
    rest = [os.fspath(a) for a in args]
    if TEST_FORMAT is not None and rest[:1] == ["init"] and "--format" not in rest:
        rest[1:1] = ["--format", str(TEST_FORMAT)]
    return argv + rest


def run_cli(
    *args: str | os.PathLike[str],
    repo: Path | None = None,
    cwd: Path | None = None,
    env: Mapping[str, str] | None = None,
    timeout: float = 120,
) -> CliResult:
    """Run ``reprocas [--repo REPO] ARGS...`` as a separate process."""
    argv = cli_argv(args, repo)
    proc = subprocess.run(
        argv,
        cwd=cwd,
        env=clean_env(env),
        capture_output=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
        check=False,
    )
    return CliResult(tuple(argv[1:]), proc.returncode, proc.stdout, proc.stderr)


def assert_ok(res: CliResult) -> CliResult:
    assert res.returncode == 0, res.describe()
    assert "Traceback" not in res.err, res.describe()
    return res


def assert_one_line_error(res: CliResult, code: int, *needles: str) -> str:
    """The command failed with ``code`` and exactly one 'reprocas: error: ...' line on
    stderr (no traceback) that contains every needle; returns that line."""
    assert res.returncode == code, res.describe()
    assert "Traceback" not in res.err, res.describe()
    lines = [ln for ln in res.err.splitlines() if ln.strip()]
    assert len(lines) == 1, f"expected one line on stderr\n{res.describe()}"
    line = lines[0]
    assert line.startswith("reprocas: error: "), res.describe()
    for n in needles:
        assert n in line, f"{n!r} not in the error line\n{res.describe()}"
    return line


def verify_ok(repo: Path | reprocas.Repo, *, read_data: bool = True) -> dict[str, Any]:
    """Verify (with ``read_data``) through the API and assert it is ok.

    Takes an open Repo, or a path to open (one process may not open one repository
    twice: LMDB refuses a second environment on the same files).
    """
    if isinstance(repo, reprocas.Repo):
        report = repo.verify(read_data=read_data)
    else:
        with reprocas.Repo.open(repo) as opened:
            report = opened.verify(read_data=read_data)
    data = report.to_json()
    assert report.ok, f"verify found problems: {data['problems']}"
    return data


def assert_checkout_equals(
    repo: reprocas.Repo, ref: str, expected: dict[str, Entry], dest: Path
) -> None:
    """Check ``ref`` out to the new directory ``dest`` and compare it with ``expected``."""
    repo.checkout(ref, dest)
    got = describe(dest)
    problems = diff(expected, got)
    assert not problems, f"checkout of {ref} differs:\n" + "\n".join(problems[:40])


def pack_files(repo_path: Path) -> set[Path]:
    return set((repo_path / "packs").glob("*/*.pack"))


def repository_bytes(repo_path: Path) -> Iterator[tuple[str, bytes]]:
    """Everything a repository holds, as ``(where, bytes)``: every raw file under
    ``repo_path`` (packs, index, logs), then every frame and object of every pack,
    decompressed. Searching these for a marker proves it is nowhere in the store."""
    from reprocas.native import core
    from reprocas.store.packs import read_blob, read_trailer

    for path in sorted(repo_path.rglob("*")):
        if path.is_file():
            yield str(path), path.read_bytes()
    for pack in sorted((repo_path / "packs").glob("*/*.pack")):
        trailer = read_trailer(pack)
        items = [
            (f.codec, read_blob(pack, f.offset, f.stored_len), f.raw_len) for f in trailer.frames
        ]
        items += [
            (o.codec, read_blob(pack, o.offset, o.stored_len), o.raw_len) for o in trailer.objects
        ]
        for i, data in enumerate(core.decompress_chunks(items)):
            yield f"{pack} item {i} (decompressed)", data


def where_in_repository(repo_path: Path, needle: bytes) -> list[str]:
    """Where in the repository (raw or decompressed, see :func:`repository_bytes`)
    ``needle`` occurs."""
    return [where for where, data in repository_bytes(repo_path) if needle in data]


def tmp_files(repo_path: Path) -> list[Path]:
    d = repo_path / "tmp"
    return sorted(d.iterdir()) if d.exists() else []


def log_json(repo_path: Path) -> list[dict[str, Any]]:
    with reprocas.Repo.open(repo_path) as repo:
        return [e.to_json() for e in repo.log()]


# --- a reader process for the concurrency tests ----------------------------------------


def entries_to_json(entries: dict[str, Entry]) -> dict[str, list[Any]]:
    return {p: [e.kind, e.mode, e.size, e.digest, e.target] for p, e in entries.items()}


def reader_main() -> None:
    """``python -c 'from tests.integration._helpers import reader_main; reader_main()'
    REPO EXPECTED.json STOPFILE OUT.json WORKDIR``

    Until STOPFILE exists: open the repository (as every CLI command does), read the
    log, check that it is consistent (versions v1..vN without gaps, each parent the
    version before, every id resolves), check out every version it lists and compare
    with EXPECTED (keyed by commit message). Writes a JSON report to OUT.
    """
    import shutil
    import time

    repo_path, expected_path, stop, out_path, work = (Path(a) for a in sys.argv[1:6])
    expected: dict[str, dict[str, list[Any]]] = json.loads(expected_path.read_text())
    errors: list[str] = []
    iterations = 0
    seen_refs: set[str] = set()
    checked_ids: set[str] = set()
    checkouts = 0
    n = 0
    while not stop.exists() and len(errors) < 20:
        iterations += 1
        try:
            with reprocas.Repo.open(repo_path) as repo:
                log = repo.log()
                by_ds: dict[str, list[Any]] = {}
                for e in log:
                    by_ds.setdefault(e.ref.split("@")[0], []).append(e)
                for name, entries in by_ds.items():
                    numbers = sorted(int(e.ref.rsplit("@v", 1)[1]) for e in entries)
                    if numbers != list(range(1, len(numbers) + 1)):
                        errors.append(f"{name}: version numbers {numbers} have a gap")
                    by_number = {int(e.ref.rsplit("@v", 1)[1]): e for e in entries}
                    for k, e in by_number.items():
                        want_parent = by_number[k - 1].id if k > 1 else None
                        if e.parent != want_parent:
                            errors.append(f"{e.ref}: parent {e.parent} != {want_parent}")
                        if repo.resolve(e.id[:12]).ref != e.ref:
                            errors.append(f"{e.ref}: its id prefix resolves elsewhere")
                for e in log:
                    seen_refs.add(e.ref)
                    if e.message not in expected:
                        errors.append(f"{e.ref}: unexpected message {e.message!r}")
                        continue
                    # The first version every time; the others once each.
                    if e.id in checked_ids and not e.ref.endswith("@v1"):
                        continue
                    checked_ids.add(e.id)
                    n += 1
                    dest = work / f"co-{n}"
                    repo.checkout(e.ref, dest)
                    got = entries_to_json(describe(dest))
                    checkouts += 1
                    shutil.rmtree(dest)
                    if got != expected[e.message]:
                        errors.append(f"{e.ref}: checkout differs from {e.message}")
        except Exception as exc:
            errors.append(f"{type(exc).__name__}: {exc}")
        time.sleep(0.005)
    out_path.write_text(
        json.dumps(
            {
                "iterations": iterations,
                "checkouts": checkouts,
                "errors": errors,
                "seen_refs": sorted(seen_refs),
            }
        )
    )


# --- proof that processes overlapped ------------------------------------------------------


class LockMonitor:
    """Samples /proc/locks from a thread: which processes hold (or wait for) a flock
    on one file, e.g. ``locks/gc.lock`` that every writer holds shared for its whole
    work. A test that claims processes worked at once asserts it with this, so it
    cannot pass by running them one after the other."""

    def __init__(self, path: Path, interval: float = 0.0005) -> None:
        import threading

        assert Path("/proc/locks").exists(), "LockMonitor needs Linux /proc/locks"
        self.path = path
        self.interval = interval
        self.samples: list[tuple[float, frozenset[int], frozenset[int]]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> LockMonitor:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _key(self) -> tuple[int, int, int] | None:
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            return None
        return (os.major(st.st_dev), os.minor(st.st_dev), st.st_ino)

    def _run(self) -> None:
        import time

        while not self._stop.is_set():
            key = self._key()
            if key is not None:
                holders: set[int] = set()
                waiters: set[int] = set()
                with open("/proc/locks") as f:
                    for line in f:
                        parts = line.split()
                        waiting = parts[1] == "->"
                        if waiting:
                            parts = parts[1:]
                        if len(parts) < 6 or parts[1] != "FLOCK":
                            continue
                        maj, mnr, ino = parts[5].split(":")
                        if (int(maj, 16), int(mnr, 16), int(ino)) != key:
                            continue
                        (waiters if waiting else holders).add(int(parts[4]))
                self.samples.append((time.monotonic(), frozenset(holders), frozenset(waiters)))
            time.sleep(self.interval)

    def max_holders(self, pids: set[int]) -> int:
        """The most of ``pids`` seen holding the lock at the same moment."""
        return max((len(h & pids) for _, h, _ in self.samples), default=0)

    def held_while_waited(self, holder: int, waiter: int) -> bool:
        """Whether ``waiter`` was seen blocked on the lock while ``holder`` held it."""
        return any(holder in h and waiter in w for _, h, w in self.samples)

    def ever_held_together(self, a: int, b: int) -> bool:
        return any(a in h and b in h for _, h, _ in self.samples)


# --- the undamaged-repository check ---------------------------------------------------------


def repo_state(repo_path: Path) -> dict[str, Any]:
    """Everything a failed command must leave as it was: every LMDB sub-database's
    keys and values, the ref log's bytes, the pack files (names and sizes) and the
    temporary files. Compare two with :func:`assert_repo_unchanged`."""
    with reprocas.Repo.open(repo_path) as repo:
        index = repo.store.index
        dbs: dict[str, list[tuple[bytes, bytes]]] = {}
        with index.read() as txn:
            for name, db in sorted(index.db.items()):
                dbs[name] = [(bytes(k), bytes(v)) for k, v in txn.cursor(db=db)]
    reflog = repo_path / "reflog"
    return {
        "index": dbs,
        "reflog": reflog.read_bytes() if reflog.exists() else None,
        "packs": {str(p.relative_to(repo_path)): p.stat().st_size for p in pack_files(repo_path)},
        "tmp": [p.name for p in tmp_files(repo_path)],
    }


def assert_repo_unchanged(repo_path: Path, before: dict[str, Any]) -> None:
    """The repository holds exactly what :func:`repo_state` saw before (index, log,
    packs, no new temporary files) and still verifies, data included."""
    after = repo_state(repo_path)
    for key in ("reflog", "packs", "tmp"):
        assert after[key] == before[key], f"the failed command changed the repository's {key}"
    for name, entries in before["index"].items():
        assert after["index"].get(name) == entries, f"the failed command changed index/{name}"
    assert set(after["index"]) == set(before["index"])
    verify_ok(repo_path, read_data=True)


def assert_nothing_committed(repo: reprocas.Repo, refs: list[str]) -> None:
    """After a refused write through an open Repo: the log lists exactly ``refs``, no
    temporary file is left and the repository verifies, data included."""
    assert sorted(e.ref for e in repo.log()) == sorted(refs)
    assert tmp_files(repo.store.root) == [], "the refused write left temporary files"
    verify_ok(repo, read_data=True)


def git(cwd: Path, *args: str) -> str:
    """Run git in ``cwd`` with a fixed identity; its stripped stdout."""
    proc = subprocess.run(
        ["git", "-c", "user.name=Test", "-c", "user.email=test@example.com", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        check=True,
        stdin=subprocess.DEVNULL,
    )
    return proc.stdout.strip()


# --- every byte a repository stores, decoded (the purge tests) ---------------------------


@dataclass
class StoredBytes:
    """Every file under a repository, raw, and every blob of every pack file decoded:
    plain and zstd frames, objects, and delta frames (decoded against their bases,
    found by digest in any pack, as many rounds as chains are deep)."""

    files: dict[Path, bytes]
    blobs: dict[tuple[Path, int], bytes]  # (pack, offset) -> decoded frame or object
    chunks: dict[bytes, bytes]  # digest -> bytes, of every chunk some pack holds
    delta_bases: dict[tuple[Path, int], tuple[bytes, ...]]
    frames: dict[tuple[Path, int], tuple[bytes, ...]]  # the chunks of each frame
    undecodable: list[tuple[Path, int]]  # delta frames whose bases are in no pack

    def where(self, needle: bytes) -> list[str]:
        """Every place ``needle`` occurs: a file's raw bytes or a decoded blob."""
        found = [f"file {p}" for p, data in self.files.items() if needle in data]
        found += [f"{p}@{off}" for (p, off), data in self.blobs.items() if needle in data]
        return found


def stored_bytes(repo_path: Path) -> StoredBytes:
    """Read everything under ``repo_path`` (see :class:`StoredBytes`)."""
    from reprocas.native import core
    from reprocas.store.packs import CODEC_DELTA, read_trailer

    files = {p: p.read_bytes() for p in sorted(repo_path.rglob("*")) if p.is_file()}
    out = StoredBytes(files, {}, {}, {}, {}, [])
    pending: list[tuple[Path, Any]] = []
    for path, data in files.items():
        if path.suffix != ".pack":
            continue
        trailer = read_trailer(path)
        for o in trailer.objects:
            blob = data[o.offset : o.offset + o.stored_len]
            [raw] = core.decompress_chunks([(o.codec, blob, o.raw_len)])
            out.blobs[(path, o.offset)] = raw
        for f in trailer.frames:
            out.frames[(path, f.offset)] = tuple(d for d, _, _ in f.chunks)
            if f.codec == CODEC_DELTA:
                out.delta_bases[(path, f.offset)] = f.bases
                pending.append((path, f))
                continue
            blob = data[f.offset : f.offset + f.stored_len]
            [raw] = core.decompress_chunks([(f.codec, blob, f.raw_len)])
            out.blobs[(path, f.offset)] = raw
            for d, off, n in f.chunks:
                out.chunks[d] = raw[off : off + n]
    while pending:
        ready = [(p, f) for p, f in pending if all(b in out.chunks for b in f.bases)]
        if not ready:
            break
        for path, f in ready:
            prefix = b"".join(out.chunks[b] for b in f.bases)
            blob = files[path][f.offset : f.offset + f.stored_len]
            [raw] = core.decompress_chunks([(f.codec, blob, f.raw_len, prefix)])
            out.blobs[(path, f.offset)] = raw
            for d, off, n in f.chunks:
                out.chunks[d] = raw[off : off + n]
        pending = [x for x in pending if x not in ready]
    out.undecodable = [(p, f.offset) for p, f in pending]
    return out
