"""Why the bot is rehosting a Telegram message, and for whom: the request it becomes."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from telegram import Message

from adapters.telegram.sources import image_sources
from bot.expiration import Duration
from bot.i18n import ENGLISH, context_languages
from bot.requests import RehostRequest

PLATFORM = "telegram"
# What the batch keeps for the answer (RehostRequest.context): the forum topic the public
# answer goes to, and whether a photo (Telegram's recompressed JPEG) is among the images.
THREAD = "thread_id"
PHOTO = "photo"


def topic_of(message: Message) -> int | None:
    """The forum topic a message is in (None: not a forum, or its General topic)."""
    return message.message_thread_id if message.is_topic_message else None


def topic_key(chat_id: int, thread_id: int) -> str:
    """The chat-settings key of one topic of a forum."""
    return f"{chat_id}:{thread_id}"


@dataclass(frozen=True)
class Trigger:
    chat_id: int
    chat_title: str | None  # None in a private chat
    owner_id: int
    owner_name: str
    reply_to: int  # the message the answer replies to
    key: str  # the platform event it comes from: handling it twice records it once
    expiration_given: bool = False
    expiration: Duration | None = None
    explicit: bool = False  # /upload: answer non-images plainly instead of ignoring them
    thread_id: int | None = None  # the forum topic to answer in
    language: str = ENGLISH  # the owner's (their language_code): private replies
    public_language: str = ENGLISH  # the group's setting: public posts

    @property
    def private(self) -> bool:
        return self.chat_title is None

    def request(self, messages: Sequence[Message], gather: float = 0.0) -> RehostRequest:
        sources = []
        for message in messages:
            sources += image_sources(message)[0]
        context: dict[str, object] = dict(context_languages(self.language, self.public_language))
        if self.thread_id is not None:
            context[THREAD] = self.thread_id
        if any(message.photo for message in messages):
            context[PHOTO] = True
        return RehostRequest(
            platform=PLATFORM,
            chat_id=str(self.chat_id),
            owner_id=str(self.owner_id),
            sources=sources,
            message_id=str(self.reply_to),
            expiration=self.expiration,
            use_default_expiration=not self.expiration_given,
            key=self.key,
            owner_name=self.owner_name,
            chat_title=self.chat_title,
            gather=gather,
            context=context,
            # A group is its own community; a private chat belongs to none.
            community_id=None if self.private else str(self.chat_id),
        )
