"""Posting rehost results to Discord so that no delete link is ever public.

Public posts carry viewer and direct links. Delete links go, with SUPPRESS_EMBEDS, in an
ephemeral follow-up (commands) or a DM (auto-rehost); a user whose DMs are closed (403,
code 50007) is told in one public line that the links wait in /mine, and nothing else.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import discord

from adapters.discord import render
from adapters.discord.replies import mark_answered
from adapters.discord.sources import PLATFORM
from adapters.discord.views import delete_buttons
from bot.presenting import ResultLine, rehosted_heading, result_lines
from bot.service import RecoveredBatch, RehostResult, RehostService

log = logging.getLogger(__name__)
ONLY_YOU = "Only you can see this."


def _has_delete_links(results: Sequence[RehostResult]) -> bool:
    return any(result.delete_url for result in results)


class Delivery:
    def __init__(self, client: discord.Client, service: RehostService) -> None:
        self.client = client
        self.service = service

    def remember(
        self, results: Sequence[RehostResult], message: discord.Message, *, public: bool
    ) -> None:
        """Record which uploads a post shows, so deleting one can edit or remove it."""
        for result in results:
            if result.upload is not None:
                self.service.remember_reply(
                    result.upload.id,
                    PLATFORM,
                    str(message.channel.id),
                    str(message.id),
                    public=public,
                )

    # --- commands (the interaction was deferred with a public "thinking" message) ---------

    async def answer_interaction(
        self,
        interaction: discord.Interaction[Any],
        results: Sequence[RehostResult],
        skipped: Sequence[str] = (),
    ) -> None:
        """Public links first, by editing the deferred response; then, and only then, the
        delete links in a separate ephemeral follow-up. (The first follow-up after a defer
        would replace the "thinking" message, keeping its public visibility.)"""
        lines = result_lines(results)
        original = await interaction.edit_original_response(
            content=render.public_text(lines, skipped),
            embeds=render.public_embeds(lines),
            view=delete_buttons(lines),
        )
        mark_answered(interaction)
        self.remember(results, original, public=True)
        if _has_delete_links(results):
            await interaction.followup.send(
                render.private_text(lines, heading=f"{ONLY_YOU} {rehosted_heading(lines)}"),
                ephemeral=True,
                suppress_embeds=True,
                view=delete_buttons(lines) or discord.utils.MISSING,
            )

    # --- messages --------------------------------------------------------------------------

    async def reply_in_channel(
        self, message: discord.Message, results: Sequence[RehostResult]
    ) -> None:
        """Auto-rehost: one public reply; the author gets the delete links by DM."""
        lines = result_lines(results)
        note = ""
        if _has_delete_links(results):
            sent = await self.send_delete_links(
                message.author, results, lines, render.where(message.channel.id)
            )
            note = render.DM_SENT_NOTE if sent else render.dm_closed_note(message.author.mention)
        reply = await message.reply(
            render.public_text(lines, note=note),
            embeds=render.public_embeds(lines),
            view=delete_buttons(lines) or discord.utils.MISSING,
            mention_author=False,
        )
        self.remember(results, reply, public=True)

    async def reply_in_dm(
        self, message: discord.Message, results: Sequence[RehostResult], skipped: Sequence[str]
    ) -> None:
        """A DM: everything, delete links included, with previews suppressed."""
        lines = result_lines(results)
        reply = await message.reply(
            render.private_text(lines, skipped=skipped),
            suppress_embeds=True,
            view=delete_buttons(lines) or discord.utils.MISSING,
            mention_author=False,
        )
        self.remember(results, reply, public=False)

    async def send_delete_links(
        self,
        user: discord.User | discord.Member,
        results: Sequence[RehostResult],
        lines: Sequence[ResultLine],
        where: str,
    ) -> bool:
        """DM the delete links; False when the user's DMs are closed (nothing is sent)."""
        heading = f"{rehosted_heading(lines)} ({where})"
        try:
            sent = await user.send(
                render.private_text(lines, heading=heading),
                suppress_embeds=True,
                view=delete_buttons(lines) or discord.utils.MISSING,
            )
        except discord.Forbidden as error:
            log.info("cannot DM user %s their delete links (code %s)", user.id, error.code)
            return False
        self.remember(results, sent, public=False)
        return True

    # --- after a restart -------------------------------------------------------------------

    async def post_recovered(self, batch: RecoveredBatch) -> None:
        """Answer a rehost that a previous run started but did not answer."""
        if batch.chat_id is None or not batch.results:
            return
        channel = self.client.get_channel(int(batch.chat_id))
        if channel is None:
            channel = await self.client.fetch_channel(int(batch.chat_id))
        if not isinstance(channel, discord.abc.Messageable):
            return
        lines = result_lines(batch.results)
        reply_to: dict[str, Any] = {}  # discord.py's send wants no reference rather than None
        if batch.message_id is not None:
            reply_to["reference"] = discord.MessageReference(
                message_id=int(batch.message_id),
                channel_id=int(batch.chat_id),
                fail_if_not_exists=False,
            )
        if isinstance(channel, discord.DMChannel):
            sent = await channel.send(
                render.private_text(lines),
                suppress_embeds=True,
                view=delete_buttons(lines) or discord.utils.MISSING,
                **reply_to,
            )
            self.remember(batch.results, sent, public=False)
            return
        note = ""
        if _has_delete_links(batch.results):
            owner = await self.client.fetch_user(int(batch.owner_id))
            where = render.where(int(batch.chat_id))
            sent_dm = await self.send_delete_links(owner, batch.results, lines, where)
            note = render.DM_SENT_NOTE if sent_dm else render.dm_closed_note(owner.mention)
        post = await channel.send(
            render.public_text(lines, note=note),
            embeds=render.public_embeds(lines),
            view=delete_buttons(lines) or discord.utils.MISSING,
            **reply_to,
        )
        self.remember(batch.results, post, public=True)
