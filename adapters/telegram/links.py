"""Image links in Telegram messages: ``/upload <link>``, and links sent in a private chat.

Telegram marks the links in a text itself: ``url`` entities (a link written out, maybe
without its scheme, as Telegram also detects ``example.org/cat.png``) and ``text_link``
ones (words linked to an address). Every link found is a user's link: the core fetches it
from public addresses only (:mod:`bot.linkguard`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

from telegram import Message, MessageEntity

from adapters.telegram.trigger import Trigger
from bot.links import link_sources, unique_links, without_links
from bot.presenting import parse_expiry_argument
from bot.requests import RehostRequest

LINK_ENTITIES: list[str | None] = [MessageEntity.URL, MessageEntity.TEXT_LINK]


def _link_entities(message: Message) -> dict[MessageEntity, str]:
    return message.parse_entities(LINK_ENTITIES) or message.parse_caption_entities(LINK_ENTITIES)


def message_links(message: Message | None) -> list[str]:
    """The web links of a message's text (or caption), in order, each once."""
    if message is None:
        return []
    found = []
    for entity, text in sorted(_link_entities(message).items(), key=lambda e: e[0].offset):
        link = entity.url if entity.type == MessageEntity.TEXT_LINK else text
        if link and "://" not in link:
            link = "http://" + link  # as Telegram opens it
        if link:
            found.append(link)
    return unique_links(found)


def words_beside_links(message: Message) -> str:
    """The message's text without its links (``/upload 1d`` of ``/upload <link> 1d``)."""
    text = message.text or message.caption or ""
    for shown in _link_entities(message).values():
        text = text.replace(shown, " ")
    return without_links(text)


def expiry_beside_links(message: Message) -> str | None:
    """What is written beside the links, when it names an expiry (``1d``); else None."""
    rest = words_beside_links(message)
    _, _, error = parse_expiry_argument(rest or None)
    return rest if rest and not error else None


def link_request(trigger: Trigger, links: Sequence[str]) -> RehostRequest:
    """The request to rehost ``links`` for the trigger's owner (answered like an image)."""
    return dataclasses.replace(trigger.request([]), sources=link_sources(links))
