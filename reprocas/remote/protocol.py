"""The remote's layout and what every operation shares (docs/FORMAT.md, "Remotes"):
keys, the remote marker, index segments and their local copies, ref objects, sessions.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import threading
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any
from urllib.parse import quote, unquote

from reprocas.errors import FormatVersionError, IntegrityError, UsageError
from reprocas.native import core
from reprocas.remote.backend import Backend, PreconditionFailed, RemoteNotFound
from reprocas.store import codec
from reprocas.store.packs import PackTrailer
from reprocas.store.repository import FORMAT_VERSION_CONTENT_IDS, Repository

MARKER_KEY = "reprocas-remote.json"
REMOTE_FORMAT = "reprocas-remote"
REMOTE_VERSION = 1
PACKS = "packs/"
INDEX = "index/"
REFS = "refs/"
SESSIONS = "sessions/"
PRUNE = "prune/"
SEGMENT_MAGIC = b"RPCSEG\x00\x01"
SEGMENT_VERSION = 1
#: How far behind another writer's clock may be before its segments are missed by an
#: incremental listing (they are then found by the full listing a missing ref triggers).
CLOCK_SKEW_NS = 3600 * 10**9
HEARTBEAT_S = 30.0
SESSION_TIMEOUT_NS = 600 * 10**9


def check_format(repo: Repository) -> None:
    """Remotes hold format 3 repositories only (content ids agree across machines)."""
    if repo.format_version < FORMAT_VERSION_CONTENT_IDS:
        raise UsageError(
            f"repository {repo.root} is format {repo.format_version}; remotes take format "
            f"{FORMAT_VERSION_CONTENT_IDS} repositories only (content ids, the same on every "
            "machine): run `reprocas upgrade` first"
        )


def pack_key(pack_id: bytes) -> str:
    h = pack_id.hex()
    return f"{PACKS}{h[:2]}/{h}.pack"


def ref_key(ref: str) -> str:
    return REFS + quote(ref, safe=":")


def ref_from_key(key: str) -> str:
    return unquote(key[len(REFS) :])


# -- the remote marker --------------------------------------------------------------------


def remote_marker(repo: Repository) -> dict[str, Any]:
    return {
        "format": REMOTE_FORMAT,
        "version": REMOTE_VERSION,
        "repo_format": repo.format_version,
        "chunking": repo.marker["chunking"],
        "chunking_id": repo.chunking_id.hex(),
        "created_ns": time.time_ns(),
    }


def read_marker(backend: Backend) -> dict[str, Any] | None:
    try:
        raw = backend.get(MARKER_KEY)
    except RemoteNotFound:
        return None
    try:
        marker = json.loads(raw)
    except ValueError as exc:
        raise FormatVersionError(f"{backend.url}/{MARKER_KEY} is not JSON: {exc}") from exc
    if not isinstance(marker, dict) or marker.get("format") != REMOTE_FORMAT:
        raise FormatVersionError(f"{backend.url} is not a reprocas remote (unknown marker)")
    if marker.get("version") != REMOTE_VERSION:
        raise FormatVersionError(
            f"remote {backend.url} has remote format version {marker.get('version')}; this "
            f"reprocas knows version {REMOTE_VERSION} only; upgrade reprocas",
            version=marker.get("version"),
        )
    return marker


def ensure_marker(backend: Backend, repo: Repository, *, create: bool) -> dict[str, Any]:
    """The remote's marker (created by the first push); the repository must match it."""
    check_format(repo)
    marker = read_marker(backend)
    if marker is None:
        if not create:
            raise UsageError(f"{backend.url} is not a reprocas remote yet (nothing pushed)")
        with contextlib.suppress(PreconditionFailed):  # another first push won: use its marker
            backend.put_if_absent(
                MARKER_KEY, json.dumps(remote_marker(repo), sort_keys=True).encode()
            )
        marker = read_marker(backend)
        assert marker is not None
    if marker.get("chunking_id") != repo.chunking_id.hex():
        raise UsageError(
            f"remote {backend.url} is chunked with {marker.get('chunking')} but {repo.root} "
            f"with {repo.marker['chunking']}: chunks would not deduplicate and chunk maps "
            "would not be found; clone the remote instead"
        )
    if marker.get("repo_format") != repo.format_version:
        raise UsageError(
            f"remote {backend.url} holds format {marker.get('repo_format')} repositories, "
            f"{repo.root} is format {repo.format_version}"
        )
    return marker


# -- index segments -----------------------------------------------------------------------


@dataclass(frozen=True)
class SegPack:
    id: bytes
    size: int
    chunks: tuple[bytes, ...]
    objects: tuple[bytes, ...]


def trailer_contents(trailer: PackTrailer) -> tuple[tuple[bytes, ...], tuple[bytes, ...]]:
    chunks = tuple(bytes(c[0]) for f in trailer.frames for c in f.chunks)
    return chunks, tuple(o.id for o in trailer.objects)


