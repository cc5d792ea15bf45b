"""``python -m bench``: run every benchmark, then print one table of ratios.

Each benchmark starts its own emulator process (``bench.server``) and measures the bot
side in fresh worker processes (``bench.worker``); ``curl`` runs as its own process too.
Progress goes to standard error, the table to standard output.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from bench.common import API_KEY, MB, ROOT, image
from bench.report import Row, machine, mib, ms, ratio, sec, skipped, table

KB = 1 << 10


@dataclass(frozen=True)
class Profile:
    name: str
    upload_size: int
    rounds: int
    memory_count: int
    memory_size: int
    burst_count: int
    burst_size: int
    burst_latency: float
    concurrencies: tuple[int, ...]
    growth_counts: tuple[int, int]  # a small and a large burst, at c=16
    growth_rounds: int  # runs of the small burst (median of)
    telegram_photos: int
    telegram_rounds: int
    dedup_sizes: tuple[int, ...]
    dedup_repeats: int


FULL = Profile(
    name="full",
    upload_size=20 * MB,
    rounds=7,
    memory_count=8,
    memory_size=25 * MB,
    burst_count=500,
    burst_size=64 * KB,
    burst_latency=0.020,
    concurrencies=(4, 16, 64),
    growth_counts=(100, 5000),
    growth_rounds=5,
    telegram_photos=100,
    telegram_rounds=3,
    dedup_sizes=(256 * KB, 2 * MB),  # a Telegram photo; a phone photo (spooled to disk)
    dedup_repeats=50,
)
SMOKE = Profile(
    name="smoke",
    upload_size=256 * KB,
    rounds=1,
    memory_count=8,
    memory_size=256 * KB,
    burst_count=24,
    burst_size=4 * KB,
    burst_latency=0.002,
    concurrencies=(4, 16, 64),
    growth_counts=(8, 40),
    growth_rounds=1,
    telegram_photos=5,
    telegram_rounds=1,
    dedup_sizes=(16 * KB, 64 * KB),
    dedup_repeats=5,
)


class BenchError(RuntimeError):
    pass


def _log(text: str) -> None:
    print(f"[bench] {text}", file=sys.stderr, flush=True)


# --- processes -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Server:
    base: str
    stats: str

    @property
    def imgbb(self) -> str:
        return self.base + "/1/upload"

    @property
    def chevereto(self) -> str:
        return self.base + "/api/1/upload"


@contextmanager
def emulator(latency: float, blobs: list[tuple[str, int, int]]) -> Iterator[Server]:
    """A host emulator process serving ``blobs`` ([prefix, count, size]) on the CDN."""
    warm = [("warm", 4, 4 * KB)]
    command = [sys.executable, "-m", "bench.server", "--latency", str(latency)]
    command += ["--blobs", json.dumps(warm + blobs)]
    process = subprocess.Popen(
        command, cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    assert process.stdin is not None and process.stdout is not None
    try:
        line = process.stdout.readline()
        if not line:
            raise BenchError("the emulator process did not start")
        ready = json.loads(line)
        yield Server(ready["base"], ready["stats"])
    finally:
        process.stdin.close()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def worker(scenario: str, **params: Any) -> dict[str, Any]:
    """Run one measured scenario in a fresh interpreter; its JSON result."""
    done = subprocess.run(
        [sys.executable, "-m", "bench.worker", scenario],
        cwd=ROOT,
        input=json.dumps(params),
        capture_output=True,
        text=True,
        timeout=900,
    )
    if done.returncode != 0:
        raise BenchError(f"{scenario} failed:\n{done.stderr[-3000:]}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def curl_upload(curl: str, endpoint: str, path: Path) -> tuple[float, int]:
    """curl's own transfer time (``time_total``: connect to last byte of the answer, process
    start excluded) and its peak RSS, for ``curl -F`` of ``path``.

    The peak is curl's VmHWM, polled every millisecond while it runs: ``ru_maxrss`` of a
    child started from this process would count this process's pages from before exec."""
    command = [curl, "-sS", "-o", os.devnull, "-w", "%{time_total} %{http_code}"]
    command += ["-F", f"key={API_KEY}", "-F", f"image=@{path};type=image/png", endpoint]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
    status, peak = Path(f"/proc/{process.pid}/status"), 0
    while process.poll() is None:
        with contextlib.suppress(OSError, ValueError, IndexError):
            for line in status.read_text().splitlines():
                if line.startswith("VmHWM:"):
                    peak = max(peak, int(line.split()[1]) * 1024)
        time.sleep(0.001)
    assert process.stdout is not None
    seconds, code = process.stdout.read().split()
    process.stdout.close()
    if process.returncode != 0 or code != "200":
        raise BenchError(f"curl failed (exit {process.returncode}, HTTP {code})")
    return float(seconds), peak


