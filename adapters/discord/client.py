"""The discord.py client: intents, the command tree, and what the handlers share."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import discord
from discord import app_commands

from adapters.discord.deleting import Deletions
from adapters.discord.delivery import Delivery
from adapters.discord.views import DYNAMIC_ITEMS
from bot.config import DiscordSettings
from bot.deletion import DeleteService
from bot.expiration import Duration
from bot.service import RehostService

log = logging.getLogger(__name__)
MessageHandler = Callable[[discord.Message], Awaitable[None]]


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


class RehostClient(discord.Client):
    def __init__(
        self,
        service: RehostService,
        deleter: DeleteService,
        settings: DiscordSettings,
        expiry_choices: Sequence[Duration],
        *,
        message_content: bool,
        guild_ready_timeout: float = 2.0,
    ) -> None:
        super().__init__(
            intents=wanted_intents(message_content),
            allowed_mentions=discord.AllowedMentions.none(),
            guild_ready_timeout=guild_ready_timeout,
        )
        self.service = service
        self.settings = settings
        self.expiry_choices = list(expiry_choices)
        self.message_content = message_content
        self.tree: app_commands.CommandTree[RehostClient] = app_commands.CommandTree(self)
        self.delivery = Delivery(self, service)
        self.deletions = Deletions(self, service, deleter)
        self.message_handler: MessageHandler | None = None

    async def setup_hook(self) -> None:
        self.add_dynamic_items(*DYNAMIC_ITEMS)

    async def on_message(self, message: discord.Message) -> None:
        if self.message_handler is not None:
            await self.message_handler(message)

    # Delete buttons (see views.DeleteHandler)

    async def ask_to_confirm(self, interaction: discord.Interaction[Any], upload_id: int) -> None:
        await self.deletions.ask_to_confirm(interaction, upload_id)

    async def confirm_delete(self, interaction: discord.Interaction[Any], upload_id: int) -> None:
        await self.deletions.confirm_delete(interaction, upload_id)
