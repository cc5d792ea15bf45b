"""Shared pieces of Telegram's message formatting: entities, offsets, URLs.

Offsets and lengths are UTF-16 code units, as everywhere in the Bot API; tdlib's
(``td/telegram/MessageEntity.cpp``) error messages give UTF-8 byte offsets.
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import urlsplit

Entity = dict[str, Any]

# Entity types Telegram finds by itself; any the client passes are ignored and re-detected.
DETECTED_TYPES = frozenset(
    {"mention", "hashtag", "cashtag", "bot_command", "url", "email", "phone_number"}
)
# Entities a detected entity may not overlap (tdlib's "continuous" entities).
CONTINUOUS_TYPES = frozenset({"code", "pre", "text_link", "text_mention", "custom_emoji"})
# tdlib's MessageEntity::get_type_priority, used to order entities at the same offset.
_PRIORITY = {
    "blockquote": 0,
    "expandable_blockquote": 0,
    "pre": 11,
    "code": 20,
    "text_link": 49,
    "text_mention": 49,
    "bold": 90,
    "italic": 91,
    "underline": 92,
    "strikethrough": 93,
    "spoiler": 94,
    "custom_emoji": 99,
}


class EntityParseError(ValueError):
    """The text cannot be parsed with the requested ``parse_mode``.

    ``str(error)`` is tdlib's detail; the server answers
    ``Bad Request: can't parse entities: <detail>``.
    """


def utf16_len(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


def u16(ch: str) -> int:
    return 2 if ord(ch) > 0xFFFF else 1


def byte_offset(text: str, index: int) -> int:
    return len(text[:index].encode("utf-8"))


def is_word_char(ch: str) -> bool:
    return ch.isalnum() or ch == "_"


def normalize_url(url: str) -> str | None:
    """tdlib's ``check_url``, roughly: the URL to store, or None when it is not one."""
    url = url.strip()
    if not url:
        return None
    match = re.match(r"([A-Za-z][A-Za-z0-9+.-]*)://", url)
    scheme = match.group(1).lower() if match else "http"
    if not match:
        url = "http://" + url
    if scheme in ("tg", "ton"):
        return url
    if scheme not in ("http", "https", "ftp"):
        return None
    try:
        parts = urlsplit(url)
        host = parts.hostname
    except ValueError:
        return None
    if not host or "." not in host:
        return None
    # tdlib stores "telegram.org" as "http://telegram.org/": scheme and root path added.
    if parts.path:
        return url
    host_end = url.index("://") + 3 + len(parts.netloc)
    return url[:host_end] + "/" + url[host_end:]


def sort_entities(entities: list[Entity]) -> list[Entity]:
    return sorted(
        entities,
        key=lambda e: (e["offset"], -e["length"], _PRIORITY.get(e["type"], 50)),
    )


class Builder:
    """Accumulates output text and its UTF-16 length while a parser walks its input."""

    def __init__(self) -> None:
        self.parts: list[str] = []
        self.offset = 0
        self.entities: list[Entity] = []

    def emit(self, ch: str) -> None:
        self.parts.append(ch)
        self.offset += u16(ch)

    @property
    def text(self) -> str:
        return "".join(self.parts)

    def add(self, kind: str, start: int, **extra: Any) -> None:
        if self.offset > start:
            self.entities.append({"type": kind, "offset": start, "length": self.offset - start})
            self.entities[-1].update(extra)
