"""Where the CPU went during a benchmark phase, from ``/proc``: the whole machine, some
processes (with their children), and how many processes were runnable at once."""

from __future__ import annotations

import asyncio
import contextlib
import os
from pathlib import Path

TICK = os.sysconf("SC_CLK_TCK")
PROC = Path("/proc")


def machine_busy() -> float:
    """CPU seconds the machine has spent busy (not idle, not waiting for I/O) since boot."""
    fields = (PROC / "stat").read_text().splitlines()[0].split()[1:]
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(f) for f in fields[:8])
    return (user + nice + system + irq + softirq + steal) / TICK


def _stat(pid: int) -> list[str] | None:
    try:
        text = (PROC / str(pid) / "stat").read_text()
    except OSError:
        return None
    # The command name is in parentheses and may hold spaces: split after it.
    return text[text.rindex(")") + 2 :].split()


def process_tree_cpu(root: int) -> float:
    """CPU seconds used so far by ``root`` and its descendants: the living ones, and those
    already reaped (a PostgreSQL backend whose connection has closed, say)."""
    parents: dict[int, int] = {}
    times: dict[int, float] = {}
    for entry in PROC.iterdir():
        if not entry.name.isdigit():
            continue
        fields = _stat(int(entry.name))
        if fields is None:
            continue
        # fields[1] is the parent pid; [11], [12] user and system time (stat 14, 15); [13],
        # [14] those of its children it has waited for (stat 16, 17).
        parents[int(entry.name)] = int(fields[1])
        times[int(entry.name)] = sum(int(fields[i]) for i in (11, 12, 13, 14)) / TICK
    tree, total = {root}, 0.0
    changed = True
    while changed:
        changed = False
        for pid, parent in parents.items():
            if parent in tree and pid not in tree:
                tree.add(pid)
                changed = True
    for pid in tree:
        total += times.get(pid, 0.0)
    return total


def self_cpu() -> float:
    times = os.times()
    return times.user + times.system


class RunQueue:
    """Samples ``procs_running`` (runnable processes, this sampler included) every
    ``interval`` seconds while started."""

    def __init__(self, interval: float = 0.1) -> None:
        self.interval = interval
        self.samples: list[int] = []
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._sample())

    async def _sample(self) -> None:
        while True:
            for line in (PROC / "stat").read_text().splitlines():
                if line.startswith("procs_running "):
                    self.samples.append(int(line.split()[1]))
            await asyncio.sleep(self.interval)

    async def stop(self) -> float:
        """The mean number of runnable processes."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        return sum(self.samples) / len(self.samples) if self.samples else 0.0
