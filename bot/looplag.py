"""How late the event loop runs what is due: a watch that sleeps a short interval and
measures how much later than asked it woke.

A callback that blocks the loop (a synchronous call, a long computation) delays every
task; the watch sees it as lag. So does a process that waits for a core, on a machine
with more runnable processes than cores. To tell them apart, each line also gives the CPU
time this process used from the start of the worst interval to its late wake-up
(``cpu``): a lag with about as much CPU is computation on the loop; one with little is
waiting, for a blocking call (a sleep, synchronous I/O) or for a core.

It keeps the worst lag since start (``worst``) and in the current report window, and logs
one line per window at INFO, and a last one at stop::

    event loop lag: worst 35.1 ms in the last 1.2 s (cpu 30.2 ms) while starting
    event loop lag: worst 3.2 ms in the last 5 s (cpu 3.0 ms)
    event loop lag: worst 1.0 ms in the last 2 s (cpu 0.9 ms); worst 41.0 ms since start (stopping)

``report(note)`` ends a window early with a note (``rehost run`` ends the first once its
adapters have started, so that starting is told apart from serving). The lines are meant
to be parsed (``LINE``). The cost is one timer per ``interval``
(50 ms) and two reads of the process's CPU clock: a few microseconds, twenty times a
second.
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
    r"(?: \(cpu (?P<cpu>\d+(?:\.\d+)?) ms\))?"
)


class LoopLag:
    """``start()`` on the running loop, ``await stop()`` at the end. ``worst`` (seconds)
    is the worst lag since start, ``window_worst`` the worst since the last report;
    ``worst_cpu`` and ``window_worst_cpu`` the CPU time this process used during those
    intervals (the sleep and the lag)."""

    def __init__(
        self,
        interval: float = INTERVAL,
        report_every: float = REPORT_EVERY,
        *,
        logger: logging.Logger = log,
        clock: Callable[[], float] = time.perf_counter,
        cpu_clock: Callable[[], float] = time.process_time,
    ) -> None:
        self.interval = interval
        self.report_every = report_every
        self.worst = 0.0
        self.worst_cpu = 0.0
        self.window_worst = 0.0
        self.window_worst_cpu = 0.0
        self.last_window_worst = 0.0  # the window before the current one
        self.samples = 0
        self._log = logger
        self._clock = clock
        self._cpu_clock = cpu_clock
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
        clock, cpu_clock, interval = self._clock, self._cpu_clock, self.interval
        while True:
            before, cpu_before = clock(), cpu_clock()
            await asyncio.sleep(interval)
            now = clock()
            self._record(max(0.0, now - before - interval), cpu_clock() - cpu_before)
            if now - self._window_start >= self.report_every:
                self._report(now)

    def _record(self, lag: float, cpu: float = 0.0) -> None:
        self.samples += 1
        if lag >= self.window_worst:
            self.window_worst, self.window_worst_cpu = lag, cpu
        if lag >= self.worst:
            self.worst, self.worst_cpu = lag, cpu
        assert self._woke is not None
        self._woke.set()
        self._woke = asyncio.Event()

    def _report(self, now: float, suffix: str = "") -> None:
        span = now - self._window_start
        self._log.info(
            "event loop lag: worst %.1f ms in the last %s s (cpu %.1f ms)%s",
            self.window_worst * 1000,
            f"{span:.0f}" if span >= 1 else f"{span:.1f}",
            self.window_worst_cpu * 1000,
            suffix,
        )
        self.last_window_worst = self.window_worst
        self.window_worst = self.window_worst_cpu = 0.0
        self._window_start = now

    @property
    def recent_worst(self) -> float:
        """The worst lag of the current window and the one before it: over the last
        ``report_every`` to twice that (a gauge that a report does not reset to 0)."""
        return max(self.last_window_worst, self.window_worst)

    def report(self, note: str) -> None:
        """Log the current window now, with ``note`` after it, and start a new one."""
        self._report(self._clock(), f" {note}")

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
