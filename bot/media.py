"""What an image really is, judged by its bytes, and how large it may be.

File names and declared MIME types lie (a PDF renamed ``.png``); the first bytes do not.
Only the formats every supported host accepts are recognised.
"""

from __future__ import annotations

from dataclasses import dataclass

# How many leading bytes :func:`sniff` needs to decide.
SNIFF_BYTES = 16


@dataclass(frozen=True)
class ImageType:
    mime: str
    extension: str


PNG = ImageType("image/png", "png")
JPEG = ImageType("image/jpeg", "jpg")
GIF = ImageType("image/gif", "gif")
WEBP = ImageType("image/webp", "webp")
BMP = ImageType("image/bmp", "bmp")
TIFF = ImageType("image/tiff", "tiff")

SUPPORTED = (PNG, JPEG, GIF, WEBP, BMP, TIFF)


def sniff(head: bytes) -> ImageType | None:
    """The image type of a file from its first :data:`SNIFF_BYTES` bytes, or ``None``."""
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return PNG
    if head.startswith(b"\xff\xd8\xff"):
        return JPEG
    if head.startswith((b"GIF87a", b"GIF89a")):
        return GIF
    if len(head) >= 12 and head.startswith(b"RIFF") and head[8:12] == b"WEBP":
        return WEBP
    if head.startswith(b"BM") and len(head) >= 14:
        return BMP
    if head.startswith((b"II*\x00", b"MM\x00*")):
        return TIFF
    return None


def human_size(size: int) -> str:
    """``31457280`` -> ``30 MB`` (binary multiples, as hosts state their limits)."""
    value = float(size)
    for unit in ("bytes", "KB", "MB", "GB"):
        if value < 1024 or unit == "GB":
            if unit == "bytes":
                return f"{int(value)} bytes"
            return f"{value:.1f}".rstrip("0").rstrip(".") + f" {unit}"
        value /= 1024
    raise AssertionError("unreachable")
