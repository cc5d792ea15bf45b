"""The database schema, the same for SQLite and PostgreSQL, and its migrations.

A new database (either engine) is created from :data:`SNAPSHOT`, the schema as it was at
version 12, then every later migration in :data:`MIGRATIONS` runs, as portable SQL with the
column types of :mod:`bot.dialects`. A SQLite database from before version 12 first
catches up through :data:`SQLITE_HISTORY`, the sqlite-utils migrations that built it,
so it upgrades in place; a test checks that both paths give the same schema.

Migrations run at start in one transaction under a lock (SQLite's write lock, or an
advisory lock on PostgreSQL), so several processes starting together migrate once.
"""

from __future__ import annotations

from collections.abc import Callable

import sqlite_utils

from bot.database import Database, SQLiteDatabase
from bot.errors import StorageError


def _v1_first_schema(db: sqlite_utils.Database) -> None:
    db.table("uploads").create(
        {
            "id": int,
            "platform": str,
            "chat_id": str,
            "message_id": str,
            "owner_id": str,
            "sha256": str,
            "size": int,
            "mime": str,
            "host": str,
            "dialect": str,
            "host_image_id": str,
            "viewer_url": str,
            "url": str,
            "delete_url": str,
            "expires_at": str,
            "created_at": str,
            "state": str,
        },
        pk="id",
        not_null={"platform", "owner_id", "sha256", "host", "viewer_url", "state"},
    )
    db.table("uploads").create_index(["sha256"])
    db.table("chat_settings").create(
        {"platform": str, "chat_id": str, "auto_rehost": int, "default_expiration": str},
        pk=("platform", "chat_id"),
    )


def _v2_jobs_and_replies(db: sqlite_utils.Database) -> None:
    uploads = db.table("uploads")
    uploads.add_column("updated_at", str)
    # A dedup hit by another owner reuses the public links of this upload, never its delete link.
    uploads.add_column("reused_from", int)
    uploads.create_index(["owner_id", "state"])
    settings = db.table("chat_settings")
    settings.add_column("hosts", str)  # JSON list overriding upload.hosts for this chat
    db.table("bot_messages").create(
        {
            "id": int,
            "upload_id": int,
            "platform": str,
            "chat_id": str,
            "message_id": str,
            "visibility": str,  # "public" or "private"
        },
        pk="id",
        foreign_keys=[("upload_id", "uploads", "id")],
    )
    db.table("bot_messages").create_index(["upload_id"])
    db.table("jobs").create(
        {
            "id": int,
            "batch": str,  # one chat message (or album): its sources are answered together
            "position": int,
            "platform": str,
            "chat_id": str,
            "message_id": str,
            "owner_id": str,
            "source": str,  # JSON: how to fetch the bytes again after a crash
            "expiration": str,
            "state": str,  # pending, done, failed, abandoned
            "outcome": str,  # uploaded, dedup, failed
            "upload_id": int,
            "error": str,
            "attempts": int,
            "created_at": str,
            "updated_at": str,
        },
        pk="id",
    )
    db.table("jobs").create_index(["state"])
    db.table("jobs").create_index(["batch"])


def _v3_source_keys(db: sqlite_utils.Database) -> None:
    # A platform's stable id for a file's content (Telegram's file_unique_id): a repeat is
    # recognised before downloading anything.
    uploads = db.table("uploads")
    uploads.add_column("source_key", str)
    uploads.create_index(["source_key"])


