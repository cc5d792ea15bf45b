"""Interactions: INTERACTION_CREATE payloads, the callback, and the follow-up webhook.

- ``POST /interactions/{id}/{token}/callback`` acknowledges within ``ack_deadline``
  (3 s on Discord) or answers 404 10062 "Unknown interaction"; a second callback is 400
  40060. discord.py 2.5+ sends ``?with_response=1`` and reads an interaction callback
  response object ``{"interaction": {...}, "resource": {"type", "message"}}``.
- ``/webhooks/{application_id}/{token}`` carries follow-ups (``?wait=1`` returns the
  message) and ``/messages/@original`` edits. As on Discord, the first follow-up after a
  DEFERRED_CHANNEL_MESSAGE (type 5) replaces the "thinking" message and keeps the
  ephemerality chosen when deferring, whatever flags it carries. The token expires 15
  minutes after the interaction's snowflake time: every webhook call after that answers
  401 50027 "Invalid Webhook Token".
"""

from __future__ import annotations

import copy
import re
import secrets
import time

from sandbox.discord_messages import (
    announce,
    create_message,
    delete_message,
    edit_message,
    public_view,
    served_view,
)
from sandbox.discord_model import (
    ALL_PERMISSIONS,
    DM,
    EPHEMERAL,
    IS_COMPONENTS_V2,
    LOADING,
    POST_CHANNEL_TYPES,
    SUPPRESS_EMBEDS,
    SUPPRESS_NOTIFICATIONS,
    ApiError,
    ApiRequest,
    Channel,
    Interaction,
    Json,
    Reply,
    Route,
    World,
    invalid_form,
    route,
)
from sandbox.discord_rest import snowflake

Match = re.Match[str]

PING, APPLICATION_COMMAND, MESSAGE_COMPONENT, AUTOCOMPLETE, MODAL_SUBMIT = 1, 2, 3, 4, 5
PONG, CHANNEL_MESSAGE, DEFERRED_MESSAGE, DEFERRED_UPDATE, UPDATE_MESSAGE = 1, 4, 5, 6, 7
RESPONSE_FLAGS = EPHEMERAL | SUPPRESS_EMBEDS | SUPPRESS_NOTIFICATIONS | IS_COMPONENTS_V2
# Which callback types each interaction type accepts.
ALLOWED_CALLBACKS: dict[int, set[int]] = {
    PING: {PONG},
    APPLICATION_COMMAND: {4, 5, 9, 12},
    MESSAGE_COMPONENT: {4, 5, 6, 7, 9},
    AUTOCOMPLETE: {8},
    MODAL_SUBMIT: {4, 5, 6, 7},
}
DM_APP_PERMISSIONS = (1 << 10) | (1 << 11) | (1 << 14) | (1 << 15) | (1 << 16)

# -- building INTERACTION_CREATE


def event_channel(
    world: World, channel_id: int | None, guild_id: int | None, user_id: int
) -> Channel:
    """The channel an event happens in; ``guild_id=None`` means the user's DM with the bot."""
    if guild_id is None:
        known = world.channels.get(channel_id or 0)
        if known is not None and known.type == DM:
            return known
        return world.dm_channel(user_id, channel_id)
    guild = world.guild(guild_id)
    world.ensure_user(user_id)
    guild.members.setdefault(user_id, [])
    channel = world.channel(channel_id or 0)
    if channel.guild_id != guild_id:
        raise AssertionError(f"channel {channel_id} is not in guild {guild_id}")
    if channel.type in POST_CHANNEL_TYPES:
        raise AssertionError(
            f"channel {channel_id} is a forum or media channel: people post and run commands "
            "in its posts (threads), not in the channel itself"
        )
    return channel


