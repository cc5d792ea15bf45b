"""The outbox sender: delivers a platform's outbox rows through its adapter.

The adapter's ``deliver`` turns one row into platform calls and says how it went; this
loop does the rest, the same for every platform: claiming rows with leases (renewed while
a delivery runs), one delivery at a time per chat and chats taking turns, waiting out a
flood wait for that chat only (the row is postponed, other chats go on), retrying
transient failures with backoff, and giving up (logged) on what the platform refuses.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass

from bot import metrics
from bot.leases import DEFAULT_LEASE, ClaimLoop
from bot.logcontext import log_context
from bot.outbox import Outbox, OutboxRow

log = logging.getLogger(__name__)
MAX_DELIVERY_ATTEMPTS = 8
RETRY_BACKOFF = 2.0  # seconds, doubled per attempt
MAX_RETRY_DELAY = 300.0


@dataclass(frozen=True)
class Delivered:
    """How a delivery went: ``sent`` (with where and which message), ``unreachable`` (the
    owner cannot be messaged privately), ``wait`` (the platform asked to wait ``seconds``),
    ``retry`` (a transient failure) or ``failed`` (refused for good)."""

    kind: str
    chat_id: str | None = None
    message_id: str | None = None
    seconds: float = 0.0
    reason: str = ""

    @classmethod
    def sent(cls, chat_id: str, message_id: str) -> Delivered:
        return cls("sent", chat_id, message_id)

    @classmethod
    def wait(cls, seconds: float) -> Delivered:
        return cls("wait", seconds=seconds)


Deliver = Callable[[OutboxRow], Awaitable[Delivered]]


class OutboxSender(ClaimLoop[OutboxRow]):
    def __init__(
        self,
        outbox: Outbox,
        platform: str,
        deliver: Deliver,
        *,
        concurrency: int = 8,
        lease: float = DEFAULT_LEASE,
        poll: float = 1.0,
    ) -> None:
        super().__init__(f"{platform}-sender", slots=concurrency, lease=lease, poll=poll)
        self.outbox = outbox
        self.platform = platform
        self.deliver = deliver
        self._served: dict[str, float] = {}  # target -> when it was last sent to

    async def claim(self, free: int) -> list[OutboxRow]:
        busy = {row.target for row, _ in self.running.values()}  # one at a time per chat
        return await self.outbox.claim(
            self.name, self.platform, self.lease, free, busy, self._served
        )

    def key(self, item: OutboxRow) -> int:
        return item.id

    async def renew(self, ids: Iterable[int]) -> None:
        await self.outbox.renew(self.name, ids, self.lease)

    async def idle_timeout(self) -> float:
        due = await self.outbox.next_due(self.platform)
        if due is None:
            return self.poll
        return max(0.01, min(self.poll, due - time.time() + 0.01))

    async def work(self, item: OutboxRow) -> None:
        with log_context(platform=self.platform, chat=item.target):
            await self._work(item)

    async def _work(self, item: OutboxRow) -> None:
        try:
            result = await self.deliver(item)
        except Exception:
            log.exception("delivering outbox row %d (%s) failed", item.id, item.message.visibility)
            result = Delivered("retry", reason="unexpected error")
        try:
            await self._record(item, result)
        except Exception:
            log.exception("recording the delivery of outbox row %d failed", item.id)
        finally:
            self._served[item.target] = time.monotonic()

    async def _record(self, row: OutboxRow, result: Delivered) -> None:
        if result.kind in ("sent", "unreachable"):
            await self.outbox.sent(row, result.chat_id, result.message_id, result.kind)
            if result.kind == "sent":
                await self._time_reply(row, result)
        elif result.kind == "wait":
            log.info(
                "%s asked to wait %.0f s before answering in %s",
                self.platform,
                result.seconds,
                row.target,
            )
            await self.outbox.postpone(row, result.seconds)
        elif result.kind == "retry" and row.attempts < MAX_DELIVERY_ATTEMPTS:
            await self.outbox.release(
                row, min(MAX_RETRY_DELAY, RETRY_BACKOFF * 2 ** (row.attempts - 1))
            )
        else:
            log.error(
                "giving up delivering outbox row %d to %s after %d attempts: %s",
                row.id,
                row.target,
                row.attempts,
                result.reason or result.kind,
            )
            await self.outbox.failed(row, result.reason or result.kind)

    async def _time_reply(self, row: OutboxRow, result: Delivered) -> None:
        """An answer's first message reached its chat: time it from the message's arrival
        (not a re-rendered post, nor a backfilled message, which its summary answers)."""
        if row.seq != 0 or result.chat_id is None or row.message.refresh_message_id:
            return
        received = await self.outbox.received_at(row.batch)
        if received is not None:
            metrics.REPLY_SECONDS.labels(self.platform).observe(max(0.0, time.time() - received))
