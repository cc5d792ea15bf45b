"""The per-user limit on how many images may be rehosted in a sliding window.

It is kept in the database, not in memory, so that it holds across every process sharing
the work: each job counted against the limit carries the time it was counted
(``jobs.counted_at``), and taking slots counts the jobs inside the window, under a lock on
the user (SQLite's write lock; an advisory lock on PostgreSQL) so that two processes
admitting the same user's images at once cannot both take the last slot.
"""

from __future__ import annotations

from dataclasses import dataclass

from bot.database import Database
from bot.expiration import minutes_phrase
from bot.said import Said, said_n


@dataclass(frozen=True)
class Grant:
    granted: int
    retry_after: float  # seconds until a slot frees up once the user is at the limit


@dataclass(frozen=True)
class RateLimit:
    limit: int
    window: float  # seconds

    async def take(
        self, db: Database, platform: str, owner_id: str, wanted: int, now: float
    ) -> Grant:
        """Inside a transaction: how many of ``wanted`` images this user may rehost now.
        The caller records the granted jobs with ``counted_at = now`` before it commits."""
        await db.lock_key(f"rate-limit {platform} {owner_id}")
        # One aggregate row, however many jobs are in the window (the limit caps the walk).
        row = await db.fetchrow(
            "select count(*) as counted, min(counted_at) as oldest from (select counted_at"
            " from jobs where platform = ? and owner_id = ? and counted_at > ?"
            " order by counted_at limit ?) as recent",
            (platform, owner_id, now - self.window, self.limit),
        )
        counted = int(row["counted"]) if row is not None else 0
        oldest = row["oldest"] if row is not None else None
        granted = max(0, min(wanted, self.limit - counted))
        retry_after = 0.0
        if counted + granted >= self.limit:
            first = float(oldest) if oldest is not None else now
            retry_after = max(0.0, first + self.window - now)
        return Grant(granted, retry_after)

    def refusal(self, grant: Grant) -> Said:
        """The answer for each image over the limit."""
        return said_n(
            "you have rehosted {n} image recently; try again in {wait}",
            "you have rehosted {n} images recently; try again in {wait}",
            self.limit,
            wait=minutes_phrase(grant.retry_after),
        )
