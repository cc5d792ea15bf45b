"""Intake: Telegram messages with images become recorded work, nothing more.

The handlers here only decide what is asked for (which message, whose, what expiry) and
submit it; the job worker uploads and the outbox sender answers. An album's messages are
gathered in the database by their arrival: each one extends the album's wait, and its
items are held until someone asks for the album (auto-rehost, or a ``/upload`` caption on
one of its messages), so an album gets one answer however its items were spread over
time, handlers or restarts.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import re
from collections.abc import Sequence
from typing import Any

from telegram import Message, Update, User
from telegram.constants import ChatAction, ChatType
from telegram.error import TelegramError
from telegram.ext import ContextTypes

from adapters.telegram.language import group_language
from adapters.telegram.links import (
    expiry_beside_links,
    link_request,
    message_links,
    words_beside_links,
)
from adapters.telegram.sources import has_media, image_sources, is_video_animation
from adapters.telegram.trigger import PLATFORM, Trigger, topic_key, topic_of
from bot.app import Core
from bot.config import TelegramSettings
from bot.i18n import N_, negotiate, translate
from bot.presenting import not_an_image, parse_expiry_argument
from bot.states import BatchState

log = logging.getLogger(__name__)
Context = ContextTypes.DEFAULT_TYPE
UPLOAD_CAPTION = re.compile(r"^/upload(@\w+)?(\s|$)", re.IGNORECASE)
USAGE = N_(
    "Send /upload [duration] as the caption of a photo or image file, reply /upload "
    "to a message that has one, or send /upload <image link> [duration]."
)
ANIMATION = N_(
    "That is an animation, which Telegram makes into an MP4 video, and the image hosts "
    "take no video, so I left it alone. To rehost the GIF itself, send it as a file "
    "(📎 > File, pick the .gif): Telegram then keeps it uncompressed, as a GIF."
)


class Intake:
    def __init__(self, core: Core, settings: TelegramSettings, album_wait: float) -> None:
        self.core = core
        self.settings = settings
        self.album_wait = album_wait
        self._actions: set[asyncio.Task[Any]] = set()

    # --- handlers ------------------------------------------------------------------------

    async def on_upload(self, update: Update, context: Context) -> None:
        message, user = update.effective_message, update.effective_user
        if message is None or user is None:
            return
        text = message.caption if has_media(message) else message.text
        links = [] if has_media(message) else message_links(message)
        if links:  # /upload <link> [duration]
            text = words_beside_links(message)
        argument = (text or "").split(maxsplit=1)[1:]
        expiry = argument[0] if argument else None
        _, _, error = parse_expiry_argument(expiry)
        if error:
            await message.reply_text(error.in_language(await self._language(message, user)) + ".")
            return
        if links:
            await self.rehost_links(
                await self.trigger(message, user, explicit=True, expiry=expiry), links
            )
            return
        target = message if has_media(message) else message.reply_to_message
        if target is None or not has_media(target):
            quoted = message_links(target)  # /upload in reply to a message with links
            if target is not None and quoted:
                trigger = await self.trigger(message, user, explicit=True, expiry=expiry)
                await self.rehost_links(
                    dataclasses.replace(trigger, reply_to=target.message_id), quoted
                )
                return
            await message.reply_text(translate(await self._language(message, user), USAGE))
            return
        trigger = await self.trigger(message, user, explicit=True, expiry=expiry)
        if target is not message:
            trigger = dataclasses.replace(trigger, reply_to=target.message_id)
        await self.rehost(trigger, target, context)

    async def on_private_media(self, update: Update, context: Context) -> None:
        message, user = update.effective_message, update.effective_user
        if message is None or user is None:
            return
        # A caption like "1d" sets the expiry; a forward's caption is its author's, not a
        # request of the forwarder's.
        caption = "" if message.forward_origin is not None else (message.caption or "")
        _, _, error = parse_expiry_argument(caption)
        expiry = caption if caption and not error else None
        trigger = await self.trigger(message, user, explicit=True, expiry=expiry)
        await self.rehost(trigger, message, context)

    async def on_private_link(self, update: Update, context: Context) -> None:
        """A text with links, in a private chat: the images they lead to are rehosted
        (words beside them such as ``1d`` set the expiry, unless it is a forward)."""
        message, user = update.effective_message, update.effective_user
        if message is None or user is None:
            return
        links = message_links(message)
        if not links:
            return
        expiry = None if message.forward_origin is not None else expiry_beside_links(message)
        await self.rehost_links(
            await self.trigger(message, user, explicit=True, expiry=expiry), links
        )

    async def rehost_links(self, trigger: Trigger, links: Sequence[str]) -> None:
        """Image links, rehosted like images; the core fetches them from public addresses
        only, and answers a link to a web page or a private address plainly."""
        await self.core.rehost.submit(link_request(trigger, links))

    async def on_group_media(self, update: Update, context: Context) -> None:
        message, user = update.effective_message, update.effective_user
        if message is None or user is None or user.is_bot:
            return
        if await self.auto_rehost(message):
            await self.rehost(await self.trigger(message, user, explicit=False), message, context)
        elif message.media_group_id is not None:
            # A later /upload caption in the same album may ask for it: hold its items.
            trigger = await self.trigger(message, user, explicit=False)
            request = trigger.request([message], gather=self.album_wait)
            await self.core.rehost.submit(request, wanted=False)

    async def auto_rehost(self, message: Message) -> bool:
        """The topic's own setting (``/autorehost on|off here``), else the group's."""
        chat_id, thread_id = message.chat_id, topic_of(message)
        if thread_id is not None:
            topic = await self.core.library.own_chat_settings(
                PLATFORM, topic_key(chat_id, thread_id)
            )
            if topic is not None:
                return topic.auto_rehost
        if chat_id in self.core.configured_auto_rehost(PLATFORM):
            return True
        return (await self.core.library.chat_settings(PLATFORM, str(chat_id))).auto_rehost

    async def _language(self, message: Message, user: User) -> str:
        """An answer in the chat: the user's language in private, the group's in a group."""
        if message.chat.type == ChatType.PRIVATE:
            return negotiate(user.language_code)
        return await group_language(self.core, message.chat_id)

    # --- recording -----------------------------------------------------------------------

    async def trigger(
        self, message: Message, user: User, *, explicit: bool, expiry: str | None = None
    ) -> Trigger:
        given, duration, _ = parse_expiry_argument(expiry)
        chat, thread_id = message.chat, topic_of(message)
        if not given and thread_id is not None:  # the topic's own default expiry, if any
            topic = await self.core.library.own_chat_settings(
                PLATFORM, topic_key(chat.id, thread_id)
            )
            if topic is not None and topic.default_expiration:
                given, duration, error = parse_expiry_argument(topic.default_expiration)
                if error:
                    given, duration = False, None
        language = negotiate(user.language_code)
        private = chat.type == ChatType.PRIVATE
        public = language if private else await group_language(self.core, chat.id)
        key = f"{PLATFORM}:{chat.id}:{message.message_id}"
        if message.media_group_id is not None:
            key = f"{PLATFORM}:{chat.id}:album:{message.media_group_id}"
        return Trigger(
            chat_id=chat.id,
            chat_title=None if chat.type == ChatType.PRIVATE else (chat.title or "the group"),
            owner_id=user.id,
            owner_name=user.full_name,
            reply_to=message.message_id,
            key=key,
            expiration_given=given,
            expiration=duration,
            explicit=explicit,
            thread_id=thread_id,
            language=language,
            public_language=public,
        )

    async def rehost(self, trigger: Trigger, message: Message, context: Context) -> None:
        if is_video_animation(message):
            if trigger.explicit:  # auto-rehost leaves GIFs be, as any other non-image
                await message.reply_text(translate(trigger.public_language, ANIMATION))
            return
        images, others = image_sources(message)
        if not images:
            if trigger.explicit and others:
                ours = trigger.public_language  # in the chat: its language
                await message.reply_text(
                    translate(
                        ours, "{name} is {reason}.", name=others[0], reason=not_an_image(ours)
                    )
                )
            return
        album_key = f"{PLATFORM}:{message.chat_id}:album:{message.media_group_id}"
        album = message.media_group_id is not None
        if album and trigger.key != album_key:
            # /upload in reply to an album's message: while the album still gathers, the
            # request claims the whole album; later, it is its own request for that message.
            gathering = await self.core.rehost.queue.batch(album_key)
            if gathering is not None and gathering.state == BatchState.OPEN:
                trigger = dataclasses.replace(trigger, key=album_key)
            else:
                album = False
        request = trigger.request([message], gather=self.album_wait if album else 0.0)
        await self.core.rehost.submit(request)
        if not album or message.caption is not None:
            self._show_working(context, trigger.chat_id, trigger.thread_id)

    def _show_working(self, context: Context, chat_id: int, thread_id: int | None) -> None:
        """One "sending photo..." per request (not per image): it costs no flood budget,
        and it is only a courtesy, so it is not awaited by the handler."""

        async def show() -> None:
            try:
                await context.bot.send_chat_action(
                    chat_id, ChatAction.UPLOAD_PHOTO, message_thread_id=thread_id
                )
            except TelegramError as error:
                log.debug("no chat action in %s: %s", chat_id, error)

        task = asyncio.create_task(show())
        self._actions.add(task)
        task.add_done_callback(self._actions.discard)
