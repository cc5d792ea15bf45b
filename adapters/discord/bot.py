"""The Discord adapter: a discord.py client that calls the rehost service.

``start`` logs in, connects to the gateway in a background task and returns once the bot
is ready and its commands are synced; ``stop`` closes it. ``api_base_url`` and
``gateway_url`` point discord.py at a REST proxy and a gateway proxy (or, in tests, at the
local emulator): they set ``discord.http.Route.BASE`` and
``DiscordWebSocket.DEFAULT_GATEWAY``, which discord.py reads at call time.

Once ready, the adapter takes its part of the core's work: the job worker runs Discord
jobs (with :class:`~adapters.discord.sources.AttachmentLinks` re-signing stale attachment
links), and an :class:`~bot.sending.OutboxSender` delivers Discord answers through
:class:`~adapters.discord.delivery.Delivery`, and a
:class:`~adapters.discord.backfill.BackfillLoop` runs ``/rehost backfill``. Work a previous
run left behind (jobs, answers not yet sent, a backfill halfway) is found the same way,
once its lease lapses: there is no separate recovery.

Its rooms are the same as the Telegram adapter's: ``intake`` (events become recorded
requests), ``render``, ``delivery`` (outbox rows become messages), ``deleting``,
``commands``, and one error handler (``errors``).

The only privileged intent asked for is message content (auto-rehost needs it to see the
attachments of guild messages). When Discord refuses it (gateway close 4014), the bot says
so plainly in the log and runs without it: commands, the context menu and DMs still work.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

import discord
import yarl
from discord.gateway import DiscordWebSocket
from discord.http import Route

from adapters.discord import commands
from adapters.discord.backfill import BackfillLoop
from adapters.discord.client import RehostClient, ShardedRehostClient
from adapters.discord.identify import IDENTIFY_INTERVAL, IdentifyGate
from adapters.discord.sources import PLATFORM
from adapters.discord.translator import CatalogueTranslator
from bot.app import Core
from bot.config import DiscordSettings
from bot.expiration import offered_durations
from bot.sending import OutboxSender

log = logging.getLogger(__name__)

INTENT_REFUSED = (
    "Discord refused the Message Content intent. Enable it for this bot in the Discord "
    "Developer Portal (Bot > Privileged Gateway Intents > Message Content Intent). Running "
    "without it: auto-rehost cannot see images posted in server channels; /upload, the "
    "'Rehost images' menu and DMs still work."
)


@dataclass(frozen=True)
class Shards:
    """The gateway shards one process runs: ``ids`` of ``count`` (None: all of them;
    no count: as many as Discord recommends)."""

    ids: tuple[int, ...] | None = None
    count: int | None = None

    @property
    def runs_shard_zero(self) -> bool:
        return self.ids is None or 0 in self.ids


class DiscordAdapter:
    name = PLATFORM

    def __init__(
        self,
        core: Core,
        settings: DiscordSettings,
        *,
        guild_ready_timeout: float = 2.0,
        ready_timeout: float = 60.0,
        stop_timeout: float = 10.0,
        intake: bool = True,
        work: bool = True,
        shards: Shards | None = None,
        identify_interval: float = IDENTIFY_INTERVAL,
    ) -> None:
        """``intake``: run the gateway (events and interactions become recorded work);
        ``work``: run Discord's jobs, answers and backfills over the HTTP API only.
        ``shards``: run the gateway sharded (which shards, of how many), pacing identifies
        with the other shard processes through the database."""
        self.core = core
        self.settings = settings
        self.intake = intake
        self.work = work
        self.shards = shards
        self._identify_interval = identify_interval
        self._guild_ready_timeout = guild_ready_timeout
        self._ready_timeout = ready_timeout
        self._stop_timeout = stop_timeout
        self._client: RehostClient | None = None
        self._gateway: asyncio.Task[None] | None = None
        self._sender: OutboxSender | None = None
        self._sending: asyncio.Task[None] | None = None
        self._backfilling: asyncio.Task[None] | None = None
        self._saved_endpoints: tuple[str, yarl.URL] | None = None

    @property
    def client(self) -> RehostClient:
        assert self._client is not None, "the adapter is not started"
        return self._client

    # --- lifecycle -----------------------------------------------------------------------

    async def start(self) -> None:
        self._use_endpoints()
        try:
            if self.intake:
                try:
                    await self._connect(message_content=True)
                except discord.PrivilegedIntentsRequired:
                    log.warning(INTENT_REFUSED)
                    await self._connect(message_content=False)
                if self.shards is None or self.shards.runs_shard_zero:
                    await self._sync_commands()  # once, by the process with shard 0
            else:  # the HTTP API only: no gateway connection
                client = self._client = self._build(message_content=True)
                await client.login(self.settings.token)
            if self.work:
                self._serve()
        except BaseException:
            await self.stop()
            raise

    async def stop(self) -> None:
        rehost = self.core.rehost
        if self.work:
            rehost.worker.platforms.discard(PLATFORM)  # jobs wait for the next run
            rehost.resolvers.pop(PLATFORM, None)
        for task, what in ((self._backfilling, "backfill runner"), (self._sending, "sender")):
            if task is None:
                continue
            task.cancel()
            done, _ = await asyncio.wait({task}, timeout=self._stop_timeout)
            if not done:
                log.warning("the Discord %s did not stop in time", what)
        self._sending = self._sender = self._backfilling = None
        await self._disconnect()
        self._restore_endpoints()

    def problem(self) -> str | None:
        """Why the adapter is not serving now, for the health check (None: it is). With the
        gateway: ready, and every shard this process runs connected; without (a worker):
        logged in. And its sender and backfill runner still running."""
        client = self._client
        if client is None or client.is_closed():
            return "not connected"
        if self.intake:
            gateway = self._gateway
            if gateway is None or gateway.done() or not client.is_ready():
                return "not connected"
            down = _shards_down(client)
            if down:
                return f"gateway disconnected (shards {', '.join(map(str, down))})"
        elif client.user is None:
            return "not logged in"
        for task, what in ((self._sending, "sender"), (self._backfilling, "backfill runner")):
            if task is not None and task.done():
                return f"the {what} stopped"
        return None

    @property
    def sender(self) -> OutboxSender:
        assert self._sender is not None, "the adapter is not started"
        return self._sender

    def _serve(self) -> None:
        """Take on Discord's jobs and answers, this run's and any a previous run left."""
        client, rehost = self.client, self.core.rehost
        rehost.resolvers[PLATFORM] = client.links.resolve
        sender = self._sender = OutboxSender(
            rehost.outbox, PLATFORM, client.delivery.deliver, lease=rehost.lease
        )
        rehost.on_answer(PLATFORM, sender.wake)
        self._sending = asyncio.create_task(sender.run(), name="discord-sender")
        rehost.worker.serve(PLATFORM)
        backfills = BackfillLoop(client, self.core, lease=rehost.lease)
        client.wake_backfills = backfills.wake
        self._backfilling = asyncio.create_task(backfills.run(), name="discord-backfill")

    def _use_endpoints(self) -> None:
        if self._saved_endpoints is None:
            self._saved_endpoints = (Route.BASE, DiscordWebSocket.DEFAULT_GATEWAY)
        if self.settings.api_base_url:
            Route.BASE = self.settings.api_base_url.rstrip("/")
        if self.settings.gateway_url:
            DiscordWebSocket.DEFAULT_GATEWAY = yarl.URL(self.settings.gateway_url)

    def _restore_endpoints(self) -> None:
        if self._saved_endpoints is not None:
            Route.BASE, DiscordWebSocket.DEFAULT_GATEWAY = self._saved_endpoints
            self._saved_endpoints = None

    def _build(self, *, message_content: bool) -> RehostClient:
        dialects = {host.dialect for host in self.core.config.ordered_hosts()}
        kind, options = RehostClient, {}
        if self.shards is not None and self.intake:
            kind = ShardedRehostClient
            options = {"shard_ids": self.shards.ids, "shard_count": self.shards.count}
        client = kind(
            self.core,
            self.settings,
            offered_durations(dialects),
            message_content=message_content,
            guild_ready_timeout=self._guild_ready_timeout,
            **options,
        )
        commands.register(client)
        return client

    async def _connect(self, *, message_content: bool) -> None:
        """Log in, run the gateway in the background, return once ready (or raise what
        stopped it: a bad token, a refused intent...)."""
        client = self._client = self._build(message_content=message_content)
        await client.login(self.settings.token)
        if self.shards is not None:
            _, _, limits = await client.http.get_bot_gateway()
            client.identify_gate = IdentifyGate(
                self.core.store.db, int(limits.get("max_concurrency", 1)), self._identify_interval
            )
        gateway = self._gateway = asyncio.create_task(client.connect(), name="discord-gateway")
        ready = asyncio.create_task(client.wait_until_ready(), name="discord-ready")
        done, _ = await asyncio.wait(
            {ready, gateway}, timeout=self._ready_timeout, return_when=asyncio.FIRST_COMPLETED
        )
        if ready in done:
            return
        ready.cancel()
        error = gateway.exception() if gateway in done else None
        await self._disconnect()
        if error is not None:
            raise error
        raise TimeoutError(f"Discord was not ready within {self._ready_timeout:g} s")

    async def _disconnect(self) -> None:
        client, gateway = self._client, self._gateway
        self._client = self._gateway = None
        if client is not None:
            await client.close()
        if gateway is None:
            return
        done, _ = await asyncio.wait({gateway}, timeout=self._stop_timeout)
        if not done:
            gateway.cancel()
            await asyncio.wait({gateway})
        elif not gateway.cancelled() and gateway.exception() is not None:
            log.debug("the gateway stopped with %r", gateway.exception())

    async def _sync_commands(self) -> None:
        """Guild commands appear at once (``guild_ids``); global ones everywhere, DMs too."""
        tree = self.client.tree
        # Descriptions and choices in every language of the catalogues.
        await tree.set_translator(CatalogueTranslator())
        try:
            if not self.settings.guild_ids:
                await tree.sync()
                return
            for guild_id in self.settings.guild_ids:
                guild = discord.Object(guild_id)
                tree.copy_global_to(guild=guild)
                await tree.sync(guild=guild)
        except discord.HTTPException as error:
            log.warning(
                "could not register the slash commands with Discord (HTTP %s, code %s); "
                "those registered before stay in use",
                error.status,
                error.code,
            )


def _shards_down(client: RehostClient) -> list[int]:
    """The gateway shards of this process whose connection is not open now."""
    if isinstance(client, discord.AutoShardedClient):
        shards = client.shards
        wanted = client.shard_ids
        if wanted is None:
            wanted = list(range(client.shard_count or 0))
        return [i for i in wanted if i not in shards or shards[i].is_closed()]
    ws = client.ws
    return [] if ws is not None and ws.open else [client.shard_id or 0]
