"""``[observability] listen``: /healthz says whether this process serves, /metrics what it
did, as an operator's probe and Prometheus see them, over HTTP, against the emulators."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import signal
import sqlite3
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp
from prometheus_client.parser import text_string_to_metric_families

from bot.app import open_core
from bot.config import Config, ObservabilitySettings, load_config
from bot.cooldowns import Cooldowns
from bot.observability import Observability, Watched
from bot.runner import serve
from sandbox import samples
from sandbox.discord_api import DiscordEmulator
from sandbox.hostemu import HostEmulator
from sandbox.telegram_api import TelegramEmulator
from tests.conftest import ALL_KEYS, assert_no_secrets, start_rehost_run
from tests.telegram_harness import ANN, GROUP, free_port, running_adapter, telegram_config
from tests.telegram_harness import telegram_world as populate_telegram
from tests.test_discord_adapter import (
    ANN as DISCORD_ANN,
)
from tests.test_discord_adapter import (
    APP_ID,
    AUTO,
    GUILD,
    OTHER,
    attachment_option,
    image,
    make_config,
    posted_in,
)
from tests.test_discord_adapter import (
    _populate as populate_discord,
)

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


class Endpoint:
    """GETs against the observability server of a bot (in a subprocess or in this one)."""

    def __init__(self, session: aiohttp.ClientSession, port: int) -> None:
        self.session = session
        self.base = f"http://127.0.0.1:{port}"

    async def health(self) -> tuple[int, dict[str, Any]]:
        async with self.session.get(self.base + "/healthz") as response:
            return response.status, json.loads(await response.text())

    async def metrics_text(self) -> str:
        async with self.session.get(self.base + "/metrics") as response:
            assert response.status == 200
            assert response.content_type == "text/plain"
            return await response.text()

    async def metrics(self) -> Samples:
        """Every sample, by name and labels (as Prometheus reads them)."""
        samples: Samples = {}
        for family in text_string_to_metric_families(await self.metrics_text()):
            for sample in family.samples:
                samples[(sample.name, frozenset(sample.labels.items()))] = sample.value
        return samples

    async def until_up(self, timeout: float = 30.0) -> tuple[int, dict[str, Any]]:
        """The first answer of /healthz once the server listens."""
        async with asyncio.timeout(timeout):
            while True:
                try:
                    return await self.health()
                except aiohttp.ClientConnectionError:
                    await asyncio.sleep(0.02)

    async def until_health(self, status: int, timeout: float = 20.0) -> dict[str, Any]:
        async with asyncio.timeout(timeout):
            while True:
                answered, body = await self.health()
                if answered == status:
                    return body
                await asyncio.sleep(0.02)


def value(samples: Samples, name: str, **labels: str) -> float:
    """A sample's value; 0 for a labelled series not created yet (nothing counted)."""
    return samples.get((name, frozenset(labels.items())), 0.0)


async def until(condition: Callable[[], Awaitable[bool]], timeout: float = 20.0) -> None:
    async with asyncio.timeout(timeout):
        while not await condition():
            await asyncio.sleep(0.02)


def assert_clean_labels(samples: Samples, secrets: list[str], ids: list[int]) -> None:
    """No label value holds a secret, a user or chat id, or a URL."""
    values = {v for _, labels in samples for _, v in labels}
    assert values, "some series carry labels"
    for label in values:
        assert not any(secret in label for secret in secrets), label
        assert not any(str(abs(i)) in label for i in ids), label
        assert "://" not in label and "/" not in label, label


@asynccontextmanager
async def observing(
    config: Config, adapters: list[Watched]
) -> AsyncIterator[tuple[Endpoint, Observability]]:
    """A core of its own and the observability server on a free port, watching
    ``adapters`` (started by the caller, on ``observer.core``)."""
    async with open_core(config) as core:
        observer = Observability(core, adapters, listen=("127.0.0.1", 0))
        await observer.start()
        try:
            async with aiohttp.ClientSession() as session:
                yield Endpoint(session, observer.port), observer
        finally:
            await observer.stop()


