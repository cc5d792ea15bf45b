"""The database schema: one migration per version, applied in order.

``PRAGMA user_version`` records which have run; :meth:`bot.store.Store.migrate` runs the rest,
each in its own transaction, so a database from any earlier version upgrades in place.
"""

from __future__ import annotations

from collections.abc import Callable

import sqlite_utils


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


MIGRATIONS: tuple[Callable[[sqlite_utils.Database], None], ...] = (
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
SCHEMA_VERSION = len(MIGRATIONS)
