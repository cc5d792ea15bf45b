"""Message text as the Bot API server turns it into ``text`` + ``entities``.

A port of the parts of tdlib's ``td/telegram/MessageEntity.cpp`` that decide what a
message looks like once Telegram has stored it:

* ``parse_mode`` HTML, MarkdownV2 and legacy Markdown, with tdlib's error messages
  (``can't parse entities: Character '.' is reserved ...``), so a bot that forgets to
  escape a URL fails here as it would in production;
* detection of bot commands, mentions, hashtags and URLs (what makes ``/start`` a
  ``bot_command`` entity for python-telegram-bot's ``CommandHandler``);
* the clean-up of ``fix_formatted_text``: control characters become spaces, ``\\r`` is
  dropped, surrounding spaces and newlines are trimmed.

Offsets and lengths are UTF-16 code units, as everywhere in the Bot API.
Simplifications (documented, deliberate): URLs are detected only with an explicit
scheme, e-mail addresses, cashtags and phone numbers are not detected, and entities
that overlap a detected one are not split.
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
_CONTINUOUS_TYPES = frozenset({"code", "pre", "text_link", "text_mention", "custom_emoji"})
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


def _u16(ch: str) -> int:
    return 2 if ord(ch) > 0xFFFF else 1


def _byte_offset(text: str, index: int) -> int:
    return len(text[:index].encode("utf-8"))


def _is_word_char(ch: str) -> bool:
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
        host = urlsplit(url).hostname
    except ValueError:
        return None
    if not host or "." not in host:
        return None
    return url


def sort_entities(entities: list[Entity]) -> list[Entity]:
    return sorted(
        entities,
        key=lambda e: (e["offset"], -e["length"], _PRIORITY.get(e["type"], 50)),
    )


class _Builder:
    """Accumulates output text and its UTF-16 length while a parser walks its input."""

    def __init__(self) -> None:
        self.parts: list[str] = []
        self.offset = 0
        self.entities: list[Entity] = []

    def emit(self, ch: str) -> None:
        self.parts.append(ch)
        self.offset += _u16(ch)

    @property
    def text(self) -> str:
        return "".join(self.parts)

    def add(self, kind: str, start: int, **extra: Any) -> None:
        if self.offset > start:
            self.entities.append({"type": kind, "offset": start, "length": self.offset - start})
            self.entities[-1].update(extra)


# --- HTML -------------------------------------------------------------------------------

_HTML_TAGS = frozenset(
    {
        "a", "b", "strong", "i", "em", "s", "strike", "del", "u", "ins", "pre", "code",
        "tg-spoiler", "span", "blockquote", "tg-emoji",
    }
)  # fmt: skip
_HTML_SIMPLE = {
    "b": "bold",
    "strong": "bold",
    "i": "italic",
    "em": "italic",
    "u": "underline",
    "ins": "underline",
    "s": "strikethrough",
    "strike": "strikethrough",
    "del": "strikethrough",
    "tg-spoiler": "spoiler",
    "span": "spoiler",
}
_NAMED_ENTITIES = {"lt": "<", "gt": ">", "amp": "&", "quot": '"'}


def _decode_html_entity(text: str, pos: int) -> tuple[str, int] | None:
    """tdlib's decode_html_entity: the character and the index after the reference."""
    end = pos + 1
    if text.startswith("#", end):
        end += 1
        hexa = text.startswith("x", end)
        end += hexa
        digits = "0123456789abcdefABCDEF" if hexa else "0123456789"
        start = end
        while end < len(text) and text[end] in digits:
            end += 1
        code = int(text[start:end], 16 if hexa else 10) if end > start else 0
        if code == 0 or code >= 0x10FFFF or end - pos >= 10:
            return None
        char = chr(code)
    else:
        start = end
        while end < len(text) and text[end].isascii() and text[end].isalpha():
            end += 1
        if text[start:end] not in _NAMED_ENTITIES:
            return None
        char = _NAMED_ENTITIES[text[start:end]]
    if text.startswith(";", end):
        end += 1
    return char, end


