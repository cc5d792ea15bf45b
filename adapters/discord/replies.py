"""Telling a user that something failed, without ever showing what (no exception text)."""

from __future__ import annotations

import logging
from typing import Any

import discord

from adapters.discord.render import SORRY

log = logging.getLogger(__name__)
ANSWERED = "rehost_answered"


def mark_answered(interaction: discord.Interaction[Any]) -> None:
    """Note that the deferred "thinking" message was replaced by the real answer."""
    interaction.extras[ANSWERED] = True


async def answer_failure(interaction: discord.Interaction[Any], text: str = SORRY) -> None:
    """Say ``text`` in the least surprising place.

    Not acknowledged yet: a private answer. Deferred but not answered: edit the "thinking"
    message (a follow-up would take its place anyway, public or not, as it was deferred).
    Already answered: a private follow-up, leaving the answer as it is.
    """
    try:
        if not interaction.response.is_done():
            await interaction.response.send_message(text, ephemeral=True)
        elif interaction.extras.get(ANSWERED):
            await interaction.followup.send(text, ephemeral=True)
        else:
            await interaction.edit_original_response(content=text, embeds=[], view=None)
    except discord.HTTPException:
        log.warning("could not tell the user that something failed", exc_info=True)