def _v4_batches_leases_outbox(db: sqlite_utils.Database) -> None:
    # One row per thing the platform asked for (a message, an album, a command), so that
    # it is answered once, when all its jobs are finished. Times in epoch seconds (REAL).
    db.table("batches").create(
        {
            "id": str,  # derived from the platform event, so a replayed event adds nothing
            "platform": str,
            "chat_id": str,
            "owner_id": str,
            "owner_name": str,
            "message_id": str,  # the source message the answer replies to
            "chat_title": str,  # None: the chat is the owner's private chat
            "private_in_place": int,  # the owner's private part can be shown in the chat
            "context": str,  # JSON the adapter keeps with it (an interaction token...)
            "skipped": str,  # JSON list of attachment names that are not images
            "answer": str,  # "outbox", or "caller": returned to whoever ran it
            "ready_at": float,  # jobs wait until then (an album gathering its items)
            "wanted": int,  # 0: an album seen before anyone asked for it
            "state": str,
            "created_at": str,
        },
        pk="id",
    )
    db.table("batches").create_index(["state", "ready_at"])
    jobs = db.table("jobs")
    jobs.add_column("item_key", str)  # unique within the batch: a replay adds nothing
    jobs.add_column("lease_owner", str)
    jobs.add_column("lease_until", float)
    jobs.create_index(["batch", "item_key"], unique=True)
    jobs.create_index(["state", "owner_id"])
    # Jobs left pending by an older version are answered through the outbox like new ones.
    db.execute(
        "insert into batches (id, platform, chat_id, owner_id, owner_name, message_id,"
        " chat_title, private_in_place, context, skipped, answer, ready_at, wanted, state,"
        " created_at)"
        " select batch, platform, chat_id, owner_id, '', message_id,"
        " case when chat_id = owner_id then null else '' end, 0, '{}', '[]', 'outbox', 0, 1,"
        " 'open', min(created_at) from jobs where state = 'pending' group by batch"
    )
    db.table("outbox").create(
        {
            "id": int,
            "batch": str,
            "platform": str,
            "seq": int,  # the order of a batch's messages
            "visibility": str,
            "chat_id": str,  # where it goes; None: the owner's direct messages
            "owner_id": str,
            "payload": str,  # JSON: what the message says (see bot.replyplan)
            "state": str,
            "attempts": int,
            "not_before": float,  # a platform's flood wait
            "lease_owner": str,
            "lease_until": float,
            "sent_message_id": str,
            "outcome": str,  # sent, unreachable (the owner cannot be messaged), failed
            "created_at": str,
            "updated_at": str,
        },
        pk="id",
    )
    db.table("outbox").create_index(["batch", "seq"], unique=True)
    db.table("outbox").create_index(["state", "platform"])
    # Platform updates, recorded before the platform is told they were received.
    db.table("inbox").create(
        {
            "platform": str,
            "update_id": int,
            "payload": str,
            "state": str,  # new, done
            "received_at": str,
        },
        pk=("platform", "update_id"),
    )
    db.table("inbox").create_index(["platform", "state"])


def _v5_host_cooldowns(db: sqlite_utils.Database) -> None:
    # A host that answered "flooding" or "rate limit" is left alone until ``until`` (epoch
    # seconds), by every process sharing this database.
    db.table("host_cooldowns").create(
        {"host": str, "until": float, "reason": str, "since": str}, pk="host"
    )


def _v6_delete_link_handed_over(db: sqlite_utils.Database) -> None:
    # ImgBB-style hosts have no delete API: the owner is handed the link to open and
    # confirm. When that happened (first time); the upload stays active until the image is
    # known to be gone.
    db.table("uploads").add_column("delete_handed_at", str)


def _v7_link_checks(db: sqlite_utils.Database) -> None:
    # What the last probe of the image's direct link found (alive, gone), and when.
    uploads = db.table("uploads")
    uploads.add_column("link_state", str)
    uploads.add_column("checked_at", str)


def _v8_host_moves(db: sqlite_utils.Database) -> None:
    # ``rehost migrate``: an upload moved off a host, and whether its old copy is deleted
    # yet (the move and this row are one transaction; deleting the old copy comes after).
    db.table("host_moves").create(
        {
            "upload_id": int,
            "from_host": str,
            "from_dialect": str,
            "old_delete_url": str,
            "to_host": str,
            "old_deleted": int,
            "moved_at": str,
        },
        pk="upload_id",
    )


def _v9_job_notes(db: sqlite_utils.Database) -> None:
    # What the answer should say about how an image was handled (converted to JPEG...).
    db.table("jobs").add_column("note", str)


def _v10_notices(db: sqlite_utils.Database) -> None:
    # Hints a user is given once (how to keep a Telegram photo's original): who was told
    # what, on which occasion (an outbox row: sending that row again tells it again).
    db.table("notices").create(
        {"platform": str, "owner_id": str, "notice": str, "occasion": str, "created_at": str},
        pk=("platform", "owner_id", "notice"),
    )


