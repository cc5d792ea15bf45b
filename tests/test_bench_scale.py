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
