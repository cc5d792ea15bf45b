"""The update queue behind ``getUpdates`` long polling.

Telegram keeps every update until a later ``getUpdates`` confirms it with
``offset = update_id + 1``; an update that reached a client whose connection then
dropped is simply served again. A second ``getUpdates`` while one is still waiting ends
the first with 409 Conflict ("terminated by other getUpdates request"), which is how
Telegram tells you two instances of a bot are polling.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from sandbox.telegram_wire import ApiError

# What a bot gets when it never set allowed_updates (or sets an empty list).
DEFAULT_EXCLUDED = frozenset({"chat_member", "message_reaction", "message_reaction_count"})
CONFLICT = (
    "Conflict: terminated by other getUpdates request; "
    "make sure that only one bot instance is running"
)


def update_type(update: dict[str, Any]) -> str:
    return next(key for key in update if key != "update_id")


class UpdateQueue:
    def __init__(self) -> None:
        self._pending: list[dict[str, Any]] = []
        self._next_id = 1
        self._allowed: frozenset[str] | None = None  # None: all but DEFAULT_EXCLUDED
        self._generation = 0
        self._changed: asyncio.Event | None = None
        self._closed = False

    def _wake(self) -> None:
        # Waiters hold the old event; replacing it lets each wake-up be observed once.
        if self._changed is not None:
            self._changed.set()
        self._changed = asyncio.Event()

    def _event(self) -> asyncio.Event:
        if self._changed is None:
            self._changed = asyncio.Event()
        return self._changed

    def push(self, kind: str, payload: dict[str, Any]) -> dict[str, Any]:
        update = {"update_id": self._next_id, kind: payload}
        self._next_id += 1
        self._pending.append(update)
        self._wake()
        return update

    @property
    def pending(self) -> list[dict[str, Any]]:
        """Updates not yet confirmed by an offset (delivered or not)."""
        return list(self._pending)

    def drop_pending(self) -> None:
        self._pending.clear()

    def close(self) -> None:
        """Answer every waiting getUpdates at once (empty) so a server can shut down."""
        self._closed = True
        self._wake()

    def set_allowed(self, allowed: list[str] | None) -> None:
        if allowed is not None:
            self._allowed = frozenset(allowed) or None

    def _is_allowed(self, update: dict[str, Any]) -> bool:
        kind = update_type(update)
        if self._allowed is None:
            return kind not in DEFAULT_EXCLUDED
        return kind in self._allowed

    def confirm(self, offset: int | None) -> None:
        if not offset:
            return
        if offset < 0:
            self._pending = self._pending[offset:]
        else:
            self._pending = [u for u in self._pending if u["update_id"] >= offset]

    def _ready(self, limit: int) -> list[dict[str, Any]]:
        return [u for u in self._pending if self._is_allowed(u)][:limit]

    async def poll(self, offset: int | None, limit: int, timeout: float) -> list[dict[str, Any]]:
        """One getUpdates call: confirm, then wait up to ``timeout`` s for updates."""
        self.confirm(offset)
        self._generation += 1
        generation = self._generation
        self._wake()  # an older poller still waiting now sees the newer generation
        deadline = time.monotonic() + timeout
        while True:
            event = self._event()
            if generation != self._generation:
                raise ApiError(409, CONFLICT)
            ready = self._ready(limit)
            remaining = deadline - time.monotonic()
            if ready or remaining <= 0 or self._closed:
                return ready
            try:
                await asyncio.wait_for(event.wait(), remaining)
            except TimeoutError:
                return self._ready(limit)
