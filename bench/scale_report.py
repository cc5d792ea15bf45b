"""The scale benchmark's results: what each run measured (``Outcome``, with a ``Phase``
per way of sending) and the rows of the table made of them."""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from bench.fleet import STOP_GRACE, Lag
from bench.report import Row, ms, ratio
from bench.traffic import Sent, percentile

LAG_TARGET = 0.050
CORES = len(os.sched_getaffinity(0))


@dataclass
class Phase:
    """The images of one phase: how many, answered, over what time, and how fast."""

    images: int
    answered: int
    seconds: float
    latencies: dict[str, list[float]]

    @classmethod
    def of(cls, sent: list[Sent]) -> Phase:
        answered = [s for s in sent if s.answered_at is not None]
        seconds = 0.0
        if answered:
            seconds = max(s.answered_at or 0.0 for s in answered) - min(s.at for s in sent)
        latencies: dict[str, list[float]] = {"discord": [], "telegram": []}
        for one in answered:
            latencies[one.platform].append(one.latency or 0.0)
        return cls(len(sent), len(answered), seconds, latencies)

    @property
    def throughput(self) -> float:
        return self.answered / self.seconds if self.seconds > 0 else 0.0

    def p(self, share: float, platform: str | None = None) -> float | None:
        values = [
            v for name, values in self.latencies.items() if platform in (None, name) for v in values
        ]
        return percentile(values, share)


@dataclass
class Outcome:
    """What one run measured."""

    workers: int
    chaos: bool
    phases: dict[str, Phase]
    cpu: dict[str, float]  # CPU seconds during the closed loop: machine, postgres, emulators
    runnable: float  # mean runnable processes while measuring
    senders: int
    lost: int
    errors: int
    discord_duplicates: int
    telegram_duplicates: int
    retried_jobs: int
    resent_answers: int
    kills: int
    worst_lag: dict[str, Lag | None]  # per role
    emulator_lag: float
    telegram_429: int
    unstopped: list[str] = field(default_factory=list)  # SIGTERM did not stop them in time

    @property
    def images(self) -> int:
        return sum(phase.images for phase in self.phases.values())

    @property
    def lag(self) -> float | None:
        known = [lag.seconds for lag in self.worst_lag.values() if lag is not None]
        return max(known) if known else None


def _per_s(value: float) -> str:
    return f"{value:.1f} images/s"


def fmt_ms(value: float | None) -> str:
    """Milliseconds, or a dash for no value."""
    return "—" if value is None else ms(value)


def _workers(count: int) -> str:
    return f"{count} worker{'s' if count > 1 else ''}"


def _kills(count: int) -> str:
    return f"{count} kill{'s' if count != 1 else ''}"


def _spread(phase: Phase) -> str:
    return (
        f"p50 {fmt_ms(phase.p(0.50))}, max {fmt_ms(phase.p(1.0))}; "
        f"Discord p95 {fmt_ms(phase.p(0.95, 'discord'))}, "
        f"Telegram p95 {fmt_ms(phase.p(0.95, 'telegram'))}"
    )


def _lag(lag: Lag | None) -> str:
    """``12.0 ms (cpu 3.0 ms, worker-r2)``: with the CPU its process used meanwhile (when
    known) and the process."""
    if lag is None:
        return "—"
    cpu = "" if lag.cpu is None else f"cpu {ms(lag.cpu)}, "
    return f"{ms(lag.seconds)} ({cpu}{lag.process})"


def _lag_row(label: str, outcome: Outcome) -> Row:
    lag = outcome.lag
    parts = [f"{role} {_lag(value)}" for role, value in outcome.worst_lag.items()]
    parts.append(f"emulators' own {fmt_ms(outcome.emulator_lag)}")
    parts.append(f"runnable processes {outcome.runnable:.1f} on {CORES} cores")
    return Row(
        f"{label}: worst event-loop lag", fmt_ms(lag), "; ".join(parts), None,
        f"< {ms(LAG_TARGET)}", None if lag is None else lag < LAG_TARGET,
    )  # fmt: skip


