"""``python -m bench --only scale``: the bot as separate processes on PostgreSQL, measured
against the number of workers, and then with workers killed at random.

Each run starts, from scratch and on a fresh database of one throwaway PostgreSQL server:

- the Discord emulator with 2 gateway shards, a few guilds on each with an auto-rehost
  channel, and 2 ``rehost run --role discord --shard-ids I --shard-count 2`` processes;
- the Telegram emulator (Telegram's flood limits on), delivering updates to a webhook
  through a round-robin balancer to 2 ``rehost run --role telegram`` processes;
- N ``rehost run --role worker`` processes; the host emulator (answering each upload after
  a small latency) runs in a process of its own, started once for all runs.

Every sender (a Discord member in a guild channel, a Telegram user in private) first posts
one image as a warm-up. Then, in a closed loop, each posts an image, waits for its answer
and posts the next, until the run's images are gone: the bot is saturated, and throughput
is the images answered per second from the first post to the last answer. Then images
arrive at a steady rate below what one worker manages, for the latency of a bot that
keeps up. Latency runs from the post (the emulator's event) to the bot's answer reaching
the emulator. The worst event-loop lag is the worst any process logged (``bot.looplag``).

The chaos run sends images at the steady rate while, every second, a random worker gets
SIGKILL and a new one starts in its place; it counts the images never answered, the
answers users see twice (Discord: bot messages per image; Telegram: sendMessage calls per
photo) and the jobs claimed more than once (``jobs.attempts > 1``).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import signal
import socket
import sys
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from pathlib import Path

import psycopg

from bench.common import API_KEY, ROOT, image
from bench.cpu import RunQueue, machine_busy, process_tree_cpu, self_cpu
from bench.fleet import Fleet, FleetError, Member
from bench.probe import LagMonitor
from bench.report import Row
from bench.scale_report import Outcome, Phase, fmt_ms, rows_of
from bench.traffic import (
    Replies,
    World,
    answered,
    closed_loop,
    discord_duplicates,
    populate,
    steady,
    telegram_duplicates,
)
from sandbox.balancer import Balancer
from sandbox.discord_api import DiscordEmulator
from sandbox.postgres import PostgresServer, drop_database, new_database, start_server
from sandbox.telegram_api import TelegramEmulator

KB = 1 << 10
SHARDS = 2
WEBHOOK_PATH = "/tg/webhook"
WEBHOOK_SECRET = "bench_webhook-3e9d51"
APP_ID = 1_400_000_000_000_000_001


class ScaleError(RuntimeError):
    pass


@dataclass(frozen=True)
class ScaleProfile:
    """``workers``: the runs without kills (a closed loop of ``saturate_images``, then
    ``steady_images`` at ``steady_rate`` a second); ``chaos_workers``: the chaos run
    (``chaos_images`` at ``steady_rate``), with at most ``chaos_kills`` kills (None: one
    every ``kill_every`` s until the last image is posted)."""

    workers: tuple[int, ...]
    chaos_workers: int
    saturate_images: int
    steady_rate: float
    steady_images: int
    chaos_images: int
    guilds_per_shard: int
    members_per_guild: int
    telegram_users: int
    image_size: int
    host_latency: float
    lease_seconds: float
    kill_every: float
    chaos_kills: int | None
    answer_timeout: float


FULL = ScaleProfile(
    workers=(1, 2, 4),
    chaos_workers=4,
    saturate_images=300,
    steady_rate=10.0,
    steady_images=80,
    chaos_images=150,
    guilds_per_shard=4,
    members_per_guild=4,
    telegram_users=32,
    image_size=64 * KB,
    host_latency=0.100,
    lease_seconds=3.0,
    kill_every=1.0,
    chaos_kills=None,
    answer_timeout=60.0,
)
# One run with one worker, killed once and replaced: that the machinery works, in seconds.
SMOKE = ScaleProfile(
    workers=(),
    chaos_workers=1,
    saturate_images=0,
    steady_rate=4.0,
    steady_images=0,
    chaos_images=8,
    guilds_per_shard=1,
    members_per_guild=1,
    telegram_users=2,
    image_size=4 * KB,
    host_latency=0.020,
    lease_seconds=1.0,
    kill_every=0.5,
    chaos_kills=1,
    answer_timeout=30.0,
)
PROFILES = {"full": FULL, "smoke": SMOKE}


def _log(text: str) -> None:
    print(f"[bench] {text}", file=sys.stderr, flush=True)


# --- the world ------------------------------------------------------------------------------


def write_configs(
    workdir: Path, *, dc: DiscordEmulator, tg: TelegramEmulator, host: str, database: str,
    channels: list[int], ports: list[int], webhook_url: str, profile: ScaleProfile,
) -> list[Path]:  # fmt: skip
    """One configuration per webhook process (they differ in ``webhook_listen`` only);
    the first serves every other process too."""
    auto = ", ".join(str(channel) for channel in channels)
    paths = []
    for index, port in enumerate(ports):
        path = workdir / f"rehost-{index}.toml"
        path.write_text(
            '[upload]\nhosts = ["chev"]\nuser_rate_limit = 1000000\nuser_rate_window = 1\n'
            f'[hosts.chev]\ndialect = "chevereto"\nendpoint = "{host}"\napi_key = "{API_KEY}"\n'
            f'[storage]\nurl = "{database}"\nlease_seconds = {profile.lease_seconds}\n'
            "[links]\ncheck_every = 0\n"
            f'[telegram]\ntoken = "{tg.token}"\nbase_url = "{tg.base_url}"\n'
            f'base_file_url = "{tg.base_file_url}"\nmode = "webhook"\n'
            f'webhook_listen = "127.0.0.1:{port}"\nwebhook_url = "{webhook_url}"\n'
            f'webhook_secret = "{WEBHOOK_SECRET}"\n'
            f'[discord]\ntoken = "{dc.token}"\nauto_rehost_channels = [{auto}]\n'
            f'api_base_url = "{dc.api_base}"\ngateway_url = "{dc.gateway_url}"\n'
        )
        paths.append(path)
    return paths


def free_ports(count: int) -> list[int]:
    probes = [socket.socket() for _ in range(count)]
    try:
        for probe in probes:
            probe.bind(("127.0.0.1", 0))
        return [int(probe.getsockname()[1]) for probe in probes]
    finally:
        for probe in probes:
            probe.close()


# --- processes --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Services:
    """What every run shares: the PostgreSQL server and the host emulator process."""

    postgres: PostgresServer
    host: str  # the host emulator's Chevereto endpoint
    host_pid: int

    def cpu(self) -> dict[str, float]:
        """CPU seconds so far: the machine's, PostgreSQL's and the emulators' (this
        process and the host emulator's)."""
        server = self.postgres.process
        return {
            "machine": machine_busy(),
            "postgres": process_tree_cpu(server.pid) if server is not None else 0.0,
            "emulators": self_cpu() + process_tree_cpu(self.host_pid),
        }


