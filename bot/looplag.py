"""How late the event loop runs what is due: a watch that sleeps a short interval and
measures how much later than asked it woke.

A callback that blocks the loop (a synchronous call, a long computation) delays every
task; the watch sees it as lag. It keeps the worst lag since start (``worst``) and in the
current report window, and logs one line per window at INFO, and a last one at stop::

    event loop lag: worst 3.2 ms in the last 5 s
    event loop lag: worst 1.0 ms in the last 2.4 s; worst 41.0 ms since start (stopping)

The lines are meant to be parsed (``LINE``). The cost is one timer per ``interval``
(50 ms): a few microseconds, twenty times a second.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import time
from collections.abc import Callable

log = logging.getLogger(__name__)

INTERVAL = 0.05  # seconds asked to sleep
REPORT_EVERY = 5.0  # seconds between log lines
# What the log lines say, for whoever reads them back (benchmarks, log scrapers).
LINE = re.compile(
    r"event loop lag: worst (?P<ms>\d+(?:\.\d+)?) ms in the last (?P<span>\d+(?:\.\d+)?) s"
)


class LoopLag:
    """``start()`` on the running loop, ``await stop()`` at the end. ``worst`` (seconds)
    is the worst lag since start, ``window_worst`` the worst since the last report."""

    def __init__(
        self,
        interval: float = INTERVAL,
        report_every: float = REPORT_EVERY,
        *,
        logger: logging.Logger = log,
        clock: Callable[[], float] = time.perf_counter,
    ) -> None:
        self.interval = interval
        self.report_every = report_every
        self.worst = 0.0
        self.window_worst = 0.0
        self.samples = 0
        self._log = logger
        self._clock = clock
        self._window_start = 0.0
        self._task: asyncio.Task[None] | None = None
        self._woke: asyncio.Event | None = None

    def start(self) -> None:
        if self._task is not None:
            raise RuntimeError("the loop lag watch is already running")
        self._window_start = self._clock()
        self._woke = asyncio.Event()
        self._task = asyncio.get_running_loop().create_task(self._watch(), name="loop-lag")

    async def _watch(self) -> None:
        clock, interval = self._clock, self.interval
        while True:
            before = clock()
            await asyncio.sleep(interval)
            now = clock()
            self._record(max(0.0, now - before - interval))
            if now - self._window_start >= self.report_every:
                self._report(now)

    def _record(self, lag: float) -> None:
        self.samples += 1
        self.window_worst = max(self.window_worst, lag)
        self.worst = max(self.worst, lag)
        assert self._woke is not None
        self._woke.set()
        self._woke = asyncio.Event()

    def _report(self, now: float, suffix: str = "") -> None:
        span = now - self._window_start
        self._log.info(
            "event loop lag: worst %.1f ms in the last %s s%s",
            self.window_worst * 1000,
            f"{span:.0f}" if span >= 1 else f"{span:.1f}",
            suffix,
        )
        self.window_worst = 0.0
        self._window_start = now

    async def wait_sample(self) -> None:
        """Until the watch has woken once more (and recorded its lag)."""
        assert self._woke is not None, "start() first"
        await self._woke.wait()

    async def stop(self) -> float:
        """Stop watching, log the last window and the worst since start; the worst lag."""
        task, self._task = self._task, None
        if task is None:
            return self.worst
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        self._report(self._clock(), f"; worst {self.worst * 1000:.1f} ms since start (stopping)")
        return self.worst
