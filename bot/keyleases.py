"""Leases on keys, shared by every process: one process works on a key at a time.

Used for the bytes being uploaded (the key is their sha256): of two workers handling the
same image at once, the first uploads and the second waits, then finds the first's record
and reuses it. The lease is released in the transaction that records the upload, so the
record is there when the next holder looks; a holder that dies leaves a lease that lapses.

On PostgreSQL the leases are rows, shared by every process. SQLite is the one-process
engine: there they are kept in this process's memory (shared by every store opened on the
same file), which saves a write transaction per upload.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable

from bot.database import Database

RECHECK = 0.25  # seconds between looks at a lease another process holds

# SQLite's leases: database file -> key -> (holder, until).
_IN_MEMORY: dict[str, dict[str, tuple[str, float]]] = {}


class KeyLeases:
    def __init__(self, db: Database, lease: float, clock: Callable[[], float] = time.time) -> None:
        self.db = db
        self.lease = lease
        self._clock = clock
        self._released: dict[str, asyncio.Event] = {}  # wakes this process's waiters
        self._memory: dict[str, tuple[str, float]] | None = None
        if not db.dialect.postgres:
            self._memory = _IN_MEMORY.setdefault(
                db.where if db.where != ":memory:" else f"memory:{id(db)}", {}
            )

    async def try_acquire(self, key: str, holder: str) -> bool:
        now = self._clock()
        if self._memory is not None:
            current = self._memory.get(key)
            if current is not None and current[1] >= now and current[0] != holder:
                return False
            self._memory[key] = (holder, now + self.lease)
            return True
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
        if self._memory is not None:
            if self._memory.get(key, ("", 0.0))[0] == holder:
                del self._memory[key]
            self.wake(key)
            return
        await self.db.execute("delete from key_leases where key = ? and holder = ?", (key, holder))
        self.wake(key)

    def wake(self, key: str) -> None:
        event = self._released.pop(key, None)
        if event is not None:
            event.set()

    async def renew(self, holder_prefix: str) -> None:
        """Extend every lease whose holder starts with ``holder_prefix`` (a worker's)."""
        if self._memory is not None:
            until = self._clock() + self.lease
            for key, (holder, _) in list(self._memory.items()):
                if holder.startswith(holder_prefix):
                    self._memory[key] = (holder, until)
            return
        await self.db.execute(
            "update key_leases set until = ? where holder like ?",
            (self._clock() + self.lease, holder_prefix + "%"),
        )
