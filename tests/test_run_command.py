"""``rehost run``: starts the configured adapters and stops cleanly on SIGTERM."""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path

from sandbox import samples
from sandbox.hostemu import HostEmulator
from sandbox.telegram_api import TelegramEmulator
from tests.conftest import (
    assert_no_secrets,
    host_table,
    run_rehost,
    start_rehost_run,
    write_config,
)
from tests.telegram_harness import ANN, telegram_config, telegram_world


async def test_run_serves_telegram_until_sigterm(host_emu: HostEmulator, tmp_path: Path) -> None:
    async with TelegramEmulator() as tg:
        telegram_world(tg)
        config = telegram_config(tmp_path, host_emu, tg)
        process = await start_rehost_run(config, REHOST_LOG_LEVEL="DEBUG")
        try:
            tg.send_photo(ANN, ANN, samples.png(9, 9))
            reply = await tg.wait_for(lambda c: c.method == "sendMessage" and c.ok, timeout=30)
        finally:
            process.send_signal(signal.SIGTERM)
            out, err = await asyncio.wait_for(process.communicate(), 30)
    assert process.returncode == 0, err.decode()
    assert "/delete/" in reply.params["text"]
    log = err.decode()
    assert "telegram adapter started" in log and "stopped" in log
    assert "event loop lag: worst " in log and "since start (stopping)" in log
    assert tg.token not in log and tg.token.split(":")[1] not in log
    assert "/delete/" not in log.replace("/delete/[redacted]", "")
    assert_no_secrets(out.decode(), log)


async def test_run_without_any_token_explains(host_emu: HostEmulator, tmp_path: Path) -> None:
    config = write_config(tmp_path, [host_table("h", host_emu, "chevereto")], ["h"])
    ran = await run_rehost("run", "-c", str(config))
    assert ran.code == 2
    assert "set [telegram] token or [discord] token" in ran.stdout + ran.stderr
