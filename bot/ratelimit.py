"""A per-user sliding-window limit on how many images may be rehosted."""

from __future__ import annotations

import time
from collections import defaultdict, deque
from collections.abc import Callable


class SlidingWindowLimiter:
    def __init__(
        self, limit: int, window: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.limit = limit
        self.window = window
        self._clock = clock
        self._events: defaultdict[str, deque[float]] = defaultdict(deque)

    def _trim(self, key: str) -> deque[float]:
        events = self._events[key]
        horizon = self._clock() - self.window
        while events and events[0] <= horizon:
            events.popleft()
        return events

    def take(self, key: str, wanted: int) -> int:
        """Reserve up to ``wanted`` slots for ``key``; returns how many were granted."""
        events = self._trim(key)
        granted = max(0, min(wanted, self.limit - len(events)))
        now = self._clock()
        events.extend([now] * granted)
        if not events:
            del self._events[key]
        return granted

    def retry_after(self, key: str) -> float:
        """Seconds until ``key`` gets a slot back."""
        events = self._trim(key)
        if len(events) < self.limit:
            return 0.0
        return max(0.0, events[0] + self.window - self._clock())