class _HtmlParser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.i = 0
        self.out = _Builder()
        # (tag name, argument, utf-16 start, output index of the start)
        self.stack: list[tuple[str, dict[str, str], int, int]] = []

    def error(self, message: str, index: int) -> EntityParseError:
        return EntityParseError(f"{message} at byte offset {_byte_offset(self.text, index)}")

    def run(self) -> tuple[str, list[Entity]]:
        text = self.text
        while self.i < len(text):
            ch = text[self.i]
            if ch == "&" and (decoded := _decode_html_entity(text, self.i)):
                self.out.emit(decoded[0])
                self.i = decoded[1]
            elif ch != "<":
                self.out.emit(ch)
                self.i += 1
            elif text.startswith("</", self.i):
                self.end_tag()
            else:
                self.start_tag()
        if self.stack:
            tag = self.stack[-1][0]
            raise EntityParseError(f"Can't find end tag corresponding to start tag {tag}")
        return self.out.text, self.out.entities

    def _skip_spaces(self) -> None:
        while self.i < len(self.text) and self.text[self.i].isspace():
            self.i += 1

    def _read_until(self, stops: str) -> str:
        start = self.i
        while (
            self.i < len(self.text)
            and not self.text[self.i].isspace()
            and self.text[self.i] not in stops
        ):
            self.i += 1
        return self.text[start : self.i]

    def start_tag(self) -> None:
        begin = self.i
        self.i += 1
        name = self._read_until(">").lower()
        if self.i >= len(self.text):
            raise self.error("Unclosed start tag", begin)
        if name not in _HTML_TAGS:
            raise self.error(f'Unsupported start tag "{name}"', begin)
        attributes: dict[str, str] = {}
        while True:
            self._skip_spaces()
            if self.i >= len(self.text):
                raise self.error(f'Unclosed start tag "{name}"', begin)
            if self.text[self.i] == ">":
                break
            attr = self._read_until("=>").lower()
            if not attr:
                raise self.error(f'Empty attribute name in the tag "{name}"', begin)
            self._skip_spaces()
            attributes[attr] = self._attribute_value(name, begin)
        self.i += 1
        if name == "span" and attributes.get("class") != "tg-spoiler":
            raise self.error('Tag "span" must have class "tg-spoiler"', begin)
        self.stack.append((name, attributes, self.out.offset, len(self.out.parts)))

    def _attribute_value(self, tag: str, begin: int) -> str:
        text = self.text
        if not text.startswith("=", self.i):
            return ""  # a bare attribute such as <blockquote expandable>
        self.i += 1
        self._skip_spaces()
        if self.i >= len(text):
            raise self.error(f'Unclosed start tag "{tag}"', begin)
        quote = text[self.i]
        if quote not in "'\"":
            start = self.i
            while self.i < len(text) and (text[self.i].isalnum() or text[self.i] in ".-"):
                self.i += 1
            if self.i >= len(text) or not (text[self.i].isspace() or text[self.i] == ">"):
                raise self.error("Unexpected end of name token", start)
            return text[start : self.i].lower()
        self.i += 1
        value: list[str] = []
        while self.i < len(text) and text[self.i] != quote:
            if text[self.i] == "&" and (decoded := _decode_html_entity(text, self.i)):
                value.append(decoded[0])
                self.i = decoded[1]
                continue
            value.append(text[self.i])
            self.i += 1
        if self.i >= len(text):
            raise self.error("Unclosed start tag", begin)
        self.i += 1
        return "".join(value)

    def end_tag(self) -> None:
        begin = self.i
        self.i += 2
        name = self._read_until(">").lower()
        self._skip_spaces()
        if not self.text.startswith(">", self.i):
            raise self.error("Unclosed end tag", begin)
        self.i += 1
        if not self.stack:
            raise self.error("Unexpected end tag", begin)
        tag, attributes, start, start_part = self.stack.pop()
        if name and name != tag:
            raise EntityParseError(
                f"Unmatched end tag at byte offset {_byte_offset(self.text, begin)}, "
                f'expected "</{tag}>", found "</{name}>"'
            )
        self._close(tag, attributes, start, start_part)

    def _close(self, tag: str, attributes: dict[str, str], start: int, start_part: int) -> None:
        out = self.out
        if tag in _HTML_SIMPLE:
            out.add(_HTML_SIMPLE[tag], start)
        elif tag == "a":
            url = normalize_url(attributes.get("href") or "".join(out.parts[start_part:]))
            if url is not None:
                out.add("text_link", start, url=url)
        elif tag == "blockquote":
            kind = "expandable_blockquote" if "expandable" in attributes else "blockquote"
            out.add(kind, start)
        elif tag == "tg-emoji":
            out.add("custom_emoji", start, custom_emoji_id=attributes.get("emoji-id", ""))
        elif tag == "code":
            css = attributes.get("class", "")
            language = css.removeprefix("language-") if css.startswith("language-") else ""
            if not self._merge_pre(start, language):
                out.add("code", start, **({"language": language} if language else {}))
        elif not self._merge_pre(start, None):  # pre
            out.add("pre", start)

    def _merge_pre(self, start: int, language: str | None) -> bool:
        """<pre><code class="language-x"> in either nesting order makes one pre entity."""
        entities = self.out.entities
        last = entities[-1] if entities else None
        if not last or (last["offset"], last["length"]) != (start, self.out.offset - start):
            return False
        if language is not None and last["type"] == "pre" and language:
            last["language"] = language
            return True
        if language is None and last["type"] == "code" and last.get("language"):
            last["type"] = "pre"
            return True
        return False


