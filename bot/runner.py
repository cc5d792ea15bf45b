"""``rehost run``: every adapter whose token is set, in one process, until stopped.

Ctrl-C or SIGTERM stops the adapters cleanly; SIGHUP re-reads the configuration
(``bot.reload``: hosts, keys, limits and auto-rehost lists apply at once). Work a
previous run left (jobs, answers not yet sent) is found by the job worker and the outbox
senders like any other work, once its lease lapses; expired uploads are swept every few
minutes. Every role logs how late its event loop runs (``bot.looplag``): a line once its
adapters have started, one every 5 s, and one at stop.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
import sys
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Protocol

from bot import sdnotify
from bot.app import Core, open_core
from bot.cli import EXIT_OK, EXIT_USAGE
from bot.config import Config, load_config
from bot.inbox import Inbox
from bot.linkcheck import LinkChecker
from bot.logsafety import configure_logging, level_from_environment
from bot.looplag import LoopLag
from bot.observability import Observability, start_observability
from bot.reload import reload_config
from bot.store import now_utc, to_text

log = logging.getLogger(__name__)
SWEEP_INTERVAL = 300.0
INBOX_KEPT = timedelta(days=1)  # handled updates are kept this long, then forgotten


class Adapter(Protocol):
    name: str

    async def start(self) -> None: ...

    async def stop(self) -> None: ...

    def problem(self) -> str | None:
        """Why it is not serving now (for /healthz), or None when it is connected."""


@dataclass(frozen=True)
class Role:
    """What one process runs. ``all``: everything. ``discord``: the gateway (its shards),
    turning events into recorded work; ``telegram``: Telegram's intake (polling or the
    webhook); ``worker``: jobs, answers, backfills and the sweeps, over each platform's
    HTTP API, with no gateway, polling or webhook. Any number of each share the work
    through the database."""

    name: str = "all"
    shard_ids: tuple[int, ...] | None = None
    shard_count: int | None = None

    @property
    def works(self) -> bool:
        return self.name in ("all", "worker")

    def takes_in(self, platform: str) -> bool:
        return self.name in ("all", platform)

    def problem(self, config: Config) -> str | None:
        """Why this role cannot run with ``config`` (None: it can)."""
        sharded = self.shard_ids is not None or self.shard_count is not None
        if sharded and self.name != "discord":
            return "--shard-ids and --shard-count go with --role discord"
        if self.shard_ids is not None and self.shard_count is None:
            return "--shard-ids needs --shard-count"
        if self.shard_ids and self.shard_count and max(self.shard_ids) >= self.shard_count:
            return f"--shard-ids: shard numbers go from 0 to {self.shard_count - 1}"
        section = {"discord": config.discord, "telegram": config.telegram}.get(self.name, True)
        if section is None:
            return f"--role {self.name}: set [{self.name}] token (or its environment variable)"
        return None


def build_adapters(core: Core, role: Role | None = None) -> list[Adapter]:
    role = role or Role()
    adapters: list[Adapter] = []
    telegram, discord = core.config.telegram, core.config.discord
    if telegram is not None and (role.works or role.takes_in("telegram")):
        from adapters.telegram.bot import TelegramAdapter

        adapters.append(
            TelegramAdapter(core, telegram, intake=role.takes_in("telegram"), work=role.works)
        )
    if discord is not None and (role.works or role.takes_in("discord")):
        from adapters.discord.bot import DiscordAdapter, Shards

        shards = Shards(role.shard_ids, role.shard_count) if role.name == "discord" else None
        adapters.append(
            DiscordAdapter(
                core, discord, intake=role.takes_in("discord"), work=role.works, shards=shards
            )
        )
    return adapters


async def run_bot(args: argparse.Namespace) -> int:
    config = load_config(args.config)
    configure_logging(
        level_from_environment(logging.INFO),
        secrets=config.secrets(),
        format=config.logging.format,
    )
    if config.telegram is None and config.discord is None:
        print(
            "rehost: nothing to run: set [telegram] token or [discord] token "
            "(or REHOST_TELEGRAM_TOKEN / REHOST_DISCORD_TOKEN)"
        )
        return EXIT_USAGE
    role = Role(args.role, args.shard_ids, args.shard_count)
    problem = role.problem(config)
    if problem is not None:
        print(f"rehost: {problem}", file=sys.stderr)
        return EXIT_USAGE
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    reloads = asyncio.Event()
    loop.add_signal_handler(signal.SIGHUP, reloads.set)
    await serve(config, stop, role, reload_from=args.config, reloads=reloads)
    return EXIT_OK


async def serve(
    config: Config,
    stop: asyncio.Event,
    role: Role | None = None,
    *,
    reload_from: Path | None = None,
    reloads: asyncio.Event | None = None,
) -> None:
    """Run the adapters until ``stop`` is set (tests call this directly). Each time
    ``reloads`` is set, the configuration is read again from ``reload_from``."""
    role = role or Role()
    async with sdnotify.watchdog(), open_core(config) as core:
        adapters = build_adapters(core, role)
        # Watched from here: the adapters' modules are imported, the work is about to start.
        lag = LoopLag()
        lag.start()
        started: list[Adapter] = []
        sweeper = asyncio.create_task(_sweep(core) if role.works else asyncio.sleep(0))
        checker = asyncio.create_task(_check_links(core) if role.works else asyncio.sleep(0))
        reloader: asyncio.Task[None] | None = None
        observer: Observability | None = None
        try:
            # /healthz and /metrics (if configured): 503 until the adapters are connected.
            observer = await start_observability(core, adapters, lag)
            for adapter in adapters:
                await adapter.start()
                started.append(adapter)
                log.info("%s adapter started", adapter.name)
            lag.report("while starting")  # the start's own line; serving starts afresh
            serving = "serving: " + ", ".join(a.name for a in started)
            sdnotify.ready(serving)
            if reload_from is not None and reloads is not None:
                # From here: a SIGHUP during the start waits, so READY=1 comes first.
                reloader = asyncio.create_task(
                    _reload_on_request(core, reload_from, reloads, serving)
                )
            await stop.wait()
        finally:
            sdnotify.stopping()
            for task in (sweeper, checker, *([reloader] if reloader else [])):
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            for adapter in reversed(started):
                try:
                    await adapter.stop()
                except Exception:
                    log.exception("stopping the %s adapter failed", adapter.name)
            if observer is not None:
                await observer.stop()
            await lag.stop()
            log.info("stopped")


async def _reload_on_request(core: Core, path: Path, reloads: asyncio.Event, serving: str) -> None:
    """Re-read the configuration each time ``reloads`` is set (SIGHUP), telling systemd
    (RELOADING=1, then READY=1 with ``serving`` again, whether or not it was applied)."""
    while True:
        await reloads.wait()
        reloads.clear()
        sdnotify.reloading("reloading the configuration")
        try:
            reload_config(core, path)
        except Exception:
            log.exception("reloading the configuration failed; the running one is kept")
        sdnotify.ready(serving)


async def _sweep(core: Core) -> None:
    inbox = Inbox(core.store)
    while True:
        try:
            expired = await core.rehost.library.sweep_expired()
            if expired:
                log.info("marked %d uploads expired", expired)
            await inbox.prune(to_text(now_utc() - INBOX_KEPT) or "")
        except Exception:
            log.exception("sweeping expired uploads failed")
        await asyncio.sleep(SWEEP_INTERVAL)


async def _check_links(core: Core) -> None:
    """Probe every live upload's link every ``[links] check_every`` seconds."""
    every = core.config.links.check_every
    if not every:
        return
    checker = LinkChecker(core.store, core.http)
    while True:
        await asyncio.sleep(every)
        try:
            findings = await checker.run()
            gone = sum(1 for finding in findings if finding.state == "gone")
            log.info("checked %d image links; %d gone", len(findings), gone)
        except Exception:
            log.exception("checking image links failed")
