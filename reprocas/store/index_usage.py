"""What the LMDB index weighs: the file on disk, the pages in use, and per
sub-database its entries and bytes (issue 17's budget is bytes per unique chunk)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import lmdb


@dataclass(frozen=True, slots=True)
class DbUsage:
    entries: int
    bytes: int  # (branch + leaf + overflow pages) x page size


@dataclass(frozen=True, slots=True)
class IndexUsage:
    disk_bytes: int  # blocks the data file occupies
    file_bytes: int  # its apparent size
    used_bytes: int  # pages up to the last one used (live or free)
    live_bytes: int  # pages of the sub-databases and of the main database
    dbs: dict[str, DbUsage]

    @property
    def unique_chunks(self) -> int:
        d = self.dbs.get("chunks")
        return d.entries if d is not None else 0

    def per_chunk(self, nbytes: int) -> float | None:
        return nbytes / self.unique_chunks if self.unique_chunks else None


def _pages(s: Mapping[str, Any]) -> int:
    return int(s["branch_pages"] + s["leaf_pages"] + s["overflow_pages"])


def index_usage(env: lmdb.Environment, path: Path) -> IndexUsage:
    """The usage of the index ``env`` whose directory is ``path``."""
    psize = env.stat()["psize"]
    dbs: dict[str, DbUsage] = {}
    with env.begin() as txn:
        names = [bytes(k).decode("utf-8", "replace") for k, _ in txn.cursor()]
        for name in names:
            s = txn.stat(env.open_db(name.encode(), txn=txn, create=False))
            dbs[name] = DbUsage(s["entries"], _pages(s) * psize)
        main = _pages(env.stat())
    st = (path / "data.mdb").stat()
    return IndexUsage(
        disk_bytes=st.st_blocks * 512,
        file_bytes=st.st_size,
        used_bytes=(env.info()["last_pgno"] + 1) * psize,
        live_bytes=sum(d.bytes for d in dbs.values()) + main * psize,
        dbs=dbs,
    )
