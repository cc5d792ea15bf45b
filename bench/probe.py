"""Peak resident memory of this process, and the event loop's worst lag.

Memory: the baseline is VmRSS after a full garbage collection, taken once everything is
imported and warmed up; the peak is VmHWM after resetting it (``/proc/self/clear_refs``),
so the growth counts every page touched during the measured work, even for a microsecond.
Where the reset is not allowed, a thread samples VmRSS every millisecond instead.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import threading
import time
from pathlib import Path

STATUS = Path("/proc/self/status")
CLEAR_REFS = Path("/proc/self/clear_refs")


def status_kib(field: str) -> int:
    """A ``/proc/self/status`` value such as VmRSS or VmHWM, in KiB."""
    for line in STATUS.read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise LookupError(field)


def _reset_peak() -> bool:
    try:
        CLEAR_REFS.write_text("5")  # 5: reset the peak RSS to the current RSS
    except OSError:
        return False
    return status_kib("VmHWM") <= status_kib("VmRSS") + 64


class MemoryProbe:
    """``start()`` then ``stop()``: peak RSS growth, in bytes, over the span."""

    def __init__(self) -> None:
        self.baseline = 0
        self.peak = 0
        self.method = ""
        self._sampling = False
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        gc.collect()
        self.baseline = status_kib("VmRSS")
        if _reset_peak():
            self.method = "VmHWM"
            return
        self.method = "sampled"
        self.peak = self.baseline
        self._sampling = True
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()

    def _sample(self) -> None:
        while self._sampling:
            self.peak = max(self.peak, status_kib("VmRSS"))
            time.sleep(0.001)

    def stop(self) -> int:
        if self._thread is not None:
            self._sampling = False
            self._thread.join()
        else:
            self.peak = status_kib("VmHWM")
        return max(0, self.peak - self.baseline) * 1024


class LagMonitor:
    """How late the event loop wakes a task that asks to sleep ``interval`` seconds."""

    def __init__(self, interval: float = 0.002) -> None:
        self.interval = interval
        self.worst = 0.0
        self.lags: list[float] = []
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._watch())

    async def _watch(self) -> None:
        while True:
            before = time.perf_counter()
            await asyncio.sleep(self.interval)
            lag = time.perf_counter() - before - self.interval
            self.lags.append(lag)
            self.worst = max(self.worst, lag)

    async def stop(self) -> float:
        """The worst lag seen, in seconds."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        return self.worst

    def percentile(self, share: float) -> float:
        if not self.lags:
            return 0.0
        ordered = sorted(self.lags)
        return ordered[min(len(ordered) - 1, int(share * len(ordered)))]
