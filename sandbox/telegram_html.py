"""``parse_mode="HTML"`` as the Bot API parses it (a port of tdlib's ``parse_html``).

Supported tags are Telegram's: b/strong, i/em, u/ins, s/strike/del, tg-spoiler,
span class="tg-spoiler", a href, code, pre (with code class="language-x"), blockquote
(expandable), tg-emoji. Anything else, a bare ``<``, or an unclosed tag is a 400
``can't parse entities`` with tdlib's wording; a bare ``&`` is kept as text.
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
        self.out = Builder()
        # (tag name, argument, utf-16 start, output index of the start)
        self.stack: list[tuple[str, dict[str, str], int, int]] = []

    def error(self, message: str, index: int) -> EntityParseError:
        return EntityParseError(f"{message} at byte offset {byte_offset(self.text, index)}")

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
                f"Unmatched end tag at byte offset {byte_offset(self.text, begin)}, "
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
