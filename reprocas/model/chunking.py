"""Chunking and compression settings: plain values, validated by the native core."""

from __future__ import annotations

from dataclasses import dataclass

KiB = 1024
MiB = 1024 * KiB

# Chosen by measurement on versioned clinical tables (docs/CHUNKING.md): small chunks
# keep scattered row edits from touching every chunk, min = avg / 2 keeps the cutter
# fast (less of each chunk is scanned), and frames of consecutive new chunks win back
# the compression context that small chunks lose.
DEFAULT_MIN_SIZE = 8 * KiB
DEFAULT_AVG_SIZE = 16 * KiB
DEFAULT_MAX_SIZE = 64 * KiB
DEFAULT_LEVEL = 3
DEFAULT_FRAME_SIZE = 1 * MiB
# Files smaller than this share frames with the small files committed next to them
# (reprocas.store.writer.Writer.add_shared), and checkout reads them in groups
# (reprocas.store.grouped).
SMALL_FILE = 256 * KiB


@dataclass(frozen=True, slots=True)
class ChunkingConfig:
    """FastCDC sizes (bytes) and gear-table seed of a repository."""

    min_size: int = DEFAULT_MIN_SIZE
    avg_size: int = DEFAULT_AVG_SIZE
    max_size: int = DEFAULT_MAX_SIZE
    seed: int = 0


@dataclass(frozen=True, slots=True)
class CompressionConfig:
    """zstd level and the raw size up to which consecutive new chunks share a frame."""

    level: int = DEFAULT_LEVEL
    frame_size: int = DEFAULT_FRAME_SIZE


# Delta chunks (docs/FORMAT.md, format 2): a chain never gets deeper than this, so
# reading a chunk decodes at most this many frames below it.
DEFAULT_MAX_DEPTH = 4
# A delta frame holds at most this many raw bytes of consecutive new chunks.
DEFAULT_DELTA_FRAME = 256 * KiB


@dataclass(frozen=True, slots=True)
class DeltaConfig:
    """Whether new chunks of a changed file are stored as deltas against the parent
    version's chunks, and how deep a chain of deltas may get."""

    enabled: bool = True
    max_depth: int = DEFAULT_MAX_DEPTH
    frame_size: int = DEFAULT_DELTA_FRAME
