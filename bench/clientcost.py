"""``python -m bench.clientcost``: the bot's CPU per rehost against a minimal aiohttp client.

The burst at concurrency 16 (``bench.cli``'s burst: N different images, the host
answering after a fixed latency) is run three ways, each in fresh worker processes against
one emulator process, in rotating order, and the median CPU per request of each is kept:

- the bot: the rehost service, as in the burst rows (queue, store, fetcher, uploader);
- the bot's HTTP alone: its fetcher and host client over ``bot.httpclient``, no queue;
- the reference: a minimal aiohttp client doing the same download and the same upload.

Prints the same table as ``python -m bench`` (``--smoke``: tiny sizes, one round).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from pathlib import Path

from bench.cli import FULL, SMOKE, BenchError, Profile, emulator, worker
from bench.report import Row, machine, mib, ms, ratio, table

TARGET = 2.0  # the bot's CPU per rehost, at most this many times the reference's
CONTESTANTS = ("burst", "burst-http", "burst-aiohttp")


def bench_client_cost(profile: Profile, workdir: Path, rounds: int = 3) -> list[Row]:
    count, size, latency = profile.burst_count, profile.burst_size, profile.burst_latency
    concurrency = 16 if 16 in profile.concurrencies else max(profile.concurrencies)
    cpu: dict[str, list[float]] = {name: [] for name in CONTESTANTS}
    with emulator(latency, [("burst", count, size)]) as server:
        for round_ in range(rounds):
            shift = round_ % len(CONTESTANTS)
            for name in CONTESTANTS[shift:] + CONTESTANTS[:shift]:
                print(f"[bench] client cost: {name}, round {round_ + 1}/{rounds}", file=sys.stderr)
                run = workdir / f"cost-{name}-{round_}"
                run.mkdir()
                result = worker(
                    name, base=server.base, endpoint=server.chevereto, dialect="chevereto",
                    stats=server.stats, count=count, size=size, concurrency=concurrency,
                    arrival="spread", workdir=str(run),
                )  # fmt: skip
                cpu[name].append(float(result["cpu_per_request"]))
    bot, http, reference = (statistics.median(cpu[name]) for name in CONTESTANTS)
    label = f"burst {count} x {mib(size)} @ c={concurrency}"
    whole = ratio(bot, reference)
    return [
        Row(f"{label}: bot CPU per rehost vs a minimal aiohttp client", ms(bot),
            f"aiohttp download + upload {ms(reference)}", whole, f"≤ {TARGET:.2f}",
            whole is not None and whole <= TARGET),
        Row(f"{label}: bot HTTP alone (fetch + upload, no queue) vs aiohttp", ms(http),
            f"aiohttp download + upload {ms(reference)}", ratio(http, reference)),
    ]  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.clientcost", description=__doc__)
    parser.add_argument("--smoke", action="store_true", help="tiny sizes: checks, not numbers")
    parser.add_argument("--rounds", type=int, default=3, help="rounds (median of)")
    args = parser.parse_args(argv)
    profile = SMOKE if args.smoke else FULL
    rounds = 1 if args.smoke else args.rounds
    try:
        with tempfile.TemporaryDirectory(prefix="rehost-bench-") as tmp:
            rows = bench_client_cost(profile, Path(tmp), rounds)
    except BenchError as error:
        print(f"benchmark failed: {error}", file=sys.stderr)
        return 1
    print(f"Measured {machine()}; profile {profile.name}.")
    print()
    print(table(rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
