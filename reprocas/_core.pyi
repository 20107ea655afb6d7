"""Type stubs for ``reprocas._core``, the native (Rust) core.

Every call takes whole buffers or file paths and releases the GIL; none is called
once per chunk. Errors are raised as ``reprocas.errors`` exceptions:
``InvalidParameterError`` for bad sizes, levels or keys, ``SourceNotFoundError`` /
``SourcePermissionError`` / ``SourceIsDirectoryError`` for unreadable inputs,
``StorageIOError`` / ``StorageFullError`` for other I/O failures and
``CorruptDataError`` for stored bytes that do not decode.

``threads=0`` means one worker per core; ``threads=1`` runs everything on the
calling thread.
"""

from collections.abc import Iterable, Iterator, Mapping, Sequence
from os import PathLike
from typing import final

from typing_extensions import Buffer

__version__: str
CODEC_RAW: int
"""Stored bytes are the raw bytes (compression did not shrink them)."""
CODEC_ZSTD: int
"""Stored bytes are one zstd frame."""

def is_release_build() -> bool:
    """Whether the extension was compiled with optimisations."""

def default_threads() -> int:
    """Worker threads used when a call is given ``threads=0``."""

# --- hashing (rust_ext/src/hashing.rs) ----------------------------------------------

def blake3_digest(data: Buffer, key: bytes | None = None) -> bytes:
    """BLAKE3-256 of ``data``; keyed BLAKE3 when a 32-byte ``key`` is given."""

# --- chunker (rust_ext/src/chunker.rs, py_ingest.rs) --------------------------------

@final
class ChunkerParams:
    """FastCDC 2020 parameters (normalised chunking, level 2).

    ``min_size <= avg_size <= max_size``; ``min_size >= 64``; ``max_size <= 64 MiB``.
    ``seed`` selects the gear table: different seeds give different cut points.
    """

    def __init__(self, min_size: int, avg_size: int, max_size: int, seed: int = 0) -> None: ...
    @property
    def min_size(self) -> int: ...
    @property
    def avg_size(self) -> int: ...
    @property
    def max_size(self) -> int: ...
    @property
    def seed(self) -> int: ...
    def __eq__(self, other: object) -> bool: ...
    def __hash__(self) -> int: ...

@final
class ChunkTable:
    """Every chunk of a file or buffer, and the digest of the whole."""

    @property
    def file_digest(self) -> bytes: ...
    @property
    def size(self) -> int: ...
    @property
    def offsets(self) -> list[int]: ...
    @property
    def lengths(self) -> list[int]: ...
    @property
    def digests(self) -> list[bytes]: ...
    def __len__(self) -> int: ...

def chunk_buffer(
    data: Buffer, params: ChunkerParams, key: bytes | None = None, threads: int = 0
) -> ChunkTable:
    """Cut and hash an in-memory buffer in one pass."""

def chunk_file(
    path: str | PathLike[str], params: ChunkerParams, key: bytes | None = None, threads: int = 0
) -> ChunkTable:
    """Cut and hash a file of any size in one pass, with bounded memory."""

Frame = tuple[int, bytes, int, int, int]
"""``(codec, payload, first_index, count, raw_len)``: chunks ``first_index ..
first_index + count`` of a batch, compressed together."""

@final
class ChunkBatch:
    """Consecutive chunks of a file, holding their bytes until they are compressed."""

    @property
    def offset(self) -> int:
        """File offset of the first chunk."""
    @property
    def size(self) -> int:
        """Bytes covered by the batch."""
    @property
    def offsets(self) -> list[int]: ...
    @property
    def lengths(self) -> list[int]: ...
    @property
    def digests(self) -> list[bytes]: ...
    def __len__(self) -> int: ...
    def chunk(self, index: int) -> bytes:
        """The raw bytes of chunk ``index``."""
    def compress(self, indices: Sequence[int], level: int = 3, frame_size: int = 0) -> list[Frame]:
        """Compress the chunks at ``indices`` (strictly increasing), in parallel.

        Runs of consecutive chunks are grouped into frames of at most ``frame_size``
        raw bytes (0: one frame per chunk). A frame that zstd does not shrink is
        returned raw with ``CODEC_RAW``.
        """

    def compress_delta_stored(
        self,
        packs: Sequence[str | PathLike[str]],
        frames: Sequence[tuple[int, int, int, int, int]],
        chunks: Sequence[tuple[int, int, int, bytes]],
        groups: Sequence[tuple[int, int, Sequence[int]]],
        level: int = 3,
        bases: Mapping[int, Sequence[tuple[int, int, int]]] | None = None,
        key: bytes | None = None,
    ) -> list[Frame]:
        """Compress groups of consecutive chunks against their bases' bytes,
        concatenated ("patch-from"), reading (and verifying) the bases from the store in
        the same call: ``packs``/``frames``/``chunks``/``bases`` are a read plan of the
        base chunks; each group is ``(first, count, [index into chunks, ...])``. Codec 2
        when clearly smaller than compressing the group alone, else an ordinary frame."""

@final
class FileChunker(Iterator[ChunkBatch]):
    """Iterate over a file's chunks in batches, reading the file exactly once.

    Between batches the caller looks digests up and calls ``batch.compress`` on the
    new ones. After the last batch, ``file_digest`` and ``size`` are set.
    """

    file_digest: bytes | None
    size: int | None
    def __init__(
        self,
        path: str | PathLike[str],
        params: ChunkerParams,
        key: bytes | None = None,
        threads: int = 0,
        block_size: int = ...,
    ) -> None: ...
    def __iter__(self) -> FileChunker: ...
    def __next__(self) -> ChunkBatch: ...

