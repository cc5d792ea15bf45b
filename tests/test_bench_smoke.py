"""A smoke run of the benchmarks (``python -m bench --smoke``): it runs and prints a
well-formed table with every row. Tiny sizes; no timing is asserted."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from bench.report import COLUMNS

ROOT = Path(__file__).resolve().parent.parent

# Every row the smoke profile prints, by the start of its label.
EXPECTED = [
    "upload 256 KB: time, core vs curl",
    "upload 256 KB: peak RSS, core",
    "upload 256 KB: time, core vs imgbbpy AsyncClient",
    "upload 256 KB: client CPU, core vs imgbbpy AsyncClient",
    "upload 256 KB: time, core vs imgbbpy SyncClient",
    "upload 256 KB: peak RSS growth, core vs imgbbpy AsyncClient",
    "upload 256 KB: peak RSS growth, core vs imgbbpy SyncClient",
    "rehost 8 x 256 KB concurrently: peak RSS growth",
    "burst 24 x 4 KB @ c=4, host 2.0 ms: completion",
    "burst 24 x 4 KB @ c=16, host 2.0 ms: completion",
    "burst 24 x 4 KB @ c=64, host 2.0 ms: completion",
    "burst 24 x 4 KB @ c=4: worst event-loop lag",
    "burst 24 x 4 KB @ c=16: worst event-loop lag",
    "burst 24 x 4 KB @ c=64: worst event-loop lag",
    "burst 24 x 4 KB @ c=16, all arriving in one loop turn: worst event-loop lag",
    "burst 24 x 4 KB: bot CPU per rehost at c=64 vs c=4",
    "burst of 40 vs 8 @ c=16: bot CPU per rehost",
    "burst 24 x 4 KB @ c=16: SQLite write transactions per rehost",
    "burst 24 x 4 KB @ c=16: bot CPU per rehost, PostgreSQL vs SQLite",
    "dedup, same 16 KB by the same owner, by sha256 (download + hash): median rehost",
    "dedup, same 64 KB by the same owner, by sha256 (download + hash): median rehost",
    "dedup, same 16 KB by the same owner, known file id (Telegram): median rehost",
    "dedup, same 64 KB by the same owner, known file id (Telegram): median rehost",
    "dedup: host upload requests during the repeats",
    "burst 24 x 4 KB @ c=16: bot CPU per rehost vs a minimal aiohttp client",
    "burst 24 x 4 KB @ c=16: bot HTTP alone (fetch + upload, no queue) vs aiohttp",
    "Telegram photo of 256 KB end to end: bot process CPU per photo vs a minimal aiohttp",
    "Telegram photo of 256 KB end to end: the same on PTB's stock HTTPXRequest (before)",
    "startup: rehost --help, wall time",
    "startup: rehost run to the first answered photo",
]


def _cells(line: str) -> list[str]:
    assert line.startswith("|") and line.endswith("|"), line
    return [cell.strip() for cell in line[1:-1].split("|")]


def test_bench_smoke_prints_every_row(tmp_path: Path) -> None:
    pytest.importorskip("imgbbpy")
    rows_file = tmp_path / "rows.json"
    done = subprocess.run(
        [sys.executable, "-m", "bench", "--smoke", "--json", str(rows_file)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]

    lines = done.stdout.strip().splitlines()
    assert lines[0].startswith("Measured ") and "nproc" in lines[0] and "profile smoke" in lines[0]
    table = [line for line in lines if line.startswith("|")]
    header, rule, *body = table
    assert _cells(header) == list(COLUMNS)
    assert set(rule) <= {"|", "-"}
    assert len(body) == len(EXPECTED)
    curl = shutil.which("curl") is not None
    for line, label in zip(body, EXPECTED, strict=True):
        cells = _cells(line)
        assert len(cells) == len(COLUMNS), line
        assert cells[0].startswith(label.split(": ")[0]), (cells[0], label)
        if "curl" in label and not curl:
            assert cells[1].startswith("skipped"), line
            continue
        assert cells[0].startswith(label), (cells[0], label)
        assert cells[1] and not cells[1].startswith("skipped"), line
        assert cells[5] in ("yes", "NO", "—"), line

    rows = json.loads(rows_file.read_text())
    assert [row["benchmark"] for row in rows] == [_cells(line)[0] for line in body]