def new_interaction(
    world: World,
    itype: int,
    data: Json,
    user_id: int,
    channel: Channel,
    message: Json | None = None,
    *,
    age: float = 0.0,
) -> Interaction:
    """``age``: how many seconds before now the interaction's snowflake was made (its
    token expires by that time); the 3 s to acknowledge count from now, the dispatch."""
    iid = world.ids.dated(age)
    token = f"emulator-interaction-{secrets.token_urlsafe(24)}"
    channel_json = channel.payload(world)
    payload: Json = {
        "id": str(iid),
        "application_id": str(world.application_id),
        "type": itype,
        "data": data,
        "token": token,
        "version": 1,
        "channel_id": str(channel.id),
        "channel": channel_json,
        "locale": world.ensure_user(user_id).locale,
        "entitlements": [],
        "attachment_size_limit": world.attachment_size_limit,
        "context": 1 if channel.guild_id is None else 0,
    }
    if channel.guild_id is None:
        payload["user"] = world.ensure_user(user_id).payload()
        payload["app_permissions"] = str(DM_APP_PERMISSIONS)
        payload["authorizing_integration_owners"] = {"0": "0"}
    else:
        guild = world.guilds[channel.guild_id]
        perms = str(world.permissions(guild, user_id))
        member = world.member_payload(guild, user_id)
        member["permissions"] = channel_json["permissions"] = perms
        payload.update(
            guild_id=str(guild.id),
            guild={"id": str(guild.id), "locale": guild.preferred_locale, "features": []},
            guild_locale=guild.preferred_locale,
            member=member,
            app_permissions=str(world.permissions(guild, world.bot_user_id)),
            authorizing_integration_owners={"0": str(guild.id)},
        )
    if message is not None:
        payload["message"] = served_view(world, message)
    record = Interaction(
        iid, token, itype, payload, time.monotonic(), channel.id, channel.guild_id, user_id
    )
    record.source_message_id = None if message is None else int(message["id"])
    world.interactions[iid] = record
    world.interactions_by_token[token] = record
    return record


def find_command(
    world: World, name: str, ctype: int, channel: Channel, user_id: int, *, check: bool = True
) -> Json:
    """The command a user can pick here: the guild's, then global ones. Discord shows no
    command outside its contexts or to a member without its default permissions
    (``check=False``: a forged or stale use, which the bot must refuse on its own)."""
    guild_id = channel.guild_id
    scopes: list[int | None] = [guild_id, None] if guild_id is not None else [None]
    for scope in scopes:
        for cmd in world.commands.get(scope, []):
            if cmd["name"] == name and cmd["type"] == ctype:
                if check:
                    _check_usable(world, cmd, channel, user_id)
                return cmd
    raise AssertionError(
        f"no command {name!r} of type {ctype} registered globally or in guild {guild_id};"
        " sync the command tree first"
    )


def _check_usable(world: World, cmd: Json, channel: Channel, user_id: int) -> None:
    context = 1 if channel.guild_id is None else 0  # GUILD or BOT_DM
    contexts = cmd.get("contexts")
    if (contexts is not None and context not in contexts) or (
        context == 1 and cmd.get("dm_permission") is False
    ):
        raise AssertionError(f"command {cmd['name']!r} is not offered in this context")
    required = cmd.get("default_member_permissions")
    if channel.guild_id is None or required is None:
        return
    perms = world.permissions(world.guilds[channel.guild_id], user_id)
    # "0" hides the command from everyone but administrators.
    allowed = (
        perms == ALL_PERMISSIONS if int(required) == 0 else perms & int(required) == int(required)
    )
    if not allowed:
        raise AssertionError(f"user {user_id} may not see command {cmd['name']!r}")


def command_data(cmd: Json) -> Json:
    data: Json = {"id": cmd["id"], "name": cmd["name"], "type": cmd["type"]}
    if "guild_id" in cmd:
        data["guild_id"] = cmd["guild_id"]  # discord.py looks guild commands up by this
    return data


def resolve_options(
    world: World, options: list[Json], resolved: Json, user_id: int | None = None
) -> list[Json]:
    """Options as Discord sends them; attachment objects given as values, users and
    channels (with ``user_id``'s permissions there) are resolved."""
    out = []
    for option in options:
        opt = dict(option)
        value = opt.get("value")
        if opt.get("type") == 11 and isinstance(value, dict):
            resolved.setdefault("attachments", {})[value["id"]] = value
            opt["value"] = value["id"]
        elif opt.get("type") == 6 and value is not None:
            user = world.ensure_user(int(value))
            resolved.setdefault("users", {})[str(user.id)] = user.payload()
            opt["value"] = str(user.id)
        elif opt.get("type") == 7 and value is not None:
            channel = world.channel(int(value))
            shown = channel.payload(world)
            if channel.guild_id is not None and user_id is not None:
                shown["permissions"] = str(
                    world.permissions(world.guilds[channel.guild_id], user_id)
                )
            resolved.setdefault("channels", {})[str(channel.id)] = shown
            opt["value"] = str(channel.id)
        if "options" in opt:
            opt["options"] = resolve_options(world, opt["options"], resolved, user_id)
        out.append(opt)
    return out


