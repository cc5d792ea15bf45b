"""SQLite storage through sqlite-utils: opening and migrating (the schema is in
``bot.schema``), the records, and the queries the core needs.

The database runs in WAL mode so a crash loses nothing committed, and every write is its
own transaction. ``PRAGMA user_version`` records which migrations have run; each migration
runs once, in a transaction, so a database from any earlier version upgrades in place.
"""

from __future__ import annotations

import json
import os
import sqlite3
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, fields
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import sqlite_utils

from bot.errors import RehostError
from bot.schema import MIGRATIONS, SCHEMA_VERSION
from bot.states import UploadState

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
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)


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

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> UploadRecord:
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


@dataclass(frozen=True)
class ChatSettings:
    auto_rehost: bool = False
    default_expiration: str | None = None
    hosts: tuple[str, ...] | None = None
    nsfw: bool = False  # every image from this chat is marked NSFW on the host


class StorageError(RehostError):
    """The database cannot be used: the path, the file, or its version is wrong.

    The message names the file and what is wrong with it, in one line; the command line
    prints it as it is and exits 2.
    """

    def __init__(self, path: Path | str, problem: str) -> None:
        super().__init__(f"{path}: {problem}")
        self.path = Path(path)
        self.problem = problem


def storage_problem(path: Path, error: BaseException) -> str:
    """What is wrong with the database at ``path``, in words, from the error opening it."""
    name = getattr(error, "sqlite_errorname", "")
    if path.is_dir():
        return "is a directory, not a database file (set [storage] path to a file)"
    if isinstance(error, OSError):
        return f"cannot be used ({error.strerror or type(error).__name__})"
    if name in ("SQLITE_NOTADB", "SQLITE_CORRUPT"):
        return f"is not a rehost database or is corrupt (sqlite: {error})"
    if name == "SQLITE_READONLY" or (path.exists() and not os.access(path, os.R_OK | os.W_OK)):
        return "cannot be written (no permission)"
    if not path.exists() and not os.access(path.parent, os.W_OK | os.X_OK):
        return f"cannot be created (no permission to write in {path.parent})"
    if name == "SQLITE_FULL":
        return "cannot be written (the disk is full)"
    return f"cannot be opened (sqlite: {error})"


def _unmakeable(directory: Path, error: OSError) -> str:
    """Why ``directory`` cannot be created: a file in the way, or the system's reason."""
    for ancestor in (directory, *directory.parents):
        if ancestor.exists():
            if not ancestor.is_dir():
                return f"its directory {directory} cannot be created: {ancestor} is a file"
            break
    why = error.strerror or type(error).__name__
    return f"its directory {directory} cannot be created ({why})"


