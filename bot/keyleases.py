"""Leases on keys, shared by every process: one process works on a key at a time.

Used for the bytes being uploaded (the key is their sha256): of two workers handling the
same image at once, the first uploads and the second waits, then finds the first's record
and reuses it. The lease is released in the transaction that records the upload, so the
record is there when the next holder looks; a holder that dies leaves a lease that lapses.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable

from bot.database import Database

RECHECK = 0.25  # seconds between looks at a lease another process holds


class KeyLeases:
    def __init__(self, db: Database, lease: float, clock: Callable[[], float] = time.time) -> None:
        self.db = db
        self.lease = lease
        self._clock = clock
        self._released: dict[str, asyncio.Event] = {}  # wakes this process's waiters

    async def try_acquire(self, key: str, holder: str) -> bool:
        now = self._clock()
        taken = await self.db.execute(
            "insert into key_leases (key, holder, until) values (?, ?, ?)"
            " on conflict (key) do update set holder = excluded.holder, until = excluded.until"
            " where key_leases.until < ? or key_leases.holder = excluded.holder",
            (key, holder, now + self.lease, now),
        )
        return taken > 0

    async def acquire(self, key: str, holder: str) -> None:
        """Wait until ``holder`` holds ``key``."""
        while not await self.try_acquire(key, holder):
            event = self._released.setdefault(key, asyncio.Event())
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(RECHECK):
                    await event.wait()

    async def release(self, key: str, holder: str) -> None:
        """Give the key up (inside the caller's transaction, if any)."""
        await self.db.execute("delete from key_leases where key = ? and holder = ?", (key, holder))
        self.wake(key)

    def wake(self, key: str) -> None:
        event = self._released.pop(key, None)
        if event is not None:
            event.set()

    async def renew(self, holder_prefix: str) -> None:
        """Extend every lease whose holder starts with ``holder_prefix`` (a worker's)."""
        await self.db.execute(
            "update key_leases set until = ? where holder like ?",
            (self._clock() + self.lease, holder_prefix + "%"),
        )
