"""What one process wrote lately, to skip writing the same again.

Some rows are seen far more often than they change (a user's language at each update, an
admin at each settings button). A process keeps the values it wrote (or read) in a
bounded cache, least recently used first, each entry trusted for a while: another
process sharing the database may change the row meanwhile, so an entry lapses and the
next sighting writes again.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

from cachetools import TTLCache

from bot.database import Database

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class RecentWrites(Generic[K, V]):
    """A table's writer and reader in one process, with :attr:`known`, its cache of
    what the table holds as far as this process knows."""

    CAPACITY = 10_000  # entries a process keeps in memory
    TRUSTED_FOR = 600.0  # seconds an entry is taken to be what the database holds

    def __init__(
        self,
        db: Database,
        *,
        capacity: int | None = None,
        trusted_for: float | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.db = db
        self.known: TTLCache[K, V] = TTLCache(
            maxsize=capacity or self.CAPACITY,
            ttl=trusted_for if trusted_for is not None else self.TRUSTED_FOR,
            timer=clock,
        )