@asynccontextmanager
async def host_emulator(latency: float) -> AsyncIterator[tuple[str, int]]:
    """The host emulator in its own process (``bench.server``): its Chevereto endpoint
    and process id."""
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bench.server", "--latency", str(latency),
        cwd=ROOT, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
        start_new_session=True,
    )  # fmt: skip
    assert process.stdin is not None and process.stdout is not None
    try:
        line = await asyncio.wait_for(process.stdout.readline(), 60)
        if not line:
            raise ScaleError("the host emulator process did not start")
        yield str(json.loads(line)["base"]) + "/api/1/upload", process.pid
    finally:
        process.stdin.close()
        try:
            await asyncio.wait_for(process.wait(), 10)
        except TimeoutError:
            process.kill()
            await process.wait()


@contextmanager
def postgres() -> Iterator[PostgresServer]:
    server = start_server()
    try:
        yield server
    finally:
        server.stop()


async def run_rehost(*args: str) -> None:
    done = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bot", *args, cwd=ROOT,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    out, _ = await asyncio.wait_for(done.communicate(), 60)
    if done.returncode != 0:
        raise ScaleError(f"rehost {' '.join(args)} failed:\n{out.decode()[-2000:]}")


BUSY = (
    "select (select count(*) from inbox where state = 'new')"
    " + (select count(*) from jobs where state in ('pending', 'held'))"
    " + (select count(*) from outbox where state = 'pending')"
    " + (select count(*) from batches where state = 'open')"
)


async def settle(database: str, tg: TelegramEmulator, timeout: float) -> None:
    """Until nothing is left to do: no update waiting, no job, answer or batch open."""
    deadline = time.monotonic() + timeout
    async with await psycopg.AsyncConnection.connect(database, autocommit=True) as db:
        while True:
            row = await (await db.execute(BUSY)).fetchone()
            busy = int(row[0]) if row else 0
            if not busy and not tg.webhook_info()["pending_update_count"]:
                return
            if time.monotonic() > deadline:
                raise ScaleError(f"still busy after {timeout:.0f} s ({busy} rows open)")
            await asyncio.sleep(0.1)