def find_component(components: list[Json], custom_id: str) -> Json | None:
    for component in components:
        if component.get("custom_id") == custom_id:
            return component
        nested = list(component.get("components") or [])
        if component.get("accessory"):
            nested.append(component["accessory"])
        found = find_component(nested, custom_id)
        if found is not None:
            return found
    return None


# -- the callback


def _interaction_extra(world: World, inter: Interaction) -> Json:
    meta: Json = {
        "id": str(inter.id),
        "type": inter.type,
        "user": world.users[inter.user_id].payload(),
        "authorizing_integration_owners": inter.payload["authorizing_integration_owners"],
    }
    msg_type = 0
    if inter.type == APPLICATION_COMMAND:
        # CHAT_INPUT_COMMAND (20) or CONTEXT_MENU_COMMAND (23)
        msg_type = 20 if inter.payload["data"].get("type", 1) == 1 else 23
    if inter.source_message_id is not None:
        meta["interacted_message_id"] = str(inter.source_message_id)
    app = str(world.application_id)
    return {
        "webhook_id": app,
        "application_id": app,
        "interaction_metadata": meta,
        "type": msg_type,
    }


def _check_callback(world: World, m: Match) -> Interaction:
    inter = world.interactions.get(snowflake(m["interaction_id"], "interaction_id"))
    if inter is None or inter.token != m["token"]:
        raise ApiError(404, 10062, "Unknown interaction")
    if inter.response_type is not None:
        raise ApiError(400, 40060, "Interaction has already been acknowledged.")
    if time.monotonic() - inter.created > world.ack_deadline:
        raise ApiError(404, 10062, "Unknown interaction")
    return inter


def _source_message(world: World, inter: Interaction) -> Json:
    if inter.source_message_id is None:
        raise ApiError(400, 40004, "Interaction has no message to update")
    return world.messages[inter.source_message_id]


async def _respond(
    world: World, inter: Interaction, rtype: int, data: Json, req: ApiRequest
) -> Json | None:
    """Carry out one callback type; returns the message it created or changed, if any."""
    channel = world.channels[inter.channel_id]
    if rtype == CHANNEL_MESSAGE:
        msg = create_message(
            world,
            channel,
            data,
            req.uploads,
            author_id=world.bot_user_id,
            allowed_flags=RESPONSE_FLAGS,
            extra=_interaction_extra(world, inter),
        )
        await announce(world, "MESSAGE_CREATE", msg)
    elif rtype == DEFERRED_MESSAGE:
        flags = LOADING | (int(data.get("flags") or 0) & EPHEMERAL)
        msg = create_message(
            world,
            channel,
            {},
            [],
            author_id=world.bot_user_id,
            allowed_flags=0,
            forced_flags=flags,
            extra=_interaction_extra(world, inter),
            allow_empty=True,
        )
        await announce(world, "MESSAGE_CREATE", msg)
    elif rtype == UPDATE_MESSAGE:
        msg = edit_message(world, _source_message(world, inter), data, req.uploads)
        await announce(world, "MESSAGE_UPDATE", msg)
    elif rtype == DEFERRED_UPDATE:
        msg = _source_message(world, inter)
    else:
        return None
    inter.original_id = int(msg["id"])
    return msg


def _callback_response(inter: Interaction, rtype: int, msg: Json | None) -> Json:
    interaction: Json = {"id": str(inter.id), "type": inter.type}
    out: Json = {"interaction": interaction}
    if msg is not None:
        interaction.update(
            response_message_id=msg["id"],
            response_message_loading=rtype == DEFERRED_MESSAGE,
            response_message_ephemeral=bool(msg["flags"] & EPHEMERAL),
        )
        if rtype != DEFERRED_UPDATE:
            out["resource"] = {"type": rtype, "message": public_view(msg)}
    return out


