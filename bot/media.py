"""What an image really is, judged by its bytes, and how large it may be.

File names and declared MIME types lie (a PDF renamed ``.png``); the first bytes do not.
The formats recognised are those some host accepts; which host takes which is each host's
setting (``formats``), checked before anything is sent.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

# How many leading bytes :func:`sniff` needs to decide.
SNIFF_BYTES = 16


@dataclass(frozen=True)
class ImageType:
    mime: str
    extension: str
    name: str  # how hosts' format settings name it (``formats = ["jpeg", ...]``)

    @property
    def label(self) -> str:
        return self.name.upper() if self.name != "webp" else "WebP"


PNG = ImageType("image/png", "png", "png")
JPEG = ImageType("image/jpeg", "jpg", "jpeg")
GIF = ImageType("image/gif", "gif", "gif")
WEBP = ImageType("image/webp", "webp", "webp")
BMP = ImageType("image/bmp", "bmp", "bmp")
TIFF = ImageType("image/tiff", "tiff", "tiff")
AVIF = ImageType("image/avif", "avif", "avif")
HEIC = ImageType("image/heic", "heic", "heic")

SUPPORTED = (PNG, JPEG, GIF, WEBP, BMP, TIFF, AVIF, HEIC)
BY_NAME = {image_type.name: image_type for image_type in SUPPORTED}
# What platforms may call these files (their bytes decide in the end: see sniff).
IMAGE_MIME_TYPES = frozenset({t.mime for t in SUPPORTED} | {"image/heif"})
IMAGE_EXTENSIONS = frozenset({f".{t.extension}" for t in SUPPORTED} | {".jpeg", ".tif", ".heif"})
# ISO base media files (``....ftyp<brand>``): the major brand says which image format.
_AVIF_BRANDS = (b"avif", b"avis")
_HEIC_BRANDS = (b"heic", b"heix", b"hevc", b"hevx", b"heim", b"heis", b"mif1", b"msf1")


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
    if len(head) >= 12 and head[4:8] == b"ftyp":
        if head[8:12] in _AVIF_BRANDS:
            return AVIF
        if head[8:12] in _HEIC_BRANDS:
            return HEIC
    return None


def format_list(types: Iterable[ImageType]) -> str:
    """``JPEG, PNG and GIF``."""
    labels = [t.label for t in types]
    return labels[0] if len(labels) == 1 else ", ".join(labels[:-1]) + " and " + labels[-1]


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
