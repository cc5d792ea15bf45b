"""Messages in the emulated Discord: create, edit and delete, with Discord's validation.

Shared by the channel routes and the interaction/webhook routes. Every change is also
announced on the gateway (MESSAGE_CREATE / _UPDATE / _DELETE, one MESSAGE_DELETE_BULK for
a bulk delete) unless the message is ephemeral, and links in a message without
SUPPRESS_EMBEDS are handed to the link-preview crawler (:meth:`World.note_unfurl`), as
Discord does in guilds and DMs alike.
"""

from __future__ import annotations

import copy
import re
import time
from collections.abc import Iterable
from typing import Any

from sandbox.discord_model import (
    DIRECT_MESSAGES,
    EPHEMERAL,
    GUILD_MESSAGES,
    LOADING,
    SUPPRESS_EMBEDS,
    ApiError,
    Channel,
    Json,
    Upload,
    World,
    invalid_form,
    iso_time,
    now_iso,
    snowflake_seconds,
)

MAX_CONTENT = 2000
MAX_EMBEDS = 10
# Bulk delete: 2 to 100 ids a request, none older than two weeks (Discord's limits).
BULK_DELETE_MIN, BULK_DELETE_MAX = 2, 100
BULK_DELETE_MAX_AGE = 14 * 24 * 3600
_MENTION = re.compile(r"<@!?(\d+)>")
# A URL Discord would preview: not wrapped in <...>, which is the documented opt-out.
_URL = re.compile(r"<?https?://[^\s<>]+>?")


def content_urls(content: str) -> list[str]:
    """The links in ``content`` that get a preview (those not written as ``<url>``)."""
    urls = []
    for match in _URL.finditer(content):
        text = match.group(0)
        if text.startswith("<") and text.endswith(">"):
            continue
        url = text.strip("<>")
        if url.endswith(")") and "(" not in url:  # [label](url) markdown
            url = url[:-1]
        urls.append(url)
    return urls


def _validate(content: str, embeds: list[Any]) -> None:
    if len(content) > MAX_CONTENT:
        raise invalid_form(
            "content", "BASE_TYPE_MAX_LENGTH", f"Must be {MAX_CONTENT} or fewer in length."
        )
    if len(embeds) > MAX_EMBEDS:
        raise invalid_form(
            "embeds", "BASE_TYPE_MAX_LENGTH", f"Must be {MAX_EMBEDS} or fewer in length."
        )


def _require_not_empty(msg: Json) -> None:
    parts = (
        "content",
        "embeds",
        "attachments",
        "components",
        "poll",
        "sticker_items",
        "message_snapshots",
    )
    if not any(msg.get(part) for part in parts):
        raise ApiError(400, 50006, "Cannot send an empty message")


def _store_upload(world: World, channel_id: int, upload: Upload, meta: Json) -> Json:
    if len(upload.data) > world.attachment_size_limit:
        raise ApiError(413, 40005, "Request entity too large")
    return world.cdn.add(
        world.ids.next(),
        channel_id,
        upload.data,
        str(meta.get("filename") or upload.filename),
        upload.content_type,
        description=meta.get("description"),
    )


def resolve_attachments(
    world: World, channel_id: int, body: Json, uploads: list[Upload], existing: list[Json]
) -> list[Json]:
    """Kept attachments (listed by id in ``attachments``) followed by the new uploads."""
    by_index = {u.index: u for u in uploads}
    listed = body.get("attachments")
    kept = list(existing) if listed is None else []
    old = {a["id"]: a for a in existing}
    used: set[int | None] = set()
    new: list[Json] = []
    for i, meta in enumerate(listed or []):
        key = str(meta.get("id"))
        if key in old:
            kept.append(old[key])
            continue
        upload = by_index.get(int(key)) if key.isdigit() else None
        if upload is None:
            raise invalid_form(f"attachments.{i}.id", "ATTACHMENT_NOT_FOUND", "Unknown upload")
        used.add(upload.index)
        new.append(_store_upload(world, channel_id, upload, meta))
    for upload in uploads:
        if upload.index not in used:
            new.append(_store_upload(world, channel_id, upload, {}))
    return kept + new


