"""Reads through the Python API inside a recorded run, and where the repository is.

A run (``reprocas run``, ``reprocas replay``, a ``with reprocas.run(...)`` block)
makes a reads file and names it to the command in ``REPROCAS_RUN_READS``, with the
repository's id in ``REPROCAS_RUN_REPO_ID`` and its path in ``REPROCAS_REPO``. Each
read of a version's content through the API (``reprocas.Repo``) of that repository —
in the command or in any process it starts, which inherit the environment — appends
one JSON line to the file (``O_APPEND``, one ``write`` per line, so lines from
concurrent processes never interleave). When the command ends the run merges those
reads into its inputs: one input per snapshot, ``via: "api"`` unless it was also
declared (``--input``), with the refs and paths the API read it by.

A replay pins those refs: ``REPROCAS_RUN_PIN`` maps each ref the original read
through the API to the snapshot it resolved to, so that ``read_table("cohort", ...)``
reads what the original read even after a newer version of ``cohort`` was committed.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
import uuid
import warnings
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from reprocas.errors import ReprocasError
from reprocas.model.ids import ObjectId
from reprocas.provenance.run_common import Say, quiet
from reprocas.store.repository import Repository, Version

READS_VAR = "REPROCAS_RUN_READS"
REPO_ID_VAR = "REPROCAS_RUN_REPO_ID"
PIN_VAR = "REPROCAS_RUN_PIN"
REPO_VAR = "REPROCAS_REPO"

VIA_INPUT = "input"
VIA_API = "api"
API_REFS_KEY = "api_refs"
API_PATHS_KEY = "api_paths"
MAX_API_PATHS = 100
"""At most this many paths read inside one version are kept on its input record."""

_noted: set[tuple[str, str, str, str | None]] = set()  # (reads file, snapshot, ref, path)


def _repo_id(repo: Repository) -> str:
    return str(repo.marker.get("repo_id") or "")


def _ours(repo: Repository, env: Mapping[str, str]) -> bool:
    """Whether ``env`` names a run whose repository is ``repo``."""
    return bool(env.get(READS_VAR)) and env.get(REPO_ID_VAR) == _repo_id(repo) != ""


# -- in the command: noting reads and following pins ---------------------------------------


def pinned(repo: Repository, ref: str) -> str | None:
    """The snapshot id (hex) a replay pins ``ref`` to, or None."""
    raw = os.environ.get(PIN_VAR)
    if not raw or os.environ.get(REPO_ID_VAR) != _repo_id(repo):
        return None
    try:
        pins = json.loads(raw)
    except ValueError:
        return None
    hit = pins.get(ref.strip()) if isinstance(pins, dict) else None
    return hit if isinstance(hit, str) else None


def note(repo: Repository, version: Version, ref: str, path: str | None = None) -> None:
    """Record that this process read ``version`` (asked for as ``ref``; ``path`` inside
    it, if one) for the run it belongs to; nothing outside a run of ``repo``."""
    target = os.environ.get(READS_VAR)
    if not target or not _ours(repo, os.environ):
        return
    key = (target, version.id.hex, ref, path)
    if key in _noted:
        return
    line = {
        "ref": ref,
        "snapshot": version.id.hex,
        "dataset": version.name,
        "number": version.number,
        "path": path,
        "pid": os.getpid(),
    }
    if pinned(repo, ref) is not None:
        line["pinned"] = True
    try:
        _append(Path(target), [line])
    except OSError as exc:
        # The script's read succeeded; failing it now would lose its work. Say it loudly.
        warnings.warn(
            f"reprocas: the read of {ref} could not be recorded for the run "
            f"({exc.strerror or exc}); the run will not list it as an input",
            RuntimeWarning,
            stacklevel=3,
        )
        return
    _noted.add(key)


def _append(target: Path, lines: Iterable[dict[str, Any]]) -> None:
    # No O_CREAT: the run made the file; a missing one means the run is over.
    fd = os.open(target, os.O_WRONLY | os.O_APPEND)
    try:
        for ln in lines:
            os.write(fd, (json.dumps(ln, sort_keys=True) + "\n").encode())
    finally:
        os.close(fd)


# -- in the run: the reads file, the child's environment, merging --------------------------


@dataclass
class Reads:
    """One run's reads file (use as a context manager: the file is removed after)."""

    repo: Repository
    path: Path = field(init=False)
    outer: tuple[str, str] | None = field(init=False)  # an enclosing run's (file, repo id)

    def __post_init__(self) -> None:
        # A name never used before in this process (``_noted`` is keyed by it).
        fd, name = tempfile.mkstemp(prefix=f"reprocas-reads-{uuid.uuid4().hex}-", suffix=".jsonl")
        os.close(fd)
        self.path = Path(name)
        env = os.environ
        self.outer = (env[READS_VAR], env.get(REPO_ID_VAR, "")) if env.get(READS_VAR) else None

    def __enter__(self) -> Reads:
        return self

    def __exit__(self, *exc: object) -> None:
        self.path.unlink(missing_ok=True)

    def child_env(
        self, base: Mapping[str, str] | None = None, pin: Mapping[str, str] | None = None
    ) -> dict[str, str]:
        """The command's environment: ``base`` (default ours) with the repository's
        path, this reads file and, for a replay, the pins."""
        env = dict(os.environ if base is None else base)
        env[REPO_VAR] = str(self.repo.root)
        env[READS_VAR] = str(self.path)
        env[REPO_ID_VAR] = _repo_id(self.repo)
        if pin:
            env[PIN_VAR] = json.dumps(dict(pin), sort_keys=True)
        return env

    @contextlib.contextmanager
    def in_process(self) -> Iterator[None]:
        """This process is the run (``with reprocas.run(...)``): set the variables for
        the block (and the processes it starts), then put back what was there."""
        keys = (REPO_VAR, READS_VAR, REPO_ID_VAR)
        before = {k: os.environ.get(k) for k in keys}
        os.environ.update({k: v for k, v in self.child_env({}).items() if k in keys})
        try:
            yield
        finally:
            for k, v in before.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v

    def lines(self, say: Say = quiet) -> list[dict[str, Any]]:
        """The reads noted so far; a malformed line is reported and skipped."""
        try:
            text = self.path.read_bytes().decode("utf-8", "replace")
        except OSError as exc:
            say(f"warning: the run's reads cannot be read ({exc.strerror or exc})")
            return []
        out: list[dict[str, Any]] = []
        for n, raw in enumerate(text.splitlines(), 1):
            try:
                rec = json.loads(raw)
                ObjectId.from_hex(str(rec["snapshot"]))
                str(rec["ref"])
            except (ValueError, KeyError, TypeError):
                say(f"warning: line {n} of the run's reads is malformed; skipped")
                continue
            out.append(rec)
        return out

    def merge(
        self, inputs: list[dict[str, Any]], say: Say = quiet
    ) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        """``inputs`` with the API reads merged in (see the module docstring), and the
        reads themselves; the result is also handed to an enclosing run."""
        reads = self.lines(say)
        merged = merge_reads(self.repo, inputs, reads, say)
        self._forward(merged)
        return merged, reads

    def _forward(self, inputs: list[dict[str, Any]]) -> None:
        # A run inside a run: what this one used, the enclosing one used too.
        if self.outer is None or self.outer[1] != _repo_id(self.repo):
            return
        with contextlib.suppress(OSError):
            _append(
                Path(self.outer[0]),
                (
                    {
                        "ref": str(i.get("ref") or ObjectId(bytes(i["snapshot"])).hex),
                        "snapshot": ObjectId(bytes(i["snapshot"])).hex,
                        "dataset": i.get("dataset"),
                        "number": i.get("number"),
                        "path": None,
                        "pid": os.getpid(),
                    }
                    for i in inputs
                ),
            )


