"""Recognise an image from its bytes and read its size from the header.

`sniff` answers one of three things:
an `ImageInfo` for a raster format some host takes (JPEG, PNG, GIF, WebP, BMP,
TIFF, AVIF, HEIC; which ones a host accepts is the host's choice, see
`ImageInfo.format`), an `Unsupported` for a recognised image or media format
no host takes (SVG, ICO, PSD, JPEG XL, MP4...), or None for bytes that are no
image at all (including a supported signature whose header is broken or
truncated).

AVIF and HEIC are ISO-BMFF files: an ``ftyp`` box names the brands, and the
size sits in an ``ispe`` property inside ``meta``. A file whose ``ftyp`` names
an AVIF or HEIF brand is taken as that format even when no ``ispe`` can be
read (its size is then 0 x 0), as a lenient server does.
"""

from __future__ import annotations

import re
import struct
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeAlias

# Format names as operators write them, by the extension `sniff` reports.
FORMAT_OF_EXTENSION = {
    "jpg": "jpeg",
    "png": "png",
    "gif": "gif",
    "webp": "webp",
    "bmp": "bmp",
    "tiff": "tiff",
    "avif": "avif",
    "heic": "heic",
}
FORMATS = frozenset(FORMAT_OF_EXTENSION.values())


@dataclass(frozen=True)
class ImageInfo:
    mime: str
    extension: str
    width: int
    height: int

    @property
    def format(self) -> str:
        """The format's name: jpeg, png, gif, webp, bmp, tiff, avif or heic."""
        return FORMAT_OF_EXTENSION[self.extension]


@dataclass(frozen=True)
class Unsupported:
    name: str
    mime: str


Sniffed: TypeAlias = ImageInfo | Unsupported | None


def _png(data: bytes) -> ImageInfo | None:
    if len(data) < 24 or data[12:16] != b"IHDR":
        return None
    width, height = struct.unpack(">II", data[16:24])
    return ImageInfo("image/png", "png", width, height)


def _gif(data: bytes) -> ImageInfo | None:
    if len(data) < 10:
        return None
    width, height = struct.unpack("<HH", data[6:10])
    return ImageInfo("image/gif", "gif", width, height)


# Start-of-frame markers carry the size; C4 (DHT), C8 (JPG) and CC (DAC) do not.
_JPEG_SOF = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}
# Markers without a length field.
_JPEG_STANDALONE = frozenset({0x01, *range(0xD0, 0xD8)})


def _jpeg(data: bytes) -> ImageInfo | None:
    pos = 2
    while pos + 4 <= len(data):
        if data[pos] != 0xFF:
            return None
        marker = data[pos + 1]
        if marker == 0xFF:  # fill byte
            pos += 1
            continue
        if marker in _JPEG_STANDALONE:
            pos += 2
            continue
        if marker in (0xD9, 0xDA):  # end of image or start of scan before any frame
            return None
        (length,) = struct.unpack(">H", data[pos + 2 : pos + 4])
        if marker in _JPEG_SOF:
            if pos + 9 > len(data):
                return None
            height, width = struct.unpack(">HH", data[pos + 5 : pos + 9])
            return ImageInfo("image/jpeg", "jpg", width, height)
        pos += 2 + length
    return None


