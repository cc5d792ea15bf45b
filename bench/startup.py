"""``python -m bench --only startup``: how long the ``rehost`` command takes to start.

Two rows, each against references measured in the same run:

- ``rehost --help``: the wall time of the console script (the ``rehost`` next to this
  interpreter, as users run it; ``python -m bot`` if there is none) against ``python -c
  pass`` on the same interpreter, as medians of runs taken in turn (15 each; 3 in the smoke
  profile). Target: at most twice the bare interpreter.
- ``rehost run`` to the first answer: the Telegram emulator and the host emulator run in a
  process of their own (``bench.startup_emulators``, so their CPU is not taken from this
  process) and already listen; a user's private photo waits there for ``getUpdates``
  before the bot starts. The time runs from just before ``Popen`` of ``rehost run -c
  CONFIG`` to the moment the emulator process records the bot's ``sendMessage`` carrying
  the viewer link, both read on CLOCK_MONOTONIC (``time.monotonic()``: one clock for every
  process on Linux). The emulator process also records the bot's first Bot API call and its
  first ``getUpdates``, to show where the time goes. Median of 5 runs (1 in the smoke
  profile), each on a fresh database; after each the bot gets SIGTERM and must exit 0.
  Target: 1.5 s.

Everything listens on 127.0.0.1; the bot runs without the ``REHOST_*`` variables of this
environment, so only the configuration written here points it anywhere.
"""

from __future__ import annotations

import json
import os
import queue
import signal
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.common import ROOT
from bench.report import Row, ms, ratio, sec

HELP_TARGET = 2.0  # rehost --help within this many times python -c pass
RUN_TARGET = 1.5  # seconds from starting rehost run to the first answer
ANSWER_TIMEOUT = 60.0
STOP_TIMEOUT = 30.0


@dataclass(frozen=True)
class StartupProfile:
    help_runs: int
    run_runs: int


PROFILES = {"full": StartupProfile(15, 5), "smoke": StartupProfile(3, 1)}


class StartupError(RuntimeError):
    pass


def _log(text: str) -> None:
    print(f"[bench] {text}", file=sys.stderr, flush=True)


def rehost_command() -> list[str]:
    """The console script next to this interpreter (what users run), else ``-m bot``."""
    script = Path(sys.executable).parent / "rehost"
    if script.is_file() and os.access(script, os.X_OK):
        return [str(script)]
    return [sys.executable, "-m", "bot"]


def bot_environment() -> dict[str, str]:
    """This environment without ``REHOST_*`` (a token or a database URL there would win
    over the configuration) and with no proxy for the local emulators."""
    environment = {k: v for k, v in os.environ.items() if not k.startswith("REHOST_")}
    environment["NO_PROXY"] = environment["no_proxy"] = "127.0.0.1,localhost"
    return environment


def _wall(command: list[str], environment: dict[str, str]) -> float:
    started = time.perf_counter()
    done = subprocess.run(command, cwd=ROOT, env=environment, capture_output=True)
    elapsed = time.perf_counter() - started
    if done.returncode != 0:
        tail = done.stderr.decode(errors="replace")[-3000:]
        raise StartupError(f"{' '.join(command)} exited {done.returncode}:\n{tail}")
    return elapsed


def measure_help(runs: int) -> tuple[float, float]:
    """Medians of ``python -c pass`` and ``rehost --help``, run in turn (the first of each
    pair alternating), after one unmeasured run of each."""
    environment = bot_environment()
    bare = [sys.executable, "-c", "pass"]
    helped = [*rehost_command(), "--help"]
    _wall(bare, environment), _wall(helped, environment)
    times: dict[str, list[float]] = {"bare": [], "help": []}
    for index in range(runs):
        pair = [("bare", bare), ("help", helped)]
        for name, command in pair if index % 2 == 0 else pair[::-1]:
            times[name].append(_wall(command, environment))
    return statistics.median(times["bare"]), statistics.median(times["help"])


# --- rehost run against the emulators --------------------------------------------------------


