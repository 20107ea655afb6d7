"""The vocabulary of reprocas: ids and small frozen values. Imports nothing of ours."""

from reprocas.model.chunking import ChunkingConfig, CompressionConfig
from reprocas.model.ids import ObjectId, is_hex_prefix, prefix_range

__all__ = ["ChunkingConfig", "CompressionConfig", "ObjectId", "is_hex_prefix", "prefix_range"]
