"""What in a Telegram message is an image to rehost, and how to download it."""

from __future__ import annotations

from telegram import Bot, Message
from telegram.error import BadRequest, TelegramError

from bot.errors import SourceUnavailable
from bot.media import IMAGE_MIME_TYPES
from bot.requests import Resolver, SourceRef
from bot.said import N_, Said, Size


def has_media(message: Message | None) -> bool:
    # An animation (a GIF Telegram made into an MP4) comes with its file as ``document``.
    return message is not None and bool(message.photo or message.document)


def is_video_animation(message: Message) -> bool:
    """A GIF that Telegram turned into an MP4 "animation": a video, which no image host
    takes (the GIF itself arrives only when it is sent as a file)."""
    animation = message.animation
    return animation is not None and (animation.mime_type or "").lower() not in IMAGE_MIME_TYPES


def image_sources(message: Message) -> tuple[list[SourceRef], list[str]]:
    """The message's images, and the names of attachments that are not images. A forward
    carries the media itself: it is an image like the original. A photo its sender covered
    (``has_media_spoiler``) stays a spoiler."""
    spoiler = bool(message.has_media_spoiler)
    if message.photo:
        # Telegram lists the sizes it made of a photo, smallest first.
        largest = max(message.photo, key=lambda size: (size.width * size.height, size.file_size))
        ref = SourceRef(
            filename=f"photo-{message.message_id}.jpg",
            file_id=largest.file_id,
            declared_size=largest.file_size,
            declared_mime="image/jpeg",
            source_key=f"telegram:{largest.file_unique_id}",
            item_key=str(message.message_id),
            spoiler=spoiler,
        )
        return [ref], []
    document = message.document
    if document is None:
        return [], []
    name = document.file_name or f"file-{message.message_id}"
    if (document.mime_type or "").lower() not in IMAGE_MIME_TYPES:
        return [], [name]
    ref = SourceRef(
        filename=name,
        file_id=document.file_id,
        declared_size=document.file_size,
        declared_mime=document.mime_type,
        source_key=f"telegram:{document.file_unique_id}",
        item_key=str(message.message_id),
        spoiler=spoiler,
    )
    return [ref], []


def make_resolver(bot: Bot, max_download_bytes: int) -> Resolver:
    """Turn a file_id into a download URL (getFile), refusing files over the limit."""
    most = Size(max_download_bytes)

    def too_large(size: int | None) -> SourceUnavailable:
        if size is None:
            message = N_(
                "the file is too large; Telegram lets bots download files of at most {most}"
            )
            return SourceUnavailable(Said(message, {"most": most}))
        message = N_("the file is {size}; Telegram lets bots download files of at most {most}")
        return SourceUnavailable(Said(message, {"size": Size(size), "most": most}))

    async def resolve(ref: SourceRef) -> str:
        if ref.user_link and ref.url is not None:
            return ref.url  # a user's link, fetched as it is (from public addresses only)
        if ref.declared_size is not None and ref.declared_size > max_download_bytes:
            raise too_large(ref.declared_size)
        assert ref.file_id is not None
        try:
            file = await bot.get_file(ref.file_id)
        except BadRequest as error:
            if "too big" in error.message.lower():
                raise too_large(None) from None
            raise SourceUnavailable(N_("Telegram would not hand over the file")) from None
        except TelegramError:
            raise SourceUnavailable(N_("the file could not be fetched from Telegram")) from None
        if not file.file_path:
            raise SourceUnavailable(N_("Telegram gave no download link for the file"))
        return file.file_path

    return resolve
