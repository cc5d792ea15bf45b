"""Run a real python-telegram-bot Application against the TelegramEmulator.

    async with TelegramEmulator() as tg:
        app = application_builder(tg).build()
        app.add_handler(CommandHandler("start", start))
        async with running(app):
            tg.send_text(7, 7, "/start")
            await tg.wait_for(lambda c: c.method == "sendMessage")

``running`` starts the application the way PTB documents for frameworks that own the
event loop (``async with app: await app.start(); await app.updater.start_polling()``),
never ``run_polling()``, which would install signal handlers and close the loop.
"""

from __future__ import annotations

import datetime as dtm
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from telegram.ext import Application, ApplicationBuilder

from sandbox.telegram_api import TelegramEmulator

AnyApplication = Application[Any, Any, Any, Any, Any, Any]

# Long polling returns as soon as the emulator has an update, and stopping the updater
# cancels the pending request, so a long poll costs nothing; it just keeps idle tests quiet.
POLL_TIMEOUT = 10.0


def application_builder(tg: TelegramEmulator) -> ApplicationBuilder[Any, Any, Any, Any, Any, Any]:
    """An ApplicationBuilder already pointed at the emulator (token, base URLs)."""
    builder: ApplicationBuilder[Any, Any, Any, Any, Any, Any] = (
        Application.builder().token(tg.token).base_url(tg.base_url).base_file_url(tg.base_file_url)
    )
    return builder


@asynccontextmanager
async def running(
    app: AnyApplication, *, poll_timeout: float = POLL_TIMEOUT
) -> AsyncIterator[AnyApplication]:
    """Initialize, start and poll; on exit stop polling, stop and shut down."""
    updater = app.updater
    if updater is None:
        raise ValueError("the application was built without an Updater")
    async with app:
        await app.start()
        await updater.start_polling(poll_interval=0, timeout=dtm.timedelta(seconds=poll_timeout))
        try:
            yield app
        finally:
            if updater.running:
                await updater.stop()
            if app.running:
                await app.stop()


@asynccontextmanager
async def running_application(
    tg: TelegramEmulator, *, poll_timeout: float = POLL_TIMEOUT
) -> AsyncIterator[AnyApplication]:
    """A fresh Application against ``tg``, running; add handlers inside the block."""
    async with running(application_builder(tg).build(), poll_timeout=poll_timeout) as app:
        yield app
