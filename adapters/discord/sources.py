"""Which Discord attachments are images to rehost, and live links to download them.

Images are image attachments of any kind Discord marks as one (GIFs too: a GIF posted on
Discord is a plain file, rehosted as it is), a message's own or, for a forward, those of
the message it forwards. A spoiler attachment is marked so on its source: the answer hides
it and the host is told it is NSFW.

Attachment URLs are signed and expire: ``ex`` in their query is the Unix time (hex) after
which the CDN refuses them, about a day after the message was served. A job that waited
(a restart after a long downtime, a long queue) may hold a dead link, so the resolver the
worker calls before downloading re-signs a link that has expired or is about to, through
``POST /attachments/refresh-urls``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from pathlib import PurePosixPath
from urllib.parse import parse_qs, urlsplit

import discord
from discord.http import Route

from adapters.discord.links import is_attachment_link
from bot.errors import SourceUnavailable
from bot.media import IMAGE_EXTENSIONS, IMAGE_MIME_TYPES
from bot.requests import SourceRef
from bot.said import N_

log = logging.getLogger(__name__)

PLATFORM = "discord"
# Re-sign a link with less than this left: a download must start before it expires.
REFRESH_MARGIN = 60.0
LINK_EXPIRED = N_("Discord's link to this file has expired and could not be renewed; post it again")


def is_image(attachment: discord.Attachment) -> bool:
    """Judged by Discord's content type (or the name when there is none); the core
    checks the bytes anyway."""
    content_type = (attachment.content_type or "").split(";")[0].strip().lower()
    if content_type:
        return content_type in IMAGE_MIME_TYPES
    return PurePosixPath(attachment.filename).suffix.lower() in IMAGE_EXTENSIONS


def source_of(attachment: discord.Attachment) -> SourceRef:
    """A spoiler (``SPOILER_`` name, or the spoiler flag) stays hidden in the answer."""
    return SourceRef(
        filename=attachment.filename,
        url=attachment.url,
        declared_size=attachment.size,
        declared_mime=attachment.content_type,
        item_key=str(attachment.id),
        spoiler=attachment.is_spoiler(),
    )


def attachments_of(message: discord.Message) -> list[discord.Attachment]:
    """A message's own attachments, then those of the message it forwards: a forward
    has none of its own and carries the original's in ``message_snapshots``."""
    found = list(message.attachments)
    for snapshot in message.message_snapshots:
        found.extend(snapshot.attachments)
    return found


def split_attachments(
    attachments: Sequence[discord.Attachment],
) -> tuple[list[SourceRef], list[str]]:
    """The images to rehost, and the names of the attachments that are not images."""
    images = [source_of(a) for a in attachments if is_image(a)]
    others = [a.filename for a in attachments if not is_image(a)]
    return images, others


def link_expiry(url: str) -> float | None:
    """When a signed attachment URL stops working (its ``ex``), if it says."""
    values = parse_qs(urlsplit(url).query).get("ex")
    if not values:
        return None
    try:
        return float(int(values[0], 16))
    except ValueError:
        return None


class AttachmentLinks:
    """The Discord resolver: an attachment's URL, re-signed when it is stale."""

    def __init__(
        self,
        client: discord.Client,
        *,
        clock: Callable[[], float] = time.time,
        margin: float = REFRESH_MARGIN,
    ) -> None:
        self.client = client
        self._clock = clock
        self.margin = margin

    async def resolve(self, ref: SourceRef) -> str:
        if ref.url is None:
            raise SourceUnavailable(N_("the file cannot be downloaded"))
        if ref.user_link and not is_attachment_link(ref.url):
            return ref.url  # a link to elsewhere: nothing for Discord to renew
        expires = link_expiry(ref.url)
        if expires is None or expires - self._clock() > self.margin:
            return ref.url
        return await self.refresh(ref.url)

    async def refresh(self, url: str) -> str:
        """``url`` signed anew by Discord; ValueError (with a user-fit message) if not."""
        route = Route("POST", "/attachments/refresh-urls")
        try:
            answer = await self.client.http.request(route, json={"attachment_urls": [url]})
        except discord.HTTPException as error:
            log.warning(
                "Discord did not renew an attachment link (HTTP %s, code %s)",
                error.status,
                error.code,
            )
            raise SourceUnavailable(LINK_EXPIRED) from error
        for item in answer.get("refreshed_urls", []) if isinstance(answer, dict) else []:
            if item.get("original") == url and item.get("refreshed"):
                return str(item["refreshed"])
        log.warning("Discord's answer to refresh-urls did not renew the link")
        raise SourceUnavailable(LINK_EXPIRED)