def _cpu(outcome: Outcome) -> str:
    """CPU per answered image in the closed loop: the bot's processes (the machine's busy
    time less PostgreSQL's and the emulators'), PostgreSQL's, the emulators'."""
    answered = outcome.phases["saturate"].answered
    if not answered or not outcome.cpu:
        return "CPU unknown"
    each = {name: seconds / answered for name, seconds in outcome.cpu.items()}
    bot = each["machine"] - each["postgres"] - each["emulators"]
    return (
        f"CPU per image: bot {ms(bot)}, PostgreSQL {ms(each['postgres'])}, "
        f"emulators {ms(each['emulators'])}"
    )


def _ratio(measured: float | None, reference: float | None) -> float | None:
    if measured is None or reference is None:
        return None
    return ratio(measured, reference)


def rows_of(runs: list[Outcome], *, rate: float, kill_every: float) -> list[Row]:
    """The table rows: per number of workers, then the runs without kills together, then
    each chaos run. ``rate``: the steady rate (images a second); ``kill_every``: seconds
    between kills."""
    plain = {o.workers: o for o in runs if not o.chaos}
    base = plain[min(plain)].phases["saturate"] if plain else None
    per_second = f"{rate:g} images/s"
    rows: list[Row] = []
    for outcome in plain.values():
        label = f"scale, {_workers(outcome.workers)}"
        saturate, steady_ = outcome.phases["saturate"], outcome.phases["steady"]
        reference = f"{_workers(min(plain))} {_per_s(base.throughput)}" if base else "—"
        reference += f"; {_cpu(outcome)}"
        loop = f"closed loop of {outcome.senders} senders"
        rows += [
            Row(f"{label}: throughput, {loop} ({saturate.images} images)",
                _per_s(saturate.throughput), reference,
                ratio(saturate.throughput, base.throughput) if base else None),
            Row(f"{label}: p95 message → reply, {loop}", fmt_ms(saturate.p(0.95)),
                _spread(saturate)),
            Row(f"{label}: p95 message → reply at {per_second} ({steady_.images} images)",
                fmt_ms(steady_.p(0.95)), _spread(steady_)),
            _lag_row(label, outcome),
        ]  # fmt: skip
    if plain:
        quiet = list(plain.values())
        lost = sum(o.lost + o.errors for o in quiet)
        twice = sum(o.discord_duplicates + o.telegram_duplicates for o in quiet)
        rows.append(
            Row("scale, no kills: lost images, duplicate replies", f"{lost}, {twice}",
                f"{sum(o.images for o in quiet)} images in {len(quiet)} runs; Telegram 429s "
                + ", ".join(f"{o.telegram_429} ({_workers(o.workers)})" for o in quiet),
                None, "0, 0",
                lost == 0 and twice == 0)
        )  # fmt: skip
    unstopped = [name for outcome in runs for name in outcome.unstopped]
    rows.append(
        Row(f"scale, all runs: processes SIGTERM did not stop within {STOP_GRACE:g} s",
            str(len(unstopped)), "; ".join(unstopped) or "every process stopped in time",
            None, "0", not unstopped)
    )  # fmt: skip
    for outcome in runs:
        if not outcome.chaos:
            continue
        phase = outcome.phases["chaos"]
        label = (
            f"scale chaos, {_workers(outcome.workers)}, {per_second}, SIGKILL every "
            f"{kill_every:g} s ({_kills(outcome.kills)})"
        )
        twin = plain.get(outcome.workers)
        calm = twin.phases["steady"] if twin else None
        lost = outcome.lost + outcome.errors
        rows += [
            Row(f"{label}: lost images", str(lost),
                f"of {phase.images}; answered with an error {outcome.errors}", None, "0",
                lost == 0),
            Row(f"{label}: duplicate replies, Discord", str(outcome.discord_duplicates),
                "nonce + enforce_nonce", None, "0", outcome.discord_duplicates == 0),
            Row(f"{label}: duplicate replies, Telegram", str(outcome.telegram_duplicates),
                _kills(outcome.kills), None, "≤ 1 per kill",
                outcome.telegram_duplicates <= outcome.kills),
            Row(f"{label}: retried jobs", str(outcome.retried_jobs),
                f"{_kills(outcome.kills)}; answers sent again {outcome.resent_answers}"),
            Row(f"{label}: p95 message → reply", fmt_ms(phase.p(0.95)),
                f"no kills {fmt_ms(calm.p(0.95))}" if calm else _spread(phase),
                _ratio(phase.p(0.95), calm.p(0.95) if calm else None)),
            _lag_row(label, outcome),
        ]  # fmt: skip
    return rows
