"""A smoke run of ``python -m bench.telegram_cost``: every process starts, every variant
handles its photos and is measured. No timing is asserted."""

from __future__ import annotations

import json
import subprocess
import sys

from bench.telegram_cost import VARIANTS
from tests.conftest import ROOT


def test_telegram_cost_smoke_measures_every_variant() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "bench.telegram_cost", "--smoke", "--size", "16384", "--json"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-4000:]
    result = json.loads(done.stdout)
    assert set(result["cpu_ms"]) == set(VARIANTS)
    assert all(cpu > 0 for cpu in result["cpu_ms"].values())
    assert result["ratio"]["reference"] == 1.0
    # The bot answered every photo: one getFile and one reply each.
    assert result["calls"]["getFile"] == 1.0
    assert result["calls"]["sendMessage"] == 1.0