def merge_reads(
    repo: Repository, inputs: list[dict[str, Any]], reads: list[dict[str, Any]], say: Say = quiet
) -> list[dict[str, Any]]:
    """One input per snapshot: a declared input keeps its record (``via: "input"``) and
    gains the refs and paths the API read it by; a version only read through the API is
    an input ``via: "api"`` with no checkout path. A read of a snapshot this repository
    does not hold is reported and left out (an input must be a version it can replay)."""
    out = [dict(i) for i in inputs]
    by_id: dict[bytes, dict[str, Any]] = {}
    for i in out:
        i.setdefault("via", VIA_INPUT)
        by_id.setdefault(bytes(i["snapshot"]), i)
    for r in reads:
        sid = ObjectId.from_hex(str(r["snapshot"]))
        rec = by_id.get(sid.raw)
        if rec is None:
            try:
                with repo.index.read() as txn:
                    v = repo.make_version(txn, sid)
            except ReprocasError as exc:
                say(f"warning: the command read {r['ref']}, which cannot be recorded: {exc}")
                continue
            rec = {
                "ref": str(r["ref"]),
                "dataset": v.name,
                "number": v.number,
                "snapshot": sid.raw,
                "content": v.snapshot.root.raw,  # the content id (format 3)
                "path": None,
                "via": VIA_API,
            }
            out.append(rec)
            by_id[sid.raw] = rec
        refs = rec.setdefault(API_REFS_KEY, [])
        if r["ref"] not in refs:
            refs.append(str(r["ref"]))
        p = r.get("path")
        paths = rec.setdefault(API_PATHS_KEY, [])
        if isinstance(p, str) and p not in paths and len(paths) < MAX_API_PATHS:
            paths.append(p)
    for i in out:
        if not i.get(API_PATHS_KEY):
            i.pop(API_PATHS_KEY, None)
    return out


