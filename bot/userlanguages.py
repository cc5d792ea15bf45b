"""The language each user last used, per platform, for what reaches them with none at hand.

Discord sends a user's ``locale`` with each interaction and Telegram a user's
``language_code`` with each update, so an answer to either is in the user's language. But
some texts reach a user with no language at hand: a Discord DM written as text ("help",
"delete 12"), the notice that a moderator took an upload down, the new links after an
upload moved to another host, a private post re-rendered after a deletion. For those,
adapters remember what they saw (:meth:`UserLanguages.saw`) in ``user_languages``, as a
catalogue name (``es``, not ``es-ES``), and the texts read it back.

Seeing a user's language is frequent (every interaction, every Telegram update) and a
change is rare, so a process writes only when the language differs from what it last
knew the database to hold for that user: a bounded cache of recent users, each entry
trusted for :attr:`UserLanguages.TRUSTED_FOR` seconds, since another process sharing the
database may have written another language meanwhile (see :mod:`bot.recentwrites`).
"""

from __future__ import annotations

from bot.community import Communities
from bot.database import Database
from bot.i18n import negotiate
from bot.recentwrites import RecentWrites
from bot.store import now_utc, to_text

_UNKNOWN = "?"  # not in the cache (None there means: nothing stored for the user)
_UPSERT = (
    "insert into user_languages (platform, user_id, language, updated_at)"
    " values (?, ?, ?, ?) on conflict (platform, user_id) do update"
    " set language = excluded.language, updated_at = excluded.updated_at"
)


async def remembered(db: Database, platform: str, user_id: str | int) -> str | None:
    """The language ``user_id`` last used on ``platform``; None if never seen."""
    value = await db.fetchval(
        "select language from user_languages where platform = ? and user_id = ?",
        (platform, str(user_id)),
    )
    return str(value) if value else None


async def owner_language(
    db: Database, platform: str, owner_id: str, community_id: str | None = None
) -> str:
    """The language to tell a user something in, unprompted: the one they last used, else
    their community's ``language`` setting (``community_id``: where it happened), else
    English.

    Not the language kept with their upload's batch: that is always set, to English when
    the platform gave none and to the server's for a Discord message, so it cannot be told
    from "unknown"; when the user's own was known, it was remembered then too."""
    language = await remembered(db, platform, owner_id)
    if language is None and community_id is not None:
        language = (await Communities(db).settings(platform, community_id)).language
    return negotiate(language)


class UserLanguages(RecentWrites[tuple[str, str], str | None]):
    """One process's reader and writer of ``user_languages``; :attr:`known`: (platform,
    user id) -> language (None: none stored)."""

    TRUSTED_FOR = 3600.0  # seconds a cached entry is taken to be what the database holds

    async def saw(self, platform: str, user_id: str | int, code: str | None) -> None:
        """``user_id`` used the platform's language ``code`` (``es-ES``, ``zh-hans``):
        remember it, unless it is what the database already holds as far as we know. A
        missing code says nothing and is ignored."""
        if not code:
            return
        language = negotiate(code)
        key = (platform, str(user_id))
        if self.known.get(key, _UNKNOWN) == language:
            return
        await self.db.execute(_UPSERT, (platform, str(user_id), language, to_text(now_utc())))
        self.known[key] = language

    async def of(self, platform: str, user_id: str | int) -> str | None:
        """The language ``user_id`` last used on ``platform``; None if never seen."""
        key = (platform, str(user_id))
        cached = self.known.get(key, _UNKNOWN)
        if cached is not _UNKNOWN:
            return cached
        language = await remembered(self.db, platform, user_id)
        self.known[key] = language
        return language

    async def language(self, platform: str, user_id: str | int, fallback: str | None) -> str:
        """:meth:`of`, else ``fallback`` (a community's language), else English."""
        return await self.of(platform, user_id) or negotiate(fallback)