def _mentions(world: World, content: str) -> list[Json]:
    ids = {int(m) for m in _MENTION.findall(content)}
    return [world.users[i].payload() for i in sorted(ids) if i in world.users]


def create_message(
    world: World,
    channel: Channel,
    body: Json,
    uploads: list[Upload],
    *,
    author_id: int,
    allowed_flags: int,
    forced_flags: int = 0,
    extra: Json | None = None,
    allow_empty: bool = False,
    message_id: int | None = None,
) -> Json:
    """Validate ``body`` like Discord and store the new message; returns the stored dict.
    ``message_id``: an id chosen by Discord (a forum post's first message has its thread's)."""
    content = body.get("content") or ""
    embeds = list(body.get("embeds") or [])
    _validate(content, embeds)
    if message_id is None:
        message_id = world.ids.next()
    msg: Json = {
        "id": str(message_id),
        "channel_id": str(channel.id),
        "author": world.users[author_id].payload(),
        "content": content,
        "timestamp": iso_time(message_id),
        "edited_timestamp": None,
        "tts": bool(body.get("tts", False)),
        "mention_everyone": False,
        "mentions": _mentions(world, content),
        "mention_roles": [],
        "attachments": resolve_attachments(world, channel.id, body, uploads, []),
        "embeds": embeds,
        "pinned": False,
        "type": 0,
        "flags": (int(body.get("flags") or 0) & allowed_flags) | forced_flags,
        "components": list(body.get("components") or []),
    }
    if body.get("poll"):
        msg["poll"] = body["poll"]
    msg.update(extra or {})
    if not allow_empty:
        _require_not_empty(msg)
    world.messages[message_id] = msg
    world.channel_log.setdefault(channel.id, []).append(message_id)
    _crawl_links(world, msg)
    return msg


def edit_message(world: World, msg: Json, body: Json, uploads: list[Upload]) -> Json:
    """Apply a PATCH body: only fields present change; flags may only toggle SUPPRESS_EMBEDS."""
    updated = copy.deepcopy(msg)
    if "content" in body:
        updated["content"] = body["content"] or ""
        updated["mentions"] = _mentions(world, updated["content"])
    if "embeds" in body:
        updated["embeds"] = list(body["embeds"] or [])
    if "components" in body:
        updated["components"] = list(body["components"] or [])
    if "flags" in body and body["flags"] is not None:
        wanted = int(body["flags"]) & SUPPRESS_EMBEDS
        updated["flags"] = (updated["flags"] & ~SUPPRESS_EMBEDS) | wanted
    if "attachments" in body or uploads:
        channel_id = int(msg["channel_id"])
        updated["attachments"] = resolve_attachments(
            world, channel_id, body, uploads, msg["attachments"]
        )
    _validate(updated["content"], updated["embeds"])
    updated["flags"] &= ~LOADING
    _require_not_empty(updated)
    updated["edited_timestamp"] = now_iso()
    # Previews are fetched again only when the text changed or suppression was lifted.
    recrawl = updated["content"] != msg["content"] or (
        msg["flags"] & SUPPRESS_EMBEDS and not updated["flags"] & SUPPRESS_EMBEDS
    )
    msg.clear()
    msg.update(updated)
    if recrawl:
        _crawl_links(world, msg)
    return msg


def _crawl_links(world: World, msg: Json) -> None:
    # Only the bot's own messages are of interest: users' links are not ours to leak.
    if int(msg["author"]["id"]) != world.bot_user_id:
        return
    if not msg["flags"] & SUPPRESS_EMBEDS:
        for url in content_urls(msg["content"]):
            world.note_unfurl(url)


def public_view(msg: Json) -> Json:
    """The message as REST answers show it (without the emulator's ``deleted`` mark)."""
    out = copy.deepcopy(msg)
    out.pop("deleted", None)
    return out


