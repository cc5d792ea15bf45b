"""Running the real discord.py against a :class:`~sandbox.discord_api.DiscordEmulator`.

discord.py has two module-level endpoints, both class attributes read at call time:

- ``discord.http.Route.BASE`` (default ``https://discord.com/api/v10``): every REST route,
  follow-up webhooks and interaction callbacks included, is ``BASE + path``. It must end
  with the version segment, e.g. ``http://127.0.0.1:PORT/api/v10``.
- ``discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY`` (a ``yarl.URL``, default
  ``wss://gateway.discord.gg/``): a plain ``discord.Client`` connects there without asking
  ``GET /gateway/bot``, adding ``?v=10&encoding=json&compress=zlib-stream`` (or
  ``zstd-stream`` when a zstd module is installed) with ``URL.with_query``, which replaces
  any query already on the setting. After READY it reconnects to READY's
  ``resume_gateway_url``, not to this setting.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from typing import Protocol, TypeVar

import discord
import yarl
from discord.gateway import DiscordWebSocket
from discord.http import Route

ClientT = TypeVar("ClientT", bound=discord.Client)


class Endpoints(Protocol):
    """What a client needs to reach an emulated Discord (DiscordEmulator has these)."""

    @property
    def api_base(self) -> str: ...
    @property
    def gateway_url(self) -> str: ...
    @property
    def token(self) -> str: ...


@contextmanager
def discord_endpoints(api_base: str, gateway_url: str) -> Iterator[None]:
    """Point discord.py's REST base and gateway at other URLs, restoring them after."""
    old_base, old_gateway = Route.BASE, DiscordWebSocket.DEFAULT_GATEWAY
    Route.BASE = api_base.rstrip("/")
    DiscordWebSocket.DEFAULT_GATEWAY = yarl.URL(gateway_url)
    try:
        yield
    finally:
        Route.BASE, DiscordWebSocket.DEFAULT_GATEWAY = old_base, old_gateway


@asynccontextmanager
async def running_client(
    client: ClientT, emulator: Endpoints, *, timeout: float = 10.0
) -> AsyncIterator[ClientT]:
    """Log ``client`` in, connect it, wait for ``on_ready``; close it on exit.

    Build the client with a small ``guild_ready_timeout`` (e.g. 0.05): discord.py waits
    that long after the last GUILD_CREATE before it fires ``on_ready``. ``setup_hook``
    (e.g. ``tree.sync``) runs during login, before the gateway connects.
    """
    with discord_endpoints(emulator.api_base, emulator.gateway_url):
        connector: asyncio.Task[None] | None = None
        try:
            await client.login(emulator.token)
            connector = asyncio.create_task(client.connect(), name="discord-connect")
            await _until_ready(client, connector, timeout)
            yield client
        except BaseException:
            await _shut_down(client, connector, timeout, report=False)
            raise
        await _shut_down(client, connector, timeout, report=True)


async def _shut_down(
    client: discord.Client, connector: asyncio.Task[None] | None, timeout: float, *, report: bool
) -> None:
    """Close the client and wait for its gateway loop; ``report``: re-raise what ended
    that loop, if it did not end because of the close (a failure already propagating
    is not masked)."""
    await client.close()
    if connector is None:
        return
    done, _ = await asyncio.wait({connector}, timeout=timeout)
    if not done:
        connector.cancel()
        await asyncio.wait({connector})
        if report:
            raise AssertionError(f"the client did not stop within {timeout}s")
        return
    error = None if connector.cancelled() else connector.exception()
    if report and error is not None:
        raise error


async def _until_ready(
    client: discord.Client, connector: asyncio.Task[None], timeout: float
) -> None:
    ready = asyncio.create_task(client.wait_until_ready(), name="discord-ready")
    done, _ = await asyncio.wait(
        {ready, connector}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED
    )
    if ready in done:
        return
    ready.cancel()
    if connector in done:
        connector.result()  # raises what stopped the client (bad token, intents, ...)
        raise AssertionError("the client stopped before it was ready")
    raise AssertionError(f"the client was not ready within {timeout}s")
