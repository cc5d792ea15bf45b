"""What a community's managers choose for it, and the record of who changed what.

A community is a Discord server (its guild id) or a Telegram group or supergroup (its chat
id); a private chat belongs to none. Each setting left unset (None) falls back to the
operator's configuration. Every change is recorded with who made it
(``settings_changes``); a secret's value (the API key of a community's own host) is never
recorded, nor ever shown back: ``own_host`` is stored encrypted, and only
:mod:`bot.ownhost` reads it.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from bot.database import Database
from bot.store import now_utc, to_text

# The columns of ``community_settings`` a manager may change, in the order shown.
SETTINGS = (
    "hosts",
    "own_host",
    "default_expiration",
    "max_expiration",
    "nsfw",
    "language",
    "quota_images_per_member",
    "quota_bytes_per_day",
    "takedown_on_source_delete",
)
SECRET_SETTINGS = frozenset({"own_host"})  # recorded as changed, never with their value


@dataclass(frozen=True)
class CommunitySettings:
    hosts: tuple[str, ...] | None = None  # configured host names, in order; None: all
    own_host: str | None = None  # encrypted (see bot.ownhost); None: none
    default_expiration: str | None = None  # a label such as "1d"; None: the operator's
    max_expiration: str | None = None  # the longest a member may ask for; None: any
    nsfw: bool | None = None
    language: str | None = None  # "en", "es", "zh_Hans"; None: each member's own
    quota_images_per_member: int | None = None  # images per member per day; None: none
    quota_bytes_per_day: int | None = None  # bytes the whole community per day; None: none
    takedown_on_source_delete: bool | None = None  # deleting the message takes it down

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> CommunitySettings:
        hosts = row.get("hosts")

        def flag(name: str) -> bool | None:
            value = row.get(name)
            return None if value is None else bool(value)

        return cls(
            hosts=tuple(hosts.split("\n")) if hosts else None,
            own_host=row.get("own_host"),
            default_expiration=row.get("default_expiration"),
            max_expiration=row.get("max_expiration"),
            nsfw=flag("nsfw"),
            language=row.get("language"),
            quota_images_per_member=row.get("quota_images_per_member"),
            quota_bytes_per_day=row.get("quota_bytes_per_day"),
            takedown_on_source_delete=flag("takedown_on_source_delete"),
        )

    def column(self, name: str) -> object:
        """The value of setting ``name`` as stored in its column."""
        value = getattr(self, name)
        if name == "hosts":
            return "\n".join(value) if value else None
        if isinstance(value, bool):
            return int(value)
        return value


class Communities:
    """Reads and changes community settings (one statement each; changes in a
    transaction with their record)."""

    def __init__(self, db: Database) -> None:
        self.db = db

    async def settings(self, platform: str, community_id: str | None) -> CommunitySettings:
        """The community's settings (all unset for a private chat or one never set)."""
        if community_id is None:
            return CommunitySettings()
        row = await self.db.fetchrow(
            "select * from community_settings where platform = ? and community_id = ?",
            (platform, community_id),
        )
        return CommunitySettings.from_row(row) if row is not None else CommunitySettings()

    async def change(
        self,
        platform: str,
        community_id: str,
        actor_id: str,
        actor_name: str,
        **changes: Any,
    ) -> CommunitySettings:
        """Set the named settings (None unsets one), and record each change with who made
        it; the new settings. Raises ValueError for a name that is not a setting."""
        unknown = set(changes) - set(SETTINGS)
        if unknown:
            raise ValueError(f"not community settings: {', '.join(sorted(unknown))}")
        db = self.db
        async with db.transaction():
            current = await self.settings(platform, community_id)
            updated = dataclasses.replace(current, **changes)
            columns = list(SETTINGS)
            values = [updated.column(name) for name in columns]
            stamp = to_text(now_utc())
            assignments = ", ".join(f"{name} = excluded.{name}" for name in columns)
            await db.execute(
                f"insert into community_settings (platform, community_id,"
                f" {', '.join(columns)}, updated_at)"
                f" values (?, ?, {', '.join('?' for _ in columns)}, ?)"
                f" on conflict (platform, community_id) do update set {assignments},"
                " updated_at = excluded.updated_at",
                (platform, community_id, *values, stamp),
            )
            for name in changes:
                shown = updated.column(name)
                if name in SECRET_SETTINGS:
                    shown = "set" if shown is not None else None
                await db.execute(
                    "insert into settings_changes (platform, community_id, actor_id,"
                    " actor_name, setting, value, changed_at) values (?, ?, ?, ?, ?, ?, ?)",
                    (
                        platform,
                        community_id,
                        actor_id,
                        actor_name,
                        name,
                        None if shown is None else str(shown),
                        stamp,
                    ),
                )
        return updated

    async def changes(
        self, platform: str, community_id: str, limit: int = 20
    ) -> list[dict[str, Any]]:
        """The latest changes, newest first (for showing who changed what)."""
        return await self.db.fetch(
            "select * from settings_changes where platform = ? and community_id = ?"
            " order by changed_at desc, id desc limit ?",
            (platform, community_id, limit),
        )