class Store:
    def __init__(self, path: Path | str | None = None) -> None:
        """Open (creating and migrating) the database; ``None`` keeps it in memory.

        Raises :class:`StorageError` when the file cannot be used: a directory, no
        permission, a parent directory that cannot be created, a corrupt file, or a
        database written by a newer rehost.
        """
        self.path = None if path is None else Path(path)
        if self.path is None:
            self.db = sqlite_utils.Database(memory=True)
            self._open()
            return
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise StorageError(self.path, _unmakeable(self.path.parent, error)) from None
        try:
            self.db = sqlite_utils.Database(self.path)
        except (sqlite3.Error, OSError) as error:
            raise StorageError(self.path, storage_problem(self.path, error)) from None
        try:
            self.db.enable_wal()
            self.db.execute("PRAGMA synchronous=NORMAL")  # safe with WAL; fsync at checkpoints
            self._open()
        except (sqlite3.Error, OSError) as error:
            self.db.close()
            raise StorageError(self.path, storage_problem(self.path, error)) from None
        except StorageError:
            self.db.close()
            raise

    def _open(self) -> None:
        self.db.execute("PRAGMA foreign_keys=ON")
        # Rows by column name for the hand-written queries (sqlite-utils reads them too).
        self.db.conn.row_factory = sqlite3.Row
        self.migrate()

    def close(self) -> None:
        self.db.close()

    @property
    def version(self) -> int:
        row = self.db.execute("PRAGMA user_version").fetchone()
        return int(row[0])

    def migrate(self) -> None:
        current = self.version
        if current > SCHEMA_VERSION:
            raise StorageError(
                self.path or ":memory:",
                f"was written by a newer rehost (schema {current}; this version reads up to"
                f" {SCHEMA_VERSION}): upgrade rehost",
            )
        for number, migration in enumerate(MIGRATIONS[current:], start=current + 1):
            with self.db.atomic():
                migration(self.db)
                self.db.execute(f"PRAGMA user_version = {number}")

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """One write transaction, taking the write lock at once (``BEGIN IMMEDIATE``), so
        that a read-then-write (a claim) cannot interleave with another writer. Nested
        calls join the outer transaction."""
        conn = self.db.conn
        if conn.in_transaction:
            yield conn
            return
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield conn
        except BaseException:
            conn.rollback()
            raise
        conn.execute("COMMIT")

    def _rows(
        self, sql: str, params: dict[str, Any] | tuple[Any, ...] = ()
    ) -> Iterator[dict[str, Any]]:
        return self.db.query(sql, params)

    # --- uploads ---------------------------------------------------------------------------

    def add_upload(self, **values: Any) -> int:
        stamp = to_text(now_utc())
        values.setdefault("created_at", stamp)
        values["updated_at"] = stamp
        values.setdefault("state", ACTIVE)
        if isinstance(values.get("expires_at"), datetime):
            values["expires_at"] = to_text(values["expires_at"])
        with self.db.atomic():
            table = self.db.table("uploads")
            table.insert(values)
            return _last_pk(table)

    def upload(self, upload_id: int) -> UploadRecord | None:
        """The upload with this id; an id beyond SQLite's integers is simply unknown."""
        if not -(2**63) <= upload_id < 2**63:
            return None
        rows = list(self._rows("select * from uploads where id = ?", (upload_id,)))
        return UploadRecord.from_row(rows[0]) if rows else None

    def set_state(self, upload_id: int, state: str) -> None:
        with self.db.atomic():
            self.db.execute(
                "update uploads set state = ?, updated_at = ? where id = ?",
                (state, to_text(now_utc()), upload_id),
            )

    def hand_over_delete_link(self, upload_id: int) -> UploadRecord | None:
        """Record that the owner was handed the delete link (the first time is kept); the
        upload stays active. Returns the record as it now is."""
        stamp = to_text(now_utc())
        with self.db.atomic():
            self.db.execute(
                "update uploads set delete_handed_at = coalesce(delete_handed_at, ?),"
                " updated_at = ? where id = ?",
                (stamp, stamp, upload_id),
            )
        return self.upload(upload_id)

    def reusable(
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
        if value is None:
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
        rows = self._rows(sql, (value, *hosts, to_text(at)))
        return [UploadRecord.from_row(row) for row in rows]

    def live_uploads(
        self, platform: str, owner_id: str, at: datetime, limit: int = 50
    ) -> list[UploadRecord]:
        rows = self._rows(
            "select * from uploads where platform = ? and owner_id = ? and state = 'active'"
            " and (expires_at is null or expires_at > ?) order by id desc limit ?",
            (platform, owner_id, to_text(at), limit),
        )
        return [UploadRecord.from_row(row) for row in rows]

    def history(self, owner_id: str | None = None, limit: int = 100) -> list[UploadRecord]:
        if owner_id is None:
            rows = self._rows("select * from uploads order by id desc limit ?", (limit,))
        else:
            rows = self._rows(
                "select * from uploads where owner_id = ? order by id desc limit ?",
                (owner_id, limit),
            )
        return [UploadRecord.from_row(row) for row in rows]

    def sharing(self, upload_id: int) -> list[UploadRecord]:
        """Records of other owners that reuse this upload's links."""
        rows = self._rows("select * from uploads where reused_from = ?", (upload_id,))
        return [UploadRecord.from_row(row) for row in rows]

    def expire_due(self, at: datetime) -> int:
        """Mark active uploads whose expiry has passed; returns how many."""
        with self.db.atomic():
            cursor = self.db.execute(
                "update uploads set state = 'expired', updated_at = ?"
                " where state = 'active' and expires_at is not null and expires_at <= ?",
                (to_text(at), to_text(at)),
            )
            return int(cursor.rowcount)

    # --- the bot's own messages ------------------------------------------------------------

    def add_bot_message(
        self, upload_id: int, platform: str, chat_id: str, message_id: str, visibility: str
    ) -> None:
        with self.db.atomic():
            self.db.table("bot_messages").insert(
                {
                    "upload_id": upload_id,
                    "platform": platform,
                    "chat_id": chat_id,
                    "message_id": message_id,
                    "visibility": visibility,
                }
            )

    def bot_messages(self, upload_id: int) -> list[BotMessage]:
        rows = self._rows(
            "select upload_id, platform, chat_id, message_id, visibility from bot_messages"
            " where upload_id = ? order by id",
            (upload_id,),
        )
        return [BotMessage(**row) for row in rows]

    def uploads_in_message(
        self, platform: str, chat_id: str, message_id: str
    ) -> list[UploadRecord]:
        """The uploads a bot message shows, in the order they were recorded for it."""
        rows = self._rows(
            "select uploads.* from bot_messages join uploads on uploads.id = bot_messages.upload_id"
            " where bot_messages.platform = ? and bot_messages.chat_id = ?"
            " and bot_messages.message_id = ? order by bot_messages.id",
            (platform, chat_id, message_id),
        )
        return [UploadRecord.from_row(row) for row in rows]

    def hidden_uploads(self, upload_ids: Iterable[int]) -> set[int]:
        """Which of these uploads were made from a source its sender hid (a spoiler)."""
        ids = list(upload_ids)
        if not ids:
            return set()
        marks = ",".join("?" for _ in ids)
        rows = self._rows(
            f"select distinct upload_id from jobs where upload_id in ({marks})"
            " and json_extract(source, '$.spoiler') = 1",
            tuple(ids),
        )
        return {int(row["upload_id"]) for row in rows}

    # --- per-chat settings -------------------------------------------------------------------

    def chat_settings(self, platform: str, chat_id: str) -> ChatSettings:
        return self.own_chat_settings(platform, chat_id) or ChatSettings()

    def own_chat_settings(self, platform: str, chat_id: str) -> ChatSettings | None:
        """The chat's settings if any were ever stored for it (None: it has none of its
        own, so a chat it belongs to, such as a thread's channel, may decide)."""
        rows = list(
            self._rows(
                "select * from chat_settings where platform = ? and chat_id = ?",
                (platform, chat_id),
            )
        )
        if not rows:
            return None
        row = rows[0]
        hosts = json.loads(row["hosts"]) if row.get("hosts") else None
        return ChatSettings(
            auto_rehost=bool(row["auto_rehost"]),
            default_expiration=row["default_expiration"],
            hosts=tuple(hosts) if hosts else None,
            nsfw=bool(row.get("nsfw")),
        )

    def set_chat_settings(self, platform: str, chat_id: str, settings: ChatSettings) -> None:
        with self.db.atomic():
            self.db.table("chat_settings").upsert(
                {
                    "platform": platform,
                    "chat_id": chat_id,
                    "auto_rehost": int(settings.auto_rehost),
                    "default_expiration": settings.default_expiration,
                    "hosts": json.dumps(list(settings.hosts)) if settings.hosts else None,
                    "nsfw": int(settings.nsfw),
                },
                pk=("platform", "chat_id"),
            )

    def auto_rehost_chats(self, platform: str) -> set[str]:
        rows = self._rows(
            "select chat_id from chat_settings where platform = ? and auto_rehost = 1",
            (platform,),
        )
        return {row["chat_id"] for row in rows}

    # --- one-time notices ----------------------------------------------------------------

    def claim_notice(self, platform: str, owner_id: str, notice: str, occasion: str) -> bool:
        """Whether ``occasion`` is the one to tell the owner ``notice``: the first to ask,
        or the same occasion asking again (a message sent again after a failure)."""
        with self.transaction() as conn:
            conn.execute(
                "insert or ignore into notices (platform, owner_id, notice, occasion, created_at)"
                " values (?, ?, ?, ?, ?)",
                (platform, owner_id, notice, occasion, to_text(now_utc())),
            )
            row = conn.execute(
                "select occasion from notices where platform = ? and owner_id = ? and notice = ?",
                (platform, owner_id, notice),
            ).fetchone()
        return bool(row["occasion"] == occasion)

    def release_notice(self, platform: str, owner_id: str, notice: str, occasion: str) -> None:
        """The occasion could not tell it after all: the next one may."""
        with self.transaction() as conn:
            conn.execute(
                "delete from notices where platform = ? and owner_id = ? and notice = ?"
                " and occasion = ?",
                (platform, owner_id, notice, occasion),
            )

    # --- statistics --------------------------------------------------------------------------

    def stats(self) -> dict[str, Any]:
        totals = next(
            self._rows(
                "select count(*) as uploads, coalesce(sum(size), 0) as bytes from uploads"
                " where reused_from is null"
            )
        )
        outcomes = {
            row["outcome"]: row["n"]
            for row in self._rows(
                "select outcome, count(*) as n from jobs where outcome is not null group by outcome"
            )
        }
        per_host = {
            row["host"]: {"uploads": row["uploads"], "bytes": row["bytes"]}
            for row in self._rows(
                "select host, count(*) as uploads, coalesce(sum(size), 0) as bytes"
                " from uploads where reused_from is null group by host order by host"
            )
        }
        states = {
            row["state"]: row["n"]
            for row in self._rows("select state, count(*) as n from uploads group by state")
        }
        handed = next(
            self._rows(
                "select count(*) as n from uploads"
                " where state = 'active' and delete_handed_at is not null"
            )
        )
        return {
            "uploads": totals["uploads"],
            "bytes": totals["bytes"],
            "dedup_hits": outcomes.get("dedup", 0),
            "failures": outcomes.get("failed", 0),
            "states": states,
            # Live uploads whose owner has the delete link to open (ImgBB-style hosts).
            "delete_links_handed_over": handed["n"],
            "hosts": per_host,
            "cooldowns": self._cooldowns(),
            "gone_before_expiry": self._gone_before_expiry(),
        }

    def _gone_before_expiry(self) -> dict[str, int]:
        """Per host: live uploads (not expired) whose image the last probe found gone."""
        rows = self._rows(
            "select host, count(*) as n from uploads where state = 'active'"
            " and link_state = 'gone' and reused_from is null"
            " and (expires_at is null or expires_at > ?) group by host order by host",
            (to_text(now_utc()),),
        )
        return {row["host"]: int(row["n"]) for row in rows}

    def _cooldowns(self) -> dict[str, dict[str, Any]]:
        """Hosts resting after rate limiting: until when (epoch seconds), and why."""
        rows = self._rows(
            "select host, until, reason from host_cooldowns where until > ? order by host",
            (time.time(),),
        )
        return {row["host"]: {"until": row["until"], "reason": row["reason"]} for row in rows}


def _last_pk(table: sqlite_utils.db.Table) -> int:
    key = table.last_pk
    assert key is not None
    return int(key)
