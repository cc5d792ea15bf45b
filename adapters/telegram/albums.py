"""Gather the messages of a Telegram album (media group) into one batch and one reply.

Telegram delivers an album as separate messages sharing a ``media_group_id``; only one
carries the caption. Each message is recorded as a job the moment it arrives (once the album
is known to be wanted), and the batch runs after the album has been quiet for ``wait``
seconds. Messages of an album seen before its trigger (a ``/upload`` caption on a later
message) are kept in memory briefly so they are not missed.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from telegram import Message

from adapters.telegram.trigger import Trigger
from bot.service import RehostService

Deliver = Callable[[Trigger, str], Awaitable[None]]


@dataclass
class _Album:
    messages: list[Message] = field(default_factory=list)
    trigger: Trigger | None = None
    batch: str | None = None
    timer: asyncio.Task[None] | None = None


class AlbumCollector:
    def __init__(self, service: RehostService, deliver: Deliver, wait: float = 1.5) -> None:
        self._service = service
        self._deliver = deliver
        self._wait = wait
        self._albums: dict[tuple[int, str], _Album] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    def add(self, message: Message, trigger: Trigger | None) -> None:
        """Take one album message; ``trigger`` says the album is wanted and how."""
        assert message.media_group_id is not None
        key = (message.chat_id, message.media_group_id)
        album = self._albums.setdefault(key, _Album())
        album.messages.append(message)
        if trigger is not None and album.trigger is None:
            album.trigger = trigger
            album.batch = self._service.enqueue(trigger.request(album.messages))
        elif album.trigger is not None and album.batch is not None:
            self._service.enqueue(album.trigger.request([message]), album.batch)
        if album.timer is not None:
            album.timer.cancel()
        album.timer = asyncio.create_task(self._after_quiet(key))

    async def _after_quiet(self, key: tuple[int, str]) -> None:
        await asyncio.sleep(self._wait)
        album = self._albums.pop(key, None)
        if album is None or album.trigger is None or album.batch is None:
            return  # an album nobody asked for
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        try:
            await self._deliver(album.trigger, album.batch)
        finally:
            self._tasks.discard(task)

    async def close(self) -> None:
        """Stop waiting; batches already recorded are resumed at the next start."""
        for album in self._albums.values():
            if album.timer is not None:
                album.timer.cancel()
        self._albums.clear()
        for task in list(self._tasks):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