def encode_segment(packs: Iterable[SegPack], session: str) -> tuple[str, bytes]:
    """A segment's key and bytes."""
    now = time.time_ns()
    body = codec.encode(
        {
            "version": SEGMENT_VERSION,
            "time_ns": now,
            "session": session,
            "packs": [[p.id, p.size, list(p.chunks), list(p.objects)] for p in packs],
        }
    )
    data = SEGMENT_MAGIC + body
    return f"{INDEX}{now:020d}-{core.blake3_digest(data).hex()[:32]}.seg", data


def decode_segment(key: str, data: bytes) -> list[SegPack]:
    name = key.rsplit("/", 1)[-1]
    want = name.removesuffix(".seg").partition("-")[2]
    if core.blake3_digest(data).hex()[:32] != want or not data.startswith(SEGMENT_MAGIC):
        raise IntegrityError(f"index segment {key} does not match its name (damaged)")
    w = codec.decode(data[len(SEGMENT_MAGIC) :])
    if not isinstance(w, dict) or w.get("version") != SEGMENT_VERSION:
        raise IntegrityError(f"index segment {key} has an unknown version")
    return [SegPack(bytes(p[0]), int(p[1]), tuple(p[2]), tuple(p[3])) for p in w["packs"]]


@dataclass
class Catalogue:
    """What the remote's segments say it holds."""

    segments: set[str] = field(default_factory=set)
    packs: dict[bytes, SegPack] = field(default_factory=dict)
    chunks: set[bytes] = field(default_factory=set)
    objects: set[bytes] = field(default_factory=set)
    newest: str | None = None

    def add(self, key: str, packs: list[SegPack]) -> None:
        self.segments.add(key)
        if self.newest is None or key.encode() > self.newest.encode():
            self.newest = key
        for p in packs:
            self.packs[p.id] = p
            self.chunks.update(p.chunks)
            self.objects.update(p.objects)


def _time_of(key: str) -> int:
    try:
        return int(key.rsplit("/", 1)[-1].split("-", 1)[0])
    except ValueError:
        return 0


def _replace(path: Path, data: bytes) -> None:
    """Write ``path`` whole through a temporary name of this writer's own: a push and a
    prune of one repository save the same cache files at once, and with one shared
    temporary name the second rename found the file gone (FileNotFoundError)."""
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


class LocalState:
    """``remotes/<name>/`` in the local repository: segments seen, refs last fetched."""

    def __init__(self, repo: Repository, name: str) -> None:
        self.dir = repo.root / "remotes" / name
        self.seg_dir = self.dir / "segments"

    def load(self) -> Catalogue:
        cat = Catalogue()
        if self.seg_dir.is_dir():
            for p in sorted(self.seg_dir.glob("*.seg")):
                key = INDEX + p.name
                try:
                    cat.add(key, decode_segment(key, p.read_bytes()))
                except (IntegrityError, OSError, ValueError, KeyError, TypeError, IndexError):
                    p.unlink(missing_ok=True)  # a damaged cache copy: fetched again
        return cat

    def save_segment(self, key: str, data: bytes) -> None:
        self.seg_dir.mkdir(parents=True, exist_ok=True)
        _replace(self.seg_dir / key.rsplit("/", 1)[-1], data)

    def save_refs(self, refs: dict[str, bytes]) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        body = {"refs": {k: v.hex() for k, v in sorted(refs.items())}, "time_ns": time.time_ns()}
        _replace(self.dir / "refs.json", json.dumps(body, indent=1).encode())

    def load_refs(self) -> dict[str, bytes]:
        try:
            raw = json.loads((self.dir / "refs.json").read_text())
            return {k: bytes.fromhex(v) for k, v in raw["refs"].items()}
        except (OSError, ValueError, KeyError, TypeError):
            return {}

    def load_ref_cache(self) -> dict[str, tuple[str, str, str]]:
        """Ref key -> (listed etag, ref, id hex) of the ref objects last read."""
        try:
            raw = json.loads((self.dir / "refcache.json").read_text())
            return {str(k): (str(v[0]), str(v[1]), str(v[2])) for k, v in raw["refs"].items()}
        except (OSError, ValueError, KeyError, TypeError, IndexError):
            return {}

    def save_ref_cache(self, cache: dict[str, tuple[str, str, str]]) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        body = {"refs": {k: list(v) for k, v in sorted(cache.items())}}
        _replace(self.dir / "refcache.json", json.dumps(body).encode())

    @property
    def probed(self) -> bool:
        return (self.dir / "probed").exists()

    def mark_probed(self) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        (self.dir / "probed").touch()


