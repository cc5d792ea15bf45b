"""REST routes of the emulated Discord API (below ``/api/v10``), except interactions.

Each handler takes the :class:`World`, the parsed request and the path match, and returns
a :class:`Reply` or raises :class:`ApiError` with Discord's status, code and message.

``POST /channels/{id}/messages`` honours ``nonce`` + ``enforce_nonce`` (discord.py sends
both when ``send(nonce=...)``): a second message with the same nonce by the same author in
the channel within :data:`NONCE_WINDOW` seconds answers the first one and creates nothing.
How long Discord remembers a nonce is documented only as "the past few minutes".
"""

from __future__ import annotations

import copy
import re
import time

from sandbox.discord_gateway import CONTENT_FIELDS
from sandbox.discord_messages import (
    announce,
    bulk_deletable,
    create_message,
    delete_message,
    delete_messages_bulk,
    edit_message,
    public_view,
    served_view,
)
from sandbox.discord_model import (
    ADD_REACTIONS,
    ATTACH_FILES,
    DM,
    EPHEMERAL,
    IS_COMPONENTS_V2,
    MANAGE_MESSAGES,
    MESSAGE_CONTENT,
    POST_CHANNEL_TYPES,
    READ_MESSAGE_HISTORY,
    SEND_MESSAGES,
    SEND_MESSAGES_IN_THREADS,
    SUPPRESS_EMBEDS,
    SUPPRESS_NOTIFICATIONS,
    VIEW_CHANNEL,
    ApiError,
    ApiRequest,
    Channel,
    Json,
    Reply,
    Route,
    World,
    invalid_form,
    route,
    snowflake_seconds,
)

Match = re.Match[str]
SEND_FLAGS = SUPPRESS_EMBEDS | SUPPRESS_NOTIFICATIONS | IS_COMPONENTS_V2
NONCE_MAX_LENGTH = 25
NONCE_WINDOW = 120.0  # seconds; Discord says "the past few minutes"
MAX_REFRESH_URLS = 50
DEFAULT_HISTORY, MAX_HISTORY = 50, 100
_CHAT_NAME = re.compile(r"^[-_\w]{1,32}$")


def snowflake(value: str, field: str) -> int:
    if not value.isdigit():
        raise invalid_form(field, "NUMBER_TYPE_COERCE", f'Value "{value}" is not snowflake.')
    return int(value)


# -- users, application, gateway


async def get_me(world: World, req: ApiRequest, m: Match) -> Reply:
    user = world.users[world.bot_user_id].payload()
    user.update(verified=True, mfa_enabled=False, email=None, locale="en-US")
    return Reply(200, user)


async def get_user(world: World, req: ApiRequest, m: Match) -> Reply:
    return Reply(200, world.user(snowflake(m["user_id"], "user_id")).payload())


async def get_application(world: World, req: ApiRequest, m: Match) -> Reply:
    return Reply(200, world.application_payload())


async def get_gateway(world: World, req: ApiRequest, m: Match) -> Reply:
    return Reply(200, {"url": world.gateway_url})


async def get_gateway_bot(world: World, req: ApiRequest, m: Match) -> Reply:
    """The gateway URL, the recommended shard count (ceil(guilds / guilds_per_shard), at
    least 1) and the session start limit, which every IDENTIFY counts down."""
    rules = world.sharding
    return Reply(
        200,
        {
            "url": world.gateway_url,
            "shards": rules.recommended_shards(len(world.guilds)),
            "session_start_limit": rules.session_start_limit(time.monotonic()),
        },
    )


# -- application commands


def _scope(world: World, m: Match) -> int | None:
    if snowflake(m["app_id"], "application_id") != world.application_id:
        raise ApiError(403, 50001, "Missing Access")
    guild = m.groupdict().get("guild_id")
    if guild is None:
        return None
    guild_id = snowflake(guild, "guild_id")
    if guild_id not in world.guilds:
        raise ApiError(403, 50001, "Missing Access")
    return guild_id


def _check_command(raw: Json, where: str) -> None:
    ctype = int(raw.get("type", 1))
    name = raw.get("name")
    if not isinstance(name, str) or not 1 <= len(name) <= 32:
        raise invalid_form(f"{where}name", "BASE_TYPE_BAD_LENGTH", "Must be between 1 and 32.")
    if ctype == 1:
        if not _CHAT_NAME.match(name) or name != name.lower():
            raise invalid_form(f"{where}name", "APPLICATION_COMMAND_INVALID_NAME", "Invalid name")
        if not 1 <= len(raw.get("description") or "") <= 100:
            raise invalid_form(
                f"{where}description", "BASE_TYPE_BAD_LENGTH", "Must be between 1 and 100."
            )


