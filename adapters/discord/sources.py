"""Which Discord attachments are images to rehost, and the service request for them."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import PurePosixPath

import discord

from bot.expiration import Duration
from bot.service import RehostRequest, SourceRef

PLATFORM = "discord"
IMAGE_MIME_TYPES = frozenset(
    {"image/png", "image/jpeg", "image/gif", "image/webp", "image/bmp", "image/tiff"}
)
IMAGE_EXTENSIONS = frozenset({".png", ".jpg", ".jpeg", ".gif", ".webp", ".bmp", ".tif", ".tiff"})


def is_image(attachment: discord.Attachment) -> bool:
    """Judged by Discord's content type (or the name when there is none); the service
    checks the bytes anyway."""
    content_type = (attachment.content_type or "").split(";")[0].strip().lower()
    if content_type:
        return content_type in IMAGE_MIME_TYPES
    return PurePosixPath(attachment.filename).suffix.lower() in IMAGE_EXTENSIONS


def source_of(attachment: discord.Attachment) -> SourceRef:
    return SourceRef(
        filename=attachment.filename,
        url=attachment.url,
        declared_size=attachment.size,
        declared_mime=attachment.content_type,
    )


def split_attachments(
    attachments: Sequence[discord.Attachment],
) -> tuple[list[SourceRef], list[str]]:
    """The images to rehost, and the names of the attachments that are not images."""
    images = [source_of(a) for a in attachments if is_image(a)]
    others = [a.filename for a in attachments if not is_image(a)]
    return images, others


def rehost_request(
    *,
    chat_id: int,
    owner_id: int,
    sources: Sequence[SourceRef],
    message_id: int | None = None,
    expiry: tuple[bool, Duration | None] = (False, None),
) -> RehostRequest:
    """``expiry`` is ``(given, duration)``: not given means the channel's or bot's default."""
    given, duration = expiry
    return RehostRequest(
        platform=PLATFORM,
        chat_id=str(chat_id),
        owner_id=str(owner_id),
        sources=sources,
        message_id=str(message_id) if message_id is not None else None,
        expiration=duration,
        use_default_expiration=not given,
    )