def served_view(world: World, msg: Json) -> Json:
    """The message as served again later (a fetch): attachment URLs freshly signed, and
    no ``nonce`` (only the create answer and MESSAGE_CREATE echo it)."""
    out = public_view(msg)
    out.pop("nonce", None)
    out["attachments"] = [world.cdn.fresh(a) for a in out["attachments"]]
    return out


async def announce(world: World, event: str, msg: Json) -> None:
    """MESSAGE_CREATE / MESSAGE_UPDATE on the gateway; ephemeral messages stay private."""
    if msg["flags"] & EPHEMERAL:
        return
    channel = world.channels[int(msg["channel_id"])]
    payload = public_view(msg)
    author_id = int(msg["author"]["id"])
    if channel.guild_id is None:
        await world.events.dispatch(event, payload, intent=DIRECT_MESSAGES)
        return
    guild = world.guilds[channel.guild_id]
    payload["guild_id"] = str(guild.id)
    if author_id in guild.members:
        payload["member"] = world.member_payload(guild, author_id, with_user=False)
    # Discord keeps content for the app's own messages and messages that mention it.
    own = author_id == world.bot_user_id
    mentioned = any(int(u["id"]) == world.bot_user_id for u in msg["mentions"])
    await world.events.dispatch(
        event, payload, intent=GUILD_MESSAGES, content_gated=not (own or mentioned)
    )


async def delete_message(world: World, msg: Json) -> None:
    msg["deleted"] = True
    if msg["flags"] & EPHEMERAL:
        return
    channel = world.channels[int(msg["channel_id"])]
    payload: Json = {"id": msg["id"], "channel_id": msg["channel_id"]}
    intent = DIRECT_MESSAGES
    if channel.guild_id is not None:
        payload["guild_id"] = str(channel.guild_id)
        intent = GUILD_MESSAGES
    await world.events.dispatch("MESSAGE_DELETE", payload, intent=intent)


def bulk_deletable(world: World, channel: Channel, message_ids: Iterable[int]) -> list[Json]:
    """The live messages of ``channel`` among ``message_ids``, refused as Discord refuses a
    bulk delete: 50016 for fewer than 2 or more than 100 ids (ids of no message here count
    too, and are then skipped), 50034 when one is older than two weeks. A repeated id counts
    once (Discord's docs differ on whether it is refused; the emulator does not refuse it)."""
    ids = list(dict.fromkeys(message_ids))
    if not BULK_DELETE_MIN <= len(ids) <= BULK_DELETE_MAX:
        raise ApiError(
            400,
            50016,
            "Provided too few or too many messages to delete. Must provide at least"
            f" {BULK_DELETE_MIN} and at most {BULK_DELETE_MAX} messages to delete.",
        )
    oldest = time.time() - BULK_DELETE_MAX_AGE
    if any(snowflake_seconds(message_id) < oldest for message_id in ids):
        raise ApiError(400, 50034, "You can only bulk delete messages that are under 14 days old.")
    found = (world.messages.get(message_id) for message_id in ids)
    return [
        msg
        for msg in found
        if msg is not None
        and not msg.get("deleted")
        and not msg["flags"] & EPHEMERAL
        and msg["channel_id"] == str(channel.id)
    ]


async def delete_messages_bulk(world: World, channel: Channel, messages: list[Json]) -> None:
    """Mark ``messages`` (of a guild channel) deleted and send ONE MESSAGE_DELETE_BULK, as
    Discord does for a bulk delete, to sessions with the GUILD_MESSAGES intent."""
    assert channel.guild_id is not None, "bulk deletes are for guild channels only"
    for msg in messages:
        msg["deleted"] = True
    if not messages:
        return
    payload: Json = {
        "ids": [msg["id"] for msg in messages],
        "channel_id": str(channel.id),
        "guild_id": str(channel.guild_id),
    }
    await world.events.dispatch("MESSAGE_DELETE_BULK", payload, intent=GUILD_MESSAGES)