def _permissions_text(value: object) -> str | None:
    return None if value is None else str(value)


def _store_command(world: World, raw: Json, guild_id: int | None, old: list[Json]) -> Json:
    ctype = int(raw.get("type", 1))
    # Discord keeps a command's id when an overwrite re-registers the same name and type.
    same = [c for c in old if c["name"] == raw["name"] and c["type"] == ctype]
    cmd: Json = {
        "id": same[0]["id"] if same else str(world.ids.next()),
        "application_id": str(world.application_id),
        "version": str(world.ids.next()),
        "type": ctype,
        "name": raw["name"],
        "description": raw.get("description") or "",
        "options": raw.get("options") or [] if ctype == 1 else [],
        # Sent as a number or a string; Discord answers a string (or null).
        "default_member_permissions": _permissions_text(raw.get("default_member_permissions")),
        "nsfw": bool(raw.get("nsfw", False)),
        "contexts": raw.get("contexts"),
        "integration_types": raw.get("integration_types") or [0],
        "name_localizations": raw.get("name_localizations"),
        "description_localizations": raw.get("description_localizations"),
    }
    if guild_id is None:
        cmd["dm_permission"] = raw.get("dm_permission", True)
    else:
        cmd["guild_id"] = str(guild_id)
    return cmd


async def put_commands(world: World, req: ApiRequest, m: Match) -> Reply:
    guild_id = _scope(world, m)
    if not isinstance(req.json, list):
        raise invalid_form("_", "LIST_TYPE_CONVERT", "Must be an array.")
    seen: set[tuple[str, int]] = set()
    for i, raw in enumerate(req.json):
        _check_command(raw, f"{i}.")
        key = (raw["name"], int(raw.get("type", 1)))
        if key in seen:
            raise invalid_form(f"{i}.name", "APPLICATION_COMMANDS_DUPLICATE_NAME", "Duplicate")
        seen.add(key)
    old = world.commands.get(guild_id, [])
    world.commands[guild_id] = [_store_command(world, raw, guild_id, old) for raw in req.json]
    return Reply(200, world.commands[guild_id])


async def post_command(world: World, req: ApiRequest, m: Match) -> Reply:
    guild_id = _scope(world, m)
    raw = req.json or {}
    _check_command(raw, "")
    old = world.commands.get(guild_id, [])
    cmd = _store_command(world, raw, guild_id, old)
    world.commands[guild_id] = [c for c in old if c["id"] != cmd["id"]] + [cmd]
    return Reply(201 if len(old) < len(world.commands[guild_id]) else 200, cmd)


async def get_commands(world: World, req: ApiRequest, m: Match) -> Reply:
    return Reply(200, world.commands.get(_scope(world, m), []))


def _command(world: World, m: Match) -> tuple[int | None, Json]:
    guild_id = _scope(world, m)
    for cmd in world.commands.get(guild_id, []):
        if cmd["id"] == m["command_id"]:
            return guild_id, cmd
    raise ApiError(404, 10063, "Unknown application command")


async def get_command(world: World, req: ApiRequest, m: Match) -> Reply:
    return Reply(200, _command(world, m)[1])


async def delete_command(world: World, req: ApiRequest, m: Match) -> Reply:
    guild_id, cmd = _command(world, m)
    world.commands[guild_id].remove(cmd)
    return Reply(204)


# -- channels and messages


def _channel(world: World, m: Match) -> Channel:
    return world.channel(snowflake(m["channel_id"], "channel_id"))


async def get_channel(world: World, req: ApiRequest, m: Match) -> Reply:
    channel = _channel(world, m)
    world.require(channel, VIEW_CHANNEL)
    return Reply(200, channel.payload(world))


def _check_can_send(world: World, channel: Channel, req: ApiRequest) -> None:
    if channel.type == DM:
        user = world.user(channel.recipient_id or 0)
        if user.bot or not user.dms_open:
            raise ApiError(403, 50007, "Cannot send messages to this user")
        return
    if channel.type in POST_CHANNEL_TYPES:
        # A forum or media channel holds posts (threads), never messages of its own.
        raise ApiError(400, 50008, "Cannot send messages in a non-text channel")
    world.require(channel, VIEW_CHANNEL)
    world.require(channel, SEND_MESSAGES_IN_THREADS if channel.is_thread else SEND_MESSAGES)
    if req.uploads:
        world.require(channel, ATTACH_FILES)


