"""The bot's processes in the scale benchmark: ``rehost run --role ...``, each in a process
group of its own with its log in a file, started, waited for, killed and stopped.

Every process is also told to die with this one (``PR_SET_PDEATHSIG`` on Linux), so that
none outlives a benchmark that was itself killed; ``stop()`` (in a ``finally``) ends the
rest: SIGTERM to each group, SIGKILL to what is left after a grace period.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import os
import signal
import sys
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from bench.common import ROOT
from bot.looplag import LINE

PR_SET_PDEATHSIG = 1
STARTED = "adapter started"
LOG_TIME = "%Y-%m-%d %H:%M:%S,%f"  # logging's asctime, local time
STOP_GRACE = 20.0  # seconds a process gets to stop after SIGTERM
STARTING = " while starting"  # how rehost run marks the lag of its start (bot.runner)


class FleetError(RuntimeError):
    pass


def _die_with_parent() -> None:
    """In the child, before exec: SIGKILL when the parent goes (Linux only)."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)


@dataclass(frozen=True)
class Lag:
    """One logged event-loop lag: how late (seconds), the CPU the process used meanwhile
    (None: not logged), and which process."""

    seconds: float
    cpu: float | None
    process: str


@dataclass
class Member:
    """One process: ``name`` (``worker-3``), its ``role``, and how many adapters it starts
    (its log says "... adapter started" once for each)."""

    name: str
    role: str
    adapters: int
    process: asyncio.subprocess.Process
    log: Path
    killed: bool = False
    started_at: float = field(default_factory=time.monotonic)

    @property
    def running(self) -> bool:
        return self.process.returncode is None and not self.killed

    def log_text(self) -> str:
        try:
            return self.log.read_text(errors="replace")
        except OSError:
            return ""

    def is_ready(self) -> bool:
        return self.log_text().count(STARTED) >= self.adapters

    def worst_lag(self, since: float = 0.0) -> Lag | None:
        """The worst event-loop lag this process logged while serving (not starting), in
        windows that ended at or after ``since`` (``time.time()``); None: no such line."""
        found = []
        for line in self.log_text().splitlines():
            match = LINE.search(line)
            if match is None or line.endswith(STARTING):
                continue
            try:
                logged = datetime.strptime(line[:23], LOG_TIME).timestamp()
            except ValueError:
                continue
            if logged >= since:
                cpu = float(match["cpu"]) / 1000 if match["cpu"] else None
                found.append(Lag(float(match["ms"]) / 1000, cpu, self.name))
        return max(found, key=lambda lag: lag.seconds) if found else None


class Fleet:
    """Processes of ``python -m bot run -c CONFIG --role ...`` under ``workdir``."""

    def __init__(self, workdir: Path, environment: dict[str, str] | None = None) -> None:
        self.workdir = workdir
        self.environment = {**os.environ, "REHOST_LOG_LEVEL": "INFO", **(environment or {})}
        self.members: list[Member] = []
        self._count = 0

    async def start(self, name: str, config: Path, role: str, *extra: str) -> Member:
        """Start one process; ``role``: discord, telegram or worker."""
        self._count += 1
        log = self.workdir / f"{self._count:03d}-{name}.log"
        adapters = 2 if role == "worker" else 1  # a worker serves both platforms
        with log.open("wb") as stream:
            process = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "bot", "run", "-c", str(config), "--role", role, *extra,
                cwd=ROOT, env=self.environment, stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.DEVNULL, stderr=stream,
                start_new_session=True, preexec_fn=_die_with_parent,
            )  # fmt: skip
        member = Member(name, role, adapters, process, log)
        self.members.append(member)
        return member

    async def ready(self, members: list[Member], timeout: float = 90.0) -> None:
        """Until each of ``members`` has started all its adapters."""
        deadline = time.monotonic() + timeout
        waiting = list(members)
        while waiting:
            for member in list(waiting):
                if member.process.returncode is not None:
                    raise FleetError(
                        f"{member.name} exited with {member.process.returncode}:\n"
                        + member.log_text()[-3000:]
                    )
                if member.is_ready():
                    waiting.remove(member)
            if waiting and time.monotonic() > deadline:
                names = ", ".join(m.name for m in waiting)
                raise FleetError(f"not ready after {timeout:.0f} s: {names}")
            await asyncio.sleep(0.05)

    async def kill(self, member: Member) -> None:
        """SIGKILL the process and its group, as a crash or the OOM killer would."""
        member.killed = True
        with contextlib.suppress(ProcessLookupError):
            os.killpg(member.process.pid, signal.SIGKILL)
        await member.process.wait()

    def running(self, role: str | None = None) -> list[Member]:
        return [m for m in self.members if m.running and role in (None, m.role)]

    async def stop(self, grace: float = STOP_GRACE) -> None:
        """SIGTERM every group still running (each logs its last lines), SIGKILL after
        ``grace`` seconds."""
        alive = [m for m in self.members if m.process.returncode is None]
        for member in alive:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(member.process.pid, signal.SIGTERM)
        waits = [asyncio.create_task(m.process.wait()) for m in alive]
        if waits:
            _, pending = await asyncio.wait(waits, timeout=grace)
            for task in pending:
                task.cancel()
        for member in alive:
            if member.process.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(member.process.pid, signal.SIGKILL)
                await member.process.wait()

    def worst_lag(self, role: str | None = None, since: float = 0.0) -> Lag | None:
        """The worst event-loop lag any process (of ``role``) logged while serving, in
        windows that ended at or after ``since`` (``time.time()``)."""
        lags = [
            lag
            for m in self.members
            if role in (None, m.role) and (lag := m.worst_lag(since)) is not None
        ]
        return max(lags, key=lambda lag: lag.seconds) if lags else None

    def failures(self) -> list[str]:
        """Processes that ended with an error by themselves, or that SIGTERM did not stop
        in time (SIGKILL did): not those the chaos killed."""
        return [
            f"{m.name} exited with {m.process.returncode}"
            for m in self.members
            if not m.killed and m.process.returncode not in (None, 0, -signal.SIGTERM)
        ]
