"""The discord.py client: intents, the command tree, and the adapter's rooms it holds.

The client owns what its handlers share: :class:`~adapters.discord.intake.Intake` (events
become recorded requests), :class:`~adapters.discord.delivery.Delivery` (outbox rows
become messages), :class:`~adapters.discord.deleting.Deletions`, the attachment resolver,
and routes failures of gateway events to the one error handler
(:mod:`adapters.discord.errors`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any

import aiohttp
import discord
from discord import app_commands

from adapters.discord import errors
from adapters.discord.deleting import Deletions
from adapters.discord.delivery import Delivery
from adapters.discord.identify import IdentifyGate
from adapters.discord.intake import Intake
from adapters.discord.language import remember
from adapters.discord.moderating import Takedowns
from adapters.discord.settings import SETTINGS_ITEMS
from adapters.discord.sources import AttachmentLinks
from adapters.discord.views import DYNAMIC_ITEMS
from bot import metrics
from bot.app import Core
from bot.config import DiscordSettings
from bot.expiration import Duration
from bot.logcontext import log_context

log = logging.getLogger(__name__)
# A rate limit longer than this is not slept through inside a request: discord.py raises
# RateLimited, and the outbox postpones that answer while other chats go on.
MAX_RATE_LIMIT_SLEEP = 30.0


def wanted_intents(message_content: bool) -> discord.Intents:
    """Only what the bot uses: guilds (channels), guild and DM messages, and the one
    privileged intent, message content, without which Discord blanks the attachments of
    guild messages (auto-rehost cannot work; DMs and commands still do)."""
    intents = discord.Intents.none()
    intents.guilds = True
    intents.guild_messages = True
    intents.dm_messages = True
    intents.message_content = message_content
    return intents


def counting_rate_limits() -> aiohttp.TraceConfig:
    """Count every 429 Discord answers, whether discord.py waits it out or raises: REST
    calls and the interactions' webhooks go through the client's one session."""

    async def on_end(
        session: aiohttp.ClientSession, context: object, end: aiohttp.TraceRequestEndParams
    ) -> None:
        if end.response.status == 429:
            metrics.rate_limited("discord")

    trace = aiohttp.TraceConfig()
    trace.on_request_end.append(on_end)
    return trace


class RehostClient(discord.Client):
    def __init__(
        self,
        core: Core,
        settings: DiscordSettings,
        expiry_choices: Sequence[Duration],
        *,
        message_content: bool,
        guild_ready_timeout: float = 2.0,
        **options: Any,  # shard_ids and shard_count, for ShardedRehostClient
    ) -> None:
        super().__init__(
            intents=wanted_intents(message_content),
            allowed_mentions=discord.AllowedMentions.none(),
            guild_ready_timeout=guild_ready_timeout,
            max_ratelimit_timeout=MAX_RATE_LIMIT_SLEEP,
            http_trace=counting_rate_limits(),
            **options,
        )
        self.core = core
        self.settings = settings
        self.expiry_choices = list(expiry_choices)
        self.message_content = message_content
        self.tree: app_commands.CommandTree[RehostClient] = app_commands.CommandTree(self)
        self.deletions = Deletions(self, core.library, core.deleter)
        self.intake = Intake(self, core, settings, self.deletions)
        self.delivery = Delivery(self, core, refresh=self.deletions.refresh)
        self.takedowns = Takedowns(self, core, self.deletions)
        self.links = AttachmentLinks(self)
        # Tells the backfill runner there is work (set once it runs; see bot.py).
        self.wake_backfills: Callable[[], None] = lambda: None
        # Paces identifies across processes (set for a sharded gateway; see bot.py).
        self.identify_gate: IdentifyGate | None = None

    async def before_identify_hook(self, shard_id: int | None, *, initial: bool = False) -> None:
        if self.identify_gate is None:
            await super().before_identify_hook(shard_id, initial=initial)
            return
        await self.identify_gate.wait(shard_id)

    async def setup_hook(self) -> None:
        self.add_dynamic_items(*DYNAMIC_ITEMS, *SETTINGS_ITEMS)

    async def on_message(self, message: discord.Message) -> None:
        with log_context(platform="discord", chat=message.channel.id):
            await self.intake.on_message(message)

    async def on_interaction(self, interaction: discord.Interaction[Any]) -> None:
        """Every interaction (alongside its handler): remember the user's locale, for
        what reaches them later without one (a DM written as text, a takedown notice)."""
        await remember(self.core, interaction)

    async def on_raw_message_delete(self, payload: discord.RawMessageDeleteEvent) -> None:
        with log_context(platform="discord", chat=payload.channel_id):
            await self.takedowns.on_source_deleted(payload)

    async def on_raw_bulk_message_delete(self, payload: discord.RawBulkMessageDeleteEvent) -> None:
        with log_context(platform="discord", chat=payload.channel_id):
            await self.takedowns.on_sources_purged(payload)

    async def on_error(self, event_method: str, /, *args: Any, **kwargs: Any) -> None:
        await errors.on_event_error(self, event_method, *args)

    # Delete buttons (see views.DeleteHandler)

    async def ask_to_confirm(self, interaction: discord.Interaction[Any], upload_id: int) -> None:
        await self.deletions.ask_to_confirm(interaction, upload_id)

    async def confirm_delete(self, interaction: discord.Interaction[Any], upload_id: int) -> None:
        await self.deletions.confirm_delete(interaction, upload_id)

    # The Take down button (see views.TakedownHandler)

    async def take_down_post(self, interaction: discord.Interaction[Any]) -> None:
        if interaction.message is None:
            return
        await self.takedowns.post(interaction, interaction.message)


class ShardedRehostClient(RehostClient, discord.AutoShardedClient):
    """The same client running some (``shard_ids``) or all of the gateway's shards; with
    no ``shard_count``, as many as Discord recommends."""