# --- the benchmarks --------------------------------------------------------------------------


def bench_upload(profile: Profile, workdir: Path) -> list[Row]:
    size = profile.upload_size
    path = workdir / "upload.png"
    path.write_bytes(image("upload", 0, size))
    curl = shutil.which("curl")
    has_imgbbpy = importlib.util.find_spec("imgbbpy") is not None
    contestants = ["core"]
    contestants += ["curl"] if curl else []
    contestants += ["imgbbpy-async", "imgbbpy-sync"] if has_imgbbpy else []
    times: dict[str, list[float]] = {name: [] for name in contestants}
    memory: dict[str, list[float]] = {name: [] for name in contestants}
    cpu: dict[str, list[float]] = {name: [] for name in contestants}
    with emulator(0.0, []) as server:
        for round_ in range(profile.rounds):
            _log(f"upload {mib(size)}: round {round_ + 1}/{profile.rounds}")
            # Rotate the order so that no contestant always runs first (or last).
            shift = round_ % len(contestants)
            for name in contestants[shift:] + contestants[:shift]:
                if name == "curl":
                    assert curl is not None
                    seconds, rss = curl_upload(curl, server.imgbb, path)
                else:
                    scenario = "upload-" + name
                    result = worker(
                        scenario, endpoint=server.imgbb, path=str(path), workdir=str(workdir)
                    )
                    seconds, rss = result["seconds"], result["growth"]
                    cpu[name].append(result["cpu"])
                times[name].append(seconds)
                memory[name].append(rss)
    time_of = {name: statistics.median(values) for name, values in times.items()}
    peak_of = {name: max(values) for name, values in memory.items()}
    cpu_of = {name: statistics.median(values) for name, values in cpu.items() if values}
    label = f"upload {mib(size)}"
    core_time, core_peak = time_of["core"], peak_of["core"]
    rows = []
    if "curl" in time_of:
        r = ratio(core_time, time_of["curl"])
        rows.append(
            Row(f"{label}: time, core vs curl -F", ms(core_time), f"curl {ms(time_of['curl'])}",
                r, "≤ 1.05", r is not None and r <= 1.05)
        )  # fmt: skip
        rows.append(
            Row(f"{label}: peak RSS, core growth vs curl's whole process", mib(core_peak),
                f"curl {mib(peak_of['curl'])}", ratio(core_peak, peak_of["curl"]))
        )  # fmt: skip
    else:
        rows.append(skipped(f"{label}: time, core vs curl -F", "curl not found"))
        rows.append(skipped(f"{label}: peak RSS, core vs curl", "curl not found"))
    if has_imgbbpy:
        a_time, s_time = time_of["imgbbpy-async"], time_of["imgbbpy-sync"]
        a_peak, s_peak = peak_of["imgbbpy-async"], peak_of["imgbbpy-sync"]
        r_async = ratio(core_time, a_time)
        r_sync = ratio(core_peak, s_peak)
        rows += [
            Row(f"{label}: time, core vs imgbbpy AsyncClient", ms(core_time),
                f"imgbbpy async {ms(a_time)}", r_async, "≤ 1.00",
                r_async is not None and r_async <= 1.0),
            Row(f"{label}: client CPU, core vs imgbbpy AsyncClient", ms(cpu_of["core"]),
                f"imgbbpy async {ms(cpu_of['imgbbpy-async'])}",
                ratio(cpu_of["core"], cpu_of["imgbbpy-async"])),
            Row(f"{label}: time, core vs imgbbpy SyncClient", ms(core_time),
                f"imgbbpy sync {ms(s_time)}", ratio(core_time, s_time)),
            Row(f"{label}: peak RSS growth, core vs imgbbpy AsyncClient", mib(core_peak),
                f"imgbbpy async {mib(a_peak)}", ratio(core_peak, a_peak)),
            Row(f"{label}: peak RSS growth, core vs imgbbpy SyncClient", mib(core_peak),
                f"imgbbpy sync {mib(s_peak)}", r_sync, "≤ 0.10 (far below)",
                r_sync is not None and r_sync <= 0.10),
        ]  # fmt: skip
    else:
        for what in ("time", "peak RSS"):
            rows.append(skipped(f"{label}: {what}, core vs imgbbpy", "imgbbpy not installed"))
    return rows


