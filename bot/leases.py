"""Leased work: a loop that claims rows with leases, works them concurrently, and keeps
its leases alive while it does.

A worker renews the rows it holds every third of the lease, so that a process that dies
loses its claims quickly and one that lives keeps them. The job worker and the outbox
senders are both such loops; they differ only in what they claim and how they work it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import uuid
from abc import ABC, abstractmethod
from collections.abc import Iterable, Sequence
from typing import Generic, TypeVar

from bot.database import Database, Row

log = logging.getLogger(__name__)
DEFAULT_LEASE = 15.0  # seconds; renewed every third of it
T = TypeVar("T")


# Rows looked at beyond those wanted, for those another process is claiming right now.
EXTRA_CANDIDATES = 8


async def lease_rows(
    db: Database,
    table: str,
    candidates: Sequence[int],
    *,
    pending: str,
    worker: str,
    now: float,
    lease: float,
    limit: int,
) -> list[Row]:
    """Inside a transaction: lease to ``worker`` up to ``limit`` of ``candidates`` (row
    ids of ``table``, best first) that are still ``pending`` and unleased, counting an
    attempt each. Rows another process is claiming at this moment are skipped, not
    waited for (PostgreSQL's ``skip locked``; SQLite's transaction excludes the others)."""
    if not candidates:
        return []
    marks = ",".join("?" for _ in candidates)
    free = {
        row["id"]
        for row in await db.fetch(
            f"select id from {table} where id in ({marks}) and state = ?"
            f" and (lease_until is null or lease_until < ?){db.dialect.skip_locked}",
            (*candidates, pending, now),
        )
    }
    ids = [row_id for row_id in candidates if row_id in free][:limit]
    if not ids:
        return []
    return await db.fetch(
        f"update {table} set lease_owner = ?, lease_until = ?, attempts = attempts + 1"
        f" where id in ({','.join('?' for _ in ids)}) returning *",
        (worker, now + lease, *ids),
    )


def worker_name(role: str) -> str:
    """Unique per process and role: ``host:pid:role:random``."""
    return f"{socket.gethostname()}:{os.getpid()}:{role}:{uuid.uuid4().hex[:6]}"


class ClaimLoop(ABC, Generic[T]):
    """Claims up to ``slots`` items at a time and works each in its own task."""

    def __init__(self, role: str, *, slots: int, lease: float, poll: float) -> None:
        self.name = worker_name(role)
        self.slots = slots
        self.lease = lease
        self.poll = poll  # look again at least this often (others' leases lapse)
        self._wake = asyncio.Event()
        self.running: dict[int, tuple[T, asyncio.Task[None]]] = {}

    @abstractmethod
    async def claim(self, free: int) -> list[T]:
        """Lease up to ``free`` items to this loop."""

    @abstractmethod
    def key(self, item: T) -> int:
        """The row id of ``item``."""

    @abstractmethod
    async def work(self, item: T) -> None:
        """Work one claimed item (and record its end)."""

    @abstractmethod
    async def renew(self, ids: Iterable[int]) -> None:
        """Extend the leases of the rows this loop is working."""

    async def idle_timeout(self) -> float:
        """How long to wait for a wake-up when there was nothing to claim."""
        return self.poll

    async def housekeeping(self) -> None:
        """Run before each claim (cheap, or rate-limited by the subclass)."""

    async def released(self) -> None:
        """The loop stopped: give up what it still holds."""

    def wake(self) -> None:
        self._wake.set()

    async def run(self) -> None:
        renewer = asyncio.create_task(self._keep_renewing())
        try:
            while True:
                self._wake.clear()
                await self.housekeeping()
                free = self.slots - len(self.running)
                items = await self.claim(free) if free > 0 else []
                for item in items:
                    self.running[self.key(item)] = (item, asyncio.create_task(self._run(item)))
                if items:
                    await asyncio.sleep(0)  # let the new tasks start before claiming more
                    continue
                # asyncio.timeout, not wait_for: on Python 3.11 wait_for can swallow the
                # cancellation that stops this loop when the wake-up comes at the same time.
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(await self.idle_timeout()):
                        await self._wake.wait()
        finally:
            renewer.cancel()
            tasks = [task for _, task in self.running.values()]
            for task in tasks:
                task.cancel()
            await asyncio.gather(renewer, *tasks, return_exceptions=True)
            try:
                await self.released()
            except Exception:
                log.exception("%s could not release its leases", self.name)

    async def _run(self, item: T) -> None:
        try:
            await self.work(item)
        finally:
            self.running.pop(self.key(item), None)
            self.wake()

    async def _keep_renewing(self) -> None:
        while True:
            await asyncio.sleep(self.lease / 3)
            try:
                await self.renew(list(self.running))
            except Exception:
                log.exception("renewing leases failed")