def _v11_backfills(db: sqlite_utils.Database) -> None:
    # A chat's earlier messages rehosted on request, resumably (see bot.backfills): the
    # backfill, held by one runner at a time with a lease, and one item per message with
    # images, numbered oldest first (``batch``: its request once fed to the queue).
    db.table("backfills").create(
        {
            "id": int,
            "platform": str,
            "chat_id": str,
            "requested_by": str,
            "message_limit": int,  # how many earlier messages to read
            "before_id": str,  # read the messages before this one
            "state": str,  # reading, running, reporting, done
            "stop_requested": int,
            "progress_message_id": str,  # the message edited as it goes
            "scanned": int,  # messages read
            "skipped": int,  # messages with images rehosted before
            "summary_sent": int,  # summary parts posted
            "context": str,  # JSON the adapter keeps with it
            "lease_owner": str,
            "lease_until": float,
            "created_at": str,
            "updated_at": str,
        },
        pk="id",
    )
    db.table("backfills").create_index(["platform", "state"])
    db.table("backfill_items").create(
        {
            "backfill_id": int,
            "position": int,
            "message_id": str,
            "owner_id": str,
            "owner_name": str,
            "sources": str,  # JSON list of SourceRef
            "images": int,
            "batch": str,
        },
        pk=("backfill_id", "position"),
    )
    # Whether a message was rehosted already: the batches answering it.
    db.table("batches").create_index(["platform", "chat_id", "message_id"])


def _v12_nsfw_chats(db: sqlite_utils.Database) -> None:
    # A chat whose images all go to the hosts marked NSFW.
    db.table("chat_settings").add_column("nsfw", int)


SQLITE_HISTORY: tuple[Callable[[sqlite_utils.Database], None], ...] = (
    _v1_first_schema,
    _v2_jobs_and_replies,
    _v3_source_keys,
    _v4_batches_leases_outbox,
    _v5_host_cooldowns,
    _v6_delete_link_handed_over,
    _v7_link_checks,
    _v8_host_moves,
    _v9_job_notes,
    _v10_notices,
    _v11_backfills,
    _v12_nsfw_chats,
)
SNAPSHOT_VERSION = len(SQLITE_HISTORY)

# The schema at version 12, for a new database (what SQLITE_HISTORY builds, column for
# column; the comments on the columns are in the history above).
SNAPSHOT = (
    """create table uploads (id {id}, platform {text} not null, chat_id {text},
    message_id {text}, owner_id {text} not null, sha256 {text} not null, size {int},
    mime {text}, host {text} not null, dialect {text}, host_image_id {text},
    viewer_url {text} not null, url {text}, delete_url {text}, expires_at {text},
    created_at {text}, state {text} not null, updated_at {text}, reused_from {int},
    source_key {text}, delete_handed_at {text}, link_state {text}, checked_at {text})""",
    "create index idx_uploads_sha256 on uploads (sha256)",
    "create index idx_uploads_owner_id_state on uploads (owner_id, state)",
    "create index idx_uploads_source_key on uploads (source_key)",
    """create table chat_settings (platform {text}, chat_id {text}, auto_rehost {int},
    default_expiration {text}, hosts {text}, nsfw {int}, primary key (platform, chat_id))""",
    """create table bot_messages (id {id}, upload_id {int} references uploads (id),
    platform {text}, chat_id {text}, message_id {text}, visibility {text})""",
    "create index idx_bot_messages_upload_id on bot_messages (upload_id)",
    """create table jobs (id {id}, batch {text}, position {int}, platform {text},
    chat_id {text}, message_id {text}, owner_id {text}, source {text}, expiration {text},
    state {text}, outcome {text}, upload_id {int}, error {text}, attempts {int},
    created_at {text}, updated_at {text}, item_key {text}, lease_owner {text},
    lease_until {real}, note {text})""",
    "create index idx_jobs_state on jobs (state)",
    "create index idx_jobs_batch on jobs (batch)",
    "create unique index idx_jobs_batch_item_key on jobs (batch, item_key)",
    "create index idx_jobs_state_owner_id on jobs (state, owner_id)",
    """create table batches (id {text} primary key, platform {text}, chat_id {text},
    owner_id {text}, owner_name {text}, message_id {text}, chat_title {text},
    private_in_place {int}, context {text}, skipped {text}, answer {text}, ready_at {real},
    wanted {int}, state {text}, created_at {text})""",
    "create index idx_batches_state_ready_at on batches (state, ready_at)",
    "create index idx_batches_platform_chat_id_message_id on batches"
    " (platform, chat_id, message_id)",
    """create table outbox (id {id}, batch {text}, platform {text}, seq {int},
    visibility {text}, chat_id {text}, owner_id {text}, payload {text}, state {text},
    attempts {int}, not_before {real}, lease_owner {text}, lease_until {real},
    sent_message_id {text}, outcome {text}, created_at {text}, updated_at {text})""",
    "create unique index idx_outbox_batch_seq on outbox (batch, seq)",
    "create index idx_outbox_state_platform on outbox (state, platform)",
    """create table inbox (platform {text}, update_id {int}, payload {text}, state {text},
    received_at {text}, primary key (platform, update_id))""",
    "create index idx_inbox_platform_state on inbox (platform, state)",
    "create table host_cooldowns (host {text} primary key, until {real}, reason {text},"
    " since {text})",
    """create table host_moves (upload_id {int} primary key, from_host {text},
    from_dialect {text}, old_delete_url {text}, to_host {text}, old_deleted {int},
    moved_at {text})""",
    """create table notices (platform {text}, owner_id {text}, notice {text},
    occasion {text}, created_at {text}, primary key (platform, owner_id, notice))""",
    """create table backfills (id {id}, platform {text}, chat_id {text},
    requested_by {text}, message_limit {int}, before_id {text}, state {text},
    stop_requested {int}, progress_message_id {text}, scanned {int}, skipped {int},
    summary_sent {int}, context {text}, lease_owner {text}, lease_until {real},
    created_at {text}, updated_at {text})""",
    "create index idx_backfills_platform_state on backfills (platform, state)",
    """create table backfill_items (backfill_id {int}, position {int}, message_id {text},
    owner_id {text}, owner_name {text}, sources {text}, images {int}, batch {text},
    primary key (backfill_id, position))""",
)

