"""The Telegram adapter: python-telegram-bot wired to the core.

Its rooms are the same as the Discord adapter's: ``intake`` (messages become recorded
work), ``render`` (texts and keyboards), ``delivery`` (outbox rows become messages),
``deleting``, ``commands``, and one error handler here. Updates come through
:class:`~adapters.telegram.polling.DurablePoller`, which records them before Telegram is
told they arrived.

Everything with a delete link happens in private chats. In groups the bot posts viewer and
direct links only and sends the uploader their delete links in private; a user who never
started the bot (Telegram answers 403) is told in one line to start it, and the links wait
for them in /mine.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from telegram import MessageEntity, Update
from telegram.error import RetryAfter, TelegramError
from telegram.ext import (
    Application,
    CallbackQueryHandler,
    CommandHandler,
    ContextTypes,
    MessageHandler,
    filters,
)

from adapters.telegram.commands import COMMANDS, Commands
from adapters.telegram.deleting import Deletions
from adapters.telegram.delivery import Delivery, Pace, Pacer, with_retry
from adapters.telegram.intake import UPLOAD_CAPTION, Intake
from adapters.telegram.polling import DurablePoller
from adapters.telegram.sources import make_resolver
from adapters.telegram.trigger import PLATFORM, topic_of
from bot.app import Core
from bot.config import TelegramSettings
from bot.inbox import Inbox
from bot.sending import OutboxSender

log = logging.getLogger(__name__)

Context = ContextTypes.DEFAULT_TYPE
AnyApplication = Application[Any, Any, Any, Any, Any, Any]
MEDIA = filters.PHOTO | filters.Document.ALL
LINKS = filters.Entity(MessageEntity.URL) | filters.Entity(MessageEntity.TEXT_LINK)
SORRY = "Sorry, something went wrong with that. Please try again later."


class TelegramAdapter:
    name = PLATFORM

    def __init__(
        self,
        core: Core,
        settings: TelegramSettings,
        *,
        album_wait: float = 1.5,
        poll_timeout: float = 10.0,
        pace: Pace | None = None,
    ) -> None:
        self.core = core
        self.settings = settings
        self._album_wait = album_wait
        self._poll_timeout = poll_timeout
        self._pace = pace or Pace()
        self._app: AnyApplication | None = None
        self._delivery: Delivery | None = None
        self._tasks: list[asyncio.Task[None]] = []

    # --- lifecycle -----------------------------------------------------------------------

    def build(self) -> AnyApplication:
        builder = Application.builder().token(self.settings.token)
        if self.settings.base_url and self.settings.base_file_url:
            builder = builder.base_url(self.settings.base_url).base_file_url(
                self.settings.base_file_url
            )
        return builder.updater(None).build()

    def _route(self, app: AnyApplication, intake: Intake, commands: Commands) -> None:
        private, groups = filters.ChatType.PRIVATE, filters.ChatType.GROUPS
        app.add_handler(CommandHandler(["start", "help"], commands.on_help))
        app.add_handler(CommandHandler("upload", intake.on_upload))
        app.add_handler(
            MessageHandler(MEDIA & filters.CaptionRegex(UPLOAD_CAPTION), intake.on_upload)
        )
        app.add_handler(CommandHandler("mine", commands.on_mine))
        app.add_handler(CommandHandler("delete", commands.on_delete))
        app.add_handler(CommandHandler("autorehost", commands.on_autorehost))
        app.add_handler(CommandHandler("nsfw", commands.on_nsfw))
        app.add_handler(MessageHandler(private & MEDIA, intake.on_private_media))
        app.add_handler(MessageHandler(private & LINKS & ~filters.COMMAND, intake.on_private_link))
        app.add_handler(MessageHandler(groups & MEDIA, intake.on_group_media))
        app.add_handler(CallbackQueryHandler(commands.on_button))
        app.add_error_handler(self.on_error)

    async def start(self) -> None:
        app = self._app = self.build()
        await app.initialize()
        delivery = self._delivery = Delivery(app.bot, self.core, Pacer(self._pace))
        deletions = Deletions(self.core, delivery)
        intake = Intake(self.core, self.settings, self._album_wait)
        self._route(app, intake, Commands(self.core, self.settings, delivery, deletions))
        await app.start()
        try:
            await with_retry(lambda: app.bot.set_my_commands(COMMANDS))
        except TelegramError:
            log.warning("could not register the command list with Telegram", exc_info=True)
        service = self.core.rehost
        service.resolvers[PLATFORM] = make_resolver(app.bot, self.settings.max_download_bytes)
        sender = OutboxSender(service.outbox, PLATFORM, delivery.deliver, lease=service.lease)
        service.on_answer(PLATFORM, sender.wake)
        service.worker.serve(PLATFORM)
        poller = DurablePoller(app, Inbox(self.core.store), poll_timeout=self._poll_timeout)
        self._tasks = [
            asyncio.create_task(sender.run(), name="telegram-sender"),
            asyncio.create_task(poller.run(), name="telegram-poller"),
        ]

    async def stop(self) -> None:
        app = self._app
        if app is None:
            return
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []
        if app.running:
            await app.stop()
        await app.shutdown()
        self._app = None

    @property
    def delivery(self) -> Delivery:
        assert self._delivery is not None, "the adapter is not started"
        return self._delivery

    # --- errors --------------------------------------------------------------------------

    async def on_error(self, update: object, context: Context) -> None:
        """The adapter's one error handler: log with context; tell the user only that
        something went wrong, and never into a chat that is flooded."""
        chat = update.effective_chat if isinstance(update, Update) else None
        log.error(
            "error handling Telegram update %s in chat %s",
            update.update_id if isinstance(update, Update) else "-",
            chat.id if chat else "-",
            exc_info=context.error,
        )
        if chat is None or isinstance(context.error, RetryAfter):
            return
        message = update.effective_message if isinstance(update, Update) else None
        thread_id = topic_of(message) if message is not None else None
        try:
            await context.bot.send_message(chat.id, SORRY, message_thread_id=thread_id)
        except TelegramError as error:
            log.warning("could not tell chat %s that something failed: %s", chat.id, error)