# -- replay -----------------------------------------------------------------------------------


def pins_of(inputs: Iterable[Mapping[str, Any]]) -> dict[str, str]:
    """Each ref a run read through the API -> the snapshot (hex) it read."""
    pins: dict[str, str] = {}
    for i in inputs:
        for ref in i.get(API_REFS_KEY) or ():
            pins.setdefault(str(ref), ObjectId(bytes(i["snapshot"])).hex)
    return pins


def declared(inputs: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """A run's declared inputs, without what the API read (a replay records its own)."""
    return [
        {k: v for k, v in i.items() if k not in (API_REFS_KEY, API_PATHS_KEY)}
        for i in inputs
        if i.get("via", VIA_INPUT) != VIA_API
    ]


def replay_notes(
    repo: Repository,
    original: Iterable[Mapping[str, Any]],
    replayed: Iterable[Mapping[str, Any]],
    reads: list[dict[str, Any]],
) -> list[str]:
    """What a replay says about the API reads: each pinned ref whose name now means
    another version, and each version read by one run and not the other."""
    notes: list[str] = []
    seen: set[str] = set()
    for r in reads:
        ref = str(r["ref"])
        if not r.get("pinned") or ref in seen:
            continue
        seen.add(ref)
        label = f"{r.get('dataset')}@v{r.get('number')}"
        try:
            with repo.index.read() as txn:
                now = repo.resolve(txn, ref)
        except ReprocasError:
            now = None
        if now is None or now.id.hex != r["snapshot"]:
            means = f"{ref} now means {now.ref}" if now else f"{ref} names no version now"
            notes.append(
                f"the command read {ref} as {label}, the version the original run read ({means})"
            )

    def api_ids(inputs: Iterable[Mapping[str, Any]]) -> dict[bytes, str]:
        return {
            bytes(i["snapshot"]): f"{i.get('dataset')}@v{i.get('number')}"
            for i in inputs
            if i.get(API_REFS_KEY)
        }

    before, after = api_ids(original), api_ids(replayed)
    for sid, label in after.items():
        if sid not in before:
            notes.append(f"the replay read {label} through the API; the original did not")
    for sid, label in before.items():
        if sid not in after:
            notes.append(f"the original read {label} through the API; the replay did not")
    return notes
