"""``rehost run --role``: one gateway process and two workers, separate processes on one
PostgreSQL database; a worker killed with SIGKILL in the middle of its uploads loses
nothing and answers nothing twice."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from bot.store import Store
from sandbox import samples
from sandbox.discord_api import DiscordEmulator
from sandbox.hostemu import Fault, HostEmulator
from tests.conftest import CHEV_KEY, ROOT, run_rehost, unfinished

APP_ID = 1_300_000_000_000_000_001
GUILD = 1_300_000_000_000_000_100
AUTO = 1_300_000_000_000_000_101
USERS = [1_300_000_000_000_000_201 + i for i in range(6)]


def config_file(tmp_path: Path, host_emu: HostEmulator, dc: DiscordEmulator, url: str) -> Path:
    path = tmp_path / "rehost.toml"
    path.write_text(
        '[upload]\nhosts = ["chev"]\nretry_backoff = 0.01\nmax_concurrency = 2\n'
        f'[hosts.chev]\ndialect = "chevereto"\nendpoint = "{host_emu.chevereto_endpoint}"\n'
        f'api_key = "{CHEV_KEY}"\n'
        f'[storage]\nurl = "{url}"\nlease_seconds = 1.0\n'
        f'[discord]\ntoken = "{dc.token}"\nauto_rehost_channels = [{AUTO}]\n'
        f'guild_ids = [{GUILD}]\napi_base_url = "{dc.api_base}"\n'
        f'gateway_url = "{dc.gateway_url}"\n'
    )
    return path


@asynccontextmanager
async def rehost_run(config: Path, *role: str) -> AsyncIterator[asyncio.subprocess.Process]:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bot", "run", "-c", str(config), *role,
        cwd=ROOT, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
        env={**os.environ, "REHOST_LOG_LEVEL": "INFO"},
    )  # fmt: skip
    try:
        yield process
    finally:
        if process.returncode is None:
            process.send_signal(signal.SIGTERM)
            try:
                async with asyncio.timeout(15):
                    await process.wait()
            except TimeoutError:
                process.kill()
                await process.wait()


def answers(dc: DiscordEmulator) -> list[dict[str, Any]]:
    return [m for m in dc.channel_messages(AUTO) if "Rehosted" in m["content"]]


async def settled(url: str, timeout: float = 30.0) -> None:
    async with Store.opened(url) as store, asyncio.timeout(timeout):
        while await unfinished(store):
            await asyncio.sleep(0.05)


async def test_a_worker_killed_mid_upload_loses_nothing_and_answers_nothing_twice(
    tmp_path: Path, host_emu: HostEmulator, postgres_url: str
) -> None:
    host_emu.script(Fault("slow", delay=2.0), times=4)
    async with DiscordEmulator(application_id=APP_ID) as dc:
        for user in USERS:
            dc.add_user(user, f"user{user % 100}")
        dc.add_guild(GUILD, owner_id=USERS[0], channels=[AUTO], members=[(u, 0) for u in USERS])
        config = config_file(tmp_path, host_emu, dc, postgres_url)
        async with (
            rehost_run(config, "--role", "discord"),
            rehost_run(config, "--role", "worker") as doomed,
            rehost_run(config, "--role", "worker"),
        ):
            async with asyncio.timeout(30):
                while not [r for r in dc.identify_log if r.accepted]:
                    await asyncio.sleep(0.05)
            posted = []
            for index, user in enumerate(USERS):
                photo = dc.add_attachment(
                    samples.png(4, 3, (index * 30, 60, 90)), f"{index}.png", "image/png",
                    channel_id=AUTO,
                )  # fmt: skip
                posted.append(await dc.send_message(AUTO, user, "", [photo], GUILD))
            # Each worker runs at most two uploads at once: with three under way, both are
            # uploading, the doomed one included.
            async with asyncio.timeout(30):
                while len(host_emu.uploads) < 3:
                    await asyncio.sleep(0.01)
            doomed.send_signal(signal.SIGKILL)
            await doomed.wait()
            async with asyncio.timeout(60):
                while len(answers(dc)) < len(posted):
                    await asyncio.sleep(0.05)
            await settled(postgres_url)
    assert len([r for r in dc.identify_log if r.accepted]) == 1, "workers open no gateway"
    replies = answers(dc)
    replied_to = sorted(int(m["message_reference"]["message_id"]) for m in replies)
    assert replied_to == sorted(int(m["id"]) for m in posted), "every image answered once"
    assert not [m for m in dc.channel_messages(AUTO) if "Sorry" in m["content"]]
    stats = await run_rehost("stats", "-c", str(config), "--json")
    assert stats.code == 0 and '"failures": 0' in stats.stdout
