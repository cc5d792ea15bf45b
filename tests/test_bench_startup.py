"""A smoke run of the startup benchmark (``python -m bench --smoke --only startup``):
``rehost --help`` against ``python -c pass``, and ``rehost run`` started against the
emulators until it answers a waiting photo and stops on SIGTERM with exit 0. Both rows
carry numbers; no timing is asserted."""

from __future__ import annotations

import re
from pathlib import Path

from bench.cli import BENCHMARKS, DEFAULT
from bench.startup import bench_startup

MS = re.compile(r"\d+\.\d ms")


def test_startup_smoke_measures_both_rows(tmp_path: Path) -> None:
    help_row, run_row = bench_startup("smoke", tmp_path)

    assert help_row.benchmark.startswith("startup: rehost --help")
    assert re.fullmatch(r"\d+\.\d ms", help_row.measured), help_row
    assert re.fullmatch(r"python -c pass \d+\.\d ms", help_row.reference), help_row
    assert help_row.ratio is not None and help_row.ratio > 0
    assert help_row.met is not None

    assert run_row.benchmark.startswith("startup: rehost run to the first answered photo")
    assert re.fullmatch(r"\d+\.\d\d s", run_row.measured), run_row
    assert len(MS.findall(run_row.reference)) == 4, run_row  # pass, --help, first call, poll
    assert run_row.met is not None
    # The bot's first call and first getUpdates came before its answer.
    first_call, first_poll = (float(t.split()[0]) for t in MS.findall(run_row.reference)[2:])
    assert 0 < first_call <= first_poll <= float(run_row.measured.split()[0]) * 1000

    assert "startup" in BENCHMARKS and "startup" in DEFAULT
