"""Prune on a remote (issue 18): two-phase, server clock, no lock files. Packs a dead
push left are marked, then swept after the grace period; a push running during the
prune — reusing those very packs — loses nothing."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

from reprocas.remote import protocol as P
from reprocas.remote.backend import Backend, ObjectInfo
from reprocas.remote.config import get as remote_config
from reprocas.remote.prune import prune
from reprocas.remote.pull import pull
from reprocas.remote.push import push
from reprocas.remote.registry import open_backend
from reprocas.store.repository import Repository
from tests.integration._helpers import assert_ok, run_cli
from tests.integration.test_remote_concurrency import _commit, _options, assert_remote_sound


class _Delegate(Backend):
    def __init__(self, inner: Backend) -> None:
        self.inner, self.url = inner, inner.url

    def put_if_absent(self, key: str, data: bytes) -> str:
        return self.inner.put_if_absent(key, data)

    def put_if_match(self, key: str, data: bytes, etag: str | None) -> str:
        return self.inner.put_if_match(key, data, etag)

    def put(self, key: str, data: bytes) -> str:
        return self.inner.put(key, data)

    def put_files_if_absent(self, items: Sequence[tuple[str, Path]]) -> list[bool]:
        return self.inner.put_files_if_absent(items)

    def get(self, key: str, start: int | None = None, end: int | None = None) -> bytes:
        return self.inner.get(key, start, end)

    def get_with_etag(self, key: str) -> tuple[bytes, str]:
        return self.inner.get_with_etag(key)

    def get_to_file(self, key: str, path: Path) -> int:
        return self.inner.get_to_file(key, path)

    def head(self, key: str) -> ObjectInfo:
        return self.inner.head(key)

    def list(self, prefix: str, start_after: str | None = None) -> Iterator[ObjectInfo]:
        return self.inner.list(prefix, start_after)

    def delete(self, key: str) -> None:
        self.inner.delete(key)


class _DiesBeforeItsSegment(_Delegate):
    """A push that uploads its packs and then dies (as SIGKILL would, deterministically)."""

    def put_if_absent(self, key: str, data: bytes) -> str:
        if key.startswith(P.INDEX):
            raise SystemExit("killed")
        return super().put_if_absent(key, data)


class _PausesAfterFindingPacks(_Delegate):
    """A push that, having found a dead push's packs present, pauses (a slow network)
    before it writes the segment that lists them: the moment a sweep could strike."""

    def __init__(self, inner: Backend, found: threading.Event) -> None:
        super().__init__(inner)
        self.found = found

    def list(self, prefix: str, start_after: str | None = None) -> Iterator[ObjectInfo]:
        rows = list(self.inner.list(prefix, start_after))
        if prefix.startswith(P.PACKS) and not self.found.is_set():
            self.found.set()
            time.sleep(0.6)
        return iter(rows)


def _setup(tmp_path: Path, remote_url: tuple[str, list[str]]) -> tuple[Path, Backend, Path]:
    url, opts = remote_url
    repo, data = tmp_path / "a", tmp_path / "d.csv"
    assert_ok(run_cli("init", repo=repo))
    assert_ok(run_cli("remote", "add", "origin", url, *opts, repo=repo))
    _commit(repo, data, 1, rows=8000)
    assert_ok(run_cli("push", repo=repo))
    return repo, open_backend(url, _options(opts)), data


def _orphans(repo: Path, backend: Backend, data: Path, seed: int) -> set[str]:
    """Commit a version and push it with a push that dies before its segment."""
    before = {i.key for i in backend.list(P.PACKS)}
    _commit(repo, data, seed, rows=8000)
    with Repository.open(repo) as store:
        rc = remote_config(store, "origin")
        try:
            push(store, rc, backend=_DiesBeforeItsSegment(backend))
        except SystemExit:
            pass
        else:  # pragma: no cover
            raise AssertionError("the push should have died")
    left = {i.key for i in backend.list(P.PACKS)} - before
    assert left, "the dead push uploaded packs"
    return left


def test_prune_marks_then_sweeps_after_the_grace(
    tmp_path: Path, remote_url: tuple[str, list[str]]
) -> None:
    repo, backend, data = _setup(tmp_path, remote_url)
    orphans = _orphans(repo, backend, data, 2)
    # A grace under 1 h needs the explicit flag.
    refused = run_cli("remote", "prune", "--grace", "1s", repo=repo)
    assert refused.returncode == 2 and "--allow-short-grace" in refused.err
    first = assert_ok(
        run_cli("remote", "prune", "--grace", "2s", "--allow-short-grace", "--json", repo=repo)
    ).json()
    assert set(first["marked"]) == orphans and first["deleted"] == []
    waiting = assert_ok(
        run_cli("remote", "prune", "--grace", "1h", "--allow-short-grace", "--json", repo=repo)
    ).json()
    assert waiting["deleted"] == [] and len(waiting["waiting"]) == 1
    time.sleep(2.2)
    swept = assert_ok(
        run_cli("remote", "prune", "--grace", "2s", "--allow-short-grace", "--json", repo=repo)
    ).json()
    assert set(swept["deleted"]) == orphans and swept["deleted_bytes"] > 0
    assert not ({i.key for i in backend.list(P.PACKS)} & orphans)
    with Repository.open(repo) as store:
        assert_remote_sound(backend, store)
    # The version the dead push meant to send goes up whole with the next push.
    out = assert_ok(run_cli("push", "--json", repo=repo)).json()
    assert out["uploaded_packs"] == len(orphans)
    url, opts = remote_url
    clone = tmp_path / "clone"
    assert_ok(run_cli("clone", url, clone, *opts, repo=None))
    assert_ok(run_cli("verify", "--read-data", repo=clone))


def _prune_loop(
    store: Repository, start: threading.Event, stop: threading.Event, errors: list[BaseException]
) -> None:
    try:
        rc = remote_config(store, "origin")
        start.wait(60)
        while not stop.is_set():
            prune(store, rc, grace_ns=0)  # no grace at all: the sessions must protect
    except BaseException as exc:
        errors.append(exc)


def test_prune_during_a_push_that_reuses_marked_packs_loses_nothing(
    tmp_path: Path, remote_url: tuple[str, list[str]]
) -> None:
    repo, backend, data = _setup(tmp_path, remote_url)
    for n in range(3):
        orphans = _orphans(repo, backend, data, 10 + n)
        with Repository.open(repo) as store:
            rc = remote_config(store, "origin")
            marked = prune(store, rc, grace_ns=0)  # marks the orphans (sweeps nothing yet)
            assert set(marked.marked) == orphans
            found, stop = threading.Event(), threading.Event()
            errors: list[BaseException] = []
            pruner = threading.Thread(target=_prune_loop, args=(store, found, stop, errors))
            pruner.start()
            # This push finds the orphans present, pauses while the pruner sweeps with no
            # grace at all, then lists them in its segment: they must still be there.
            report = push(store, rc, backend=_PausesAfterFindingPacks(backend, found))
            stop.set()
            pruner.join(timeout=120)
            assert not errors, errors
            assert report.present_packs == len(orphans) and report.uploaded_packs == 0
            assert_remote_sound(backend, store)
    url, opts = remote_url
    clone = tmp_path / "clone"
    assert_ok(run_cli("clone", url, clone, *opts, repo=None))
    assert_ok(run_cli("verify", "--read-data", repo=clone))
    assert (
        assert_ok(run_cli("log", "clin", "--json", repo=clone)).json()
        == assert_ok(run_cli("log", "clin", "--json", repo=repo)).json()
    )


class _CountsGets(_Delegate):
    def __init__(self, inner: Backend) -> None:
        super().__init__(inner)
        self.gets: list[str] = []

    def get_with_etag(self, key: str) -> tuple[bytes, str]:
        self.gets.append(key)
        return super().get_with_etag(key)

    def get(self, key: str, start: int | None = None, end: int | None = None) -> bytes:
        self.gets.append(key)
        return super().get(key, start, end)


def test_an_unchanged_remote_costs_no_ref_reads(
    tmp_path: Path, remote_url: tuple[str, list[str]]
) -> None:
    repo, backend, data = _setup(tmp_path, remote_url)
    assert_ok(run_cli("tag", "clin@v1", "first", repo=repo))
    assert_ok(run_cli("push", repo=repo))  # creates the tag: read back once, next time
    assert_ok(run_cli("fetch", repo=repo))
    with Repository.open(repo) as store:
        rc = remote_config(store, "origin")
        counted = _CountsGets(backend)
        push(store, rc, backend=counted)
        assert [k for k in counted.gets if k.startswith(P.REFS)] == []
        # Another machine moves the tag: exactly that ref object is read again.
        other = tmp_path / "other"
        url, opts = remote_url
        assert_ok(run_cli("clone", url, other, *opts, repo=None))
        _commit(other, data, 99)
        assert_ok(run_cli("tag", "clin@v2", "first", "--force", repo=other))
        assert_ok(run_cli("push", repo=other))
        counted = _CountsGets(backend)
        report = pull(store, rc, backend=counted)
        read = sorted(k for k in counted.gets if k.startswith(P.REFS))
        assert read == [P.ref_key("ds:clin:tag:first"), P.ref_key("ds:clin:v:0000000002")], read
        assert {r.ref: r.status for r in report.refs}["ds:clin:tag:first"] == "moved"
