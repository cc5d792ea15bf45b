"""Deleting on the owner's request: confirm, delete, then change the bot's posts."""

from __future__ import annotations

import html

from adapters.telegram import render
from adapters.telegram.delivery import Delivery, with_retry
from adapters.telegram.trigger import PLATFORM
from bot.app import Core
from bot.deletion import DeleteStatus
from bot.i18n import ENGLISH, translate


class Deletions:
    def __init__(self, core: Core, delivery: Delivery) -> None:
        self.core = core
        self.delivery = delivery

    async def ask_to_confirm(
        self, chat_id: int, user_id: int, upload_id: int, language: str = ENGLISH
    ) -> None:
        upload = await self.core.library.owned_upload(upload_id, PLATFORM, str(user_id))
        if upload is None or not upload.active:
            refusal = translate(language, "You have no live upload #{id}; see /mine.", id=upload_id)
            await with_retry(lambda: self.delivery.send(chat_id, refusal))
            return
        await with_retry(
            lambda: self.delivery.send(
                chat_id,
                render.confirm_text(upload, language),
                keyboard=render.confirm_keyboard(upload_id, language),
                private=True,
            )
        )

    async def delete(self, user_id: int, upload_id: int, language: str = ENGLISH) -> str:
        """Delete as ``user_id`` (refused unless theirs); the HTML to tell them privately."""
        result = await self.core.deleter.delete(upload_id, PLATFORM, str(user_id))
        text = html.escape(result.message_in(language))
        if result.status is DeleteStatus.OPEN_LINK and result.delete_url:
            text += f"\n{html.escape(result.delete_url)}"
        await self.delivery.refresh(result.bot_messages)
        return text
