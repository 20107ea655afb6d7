"""Shell completion of refs and dataset names, read from the repository.

Typer calls these while the shell completes a word (``reprocas show clin<TAB>``): they
open the repository the command line names (``--repo``, else ``$REPROCAS_REPO``, else
the nearest ``.reprocas/``) read-only and offer dataset names, then ``NAME@vN``,
``NAME@latest`` and ``NAME@TAG``. Completion must never fail loudly: any error (no
repository, a damaged index) offers nothing.
"""

from __future__ import annotations

import click


def _repo_path(ctx: click.Context) -> str | None:
    c: click.Context | None = ctx
    while c is not None:
        repo = c.params.get("repo")
        if isinstance(repo, str):
            return repo
        c = c.parent
    return None


def _candidates(repo_path: str | None, incomplete: str) -> list[str]:
    from reprocas.api import Repo

    repo = Repo.open_repo(repo_path)
    try:
        store = repo.store
        with store.index.read() as txn:
            names = store.datasets(txn)
            if "@" not in incomplete:
                return [n for n in names if n.startswith(incomplete)]
            name, _, _ = incomplete.rpartition("@")
            if name not in names:
                return []
            versions = store.versions(txn, name)
            tags = sorted({t for ts in store.tags_of(txn, name).values() for t in ts})
        refs = [f"{name}@latest"] + [f"{name}@v{n}" for n, _ in reversed(versions)]
        refs += [f"{name}@{t}" for t in tags]
        return [r for r in refs if r.startswith(incomplete)]
    finally:
        repo.close()


def complete_ref(ctx: click.Context, incomplete: str) -> list[str]:
    """Dataset names, and once ``@`` is typed, that dataset's versions and tags."""
    try:
        return _candidates(_repo_path(ctx), incomplete)
    except Exception:  # completion offers nothing rather than a traceback in the shell
        return []


def complete_dataset(ctx: click.Context, incomplete: str) -> list[str]:
    """Dataset names only."""
    return [c for c in complete_ref(ctx, incomplete.split("@")[0]) if "@" not in c]
