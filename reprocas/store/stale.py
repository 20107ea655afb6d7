"""What a forced checkout removes: the entries of the destination that the version does
not have (or has as another kind), so that afterwards the destination is the version.

Everything is found before anything is removed, and nothing is removed when the
destination holds the repository or another file system; links are never followed."""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass
from pathlib import Path

from reprocas.errors import DestinationError, RepositoryOverlapError


@dataclass(frozen=True, slots=True)
class Stale:
    """One entry to remove (a directory goes with all it holds)."""

    rel: tuple[str, ...]
    path: Path
    is_dir: bool

    @property
    def label(self) -> str:
        return "/".join(self.rel) + ("/" if self.is_dir else "")


def find_stale(dest: Path, wanted: dict[tuple[str, ...], bool], repo_root: Path) -> list[Stale]:
    """The top-most entries below ``dest`` that are not in ``wanted`` (relative path ->
    whether the version has a directory there) or are there as another kind, in name
    order. Raises if removing them would touch the repository or leave ``dest``'s file
    system (a mount point below it)."""
    rst = os.stat(repo_root)
    own = (rst.st_dev, rst.st_ino)
    dev = os.lstat(dest).st_dev
    out: list[Stale] = []
    # (directory, its path relative to dest, whether it is being removed)
    stack: list[tuple[Path, tuple[str, ...], bool]] = [(dest, (), False)]
    while stack:
        d, rel, doomed = stack.pop()
        with os.scandir(d) as it:
            items = sorted(it, key=lambda e: e.name, reverse=True)
        for de in items:
            st = de.stat(follow_symlinks=False)
            r = (*rel, de.name)
            is_dir = stat.S_ISDIR(st.st_mode)
            if is_dir and (st.st_dev, st.st_ino) == own:
                raise RepositoryOverlapError(
                    f"refusing to check out to {dest}: {de.path} is the repository; "
                    "choose a destination outside it; nothing was written",
                    path=de.path,
                )
            if not doomed:
                want = wanted.get(r)
                doomed_here = want is None or want != is_dir
            else:
                doomed_here = True
            if doomed_here and st.st_dev != dev:
                raise DestinationError(
                    f"refusing to remove {de.path}: it is on another file system (a mount "
                    "point) and not part of the version; unmount or remove it yourself",
                    path=de.path,
                )
            if doomed_here and not doomed:
                out.append(Stale(r, Path(de.path), is_dir))
            if is_dir:
                stack.append((Path(de.path), r, doomed_here))
    out.sort(key=lambda s: s.rel)
    return out


def remove(entry: Stale) -> None:
    """Remove one stale entry; a directory depth first, without recursion (it may be
    thousands of levels deep) and without following links (a link is unlinked)."""
    if not entry.is_dir:
        os.unlink(entry.path)
        return
    stack: list[tuple[Path, bool]] = [(entry.path, False)]
    while stack:
        d, listed = stack.pop()
        if listed:
            os.rmdir(d)
            continue
        st = os.lstat(d)
        if not stat.S_ISDIR(st.st_mode):
            os.unlink(d)  # replaced by something else since it was listed
            continue
        if st.st_mode & 0o700 != 0o700:
            os.chmod(d, stat.S_IMODE(st.st_mode) | 0o700)  # it goes anyway: let us empty it
        stack.append((d, True))
        with os.scandir(d) as it:
            for de in it:
                if de.is_dir(follow_symlinks=False):
                    stack.append((Path(de.path), False))
                else:
                    os.unlink(de.path)
