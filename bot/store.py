"""The records and the queries the core needs, on SQLite or PostgreSQL.

The connection is :mod:`bot.database`, the schema and its migrations :mod:`bot.schema`.
Every method is a coroutine; a write outside a transaction is its own transaction.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass, fields
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bot.database import (
    Database,
    Row,
    SQLiteDatabase,
    open_database,
    storage_problem,
)
from bot.errors import StorageError
from bot.schema import SCHEMA_VERSION, migrate, schema_version
from bot.states import UploadState

__all__ = ["SCHEMA_VERSION", "StorageError", "Store"]

ACTIVE, DELETED, EXPIRED, FAILED = (
    UploadState.ACTIVE,
    UploadState.DELETED,
    UploadState.EXPIRED,
    UploadState.FAILED,
)


def now_utc() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


def to_text(moment: datetime | None) -> str | None:
    """ISO 8601 UTC with a ``Z``: sorts and compares correctly as text in SQL."""
    if moment is None:
        return None
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def from_text(text: str | None) -> datetime | None:
    if not text:
        return None
    moment = datetime.fromisoformat(text)  # C speed; strptime was a tenth of a rehost's CPU
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


# --- records ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class UploadRecord:
    id: int
    platform: str
    chat_id: str | None
    message_id: str | None
    owner_id: str
    sha256: str
    size: int
    mime: str | None
    host: str
    dialect: str | None
    host_image_id: str | None
    viewer_url: str
    url: str | None
    delete_url: str | None
    expires_at: datetime | None
    created_at: datetime | None
    state: str
    reused_from: int | None = None
    source_key: str | None = None
    # When the owner was first handed the delete link of an ImgBB-style upload (which
    # the bot cannot use itself); the upload stays active until the image is gone.
    delete_handed_at: datetime | None = None
    community_id: str | None = None  # where it was posted (see RehostRequest.community_id)

    @classmethod
    def from_row(cls, row: Row) -> UploadRecord:
        values: dict[str, Any] = {f.name: row.get(f.name) for f in fields(cls)}
        for name in ("expires_at", "created_at", "delete_handed_at"):
            values[name] = from_text(row.get(name))
        return cls(**values)

    @property
    def active(self) -> bool:
        return self.state == ACTIVE

    def live(self, at: datetime) -> bool:
        return self.state == ACTIVE and (self.expires_at is None or self.expires_at > at)


@dataclass(frozen=True)
class BotMessage:
    upload_id: int
    platform: str
    chat_id: str
    message_id: str
    visibility: str


@dataclass(frozen=True)
class JobRecord:
    id: int
    batch: str
    position: int
    platform: str
    chat_id: str | None
    message_id: str | None
    owner_id: str
    source: dict[str, Any]
    expiration: str | None
    state: str
    attempts: int
    community_id: str | None = None  # see RehostRequest.community_id


@dataclass(frozen=True)
class ChatSettings:
    auto_rehost: bool = False
    default_expiration: str | None = None
    hosts: tuple[str, ...] | None = None
    nsfw: bool = False  # every image from this chat is marked NSFW on the host


class Store:
    """The records and queries the core needs, over either engine (:mod:`bot.database`).

    Open it with :meth:`open`: a SQLite file path, a ``postgresql://`` URL, or None (SQLite
    in memory); it is migrated before it is returned.
    """

    def __init__(self, db: Database) -> None:
        self.db = db

    @classmethod
    async def open(cls, target: str | Path | None = None) -> Store:
        """Raises :class:`StorageError` when the database cannot be used: a directory, no
        permission, a parent directory that cannot be created, a corrupt file, a server
        that does not answer, or a database written by a newer rehost."""
        db = await open_database(target)
        try:
            await migrate(db)
        except BaseException as error:
            await db.close()
            if isinstance(error, sqlite3.Error) and isinstance(db, SQLiteDatabase):
                raise StorageError(db.where, storage_problem(Path(db.where), error)) from None
            raise
        return cls(db)

    @classmethod
    @asynccontextmanager
    async def opened(cls, target: str | Path | None = None) -> AsyncIterator[Store]:
        """``async with Store.opened(config.storage.target) as store:``, closed after."""
        store = await cls.open(target)
        try:
            yield store
        finally:
            await store.close()

    async def close(self) -> None:
        await self.db.close()

    async def version(self) -> int:
        return await schema_version(self.db)

    def transaction(self) -> Any:
        """``async with store.transaction():`` (see :meth:`bot.database.Database.transaction`)."""
        return self.db.transaction()

    # --- uploads ---------------------------------------------------------------------------

    async def add_upload(self, **values: Any) -> int:
        stamp = to_text(now_utc())
        values.setdefault("created_at", stamp)
        values["updated_at"] = stamp
        values.setdefault("state", ACTIVE)
        if isinstance(values.get("expires_at"), datetime):
            values["expires_at"] = to_text(values["expires_at"])
        columns = ", ".join(values)
        marks = ", ".join("?" for _ in values)
        return int(
            await self.db.fetchval(
                f"insert into uploads ({columns}) values ({marks}) returning id",
                tuple(values.values()),
            )
        )

    async def upload(self, upload_id: int) -> UploadRecord | None:
        """The upload with this id; an id beyond 64-bit integers is simply unknown."""
        if not -(2**63) <= upload_id < 2**63:
            return None
        row = await self.db.fetchrow("select * from uploads where id = ?", (upload_id,))
        return UploadRecord.from_row(row) if row else None

    async def set_state(self, upload_id: int, state: str) -> None:
        await self.db.execute(
            "update uploads set state = ?, updated_at = ? where id = ?",
            (state, to_text(now_utc()), upload_id),
        )

    async def take_state(self, upload_id: int, before: str, after: str) -> bool:
        """Move the upload from ``before`` to ``after`` if it is still ``before`` (a
        conditional update: of two processes deleting at once, one wins)."""
        changed = await self.db.execute(
            "update uploads set state = ?, updated_at = ? where id = ? and state = ?",
            (after, to_text(now_utc()), upload_id, before),
        )
        return changed > 0

    async def hand_over_delete_link(self, upload_id: int) -> UploadRecord | None:
        """Record that the owner was handed the delete link (the first time is kept); the
        upload stays active. Returns the record as it now is."""
        stamp = to_text(now_utc())
        await self.db.execute(
            "update uploads set delete_handed_at = coalesce(delete_handed_at, ?),"
            " updated_at = ? where id = ?",
            (stamp, stamp, upload_id),
        )
        return await self.upload(upload_id)

    async def reusable(
        self,
        hosts: tuple[str, ...],
        at: datetime,
        *,
        forever: bool,
        sha256: str | None = None,
        source_key: str | None = None,
    ) -> list[UploadRecord]:
        """Live uploads of the same bytes (by ``sha256`` or by ``source_key``) on these
        hosts (only never-expiring ones when ``forever``), originals first, newest first.

        An upload whose delete link was handed over is not reused: its owner may delete it
        any moment, and a reuse would lose its image with it."""
        column, value = ("sha256", sha256) if sha256 is not None else ("source_key", source_key)
        if value is None or not hosts:
            return []
        marks = ",".join("?" for _ in hosts)
        sql = (
            f"select * from uploads where {column} = ? and state = 'active'"
            f" and host in ({marks}) and (expires_at is null or expires_at > ?)"
            " and delete_handed_at is null"
            " and not exists (select 1 from uploads as original"
            "  where original.id = uploads.reused_from and original.delete_handed_at is not null)"
        )
        if forever:
            sql += " and expires_at is null"
        sql += " order by reused_from is not null, id desc"
        rows = await self.db.fetch(sql, (value, *hosts, to_text(at)))
        return [UploadRecord.from_row(row) for row in rows]

    async def live_uploads(
        self, platform: str, owner_id: str, at: datetime, limit: int = 50
    ) -> list[UploadRecord]:
        rows = await self.db.fetch(
            "select * from uploads where platform = ? and owner_id = ? and state = 'active'"
            " and (expires_at is null or expires_at > ?) order by id desc limit ?",
            (platform, owner_id, to_text(at), limit),
        )
        return [UploadRecord.from_row(row) for row in rows]

    async def history(self, owner_id: str | None = None, limit: int = 100) -> list[UploadRecord]:
        if owner_id is None:
            rows = await self.db.fetch("select * from uploads order by id desc limit ?", (limit,))
        else:
            rows = await self.db.fetch(
                "select * from uploads where owner_id = ? order by id desc limit ?",
                (owner_id, limit),
            )
        return [UploadRecord.from_row(row) for row in rows]

    async def sharing(self, upload_id: int) -> list[UploadRecord]:
        """Records of other owners that reuse this upload's links."""
        rows = await self.db.fetch("select * from uploads where reused_from = ?", (upload_id,))
        return [UploadRecord.from_row(row) for row in rows]

    async def expire_due(self, at: datetime) -> int:
        """Mark active uploads whose expiry has passed; returns how many."""
        return await self.db.execute(
            "update uploads set state = 'expired', updated_at = ?"
            " where state = 'active' and expires_at is not null and expires_at <= ?",
            (to_text(at), to_text(at)),
        )

    # --- the bot's own messages ------------------------------------------------------------

    async def add_bot_message(
        self, upload_id: int, platform: str, chat_id: str, message_id: str, visibility: str
    ) -> None:
        await self.db.execute(
            "insert into bot_messages (upload_id, platform, chat_id, message_id, visibility)"
            " values (?, ?, ?, ?, ?)",
            (upload_id, platform, chat_id, message_id, visibility),
        )

    async def bot_messages(self, upload_id: int) -> list[BotMessage]:
        rows = await self.db.fetch(
            "select upload_id, platform, chat_id, message_id, visibility from bot_messages"
            " where upload_id = ? order by id",
            (upload_id,),
        )
        return [BotMessage(**row) for row in rows]

    async def uploads_in_message(
        self, platform: str, chat_id: str, message_id: str
    ) -> list[UploadRecord]:
        """The uploads a bot message shows, in the order they were recorded for it."""
        rows = await self.db.fetch(
            "select uploads.* from bot_messages join uploads on uploads.id = bot_messages.upload_id"
            " where bot_messages.platform = ? and bot_messages.chat_id = ?"
            " and bot_messages.message_id = ? order by bot_messages.id",
            (platform, chat_id, message_id),
        )
        return [UploadRecord.from_row(row) for row in rows]

    async def hidden_uploads(self, upload_ids: Iterable[int]) -> set[int]:
        """Which of these uploads were made from a source its sender hid (a spoiler)."""
        ids = list(upload_ids)
        if not ids:
            return set()
        marks = ",".join("?" for _ in ids)
        spoiler = self.db.dialect.json_true("source", "spoiler")
        rows = await self.db.fetch(
            f"select distinct upload_id from jobs where upload_id in ({marks}) and {spoiler}",
            tuple(ids),
        )
        return {int(row["upload_id"]) for row in rows}

    # --- per-chat settings -------------------------------------------------------------------

    async def chat_settings(self, platform: str, chat_id: str) -> ChatSettings:
        return await self.own_chat_settings(platform, chat_id) or ChatSettings()

    async def own_chat_settings(self, platform: str, chat_id: str) -> ChatSettings | None:
        """The chat's settings if any were ever stored for it (None: it has none of its
        own, so a chat it belongs to, such as a thread's channel, may decide)."""
        row = await self.db.fetchrow(
            "select * from chat_settings where platform = ? and chat_id = ?",
            (platform, chat_id),
        )
        if row is None:
            return None
        hosts = json.loads(row["hosts"]) if row.get("hosts") else None
        return ChatSettings(
            auto_rehost=bool(row["auto_rehost"]),
            default_expiration=row["default_expiration"],
            hosts=tuple(hosts) if hosts else None,
            nsfw=bool(row.get("nsfw")),
        )

    async def set_chat_settings(self, platform: str, chat_id: str, settings: ChatSettings) -> None:
        await self.db.execute(
            "insert into chat_settings (platform, chat_id, auto_rehost, default_expiration,"
            " hosts, nsfw) values (?, ?, ?, ?, ?, ?) on conflict (platform, chat_id) do update"
            " set auto_rehost = excluded.auto_rehost,"
            " default_expiration = excluded.default_expiration, hosts = excluded.hosts,"
            " nsfw = excluded.nsfw",
            (
                platform,
                chat_id,
                int(settings.auto_rehost),
                settings.default_expiration,
                json.dumps(list(settings.hosts)) if settings.hosts else None,
                int(settings.nsfw),
            ),
        )

    async def auto_rehost_chats(self, platform: str) -> set[str]:
        rows = await self.db.fetch(
            "select chat_id from chat_settings where platform = ? and auto_rehost = 1",
            (platform,),
        )
        return {row["chat_id"] for row in rows}

    # --- one-time notices ----------------------------------------------------------------

    async def claim_notice(self, platform: str, owner_id: str, notice: str, occasion: str) -> bool:
        """Whether ``occasion`` is the one to tell the owner ``notice``: the first to ask,
        or the same occasion asking again (a message sent again after a failure)."""
        async with self.transaction():
            await self.db.execute(
                "insert into notices (platform, owner_id, notice, occasion, created_at)"
                " values (?, ?, ?, ?, ?) on conflict do nothing",
                (platform, owner_id, notice, occasion, to_text(now_utc())),
            )
            told = await self.db.fetchval(
                "select occasion from notices where platform = ? and owner_id = ? and notice = ?",
                (platform, owner_id, notice),
            )
        return bool(told == occasion)

    async def release_notice(
        self, platform: str, owner_id: str, notice: str, occasion: str
    ) -> None:
        """The occasion could not tell it after all: the next one may."""
        await self.db.execute(
            "delete from notices where platform = ? and owner_id = ? and notice = ?"
            " and occasion = ?",
            (platform, owner_id, notice, occasion),
        )

    # --- statistics --------------------------------------------------------------------------

    async def stats(self) -> dict[str, Any]:
        fetch = self.db.fetch
        totals = (
            await fetch(
                "select count(*) as uploads, coalesce(sum(size), 0) as bytes from uploads"
                " where reused_from is null"
            )
        )[0]
        outcomes = {
            row["outcome"]: int(row["n"])
            for row in await fetch(
                "select outcome, count(*) as n from jobs where outcome is not null group by outcome"
            )
        }
        per_host = {
            row["host"]: {"uploads": int(row["uploads"]), "bytes": int(row["bytes"])}
            for row in await fetch(
                "select host, count(*) as uploads, coalesce(sum(size), 0) as bytes"
                " from uploads where reused_from is null group by host order by host"
            )
        }
        states = {
            row["state"]: int(row["n"])
            for row in await fetch("select state, count(*) as n from uploads group by state")
        }
        handed = await self.db.fetchval(
            "select count(*) as n from uploads"
            " where state = 'active' and delete_handed_at is not null"
        )
        return {
            "uploads": int(totals["uploads"]),
            "bytes": int(totals["bytes"]),  # PostgreSQL sums to a decimal
            "dedup_hits": outcomes.get("dedup", 0),
            "failures": outcomes.get("failed", 0),
            "states": states,
            # Live uploads whose owner has the delete link to open (ImgBB-style hosts).
            "delete_links_handed_over": int(handed),
            "hosts": per_host,
            "cooldowns": await self._cooldowns(),
            "gone_before_expiry": await self._gone_before_expiry(),
        }

    async def _gone_before_expiry(self) -> dict[str, int]:
        """Per host: live uploads (not expired) whose image the last probe found gone."""
        rows = await self.db.fetch(
            "select host, count(*) as n from uploads where state = 'active'"
            " and link_state = 'gone' and reused_from is null"
            " and (expires_at is null or expires_at > ?) group by host order by host",
            (to_text(now_utc()),),
        )
        return {row["host"]: int(row["n"]) for row in rows}

    async def _cooldowns(self) -> dict[str, dict[str, Any]]:
        """Hosts resting after rate limiting: until when (epoch seconds), and why."""
        rows = await self.db.fetch(
            "select host, until, reason from host_cooldowns where until > ? order by host",
            (time.time(),),
        )
        return {row["host"]: {"until": row["until"], "reason": row["reason"]} for row in rows}