async def scalar(database: str, query: str) -> int:
    async with await psycopg.AsyncConnection.connect(database, autocommit=True) as db:
        row = await (await db.execute(query)).fetchone()
    return int(row[0]) if row else 0


# --- one run -----------------------------------------------------------------------------------


async def chaos(
    fleet: Fleet, config: Path, every: float, limit: int | None, stop: asyncio.Event
) -> int:
    """Every ``every`` s until ``stop``: SIGKILL a random worker, start another."""
    rng = random.Random(20261130)
    kills = 0
    while limit is None or kills < limit:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), every)
        if stop.is_set():
            break
        victims = fleet.running("worker")
        if victims:
            victim = rng.choice(victims)
            await fleet.kill(victim)
            kills += 1
            _log(f"chaos: killed {victim.name} ({kills})")
        await fleet.start(f"worker-r{kills}", config, "worker")
    return kills


async def one_run(
    services: Services, profile: ScaleProfile, workdir: Path, workers: int, *, chaos_on: bool
) -> Outcome:
    name = f"{workers}w-chaos" if chaos_on else f"{workers}w"
    rundir = workdir / name
    rundir.mkdir()
    database = new_database(services.postgres)
    fleet = Fleet(rundir)
    try:
        async with (
            DiscordEmulator(application_id=APP_ID, max_concurrency=SHARDS) as dc,
            TelegramEmulator() as tg,
        ):
            world = populate(
                dc, tg, shards=SHARDS, guilds_per_shard=profile.guilds_per_shard,
                members_per_guild=profile.members_per_guild, telegram_users=profile.telegram_users,
            )  # fmt: skip
            ports = free_ports(2)
            async with Balancer([f"http://127.0.0.1:{port}" for port in ports]) as balancer:
                configs = write_configs(
                    rundir, dc=dc, tg=tg, host=services.host, database=database,
                    channels=world.channels, ports=ports,
                    webhook_url=balancer.url + WEBHOOK_PATH, profile=profile,
                )  # fmt: skip
                run = Run(fleet, configs[0], world, dc, tg, database, profile, services)
                await run.start(workers, configs)
                return await run.measure(workers, chaos_on)
    finally:
        await fleet.stop()
        for failure in fleet.failures():
            _log(f"{name}: {failure}")
        drop_database(services.postgres, database)


