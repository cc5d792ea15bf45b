"""Which language a Telegram answer is in.

A private reply follows the user's ``language_code`` (sent with each of their updates);
a public post in a group follows the group's community ``language`` setting, else
English: Telegram tells a bot nothing about a group's language. Each user's code is also
remembered (:class:`LanguageNotes`, :mod:`bot.userlanguages`) for what reaches them with
no update at hand: a takedown notice, new links after a move, an edited private post.
"""

from __future__ import annotations

import logging

from telegram import Update
from telegram.ext import ContextTypes

from adapters.telegram.trigger import PLATFORM
from bot.app import Core
from bot.community import Communities
from bot.i18n import ENGLISH, negotiate

log = logging.getLogger(__name__)


async def group_language(core: Core, chat_id: int) -> str:
    """A group's public language: its ``language`` setting, else English."""
    chosen = (await Communities(core.store.db).settings(PLATFORM, str(chat_id))).language
    return negotiate(chosen) if chosen else ENGLISH


class LanguageNotes:
    """A handler run before every other (group -1): remembers the language code of the
    update's user. A failure is logged, not answered: the update itself goes on."""

    def __init__(self, core: Core) -> None:
        self.core = core

    async def __call__(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        user = update.effective_user
        if user is None or user.is_bot:
            return
        try:
            await self.core.languages.saw(PLATFORM, user.id, user.language_code)
        except Exception:
            log.warning("could not remember the language of user %s", user.id, exc_info=True)
