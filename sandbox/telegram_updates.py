"""The update queue behind ``getUpdates`` long polling.

Telegram keeps every update until a later ``getUpdates`` confirms it with
``offset = update_id + 1``; an update that reached a client whose connection then
dropped is simply served again. A second ``getUpdates`` while one is still waiting ends
the first with 409 Conflict ("terminated by other getUpdates request"), which is how
Telegram tells you two instances of a bot are polling; ``setWebhook`` ends it with
"terminated by setWebhook request".

While a webhook is set (``sandbox.telegram_webhook``) the same queue feeds it: an update
leaves the queue once the webhook acknowledged it with a 2xx answer.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

from sandbox.telegram_wire import ApiError

# What a bot gets when it never set allowed_updates (or sets an empty list).
DEFAULT_EXCLUDED = frozenset({"chat_member", "message_reaction", "message_reaction_count"})
CONFLICT = (
    "Conflict: terminated by other getUpdates request; "
    "make sure that only one bot instance is running"
)
# Every field of the Bot API's Update besides update_id, in Telegram's order (the order
# getWebhookInfo lists allowed_updates in).
UPDATE_TYPES = (
    "message", "edited_message", "channel_post", "edited_channel_post", "inline_query",
    "chosen_inline_result", "callback_query", "shipping_query", "pre_checkout_query", "poll",
    "poll_answer", "my_chat_member", "chat_member", "chat_join_request", "chat_boost",
    "removed_chat_boost", "message_reaction", "message_reaction_count", "business_connection",
    "business_message", "edited_business_message", "deleted_business_messages",
    "purchased_paid_media", "managed_bot", "guest_message",
)  # fmt: skip


def update_type(update: dict[str, Any]) -> str:
    return next(key for key in update if key != "update_id")


class UpdateQueue:
    def __init__(self) -> None:
        self._pending: list[dict[str, Any]] = []
        self._next_id = 1
        self._allowed: frozenset[str] | None = None  # None: all but DEFAULT_EXCLUDED
        self._generation = 0
        self._waiting: set[int] = set()  # generations of the getUpdates calls waiting
        self._ended: dict[int, str] = {}  # a waiting generation ended -> its 409 text
        self._changed: asyncio.Event | None = None
        self._closed = False
        # Called on every change (a push, a removal); the webhook dispatcher listens.
        self.on_change: Callable[[], None] | None = None

    def _wake(self) -> None:
        # Waiters hold the old event; replacing it lets each wake-up be observed once.
        if self._changed is not None:
            self._changed.set()
        self._changed = asyncio.Event()
        if self.on_change is not None:
            self.on_change()

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
        self._wake()

    def remove(self, update_id: int) -> None:
        """Forget one update (a webhook acknowledged it, or it may never be delivered)."""
        self._pending = [u for u in self._pending if u["update_id"] != update_id]
        self._wake()

    @property
    def polling(self) -> bool:
        """Whether a getUpdates call is waiting for updates right now."""
        return bool(self._waiting)

    def end_polls(self, description: str) -> None:
        """Answer a waiting getUpdates with 409 ``description`` (setWebhook does this)."""
        self._supersede(description)

    def close(self) -> None:
        """Answer every waiting getUpdates at once (empty) so a server can shut down."""
        self._closed = True
        self._wake()

    def set_allowed(self, allowed: list[str] | None) -> None:
        """None keeps the current setting; an empty list restores the default."""
        if allowed is not None:
            self._allowed = frozenset(allowed) or None

    @property
    def allowed(self) -> list[str] | None:
        """The update types asked for, in Telegram's order; None for the default."""
        if self._allowed is None:
            return None
        return [kind for kind in UPDATE_TYPES if kind in self._allowed]

    def is_allowed(self, update: dict[str, Any]) -> bool:
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
        return [u for u in self._pending if self.is_allowed(u)][:limit]

    def _supersede(self, description: str) -> None:
        if self._generation in self._waiting:
            self._ended[self._generation] = description
        self._generation += 1
        self._wake()  # a poller still waiting now sees the newer generation

    async def poll(self, offset: int | None, limit: int, timeout: float) -> list[dict[str, Any]]:
        """One getUpdates call: confirm, then wait up to ``timeout`` s for updates."""
        self.confirm(offset)
        self._supersede(CONFLICT)
        generation = self._generation
        self._waiting.add(generation)
        try:
            return await self._wait(generation, limit, time.monotonic() + timeout)
        finally:
            self._waiting.discard(generation)
            self._ended.pop(generation, None)

    async def _wait(self, generation: int, limit: int, deadline: float) -> list[dict[str, Any]]:
        while True:
            event = self._event()
            if generation != self._generation:
                raise ApiError(409, self._ended.get(generation, CONFLICT))
            ready = self._ready(limit)
            remaining = deadline - time.monotonic()
            if ready or remaining <= 0 or self._closed:
                return ready
            try:
                await asyncio.wait_for(event.wait(), remaining)
            except TimeoutError:
                return self._ready(limit)
