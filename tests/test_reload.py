"""SIGHUP re-reads the configuration of ``rehost run``: a new host order applies to the
next upload; a broken or restart-only change is refused with one line, and the running
configuration keeps working."""

from __future__ import annotations

import asyncio
import signal
from dataclasses import replace
from pathlib import Path
from urllib.parse import urlsplit

from bot.config import load_config
from bot.reload import needs_restart
from sandbox import samples
from sandbox.hostemu import HostEmulator
from sandbox.telegram_api import TelegramEmulator
from tests.conftest import assert_no_secrets, host_table, start_rehost_run, write_config
from tests.telegram_harness import ANN, telegram_world


def two_host_config(tmp_path: Path, host: HostEmulator, tg: TelegramEmulator, order: str) -> str:
    tables = [host_table("chev", host, "chevereto"), host_table("bb", host, "imgbb")]
    config = write_config(tmp_path, tables, order.split(","))
    return config.read_text() + (
        f'\n[telegram]\ntoken = "{tg.token}"\nbase_url = "{tg.base_url}"\n'
        f'base_file_url = "{tg.base_file_url}"\n'
    )


class Log:
    """The bot's standard error, read as it comes, so a test can wait for a line."""

    def __init__(self, stream: asyncio.StreamReader) -> None:
        self.lines: list[str] = []
        self._stream = stream

    async def wait_for(self, text: str, timeout: float = 20) -> str:
        async def read() -> str:
            while True:
                line = (await self._stream.readline()).decode()
                if not line:
                    raise AssertionError(f"the bot ended before logging {text!r}")
                self.lines.append(line)
                if text in line:
                    return line

        return await asyncio.wait_for(read(), timeout)


async def upload_of_next_photo(tg: TelegramEmulator, host: HostEmulator, seed: int) -> str:
    """Send a photo; once the bot has answered it, the dialect of the endpoint it went to."""
    earlier = {id(call) for call in tg.calls}
    tg.send_photo(ANN, ANN, samples.png(seed, 7))
    reply = await tg.wait_for(
        lambda c: (
            id(c) not in earlier
            and c.method == "sendMessage"
            and c.ok
            and "Rehosted:" in str(c.params.get("text"))
        ),
        timeout=30,
    )
    path = host.uploads[-1].path
    dialect = "chevereto" if path == urlsplit(host.chevereto_endpoint).path else "imgbb"
    name = "chev" if dialect == "chevereto" else "bb"
    assert f" on {name}, " in reply.params["text"], "the reply names the host it went to"
    return dialect


async def test_sighup_switches_hosts_and_refuses_a_broken_file(
    host_emu: HostEmulator, tmp_path: Path
) -> None:
    async with TelegramEmulator() as tg:
        telegram_world(tg)
        config = tmp_path / "rehost.toml"
        config.write_text(two_host_config(tmp_path, host_emu, tg, "chev,bb"))
        process = await start_rehost_run(config, REHOST_LOG_LEVEL="INFO")
        assert process.stderr is not None
        log = Log(process.stderr)
        try:
            await log.wait_for("telegram adapter started")
            assert await upload_of_next_photo(tg, host_emu, 1) == "chevereto"

            config.write_text(two_host_config(tmp_path, host_emu, tg, "bb,chev"))
            process.send_signal(signal.SIGHUP)
            line = await log.wait_for("configuration reloaded")
            assert "hosts bb, chev" in line
            assert await upload_of_next_photo(tg, host_emu, 2) == "imgbb"

            config.write_text(config.read_text().replace("[upload]", "[upload]\nhsots = 1"))
            process.send_signal(signal.SIGHUP)
            line = await log.wait_for("configuration not reloaded")
            assert "upload.hsots: unknown key" in line
            assert await upload_of_next_photo(tg, host_emu, 3) == "imgbb"

            # A new token takes a restart: refused as a whole, the hosts stay as they are.
            text = two_host_config(tmp_path, host_emu, tg, "chev,bb")
            config.write_text(text.replace(tg.token, tg.token + "x"))
            process.send_signal(signal.SIGHUP)
            line = await log.wait_for("configuration not reloaded")
            assert "[telegram]" in line and "restart" in line
            assert await upload_of_next_photo(tg, host_emu, 4) == "imgbb"
        finally:
            process.send_signal(signal.SIGTERM)
            out, err = await asyncio.wait_for(process.communicate(), 30)
    assert process.returncode == 0
    text = "".join(log.lines) + err.decode()
    assert text.count("configuration not reloaded") == 2
    assert tg.token not in text
    assert_no_secrets(out.decode(), text)


def test_only_the_auto_rehost_lists_of_the_platform_sections_may_change(
    host_emu: HostEmulator, tmp_path: Path
) -> None:
    config = write_config(tmp_path, [host_table("chev", host_emu, "chevereto")], ["chev"])
    config.write_text(config.read_text() + '\n[telegram]\ntoken = "1:abcdefgh"\n')
    old = load_config(config)
    assert old.telegram is not None
    chats = replace(old, telegram=replace(old.telegram, auto_rehost_chats=(-100, -200)))
    assert needs_restart(old, chats) == []
    token = replace(old, telegram=replace(old.telegram, token="1:other-token"))
    assert needs_restart(old, token) == ["[telegram] (other than its auto-rehost list)"]
    dropped = replace(old, telegram=None)
    assert needs_restart(old, dropped) == ["[telegram] (other than its auto-rehost list)"]
    slots = replace(old, upload=replace(old.upload, max_concurrency=9))
    assert needs_restart(old, slots) == ["upload.max_concurrency"]
    own = replace(old, communities=replace(old.communities, allow_own_host=True))
    assert needs_restart(old, own) == ["[communities]"]