def parse_html(text: str) -> tuple[str, list[Entity]]:
    plain, entities = _HtmlParser(text).run()
    for entity in entities:
        if entity["type"] == "code":
            entity.pop("language", None)  # only pre keeps a language
    return plain, sort_entities(entities)


# --- MarkdownV2 ---------------------------------------------------------------------------

_MDV2_RESERVED = "_*[]()~`>#+-=|{}.!"
_MDV2_NAMES = {
    "bold": "Bold",
    "italic": "Italic",
    "underline": "Underline",
    "strikethrough": "Strikethrough",
    "spoiler": "Spoiler",
    "code": "Code",
    "pre": "Pre",
    "text_link": "TextUrl",
    "custom_emoji": "CustomEmoji",
}
_MDV2_OPEN = {"*": "bold", "~": "strikethrough"}


class _MarkdownV2Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.i = 0
        self.out = _Builder()
        # (entity type, pre language, utf-16 start, byte offset of the opening, output index)
        self.stack: list[tuple[str, str, int, int, int]] = []
        self.quote_start: int | None = None

    def at(self, offset: int) -> str:
        index = self.i + offset
        return self.text[index] if index < len(self.text) else ""

    def run(self) -> tuple[str, list[Entity]]:
        while self.i < len(self.text):
            self.step()
        self._close_quote()
        if self.stack:
            kind, language, _start, byte_offset, _part = self.stack[-1]
            name = "PreCode" if kind == "pre" and language else _MDV2_NAMES[kind]
            raise EntityParseError(f"Can't find end of {name} entity at byte offset {byte_offset}")
        return self.out.text, self.out.entities

    def step(self) -> None:
        ch = self.text[self.i]
        in_code = bool(self.stack) and self.stack[-1][0] in ("code", "pre")
        if not in_code and self._line_start() and self._quote_line():
            return
        if ch == "\\" and 0 < ord(self.at(1) or "\0") <= 126:
            self.out.emit(self.at(1))
            self.i += 2
            return
        reserved = "`" if in_code else _MDV2_RESERVED
        if ch not in reserved:
            self.out.emit(ch)
            self.i += 1
        elif self._ends_top(ch):
            self._end()
        else:
            self._begin(ch)

    def _line_start(self) -> bool:
        return self.i == 0 or self.text[self.i - 1] == "\n"

    def _quote_line(self) -> bool:
        """Handle a line start: '>' opens or continues a blockquote, anything else ends it."""
        if self.text[self.i] == ">":
            if self.quote_start is None:
                self.quote_start = self.out.offset
            self.i += 1
            return True
        self._close_quote()
        return False

    def _close_quote(self) -> None:
        if self.quote_start is None:
            return
        text = self.out.text
        end = self.out.offset - (1 if text.endswith("\n") else 0)
        if end > self.quote_start:
            self.out.entities.append(
                {"type": "blockquote", "offset": self.quote_start, "length": end - self.quote_start}
            )
        self.quote_start = None

    def _ends_top(self, ch: str) -> bool:
        if not self.stack:
            return False
        kind = self.stack[-1][0]
        ends = {
            "bold": ch == "*",
            "italic": ch == "_" and self.at(1) != "_",
            "underline": ch == "_" and self.at(1) == "_",
            "strikethrough": ch == "~",
            "spoiler": ch == "|" and self.at(1) == "|",
            "code": ch == "`",
            "pre": ch == "`" and self.at(1) == "`" and self.at(2) == "`",
            "text_link": ch == "]",
            "custom_emoji": ch == "]",
        }
        return ends[kind]

    def _begin(self, ch: str) -> None:
        byte_offset = _byte_offset(self.text, self.i)
        language = ""
        if ch == "_":
            kind = "underline" if self.at(1) == "_" else "italic"
            self.i += 2 if kind == "underline" else 1
        elif ch in _MDV2_OPEN:
            kind = _MDV2_OPEN[ch]
            self.i += 1
        elif ch == "|" and self.at(1) == "|":
            kind = "spoiler"
            self.i += 2
        elif ch == "[":
            kind = "text_link"
            self.i += 1
        elif ch == "!" and self.at(1) == "[":
            kind = "custom_emoji"
            self.i += 2
        elif ch == "`" and self.at(1) == "`" and self.at(2) == "`":
            kind = "pre"
            language = self._pre_opening()
        elif ch == "`":
            kind = "code"
            self.i += 1
        else:
            raise EntityParseError(
                f"Character '{ch}' is reserved and must be escaped with the preceding '\\'"
            )
        self.stack.append((kind, language, self.out.offset, byte_offset, len(self.out.parts)))

    def _pre_opening(self) -> str:
        """Consume ```language and one leading newline; return the language."""
        self.i += 3
        end = self.i
        while end < len(self.text) and not self.text[end].isspace() and self.text[end] != "`":
            end += 1
        language = ""
        if end != self.i and end < len(self.text) and self.text[end] != "`":
            language = self.text[self.i : end]
            self.i = end
        if self.at(0) in ("\n", "\r"):
            pair = self.at(1) in ("\n", "\r") and self.at(1) != self.at(0)
            self.i += 2 if pair else 1
        return language

    def _end(self) -> None:
        kind, language, start, _byte, start_part = self.stack.pop()
        widths = {"underline": 2, "spoiler": 2, "pre": 3}
        self.i += widths.get(kind, 1)
        if kind in ("text_link", "custom_emoji"):
            label = "".join(self.out.parts[start_part:])
            url = self._link_target(label)
            if kind == "custom_emoji":
                emoji_id = url.partition("id=")[2] if url.startswith("tg://emoji?") else ""
                if emoji_id:
                    self.out.add("custom_emoji", start, custom_emoji_id=emoji_id)
            elif (normalized := normalize_url(url)) is not None:
                self.out.add("text_link", start, url=normalized)
        elif kind == "pre" and language:
            self.out.add("pre", start, language=language)
        else:
            self.out.add(kind, start)

    def _link_target(self, label: str) -> str:
        if self.at(0) != "(":
            return label
        self.i += 1
        begin = self.i
        url: list[str] = []
        while self.i < len(self.text) and self.text[self.i] != ")":
            if self.text[self.i] == "\\" and 0 < ord(self.at(1) or "\0") <= 126:
                url.append(self.at(1))
                self.i += 2
                continue
            url.append(self.text[self.i])
            self.i += 1
        if self.i >= len(self.text):
            offset = _byte_offset(self.text, begin)
            raise EntityParseError(f"Can't find end of a URL at byte offset {offset}")
        self.i += 1
        return "".join(url)


