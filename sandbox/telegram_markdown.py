"""``parse_mode`` MarkdownV2 and legacy Markdown, as the Bot API parses them.

A port of tdlib's ``parse_markdown_v2`` and ``parse_markdown``: in MarkdownV2 every
one of ``_*[]()~`>#+-=|{}.!`` outside an entity must be escaped with ``\\``, so a bare
URL (``.``) or a filename (``-``) is a 400 ``can't parse entities: Character '.' is
reserved and must be escaped with the preceding '\\'``.
"""

from __future__ import annotations

from sandbox.telegram_entities import (
    Builder,
    Entity,
    EntityParseError,
    byte_offset,
    normalize_url,
    sort_entities,
)

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
        self.out = Builder()
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
            kind, language, _start, opened_at, _part = self.stack[-1]
            name = "PreCode" if kind == "pre" and language else _MDV2_NAMES[kind]
            raise EntityParseError(f"Can't find end of {name} entity at byte offset {opened_at}")
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
        # The quote keeps the newline that ends its last line, as in tdlib.
        end = self.out.offset
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
        opened_at = byte_offset(self.text, self.i)
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
        self.stack.append((kind, language, self.out.offset, opened_at, len(self.out.parts)))

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
            offset = byte_offset(self.text, begin)
            raise EntityParseError(f"Can't find end of a URL at byte offset {offset}")
        self.i += 1
        return "".join(url)


def parse_markdown_v2(text: str) -> tuple[str, list[Entity]]:
    plain, entities = _MarkdownV2Parser(text).run()
    return plain, sort_entities(entities)


_MD_TYPES = {"*": "bold", "_": "italic", "`": "code"}


def parse_markdown(text: str) -> tuple[str, list[Entity]]:
    """Legacy ``Markdown``: no nesting, ``\\`` escapes only ``_*`[``."""
    out = Builder()
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


def _markdown_entity(text: str, begin: int, out: Builder) -> int:
    start = out.offset
    is_pre = text.startswith("```", begin)
    end_mark = "```" if is_pre else ("]" if text[begin] == "[" else text[begin])
    i = begin + (3 if is_pre else 1)
    end = text.find(end_mark, i)
    if end < 0:
        offset = byte_offset(text, begin)
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
