"""What the benchmark processes share: the API key, blob naming, the image builder."""

from __future__ import annotations

import zlib
from pathlib import Path

from sandbox.samples import png

ROOT = Path(__file__).resolve().parent.parent
API_KEY = "bench-key-0f3a9c51d7e2"
MB = 1 << 20


def blob_name(prefix: str, index: int) -> str:
    return f"{prefix}-{index}.png"


def blob_url(base_url: str, prefix: str, index: int) -> str:
    return f"{base_url}/cdn/{blob_name(prefix, index)}"


def image(prefix: str, index: int, size: int) -> bytes:
    """A real PNG of at least ``size`` bytes, different for every (prefix, index)."""
    seed = zlib.crc32(prefix.encode()) & 0xFF
    color = (index & 0xFF, (index >> 8) & 0xFF, seed)
    return png(1 + index % 7, 1, color=color, pad_to=size)
