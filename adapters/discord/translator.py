"""Command descriptions and choice names in each user's language, through discord.py's
:class:`app_commands.Translator`: at sync, discord.py asks it for every string of every
command in every locale Discord has, and sends what it returns as the
``*_localizations`` of the command. Command and option names stay English (people type
them; the help texts name them). Expiry choices (``3 days``) are written from their value
(``3d``) with Babel, so they need no catalogue entry.
"""

from __future__ import annotations

import discord
from discord import app_commands
from discord.app_commands import TranslationContextLocation as Where

from bot.errors import ExpirationError
from bot.expiration import parse_duration
from bot.i18n import ENGLISH, format_duration, negotiate, translations

# What stays English: what users type.
NAMES = frozenset({Where.command_name, Where.group_name, Where.parameter_name})


class CatalogueTranslator(app_commands.Translator):
    async def translate(
        self,
        string: app_commands.locale_str,
        locale: discord.Locale,
        context: app_commands.TranslationContextTypes,
    ) -> str | None:
        if context.location in NAMES:
            return None
        language = negotiate(str(locale))
        if language == ENGLISH:
            return None
        if context.location is Where.choice_name:
            choice = context.data
            if isinstance(choice, app_commands.Choice) and isinstance(choice.value, str):
                try:
                    duration = parse_duration(choice.value)
                except ExpirationError:
                    duration = None  # not a duration: the catalogue, below
                if duration is not None:  # None: "never", in the catalogue
                    return format_duration(duration, language)
        said = translations(language).gettext(string.message)
        return said if said != string.message else None
