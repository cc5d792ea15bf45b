"""The event-loop lag watch (``bot.looplag``): a call that blocks the loop shows up as lag,
in ``worst`` and in the parseable log lines, with the CPU the process spent meanwhile."""

from __future__ import annotations

import logging
import time

import pytest

from bot.looplag import LINE, LoopLag


def worst_logged(caplog: pytest.LogCaptureFixture) -> list[float]:
    return [
        float(match["ms"])
        for record in caplog.records
        if (match := LINE.match(record.getMessage())) is not None
    ]


async def test_a_blocked_loop_shows_as_lag(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="bot.looplag")
    lag = LoopLag(interval=0.01, report_every=3600)
    lag.start()
    await lag.wait_sample()
    time.sleep(0.2)  # blocks the loop: the watch wakes about 200 ms late
    await lag.wait_sample()
    assert lag.worst >= 0.150
    worst = await lag.stop()
    assert worst == lag.worst
    [line] = [r.getMessage() for r in caplog.records]
    assert line.endswith("since start (stopping)")
    assert worst_logged(caplog) == [pytest.approx(worst * 1000, abs=0.1)]


async def test_each_window_is_reported_and_then_forgotten(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="bot.looplag")
    lag = LoopLag(interval=0.01, report_every=0.0)  # a report after every sample
    lag.start()
    await lag.wait_sample()
    time.sleep(0.2)
    await lag.wait_sample()  # the blocked window, reported
    await lag.wait_sample()  # a calm one
    await lag.stop()
    logged = worst_logged(caplog)
    assert max(logged) >= 150, logged
    assert logged[-1] < max(logged), "a window after the blocked one starts from zero"
    assert lag.worst * 1000 == pytest.approx(max(logged), abs=0.1), "worst since start stays"


async def test_stop_without_start_is_harmless() -> None:
    assert await LoopLag().stop() == 0.0


async def test_the_cpu_spent_tells_computation_from_waiting(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="bot.looplag")
    lag = LoopLag(interval=0.01, report_every=0.0)
    lag.start()
    await lag.wait_sample()
    time.sleep(0.2)  # waiting: the loop is blocked, the process spends no CPU
    await lag.wait_sample()
    assert lag.window_worst == 0.0, "reported"
    slept_lag, slept_cpu = lag.worst, lag.worst_cpu
    assert slept_lag >= 0.150 and slept_cpu < slept_lag / 2
    spent = time.process_time()
    while time.process_time() - spent < 0.3:  # computing: 300 ms of CPU on the loop
        pass
    await lag.wait_sample()
    await lag.stop()
    assert lag.worst >= 0.250 and lag.worst_cpu >= 0.250
    cpus = [
        float(match["cpu"])
        for record in caplog.records
        if (match := LINE.match(record.getMessage())) is not None and match["cpu"]
    ]
    assert max(cpus) >= 250


async def test_a_window_ends_early_with_a_note(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="bot.looplag")
    lag = LoopLag(interval=0.01, report_every=3600)
    lag.start()
    await lag.wait_sample()
    time.sleep(0.2)
    await lag.wait_sample()
    lag.report("while starting")
    await lag.wait_sample()
    await lag.stop()
    first, stopping = [r.getMessage() for r in caplog.records]
    assert first.endswith(" while starting") and LINE.match(first)
    assert stopping.endswith("(stopping)")
    assert worst_logged(caplog)[0] >= 150
    assert worst_logged(caplog)[1] < worst_logged(caplog)[0], "the next window starts afresh"
