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
