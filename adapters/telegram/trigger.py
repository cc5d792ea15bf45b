"""Why the bot is rehosting a Telegram message, and for whom: the request it becomes."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from telegram import Message

from adapters.telegram.sources import image_sources
from bot.expiration import Duration
from bot.requests import RehostRequest

PLATFORM = "telegram"


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

    @property
    def private(self) -> bool:
        return self.chat_title is None

    def request(self, messages: Sequence[Message], gather: float = 0.0) -> RehostRequest:
        sources = []
        for message in messages:
            sources += image_sources(message)[0]
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
        )
