"""Message text as the Bot API server turns it into ``text`` + ``entities``.

A port of the parts of tdlib's ``td/telegram/MessageEntity.cpp`` that decide what a
message looks like once Telegram has stored it:

* ``parse_mode`` HTML, MarkdownV2 and legacy Markdown (``telegram_html``,
  ``telegram_markdown``), with tdlib's error messages;
* detection of bot commands, mentions, hashtags and URLs (what makes ``/start`` a
  ``bot_command`` entity for python-telegram-bot's ``CommandHandler``);
* the clean-up of ``fix_formatted_text``: control characters become spaces, ``\\r`` is
  dropped, surrounding spaces and newlines are trimmed, entities of only spaces vanish.

Simplifications (deliberate): URLs are detected only with an explicit scheme; e-mail
addresses, cashtags and phone numbers are not detected; entities that overlap a
detected one are not split.
"""

from __future__ import annotations

import re

from sandbox.telegram_entities import (
    CONTINUOUS_TYPES,
    DETECTED_TYPES,
    Entity,
    EntityParseError,
    is_word_char,
    sort_entities,
    u16,
    utf16_len,
)
from sandbox.telegram_html import parse_html
from sandbox.telegram_markdown import parse_markdown, parse_markdown_v2

__all__ = ["EntityParseError", "find_entities", "fix_text", "format_text", "utf16_len"]

_COMMAND = re.compile(r"/([A-Za-z0-9_]*)(?:@([A-Za-z0-9_]*))?")
_MENTION = re.compile(r"@([A-Za-z0-9_]*)")
_URL = re.compile(r"(?:https?|ftp|tg)://[^\s<>\"]+", re.IGNORECASE)


def _span(text: str, start: int, end: int, kind: str) -> Entity:
    return {"type": kind, "offset": utf16_len(text[:start]), "length": utf16_len(text[start:end])}


def _find_commands(text: str) -> list[Entity]:
    found = []
    for match in _COMMAND.finditer(text):
        start, end = match.span()
        prev = text[start - 1] if start else ""
        if prev and (is_word_char(prev) or prev in "/<>"):
            continue
        if not 1 <= len(match.group(1)) <= 64:
            continue
        if match.group(2) is not None and not 3 <= len(match.group(2)) <= 32:
            continue
        after = text[end] if end < len(text) else ""
        if after and (is_word_char(after) or after in "/<>"):
            continue
        found.append(_span(text, start, end, "bot_command"))
    return found


def _find_mentions(text: str) -> list[Entity]:
    found = []
    for match in _MENTION.finditer(text):
        start, end = match.span()
        if start and is_word_char(text[start - 1]):
            continue
        after = text[end] if end < len(text) else ""
        if 5 <= len(match.group(1)) <= 32 and not (after and is_word_char(after)):
            found.append(_span(text, start, end, "mention"))
    return found


def _find_hashtags(text: str) -> list[Entity]:
    found = []
    for match in re.finditer(r"#(\w{1,256})", text):
        start, end = match.span()
        if start and is_word_char(text[start - 1]):
            continue
        if text.startswith("#", end) or not any(c.isalpha() for c in match.group(1)):
            continue
        found.append(_span(text, start, end, "hashtag"))
    return found


def _find_urls(text: str) -> list[Entity]:
    found = []
    for match in _URL.finditer(text):
        start, end = match.span()
        if start and is_word_char(text[start - 1]):
            continue
        while end > start and text[end - 1] in ".,;:!?'":
            end -= 1
        if text[start:end].endswith(")") and text.count("(", start, end) < text.count(
            ")", start, end
        ):
            end -= 1
        found.append(_span(text, start, end, "url"))
    return found


def find_entities(text: str) -> list[Entity]:
    """The entities Telegram detects by itself in a message text."""
    found = _find_commands(text) + _find_mentions(text) + _find_hashtags(text) + _find_urls(text)
    # A command's "/x" inside a URL is not a command: keep the longest non-overlapping spans.
    kept: list[Entity] = []
    for entity in sorted(found, key=lambda e: (e["offset"], -e["length"])):
        if not kept or entity["offset"] >= kept[-1]["offset"] + kept[-1]["length"]:
            kept.append(entity)
    return kept


def _overlaps(a: Entity, b: Entity) -> bool:
    return bool(a["offset"] < b["offset"] + b["length"] and b["offset"] < a["offset"] + a["length"])


def merge_entities(given: list[Entity], found: list[Entity]) -> list[Entity]:
    """Client entities plus detected ones that do not cut through code, pre or links."""
    given = [e for e in given if e["type"] not in DETECTED_TYPES]
    blockers = [e for e in given if e["type"] in CONTINUOUS_TYPES]
    extra = [f for f in found if not any(_overlaps(f, b) for b in blockers)]
    return sort_entities(given + extra)


def _clean(text: str) -> tuple[str, list[int]]:
    """Control characters to spaces, no ``\\r``; and a map old UTF-16 offset -> new."""
    out: list[str] = []
    mapping = [0]
    new = 0
    for ch in text:
        keep = ch != "\r"
        if keep:
            out.append(" " if ord(ch) < 32 and ch != "\n" else ch)
            new += u16(ch)
        mapping.extend([new] * u16(ch))
    return "".join(out), mapping


def fix_text(text: str, entities: list[Entity]) -> tuple[str, list[Entity]]:
    """tdlib's fix_formatted_text: clean, trim, drop empty entities, add detected ones."""
    cleaned, mapping = _clean(text)
    limit = len(mapping) - 1
    moved: list[Entity] = []
    for entity in entities:
        start = mapping[min(entity["offset"], limit)]
        end = mapping[min(entity["offset"] + entity["length"], limit)]
        moved.append({**entity, "offset": start, "length": end - start})
    stripped = cleaned.rstrip(" \n")
    first = min((e["offset"] for e in moved if e["length"] > 0), default=utf16_len(stripped))
    lead = len(stripped) - len(stripped.lstrip(" \n"))
    lead = min(lead, first)  # spaces and newlines are single UTF-16 units
    final = stripped[lead:]
    size = utf16_len(final)
    kept: list[Entity] = []
    for entity in moved:
        start = max(entity["offset"] - lead, 0)
        end = min(entity["offset"] + entity["length"] - lead, size)
        if end > start and _has_content(final, start, end):
            kept.append({**entity, "offset": start, "length": end - start})
    return final, merge_entities(kept, find_entities(final))


def _has_content(text: str, start: int, end: int) -> bool:
    """Whether the UTF-16 range holds something besides spaces and newlines."""
    encoded = text.encode("utf-16-le")[start * 2 : end * 2]
    return bool(encoded.decode("utf-16-le", "ignore").strip(" \n"))


def format_text(
    text: str, parse_mode: str | None, entities: list[Entity] | None
) -> tuple[str, list[Entity]]:
    """What Telegram stores for ``text`` sent with ``parse_mode`` or explicit ``entities``.

    Raises EntityParseError for markup Telegram rejects and ValueError("unsupported
    parse_mode") for an unknown mode.
    """
    if entities is not None:
        return fix_text(text, [dict(e) for e in entities])
    mode = (parse_mode or "").lower()
    parsers = {"html": parse_html, "markdownv2": parse_markdown_v2, "markdown": parse_markdown}
    if mode and mode not in parsers:
        raise ValueError("unsupported parse_mode")
    plain, parsed = parsers[mode](text) if mode else (text, [])
    return fix_text(plain, parsed)
