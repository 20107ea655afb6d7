"""Clone: a new format-3 repository with the remote's chunking, its remote ``origin``,
and everything the remote holds pulled into it."""

from __future__ import annotations

import shutil
from pathlib import Path
from urllib.parse import unquote, urlparse

from reprocas.errors import RepositoryExistsError, UsageError
from reprocas.model.chunking import ChunkingConfig
from reprocas.progress import Progress
from reprocas.remote import config as remote_config
from reprocas.remote import protocol as P
from reprocas.remote.config import DEFAULT_REMOTE, RemoteConfig
from reprocas.remote.pull import PullReport, pull
from reprocas.remote.registry import open_backend
from reprocas.store.repository import FORMAT_VERSION_CONTENT_IDS, Repository


def default_path(url: str) -> Path:
    name = unquote(urlparse(url).path).rstrip("/").rsplit("/", 1)[-1]
    return Path(name or "reprocas-clone")


def clone(
    url: str,
    path: Path | None = None,
    *,
    options: dict[str, str] | None = None,
    single_writer: bool = False,
    progress: Progress | None = None,
    lazy: bool = False,
) -> tuple[Path, PullReport]:
    """Clone URL into PATH (a new directory); on failure PATH is removed again."""
    dest = (path or default_path(url)).absolute()
    if dest.exists() and (not dest.is_dir() or any(dest.iterdir())):
        raise RepositoryExistsError(f"{dest} exists and is not empty; clone into a new path")
    backend = open_backend(url, options or {})
    try:
        marker = P.read_marker(backend)
        if marker is None:
            raise UsageError(f"{url} holds no reprocas remote (nothing was pushed there)")
        if marker.get("repo_format") != FORMAT_VERSION_CONTENT_IDS:
            raise UsageError(f"{url} holds format {marker.get('repo_format')} data; cannot clone")
        created = not dest.exists()
        try:
            repo = Repository.init(
                dest,
                chunking=ChunkingConfig(**marker["chunking"]),
                format=FORMAT_VERSION_CONTENT_IDS,
            )
            try:
                rc = RemoteConfig(DEFAULT_REMOTE, url, dict(options or {}), single_writer)
                remote_config.add(repo, rc)
                report = pull(repo, rc, progress=progress, backend=backend, lazy=lazy)
            finally:
                repo.close()
        except BaseException:
            if created:
                shutil.rmtree(dest, ignore_errors=True)
            else:
                for child in dest.iterdir():
                    if child.is_dir():
                        shutil.rmtree(child, ignore_errors=True)
                    else:
                        child.unlink(missing_ok=True)
            raise
    finally:
        backend.close()
    return dest, report
