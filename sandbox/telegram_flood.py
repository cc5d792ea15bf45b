"""Telegram's flood limits on the messages a bot sends.

Telegram asks bots to stay near one message per second in a chat, twenty a minute in a
group and thirty a second overall; above that it answers ``429 Too Many Requests: retry
after N`` and, for the next N seconds, refuses every send to that chat, however polite
the request: a bot that ignores ``retry_after`` keeps being refused. Only methods that
create messages count; chat actions, edits, deletions and reads do not.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from sandbox.telegram_wire import too_many_requests

SENDING_METHODS = frozenset(
    {"sendMessage", "sendPhoto", "sendDocument", "sendMediaGroup", "copyMessage", "forwardMessage"}
)

Limit = tuple[int, float]  # at most this many messages in any sliding window of seconds


@dataclass(frozen=True)
class FloodLimits:
    """Telegram's limits by default: ``per_chat`` burst of 5 in 5 s (about 1/s),
    ``per_group`` 20 a minute in groups and supergroups, ``overall`` 30 a second."""

    per_chat: Limit = (5, 5.0)
    per_group: Limit = (20, 60.0)
    overall: Limit = (30, 1.0)


TELEGRAM_LIMITS = FloodLimits()


def whole_seconds(delay: float) -> int:
    """``retry_after`` as Telegram gives it: whole seconds, at least one."""
    return max(1, math.ceil(delay))


class _Window:
    """The times of the messages sent within the last ``seconds``."""

    def __init__(self, limit: Limit) -> None:
        self.count, self.seconds = limit
        self.times: deque[float] = deque()

    def delay(self, now: float) -> float:
        """Seconds until one more message fits; 0 if it fits now."""
        while self.times and self.times[0] <= now - self.seconds:
            self.times.popleft()
        if len(self.times) < self.count:
            return 0.0
        return self.times[-self.count] + self.seconds - now


class FloodControl:
    """The windows and flood waits of one bot; ``limits=None`` checks only the waits
    set by ``flood``."""

    def __init__(self, limits: FloodLimits | None, clock: Callable[[], float]) -> None:
        self.limits = limits
        self._clock = clock
        self._overall = _Window(limits.overall) if limits else None
        self._chats: dict[int, _Window] = {}
        self._groups: dict[int, _Window] = {}
        # End of the flood wait of a chat, or of the whole bot (key None).
        self._waits: dict[int | None, float] = {}

    def flood(self, chat_id: int | None, retry_after: int) -> None:
        """Refuse every send to ``chat_id`` (None: to any chat) for ``retry_after`` s."""
        self._waits[chat_id] = self._clock() + retry_after

    def admit(self, chat_id: int, sends: int = 1) -> float:
        """Count ``sends`` messages to the chat, or raise 429; returns their time."""
        now = self._clock()
        waiting = max(self._waits.get(chat_id, 0.0), self._waits.get(None, 0.0)) - now
        if waiting > 0:
            raise too_many_requests(whole_seconds(waiting))
        for key, window in self._windows(chat_id):
            if (delay := window.delay(now)) > 0:
                self._waits[key] = now + whole_seconds(delay)
                raise too_many_requests(whole_seconds(delay))
        for _, window in self._windows(chat_id):
            window.times.extend([now] * sends)
        return now

    def refund(self, chat_id: int, at: float, sends: int = 1) -> None:
        """Forget sends that ``admit`` counted but that created no message."""
        for _, window in self._windows(chat_id):
            for _ in range(sends):
                if at in window.times:  # not yet out of the window
                    window.times.remove(at)

    def _windows(self, chat_id: int) -> list[tuple[int | None, _Window]]:
        if self.limits is None or self._overall is None:
            return []
        windows: list[tuple[int | None, _Window]] = [(None, self._overall)]
        per_chat = self._chats.setdefault(chat_id, _Window(self.limits.per_chat))
        windows.append((chat_id, per_chat))
        if chat_id < 0:
            per_group = self._groups.setdefault(chat_id, _Window(self.limits.per_group))
            windows.append((chat_id, per_group))
        return windows


__all__ = ["SENDING_METHODS", "TELEGRAM_LIMITS", "FloodControl", "FloodLimits", "whole_seconds"]
