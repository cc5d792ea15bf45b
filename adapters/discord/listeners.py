"""Messages: auto-rehost in channels where it is on, and the bot's DMs.

- In a guild channel from the configuration, or switched on with ``/rehost auto on``, the
  image attachments of people's messages (never bots', never the bot's own) are rehosted:
  one public reply per message, delete links to the author by DM.
- In a DM, images are rehosted and answered with their delete links (a message such as
  ``1d`` sets the expiry); ``delete ID`` asks to confirm a deletion.
"""

from __future__ import annotations

import logging
import re

import discord

from adapters.discord import render
from adapters.discord.client import RehostClient
from adapters.discord.sources import PLATFORM, rehost_request, split_attachments
from bot.presenting import NOT_AN_IMAGE, parse_expiry_argument

log = logging.getLogger(__name__)
DELETE_COMMAND = re.compile(r"^\s*/?delete\s+#?(\d{1,18})\s*$", re.IGNORECASE)
USER_MESSAGES = frozenset({discord.MessageType.default, discord.MessageType.reply})


class Listeners:
    def __init__(self, client: RehostClient) -> None:
        self.client = client
        self.service = client.service

    async def on_message(self, message: discord.Message) -> None:
        if message.author.bot or message.webhook_id is not None:
            return  # bots, the bot itself and webhooks: never
        if message.type not in USER_MESSAGES:
            return
        try:
            if message.guild is None:
                await self._direct(message)
            elif self.auto_rehost(message.channel.id):
                await self._auto_rehost(message)
        except Exception:
            log.exception(
                "handling message %s in channel %s failed", message.id, message.channel.id
            )
            if self.client.is_closed():
                return
            try:
                await message.reply(render.SORRY, mention_author=False)
            except discord.HTTPException:
                log.warning("could not tell the user that something failed")

    def auto_rehost(self, channel_id: int) -> bool:
        if channel_id in self.client.settings.auto_rehost_channels:
            return True
        return self.service.chat_settings(PLATFORM, str(channel_id)).auto_rehost

    async def _auto_rehost(self, message: discord.Message) -> None:
        images, _ = split_attachments(message.attachments)
        if not images:
            return  # images and nothing else
        request = rehost_request(
            chat_id=message.channel.id,
            owner_id=message.author.id,
            sources=images,
            message_id=message.id,
        )
        async with message.channel.typing():
            results = await self.service.rehost(request)
        await self.client.delivery.reply_in_channel(message, results)

    async def _direct(self, message: discord.Message) -> None:
        images, others = split_attachments(message.attachments)
        if images:
            given, duration, error = parse_expiry_argument(message.content or None)
            expiry = (given, duration) if not error else (False, None)
            request = rehost_request(
                chat_id=message.channel.id,
                owner_id=message.author.id,
                sources=images,
                message_id=message.id,
                expiry=expiry,
            )
            async with message.channel.typing():
                results = await self.service.rehost(request)
            await self.client.delivery.reply_in_dm(message, results, others)
            return
        if others:
            await message.reply(f"{render.name(others[0])} is {NOT_AN_IMAGE}.")
            return
        command = DELETE_COMMAND.match(message.content or "")
        if command is None:
            await message.reply(render.HELP)
            return
        text, view = self.client.deletions.confirm_prompt(message.author.id, int(command[1]))
        await message.reply(text, suppress_embeds=True, view=view or discord.utils.MISSING)