def parse_markdown_v2(text: str) -> tuple[str, list[Entity]]:
    plain, entities = _MarkdownV2Parser(text).run()
    return plain, sort_entities(entities)


# --- legacy Markdown ------------------------------------------------------------------------

_MD_TYPES = {"*": "bold", "_": "italic", "`": "code"}


def parse_markdown(text: str) -> tuple[str, list[Entity]]:
    """Legacy ``Markdown``: no nesting, ``\\`` escapes only ``_*`[``."""
    out = _Builder()
    i = 0
    while i < len(text):
        ch = text[i]
        if ch == "\\" and i + 1 < len(text) and text[i + 1] in "_*`[":
            out.emit(text[i + 1])
            i += 2
            continue
        if ch not in "_*`[":
            out.emit(ch)
            i += 1
            continue
        i = _markdown_entity(text, i, out)
    return out.text, sort_entities(out.entities)


def _markdown_entity(text: str, begin: int, out: _Builder) -> int:
    start = out.offset
    is_pre = text.startswith("```", begin)
    end_mark = "```" if is_pre else ("]" if text[begin] == "[" else text[begin])
    i = begin + (3 if is_pre else 1)
    end = text.find(end_mark, i)
    if end < 0:
        offset = _byte_offset(text, begin)
        raise EntityParseError(f"Can't find end of the entity starting at byte offset {offset}")
    language = ""
    body = text[i:end]
    if is_pre and "\n" in body and body.split("\n", 1)[0].strip():
        language, body = body.split("\n", 1)
    for ch in body:
        out.emit(ch)
    i = end + len(end_mark)
    if is_pre:
        out.add("pre", start, **({"language": language} if language else {}))
    elif text[begin] != "[":
        out.add(_MD_TYPES[text[begin]], start)
    elif text.startswith("(", i) and (close := text.find(")", i)) > 0:
        if (url := normalize_url(text[i + 1 : close])) is not None:
            out.add("text_link", start, url=url)
        i = close + 1
    return i