@final
class StreamChunker:
    """Chunk input that arrives in pieces; the cut points equal the one-shot calls'."""

    file_digest: bytes | None
    size: int | None
    def __init__(self, params: ChunkerParams, key: bytes | None = None) -> None: ...
    def update(self, data: Buffer) -> list[tuple[int, int, bytes]]:
        """Feed input; returns the chunks it completed as ``(offset, length, digest)``."""
    def finish(self) -> list[tuple[int, int, bytes]]:
        """End of input: the remaining chunks; sets ``file_digest`` and ``size``."""

# --- compression (rust_ext/src/compress.rs) -----------------------------------------

def compress_chunks(
    chunks: Iterable[Buffer], level: int = 3, threads: int = 0
) -> list[tuple[int, bytes]]:
    """Compress each buffer on its own, in parallel: ``[(codec, payload), ...]``."""

def compress_delta_many(
    items: Sequence[tuple[Buffer, Sequence[Buffer]]], level: int = 3, threads: int = 0
) -> list[tuple[int, bytes]]:
    """Compress each ``(data, [base, ...])`` against its bases, concatenated, in
    parallel: codec 2 when clearly smaller than ``data`` alone, else codec 0/1."""

def decompress_chunks(
    items: Iterable[tuple[int, Buffer, int] | tuple[int, Buffer, int, Buffer | None]],
    threads: int = 0,
) -> list[bytes]:
    """Decode ``[(codec, payload, raw_len[, prefix]), ...]`` in parallel; a delta frame
    (codec 2) needs its prefix (its bases' bytes, concatenated). ``CorruptDataError``
    when a payload does not decode to exactly ``raw_len`` bytes."""

def cut_buffer(data: Buffer, params: ChunkerParams, threads: int = 0) -> list[int]:
    """Cut only, no hashing: the end offset of every chunk of ``data``."""

# --- reading back (rust_ext/src/restore.rs) -----------------------------------------

def read_chunks(
    packs: Sequence[str | PathLike[str]],
    frames: Sequence[tuple[int, int, int, int, int]],
    chunks: Sequence[tuple[int, int, int, bytes]],
    key: bytes | None = None,
    threads: int = 0,
    bases: Mapping[int, Sequence[tuple[int, int, int]]] | None = None,
) -> list[bytes]:
    """The verified bytes of ``chunks`` (a read plan like ``assemble_file``'s), in
    order; frames and delta bases decoded once each, in parallel."""

def assemble_file(
    fd: int,
    packs: Sequence[str | PathLike[str]],
    frames: Sequence[tuple[int, int, int, int, int]],
    chunks: Sequence[tuple[int, int, int, bytes]],
    key: bytes | None = None,
    threads: int = 0,
    bases: Mapping[int, Sequence[tuple[int, int, int]]] | None = None,
) -> int:
    """Write a file's chunks, in order, to the open descriptor ``fd``; returns bytes written.

    ``frames`` are ``(pack_index, offset, stored_len, codec, raw_len)``; ``chunks`` are
    ``(frame_index, offset_in_frame, length, digest)``. Every chunk is re-hashed before
    it is written; a mismatch raises ``CorruptDataError`` with ``frame_index`` and
    ``chunk_index`` set, and nothing of the failing window is written.
    """

def verify_frames(
    pack: str | PathLike[str],
    frames: Sequence[tuple[int, int, int, int, Sequence[tuple[int, int, bytes]]]],
    key: bytes | None = None,
    threads: int = 0,
) -> list[tuple[int, int | None, str]]:
    """Decode every frame of one pack and re-hash its chunks.

    ``frames`` are ``(offset, stored_len, codec, raw_len, [(offset_in_frame, length,
    digest)])``; returns ``[(frame_index, chunk_index | None, message)]``.
    """

# --- tables (rust_ext/src/csv.rs) ---------------------------------------------------

def count_csv_records(path: str | PathLike[str], threads: int = 0) -> int:
    """Lines of a CSV file outside double quotes: its records, the header included (a
    last line without a newline counts). Parallel over blocks; bounded memory."""

def csv_complete_records(data: bytes) -> int:
    """Records that end within ``data`` (which starts at a record boundary), by the
    rules of :func:`count_csv_records`; a last, unfinished record is not counted."""

# --- object storage (rust_ext/src/objstore.rs) --------------------------------------

_Info = tuple[str, int, str, int]  # (key, size, etag, last_modified_ns)

class ObjectStore:
    """A bucket (object_store's S3 client) or an atomic in-memory store; every call
    releases the GIL. Failures raise ``reprocas.remote.backend`` errors."""

    def __init__(
        self, bucket: str, options: Mapping[str, str] | None = None, url: str | None = None
    ) -> None: ...
    @staticmethod
    def in_memory(url: str | None = None) -> ObjectStore: ...
    @property
    def url(self) -> str: ...
    def put_if_absent(self, key: str, data: bytes) -> str: ...
    def put_if_match(self, key: str, data: bytes, etag: str | None) -> str: ...
    def put(self, key: str, data: bytes) -> str: ...
    def put_files_if_absent(
        self, items: Sequence[tuple[str, str | PathLike[str]]]
    ) -> list[bool]: ...
    def get(self, key: str, start: int | None = None, end: int | None = None) -> bytes: ...
    def get_with_etag(self, key: str) -> tuple[bytes, str]: ...
    def get_to_file(self, key: str, path: str | PathLike[str]) -> int: ...
    def head(self, key: str) -> _Info: ...
    def list(self, prefix: str, start_after: str | None = None) -> list[_Info]: ...
    def delete(self, key: str) -> None: ...
