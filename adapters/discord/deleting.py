"""Deleting on the owner's request, and changing the bot's posts afterwards.

A deletion removes the image (Chevereto: the bot requests the delete link; ImgBB-style
hosts: the owner gets the link, in private), then every bot post that showed it is
re-rendered from what it still shows: a public post with nothing live left is deleted,
and a public post is re-rendered from :func:`bot.replyplan.public_view` (no delete links),
spoiler images still hidden.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import discord

from adapters.discord import render
from adapters.discord.errors import mark_answered
from adapters.discord.language import community_language
from adapters.discord.sources import PLATFORM
from adapters.discord.views import confirm_buttons, delete_buttons, public_buttons
from bot.deletion import DeleteService, DeleteStatus
from bot.i18n import ENGLISH, negotiate
from bot.library import Library
from bot.presenting import upload_lines
from bot.replyplan import public_view
from bot.states import Visibility
from bot.store import BotMessage
from bot.userlanguages import remembered

log = logging.getLogger(__name__)


class Deletions:
    def __init__(self, client: discord.Client, library: Library, deleter: DeleteService):
        self.client = client
        self.library = library
        self.deleter = deleter

    async def confirm_prompt(
        self, user_id: int, upload_id: int, language: str = ENGLISH
    ) -> tuple[str, discord.ui.View | None]:
        """The question to ask the owner, with Yes / Cancel; a refusal for anyone else."""
        upload = await self.library.owned_upload(upload_id, PLATFORM, str(user_id))
        if upload is None or not upload.active:
            return render.not_yours(upload_id, language), None
        return render.confirm_text(upload, language), confirm_buttons(upload_id, language)

    async def delete_for(self, user_id: int, upload_id: int, language: str = ENGLISH) -> str:
        """Delete as ``user_id`` (refused unless theirs); what to tell them, in private."""
        result = await self.deleter.delete(upload_id, PLATFORM, str(user_id))
        text = result.message_in(language)
        if result.status is DeleteStatus.OPEN_LINK and result.delete_url:
            text += f"\n<{result.delete_url}>"
        await self.refresh(result.bot_messages)
        return text

    # --- answering buttons ---------------------------------------------------------------

    async def ask_to_confirm(self, interaction: discord.Interaction[Any], upload_id: int) -> None:
        language = negotiate(str(interaction.locale))
        text, view = await self.confirm_prompt(interaction.user.id, upload_id, language)
        if view is None:
            await interaction.response.send_message(text, ephemeral=True)
            return
        await interaction.response.send_message(
            text, ephemeral=True, suppress_embeds=True, view=view
        )

    async def confirm_delete(self, interaction: discord.Interaction[Any], upload_id: int) -> None:
        # Deleting may take a host round trip: acknowledge first (this edits the question).
        await interaction.response.defer()
        language = negotiate(str(interaction.locale))
        text = await self.delete_for(interaction.user.id, upload_id, language)
        await interaction.edit_original_response(content=text, view=None)
        mark_answered(interaction)

    # --- refreshing posts ----------------------------------------------------------------

    async def refresh(self, posts: Sequence[BotMessage]) -> None:
        """Re-render bot posts after a deletion; a public post with nothing left goes."""
        for post in posts:
            if post.platform != PLATFORM:
                continue
            try:
                await self._refresh_one(post)
            except discord.NotFound:
                log.info("message %s was already gone", post.message_id)
            except discord.HTTPException as error:
                log.warning("could not update message %s (HTTP %s)", post.message_id, error.status)

    async def _refresh_one(self, post: BotMessage) -> None:
        uploads = await self.library.uploads_in_message(PLATFORM, post.chat_id, post.message_id)
        channel = self.client.get_partial_messageable(int(post.chat_id))
        message = channel.get_partial_message(int(post.message_id))
        if post.visibility == Visibility.PUBLIC:
            if not any(upload.active for upload in uploads):
                await message.delete()
                return
            hidden = await self.library.hidden_uploads(upload.id for upload in uploads)
            lines = [
                replace(line, spoiler=line.upload is not None and line.upload.id in hidden)
                for line in upload_lines(public_view(uploads))
            ]
            # Still the server's language: its setting, else its locale.
            server = next((u.community_id for u in uploads if u.community_id), None)
            guild = self.client.get_guild(int(server)) if server else None
            language = await community_language(
                self.library.store.db,
                int(server) if server else None,
                guild.preferred_locale if guild is not None else None,
            )
            await message.edit(
                content=render.public_text(lines, language=language),
                embeds=render.public_embeds(lines),
                view=public_buttons(lines, language),
            )
            return
        # A private post was sent with SUPPRESS_EMBEDS; an edit keeps the flag. In the
        # language its owner last used (an edit carries no locale).
        lines = upload_lines(uploads)
        owner = uploads[0].owner_id if uploads else None
        mine = await remembered(self.library.store.db, PLATFORM, owner) if owner else None
        language = mine or ENGLISH
        await message.edit(
            content=render.private_text(lines, language=language),
            view=delete_buttons(lines, language),
        )
