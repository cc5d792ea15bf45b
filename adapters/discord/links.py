"""Image links in Discord messages: in the text, and in the embeds Discord made of them.

When someone posts a link to an image, Discord adds an ``image`` embed for it (its ``url``
is the link); a bot's or webhook's ``rich`` embed may carry an image of its own. A Discord
attachment link pasted as text (``cdn.discordapp.com/attachments/...``) expires like any
attachment's, so the resolver renews it (:func:`is_attachment_link`) before it is fetched.
Every link found here is a user's link: the core fetches it from public addresses only.
"""

from __future__ import annotations

import re
from urllib.parse import parse_qs, urlsplit

import discord

from bot.links import find_links, unique_links

# The CDN's attachment paths (``/attachments/{channel}/{id}/{name}``); the emulator serves
# proxied ones under ``/media``.
_ATTACHMENT_PATH = re.compile(r"^(?:/media)?/(?:ephemeral-)?attachments/\d+/\d+/[^/]+$")
_SIGNATURE = ("ex", "is", "hm")


def embed_image_links(embed: discord.Embed) -> list[str]:
    """The image an embed shows as such: an ``image`` embed's link, or an embed's image."""
    if embed.type == "image":
        return [link for link in (embed.url or embed.thumbnail.url,) if link]
    return [embed.image.url] if embed.image.url else []


def message_links(
    message: discord.Message, *, bot_user: discord.ClientUser | None = None
) -> list[str]:
    """The message's image links, and those of a message it forwards, each once. None in
    the bot's own messages: their links are its uploads, and in DMs their delete links."""
    if bot_user is not None and message.author.id == bot_user.id:
        return []
    texts = [message.content]
    embeds = list(message.embeds)
    for snapshot in message.message_snapshots:
        texts.append(snapshot.content)
        embeds.extend(snapshot.embeds)
    found = [link for text in texts for link in find_links(text)]
    for embed in embeds:
        found.extend(embed_image_links(embed))
    return unique_links(found)


def is_attachment_link(url: str) -> bool:
    """Whether ``url`` looks like a signed Discord attachment link (one Discord renews)."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return False
    query = parse_qs(parts.query)
    return bool(_ATTACHMENT_PATH.match(parts.path)) and all(key in query for key in _SIGNATURE)
