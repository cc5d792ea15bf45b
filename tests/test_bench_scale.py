"""A smoke run of the scale benchmark (``python -m bench --smoke --only scale``): the
gateway shards, the Telegram webhook processes and a worker, on PostgreSQL, with the
worker killed once (SIGKILL) and replaced. Every image is answered, and Discord shows no
answer twice. No timing is asserted."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from bench.report import COLUMNS
from sandbox.postgres import ENV_URL, PostgresServer

ROOT = Path(__file__).resolve().parent.parent


def _cells(line: str) -> list[str]:
    return [cell.strip() for cell in line[1:-1].split("|")]


def test_scale_smoke_answers_every_image_once(
    tmp_path: Path, postgres_server: PostgresServer
) -> None:
    rows_file = tmp_path / "rows.json"
    done = subprocess.run(
        [sys.executable, "-m", "bench", "--smoke", "--only", "scale", "--json", str(rows_file)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=180,
        # The session's PostgreSQL server: the benchmark makes its own database on it.
        env={**os.environ, ENV_URL: postgres_server.url},
    )
    assert done.returncode == 0, done.stderr[-3000:]

    table = [line for line in done.stdout.splitlines() if line.startswith("|")]
    assert _cells(table[0]) == list(COLUMNS)
    rows = {row["benchmark"].split(": ", 1)[1]: row for row in json.loads(rows_file.read_text())}
    assert [_cells(line)[0] for line in table[2:]] == [r["benchmark"] for r in rows.values()]
    assert "chaos, 1 worker" in table[3], "the run with one worker, killed once"
    assert "(1 kill)" in table[3]
    assert rows["lost images"]["measured"] == "0", rows["lost images"]
    assert rows["duplicate replies, Discord"]["measured"] == "0"
    assert rows["duplicate replies, Telegram"]["measured"].isdigit()
    assert rows["retried jobs"]["measured"].isdigit()
    assert rows["p95 message → reply"]["measured"].endswith(" ms")
    assert rows["worst event-loop lag"]["measured"].endswith(" ms")


def test_rows_of_runs_with_and_without_kills() -> None:
    from bench.fleet import Lag
    from bench.scale_report import Outcome, Phase, rows_of

    def outcome(workers: int, chaos: bool, rate: float) -> Outcome:
        latencies = {"discord": [0.2, 0.3], "telegram": [0.4, 0.9]}
        phases = (
            {"chaos": Phase(4, 4, 2.0, latencies)}
            if chaos
            else {"saturate": Phase(4, 4, 4 / rate, latencies), "steady": Phase(4, 4, 1, latencies)}
        )
        return Outcome(
            workers=workers, chaos=chaos, phases=phases,
            cpu={} if chaos else {"machine": 0.4, "postgres": 0.1, "emulators": 0.1},
            runnable=3.0, senders=2, lost=0, errors=0, discord_duplicates=0,
            telegram_duplicates=1 if chaos else 0, retried_jobs=2 if chaos else 0,
            resent_answers=0, kills=3 if chaos else 0,
            worst_lag={"worker": Lag(0.012, 0.010, f"worker-{workers}"), "discord": None},
            emulator_lag=0.005, telegram_429=0,
        )  # fmt: skip

    runs = [outcome(1, False, 10.0), outcome(2, False, 15.0), outcome(2, True, 5.0)]
    rows = {row.benchmark: row for row in rows_of(runs, rate=10.0, kill_every=1.0)}
    two = rows["scale, 2 workers: throughput, closed loop of 2 senders (4 images)"]
    assert two.measured == "15.0 images/s" and two.ratio == 1.5
    assert "CPU per image: bot 50.0 ms, PostgreSQL 25.0 ms" in two.reference
    assert rows["scale, 1 worker: p95 message → reply at 10 images/s (4 images)"].measured == (
        "900.0 ms"
    )
    assert rows["scale, no kills: lost images, duplicate replies"].met is True
    chaos = "scale chaos, 2 workers, 10 images/s, SIGKILL every 1 s (3 kills)"
    assert rows[f"{chaos}: duplicate replies, Telegram"].met is True
    assert rows[f"{chaos}: p95 message → reply"].reference == "no kills 900.0 ms"
    lag = rows[f"{chaos}: worst event-loop lag"]
    assert lag.measured == "12.0 ms" and "worker 12.0 ms (cpu 10.0 ms, worker-2)" in lag.reference