# Migrations after the snapshot, one tuple of portable statements per version.
MIGRATIONS: tuple[tuple[str, ...], ...] = (
    # v13: sharing work across processes.
    (
        # When a job was counted against its owner's rate limit (epoch seconds; null: not
        # counted), so the limit holds across every process sharing the database.
        "alter table jobs add column counted_at {real}",
        "create index idx_jobs_platform_owner_id_counted_at on jobs"
        " (platform, owner_id, counted_at)",
        # A lease on a key (the sha256 of bytes being uploaded): one process uploads, the
        # others wait for its record and reuse it.
        "create table key_leases (key {text} primary key, holder {text}, until {real})",
        # Discord identifies, one per interval per max_concurrency bucket, across shards.
        "create table identify_buckets (bucket {int} primary key, next_at {real})",
        "create index idx_uploads_reused_from on uploads (reused_from)",
        "create index idx_bot_messages_platform_chat_id_message_id on bot_messages"
        " (platform, chat_id, message_id)",
    ),
    # v14: claims that cost the same however long the queue (see bot.queue).
    (
        # Start-time fair queuing: each job's place in line, and per platform the place of
        # the last job claimed (a newcomer's first job goes in there).
        "alter table jobs add column fair_key {real}",
        "update jobs set fair_key = id where state in ('pending', 'held')",
        "create table fair_clocks (platform {text} primary key, clock {real})",
        "create index idx_jobs_state_fair_key on jobs (state, fair_key)",
        "create index idx_jobs_state_owner_id_fair_key on jobs (state, owner_id, fair_key)",
        "create index idx_jobs_batch_state on jobs (batch, state)",
        "create index idx_jobs_state_lease_until on jobs (state, lease_until)",
        # What the sweep, a stopping worker and a re-rendered post look for.
        "create index idx_jobs_lease_owner on jobs (lease_owner)",
        "create index idx_jobs_upload_id on jobs (upload_id)",
        "create index idx_uploads_state_expires_at on uploads (state, expires_at)",
        "create index idx_inbox_state_received_at on inbox (state, received_at)",
    ),
    # v15: communities (a Discord server, a Telegram group) and their managers' settings,
    # moderators' takedowns, and what quotas count.
    (
        # One row per community: null means the operator's default. ``hosts`` is a JSON list
        # of configured host names; ``own_host`` the community's own endpoint and key,
        # encrypted (never shown back); expiries are labels such as "1d".
        "create table community_settings (platform {text} not null,"
        " community_id {text} not null, hosts {text}, own_host {text},"
        " default_expiration {text}, max_expiration {text}, nsfw {int}, language {text},"
        " quota_images_per_member {int}, quota_bytes_per_day {int},"
        " takedown_on_source_delete {int}, updated_at {text},"
        " primary key (platform, community_id))",
        # Every change a manager made, with who made it (a key's value is never stored).
        "create table settings_changes (id {id}, platform {text} not null,"
        " community_id {text} not null, actor_id {text} not null, actor_name {text},"
        " setting {text} not null, value {text}, changed_at {text} not null)",
        "create index idx_settings_changes_community on settings_changes"
        " (platform, community_id, changed_at)",
        # Every takedown, with the moderator who did it.
        "create table takedowns (id {id}, upload_id {int} not null, platform {text} not null,"
        " community_id {text}, chat_id {text}, moderator_id {text} not null,"
        " moderator_name {text}, reason {text}, host_deleted {int}, created_at {text} not null)",
        "create index idx_takedowns_upload_id on takedowns (upload_id)",
        # The community each piece of work belongs to (null: a private chat).
        "alter table batches add column community_id {text}",
        "alter table jobs add column community_id {text}",
        "alter table uploads add column community_id {text}",
        "create index idx_jobs_community_owner_counted on jobs"
        " (platform, community_id, owner_id, counted_at)",
        "create index idx_jobs_community_counted on jobs (platform, community_id, counted_at)",
        "create index idx_uploads_community_created on uploads"
        " (platform, community_id, created_at)",
    ),
    # v16: the language each user last used (a catalogue name such as "es"), for what the
    # bot sends them where the platform gives none (see bot.userlanguages).
    (
        "create table user_languages (platform {text} not null, user_id {text} not null,"
        " language {text} not null, updated_at {text} not null,"
        " primary key (platform, user_id))",
    ),
    # v17: the communities where each user was last seen as an admin, for the groups
    # Telegram's /settings offers in a private chat (see bot.communityadmins).
    (
        "create table community_admins (platform {text} not null,"
        " community_id {text} not null, user_id {text} not null, title {text} not null,"
        " seen_at {text} not null, primary key (platform, community_id, user_id))",
        "create index idx_community_admins_user_seen on community_admins"
        " (platform, user_id, seen_at)",
    ),
)
SCHEMA_VERSION = SNAPSHOT_VERSION + len(MIGRATIONS)

