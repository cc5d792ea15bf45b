"""The real Telegram adapter, polling the Telegram emulator (or taking its webhook), over
the host emulator."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from adapters.telegram.bot import TelegramAdapter
from bot.app import open_core
from bot.config import TelegramSettings, load_config
from sandbox.hostemu import HostEmulator
from sandbox.telegram_api import TelegramEmulator
from tests.conftest import host_table, unfinished, write_config

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
    tmp_path: Path,
    host: HostEmulator,
    tg: TelegramEmulator,
    upload_extra: str = "",
    *,
    storage_url: str | None = None,
    telegram_extra: str = "",
) -> Path:
    """``storage_url``: a PostgreSQL database instead of the SQLite file;
    ``telegram_extra``: more lines for the ``[telegram]`` table."""
    config = write_config(tmp_path, [host_table("chev", host, "chevereto")], ["chev"], upload_extra)
    text = config.read_text()
    if storage_url is not None:
        text = text.replace("[storage]\n", f'[storage]\nurl = "{storage_url}"\n', 1)
    config.write_text(
        text + f'\n[telegram]\ntoken = "{tg.token}"\nbase_url = "{tg.base_url}"\n'
        f'base_file_url = "{tg.base_file_url}"\nauto_rehost_chats = [{GROUP}]\n' + telegram_extra
    )
    return config


def free_port() -> int:
    """A port nothing listens on now (for settings that want a fixed one)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def webhook_settings(port: int, url: str, secret: str) -> str:
    """``[telegram]`` lines for webhook mode: listen on ``port``, registered as ``url``."""
    return (
        f'mode = "webhook"\nwebhook_listen = "127.0.0.1:{port}"\n'
        f'webhook_url = "{url}"\nwebhook_secret = "{secret}"\n'
    )


async def settled(adapter: TelegramAdapter, tg: TelegramEmulator, timeout: float = 20.0) -> None:
    """Wait until the bot has nothing left to do: every update fetched and handled, every
    job finished, every answer sent (or given up)."""
    store = adapter.core.store

    async with asyncio.timeout(timeout):
        while tg.pending_updates or await unfinished(store):
            await asyncio.sleep(0.02)


@asynccontextmanager
async def running_adapter(
    config_path: Path,
    *,
    intake: bool = True,
    work: bool = True,
    settings: TelegramSettings | None = None,
    album_wait: float = 0.4,
) -> AsyncIterator[TelegramAdapter]:
    """A core of its own and an adapter on it; ``settings`` replace the file's
    ``[telegram]`` (e.g. another ``webhook_listen`` for a second process)."""
    config = load_config(config_path)
    assert config.telegram is not None
    async with open_core(config) as core:
        adapter = TelegramAdapter(
            core,
            settings or config.telegram,
            album_wait=album_wait,
            poll_timeout=1.0,
            intake=intake,
            work=work,
        )
        await adapter.start()
        try:
            yield adapter
        finally:
            await adapter.stop()