@dataclass
class Run:
    fleet: Fleet
    config: Path
    world: World
    dc: DiscordEmulator
    tg: TelegramEmulator
    database: str
    profile: ScaleProfile
    services: Services

    async def start(self, workers: int, configs: list[Path]) -> None:
        fleet, started = self.fleet, list[Member]()
        for shard in range(SHARDS):
            shards = ("--shard-ids", str(shard), "--shard-count", str(SHARDS))
            started.append(await fleet.start(f"discord-{shard}", self.config, "discord", *shards))
        for index, path in enumerate(configs):
            started.append(await fleet.start(f"telegram-{index}", path, "telegram"))
        for index in range(workers):
            started.append(await fleet.start(f"worker-{index}", self.config, "worker"))
        # Telegram sends nothing before there is an update: register while they start.
        await asyncio.gather(
            fleet.ready(started), run_rehost("telegram", "set-webhook", "-c", str(self.config))
        )

    def images(self, phase: str, count: int) -> list[bytes]:
        size = self.profile.image_size
        return [image(f"{phase}-{self.database[-8:]}", i, size) for i in range(count)]

    async def measure(self, workers: int, chaos_on: bool) -> Outcome:
        profile, world, dc, tg = self.profile, self.world, self.dc, self.tg
        label = f"{workers} worker{'s' if workers > 1 else ''}{', chaos' if chaos_on else ''}"
        senders = world.senders
        replies = Replies(dc, tg)
        timeout = profile.answer_timeout
        # Made before anything is timed: building them would block this loop.
        images = {
            "warm": self.images("warm", len(senders)),
            "chaos": self.images("chaos", profile.chaos_images if chaos_on else 0),
            "saturate": self.images("saturate", 0 if chaos_on else profile.saturate_images),
            "steady": self.images("steady", 0 if chaos_on else profile.steady_images),
        }
        lag = LagMonitor(interval=0.01)
        lag.start()
        _log(f"scale {label}: warming up ({len(senders)} images)")
        await closed_loop(
            senders, dc, tg, replies, images["warm"], phase="warm", answer_timeout=timeout
        )
        kills, cpu = 0, dict[str, float]()
        since = time.time()  # event-loop lag: the windows that reach into the measuring
        runnable = RunQueue()
        runnable.start()
        if chaos_on:
            _log(f"scale {label}: {profile.chaos_images} images at {profile.steady_rate:g}/s")
            stop = asyncio.Event()
            killing = asyncio.create_task(
                chaos(self.fleet, self.config, profile.kill_every, profile.chaos_kills, stop)
            )
            try:
                sent = await steady(
                    senders, dc, tg, replies, images["chaos"],
                    phase="chaos", rate=profile.steady_rate,
                )  # fmt: skip
            finally:
                stop.set()
                kills = await killing
            await answered(sent, timeout)
        else:
            count = profile.saturate_images
            _log(f"scale {label}: {count} images from {len(senders)} senders in a closed loop")
            before = self.services.cpu()
            await closed_loop(
                senders, dc, tg, replies, images["saturate"],
                phase="saturate", answer_timeout=timeout,
            )  # fmt: skip
            cpu = {k: v - before[k] for k, v in self.services.cpu().items()}
            count = profile.steady_images
            _log(f"scale {label}: {count} images at {profile.steady_rate:g}/s")
            sent = await steady(
                senders, dc, tg, replies, images["steady"],
                phase="steady", rate=profile.steady_rate,
            )  # fmt: skip
            await answered(sent, timeout)
        emulator_lag = await lag.stop()
        load = await runnable.stop()
        await settle(self.database, tg, timeout=max(30.0, 10 * profile.lease_seconds))
        measured = ("chaos",) if chaos_on else ("saturate", "steady")
        outcome = Outcome(
            workers=workers,
            chaos=chaos_on,
            phases={name: Phase.of(replies.of(name)) for name in measured},
            cpu=cpu,
            runnable=load,
            senders=len(senders),
            lost=len(replies.unanswered()),
            errors=sum(replies.errors.values()),
            discord_duplicates=discord_duplicates(dc, world.channels),
            telegram_duplicates=telegram_duplicates(replies),
            retried_jobs=await scalar(
                self.database, "select count(*) from jobs where attempts > 1"
            ),
            resent_answers=await scalar(
                self.database, "select count(*) from outbox where attempts > 1"
            ),
            kills=kills,
            worst_lag={},
            emulator_lag=emulator_lag,
            telegram_429=len([c for c in tg.calls if c.status == 429]),
        )
        await self.fleet.stop()
        outcome.unstopped = self.fleet.failures()
        for role in ("discord", "telegram", "worker"):
            outcome.worst_lag[role] = self.fleet.worst_lag(role, since)
        summary = ", ".join(
            f"{name} {phase.answered}/{phase.images} {phase.throughput:.1f}/s "
            f"p95 {fmt_ms(phase.p(0.95))}"
            for name, phase in outcome.phases.items()
        )
        _log(
            f"scale {label}: {summary}; lost {outcome.lost}, duplicates "
            f"{outcome.discord_duplicates}/{outcome.telegram_duplicates}, kills {kills}"
        )
        return outcome


# --- the whole benchmark ------------------------------------------------------------------------


async def _run_all(profile: ScaleProfile, workdir: Path) -> list[Outcome]:
    # SIGTERM unwinds like Ctrl-C: every finally runs, so every process is stopped.
    main = asyncio.current_task()
    assert main is not None
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, main.cancel)
    runs: list[Outcome] = []
    with postgres() as server:
        async with host_emulator(profile.host_latency) as (host, pid):
            services = Services(server, host, pid)
            for workers in profile.workers:
                runs.append(await one_run(services, profile, workdir, workers, chaos_on=False))
            chaos_workers = profile.chaos_workers
            runs.append(await one_run(services, profile, workdir, chaos_workers, chaos_on=True))
    return runs


def bench_scale(profile_name: str, workdir: Path) -> list[Row]:
    """Every run of the profile named ``profile_name`` (full or smoke); the table rows."""
    profile = PROFILES[profile_name]
    scale_dir = workdir / "scale"
    scale_dir.mkdir()
    try:
        runs = asyncio.run(_run_all(profile, scale_dir))
    except asyncio.CancelledError:
        raise ScaleError("stopped by SIGTERM") from None
    except (FleetError, psycopg.Error, OSError) as error:
        raise ScaleError(str(error)) from error
    return rows_of(runs, rate=profile.steady_rate, kill_every=profile.kill_every)
