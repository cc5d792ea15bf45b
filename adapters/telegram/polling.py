"""Durable polling: an update is recorded in the inbox before Telegram is told it arrived.

python-telegram-bot's own Updater confirms an update (the next ``getUpdates`` offset moves
past it) while the update still sits only in memory. This loop records each batch of
updates first, and only then lets the next call confirm them. Every recorded update is
handled in its own task (updates from different chats and users run concurrently; the
handlers only record work, so they are quick), and marked handled after its handler ran.
At start, updates recorded but never handled (the process died) are handled first.
"""

from __future__ import annotations

import asyncio
import datetime as dtm
import logging
from typing import Any

from telegram import Update
from telegram.error import Conflict, InvalidToken, NetworkError, RetryAfter, TimedOut
from telegram.ext import Application

from adapters.telegram.trigger import PLATFORM
from bot.inbox import Inbox

log = logging.getLogger(__name__)
AnyApplication = Application[Any, Any, Any, Any, Any, Any]
ALLOWED_UPDATES = [Update.MESSAGE, Update.CALLBACK_QUERY]
MAX_HANDLING = 64  # updates handled at once
MAX_BACKOFF = 30.0


class DurablePoller:
    def __init__(self, app: AnyApplication, inbox: Inbox, *, poll_timeout: float) -> None:
        self.app = app
        self.inbox = inbox
        self.poll_timeout = poll_timeout
        self._slots = asyncio.Semaphore(MAX_HANDLING)
        self._tasks: set[asyncio.Task[None]] = set()

    async def run(self) -> None:
        try:
            for update_id, payload in await self.inbox.unhandled(PLATFORM):
                await self._spawn(update_id, payload)
            await self._poll()
        finally:
            for task in list(self._tasks):
                task.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)

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
            except (InvalidToken, Conflict):
                raise
            except RetryAfter as error:
                await asyncio.sleep(_seconds(error.retry_after))
                continue
            except (TimedOut, NetworkError) as error:
                failures += 1
                delay = min(MAX_BACKOFF, 0.5 * 2 ** min(failures, 6))
                log.warning("polling Telegram failed (%s); again in %.1f s", error, delay)
                await asyncio.sleep(delay)
                continue
            failures = 0
            if not updates:
                continue
            payloads = [(update.update_id, update.to_dict()) for update in updates]
            fresh = set(await self.inbox.record(PLATFORM, payloads))
            # Only now may the next call confirm them.
            offset = updates[-1].update_id + 1
            for update_id, payload in payloads:
                if update_id in fresh:
                    await self._spawn(update_id, payload)

    async def _spawn(self, update_id: int, payload: dict[str, Any]) -> None:
        await self._slots.acquire()
        task = asyncio.create_task(self._handle(update_id, payload))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _handle(self, update_id: int, payload: dict[str, Any]) -> None:
        try:
            update = Update.de_json(payload, self.app.bot)
            # Handler errors go to the application's error handler, not here.
            await self.app.process_update(update)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("handling Telegram update %d failed", update_id)
        finally:
            self._slots.release()
        try:
            await self.inbox.handled(PLATFORM, update_id)
        except Exception:  # handled again at the next start; intake is idempotent
            log.exception("could not mark Telegram update %d handled", update_id)


def _seconds(value: int | float | dtm.timedelta) -> float:
    return value.total_seconds() if isinstance(value, dtm.timedelta) else float(value)
