"""Identify pacing across processes: Discord allows one IDENTIFY per 5 seconds in each
``max_concurrency`` bucket (a shard's bucket is ``shard_id % max_concurrency``), counted
over every process of the bot. Shard processes take turns through the database: each
bucket's row says when it may identify next, and a process claims the turn by moving that
time on, inside a transaction that locks the row.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

from bot.database import Database

log = logging.getLogger(__name__)
IDENTIFY_INTERVAL = 5.0  # seconds, per bucket (Discord's rule)


class IdentifyGate:
    def __init__(
        self,
        db: Database,
        max_concurrency: int,
        interval: float = IDENTIFY_INTERVAL,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.db = db
        self.max_concurrency = max(1, max_concurrency)
        self.interval = interval
        self._clock = clock

    def bucket(self, shard_id: int | None) -> int:
        return (shard_id or 0) % self.max_concurrency

    async def wait(self, shard_id: int | None) -> None:
        """Return once this shard may IDENTIFY (its bucket's turn is claimed)."""
        bucket = self.bucket(shard_id)
        while True:
            wait = await self._take_turn(bucket)
            if wait <= 0:
                return
            log.info("shard %s waits %.1f s for its turn to identify", shard_id, wait)
            await asyncio.sleep(wait)

    async def _take_turn(self, bucket: int) -> float:
        """0 when the turn is taken; else how long until it may be."""
        db = self.db
        async with db.transaction():
            await db.execute(
                "insert into identify_buckets (bucket, next_at) values (?, 0)"
                " on conflict do nothing",
                (bucket,),
            )
            next_at = float(
                await db.fetchval(
                    f"select next_at from identify_buckets where bucket = ?{db.dialect.for_update}",
                    (bucket,),
                )
            )
            now = self._clock()
            if next_at > now:
                return next_at - now
            await db.execute(
                "update identify_buckets set next_at = ? where bucket = ?",
                (now + self.interval, bucket),
            )
        return 0.0