async def callback(world: World, req: ApiRequest, m: Match) -> Reply:
    inter = _check_callback(world, m)
    body: Json = req.json if isinstance(req.json, dict) else {}
    rtype = body.get("type")
    if not isinstance(rtype, int) or rtype not in ALLOWED_CALLBACKS[inter.type]:
        raise invalid_form("type", "INTERACTION_RESPONSE_TYPE_INVALID", "Invalid response type")
    data: Json = body.get("data") or {}
    msg = await _respond(world, inter, rtype, data, req)
    inter.response_type = rtype
    inter.responses.append({**copy.deepcopy(body), "flags": int(data.get("flags") or 0)})
    if req.query.get("with_response", "").lower() in ("1", "true"):
        return Reply(200, _callback_response(inter, rtype, msg))
    return Reply(204)


# -- the follow-up webhook


def _webhook(world: World, m: Match) -> Interaction:
    inter = world.interactions_by_token.get(m["token"])
    if inter is None or m["app_id"] != str(world.application_id):
        raise ApiError(404, 10015, "Unknown Webhook")
    if inter.token_expired():
        raise ApiError(401, 50027, "Invalid Webhook Token")
    return inter


def _entry(action: str, target: str | None, body: Json, msg: Json, replaced: bool = False) -> Json:
    entry = copy.deepcopy(body)
    entry.update(action=action, target=target, message_id=msg["id"], replaced_original=replaced)
    return entry


async def post_followup(world: World, req: ApiRequest, m: Match) -> Reply:
    inter = _webhook(world, m)
    if inter.response_type is None:
        raise ApiError(404, 10015, "Unknown Webhook")
    body: Json = req.json or {}
    original = world.messages.get(inter.original_id or 0)
    replaced = (
        inter.response_type == DEFERRED_MESSAGE
        and original is not None
        and not original.get("deleted")
        and bool(original["flags"] & LOADING)
    )
    if original is not None and replaced:
        msg = edit_message(world, original, body, req.uploads)
        await announce(world, "MESSAGE_UPDATE", msg)
    else:
        channel = world.channels[inter.channel_id]
        extra = _interaction_extra(world, inter) | {"type": 0}
        msg = create_message(
            world,
            channel,
            body,
            req.uploads,
            author_id=world.bot_user_id,
            allowed_flags=RESPONSE_FLAGS,
            extra=extra,
        )
        inter.followup_ids.append(int(msg["id"]))
        await announce(world, "MESSAGE_CREATE", msg)
    inter.followups.append(_entry("send", None, body, msg, replaced))
    if req.query.get("wait", "").lower() in ("1", "true"):
        return Reply(200, public_view(msg))
    return Reply(204)


def _webhook_message(world: World, inter: Interaction, target: str) -> Json:
    if target == "@original":
        message_id = inter.original_id
    else:
        message_id = snowflake(target, "message_id")
        if message_id != inter.original_id and message_id not in inter.followup_ids:
            message_id = None
    msg = world.messages.get(message_id or 0)
    if msg is None or msg.get("deleted"):
        raise ApiError(404, 10008, "Unknown Message")
    return msg


async def get_webhook_message(world: World, req: ApiRequest, m: Match) -> Reply:
    inter = _webhook(world, m)
    return Reply(200, public_view(_webhook_message(world, inter, m["message_id"])))


async def patch_webhook_message(world: World, req: ApiRequest, m: Match) -> Reply:
    inter = _webhook(world, m)
    msg = _webhook_message(world, inter, m["message_id"])
    body: Json = req.json or {}
    edit_message(world, msg, body, req.uploads)
    inter.followups.append(_entry("edit", m["message_id"], body, msg))
    await announce(world, "MESSAGE_UPDATE", msg)
    return Reply(200, public_view(msg))


async def delete_webhook_message(world: World, req: ApiRequest, m: Match) -> Reply:
    inter = _webhook(world, m)
    msg = _webhook_message(world, inter, m["message_id"])
    await delete_message(world, msg)
    inter.followups.append(_entry("delete", m["message_id"], {}, msg))
    return Reply(204)


_HOOK = "/webhooks/{app_id}/{token}"

ROUTES: list[Route] = [
    route("POST", "/interactions/{interaction_id}/{token}/callback", callback, auth=False),
    route("POST", _HOOK, post_followup, auth=False),
    route("GET", f"{_HOOK}/messages/{{message_id}}", get_webhook_message, auth=False),
    route("PATCH", f"{_HOOK}/messages/{{message_id}}", patch_webhook_message, auth=False),
    route("DELETE", f"{_HOOK}/messages/{{message_id}}", delete_webhook_message, auth=False),
]
