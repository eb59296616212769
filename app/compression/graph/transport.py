"""Entropy coding of a model file for transport: zstd, streamed so no file sits whole in memory."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

import zstandard

LEVEL = 3  # zstd's default: fast enough to run on every upload and every download
CHUNK = 1024 * 1024


def zstd_size(path: Path, level: int = LEVEL) -> int:
    """Bytes the file takes once zstd-compressed (measured by compressing it, not estimated)."""
    compressor = zstandard.ZstdCompressor(level=level)
    with path.open("rb") as src:
        return sum(len(chunk) for chunk in compressor.read_to_iter(src, read_size=CHUNK))


def zstd_stream(src: BinaryIO, level: int = LEVEL) -> Iterator[bytes]:
    """Compress a readable stream chunk by chunk, closing it at the end."""
    compressor = zstandard.ZstdCompressor(level=level)
    with src:
        yield from compressor.read_to_iter(src, read_size=CHUNK, write_size=CHUNK)
