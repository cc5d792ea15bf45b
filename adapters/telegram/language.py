"""Which language a Telegram answer is in.

A private reply follows the user's ``language_code`` (sent with each of their updates);
a public post in a group follows the group's community ``language`` setting, else
English: Telegram tells a bot nothing about a group's language.
"""

from __future__ import annotations

from adapters.telegram.trigger import PLATFORM
from bot.app import Core
from bot.community import Communities
from bot.i18n import ENGLISH, negotiate


async def group_language(core: Core, chat_id: int) -> str:
    """A group's public language: its ``language`` setting, else English."""
    chosen = (await Communities(core.store.db).settings(PLATFORM, str(chat_id))).language
    return negotiate(chosen) if chosen else ENGLISH