def bench_memory(profile: Profile, workdir: Path) -> list[Row]:
    count, size = profile.memory_count, profile.memory_size
    _log(f"memory: rehosting {count} x {mib(size)} concurrently")
    with emulator(0.0, [("big", count, size)]) as server:
        result = worker(
            "rehost-memory", base=server.base, endpoint=server.imgbb, dialect="imgbb",
            count=count, size=size, workdir=str(_fresh(workdir, "memory")),
        )  # fmt: skip
    growth = float(result["growth"])
    moved = count * size
    limit = min(32 * MB, size)  # and less than one whole file: no upload holds a copy
    return [
        Row(f"rehost {count} x {mib(size)} concurrently: peak RSS growth", mib(growth),
            f"{mib(moved)} moved in {sec(result['seconds'])}; worst loop lag "
            f"{ms(result['worst_lag'])}", ratio(growth, moved),
            f"≤ 32 MB and < one file ({mib(size)})", growth <= 32 * MB and growth < limit),
    ]  # fmt: skip


LAG_TARGET = 0.020  # the worst event-loop lag in a burst


def bench_burst(profile: Profile, workdir: Path) -> list[Row]:
    """The burst at each concurrency; all arriving in one loop turn; a small and a large
    burst (does the cost per rehost grow with the backlog?); SQLite's write transactions
    per rehost; the same burst on PostgreSQL."""
    count, latency, size = profile.burst_count, profile.burst_latency, profile.burst_size
    low, high = min(profile.concurrencies), max(profile.concurrencies)
    middle = 16 if 16 in profile.concurrencies else high
    small, large = profile.growth_counts
    blobs = [("burst", max(count, large), size)]
    spread: dict[int, dict[str, Any]] = {}
    with emulator(latency, blobs) as server:

        def run(name: str, n: int, concurrency: int, arrival: str = "spread", **extra: Any) -> Any:
            _log(f"burst: {n} requests at concurrency {concurrency} ({arrival}{name})")
            where = _fresh(workdir, f"burst-{n}-{concurrency}-{arrival}{name}")
            result = worker(
                "burst", base=server.base, endpoint=server.chevereto, dialect="chevereto",
                stats=server.stats, count=n, size=size, concurrency=concurrency,
                arrival=arrival, workdir=str(where),
                **extra,
            )  # fmt: skip
            if int(result["host_uploads"]) != n:
                raise BenchError(f"burst: {result['host_uploads']} host uploads, not {n}")
            return result

        for concurrency in profile.concurrencies:
            spread[concurrency] = run("", count, concurrency)
        together = run("", count, middle, "together")
        smalls = [run(f" {i}", small, middle) for i in range(profile.growth_rounds)]
        big = run("", large, middle)
        on_postgres = _burst_on_postgres(
            lambda url: run(", PostgreSQL", count, middle, storage_url=url), count
        )
    label = f"burst {count} x {mib(size)}"
    rows = []
    for concurrency, result in spread.items():
        cpu, host_cpu = float(result["cpu_per_request"]), float(result["host_cpu_per_request"])
        ideal = count * latency / concurrency
        rows.append(
            Row(f"{label} @ c={concurrency}, host {ms(latency)}: completion",
                sec(result["seconds"]), f"ideal N x latency / c = {sec(ideal)}; bot CPU "
                f"{ms(cpu)}/rehost, host emulator CPU {ms(host_cpu)}/rehost",
                ratio(result["seconds"], ideal))
        )  # fmt: skip
    for concurrency, result in [*spread.items(), (middle, together)]:
        lag = float(result["worst_lag"])
        how = ", all arriving in one loop turn" if result is together else ""
        rows.append(
            Row(f"{label} @ c={concurrency}{how}: worst event-loop lag", ms(lag),
                f"p99 {ms(result['p99_lag'])}", None, f"< {ms(LAG_TARGET)}", lag < LAG_TARGET)
        )  # fmt: skip
    cpu_low, cpu_high = (float(spread[c]["cpu_per_request"]) for c in (low, high))
    r = ratio(cpu_high, cpu_low)
    rows.append(
        Row(f"{label}: bot CPU per rehost at c={high} vs c={low}", ms(cpu_high),
            f"c={low} {ms(cpu_low)}", r, "≤ 1.20", r is not None and r <= 1.20)
    )  # fmt: skip
    cpu_small = statistics.median(float(result["cpu_per_request"]) for result in smalls)
    cpu_big = float(big["cpu_per_request"])
    r = ratio(cpu_big, cpu_small)
    rows.append(
        Row(f"burst of {large} vs {small} @ c={middle}: bot CPU per rehost", ms(cpu_big),
            f"{small} rehosts {ms(cpu_small)} (median of {len(smalls)})", r, "≤ 1.10",
            r is not None and r <= 1.10)
    )  # fmt: skip
    per = float(spread[middle]["transactions_per_request"])
    rows.append(
        Row(f"{label} @ c={middle}: SQLite write transactions per rehost", f"{per:.2f}",
            "no full-table scan: tests/test_query_plans.py", None, "≤ 2", per <= 2)
    )  # fmt: skip
    if isinstance(on_postgres, str):
        rows.append(skipped(f"{label} @ c={middle}: bot CPU per rehost, PostgreSQL vs SQLite",
                            on_postgres))  # fmt: skip
    else:
        cpu_pg, cpu_lite = (
            float(on_postgres["cpu_per_request"]),
            float(spread[middle]["cpu_per_request"]),
        )
        r = ratio(cpu_pg, cpu_lite)
        rows.append(
            Row(f"{label} @ c={middle}: bot CPU per rehost, PostgreSQL vs SQLite", ms(cpu_pg),
                f"SQLite {ms(cpu_lite)}; PostgreSQL server {ms(on_postgres['postgres_cpu'])}"
                "/rehost", r, "≤ 1.30", r is not None and r <= 1.30)
        )  # fmt: skip
    return rows


