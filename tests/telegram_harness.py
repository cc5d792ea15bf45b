"""The real Telegram adapter, polling the Telegram emulator, over the host emulator."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from adapters.telegram.bot import TelegramAdapter
from bot.app import open_core
from bot.config import load_config
from sandbox.hostemu import HostEmulator
from sandbox.telegram_api import TelegramEmulator
from tests.conftest import host_table, write_config

ANN, BOB, NOBODY = 7, 8, 9  # NOBODY never started the bot
GROUP, QUIET_GROUP = -1001000000001, -1001000000002


def telegram_world(tg: TelegramEmulator) -> None:
    tg.add_user(ANN, first_name="Ann", username="ann")
    tg.add_user(BOB, first_name="Bob", username="bob")
    tg.add_user(NOBODY, first_name="Nobody", username="nobody", started=False)
    # The bot is in privacy mode: it sees every message in GROUP (auto-rehost) only as
    # an admin there; in QUIET_GROUP it sees only commands, replies to it and mentions.
    tg.add_group(GROUP, title="Photos", admins=[ANN], creator=ANN, bot_is_admin=True)
    tg.add_group(QUIET_GROUP, title="Quiet", admins=[ANN], creator=ANN)


def telegram_config(
    tmp_path: Path, host: HostEmulator, tg: TelegramEmulator, upload_extra: str = ""
) -> Path:
    config = write_config(tmp_path, [host_table("chev", host, "chevereto")], ["chev"], upload_extra)
    config.write_text(
        config.read_text() + f'\n[telegram]\ntoken = "{tg.token}"\nbase_url = "{tg.base_url}"\n'
        f'base_file_url = "{tg.base_file_url}"\nauto_rehost_chats = [{GROUP}]\n'
    )
    return config


async def settled(adapter: TelegramAdapter, tg: TelegramEmulator, timeout: float = 20.0) -> None:
    """Wait until the bot has nothing left to do: every update fetched and handled, every
    job finished, every answer sent (or given up)."""
    store = adapter.core.store

    async def busy() -> int:
        value = await store.db.fetchval(
            "select (select count(*) from inbox where state = 'new')"
            " + (select count(*) from jobs where state in ('pending', 'held'))"
            " + (select count(*) from outbox where state = 'pending')"
            " + (select count(*) from batches where state = 'open') as busy"
        )
        return int(value)

    async with asyncio.timeout(timeout):
        while tg.pending_updates or await busy():
            await asyncio.sleep(0.02)


@asynccontextmanager
async def running_adapter(config_path: Path) -> AsyncIterator[TelegramAdapter]:
    config = load_config(config_path)
    assert config.telegram is not None
    async with open_core(config) as core:
        adapter = TelegramAdapter(core, config.telegram, album_wait=0.4, poll_timeout=1.0)
        await adapter.start()
        try:
            yield adapter
        finally:
            await adapter.stop()
