"""Keep the repository out of what it stores and of where it writes: a commit source
may not be, hold or lie inside it, a checkout destination may not be, hold or lie inside it
(a checkout with --force over it would replace the live index and ref log)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

from reprocas.errors import RepositoryOverlapError

Relation = Literal["is", "inside", "holds"]

_PHRASE: dict[Relation, str] = {
    "is": "is the repository",
    "inside": "lies inside the repository",
    "holds": "holds the repository",
}


def _ident(path: Path) -> tuple[int, int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_dev, st.st_ino


def relation(root: Path, path: Path) -> Relation | None:
    """How ``path`` stands to the repository at ``root`` (None: apart). Links are
    resolved, and existing directories are also compared by device and inode, so an
    alias of the repository (a bind mount, another spelling) is found too."""
    real_root = Path(os.path.realpath(root))
    real = Path(os.path.realpath(path))
    own = _ident(real_root)
    me = _ident(real)
    if real == real_root or (own is not None and me == own):
        return "is"
    for p in real.parents:
        if p == real_root or (own is not None and _ident(p) == own):
            return "inside"
    for p in real_root.parents:
        if p == real or (me is not None and _ident(p) == me):
            return "holds"
    return None


def refuse(root: Path, path: Path, action: str, refused: tuple[Relation, ...]) -> None:
    """Raise :class:`RepositoryOverlapError` when ``path`` stands to the repository in
    one of the ``refused`` ways (``action`` says what was asked: "commit", ...)."""
    rel = relation(root, path)
    if rel is None or rel not in refused:
        return
    raise RepositoryOverlapError(
        f"refusing to {action} {path}: it {_PHRASE[rel]} ({os.path.realpath(root)}); "
        + (
            "choose a path that neither is, holds nor lies inside it"
            if rel == "holds"
            else "choose a path outside the repository"
        )
        + "; nothing was written",
        path=str(path),
        relation=rel,
    )
