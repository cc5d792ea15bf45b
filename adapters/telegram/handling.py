"""Handling recorded updates: what polling and the webhook share.

An update reaches this only once it is in the inbox. Each one is handled in a task of its
own (updates from different chats and users run concurrently; the handlers only record
work, so they are quick), at most ``limit`` at a time, and marked handled after its
handler ran. At start, updates recorded but never handled (a process died after
recording them) are handled first.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from telegram import Update
from telegram.ext import Application

from adapters.telegram.trigger import PLATFORM
from bot.inbox import Inbox
from bot.logcontext import log_context

log = logging.getLogger(__name__)
AnyApplication = Application[Any, Any, Any, Any, Any, Any]
MAX_HANDLING = 64  # updates handled at once


class UpdateHandling:
    def __init__(self, app: AnyApplication, inbox: Inbox, *, limit: int = MAX_HANDLING) -> None:
        self.app = app
        self.inbox = inbox
        self._slots = asyncio.Semaphore(limit)
        self._tasks: set[asyncio.Task[None]] = set()

    async def replay(self) -> None:
        """Handle the updates recorded earlier and never marked handled."""
        for update_id, payload in await self.inbox.unhandled(PLATFORM):
            await self.admit(update_id, payload)

    async def admit(self, update_id: int, payload: dict[str, Any]) -> None:
        """Wait for a free slot, then handle the update in a task of its own."""
        await self._slots.acquire()
        task = asyncio.create_task(self._handle(update_id, payload), name=f"update-{update_id}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def idle(self) -> None:
        """Until no update is being handled (those admitted meanwhile included)."""
        while self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)

    async def close(self) -> None:
        """Stop handling; what was cut short is still ``new`` and handled at the next start."""
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def _handle(self, update_id: int, payload: dict[str, Any]) -> None:
        try:
            update = Update.de_json(payload, self.app.bot)
            chat = update.effective_chat
            # Handler errors go to the application's error handler, not here.
            with log_context(platform=PLATFORM, chat=chat.id if chat is not None else None):
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
