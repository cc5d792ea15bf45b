"""Durable polling: an update is recorded in the inbox before Telegram is told it arrived.

python-telegram-bot's own Updater confirms an update (the next ``getUpdates`` offset moves
past it) while the update still sits only in memory. This loop records each batch of
updates first, and only then lets the next call confirm them. Recorded updates are handled
by :class:`~adapters.telegram.handling.UpdateHandling` (as the webhook's are); at start,
updates recorded but never handled are handled first.
"""

from __future__ import annotations

import asyncio
import datetime as dtm
import logging
from typing import Any

from telegram import Update
from telegram.error import Conflict, InvalidToken, NetworkError, RetryAfter, TimedOut
from telegram.ext import Application

from adapters.telegram.handling import UpdateHandling
from adapters.telegram.trigger import PLATFORM
from bot.inbox import Inbox

log = logging.getLogger(__name__)
AnyApplication = Application[Any, Any, Any, Any, Any, Any]
ALLOWED_UPDATES = [Update.MESSAGE, Update.CALLBACK_QUERY]
MAX_BACKOFF = 30.0


class DurablePoller:
    def __init__(
        self,
        app: AnyApplication,
        inbox: Inbox,
        *,
        poll_timeout: float,
        handling: UpdateHandling | None = None,
    ) -> None:
        self.app = app
        self.inbox = inbox
        self.poll_timeout = poll_timeout
        self.handling = handling or UpdateHandling(app, inbox)
        # Why the last getUpdates failed (None: it did not), for the health check.
        self.failing: str | None = None

    async def run(self) -> None:
        try:
            await self.handling.replay()
            await self._poll()
        finally:
            await self.handling.close()

    async def _poll(self) -> None:
        offset: int | None = None
        failures = 0
        while True:
            try:
                updates = await self.app.bot.get_updates(
                    offset=offset,
                    timeout=dtm.timedelta(seconds=self.poll_timeout),
                    allowed_updates=ALLOWED_UPDATES,
                )
            except Conflict as error:
                log.error(
                    "Telegram refused getUpdates (%s): a webhook is set (run `rehost telegram"
                    ' delete-webhook`, or set [telegram] mode = "webhook"), or another'
                    " process polls with this token",
                    error.message,
                )
                raise
            except InvalidToken:
                raise
            except RetryAfter as error:
                await asyncio.sleep(_seconds(error.retry_after))
                continue
            except (TimedOut, NetworkError) as error:
                self.failing = type(error).__name__
                failures += 1
                delay = min(MAX_BACKOFF, 0.5 * 2 ** min(failures, 6))
                log.warning("polling Telegram failed (%s); again in %.1f s", error, delay)
                await asyncio.sleep(delay)
                continue
            failures, self.failing = 0, None
            if not updates:
                continue
            payloads = [(update.update_id, update.to_dict()) for update in updates]
            fresh = set(await self.inbox.record(PLATFORM, payloads))
            # Only now may the next call confirm them.
            offset = updates[-1].update_id + 1
            for update_id, payload in payloads:
                if update_id in fresh:
                    await self.handling.admit(update_id, payload)


def _seconds(value: int | float | dtm.timedelta) -> float:
    return value.total_seconds() if isinstance(value, dtm.timedelta) else float(value)