def _webp(data: bytes) -> ImageInfo | None:
    fourcc = data[12:16]
    if len(data) < 30 and fourcc != b"VP8L":
        return None
    if fourcc == b"VP8 " and data[23:26] == b"\x9d\x01\x2a":
        width, height = struct.unpack("<HH", data[26:30])
        return ImageInfo("image/webp", "webp", width & 0x3FFF, height & 0x3FFF)
    if fourcc == b"VP8L" and len(data) >= 25 and data[20] == 0x2F:
        (bits,) = struct.unpack("<I", data[21:25])
        return ImageInfo("image/webp", "webp", (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1)
    if fourcc == b"VP8X":
        width = int.from_bytes(data[24:27], "little") + 1
        height = int.from_bytes(data[27:30], "little") + 1
        return ImageInfo("image/webp", "webp", width, height)
    return None


def _bmp(data: bytes) -> ImageInfo | None:
    if len(data) < 26:
        return None
    (header_size,) = struct.unpack("<I", data[14:18])
    if header_size == 12:  # OS/2 BITMAPCOREHEADER: 16-bit sizes
        width, height = struct.unpack("<HH", data[18:22])
    elif header_size >= 40:
        width, height = struct.unpack("<ii", data[18:26])
    else:
        return None
    # A negative height means rows are stored top-down.
    return ImageInfo("image/bmp", "bmp", abs(width), abs(height))


def _tiff(data: bytes) -> ImageInfo | None:
    endian = "<" if data[:2] == b"II" else ">"
    try:
        (ifd,) = struct.unpack(endian + "I", data[4:8])
        (count,) = struct.unpack(endian + "H", data[ifd : ifd + 2])
        size: dict[int, int] = {}
        for index in range(count):
            start = ifd + 2 + 12 * index
            tag, kind = struct.unpack(endian + "HH", data[start : start + 4])
            if tag in (256, 257):
                # SHORT (3) sits in the first 2 bytes of the value field, LONG (4) in all 4.
                fmt = endian + ("H" if kind == 3 else "I")
                (size[tag],) = struct.unpack_from(fmt, data, start + 8)
    except struct.error:
        return None
    if 256 not in size or 257 not in size:
        return None
    return ImageInfo("image/tiff", "tiff", size[256], size[257])


# --- ISO-BMFF (AVIF, HEIC) ---

_AVIF_BRANDS = frozenset({b"avif", b"avis"})
_HEIF_BRANDS = frozenset({b"heic", b"heix", b"heim", b"heis", b"hevc", b"hevx", b"mif1", b"msf1"})


def _boxes(data: bytes, start: int, end: int) -> list[tuple[bytes, int, int]]:
    """The boxes between `start` and `end`: (type, payload start, payload end)."""
    found: list[tuple[bytes, int, int]] = []
    pos = start
    while pos + 8 <= end:
        size = int.from_bytes(data[pos : pos + 4], "big")
        kind = data[pos + 4 : pos + 8]
        header = 8
        if size == 1:  # a 64-bit size follows the type
            if pos + 16 > end:
                break
            size = int.from_bytes(data[pos + 8 : pos + 16], "big")
            header = 16
        elif size == 0:  # the box runs to the end
            size = end - pos
        if size < header or pos + size > end:
            break
        found.append((kind, pos + header, pos + size))
        pos += size
    return found


def _brands(data: bytes) -> set[bytes]:
    """The major and compatible brands of a leading ``ftyp`` box."""
    # A truncated box keeps the brands that arrived; a bogus size, the major brand.
    size = int.from_bytes(data[:4], "big")
    end = min(size, len(data)) if size >= 16 else 16
    brands = {data[8:12]}
    brands.update(data[pos : pos + 4] for pos in range(16, end - 3, 4))
    return brands


# Full boxes: a version byte and three flag bytes come before their payload.
_FULL_BOXES = frozenset({b"meta", b"ispe"})


def _find_boxes(data: bytes, path: tuple[bytes, ...]) -> list[tuple[int, int]]:
    """The payload spans of the boxes at `path` (for instance meta, iprp, ipco)."""
    spans = [(0, len(data))]
    for wanted in path:
        skip = 4 if wanted in _FULL_BOXES else 0
        spans = [
            (start + skip, end)
            for outer in spans
            for kind, start, end in _boxes(data, *outer)
            if kind == wanted and start + skip <= end
        ]
    return spans


def _ispe_size(data: bytes) -> tuple[int, int]:
    """The largest ``ispe`` (image spatial extents) under meta/iprp/ipco, or (0, 0).

    The largest, not the first: a tiled HEIC lists its tiles' size before the
    whole picture's.
    """
    sizes = [(0, 0)]
    for start, end in _find_boxes(data, (b"meta", b"iprp", b"ipco", b"ispe")):
        if end - start >= 8:
            width, height = struct.unpack(">II", data[start : start + 8])
            sizes.append((width, height))
    return max(sizes, key=lambda size: size[0] * size[1])


def _is_heif(data: bytes) -> bool:
    return data[4:8] == b"ftyp" and bool(_brands(data) & (_AVIF_BRANDS | _HEIF_BRANDS))


def _heif(data: bytes) -> ImageInfo | None:
    brands = _brands(data)
    width, height = _ispe_size(data)
    if brands & _AVIF_BRANDS:
        return ImageInfo("image/avif", "avif", width, height)
    return ImageInfo("image/heic", "heic", width, height)


_SUPPORTED: tuple[tuple[Callable[[bytes], bool], Callable[[bytes], ImageInfo | None]], ...] = (
    (lambda d: d.startswith(b"\x89PNG\r\n\x1a\n"), _png),
    (lambda d: d[:6] in (b"GIF87a", b"GIF89a"), _gif),
    (lambda d: d.startswith(b"\xff\xd8\xff"), _jpeg),
    (lambda d: d[:4] == b"RIFF" and d[8:12] == b"WEBP", _webp),
    (lambda d: d[:2] == b"BM", _bmp),
    (lambda d: d[:4] in (b"II*\x00", b"MM\x00*"), _tiff),
    (_is_heif, _heif),
)

_SVG = re.compile(
    rb"^\s*(<\?xml[^>]*>\s*)?(<!--.*?-->\s*)*(<!DOCTYPE svg[^>]*>\s*)?<svg[\s>]", re.S
)


def _unsupported(data: bytes) -> Unsupported | None:
    if data[4:8] == b"ftyp":  # ISO-BMFF that is neither AVIF nor HEIF: a video
        return Unsupported("mp4", "video/mp4")
    if data[:4] == b"\x00\x00\x01\x00" and len(data) >= 6 and data[4:6] != b"\x00\x00":
        return Unsupported("ico", "image/vnd.microsoft.icon")
    if data[:4] == b"8BPS":
        return Unsupported("psd", "image/vnd.adobe.photoshop")
    if data[:4] == b"qoif":
        return Unsupported("qoi", "image/qoi")
    if data[:2] == b"\xff\x0a" or data[:12] == b"\x00\x00\x00\x0cJXL \r\n\x87\n":
        return Unsupported("jxl", "image/jxl")
    if data[:12] == b"\x00\x00\x00\x0cjP  \r\n\x87\n" or data[:4] == b"\xff\x4f\xff\x51":
        return Unsupported("jp2", "image/jp2")
    if _SVG.match(data[:4096]):
        return Unsupported("svg", "image/svg+xml")
    return None


def sniff(data: bytes) -> Sniffed:
    """Classify `data`: supported image (with its size), unsupported format, or not an image."""
    for matches, parse in _SUPPORTED:
        if matches(data):
            return parse(data)
    return _unsupported(data)
