"""Storing small in-memory files and nested trees of them with a :class:`Writer`.

Environment snapshots hold a few small files (the facts, lock files, a git patch)
that are assembled in memory, not read from one directory; these helpers cut, hash and
compress them exactly as ``commit`` does for files on disk (frames of consecutive new
chunks), so the chunks dedup against everything else in the store.
"""

from __future__ import annotations

from dataclasses import dataclass

from reprocas.model.ids import ObjectId
from reprocas.model.objects import FileManifest, TreeEntry
from reprocas.native import core
from reprocas.store.files import store_file
from reprocas.store.repository import Repository
from reprocas.store.writer import Writer


@dataclass(frozen=True, slots=True)
class Subtree:
    """A tree already in the store, placed as a directory entry."""

    tree: ObjectId
    files: int
    logical_bytes: int


Node = bytes | Subtree | dict[str, "Node"]


def put_bytes(repo: Repository, writer: Writer, data: bytes) -> bytes:
    """Store an in-memory file: its new chunks (grouped into frames of consecutive new
    chunks, as commit does) and its chunk list; returns the tree entry's target."""
    table = core.chunk_buffer(data, repo.params)
    offsets, lengths, digests = table.offsets, table.lengths, table.digests
    new: list[int] = []
    seen: set[bytes] = set()
    with repo.index.read() as txn:
        for i, d in enumerate(digests):
            if d in seen or writer.is_known_chunk(txn, d):
                continue
            seen.add(d)
            new.append(i)
    frame_size = repo.config.compression.frame_size
    level = repo.config.compression.level
    groups: list[list[int]] = []
    for i in new:
        g = groups[-1] if groups else None
        if (
            g is not None
            and g[-1] == i - 1
            and offsets[i] + lengths[i] - offsets[g[0]] <= max(frame_size, 1)
        ):
            g.append(i)
        else:
            groups.append([i])
    payloads = [data[offsets[g[0]] : offsets[g[-1]] + lengths[g[-1]]] for g in groups]
    for g, raw, (codec_id, blob) in zip(
        groups, payloads, core.compress_chunks(payloads, level), strict=True
    ):
        start = offsets[g[0]]
        entries = [(digests[i], offsets[i] - start, lengths[i]) for i in g]
        writer.add_frame(codec_id, blob, len(raw), entries)
    manifest = FileManifest(len(data), table.file_digest, tuple(zip(digests, lengths, strict=True)))
    return store_file(repo, writer, manifest)[0]


def put_tree(repo: Repository, writer: Writer, node: dict[str, Node]) -> tuple[ObjectId, int, int]:
    """Store a nested ``{name: bytes | Subtree | dict}``; returns (tree id, files, bytes)."""
    entries: list[TreeEntry] = []
    files = logical = 0
    for name, child in node.items():
        if isinstance(child, bytes):
            target = put_bytes(repo, writer, child)
            entries.append(TreeEntry(name, "file", 0o644, target, len(child)))
            files += 1
            logical += len(child)
        elif isinstance(child, Subtree):
            entries.append(TreeEntry(name, "dir", 0o755, child.tree.raw))
            files += child.files
            logical += child.logical_bytes
        else:
            tid, f, n = put_tree(repo, writer, child)
            entries.append(TreeEntry(name, "dir", 0o755, tid.raw))
            files += f
            logical += n
    return writer.add_object(repo.new_tree(entries).to_wire()), files, logical


def nest(files: dict[str, bytes]) -> dict[str, Node]:
    root: dict[str, Node] = {}
    for rel, data in files.items():
        parts = rel.split("/")
        d = root
        for p in parts[:-1]:
            sub = d.setdefault(p, {})
            assert isinstance(sub, dict)
            d = sub
        d[parts[-1]] = data
    return root
