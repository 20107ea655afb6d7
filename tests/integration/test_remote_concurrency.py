"""Many writers, one remote, no lock server (issue 18): two machines pushing new versions
of one dataset at the same moment, twenty times over, and pushes killed at random
moments — the remote never loses a version or shows a ref whose data is missing.

Run against both remotes of ``remote_url`` (a directory, and moto S3 on loopback with
its conditional PUTs atomic, as S3's are), and in-process against the extension's
atomic in-memory store, with the pushes in threads."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

import reprocas
from reprocas.remote import protocol as P
from reprocas.remote.backend import Backend, RemoteNotFound
from reprocas.remote.config import RemoteConfig
from reprocas.remote.push import push
from reprocas.remote.registry import open_backend
from reprocas.remote.s3 import S3Backend
from reprocas.store.repository import Repository
from tests.integration._helpers import assert_ok, cli_argv, run_cli

ROUNDS = 20


def _csv(path: Path, rows: int, seed: int) -> None:
    r = random.Random(seed)
    path.write_text("".join(f"{i},{r.random():.6f},{r.choice('abc')}\n" for i in range(rows)))


def _commit(repo: Path, data: Path, seed: int, rows: int = 1500) -> str:
    _csv(data, rows, seed)
    with reprocas.Repo.open_repo(repo) as r:
        return r.commit(data, "clin").id.hex


def _push_cmd(repo: Path) -> list[str]:
    return cli_argv(["push", "--json"], repo)


def _versions(repo: Path) -> dict[int, str]:
    """Version number -> snapshot id of dataset clin."""
    rows = assert_ok(run_cli("log", "clin", "--json", repo=repo)).json()
    return {int(v["ref"].rsplit("@v", 1)[1]): str(v["id"]) for v in rows}


def _options(opts: list[str]) -> dict[str, str]:
    return dict(o.split("=", 1) for o in opts if o != "--option")


def assert_remote_sound(backend: Backend, repo: Repository) -> dict[str, bytes]:
    """Every ref on the remote names an object some segment lists, and every pack a
    segment lists is there: no ref whose data is missing."""
    state = P.LocalState(repo, "soundness-check")
    cat = P.Catalogue()
    P.sync_segments(backend, state, cat, full=True)
    refs = P.read_refs(backend)
    for name, ref in refs.items():
        assert ref.id in cat.objects, f"remote ref {name} names {ref.id.hex()}, in no segment"
    present = {i.key for i in backend.list(P.PACKS)}
    for pid in cat.packs:
        assert P.pack_key(pid) in present, f"a segment lists pack {pid.hex()}, not on the remote"
    return {k: v.id for k, v in refs.items()}


def test_two_writers_push_at_once_twenty_times(
    tmp_path: Path, remote_url: tuple[str, list[str]]
) -> None:
    url, opts = remote_url
    a, b, data = tmp_path / "a", tmp_path / "b", tmp_path / "d.csv"
    assert_ok(run_cli("init", repo=a))
    _commit(a, data, 0)
    assert_ok(run_cli("remote", "add", "origin", url, *opts, repo=a))
    assert_ok(run_cli("push", repo=a))
    assert_ok(run_cli("clone", url, b, *opts, repo=None))
    made: set[str] = set()
    for n in range(ROUNDS):
        made |= {_commit(a, data, 1000 + n), _commit(b, data, 2000 + n)}
        procs = [subprocess.Popen(_push_cmd(r), stdout=subprocess.PIPE) for r in (a, b)]
        outs = [p.communicate(timeout=120) for p in procs]
        assert [p.returncode for p in procs] == [0, 0], outs
        statuses = sorted(
            r["status"]
            for out, _ in outs
            for r in json.loads(out)["refs"]
            if r["ref"].startswith("ds:clin:v:") and r["status"] != "up-to-date"
        )
        # One took the next number; the other lost the create and took the one after.
        assert statuses == ["created", "renumbered"], (n, outs)
        pulls = [
            subprocess.Popen(
                cli_argv(["pull"], r),
                stdout=subprocess.DEVNULL,
            )
            for r in (a, b)
        ]
        assert [p.wait(timeout=120) for p in pulls] == [0, 0]
    c = tmp_path / "c"
    assert_ok(run_cli("clone", url, c, *opts, repo=None))
    assert_ok(run_cli("verify", "--read-data", repo=c))
    versions = _versions(c)
    assert sorted(versions) == list(range(1, 2 * ROUNDS + 2))  # no gaps, none twice
    assert made <= set(versions.values())  # nothing lost
    assert _versions(a) == versions == _versions(b)


class _Shared(S3Backend):
    """One atomic in-memory store (the extension's) seen by several pushes."""

    def __init__(self, store: Any) -> None:
        self.bucket, self.prefix, self._root = "memory", "", ""
        self.url, self.options, self._store = "memory://shared", {}, store


def _push_in_thread(
    go: threading.Barrier,
    repo: Repository,
    rc: RemoteConfig,
    store: Any,
    reports: list[Any],
    k: int,
    errors: list[BaseException],
) -> None:
    try:
        go.wait()
        reports[k] = push(repo, rc, backend=_Shared(store))
    except BaseException as exc:
        errors.append(exc)


def test_two_writers_against_an_atomic_store_in_threads(tmp_path: Path) -> None:
    store = reprocas._core.ObjectStore.in_memory("memory://shared")
    rc = RemoteConfig("origin", "memory://shared")
    repos, data = [tmp_path / "a", tmp_path / "b"], tmp_path / "d.csv"
    for r in repos:
        reprocas.Repo.init(r).close()
    made: set[str] = set()
    for n in range(ROUNDS):
        for k, r in enumerate(repos):
            made.add(_commit(r, data, 100 * k + n))
        stores = [Repository.open(r) for r in repos]
        reports: list[Any] = [None, None]
        errors: list[BaseException] = []
        go = threading.Barrier(2)

        threads = [
            threading.Thread(
                target=_push_in_thread, args=(go, stores[k], rc, store, reports, k, errors)
            )
            for k in (0, 1)
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=120)
        assert not errors, errors
        # Neither pulls between rounds, so both may lose their number and move on.
        statuses = [r.status for rep in reports for r in rep.refs if r.status != "up-to-date"]
        assert set(statuses) <= {"created", "renumbered"} and len(statuses) == 2
        for s in stores:
            assert_remote_sound(_Shared(store), s)
            s.close()
    # Every version pushed holds a distinct number, none lost.
    refs = P.read_refs(_Shared(store), "ds:clin:v:")
    ids = [r.id.hex() for r in refs.values()]
    assert len(ids) == len(set(ids)) == 2 * ROUNDS
    assert made == set(ids)
    numbers = sorted(int(k.rsplit(":", 1)[1]) for k in refs)
    assert numbers == list(range(1, 2 * ROUNDS + 1))


def test_push_killed_at_random_moments(tmp_path: Path, remote_url: tuple[str, list[str]]) -> None:
    url, opts = remote_url
    repo, data = tmp_path / "a", tmp_path / "d.csv"
    assert_ok(run_cli("init", repo=repo))
    assert_ok(run_cli("remote", "add", "origin", url, *opts, repo=repo))
    backend = open_backend(url, _options(opts))
    rng = random.Random(18)
    # How long a push of one new version takes here, to spread the kills over it.
    _commit(repo, data, 0, rows=20000)
    t0 = time.monotonic()
    assert_ok(run_cli("push", repo=repo))
    span = max(0.3, time.monotonic() - t0)
    killed = 0
    for n in range(ROUNDS):
        _commit(repo, data, 1 + n, rows=20000)
        proc = subprocess.Popen(
            _push_cmd(repo), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        # Within the first 60% of a push's time: a push runs a little faster or slower
        # than the one timed, and a kill after its end tests nothing.
        time.sleep(rng.uniform(0.05, 0.6 * span))
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
            killed += 1
        proc.wait(timeout=60)
        with Repository.open(repo) as store:
            assert_remote_sound(backend, store)
        if n % 4 == 3:  # now and then the push that follows completes, and reuses
            before = {i.key for i in backend.list(P.PACKS)}
            out = assert_ok(run_cli("push", "--json", repo=repo)).json()
            after = {i.key for i in backend.list(P.PACKS)}
            # Packs a killed push left are not sent again.
            assert out["uploaded_packs"] == len(after - before), out
    assert killed >= ROUNDS // 2  # the kills did land mid-push
    assert_ok(run_cli("push", repo=repo))
    with Repository.open(repo) as store:
        refs = assert_remote_sound(backend, store)
    assert len([r for r in refs if r.startswith("ds:clin:v:")]) == ROUNDS + 1
    clone = tmp_path / "clone"
    assert_ok(run_cli("clone", url, clone, *opts, repo=None))
    assert_ok(run_cli("verify", "--read-data", repo=clone))
    assert _versions(clone) == _versions(repo)
    # Sessions of killed pushes stay until they go stale; nothing else is left over.
    try:
        backend.head(P.MARKER_KEY)
    except RemoteNotFound as exc:  # pragma: no cover - the marker is always there
        raise AssertionError("remote marker missing") from exc
