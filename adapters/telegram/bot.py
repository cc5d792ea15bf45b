"""The Telegram adapter: python-telegram-bot handlers that call the rehost service.

Everything with a delete link happens in private chats. In groups the bot posts viewer and
direct links only and sends the uploader their delete links in private; a user who never
started the bot (Telegram answers 403) is told in one line to start it, and the links wait
for them in /mine.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import datetime as dtm
import html
import logging
import re
from typing import Any

from telegram import BotCommand, Message, Update, User
from telegram.constants import ChatMemberStatus, ChatType
from telegram.ext import (
    Application,
    CallbackQueryHandler,
    CommandHandler,
    ContextTypes,
    MessageHandler,
    filters,
)

from adapters.telegram import render
from adapters.telegram.albums import AlbumCollector
from adapters.telegram.delivery import Delivery, with_retry
from adapters.telegram.sources import has_media, image_sources, make_resolver
from adapters.telegram.trigger import PLATFORM, Trigger
from bot.app import Core
from bot.config import TelegramSettings
from bot.deletion import DeleteStatus
from bot.presenting import (
    NOT_AN_IMAGE,
    chat_expiry_phrase,
    parse_expiry_argument,
)
from bot.service import RecoveredBatch

log = logging.getLogger(__name__)

Context = ContextTypes.DEFAULT_TYPE
AnyApplication = Application[Any, Any, Any, Any, Any, Any]
MEDIA = filters.PHOTO | filters.Document.ALL
UPLOAD_CAPTION = re.compile(r"^/upload(@\w+)?(\s|$)", re.IGNORECASE)
USAGE = (
    "Send /upload [duration] as the caption of a photo or image file, or reply /upload "
    "to a message that has one."
)
COMMANDS = [
    BotCommand("upload", "rehost the photo this replies to (or captions)"),
    BotCommand("mine", "your live uploads, with delete buttons (private)"),
    BotCommand("delete", "delete one of your uploads: /delete ID (private)"),
    BotCommand("autorehost", "admins: /autorehost on|off [duration]"),
    BotCommand("help", "how to use this bot"),
]


class TelegramAdapter:
    name = "telegram"

    def __init__(
        self,
        core: Core,
        settings: TelegramSettings,
        *,
        album_wait: float = 1.5,
        poll_timeout: float = 10.0,
    ) -> None:
        self.core = core
        self.settings = settings
        self.service = core.rehost
        self._album_wait = album_wait
        self._poll_timeout = poll_timeout
        self._app: AnyApplication | None = None
        self._albums: AlbumCollector | None = None
        self._delivery: Delivery | None = None
        self._recovery: asyncio.Task[None] | None = None

    # --- lifecycle -----------------------------------------------------------------------

    def build(self) -> AnyApplication:
        builder = Application.builder().token(self.settings.token)
        if self.settings.base_url and self.settings.base_file_url:
            builder = builder.base_url(self.settings.base_url).base_file_url(
                self.settings.base_file_url
            )
        app: AnyApplication = builder.build()
        private, groups = filters.ChatType.PRIVATE, filters.ChatType.GROUPS
        app.add_handler(CommandHandler(["start", "help"], self.on_help))
        app.add_handler(CommandHandler("upload", self.on_upload))
        app.add_handler(
            MessageHandler(MEDIA & filters.CaptionRegex(UPLOAD_CAPTION), self.on_upload)
        )
        app.add_handler(CommandHandler("mine", self.on_mine))
        app.add_handler(CommandHandler("delete", self.on_delete))
        app.add_handler(CommandHandler("autorehost", self.on_autorehost))
        app.add_handler(MessageHandler(private & MEDIA, self.on_private_media))
        app.add_handler(MessageHandler(groups & MEDIA, self.on_group_media))
        app.add_handler(CallbackQueryHandler(self.on_button))
        app.add_error_handler(self.on_error)
        return app

    async def start(self) -> None:
        app = self._app = self.build()
        await app.initialize()
        self.service.resolvers[PLATFORM] = make_resolver(app.bot, self.settings.max_download_bytes)
        self._delivery = Delivery(app.bot, self.service)
        self._albums = AlbumCollector(self.service, self._deliver, self._album_wait)
        await app.start()
        try:
            await with_retry(lambda: app.bot.set_my_commands(COMMANDS))
        except Exception:
            log.warning("could not register the command list with Telegram", exc_info=True)
        assert app.updater is not None
        await app.updater.start_polling(
            poll_interval=0,
            timeout=dtm.timedelta(seconds=self._poll_timeout),
            allowed_updates=[Update.MESSAGE, Update.CALLBACK_QUERY],
        )
        self._recovery = asyncio.create_task(self._recover())

    async def stop(self) -> None:
        app = self._app
        if app is None:
            return
        if self._recovery is not None:
            self._recovery.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._recovery
        if self._albums is not None:
            await self._albums.close()
        if app.updater is not None and app.updater.running:
            await app.updater.stop()
        if app.running:
            await app.stop()
        await app.shutdown()
        self._app = None

    @property
    def delivery(self) -> Delivery:
        assert self._delivery is not None, "the adapter is not started"
        return self._delivery

    async def _recover(self) -> None:
        """Answer the rehosts a previous run did not finish."""
        for batch in await self.service.recover(PLATFORM):
            try:
                await self.delivery.post(_recovered_trigger(batch), batch.results)
            except Exception:
                log.exception("could not post a recovered rehost in chat %s", batch.chat_id)

    # --- rehosting -----------------------------------------------------------------------

    def _trigger(
        self, message: Message, user: User, *, explicit: bool, expiry: str | None = None
    ) -> Trigger:
        given, duration, _ = parse_expiry_argument(expiry)
        chat = message.chat
        return Trigger(
            chat_id=chat.id,
            chat_title=None if chat.type == ChatType.PRIVATE else (chat.title or "the group"),
            owner_id=user.id,
            owner_name=user.full_name,
            reply_to=message.message_id,
            expiration_given=given,
            expiration=duration,
            explicit=explicit,
        )

    async def _rehost(self, trigger: Trigger, message: Message) -> None:
        images, others = image_sources(message)
        if not images:
            if trigger.explicit and others:
                await message.reply_text(f"{others[0]} is {NOT_AN_IMAGE}.")
            return
        if message.media_group_id is not None:
            assert self._albums is not None
            self._albums.add(message, trigger)
            return
        await self._deliver(trigger, self.service.enqueue(trigger.request([message])))

    async def _deliver(self, trigger: Trigger, batch: str) -> None:
        async with self.delivery.working(trigger.chat_id):
            results = await self.service.run_batch(batch)
        await self.delivery.post(trigger, results)

    async def on_upload(self, update: Update, context: Context) -> None:
        message, user = update.effective_message, update.effective_user
        if message is None or user is None:
            return
        text = message.caption if has_media(message) else message.text
        argument = (text or "").split(maxsplit=1)[1:]
        expiry = argument[0] if argument else None
        _, _, error = parse_expiry_argument(expiry)
        if error:
            await message.reply_text(f"{error}.")
            return
        target = message if has_media(message) else message.reply_to_message
        if target is None or not has_media(target):
            await message.reply_text(USAGE)
            return
        trigger = self._trigger(message, user, explicit=True, expiry=expiry)
        if target is not message:
            trigger = dataclasses.replace(trigger, reply_to=target.message_id)
        await self._rehost(trigger, target)

    async def on_private_media(self, update: Update, context: Context) -> None:
        message, user = update.effective_message, update.effective_user
        if message is None or user is None:
            return
        caption = message.caption or ""
        _, _, error = parse_expiry_argument(caption)
        expiry = caption if caption and not error else None  # a caption like "1d" sets expiry
        await self._rehost(self._trigger(message, user, explicit=True, expiry=expiry), message)

    async def on_group_media(self, update: Update, context: Context) -> None:
        message, user = update.effective_message, update.effective_user
        if message is None or user is None or user.is_bot:
            return
        if self._auto_rehost(message.chat_id):
            await self._rehost(self._trigger(message, user, explicit=False), message)
        elif message.media_group_id is not None and self._albums is not None:
            self._albums.add(message, None)  # a later /upload caption may claim the album

    def _auto_rehost(self, chat_id: int) -> bool:
        if chat_id in self.settings.auto_rehost_chats:
            return True
        return self.service.chat_settings(PLATFORM, str(chat_id)).auto_rehost

    # --- commands ------------------------------------------------------------------------

    async def on_help(self, update: Update, context: Context) -> None:
        if update.effective_message is not None:
            await update.effective_message.reply_text(render.HELP)

    async def on_mine(self, update: Update, context: Context) -> None:
        message, user = update.effective_message, update.effective_user
        if message is None or user is None:
            return
        if message.chat.type != ChatType.PRIVATE:
            await message.reply_text("Ask me for /mine in a private chat.")
            return
        text, keyboard = render.mine(self.service.live_uploads(PLATFORM, str(user.id)))
        await self.delivery.send(message.chat_id, text, keyboard=keyboard, private=True)

    async def on_delete(self, update: Update, context: Context) -> None:
        message, user = update.effective_message, update.effective_user
        if message is None or user is None:
            return
        if message.chat.type != ChatType.PRIVATE:
            await message.reply_text("Send /delete ID to me in a private chat.")
            return
        raw = (context.args or [""])[0].lstrip("#")
        if not raw.isdigit():
            await message.reply_text("Usage: /delete ID (the number shown in /mine).")
            return
        await self._ask_to_confirm(message.chat_id, user.id, int(raw))

    async def _ask_to_confirm(self, chat_id: int, user_id: int, upload_id: int) -> None:
        upload = self.service.owned_upload(upload_id, PLATFORM, str(user_id))
        if upload is None or upload.state != "active":
            await self.delivery.send(chat_id, f"You have no live upload #{upload_id}; see /mine.")
            return
        await self.delivery.send(
            chat_id,
            render.confirm_text(upload),
            keyboard=render.confirm_keyboard(upload_id),
            private=True,
        )

    async def on_autorehost(self, update: Update, context: Context) -> None:
        message, user = update.effective_message, update.effective_user
        if message is None or user is None:
            return
        if message.chat.type == ChatType.PRIVATE:
            await message.reply_text("Use /autorehost in a group, as one of its admins.")
            return
        member = await context.bot.get_chat_member(message.chat_id, user.id)
        if member.status not in (ChatMemberStatus.ADMINISTRATOR, ChatMemberStatus.OWNER):
            await message.reply_text("Only the group's admins can change auto-rehost.")
            return
        args = context.args or []
        switch = args[0].lower() if args else ""
        if switch not in ("on", "off"):
            await message.reply_text("Usage: /autorehost on [duration] or /autorehost off")
            return
        given, duration, error = parse_expiry_argument(" ".join(args[1:]) or None)
        if error:
            await message.reply_text(f"{error}.")
            return
        enabled = switch == "on"
        if not enabled and message.chat_id in self.settings.auto_rehost_chats:
            await message.reply_text(
                "This group is set to auto-rehost in the bot's configuration; "
                "ask the bot's operator to change it."
            )
            return
        updated = self.service.set_auto_rehost(
            PLATFORM, str(message.chat_id), enabled, duration if given else "keep"
        )
        if enabled:
            expiry = chat_expiry_phrase(updated.default_expiration)
            await message.reply_text(
                f"Auto-rehost is on: every photo and image file here is rehosted ({expiry})."
            )
        else:
            await message.reply_text("Auto-rehost is off.")

    # --- buttons -------------------------------------------------------------------------

    async def on_button(self, update: Update, context: Context) -> None:
        query = update.callback_query
        if query is None or query.data is None:
            return
        kind, _, raw = query.data.partition(":")
        user_id = query.from_user.id
        if not raw.isdigit() or kind not in ("del", "delok", "delno"):
            await query.answer("This button is no longer valid.")
            return
        upload_id = int(raw)
        chat_id = query.message.chat.id if query.message is not None else user_id
        if kind == "del":
            await query.answer()
            await self._ask_to_confirm(chat_id, user_id, upload_id)
        elif kind == "delno":
            await query.answer("Kept.")
            await query.edit_message_text(f"Kept #{upload_id}.")
        else:
            await query.answer()
            text = await self._delete(user_id, upload_id)
            await query.edit_message_text(
                text, parse_mode="HTML", link_preview_options=render.NO_PREVIEW
            )

    async def _delete(self, user_id: int, upload_id: int) -> str:
        result = await self.core.deleter.delete(upload_id, PLATFORM, str(user_id))
        text = html.escape(result.message)
        if result.status is DeleteStatus.OPEN_LINK and result.delete_url:
            text += f"\n{html.escape(result.delete_url)}"
        await self.delivery.refresh(result.bot_messages)
        return text

    # --- errors --------------------------------------------------------------------------

    async def on_error(self, update: object, context: Context) -> None:
        chat = update.effective_chat if isinstance(update, Update) else None
        log.error(
            "error handling Telegram update %s in chat %s",
            update.update_id if isinstance(update, Update) else "-",
            chat.id if chat else "-",
            exc_info=context.error,
        )
        if chat is not None:
            with contextlib.suppress(Exception):
                await context.bot.send_message(
                    chat.id, "Sorry, something went wrong with that. Please try again later."
                )


def _recovered_trigger(batch: RecoveredBatch) -> Trigger:
    chat_id = int(batch.chat_id or batch.owner_id)
    private = batch.chat_id == batch.owner_id
    return Trigger(
        chat_id=chat_id,
        chat_title=None if private else "the group",
        owner_id=int(batch.owner_id),
        owner_name="",
        reply_to=int(batch.message_id or 0),
    )