def _reply_fields(world: World, channel: Channel, ref: Json) -> Json:
    """message_reference -> the REPLY (type 19) fields Discord adds to the new message.
    A target that is gone (or not in this channel) fails the send unless
    ``fail_if_not_exists`` is false, which sends a plain message instead."""
    target_id = snowflake(str(ref.get("message_id") or ""), "message_reference.message_id")
    target = world.messages.get(target_id)
    if target is None or target.get("deleted") or target["channel_id"] != str(channel.id):
        if ref.get("fail_if_not_exists") is not False:
            raise invalid_form("message_reference", "REPLIES_UNKNOWN_MESSAGE", "Unknown message")
        return {}
    reference: Json = {"type": 0, "message_id": target["id"], "channel_id": target["channel_id"]}
    if channel.guild_id is not None:
        reference["guild_id"] = str(channel.guild_id)
    return {"type": 19, "message_reference": reference, "referenced_message": public_view(target)}


def _nonce(body: Json) -> str | None:
    """The ``nonce`` as a key (an integer or a string of at most 25 characters)."""
    nonce = body.get("nonce")
    if nonce is None:
        return None
    if isinstance(nonce, bool) or not isinstance(nonce, str | int):
        raise invalid_form("nonce", "BASE_TYPE_STRING_OR_INTEGER", "Must be a string or integer.")
    if isinstance(nonce, str) and len(nonce) > NONCE_MAX_LENGTH:
        raise invalid_form(
            "nonce", "BASE_TYPE_MAX_LENGTH", f"Must be {NONCE_MAX_LENGTH} or fewer in length."
        )
    return str(nonce)


def _same_nonce(world: World, channel: Channel, nonce: str) -> Json | None:
    """The live message this author sent here with ``nonce`` in the last few minutes."""
    message_id = world.nonces.get((channel.id, world.bot_user_id, nonce))
    if message_id is None or time.time() - snowflake_seconds(message_id) > NONCE_WINDOW:
        return None
    msg = world.messages.get(message_id)
    return None if msg is None or msg.get("deleted") else msg


async def post_message(world: World, req: ApiRequest, m: Match) -> Reply:
    channel = _channel(world, m)
    _check_can_send(world, channel, req)
    body: Json = req.json or {}
    nonce = _nonce(body)
    if nonce is not None and body.get("enforce_nonce") is True:
        earlier = _same_nonce(world, channel, nonce)
        if earlier is not None:
            return Reply(200, public_view(earlier))
    ref = body.get("message_reference")
    extra = _reply_fields(world, channel, ref) if ref else {}
    if nonce is not None:
        extra["nonce"] = body["nonce"]
    msg = create_message(
        world,
        channel,
        body,
        req.uploads,
        author_id=world.bot_user_id,
        allowed_flags=SEND_FLAGS,
        extra=extra,
    )
    if nonce is not None:
        world.nonces[(channel.id, world.bot_user_id, nonce)] = int(msg["id"])
    await announce(world, "MESSAGE_CREATE", msg)
    return Reply(200, public_view(msg))


def _message(world: World, m: Match) -> tuple[Channel, Json]:
    channel = _channel(world, m)
    world.require(channel, VIEW_CHANNEL)
    return channel, world.message(channel.id, snowflake(m["message_id"], "message_id"))


async def get_message(world: World, req: ApiRequest, m: Match) -> Reply:
    channel, msg = _message(world, m)
    world.require(channel, READ_MESSAGE_HISTORY)
    return Reply(200, served_view(world, msg))


def _history_bound(req: ApiRequest, name: str) -> int | None:
    value = req.query.get(name)
    return None if value is None else snowflake(value, name)


