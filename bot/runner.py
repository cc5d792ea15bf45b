"""``rehost run``: every adapter whose token is set, in one process, until stopped.

Ctrl-C or SIGTERM stops the adapters cleanly. Work a previous run left (jobs, answers not
yet sent) is found by the job worker and the outbox senders like any other work, once its
lease lapses; expired uploads are swept every few minutes.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
from datetime import timedelta
from typing import Protocol

from bot.app import Core, open_core
from bot.cli import EXIT_OK, EXIT_USAGE
from bot.config import Config, load_config
from bot.inbox import Inbox
from bot.linkcheck import LinkChecker
from bot.logsafety import configure_logging, level_from_environment
from bot.store import now_utc, to_text

log = logging.getLogger(__name__)
SWEEP_INTERVAL = 300.0
INBOX_KEPT = timedelta(days=1)  # handled updates are kept this long, then forgotten


class Adapter(Protocol):
    name: str

    async def start(self) -> None: ...

    async def stop(self) -> None: ...


def build_adapters(core: Core) -> list[Adapter]:
    adapters: list[Adapter] = []
    if core.config.telegram is not None:
        from adapters.telegram.bot import TelegramAdapter

        adapters.append(TelegramAdapter(core, core.config.telegram))
    if core.config.discord is not None:
        from adapters.discord.bot import DiscordAdapter

        adapters.append(DiscordAdapter(core, core.config.discord))
    return adapters


async def run_bot(args: argparse.Namespace) -> int:
    config = load_config(args.config)
    configure_logging(level_from_environment(logging.INFO), secrets=config.secrets())
    if config.telegram is None and config.discord is None:
        print(
            "rehost: nothing to run: set [telegram] token or [discord] token "
            "(or REHOST_TELEGRAM_TOKEN / REHOST_DISCORD_TOKEN)"
        )
        return EXIT_USAGE
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    await serve(config, stop)
    return EXIT_OK


async def serve(config: Config, stop: asyncio.Event) -> None:
    """Run the adapters until ``stop`` is set (tests call this directly)."""
    async with open_core(config) as core:
        adapters = build_adapters(core)
        started: list[Adapter] = []
        sweeper = asyncio.create_task(_sweep(core))
        checker = asyncio.create_task(_check_links(core))
        try:
            for adapter in adapters:
                await adapter.start()
                started.append(adapter)
                log.info("%s adapter started", adapter.name)
            await stop.wait()
        finally:
            for task in (sweeper, checker):
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            for adapter in reversed(started):
                try:
                    await adapter.stop()
                except Exception:
                    log.exception("stopping the %s adapter failed", adapter.name)
            log.info("stopped")


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
