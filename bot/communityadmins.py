"""The communities where each user was last seen as an admin, per platform.

Telegram gives a bot no way to list the groups a user administers, so ``/settings`` in a
private chat offers the groups where the bot saw the user as an admin: where they sent
``/settings``, pressed a settings button or took an upload down. Kept in
``community_admins`` rather than in a process's memory, it outlives a restart and is
the same for every process sharing the database (webhook updates spread over several).

A row only says where to look: whoever opens a group's settings is checked again there,
and a check saying they are not an admin any more drops the row (:meth:`gone`).

Such sightings are frequent (each settings button, each takedown) and change little, so
a process writes only what differs from what it last wrote itself: a bounded cache of
recent rows, each trusted for :attr:`CommunityAdmins.TRUSTED_FOR` seconds (see
:mod:`bot.recentwrites`). Within that time ``seen_at`` is not refreshed (the picker's order
is that coarse), and a row another process dropped meanwhile is not written back until
the entry lapses.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import NamedTuple

from bot.recentwrites import RecentWrites

OFFERED = 20  # communities :meth:`CommunityAdmins.of` returns unless told otherwise

_ABSENT = ""  # cached: this process dropped the row (or found none to drop)
_UPSERT = (
    "insert into community_admins (platform, community_id, user_id, title, seen_at)"
    " values (?, ?, ?, ?, ?) on conflict (platform, community_id, user_id) do update"
    " set title = excluded.title, seen_at = excluded.seen_at"
)


class Administered(NamedTuple):
    """A community a user was seen administering, with its title then."""

    community_id: str
    title: str


class CommunityAdmins(RecentWrites[tuple[str, str, str], str]):
    """One process's writer and reader of ``community_admins``; :attr:`known`: (platform,
    community id, user id) -> the title last written ("": dropped)."""

    TRUSTED_FOR = 600.0  # seconds a cached entry is taken to be what the database holds

    async def seen(
        self, platform: str, community_id: str | int, user_id: str | int, title: str
    ) -> None:
        """``user_id`` was just found to be an admin of ``community_id`` (titled
        ``title``, never empty: the community's id when it has none)."""
        title = title or str(community_id)
        key = (platform, str(community_id), str(user_id))
        if self.known.get(key) == title:
            return
        await self.db.execute(_UPSERT, (*key, title, _stamp()))
        self.known[key] = title

    async def gone(self, platform: str, community_id: str | int, user_id: str | int) -> None:
        """``user_id`` was just found not to be an admin of ``community_id``."""
        key = (platform, str(community_id), str(user_id))
        if self.known.get(key) == _ABSENT:
            return
        await self.db.execute(
            "delete from community_admins where platform = ? and community_id = ? and user_id = ?",
            key,
        )
        self.known[key] = _ABSENT

    async def of(
        self, platform: str, user_id: str | int, limit: int = OFFERED
    ) -> list[Administered]:
        """The communities ``user_id`` was seen administering, most recently seen first."""
        rows = await self.db.fetch(
            "select community_id, title from community_admins where platform = ?"
            " and user_id = ? order by seen_at desc limit ?",
            (platform, str(user_id), limit),
        )
        return [Administered(str(row["community_id"]), str(row["title"])) for row in rows]


def _stamp() -> str:
    """Now, as ISO 8601 UTC text to the microsecond (it sorts as text in SQL): finer than
    the store's seconds, so groups seen one after the other keep their order."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
