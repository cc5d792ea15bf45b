"""Rows of the results table, their targets, and the machine they were measured on."""

from __future__ import annotations

import os
import platform
from dataclasses import dataclass
from datetime import date

from bench.common import MB

COLUMNS = ("benchmark", "measured", "reference (same run)", "ratio", "target", "met")


@dataclass(frozen=True)
class Row:
    benchmark: str
    measured: str
    reference: str = "—"
    ratio: float | None = None
    target: str = "—"
    met: bool | None = None

    def cells(self) -> tuple[str, ...]:
        ratio = "—" if self.ratio is None else f"{self.ratio:.2f}"
        met = "—" if self.met is None else ("yes" if self.met else "NO")
        return (self.benchmark, self.measured, self.reference, ratio, self.target, met)


def skipped(benchmark: str, why: str) -> Row:
    return Row(benchmark, f"skipped: {why}")


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.1f} ms"


def sec(seconds: float) -> str:
    return f"{seconds:.2f} s"


def mib(size: float) -> str:
    """A size in MB (KB below one MB), 1 MB = 2**20 bytes."""
    if size < MB:
        return f"{size / 1024:.0f} KB"
    return f"{size / MB:.1f} MB"


def ratio(measured: float, reference: float) -> float | None:
    return measured / reference if reference > 0 else None


def table(rows: list[Row]) -> str:
    """A Markdown table (readable as is in a terminal)."""
    cells = [COLUMNS, *(row.cells() for row in rows)]
    widths = [max(len(line[i]) for line in cells) for i in range(len(COLUMNS))]

    def line(values: tuple[str, ...]) -> str:
        return "| " + " | ".join(v.ljust(w) for v, w in zip(values, widths, strict=True)) + " |"

    rule = "|" + "|".join("-" * (w + 2) for w in widths) + "|"
    return "\n".join([line(cells[0]), rule, *(line(c) for c in cells[1:])])


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as info:
            for text in info:
                if text.startswith("model name"):
                    return text.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine() -> str:
    return (
        f"{date.today().isoformat()}, {cpu_model()}, nproc {len(os.sched_getaffinity(0))}, "
        f"Python {platform.python_version()}, {platform.system()} {platform.release()}"
    )