def sync_segments(
    backend: Backend, state: LocalState, cat: Catalogue, *, full: bool = False
) -> list[str]:
    """Fetch the segments the local copy lacks (start-after the newest held, less the
    clock skew; everything with FULL). Returns the keys fetched."""
    start = INDEX
    if not full and cat.newest is not None:
        start = f"{INDEX}{max(0, _time_of(cat.newest) - CLOCK_SKEW_NS):020d}"
    fetched = []
    for info in backend.list(INDEX, start_after=start if start != INDEX else None):
        if info.key in cat.segments or not info.key.endswith(".seg"):
            continue
        data = backend.get(info.key)
        packs = decode_segment(info.key, data)
        state.save_segment(info.key, data)
        cat.add(info.key, packs)
        fetched.append(info.key)
    return fetched


# -- refs ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class RemoteRef:
    ref: str
    id: bytes
    etag: str


def ref_body(ref: str, oid: bytes, session: str) -> bytes:
    return json.dumps(
        {
            "ref": ref,
            "id": oid.hex(),
            "time_ns": time.time_ns(),
            "host": socket.gethostname(),
            "session": session,
        },
        sort_keys=True,
    ).encode()


def parse_ref(key: str, data: bytes, etag: str) -> RemoteRef:
    try:
        w = json.loads(data)
        ref, oid = str(w["ref"]), bytes.fromhex(w["id"])
    except (ValueError, KeyError, TypeError) as exc:
        raise IntegrityError(f"remote ref {key} is damaged: {exc}") from exc
    if len(oid) != 32 or ref_key(ref) != key:
        raise IntegrityError(f"remote ref {key} is damaged (names {ref!r})")
    return RemoteRef(ref, oid, etag)


def read_ref(backend: Backend, ref: str) -> RemoteRef | None:
    try:
        data, etag = backend.get_with_etag(ref_key(ref))
    except RemoteNotFound:
        return None
    return parse_ref(ref_key(ref), data, etag)


def read_refs(
    backend: Backend, prefix: str = "", state: LocalState | None = None
) -> dict[str, RemoteRef]:
    """The remote's refs under PREFIX: one listing, and a GET only for the ref objects
    whose listed etag differs from the one STATE's cache holds (a push or fetch of an
    unchanged remote reads no ref object). ``RemoteRef.etag`` here is the listing's
    etag, a change tag; a compare-and-swap re-reads its ref with :func:`read_ref`."""
    cache = state.load_ref_cache() if state is not None else {}
    listed_prefix = REFS + quote(prefix, safe=":")
    out: dict[str, RemoteRef] = {}
    seen: dict[str, tuple[str, str, str]] = {}
    for info in backend.list(listed_prefix):
        hit = cache.get(info.key)
        if hit is not None and hit[0] == info.etag:
            r = RemoteRef(hit[1], bytes.fromhex(hit[2]), info.etag)
        else:
            try:
                data, _ = backend.get_with_etag(info.key)
            except RemoteNotFound:
                continue  # removed while listing
            r = parse_ref(info.key, data, info.etag)
        out[r.ref] = r
        seen[info.key] = (info.etag, r.ref, r.id.hex())
    if state is not None:
        kept = {k: v for k, v in cache.items() if not k.startswith(listed_prefix)}
        state.save_ref_cache({**kept, **seen})
    return out


# -- sessions -----------------------------------------------------------------------------


class Session:
    """A writer's marker on the remote, kept fresh by a heartbeat thread."""

    def __init__(self, backend: Backend, op: str, heartbeat: float = HEARTBEAT_S) -> None:
        self.backend = backend
        self.id = f"{time.time_ns():020d}-{uuid.uuid4().hex[:12]}"
        self.key = SESSIONS + self.id
        self.op = op
        self.heartbeat = heartbeat
        self.started = time.monotonic()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _body(self) -> bytes:
        info = {"host": socket.gethostname(), "pid": os.getpid(), "op": self.op}
        return json.dumps({**info, "started_ns": time.time_ns()}, sort_keys=True).encode()

    def __enter__(self) -> Session:
        self.backend.put(self.key, self._body())
        self._thread = threading.Thread(target=self._beat, daemon=True, name="reprocas-session")
        self._thread.start()
        return self

    def _beat(self) -> None:
        while not self._stop.wait(self.heartbeat):
            with contextlib.suppress(Exception):
                self.backend.put(self.key, self._body())

    def server_now(self) -> int:
        """The server's clock: rewrite the marker and read its ``last_modified``."""
        self.backend.put(self.key, self._body())
        return self.backend.head(self.key).last_modified_ns

    def __exit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        with contextlib.suppress(Exception):
            self.backend.delete(self.key)


def live_sessions(backend: Backend, now_ns: int, exclude: str | None = None) -> list[str]:
    return [
        i.key
        for i in backend.list(SESSIONS)
        if i.key != exclude and now_ns - i.last_modified_ns < SESSION_TIMEOUT_NS
    ]