def _burst_on_postgres(run: Any, count: int) -> dict[str, Any] | str:
    """``run(url)`` against a throwaway PostgreSQL server (its CPU per rehost added), or why
    it could not run."""
    try:
        from bench.cpu import process_tree_cpu
        from sandbox.postgres import new_database, start_server
    except ImportError as error:
        return f"needs the bench extra ({error.name} missing)"
    try:
        server = start_server()
    except RuntimeError as error:
        return f"no PostgreSQL server: {str(error).splitlines()[0]}"
    try:
        url = new_database(server)
        pid = server.process.pid if server.process is not None else None
        before = process_tree_cpu(pid) if pid is not None else 0.0
        result: dict[str, Any] = run(url)
        used = (process_tree_cpu(pid) - before) if pid is not None else 0.0
        result["postgres_cpu"] = used / count
        return result
    finally:
        server.stop()


def bench_dedup(profile: Profile, workdir: Path) -> list[Row]:
    sizes, repeats = profile.dedup_sizes, profile.dedup_repeats
    blobs = [(f"dedup{index}", 1, size) for index, size in enumerate(sizes)]
    rows, uploads = [], 0
    runs = [(index, size, keyed) for keyed in (False, True) for index, size in enumerate(sizes)]
    with emulator(0.0, blobs) as server:
        for index, size, keyed in runs:
            how = "known file id (Telegram)" if keyed else "by sha256 (download + hash)"
            _log(f"dedup: {repeats} repeats of one {mib(size)} image, {how}")
            result = worker(
                "dedup", base=server.base, endpoint=server.chevereto, dialect="chevereto",
                stats=server.stats, prefix=f"dedup{index}", size=size, repeats=repeats,
                keyed=keyed, workdir=str(_fresh(workdir, f"dedup-{index}-{int(keyed)}")),
            )  # fmt: skip
            median, download = float(result["median"]), float(result["download"])
            uploads += int(result["host_uploads"])
            # Found by its bytes: within 1.2 x of moving them. Found by its id: no download.
            r = ratio(median, download)
            target, met = ("< 5 ms", median < 0.005) if keyed else (
                "≤ 1.20", r is not None and r <= 1.20)  # fmt: skip
            rows.append(
                Row(f"dedup, same {mib(size)} by the same owner, {how}: median rehost",
                    ms(median), f"download alone {ms(download)}", r, target, met)
            )  # fmt: skip
    rows.append(
        Row("dedup: host upload requests during the repeats", str(uploads),
            f"{repeats * len(runs)} repeats", None, "0", uploads == 0)
    )  # fmt: skip
    return rows