MIGRATION_LOCK = "rehost schema migration"


async def migrate(db: Database) -> int:
    """Bring the database to :data:`SCHEMA_VERSION`; returns the version it had."""
    async with db.transaction():
        await db.lock_key(MIGRATION_LOCK)
        current = await schema_version(db)
        if current > SCHEMA_VERSION:
            raise StorageError(
                db.where,
                f"was written by a newer rehost (schema {current}; this version reads up to"
                f" {SCHEMA_VERSION}): upgrade rehost",
            )
        version = current
        if version == 0:
            for statement in SNAPSHOT:
                await db.execute(db.dialect.ddl(statement))
            version = SNAPSHOT_VERSION
        elif version < SNAPSHOT_VERSION:
            assert isinstance(db, SQLiteDatabase)  # only SQLite databases are that old
            await db.call(lambda: _catch_up(db, current))
            version = SNAPSHOT_VERSION
        for number, statements in enumerate(MIGRATIONS, start=SNAPSHOT_VERSION + 1):
            if number <= version:
                continue
            for statement in statements:
                await db.execute(db.dialect.ddl(statement))
            version = number
        if version != current:
            await _set_version(db, version)
    return current


def _catch_up(db: SQLiteDatabase, current: int) -> None:
    assert db.sqlite is not None
    for migration in SQLITE_HISTORY[current:]:
        migration(db.sqlite)


async def schema_version(db: Database) -> int:
    if db.dialect.postgres:
        await db.execute("create table if not exists schema_version (version bigint not null)")
        value = await db.fetchval("select max(version) from schema_version")
        return int(value or 0)
    return int(await db.fetchval("pragma user_version"))


async def _set_version(db: Database, version: int) -> None:
    if db.dialect.postgres:
        await db.execute("delete from schema_version")
        await db.execute("insert into schema_version (version) values (?)", (version,))
    else:
        await db.execute(f"pragma user_version = {int(version)}")
