"""Which language a Discord answer is in.

Private and ephemeral replies follow the user's client ``locale`` (sent with every
interaction); public posts follow the server: its community ``language`` setting when a
manager chose one, else its ``guild_locale``. A message (not an interaction) carries no
locale: its owner is answered in the language they last used in an interaction
(:mod:`bot.userlanguages`, remembered by :func:`remember`), else in the server's, in DMs
in English.
"""

from __future__ import annotations

from typing import Any

import discord

from adapters.discord.sources import PLATFORM
from bot.app import Core
from bot.community import Communities
from bot.database import Database
from bot.i18n import context_languages, negotiate


async def server_language(core: Core, guild_id: int | None, guild_locale: object) -> str:
    """A server's public language: its setting, else its locale; English in DMs."""
    return await community_language(core.store.db, guild_id, guild_locale)


async def community_language(db: Database, guild_id: int | None, guild_locale: object) -> str:
    """:func:`server_language` from the database itself."""
    if guild_id is None:
        return negotiate(None)
    chosen = (await Communities(db).settings(PLATFORM, str(guild_id))).language
    return negotiate(chosen or (str(guild_locale) if guild_locale else None))


async def interaction_languages(
    core: Core, interaction: discord.Interaction[Any]
) -> dict[str, str]:
    """Batch context entries: the user's language and the public post's."""
    user = str(interaction.locale)
    if interaction.guild_id is None:
        return context_languages(user, user)
    public = await server_language(core, interaction.guild_id, interaction.guild_locale)
    return context_languages(user, public)


async def message_languages(core: Core, message: discord.Message) -> dict[str, str]:
    """Batch context entries for a message's answer (no user locale: the one they last
    used, else the server's)."""
    guild = message.guild
    if guild is None:
        mine = await dm_language(core, message.author.id)
        return context_languages(mine, mine)
    public = await server_language(core, guild.id, guild.preferred_locale)
    mine = await core.languages.language(PLATFORM, message.author.id, public)
    return context_languages(mine, public)


async def dm_language(core: Core, user_id: int) -> str:
    """The language of a DM written as text (it has no locale): the one its author last
    used in an interaction, else English."""
    return await core.languages.language(PLATFORM, user_id, None)


async def remember(core: Core, interaction: discord.Interaction[Any]) -> None:
    """Note the user's locale, for what reaches them later without one."""
    await core.languages.saw(PLATFORM, interaction.user.id, str(interaction.locale))


def user_language(interaction: discord.Interaction[Any]) -> str:
    """The language of a reply only the interaction's user sees."""
    return negotiate(str(interaction.locale))
