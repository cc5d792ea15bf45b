"""Posting results to Telegram, and changing those posts after a deletion."""

from __future__ import annotations

import asyncio
import contextlib
import html
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import TypeVar

from telegram import Bot, Message, ReplyParameters
from telegram.constants import ChatAction, ParseMode
from telegram.error import BadRequest, Forbidden, RetryAfter, TelegramError

from adapters.telegram import render
from adapters.telegram.trigger import PLATFORM, Trigger
from bot.presenting import ResultLine, result_lines, upload_lines
from bot.service import RehostResult, RehostService
from bot.store import BotMessage

log = logging.getLogger(__name__)
T = TypeVar("T")
MAX_RETRY_AFTER = 30.0


async def with_retry(call: Callable[[], Awaitable[T]], attempts: int = 3) -> T:
    """Run a Bot API call, waiting out Telegram's 429 ``retry_after`` a few times."""
    for attempt in range(attempts):
        try:
            return await call()
        except RetryAfter as error:
            if attempt + 1 == attempts:
                raise
            delay = error.retry_after
            seconds = delay if isinstance(delay, (int, float)) else delay.total_seconds()
            await asyncio.sleep(min(float(seconds), MAX_RETRY_AFTER))
    raise AssertionError("unreachable")


class Delivery:
    def __init__(self, bot: Bot, service: RehostService) -> None:
        self.bot = bot
        self.service = service

    async def send(
        self,
        chat_id: int,
        text: str,
        *,
        reply_to: int | None = None,
        keyboard: object = None,
        private: bool = False,
    ) -> Message:
        """Send HTML text; ``private`` texts may hold delete links: no link preview."""
        reply = ReplyParameters(reply_to, allow_sending_without_reply=True) if reply_to else None
        return await with_retry(
            lambda: self.bot.send_message(
                chat_id,
                text,
                parse_mode=ParseMode.HTML,
                reply_parameters=reply,
                reply_markup=keyboard,  # type: ignore[arg-type]
                link_preview_options=render.NO_PREVIEW if private else None,
            )
        )

    @contextlib.asynccontextmanager
    async def working(self, chat_id: int) -> AsyncIterator[None]:
        """Show "sending photo..." in the chat until the block ends (it lasts 5 s a call)."""

        async def keep_showing() -> None:
            while True:
                with contextlib.suppress(TelegramError):
                    await self.bot.send_chat_action(chat_id, ChatAction.UPLOAD_PHOTO)
                await asyncio.sleep(4.5)

        task = asyncio.create_task(keep_showing())
        try:
            yield
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def post(self, trigger: Trigger, results: Sequence[RehostResult]) -> None:
        """Answer a rehost: everything in private, or public links plus a private DM."""
        lines = result_lines(results)
        if trigger.private:
            message = await self.send(
                trigger.chat_id,
                render.private_text(lines),
                reply_to=trigger.reply_to,
                keyboard=render.private_keyboard(lines),
                private=True,
            )
            self._remember(results, message, public=False)
            return
        note = await self._send_delete_links(trigger, results, lines)
        message = await self.send(
            trigger.chat_id,
            render.public_text(lines) + note,
            reply_to=trigger.reply_to,
            keyboard=render.public_keyboard(lines),
        )
        self._remember(results, message, public=True)

    async def _send_delete_links(
        self, trigger: Trigger, results: Sequence[RehostResult], lines: list[ResultLine]
    ) -> str:
        """DM the uploader their delete links; the line to add to the public post."""
        if not any(result.delete_url for result in results):
            return ""
        try:
            message = await self.send(
                trigger.owner_id,
                render.private_text(lines, where=trigger.chat_title),
                keyboard=render.private_keyboard(lines),
                private=True,
            )
        except Forbidden:
            # Never fall back to the group: the link would be public.
            mention = html.escape(trigger.owner_name or "The uploader")
            return (
                f"\n\n{mention}: start a private chat with @{self.bot.username} to get "
                "your delete links; they wait there in /mine."
            )
        self._remember(results, message, public=False)
        return "\n\nDelete links were sent privately."

    def _remember(self, results: Sequence[RehostResult], message: Message, public: bool) -> None:
        for result in results:
            if result.upload is not None:
                self.service.remember_reply(
                    result.upload.id,
                    PLATFORM,
                    str(message.chat_id),
                    str(message.message_id),
                    public=public,
                )

    async def refresh(self, posts: Sequence[BotMessage]) -> None:
        """Re-render bot posts after a deletion; a public post with nothing left goes."""
        for post in posts:
            try:
                await self._refresh_one(post)
            except BadRequest as error:  # already deleted, or not modified
                log.info("could not update message %s: %s", post.message_id, error)

    async def _refresh_one(self, post: BotMessage) -> None:
        uploads = self.service.uploads_in_message(PLATFORM, post.chat_id, post.message_id)
        lines = upload_lines(uploads)
        chat_id, message_id = int(post.chat_id), int(post.message_id)
        if post.visibility == "public":
            if all(u.state != "active" for u in uploads):
                await with_retry(lambda: self.bot.delete_message(chat_id, message_id))
                return
            text, keyboard = render.public_text(lines), render.public_keyboard(lines)
        else:
            text, keyboard = render.private_text(lines), render.private_keyboard(lines)
        await with_retry(
            lambda: self.bot.edit_message_text(
                text,
                chat_id,
                message_id,
                parse_mode=ParseMode.HTML,
                reply_markup=keyboard,
                link_preview_options=render.NO_PREVIEW,
            )
        )
