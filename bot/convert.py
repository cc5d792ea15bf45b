"""Converting an image no chosen host takes into one it does: HEIC to JPEG, TIFF to PNG,
AVIF to PNG (or JPEG when a host takes no PNG).

Pillow does the work (pillow-heif adds HEIC), in a worker thread so the event loop never
waits on a decoder. Memory stays bounded: the pixel count is read from the header and an
image over :data:`MAX_PIXELS` is refused before it is decoded (Pillow's own
decompression-bomb check stays in force too), and the result is spooled to a temporary
file past a megabyte, like a download.
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import tempfile
import warnings
from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, UnidentifiedImageError

from bot.errors import RehostError
from bot.hosts.base import UploadSource
from bot.media import AVIF, HEIC, JPEG, PNG, TIFF, ImageType
from bot.said import N_, Said

# 50 megapixels: every phone camera fits; decoded, at most about 200 MB of RGBA.
MAX_PIXELS = 50_000_000
SPOOL_THRESHOLD = 1024 * 1024
JPEG_QUALITY = 90
# What each format is turned into, in order of preference.
TARGETS: dict[ImageType, tuple[ImageType, ...]] = {
    HEIC: (JPEG, PNG),
    TIFF: (PNG, JPEG),
    AVIF: (PNG, JPEG),
}
_registered = False


@dataclass(frozen=True)
class Converted:
    source: UploadSource
    note: Said  # for the user: "converted from HEIC to JPEG"


class ConversionError(RehostError):
    """The image could not be converted; the message is fit to show the user."""


def target_for(image_type: ImageType, accepted: Collection[str]) -> ImageType | None:
    """The format to convert ``image_type`` into, given the formats some host accepts."""
    for target in TARGETS.get(image_type, ()):
        if target.name in accepted:
            return target
    return None


async def convert(source: UploadSource, target: ImageType) -> Converted:
    """``source`` as ``target`` (in a worker thread)."""
    return await asyncio.to_thread(_convert, source, target)


def _convert(source: UploadSource, target: ImageType) -> Converted:
    _register_heif()
    try:
        with source.open() as stream, warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(stream)
            width, height = image.size
            if width * height > MAX_PIXELS:
                raise ConversionError(
                    Said(
                        N_(
                            "the image is {width}x{height} pixels; the most I convert is "
                            "{most} megapixels"
                        ),
                        {"width": width, "height": height, "most": MAX_PIXELS // 1_000_000},
                    )
                )
            image.load()
            data = _encode(image, target)
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as error:
        raise ConversionError(
            Said(N_("the {format} file could not be read"), {"format": source.image_type.label})
        ) from error
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise ConversionError(N_("the image has too many pixels to convert")) from None
    name = f"{Path(source.filename).stem}.{target.extension}"
    digest = hashlib.sha256(data).hexdigest()
    if len(data) <= SPOOL_THRESHOLD:
        converted = UploadSource(name, target, len(data), digest, data=data, nsfw=source.nsfw)
    else:
        suffix = f".{target.extension}"
        with tempfile.NamedTemporaryFile(prefix="rehost-", suffix=suffix, delete=False) as spool:
            spool.write(data)
        converted = UploadSource(
            name, target, len(data), digest, path=Path(spool.name), temporary=True,
            nsfw=source.nsfw,
        )  # fmt: skip
    note = Said(
        N_("converted from {source} to {target}"),
        {"source": source.image_type.label, "target": target.label},
    )
    return Converted(converted, note)


def _encode(image: Image.Image, target: ImageType) -> bytes:
    out = io.BytesIO()
    if target is JPEG:
        if image.mode not in ("RGB", "L"):
            image = image.convert("RGB")
        image.save(out, format="JPEG", quality=JPEG_QUALITY, optimize=True)
    else:
        if image.mode not in ("RGB", "RGBA", "L", "LA", "P", "I", "I;16"):
            image = image.convert("RGBA")
        image.save(out, format="PNG", optimize=False)
    return out.getvalue()


def _register_heif() -> None:
    global _registered
    if not _registered:
        from pillow_heif import register_heif_opener

        register_heif_opener()
        _registered = True
