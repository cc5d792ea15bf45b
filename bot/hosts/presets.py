"""The built-in hosts: the five services in the seed documents."""

from __future__ import annotations

from dataclasses import dataclass

MB = 1024 * 1024


@dataclass(frozen=True)
class Preset:
    dialect: str
    endpoint: str
    max_bytes: int


PRESETS: dict[str, Preset] = {
    "zg.is": Preset("imgbb", "https://zg.is/1/upload", 32 * MB),
    "imgz.io": Preset("chevereto", "https://www.imgz.io/api/1/upload", 10 * MB),
    "imagehosting.me": Preset("chevereto", "https://imagehosting.me/api/1/upload", 10 * MB),
    "uploadimage.io": Preset("chevereto", "https://uploadimage.io/api/1/upload", 10 * MB),
    "images-uploader.com": Preset("chevereto", "https://images-uploader.com/api/1/upload", 10 * MB),
}

# Limits assumed for a custom endpoint when the operator does not state one.
DEFAULT_MAX_BYTES = {"imgbb": 32 * MB, "chevereto": 10 * MB}
DIALECTS = tuple(DEFAULT_MAX_BYTES)
# What each dialect takes by default (a host's ``formats`` setting overrides it): ImgBB as
# documented; Chevereto 4 as installed (TIFF is off unless the site enables it).
DEFAULT_FORMATS: dict[str, frozenset[str]] = {
    "imgbb": frozenset({"jpeg", "png", "gif", "webp", "bmp", "tiff"}),
    "chevereto": frozenset({"jpeg", "png", "gif", "webp", "bmp", "avif"}),
}
