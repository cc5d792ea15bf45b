"""The emulators of the startup benchmark (``bench.startup``), in a process of their own.

``python -m bench.startup_emulators`` starts the host emulator (Chevereto dialect), then
serves one run per line read from its standard input: it closes the previous run's
Telegram emulator, starts a fresh one with a user who has already sent the bot a private
photo (queued for ``getUpdates``), and prints one JSON line::

    {"token": ..., "base_url": ..., "base_file_url": ..., "endpoint": ..., "api_key": ...}

Then it waits for the bot and prints a second JSON line with ``time.monotonic()`` readings
(CLOCK_MONOTONIC, the same clock in every process on Linux) of the moments this process
recorded the bot's first Bot API call, its first ``getUpdates`` and its ``sendMessage``
answering the photo with the viewer link::

    {"first_call": ..., "first_get_updates": ..., "answered": ..., "text": ...}

or ``{"error": ...}`` when no answer came within ``--timeout`` seconds. The Telegram
emulator keeps serving (the bot's calls while it stops) until the next line, or until
standard input closes, which ends the process.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import sys
import time
from collections.abc import Callable
from typing import Any

from bench.common import API_KEY, MB, image
from sandbox.hostemu import HostEmulator
from sandbox.telegram_api import SentCall, TelegramEmulator

TOKEN = "4242:bench-startup-token"
USER = 9101
PHOTO_SIZE = 64 << 10


def _say(payload: dict[str, Any]) -> None:
    print(json.dumps(payload), flush=True)


async def _watch(tg: TelegramEmulator, viewer_prefix: str, timeout: float) -> dict[str, Any]:
    """The moments of the bot's first call, first getUpdates and its answer to the photo."""

    async def moment(predicate: Callable[[SentCall], bool]) -> float:
        await tg.wait_for(predicate, timeout=timeout)
        return time.monotonic()

    def answer(call: SentCall) -> bool:
        text = call.params.get("text")
        return call.method == "sendMessage" and call.ok and viewer_prefix in str(text)

    # Each wakes when its call is recorded (the emulator has answered it, or is about to).
    moments = await asyncio.gather(
        moment(lambda _: True),
        moment(lambda call: call.method == "getUpdates"),
        moment(answer),
        return_exceptions=True,
    )
    for failed in moments:
        if isinstance(failed, BaseException):  # wait_for: no matching call within the timeout
            return {"error": str(failed)[-2000:]}
    first_call, first_get_updates, answered = moments
    text = next(str(call.params["text"]) for call in tg.calls if answer(call))
    return {
        "first_call": first_call,
        "first_get_updates": first_get_updates,
        "answered": answered,
        "text": text,
    }


def _report(watcher: asyncio.Task[dict[str, Any]]) -> None:
    if not watcher.cancelled():
        _say(watcher.result())


async def _serve(timeout: float) -> None:
    loop = asyncio.get_running_loop()
    async with HostEmulator(
        api_keys=(API_KEY,), chevereto_max_bytes=32 * MB, keep_bytes=False
    ) as host:
        viewer_prefix = f"{host.base_url}/image/"
        run = 0
        tg: TelegramEmulator | None = None
        watcher: asyncio.Task[dict[str, Any]] | None = None
        try:
            while await loop.run_in_executor(None, sys.stdin.readline):
                if watcher is not None:
                    watcher.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await watcher
                if tg is not None:
                    await tg.close()
                run += 1
                # getUpdates calls recorded too: when the bot first polled.
                tg = TelegramEmulator(token=TOKEN, record_polling=True)
                await tg.start()
                tg.add_user(USER, first_name="Startup", username="startup")
                tg.send_photo(USER, USER, image("startup", run, PHOTO_SIZE))
                watcher = asyncio.create_task(_watch(tg, viewer_prefix, timeout))
                _say(
                    {
                        "token": TOKEN,
                        "base_url": tg.base_url,
                        "base_file_url": tg.base_file_url,
                        "endpoint": host.chevereto_endpoint,
                        "api_key": API_KEY,
                    }
                )
                watcher.add_done_callback(_report)
        finally:
            if watcher is not None:
                watcher.cancel()
            if tg is not None:
                await tg.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.startup_emulators")
    parser.add_argument("--timeout", type=float, default=60.0, help="seconds to wait for a run")
    args = parser.parse_args(argv)
    asyncio.run(_serve(args.timeout))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
