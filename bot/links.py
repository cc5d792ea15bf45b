"""Image links in what users write: finding them, and the sources they become.

A link becomes a :class:`~bot.requests.SourceRef` with ``user_link`` set, so that the core
fetches it only from public addresses (:mod:`bot.linkguard`); what it holds is judged by
its bytes like any attachment, and a web page is answered as one.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from urllib.parse import unquote, urlsplit

from bot.i18n import N_
from bot.requests import SourceRef

MAX_LINKS = 10  # per message or command: more is someone pasting a page of links
MAX_NAME = 80
_LINK = re.compile(r"https?://[^\s<>\"'`|]+", re.IGNORECASE)
_TRAILING = ".,;:!?*_~"
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
LINK_USAGE = N_("Give an image link starting with http:// or https://.")


def _trimmed(link: str) -> str:
    """A link found in prose without the punctuation that followed it."""
    while link and link[-1] in _TRAILING + ")]":
        closing = link[-1]
        if closing in ")]":
            opening = "(" if closing == ")" else "["
            if link.count(opening) >= link.count(closing):
                break  # balanced: part of the link (Wikipedia's "..._(film)")
        link = link[:-1]
    return link


def find_links(text: str | None) -> list[str]:
    """The http(s) links in ``text``, in order, each once (Discord's ``<link>`` too)."""
    found = (_trimmed(match.group(0)) for match in _LINK.finditer(text or ""))
    return unique_links(found)


def unique_links(links: Iterable[str]) -> list[str]:
    """``links`` without repeats or non-web ones, at most :data:`MAX_LINKS`."""
    kept: list[str] = []
    for link in links:
        try:
            parts = urlsplit(link)
        except ValueError:  # e.g. an unclosed IPv6 bracket
            continue
        if parts.scheme.lower() in ("http", "https") and parts.netloc and link not in kept:
            kept.append(link)
    return kept[:MAX_LINKS]


def without_links(text: str | None) -> str:
    """``text`` with its links taken out (what is left may name an expiry)."""
    return " ".join(_LINK.sub(" ", text or "").split())


def link_filename(url: str) -> str:
    """How a link's image is named: the last part of its path, else its host."""
    try:
        parts = urlsplit(url)
        name = unquote(parts.path.rstrip("/").rpartition("/")[2]) or parts.hostname or ""
    except ValueError:
        name = ""
    name = _CONTROL.sub("", name).strip() or "image"
    return name[:MAX_NAME]


def link_sources(links: Iterable[str]) -> list[SourceRef]:
    """One source per link, keyed by its place (unique within its request)."""
    return [
        SourceRef(filename=link_filename(link), url=link, item_key=f"link:{index}", user_link=True)
        for index, link in enumerate(unique_links(links))
    ]
