"""Delivery: outbox rows become Telegram messages, paced under Telegram's flood limits.

Telegram allows about one message per second in a chat, 20 per minute in a group and 30
per second overall, and answers more with 429 and a ``retry_after``. Sends are paced per
chat and overall (aiolimiter); a 429 postpones that row, and so that chat, for the whole
``retry_after`` while other chats go on (the sender takes turns across chats). Nothing is
ever posted into a chat because it is flooded.

Telegram has no idempotency key: a crash between a send and its record would send it
again at the next start (at-least-once). The window is kept to the one database write
that follows each send.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dtm
import html
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import TypeVar

from aiolimiter import AsyncLimiter
from telegram import Bot, InlineKeyboardMarkup, Message, ReplyParameters
from telegram.constants import ParseMode
from telegram.error import BadRequest, Forbidden, NetworkError, RetryAfter, TimedOut

from adapters.telegram import render
from adapters.telegram.language import group_language
from adapters.telegram.trigger import PHOTO, PLATFORM, THREAD
from bot.app import Core
from bot.i18n import ENGLISH, languages_of, negotiate, translate
from bot.outbox import OutboxRow
from bot.presenting import upload_lines
from bot.replyplan import PlannedMessage, lines, public_view, uploads_of
from bot.sending import Delivered
from bot.states import Visibility
from bot.store import BotMessage

log = logging.getLogger(__name__)
T = TypeVar("T")
PHOTO_NOTICE = "telegram-photo-recompressed"


@dataclass(frozen=True)
class Pace:
    """Leaky buckets ``(capacity, period)``, leaking ``capacity`` per ``period``: per chat,
    per group (on top), and overall. A bucket sends at most ``capacity + rate x window`` in
    any window, so these stay within Telegram's sliding limits: 5 in 5 s in a chat (about
    one a second), 20 a minute in a group, 30 a second overall."""

    per_chat: tuple[float, float] = (1, 1.25)  # a margin for the network's jitter
    per_group: tuple[float, float] = (10, 60.0)
    overall: tuple[float, float] = (10, 0.5)


class Pacer:
    def __init__(self, pace: Pace) -> None:
        self.pace = pace
        self._overall = AsyncLimiter(*pace.overall)
        self._chats: dict[int, list[AsyncLimiter]] = {}

    async def wait(self, chat_id: int) -> None:
        limiters = self._chats.get(chat_id)
        if limiters is None:
            limiters = [AsyncLimiter(*self.pace.per_chat)]
            if chat_id < 0:
                limiters.append(AsyncLimiter(*self.pace.per_group))
            self._chats[chat_id] = limiters
        for limiter in limiters:
            await limiter.acquire()
        await self._overall.acquire()


def retry_after_seconds(error: RetryAfter) -> float:
    value = error.retry_after
    return value.total_seconds() if isinstance(value, dtm.timedelta) else float(value)


async def with_retry(call: Callable[[], Awaitable[T]], attempts: int = 5) -> T:
    """Run an interactive Bot API call (an edit, a command's answer), waiting out each
    429 for its whole ``retry_after``."""
    for attempt in range(attempts):
        try:
            return await call()
        except RetryAfter as error:
            if attempt + 1 == attempts:
                raise
            await asyncio.sleep(retry_after_seconds(error))
    raise AssertionError("unreachable")


class Delivery:
    def __init__(self, bot: Bot, core: Core, pacer: Pacer) -> None:
        self.bot = bot
        self.core = core
        self.pacer = pacer

    async def deliver(self, row: OutboxRow) -> Delivered:
        """Send one outbox row; how it went, for the sender to record."""
        message = row.message
        chat_id = int(message.chat_id) if message.chat_id is not None else int(message.owner_id)
        if message.refresh_message_id is not None:
            return await self._deliver_refresh(row, chat_id, message.refresh_message_id)
        batch = await self.core.rehost.queue.batch(row.batch)
        context = batch.context if batch is not None else {}
        public = message.visibility is Visibility.PUBLIC
        # The public answer goes to the source's forum topic; private parts go to the
        # owner's private chat, which has none.
        thread = context.get(THREAD) if public else None
        photo_note = (
            not public
            and bool(context.get(PHOTO))
            and any(item.upload_id is not None for item in message.items)
            and await self._claim_photo_note(row)
        )
        languages = languages_of(context)
        if batch is None and message.language:  # a notice from the core
            languages = (negotiate(message.language),) * 2
        text, keyboard, hidden = await self._render(row, message, photo_note, languages)
        await self.pacer.wait(chat_id)
        try:
            sent = await self.send(
                chat_id,
                text,
                reply_to=int(message.reply_to) if message.reply_to else None,
                keyboard=keyboard,
                private=not public,
                thread_id=int(thread) if thread is not None else None,
                hidden=hidden,
            )
        except RetryAfter as error:
            return Delivered.wait(retry_after_seconds(error))
        except Forbidden as error:
            await self._release_photo_note(row, photo_note)
            if message.visibility is Visibility.PRIVATE and message.chat_id is None:
                return Delivered("unreachable", reason=error.message)
            return Delivered("failed", reason=f"forbidden: {error.message}")
        except BadRequest as error:
            await self._release_photo_note(row, photo_note)
            return Delivered("failed", reason=f"bad request: {error.message}")
        except (TimedOut, NetworkError) as error:
            return Delivered("retry", reason=str(error))
        return Delivered.sent(str(sent.chat_id), str(sent.message_id))

    async def _claim_photo_note(self, row: OutboxRow) -> bool:
        """Whether this private answer is the one to say, once per user, that Telegram
        recompressed the photo (this row again, when it is sent again)."""
        owner = row.message.owner_id
        return await self.core.library.claim_notice(
            PLATFORM, owner, PHOTO_NOTICE, f"outbox:{row.id}"
        )

    async def _release_photo_note(self, row: OutboxRow, claimed: bool) -> None:
        if claimed:
            owner = row.message.owner_id
            await self.core.library.release_notice(
                PLATFORM, owner, PHOTO_NOTICE, f"outbox:{row.id}"
            )

    async def _deliver_refresh(self, row: OutboxRow, chat_id: int, message_id: str) -> Delivered:
        """Re-render a bot post whose uploads changed (moved to another host)."""
        post = BotMessage(0, PLATFORM, str(chat_id), message_id, row.message.visibility)
        try:
            await self._refresh_one(post)
        except RetryAfter as error:
            return Delivered.wait(retry_after_seconds(error))
        except BadRequest as error:  # gone meanwhile, or already showing this
            log.info("could not update message %s: %s", message_id, error)
        except (TimedOut, NetworkError) as error:
            return Delivered("retry", reason=str(error))
        return Delivered.sent(str(chat_id), message_id)

    async def _render(
        self,
        row: OutboxRow,
        message: PlannedMessage,
        photo_note: bool = False,
        languages: tuple[str, str] = (ENGLISH, ENGLISH),
    ) -> tuple[str, InlineKeyboardMarkup | None, bool]:
        """Text, keyboard, and whether it shows spoilers (so no link preview);
        ``languages``: the owner's (private) and the chat's (public)."""
        mine, ours = languages
        records = await uploads_of(message, self.core.library.upload)
        shown = lines(message, records.get)
        if message.visibility is Visibility.PRIVATE:
            where = message.about_chat or None if message.chat_id is None else None
            note = message.note_in(mine)
            heading = html.escape(note) if note else None
            text = render.private_text(shown, where=where, heading=heading, language=mine)
            if photo_note:
                text += render.photo_note(mine)
            return text, render.private_keyboard(shown, mine), False
        text = render.public_text(shown, owner=message.owner_name or None, language=ours)
        if message.tells_where_private_went:
            text += await self._private_note(row, message, ours)
        return text, render.public_keyboard(shown, ours), any(line.spoiler for line in shown)

    async def _private_note(
        self, row: OutboxRow, message: PlannedMessage, language: str = ENGLISH
    ) -> str:
        if await self.core.rehost.outbox.private_outcome(row.batch) == "sent":
            return "\n\n" + translate(language, "Delete links were sent privately.")
        mention = html.escape(message.owner_name or translate(language, "The uploader"))
        return "\n\n" + translate(
            language,
            "{user}: start a private chat with @{bot} to get your delete links;"
            " they wait there in /mine.",
            user=mention,
            bot=self.bot.username,
        )

    async def send(
        self,
        chat_id: int,
        text: str,
        *,
        reply_to: int | None = None,
        keyboard: InlineKeyboardMarkup | None = None,
        private: bool = False,
        thread_id: int | None = None,
        hidden: bool = False,
    ) -> Message:
        """Send HTML text; ``private`` texts may hold delete links, and ``hidden`` ones
        spoilers: no link preview. ``thread_id``: the forum topic to post in; if the topic
        is gone meanwhile, the message goes to the group's General topic instead."""
        reply = ReplyParameters(reply_to, allow_sending_without_reply=True) if reply_to else None
        try:
            return await self.bot.send_message(
                chat_id,
                text,
                parse_mode=ParseMode.HTML,
                reply_parameters=reply,
                reply_markup=keyboard,
                link_preview_options=render.NO_PREVIEW if private or hidden else None,
                message_thread_id=thread_id,
            )
        except BadRequest as error:
            if thread_id is None or "thread not found" not in error.message.lower():
                raise
            log.info("topic %s of chat %s is gone; answering in General", thread_id, chat_id)
        return await self.send(
            chat_id, text, reply_to=reply_to, keyboard=keyboard, private=private, hidden=hidden
        )

    # --- after a deletion ----------------------------------------------------------------

    async def refresh(self, posts: Sequence[BotMessage]) -> None:
        """Re-render bot posts after a deletion; a public post with nothing left goes."""
        for post in posts:
            if post.platform != PLATFORM:
                continue
            try:
                await self._refresh_one(post)
            except BadRequest as error:  # already deleted, or not modified
                log.info("could not update message %s: %s", post.message_id, error)

    async def _refresh_one(self, post: BotMessage) -> None:
        uploads = await self.core.library.uploads_in_message(
            PLATFORM, post.chat_id, post.message_id
        )
        chat_id, message_id = int(post.chat_id), int(post.message_id)
        if post.visibility == Visibility.PUBLIC:
            if not any(upload.active for upload in uploads):
                await with_retry(lambda: self.bot.delete_message(chat_id, message_id))
                return
            hidden = await self.core.library.hidden_uploads(upload.id for upload in uploads)
            shown = [
                dataclasses.replace(line, spoiler=line.upload.id in hidden)
                for line in upload_lines(public_view(uploads))
                if line.upload is not None
            ]
            # Still the group's language (its setting), as when it was posted.
            ours = await group_language(self.core, chat_id) if chat_id < 0 else ENGLISH
            text = render.public_text(shown, language=ours)
            keyboard = render.public_keyboard(shown, ours)
        else:
            # An edit carries no language code: the one its owner last used.
            shown = upload_lines(uploads)
            owner = uploads[0].owner_id if uploads else None
            mine = await self.core.languages.of(PLATFORM, owner) if owner else None
            text = render.private_text(shown, language=mine or ENGLISH)
            keyboard = render.private_keyboard(shown, mine or ENGLISH)
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
