"""Command descriptions and choice names in each user's language, through discord.py's
:class:`app_commands.Translator`: at sync, discord.py asks it for every string of every
command in every locale Discord has, and sends what it returns as the
``*_localizations`` of the command. Command and option names stay English (people type
them; the help texts name them). Expiry choices (``3 days``) are written from their value
(``3d``) with Babel, so they need no catalogue entry. A description with a value in it
is made with :func:`described`.
"""

from __future__ import annotations

from typing import Any

import discord
from discord import app_commands
from discord.app_commands import TranslationContextLocation as Where

from bot.errors import ExpirationError
from bot.expiration import parse_duration
from bot.i18n import ENGLISH, format_duration, negotiate, translations

# What stays English: what users type.
NAMES = frozenset({Where.command_name, Where.group_name, Where.parameter_name})
MSGID, PARAMS = "msgid", "params"  # a described() string's extras


def described(msgid: str, **params: Any) -> app_commands.locale_str:
    """A description with values in it (``default {n}``): Discord gets the English
    filled in, and the translator looks up ``msgid`` and fills in the same values (the
    message itself must be the English Discord shows)."""
    return app_commands.locale_str(msgid.format(**params), **{MSGID: msgid, PARAMS: params})


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
        msgid = string.extras.get(MSGID, string.message)
        said = translations(language).gettext(msgid)
        if said == msgid:
            return None
        return said.format(**string.extras.get(PARAMS, {}))
