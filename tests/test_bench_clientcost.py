"""A smoke run of ``python -m bench.clientcost``: the bot's CPU per rehost against a
minimal aiohttp client. Tiny sizes; it checks the rows, not the numbers."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_client_cost_smoke_prints_its_rows() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "bench.clientcost", "--smoke"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    rows = [line for line in done.stdout.splitlines() if line.startswith("| burst")]
    assert len(rows) == 2
    assert "bot CPU per rehost vs a minimal aiohttp client" in rows[0]
    assert "bot HTTP alone" in rows[1]
    for row in rows:
        measured = row.split("|")[2].strip()
        assert measured.endswith(" ms") and float(measured.split()[0]) > 0
