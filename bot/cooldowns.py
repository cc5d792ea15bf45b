"""Host cooldowns: a host that answered "flooding" or "rate limit" is left alone for the
window it named (a minute by default), by every upload, in every process that shares the
database. Retrying within seconds only fails again and makes the window longer."""

from __future__ import annotations

import time
from collections.abc import Callable

from bot import metrics
from bot.store import Store, now_utc, to_text


class Cooldowns:
    """In memory, or shared through the store's ``host_cooldowns`` table."""

    def __init__(self, store: Store | None = None, clock: Callable[[], float] = time.time):
        self._store = store
        self._clock = clock
        self._memory: dict[str, tuple[float, str]] = {}

    async def remaining(self, host: str) -> float:
        """Seconds until ``host`` may be tried again (0: now)."""
        until = await self._until(host)
        return max(0.0, until - self._clock()) if until is not None else 0.0

    async def cool(self, host: str, seconds: float, reason: str) -> None:
        until = self._clock() + seconds
        self._memory[host] = (until, reason)
        metrics.COOLDOWNS.labels(host).inc()
        if self._store is None:
            return
        longest = self._store.db.dialect.greatest("host_cooldowns.until", "excluded.until")
        await self._store.db.execute(
            "insert into host_cooldowns (host, until, reason, since) values (?, ?, ?, ?)"
            f" on conflict (host) do update set until = {longest},"
            " reason = excluded.reason, since = excluded.since",
            (host, until, reason, to_text(now_utc())),
        )

    async def active(self) -> dict[str, tuple[float, str]]:
        """Hosts cooling down now: ``{host: (seconds left, reason)}``."""
        now = self._clock()
        found = dict(self._memory)
        if self._store is not None:
            rows = await self._store.db.fetch(
                "select host, until, reason from host_cooldowns where until > ?", (now,)
            )
            found.update({row["host"]: (row["until"], row["reason"]) for row in rows})
        return {
            host: (until - now, reason) for host, (until, reason) in found.items() if until > now
        }

    async def _until(self, host: str) -> float | None:
        if self._store is not None:
            until = await self._store.db.fetchval(
                "select until from host_cooldowns where host = ?", (host,)
            )
            if until is not None:
                return float(until)
        cached = self._memory.get(host)
        return cached[0] if cached else None