# --- rehost run ------------------------------------------------------------------------------


async def test_rehost_run_is_unhealthy_until_telegram_answers_then_counts_a_rehost(
    host_emu: HostEmulator, tmp_path: Path
) -> None:
    port = free_port()
    async with TelegramEmulator() as tg, aiohttp.ClientSession() as session:
        populate_telegram(tg)
        config = telegram_config(tmp_path, host_emu, tg)
        config.write_text(config.read_text() + f'\n[observability]\nlisten = "127.0.0.1:{port}"\n')
        starting = tg.hold("getMe")  # the bot's first call: it cannot be connected before
        process = await start_rehost_run(config, REHOST_LOG_LEVEL="DEBUG")
        bot = Endpoint(session, port)
        try:
            status, before = await bot.until_up()
            assert (status, before) == (
                503,
                {"status": "unavailable", "problems": ["telegram: not connected"]},
            )
            counted = await bot.metrics()
            starting.set()
            assert await bot.until_health(200) == {"status": "ok"}

            tg.send_photo(ANN, ANN, samples.png(9, 9))
            await tg.wait_for(lambda c: c.method == "sendMessage" and c.ok, timeout=30)

            async def replied() -> bool:
                return value(await bot.metrics(), "rehost_reply_seconds_count", **telegram) >= 1

            telegram = {"platform": "telegram"}
            await until(replied)  # recorded just after Telegram has it
            after = await bot.metrics()
        finally:
            process.send_signal(signal.SIGTERM)
            out, err = await asyncio.wait_for(process.communicate(), 30)
    assert process.returncode == 0, err.decode()

    def grew(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(counted, name, **labels)

    assert grew("rehost_rehosts_total", platform="telegram", outcome="ok") == 1
    assert grew("rehost_rehosts_total", platform="telegram", outcome="failed") == 0
    assert grew("rehost_uploads_total", host="chev") == 1
    assert not [name for name, _ in after if name == "rehost_upload_failures_total"]
    assert grew("rehost_reply_seconds_count", **telegram) == 1
    assert grew("rehost_reply_seconds_bucket", le="+Inf", **telegram) == 1
    assert 0 < value(after, "rehost_reply_seconds_sum", **telegram) < 30
    # Read at the scrape: nothing waits, the host is usable, the loop is watched.
    platform = frozenset(telegram.items())
    assert after[("rehost_queue_jobs", platform)] == 0
    assert after[("rehost_queue_oldest_job_age_seconds", platform)] == 0
    assert after[("rehost_outbox_messages", platform)] == 0
    assert ("rehost_host_cooldown_seconds", frozenset({("host", "chev")})) in after
    assert value(after, "rehost_host_cooldown_seconds", host="chev") == 0
    assert 0 <= value(after, "rehost_event_loop_lag_seconds") < 5
    assert_clean_labels(after, [tg.token, *ALL_KEYS], [ANN, GROUP])
    log = err.decode()
    assert f"health and metrics on http://127.0.0.1:{port}" in log
    assert_no_secrets(out.decode(), log)


async def test_a_port_in_use_stops_rehost_run_with_one_line(
    host_emu: HostEmulator, tmp_path: Path
) -> None:
    async with TelegramEmulator() as tg:
        populate_telegram(tg)
        config = telegram_config(tmp_path, host_emu, tg)
        taken = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
        port = taken.sockets[0].getsockname()[1]
        config.write_text(config.read_text() + f'\n[observability]\nlisten = "127.0.0.1:{port}"\n')
        try:
            process = await start_rehost_run(config)
            _, err = await asyncio.wait_for(process.communicate(), 30)
        finally:
            taken.close()
    assert process.returncode == 2
    last = err.decode().strip().splitlines()[-1]
    assert last.startswith(f"rehost: [observability] listen: cannot listen on 127.0.0.1:{port}: ")
    assert "Traceback" not in err.decode()
    assert not tg.calls_to("getMe"), "no adapter started"


# --- what makes a process unhealthy ----------------------------------------------------------


async def test_failing_polling_makes_telegram_unhealthy_until_it_recovers(
    host_emu: HostEmulator, tg: TelegramEmulator, tmp_path: Path
) -> None:
    path = telegram_config(tmp_path, host_emu, tg)
    async with running_adapter(path) as adapter:
        observer = Observability(adapter.core, [adapter], listen=("127.0.0.1", 0))
        await observer.start()
        try:
            async with aiohttp.ClientSession() as session:
                bot = Endpoint(session, observer.port)
                assert await bot.health() == (200, {"status": "ok"})
                tg.fail_next("getUpdates", status=502)  # Bad Gateway, once
                failing = await bot.until_health(503)
                assert failing == {
                    "status": "unavailable",
                    "problems": ["telegram: getUpdates failing (NetworkError)"],
                }
                assert await bot.until_health(200) == {"status": "ok"}
        finally:
            await observer.stop()
    assert adapter.problem() == "not connected"  # stopped


async def test_a_database_that_does_not_answer_makes_the_process_unhealthy(
    host_emu: HostEmulator, tg: TelegramEmulator, tmp_path: Path
) -> None:
    config = load_config(telegram_config(tmp_path, host_emu, tg))
    async with observing(config, []) as (bot, observer):
        assert await bot.health() == (200, {"status": "ok"})
        # Another process (a backup, a migration) holds the write lock; the bot's next
        # write waits for it, and every statement after that waits behind the write.
        other = sqlite3.connect(tmp_path / "rehost.db", isolation_level=None)
        try:
            other.execute("begin exclusive")
            write = asyncio.create_task(Cooldowns(observer.core.store).cool("chev", 1, "test"))
            await asyncio.sleep(0)  # it has taken its turn
            assert await bot.health() == (
                503,
                {"status": "unavailable", "problems": ["database: no answer within 2 s"]},
            )
            other.execute("commit")
            await asyncio.wait_for(write, 10)
        finally:
            other.close()
        assert await bot.health() == (200, {"status": "ok"})


# --- Discord ---------------------------------------------------------------------------------


async def test_discord_through_rehost_run_counts_rate_limits_and_expired_tokens(
    tmp_path: Path, host_emu: HostEmulator
) -> None:
    port = free_port()
    async with DiscordEmulator(application_id=APP_ID) as dc, aiohttp.ClientSession() as session:
        populate_discord(dc)
        config = dataclasses.replace(
            make_config(tmp_path, host_emu, dc),
            observability=ObservabilitySettings(listen=("127.0.0.1", port)),
        )
        bot = Endpoint(session, port)
        stop = asyncio.Event()
        run = asyncio.create_task(serve(config, stop))
        try:
            await bot.until_up()
            assert await bot.until_health(200) == {"status": "ok"}
            counted = await bot.metrics()
            # The command is 14 min 30 s old: its token has too little left to answer with.
            dc.fail_next("POST", rf"^/channels/{OTHER}/messages$", status=429)
            attachment = dc.add_attachment(image(120), "late.png", "image/png")
            await dc.slash_command(
                "upload", DISCORD_ANN, OTHER, GUILD, [attachment_option(attachment)], age=870
            )
            await dc.wait_for(lambda c: posted_in(OTHER)(c) and c.status == 200, timeout=10)

            async def replied() -> bool:
                samples = await bot.metrics()
                return value(samples, "rehost_reply_seconds_count", platform="discord") >= 1

            await until(replied)
            after = await bot.metrics()
        finally:
            stop.set()
            await asyncio.wait_for(run, 20)

    def grew(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(counted, name, **labels)

    assert grew("rehost_rehosts_total", platform="discord", outcome="ok") == 1
    assert grew("rehost_platform_rate_limited_total", platform="discord") == 1
    assert grew("rehost_discord_interaction_tokens_expired_total") == 1
    assert grew("rehost_uploads_total", host="chev") == 1
    assert_clean_labels(after, [dc.token, *ALL_KEYS], [DISCORD_ANN, GUILD, OTHER, AUTO, APP_ID])