async def get_messages(world: World, req: ApiRequest, m: Match) -> Reply:
    """A channel's history, newest first: at most ``limit`` (1..100, default 50) messages
    ``before`` or ``after`` a message id (``around`` is not emulated). Ephemeral and deleted
    messages are not in it; attachment URLs are freshly signed; without the message content
    intent an app sees the content of its own messages and of those mentioning it only."""
    channel = _channel(world, m)
    world.require(channel, VIEW_CHANNEL)
    world.require(channel, READ_MESSAGE_HISTORY)
    raw_limit = req.query.get("limit", str(DEFAULT_HISTORY))
    if not raw_limit.isdigit() or not 1 <= int(raw_limit) <= MAX_HISTORY:
        raise invalid_form(
            "limit", "NUMBER_TYPE_MAX", f"int value should be between 1 and {MAX_HISTORY}."
        )
    if "around" in req.query:
        raise ApiError(501, 0, "around is not emulated")
    before, after = _history_bound(req, "before"), _history_bound(req, "after")
    ids = [
        i
        for i in world.channel_log.get(channel.id, [])
        if not world.messages[i].get("deleted")
        and not world.messages[i]["flags"] & EPHEMERAL
        and (before is None or i < before)
        and (after is None or i > after)
    ]
    # Newest first, the ``limit`` nearest the bound (after: the oldest ones after it).
    limit = int(raw_limit)
    chosen = ids[:limit] if after is not None and before is None else ids[-limit:]
    out = []
    for message_id in reversed(chosen):
        msg = served_view(world, world.messages[message_id])
        if not _content_visible(world, msg):
            msg.update(copy.deepcopy(CONTENT_FIELDS))
            for snapshot in msg.get("message_snapshots") or []:
                snapshot["message"].update(copy.deepcopy(CONTENT_FIELDS))
        out.append(msg)
    return Reply(200, out)


def _content_visible(world: World, msg: Json) -> bool:
    if world.privileged_intents & MESSAGE_CONTENT:
        return True
    own = int(msg["author"]["id"]) == world.bot_user_id
    mentioned = any(int(u["id"]) == world.bot_user_id for u in msg.get("mentions", []))
    dm = world.channels[int(msg["channel_id"])].guild_id is None
    return own or mentioned or dm


async def patch_message(world: World, req: ApiRequest, m: Match) -> Reply:
    _, msg = _message(world, m)
    if int(msg["author"]["id"]) != world.bot_user_id:
        raise ApiError(403, 50005, "Cannot edit a message authored by another user")
    edit_message(world, msg, req.json or {}, req.uploads)
    await announce(world, "MESSAGE_UPDATE", msg)
    return Reply(200, public_view(msg))


async def delete_channel_message(world: World, req: ApiRequest, m: Match) -> Reply:
    channel, msg = _message(world, m)
    if int(msg["author"]["id"]) != world.bot_user_id:
        if channel.type == DM:
            raise ApiError(403, 50003, "Cannot execute action on a DM channel")
        world.require(channel, MANAGE_MESSAGES)
    await delete_message(world, msg)
    return Reply(204)


async def bulk_delete_messages(world: World, req: ApiRequest, m: Match) -> Reply:
    """``POST /channels/{id}/messages/bulk-delete`` ``{"messages": [ids]}``: guild channels
    only, with Manage Messages (for the bot's own messages too); 2 to 100 ids, none older
    than two weeks (see :func:`bulk_deletable`). 204, and one MESSAGE_DELETE_BULK."""
    channel = _channel(world, m)
    if channel.type == DM:
        raise ApiError(403, 50003, "Cannot execute action on a DM channel")
    world.require(channel, VIEW_CHANNEL)
    world.require(channel, MANAGE_MESSAGES)
    body = req.json if isinstance(req.json, dict) else {}
    raw = body.get("messages")
    if raw is None:
        raise invalid_form("messages", "BASE_TYPE_REQUIRED", "This field is required")
    if not isinstance(raw, list):
        raise invalid_form("messages", "LIST_TYPE_CONVERT", "Must be an array.")
    ids = [snowflake(str(value), f"messages.{i}") for i, value in enumerate(raw)]
    await delete_messages_bulk(world, channel, bulk_deletable(world, channel, ids))
    return Reply(204)


def _reaction_list(msg: Json, emoji: str) -> tuple[list[Json], Json]:
    reactions: list[Json] = msg.setdefault("reactions", [])
    name, _, emoji_id = emoji.partition(":")  # unicode, or "name:id" for custom emoji
    for reaction in reactions:
        if reaction["emoji"]["name"] == name:
            return reactions, reaction
    new = {"count": 0, "me": False, "emoji": {"id": emoji_id or None, "name": name}}
    return reactions, new


async def add_reaction(world: World, req: ApiRequest, m: Match) -> Reply:
    channel, msg = _message(world, m)
    world.require(channel, READ_MESSAGE_HISTORY)
    world.require(channel, ADD_REACTIONS)
    reactions, reaction = _reaction_list(msg, m["emoji"])
    if not reaction["me"]:
        reaction.update(me=True, count=reaction["count"] + 1)
        if reaction not in reactions:
            reactions.append(reaction)
    return Reply(204)


