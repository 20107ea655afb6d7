"""reprocas: a deduplicating, content-addressed store that makes ML work reproducible.

>>> import reprocas
>>> repo = reprocas.Repo.init("/tmp/store")          # doctest: +SKIP
>>> repo.commit("data/", "clinical", message="first cut")  # doctest: +SKIP
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from reprocas import errors

__version__ = "0.1.0"

__all__ = [
    "LogEntry",
    "LsEntry",
    "Repo",
    "__version__",
    "dataset",
    "errors",
    "params",
    "read_table",
    "run",
]

if TYPE_CHECKING:
    from reprocas.api import LogEntry, LsEntry, Repo


def dataset(ref: str, path: str | None = None, format: str | None = None) -> Any:
    """A pyarrow dataset of a version, from the repository found from the current directory."""
    from reprocas.api import Repo

    return Repo.open_repo().dataset(ref, path, format)


def read_table(ref: str, path: str, **kwargs: Any) -> Any:
    """One table of a version, from the repository found from the current directory."""
    from reprocas.api import Repo

    return Repo.open_repo().read_table(ref, path, **kwargs)


def params() -> dict[str, Any]:
    """The parameters of the run this process belongs to (``reprocas run --param``),
    typed as recorded; ``{}`` outside a run."""
    from reprocas.provenance.run_argv import read_params

    return read_params()


def run(name: str | None = None, params: dict[str, Any] | None = None, **kwargs: Any) -> Any:
    """Record a block as a run: ``with reprocas.run(name="train", params={...}) as run:``
    (see :func:`reprocas.provenance.api.run`)."""
    from reprocas.provenance.api import run as run_block

    return run_block(name, params, **kwargs)


def __getattr__(name: str) -> Any:
    # The API (and LMDB, msgpack) load on first use, so that `import reprocas` and
    # plumbing commands start fast.
    if name in ("Repo", "LogEntry", "LsEntry"):
        from reprocas import api

        return getattr(api, name)
    raise AttributeError(f"module 'reprocas' has no attribute {name!r}")
