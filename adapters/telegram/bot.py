"""The Telegram adapter: python-telegram-bot wired to the core.

Its rooms are the same as the Discord adapter's: ``intake`` (messages become recorded
work), ``render`` (texts and keyboards), ``delivery`` (outbox rows become messages),
``deleting``, ``commands``, and one error handler here. Updates come through
:class:`~adapters.telegram.polling.DurablePoller` (``[telegram] mode = "polling"``) or
:class:`~adapters.telegram.webhook.WebhookServer` (``mode = "webhook"``), which both record
them before Telegram is told they arrived.

An adapter has two halves, which may run in different processes over one database:
*intake* (``intake=True``: the handlers, commands and buttons, and polling or the
webhook) turns updates into recorded work; *work* (``work=True``: the job worker serving
Telegram, downloads through ``getFile``, and the outbox sender) does it and answers over
the Bot API. A work-only adapter never polls nor listens.

Everything with a delete link happens in private chats. In groups the bot posts viewer and
direct links only and sends the uploader their delete links in private; a user who never
started the bot (Telegram answers 403) is told in one line to start it, and the links wait
for them in /mine.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Coroutine
from typing import Any

from telegram import MessageEntity, Update
from telegram.error import RetryAfter, TelegramError
from telegram.ext import (
    Application,
    CallbackQueryHandler,
    CommandHandler,
    ContextTypes,
    MessageHandler,
    TypeHandler,
    filters,
)

from adapters.telegram.commands import Commands, commands_in
from adapters.telegram.deleting import Deletions
from adapters.telegram.delivery import Delivery, Pace, Pacer, with_retry
from adapters.telegram.handling import UpdateHandling
from adapters.telegram.intake import UPLOAD_CAPTION, Intake
from adapters.telegram.language import LanguageNotes
from adapters.telegram.moderating import GroupTakedowns
from adapters.telegram.polling import DurablePoller
from adapters.telegram.request import bot_requests
from adapters.telegram.settings import GroupSettings
from adapters.telegram.sources import make_resolver
from adapters.telegram.trigger import PLATFORM, topic_of
from adapters.telegram.webhook import WebhookServer
from bot.app import Core
from bot.config import TelegramSettings
from bot.i18n import ENGLISH, LANGUAGES, N_, iso639_1, negotiate, translate
from bot.inbox import Inbox
from bot.sending import OutboxSender

log = logging.getLogger(__name__)

Context = ContextTypes.DEFAULT_TYPE
AnyApplication = Application[Any, Any, Any, Any, Any, Any]
MEDIA = filters.PHOTO | filters.Document.ALL
LINKS = filters.Entity(MessageEntity.URL) | filters.Entity(MessageEntity.TEXT_LINK)
SORRY = N_("Sorry, something went wrong with that. Please try again later.")


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
        intake: bool = True,
        work: bool = True,
    ) -> None:
        if not (intake or work):
            raise ValueError("an adapter does intake, work, or both")
        self.core = core
        self.settings = settings
        self.intake = intake
        self.work = work
        self._album_wait = album_wait
        self._poll_timeout = poll_timeout
        self._pace = pace or Pace()
        self._app: AnyApplication | None = None
        self._delivery: Delivery | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._webhook: WebhookServer | None = None
        self._handling: UpdateHandling | None = None
        self._poller: DurablePoller | None = None
        self._started = False

    # --- lifecycle -----------------------------------------------------------------------

    def build(self) -> AnyApplication:
        request, get_updates_request = bot_requests()
        builder = (
            Application.builder()
            .token(self.settings.token)
            .request(request)
            .get_updates_request(get_updates_request)
        )
        if self.settings.base_url and self.settings.base_file_url:
            builder = builder.base_url(self.settings.base_url).base_file_url(
                self.settings.base_file_url
            )
        return builder.updater(None).build()

    def _route(self, app: AnyApplication, intake: Intake, commands: Commands) -> None:
        private, groups = filters.ChatType.PRIVATE, filters.ChatType.GROUPS
        # Before any other handler: the user's language, for what reaches them later.
        app.add_handler(TypeHandler(Update, LanguageNotes(self.core)), group=-1)
        app.add_handler(CommandHandler(["start", "help"], commands.on_help))
        app.add_handler(CommandHandler("upload", intake.on_upload))
        app.add_handler(
            MessageHandler(MEDIA & filters.CaptionRegex(UPLOAD_CAPTION), intake.on_upload)
        )
        app.add_handler(CommandHandler("mine", commands.on_mine))
        app.add_handler(CommandHandler("delete", commands.on_delete))
        app.add_handler(CommandHandler("autorehost", commands.on_autorehost))
        app.add_handler(CommandHandler("nsfw", commands.on_nsfw))
        group_settings = GroupSettings(self.core)
        app.add_handler(CommandHandler("settings", group_settings.on_command))
        app.add_handler(CommandHandler("ownhost", group_settings.on_own_host))
        app.add_handler(CallbackQueryHandler(group_settings.on_button, pattern=r"^set:-?\d+:"))
        takedowns = GroupTakedowns(self.core, commands.delivery)
        app.add_handler(CommandHandler("takedown", takedowns.on_command))
        app.add_handler(MessageHandler(private & MEDIA, intake.on_private_media))
        app.add_handler(MessageHandler(private & LINKS & ~filters.COMMAND, intake.on_private_link))
        app.add_handler(MessageHandler(groups & MEDIA, intake.on_group_media))
        app.add_handler(CallbackQueryHandler(takedowns.on_button, pattern=r"^td:\d{1,18}$"))
        app.add_handler(CallbackQueryHandler(commands.on_button))
        app.add_error_handler(self.on_error)

    async def start(self) -> None:
        app = self._app = self.build()
        await app.initialize()
        try:
            delivery = self._delivery = Delivery(app.bot, self.core, Pacer(self._pace))
            if self.intake:
                await self._start_handlers(app, delivery)
            if self.work:
                self._start_work(app, delivery)
            if self.intake:
                await self._start_intake(app)
            self._started = True
        except BaseException:
            await self.stop()
            raise

    async def _start_handlers(self, app: AnyApplication, delivery: Delivery) -> None:
        deletions = Deletions(self.core, delivery)
        intake = Intake(self.core, self.settings, self._album_wait)
        self._route(app, intake, Commands(self.core, self.settings, delivery, deletions))
        await app.start()
        own_host = self.core.config.communities.allow_own_host
        try:
            english = commands_in(ENGLISH, own_host=own_host)
            await with_retry(lambda: app.bot.set_my_commands(english))
            # Once per language: Telegram shows a user the list of their language_code.
            for language in LANGUAGES[1:]:
                listed = commands_in(language, own_host=own_host)
                await with_retry(
                    functools.partial(
                        app.bot.set_my_commands, listed, language_code=iso639_1(language)
                    )
                )
        except TelegramError:
            log.warning("could not register the command list with Telegram", exc_info=True)

    def _start_work(self, app: AnyApplication, delivery: Delivery) -> None:
        service = self.core.rehost
        service.resolvers[PLATFORM] = make_resolver(app.bot, self.settings.max_download_bytes)
        sender = OutboxSender(service.outbox, PLATFORM, delivery.deliver, lease=service.lease)
        service.on_answer(PLATFORM, sender.wake)
        service.worker.serve(PLATFORM)
        self._spawn(sender.run(), "telegram-sender")

    async def _start_intake(self, app: AnyApplication) -> None:
        inbox = Inbox(self.core.store)
        handling = self._handling = UpdateHandling(app, inbox)
        if self.settings.mode != "webhook":
            poller = self._poller = DurablePoller(
                app, inbox, poll_timeout=self._poll_timeout, handling=handling
            )
            self._spawn(poller.run(), "telegram-poller")
            return
        listen, secret = self.settings.webhook_listen, self.settings.webhook_secret
        if listen is None or not secret:
            raise ValueError('[telegram] mode = "webhook" needs webhook_listen and a secret')
        webhook = self._webhook = WebhookServer(
            inbox, handling, listen=listen, path=self.settings.webhook_path, secret=secret
        )
        await webhook.start()
        self._spawn(handling.replay(), "telegram-replay")
        await self._check_webhook(app)

    async def _check_webhook(self, app: AnyApplication) -> None:
        """Say so when Telegram sends updates elsewhere (or polls): nothing would come."""
        try:
            info = await with_retry(app.bot.get_webhook_info)
        except TelegramError:
            log.warning("could not read the webhook Telegram has", exc_info=True)
            return
        if info.url != self.settings.webhook_url:
            log.warning(
                "Telegram's webhook is %s, not [telegram] webhook_url: no update will come"
                " until `rehost telegram set-webhook` registers it",
                info.url or "not set",
            )

    def _spawn(self, work: Coroutine[Any, Any, None], name: str) -> None:
        task = asyncio.create_task(work, name=name)
        task.add_done_callback(_report_end)
        self._tasks.append(task)

    async def stop(self) -> None:
        app = self._app
        if app is None:
            return
        self._started, self._poller = False, None
        webhook, self._webhook = self._webhook, None
        if webhook is not None:
            await webhook.stop()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []
        handling, self._handling = self._handling, None
        if handling is not None:
            await handling.close()
        if app.running:
            await app.stop()
        await app.shutdown()
        self._app = None

    @property
    def delivery(self) -> Delivery:
        assert self._delivery is not None, "the adapter is not started"
        return self._delivery

    @property
    def handling(self) -> UpdateHandling:
        """The updates being handled (an adapter doing intake, once started)."""
        assert self._handling is not None, "the adapter is not started, or does no intake"
        return self._handling

    def problem(self) -> str | None:
        """Why the adapter is not serving now, for the health check (None: it is): not
        started yet, a part of it stopped, the last getUpdates failed, or the webhook is
        not listening."""
        app = self._app
        if not self._started or app is None or (self.intake and not app.running):
            return "not connected"
        for task in self._tasks:
            if task.done() and not task.cancelled() and task.exception() is not None:
                return f"{task.get_name()} stopped"
        if self._poller is not None and self._poller.failing:
            return f"getUpdates failing ({self._poller.failing})"
        webhook = self._webhook
        if self.intake and self.settings.mode == "webhook" and not (webhook and webhook.listening):
            return "webhook not listening"
        return None

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
            user = update.effective_user if isinstance(update, Update) else None
            sorry = translate(negotiate(user.language_code if user else None), SORRY)
            await context.bot.send_message(chat.id, sorry, message_thread_id=thread_id)
        except TelegramError as error:
            log.warning("could not tell chat %s that something failed: %s", chat.id, error)


def _report_end(task: asyncio.Task[None]) -> None:
    """A part of the adapter that ends by itself failed: say so at once."""
    if not task.cancelled() and task.exception() is not None:
        log.error("%s stopped", task.get_name(), exc_info=task.exception())