async def remove_own_reaction(world: World, req: ApiRequest, m: Match) -> Reply:
    _, msg = _message(world, m)
    reactions, reaction = _reaction_list(msg, m["emoji"])
    if reaction["me"] and reaction in reactions:
        reaction.update(me=False, count=reaction["count"] - 1)
        if not reaction["count"]:
            reactions.remove(reaction)
    return Reply(204)


async def typing(world: World, req: ApiRequest, m: Match) -> Reply:
    _channel(world, m)
    return Reply(204)


async def create_dm(world: World, req: ApiRequest, m: Match) -> Reply:
    body: Json = req.json or {}
    user_id = snowflake(str(body.get("recipient_id", "")), "recipient_id")
    world.user(user_id)
    return Reply(200, world.dm_channel(user_id).payload(world))


async def refresh_attachment_urls(world: World, req: ApiRequest, m: Match) -> Reply:
    """Re-sign attachment URLs, expired or not; others come back unchanged."""
    body = req.json if isinstance(req.json, dict) else {}
    urls = body.get("attachment_urls")
    if urls is None:
        raise invalid_form("attachment_urls", "BASE_TYPE_REQUIRED", "This field is required")
    if not isinstance(urls, list) or not all(isinstance(u, str) for u in urls):
        raise invalid_form("attachment_urls", "LIST_TYPE_CONVERT", "Must be an array of strings.")
    if len(urls) > MAX_REFRESH_URLS:
        raise invalid_form(
            "attachment_urls",
            "BASE_TYPE_MAX_LENGTH",
            f"Must be {MAX_REFRESH_URLS} or fewer in length.",
        )
    refreshed = [{"original": url, "refreshed": world.cdn.refresh(url)} for url in urls]
    return Reply(200, {"refreshed_urls": refreshed})


async def get_member(world: World, req: ApiRequest, m: Match) -> Reply:
    guild = world.guild(snowflake(m["guild_id"], "guild_id"))
    user_id = snowflake(m["user_id"], "user_id")
    if user_id not in guild.members:
        raise ApiError(404, 10007, "Unknown Member")
    return Reply(200, world.member_payload(guild, user_id))


_APP = "/applications/{app_id}"
_MSG = "/channels/{channel_id}/messages/{message_id}"

ROUTES: list[Route] = [
    route("GET", "/users/@me", get_me),
    route("GET", "/users/{user_id}", get_user),
    route("GET", "/oauth2/applications/@me", get_application),
    route("GET", "/applications/@me", get_application),
    route("GET", "/gateway", get_gateway, auth=False),
    route("GET", "/gateway/bot", get_gateway_bot),
    route("GET", f"{_APP}/commands", get_commands),
    route("PUT", f"{_APP}/commands", put_commands),
    route("POST", f"{_APP}/commands", post_command),
    route("GET", f"{_APP}/commands/{{command_id}}", get_command),
    route("DELETE", f"{_APP}/commands/{{command_id}}", delete_command),
    route("GET", f"{_APP}/guilds/{{guild_id}}/commands", get_commands),
    route("PUT", f"{_APP}/guilds/{{guild_id}}/commands", put_commands),
    route("POST", f"{_APP}/guilds/{{guild_id}}/commands", post_command),
    route("GET", f"{_APP}/guilds/{{guild_id}}/commands/{{command_id}}", get_command),
    route("DELETE", f"{_APP}/guilds/{{guild_id}}/commands/{{command_id}}", delete_command),
    route("GET", "/channels/{channel_id}", get_channel),
    route("GET", "/channels/{channel_id}/messages", get_messages),
    route("POST", "/channels/{channel_id}/messages", post_message),
    route("POST", "/channels/{channel_id}/messages/bulk-delete", bulk_delete_messages),
    route("GET", _MSG, get_message),
    route("PATCH", _MSG, patch_message),
    route("DELETE", _MSG, delete_channel_message),
    route("PUT", f"{_MSG}/reactions/{{emoji}}/@me", add_reaction),
    route("DELETE", f"{_MSG}/reactions/{{emoji}}/@me", remove_own_reaction),
    route("POST", "/channels/{channel_id}/typing", typing),
    route("POST", "/users/@me/channels", create_dm),
    route("GET", "/guilds/{guild_id}/members/{user_id}", get_member),
    route("POST", "/attachments/refresh-urls", refresh_attachment_urls),
]