def _fresh(workdir: Path, name: str) -> Path:
    path = workdir / name
    path.mkdir()
    return path


def bench_scale(profile: Profile, workdir: Path) -> list[Row]:
    # Imported here: it needs psycopg and a PostgreSQL server, which the others do not.
    from bench.scale import ScaleError
    from bench.scale import bench_scale as run_scale

    try:
        return run_scale(profile.name, workdir)
    except ScaleError as error:
        raise BenchError(f"scale: {error}") from error


def bench_startup(profile: Profile, workdir: Path) -> list[Row]:
    from bench.startup import StartupError
    from bench.startup import bench_startup as run_startup

    try:
        return run_startup(profile.name, workdir)
    except StartupError as error:
        raise BenchError(f"startup: {error}") from error


def bench_cost(profile: Profile, workdir: Path) -> list[Row]:
    from bench.clientcost import bench_client_cost  # it imports this module

    return bench_client_cost(profile, workdir, rounds=1 if profile.name == "smoke" else 3)


def bench_telegram(profile: Profile, workdir: Path) -> list[Row]:
    from bench import telegram_cost

    _log(f"telegram: {profile.telegram_photos} photos per run, {profile.telegram_rounds} rounds")
    result = telegram_cost.run(profile.telegram_photos, profile.telegram_rounds)
    label = f"Telegram photo of {mib(result.size)} end to end"
    reference = f"{telegram_cost.LABELS['reference']} {result.cpu_ms['reference']:.1f} ms"
    r = result.ratio["bot-aiohttp"]
    return [
        Row(f"{label}: bot process CPU per photo vs a minimal aiohttp client",
            f"{result.cpu_ms['bot-aiohttp']:.1f} ms", reference, r,
            f"≤ {telegram_cost.TARGET:.2f}", result.met),
        Row(f"{label}: the same on PTB's stock HTTPXRequest (before)",
            f"{result.cpu_ms['bot-httpx']:.1f} ms", reference, result.ratio["bot-httpx"]),
    ]  # fmt: skip


BENCHMARKS = {
    "upload": bench_upload,
    "memory": bench_memory,
    "burst": bench_burst,
    "dedup": bench_dedup,
    "cost": bench_cost,
    "telegram": bench_telegram,
    "startup": bench_startup,
    "scale": bench_scale,
}
# Run when --only names none: scale starts PostgreSQL and a dozen processes, so it is asked
# for by name (--only scale).
DEFAULT = ("upload", "memory", "burst", "dedup", "cost", "telegram", "startup")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--smoke", action="store_true", help="tiny sizes: checks, not numbers")
    parser.add_argument("--rounds", type=int, help="upload rounds (median of)")
    parser.add_argument(
        "--only",
        action="append",
        choices=sorted(BENCHMARKS),
        help="run only these (repeatable); scale runs only when named",
    )
    parser.add_argument("--json", type=Path, help="also write the rows here")
    args = parser.parse_args(argv)
    profile = SMOKE if args.smoke else FULL
    if args.rounds:
        profile = Profile(**{**asdict(profile), "rounds": args.rounds})
    rows: list[Row] = []
    try:
        with tempfile.TemporaryDirectory(prefix="rehost-bench-") as tmp:
            for name, run in BENCHMARKS.items():
                if name in (args.only or DEFAULT):
                    rows += run(profile, Path(tmp))
    except BenchError as error:
        print(f"benchmark failed: {error}", file=sys.stderr)
        return 1
    print(f"Measured {machine()}; profile {profile.name}.")
    print()
    print(table(rows))
    if args.json is not None:
        args.json.write_text(json.dumps([asdict(row) for row in rows], indent=2))
    return 0