class Emulators:
    """The ``bench.startup_emulators`` process, spoken to in JSON lines (read by a thread,
    so that waiting for one can also watch the bot)."""

    def __init__(self) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "bench.startup_emulators", "--timeout", str(ANSWER_TIMEOUT)],
            cwd=ROOT,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        self.lines: queue.Queue[str] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.put(line)
        self.lines.put("")  # the process ended

    def next_run(self) -> dict[str, Any]:
        """A fresh Telegram emulator with the photo waiting: its addresses."""
        assert self.process.stdin is not None
        self.process.stdin.write("run\n")
        self.process.stdin.flush()
        return self.read(lambda: None, timeout=30.0)

    def read(self, check: Callable[[], None], timeout: float) -> dict[str, Any]:
        """The next JSON line; ``check()`` is called while waiting (it may raise)."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                line = self.lines.get(timeout=0.05)
            except queue.Empty:
                check()
                if time.monotonic() > deadline:
                    raise StartupError("the emulator process did not answer in time") from None
                continue
            if not line:
                raise StartupError("the emulator process ended early")
            answer: dict[str, Any] = json.loads(line)
            return answer

    def close(self) -> None:
        if self.process.stdin is not None:
            self.process.stdin.close()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


@contextmanager
def emulators() -> Iterator[Emulators]:
    running = Emulators()
    try:
        yield running
    finally:
        running.close()


def write_config(directory: Path, addresses: dict[str, Any]) -> Path:
    path = directory / "rehost.toml"
    path.write_text(
        '[upload]\nhosts = ["bench"]\n\n'
        f'[hosts.bench]\ndialect = "chevereto"\nendpoint = "{addresses["endpoint"]}"\n'
        f'api_key = "{addresses["api_key"]}"\n\n'
        f'[storage]\npath = "{directory / "rehost.db"}"\n\n'
        f'[telegram]\ntoken = "{addresses["token"]}"\nbase_url = "{addresses["base_url"]}"\n'
        f'base_file_url = "{addresses["base_file_url"]}"\n'
    )
    return path


@dataclass(frozen=True)
class RunTimes:
    """Seconds from starting ``rehost run`` to each moment."""

    first_call: float
    first_get_updates: float
    answered: float


def _tail(log: Path) -> str:
    return log.read_text(errors="replace")[-3000:]


def _stop(bot: subprocess.Popen[bytes], log: Path) -> None:
    """SIGTERM, then the bot must exit 0 within STOP_TIMEOUT."""
    if bot.poll() is None:
        bot.send_signal(signal.SIGTERM)
    try:
        code = bot.wait(timeout=STOP_TIMEOUT)
    except subprocess.TimeoutExpired:
        bot.kill()
        bot.wait()
        raise StartupError(f"rehost run did not stop on SIGTERM:\n{_tail(log)}") from None
    if code != 0:
        raise StartupError(f"rehost run exited {code}:\n{_tail(log)}")


def measure_run(running: Emulators, directory: Path) -> RunTimes:
    """One start of ``rehost run`` on a fresh database, to the answer of the waiting photo."""
    directory.mkdir()
    config = write_config(directory, running.next_run())
    log = directory / "rehost.log"
    with log.open("wb") as stderr:
        started = time.monotonic()
        bot = subprocess.Popen(
            [*rehost_command(), "run", "-c", str(config)],
            cwd=directory,
            env=bot_environment(),
            stdin=subprocess.DEVNULL,
            stdout=stderr,
            stderr=stderr,
        )
        try:

            def alive() -> None:
                if bot.poll() is not None:
                    raise StartupError(f"rehost run exited {bot.returncode}:\n{_tail(log)}")

            moments = running.read(alive, timeout=ANSWER_TIMEOUT + 10)
        except BaseException:
            if bot.poll() is None:
                bot.kill()
                bot.wait()
            raise
        if "error" in moments:
            bot.kill()
            bot.wait()
            raise StartupError(f"no answer: {moments['error']}\nthe bot's log:\n{_tail(log)}")
        _stop(bot, log)
    return RunTimes(
        first_call=moments["first_call"] - started,
        first_get_updates=moments["first_get_updates"] - started,
        answered=moments["answered"] - started,
    )


# --- the rows --------------------------------------------------------------------------------


def bench_startup(profile_name: str, workdir: Path) -> list[Row]:
    profile = PROFILES[profile_name]
    _log(f"startup: python -c pass and rehost --help, {profile.help_runs} runs each")
    bare, helped = measure_help(profile.help_runs)
    runs: list[RunTimes] = []
    with emulators() as running:
        for index in range(profile.run_runs):
            _log(f"startup: rehost run to the first answer, run {index + 1}/{profile.run_runs}")
            runs.append(measure_run(running, workdir / f"startup-{index}"))
    answered = statistics.median(run.answered for run in runs)
    first_call = statistics.median(run.first_call for run in runs)
    first_poll = statistics.median(run.first_get_updates for run in runs)
    help_ratio = ratio(helped, bare)
    n = profile.run_runs
    return [
        Row(f"startup: rehost --help, wall time (median of {profile.help_runs})", ms(helped),
            f"python -c pass {ms(bare)}", help_ratio, f"≤ {HELP_TARGET:.2f}",
            help_ratio is not None and help_ratio <= HELP_TARGET),
        Row(f"startup: rehost run to the first answered photo (Telegram, median of {n})",
            sec(answered),
            f"python -c pass {ms(bare)}; rehost --help {ms(helped)}; first Bot API call at "
            f"{ms(first_call)}, first getUpdates at {ms(first_poll)}",
            None, f"≤ {RUN_TARGET} s", answered <= RUN_TARGET),
    ]  # fmt: skip
