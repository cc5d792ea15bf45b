"""Intake: Discord events become recorded rehost requests, and nothing slower.

- A message in a guild channel where auto-rehost is on (the configuration, or
  ``/rehost auto on``) with image attachments, from a person (never a bot, a webhook or
  the bot itself): one batch, answered publicly in the channel with the delete links to
  the author by DM. In a thread or a forum post, the thread's own setting or else its
  channel's decides (:mod:`adapters.discord.places`), and the answer goes in the thread.
  A forward is rehosted like the message it forwards (its ``message_snapshots``), owned
  by whoever forwarded it.
- A message in the bot's DMs: images are rehosted and answered there, delete links
  included (a message such as ``1d`` sets the expiry); ``delete ID`` asks to confirm a
  deletion.
- ``/upload`` and the "Rehost images" menu: the interaction is deferred at once (Discord
  allows 3 seconds), publicly, so that the links can replace the "thinking" message; then
  the request is recorded with what delivery needs to answer later without the
  Interaction object (:class:`InteractionRef`).

Each request carries a key derived from the event (``discord:m:<message id>``,
``discord:i:<interaction id>``) and each image its attachment id, so an event seen twice
(a gateway replay after a reconnect) is recorded once and answered once. Once
:meth:`RehostService.submit` returns, the request survives a crash; the worker does the
rest and the answer comes through the outbox (:mod:`adapters.discord.delivery`).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import discord

from adapters.discord import render
from adapters.discord.deleting import Deletions
from adapters.discord.language import (
    dm_language,
    interaction_languages,
    message_languages,
    user_language,
)
from adapters.discord.places import Expiry, Places
from adapters.discord.sources import PLATFORM, attachments_of, split_attachments
from bot.app import Core
from bot.config import DiscordSettings
from bot.i18n import translate
from bot.presenting import not_an_image, parse_expiry_argument
from bot.requests import RehostRequest, SourceRef

log = logging.getLogger(__name__)
DELETE_COMMAND = re.compile(r"^\s*/?delete\s+#?(\d{1,18})\s*$", re.IGNORECASE)
USER_MESSAGES = frozenset({discord.MessageType.default, discord.MessageType.reply})


@dataclass(frozen=True)
class InteractionRef:
    """What answering a command later needs, kept with its batch: the interaction's
    webhook (application id and token, usable until ``expires_at``, 15 minutes after the
    interaction's snowflake time) and where it happened."""

    interaction_id: int
    application_id: int
    token: str
    expires_at: float  # Unix time
    channel_id: int
    deferred: bool  # the "thinking" response exists (the deferral was accepted)

    def to_context(self) -> dict[str, Any]:
        return {"interaction": asdict(self)}

    @classmethod
    def from_context(cls, context: Mapping[str, Any]) -> InteractionRef | None:
        data = context.get("interaction")
        if not isinstance(data, dict):
            return None
        return cls(
            interaction_id=int(data["interaction_id"]),
            application_id=int(data["application_id"]),
            token=str(data["token"]),
            expires_at=float(data["expires_at"]),
            channel_id=int(data["channel_id"]),
            deferred=bool(data["deferred"]),
        )

    def usable(self, now: float, margin: float = 0.0) -> bool:
        """Whether the token still works (for at least ``margin`` more seconds)."""
        return self.deferred and now < self.expires_at - margin

    def __repr__(self) -> str:  # never the token
        return f"InteractionRef({self.interaction_id}, channel {self.channel_id})"


def channel_title(channel_id: int) -> str:
    """How a guild channel is named in a DM about it (Discord renders the mention)."""
    return f"<#{channel_id}>"


class Intake:
    def __init__(
        self, client: discord.Client, core: Core, settings: DiscordSettings, deletions: Deletions
    ) -> None:
        self.client = client
        self.core = core
        self.settings = settings
        self.deletions = deletions
        self.places = Places(client, core.library, lambda: core.configured_auto_rehost(PLATFORM))

    # --- messages ------------------------------------------------------------------------

    async def on_message(self, message: discord.Message) -> None:
        """Unexpected failures propagate to the client's error handler."""
        if message.author.bot or message.webhook_id is not None:
            return  # bots, the bot itself and webhooks: never
        if message.type not in USER_MESSAGES:
            return
        if message.guild is None:
            await self._direct(message)
        else:
            await self._auto_rehost(message)

    async def _auto_rehost(self, message: discord.Message) -> None:
        images, _ = split_attachments(attachments_of(message))
        if not images:
            return  # images and nothing else
        place = await self.places.locate(message.channel)
        if not (await self.places.setting(place)).auto_rehost:
            return
        await self._submit_message(
            message,
            images,
            chat_title=channel_title(place.channel_id),
            expiry=await self.places.expiry(place, (False, None)),
        )
        await self._typing(message)

    async def _direct(self, message: discord.Message) -> None:
        images, others = split_attachments(attachments_of(message))
        if images:
            given, duration, error = parse_expiry_argument(message.content or None)
            expiry = (given, duration) if not error else (False, None)
            await self._submit_message(
                message, images, chat_title=None, expiry=expiry, skipped=others
            )
            await self._typing(message)
            return
        # A DM has no locale: the language its author last used in an interaction.
        language = await dm_language(self.core, message.author.id)
        if others:
            why = not_an_image(language)
            await message.reply(
                translate(language, "{name} is {reason}.", name=render.name(others[0]), reason=why)
            )
            return
        command = DELETE_COMMAND.match(message.content or "")
        if command is None:
            await message.reply(render.help_text(language))
            return
        text, view = await self.deletions.confirm_prompt(
            message.author.id, int(command[1]), language
        )
        await message.reply(text, suppress_embeds=True, view=view or discord.utils.MISSING)

    async def _submit_message(
        self,
        message: discord.Message,
        images: Sequence[SourceRef],
        *,
        chat_title: str | None,
        expiry: Expiry = (False, None),
        skipped: Sequence[str] = (),
    ) -> str:
        given, duration = expiry
        return await self.core.rehost.submit(
            RehostRequest(
                platform=PLATFORM,
                chat_id=str(message.channel.id),
                owner_id=str(message.author.id),
                sources=images,
                message_id=str(message.id),
                expiration=duration,
                use_default_expiration=not given,
                key=f"discord:m:{message.id}",
                owner_name=message.author.name,
                chat_title=chat_title,
                skipped=tuple(skipped),
                community_id=str(message.guild.id) if message.guild is not None else None,
                context=await message_languages(self.core, message),
            )
        )

    async def _typing(self, message: discord.Message) -> None:
        """One typing indicator while the answer is prepared (it is only a courtesy)."""
        try:
            await message.channel.typing()
        except discord.HTTPException as error:
            log.debug(
                "no typing indicator in channel %s (HTTP %s)", message.channel.id, error.status
            )

    # --- commands ------------------------------------------------------------------------

    async def rehost_for_interaction(
        self,
        interaction: discord.Interaction[Any],
        attachments: Sequence[discord.Attachment],
        expiry: Expiry,
        source_message_id: int | None = None,
        *,
        links: Sequence[SourceRef] = (),
    ) -> None:
        """``/upload`` and "Rehost images": defer publicly, then record the request.
        ``links``: image links given or found in the message, after its attachments."""
        images, others = split_attachments(attachments)
        images += links
        if not images:
            language = user_language(interaction)
            text = translate(language, "There is no image or image link to rehost there.")
            if others:
                text = translate(
                    language,
                    "{name} is {reason}.",
                    name=render.name(others[0]),
                    reason=not_an_image(language),
                )
            await interaction.response.send_message(text, ephemeral=True)
            return
        # Within Discord's 3 seconds; public, so that the links can replace it.
        deferred = True
        try:
            await interaction.response.defer(thinking=True)
        except discord.HTTPException as error:
            # Too late (10062) or refused: the answer will go to the channel instead.
            log.warning(
                "could not defer interaction %s (HTTP %s, code %s); answering in the channel",
                interaction.id,
                error.status,
                error.code,
            )
            deferred = False
        channel_id = interaction.channel_id or interaction.user.id
        if interaction.guild_id is not None and interaction.channel is not None:
            # In a thread, the default expiry may come from its channel.
            place = await self.places.locate(interaction.channel)
            expiry = await self.places.expiry(place, expiry)
        ref = InteractionRef(
            interaction_id=interaction.id,
            application_id=interaction.application_id,
            token=interaction.token,
            expires_at=interaction.expires_at.timestamp(),
            channel_id=channel_id,
            deferred=deferred,
        )
        given, duration = expiry
        await self.core.rehost.submit(
            RehostRequest(
                platform=PLATFORM,
                chat_id=str(channel_id),
                owner_id=str(interaction.user.id),
                sources=images,
                message_id=str(source_message_id) if source_message_id is not None else None,
                expiration=duration,
                use_default_expiration=not given,
                key=f"discord:i:{interaction.id}",
                owner_name=interaction.user.name,
                # Never None (the owner's private chat): even in the bot's DMs a command's
                # answer is public links first, then the delete links in place.
                chat_title=channel_title(channel_id) if interaction.guild_id else "",
                private_in_place=True,
                context={
                    **ref.to_context(),
                    **await interaction_languages(self.core, interaction),
                },
                skipped=tuple(others),
                community_id=str(interaction.guild_id) if interaction.guild_id else None,
            )
        )
