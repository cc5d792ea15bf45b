"""Moderators on Discord: who may take uploads down, and which uploads are the server's.

A moderator is a member with Manage Messages in the channel the interaction comes from.
Discord hides the "Take down" context menu from everyone else (its default permissions),
but a button is visible to all and a command can be sent from a stale client, so the
permissions in the interaction itself (``interaction.permissions``, which Discord computes
for the member in that channel) are checked on every use. An upload is the server's when
the channel or thread it was posted in belongs to the interaction's guild. The rest is
:mod:`bot.moderation`'s; deleting source messages (one, or a moderator's purge) is handled
in :meth:`Takedowns.sources_deleted`.
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Iterable, Sequence
from typing import Any

import discord

from adapters.discord.deleting import Deletions
from adapters.discord.language import user_language
from adapters.discord.sources import PLATFORM
from bot.app import Core
from bot.community import Communities
from bot.i18n import ENGLISH, N_, translate
from bot.moderation import SOURCE_DELETED, Community, Moderator, Takedown

log = logging.getLogger(__name__)

NOT_A_MODERATOR = N_("Only members who can manage messages here can take uploads down.")
NOT_OUR_POST = N_("That is not one of this bot's posts with images; nothing to take down.")


def is_moderator(interaction: discord.Interaction[Any]) -> bool:
    """Manage Messages in this channel, as Discord resolved it for this interaction."""
    return interaction.guild_id is not None and interaction.permissions.manage_messages


class Takedowns:
    def __init__(self, client: discord.Client, core: Core, deletions: Deletions) -> None:
        self.client = client
        self.core = core
        self.deletions = deletions

    # --- uses --------------------------------------------------------------------------------

    async def by_id(self, interaction: discord.Interaction[Any], upload_id: int) -> None:
        """``/rehost takedown id:``."""
        if not is_moderator(interaction):
            await interaction.response.send_message(
                translate(user_language(interaction), NOT_A_MODERATOR), ephemeral=True
            )
            return
        await interaction.response.defer(ephemeral=True, thinking=True)
        results = await self._take_down(interaction, [upload_id])
        await interaction.followup.send(
            _summary(results, user_language(interaction)), ephemeral=True
        )

    async def post(self, interaction: discord.Interaction[Any], message: discord.Message) -> None:
        """The "Take down" button on a post, or the context menu on one: all it shows."""
        if not is_moderator(interaction):
            await interaction.response.send_message(
                translate(user_language(interaction), NOT_A_MODERATOR), ephemeral=True
            )
            return
        me = self.client.user
        uploads = []
        if me is not None and message.author.id == me.id:
            uploads = await self.core.library.uploads_in_message(
                PLATFORM, str(message.channel.id), str(message.id)
            )
        live = [upload.id for upload in uploads if upload.active]
        if not live:
            await interaction.response.send_message(
                translate(user_language(interaction), NOT_OUR_POST), ephemeral=True
            )
            return
        await interaction.response.defer(ephemeral=True, thinking=True)
        results = await self._take_down(interaction, live)
        await interaction.followup.send(
            _summary(results, user_language(interaction)), ephemeral=True
        )

    async def _take_down(
        self, interaction: discord.Interaction[Any], upload_ids: Sequence[int]
    ) -> list[Takedown]:
        assert interaction.guild_id is not None
        guild = interaction.guild
        community = self.community(interaction.guild_id, guild.name if guild else "")
        user = interaction.user
        moderator = Moderator(str(user.id), user.name)
        return await self.core.moderation.take_down_each(
            upload_ids, moderator, community, self.deletions.refresh
        )

    # --- deleting the source message ----------------------------------------------------------

    async def on_source_deleted(self, payload: discord.RawMessageDeleteEvent) -> None:
        """One message deleted (MESSAGE_DELETE)."""
        cached = [payload.cached_message] if payload.cached_message is not None else []
        await self.sources_deleted(
            payload.guild_id, payload.channel_id, [payload.message_id], cached
        )

    async def on_sources_purged(self, payload: discord.RawBulkMessageDeleteEvent) -> None:
        """A moderator's purge (MESSAGE_DELETE_BULK): up to 100 messages of one channel."""
        await self.sources_deleted(
            payload.guild_id, payload.channel_id, payload.message_ids, payload.cached_messages
        )

    async def sources_deleted(
        self,
        guild_id: int | None,
        channel_id: int,
        message_ids: Collection[int],
        cached: Iterable[discord.Message],
    ) -> None:
        """With the server's ``takedown_on_source_delete``, deleted messages take down what
        was rehosted from them, each recorded as done by its message's author when
        discord.py still had the message (``cached``), else by :data:`SOURCE_DELETED`.
        One query finds the uploads of all the messages (a purge deletes up to 100)."""
        if guild_id is None or not message_ids:
            return
        settings = await Communities(self.core.store.db).settings(PLATFORM, str(guild_id))
        if not settings.takedown_on_source_delete:
            return
        ids = sorted({str(message_id) for message_id in message_ids})
        marks = ", ".join("?" * len(ids))
        rows = await self.core.store.db.fetch(
            "select distinct batches.message_id, jobs.upload_id from batches"
            " join jobs on jobs.batch = batches.id"
            " where batches.platform = ? and batches.chat_id = ?"
            f" and batches.message_id in ({marks})"
            " and jobs.upload_id is not null order by jobs.upload_id",
            (PLATFORM, str(channel_id), *ids),
        )
        if not rows:
            return
        authors = {
            message.id: Moderator(str(message.author.id), message.author.name) for message in cached
        }
        guild = self.client.get_guild(guild_id)
        community = self.community(guild_id, guild.name if guild else "")
        done: set[int] = set()
        for row in rows:
            upload_id = int(row["upload_id"])
            if upload_id in done:  # rehosted from two of the deleted messages
                continue
            done.add(upload_id)
            result = await self.core.moderation.take_down(
                upload_id,
                authors.get(int(row["message_id"])) or Moderator(SOURCE_DELETED),
                community,
                reason="source message deleted",
                by_source=True,
            )
            await self.deletions.refresh(result.bot_messages)

    # --- the server ------------------------------------------------------------------------

    def community(self, guild_id: int, title: str) -> Community:
        async def holds(chat_id: str) -> bool:
            return await self.guild_of(int(chat_id)) == guild_id

        return Community(PLATFORM, str(guild_id), holds, title)

    async def guild_of(self, channel_id: int) -> int | None:
        """The guild of a channel or thread: from discord.py's cache, else asked."""
        channel: Any = self.client.get_channel(channel_id)
        if channel is None:
            try:
                channel = await self.client.fetch_channel(channel_id)
            except discord.HTTPException as error:
                log.info("could not look up channel %s (HTTP %s)", channel_id, error.status)
                return None
        guild_id = getattr(channel, "guild_id", None)
        if guild_id is None:
            guild = getattr(channel, "guild", None)
            guild_id = guild.id if guild is not None else None
        return int(guild_id) if guild_id is not None else None


def _summary(results: Sequence[Takedown], language: str = ENGLISH) -> str:
    return "\n".join(result.message_in(language) for result in results)