# --- detection and clean-up ------------------------------------------------------------------

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
        if prev and (_is_word_char(prev) or prev in "/<>"):
            continue
        if not 1 <= len(match.group(1)) <= 64:
            continue
        if match.group(2) is not None and not 3 <= len(match.group(2)) <= 32:
            continue
        after = text[end] if end < len(text) else ""
        if after and (_is_word_char(after) or after in "/<>"):
            continue
        found.append(_span(text, start, end, "bot_command"))
    return found


def _find_mentions(text: str) -> list[Entity]:
    found = []
    for match in _MENTION.finditer(text):
        start, end = match.span()
        if start and _is_word_char(text[start - 1]):
            continue
        after = text[end] if end < len(text) else ""
        if 5 <= len(match.group(1)) <= 32 and not (after and _is_word_char(after)):
            found.append(_span(text, start, end, "mention"))
    return found


def _find_hashtags(text: str) -> list[Entity]:
    found = []
    for match in re.finditer(r"#(\w{1,256})", text):
        start, end = match.span()
        if start and _is_word_char(text[start - 1]):
            continue
        if text.startswith("#", end) or not any(c.isalpha() for c in match.group(1)):
            continue
        found.append(_span(text, start, end, "hashtag"))
    return found


def _find_urls(text: str) -> list[Entity]:
    found = []
    for match in _URL.finditer(text):
        start, end = match.span()
        if start and _is_word_char(text[start - 1]):
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
    blockers = [e for e in given if e["type"] in _CONTINUOUS_TYPES]
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
            new += _u16(ch)
        mapping.extend([new] * _u16(ch))
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
