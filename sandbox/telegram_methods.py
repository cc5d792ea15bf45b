"""The Bot API methods the emulator implements, with Telegram's answers and errors.

Each method takes the world and the decoded parameters and returns the ``result`` of
``{"ok": true, "result": ...}`` (wrapped in ``Described`` when Telegram adds a
``description``, as ``setWebhook`` does), or raises ApiError. Error descriptions are Telegram's
own (``Bad Request: message is not modified: ...``) so code that matches on them, and
python-telegram-bot's mapping of status codes to exceptions, behave as in production.
"""

from __future__ import annotations

import copy
import json
import re
import time
from collections.abc import Awaitable, Callable
from typing import Any

from sandbox.telegram_entities import normalize_url
from sandbox.telegram_text import EntityParseError, format_text
from sandbox.telegram_text import utf16_len as text_length
from sandbox.telegram_webhook import GET_UPDATES_CONFLICT
from sandbox.telegram_wire import (
    ApiError,
    Params,
    bad_request,
    get_bool,
    get_int,
    get_list,
    get_object,
    get_opt_int,
    get_opt_str,
    get_str,
)
from sandbox.telegram_world import JSON, ChatRecord, MessageRecord, World, require_message

Method = Callable[[World, Params], Awaitable[Any]]

MAX_TEXT = 4096
NOT_MODIFIED = (
    "message is not modified: specified new message content and reply markup are exactly "
    "the same as a current content and reply markup of the message"
)
CHAT_ACTIONS = frozenset(
    {
        "typing", "upload_photo", "record_video", "upload_video", "record_voice",
        "upload_voice", "upload_document", "choose_sticker", "find_location",
        "record_video_note", "upload_video_note",
    }
)  # fmt: skip
_BUTTON_ACTIONS = frozenset(
    {
        "url", "callback_data", "web_app", "login_url", "switch_inline_query",
        "switch_inline_query_current_chat", "switch_inline_query_chosen_chat",
        "copy_text", "callback_game", "pay",
    }
)  # fmt: skip
_COMMAND_NAME = re.compile(r"[a-z0-9_]{1,32}")


def _chat_id(params: Params) -> int | str:
    value = params.get("chat_id")
    if value is None or value == "":
        raise bad_request("chat_id is empty")
    return value if isinstance(value, int) else str(value)


# --- pieces of a message ------------------------------------------------------------------


def _check_entity_shapes(given: list[Any] | None) -> None:
    for entity in given or []:
        fields = entity if isinstance(entity, dict) else {}
        numbers = [fields.get("offset"), fields.get("length")]
        if not isinstance(fields.get("type"), str) or not all(
            isinstance(n, int) and not isinstance(n, bool) and n >= 0 for n in numbers
        ):
            raise bad_request("can't parse entities JSON object")


def _formatted_text(params: Params) -> tuple[str, list[JSON]]:
    raw = get_str(params, "text", "")
    given = get_list(params, "entities")
    _check_entity_shapes(given)
    try:
        text, entities = format_text(raw, get_opt_str(params, "parse_mode"), given)
    except EntityParseError as exc:
        raise bad_request(f"can't parse entities: {exc}") from None
    except ValueError:
        raise bad_request("unsupported parse_mode") from None
    if not text:
        raise bad_request("message text is empty")
    if text_length(text) > MAX_TEXT:
        raise bad_request("message is too long")
    return text, entities


def _check_entity_urls(given: list[Any] | None) -> None:
    for entity in given or []:
        if isinstance(entity, dict) and entity.get("type") == "text_link":
            url = str(entity.get("url", ""))
            if normalize_url(url) is None:
                raise bad_request(f"entity URL '{url}' is invalid: Wrong HTTP URL")


def _check_button(button: Any) -> None:
    if not isinstance(button, dict) or not isinstance(button.get("text"), str):
        raise bad_request(
            'can\'t parse inline keyboard button: Field "text" must be of type String'
        )
    if not _BUTTON_ACTIONS & button.keys():
        raise bad_request(
            "can't parse inline keyboard button: Text buttons are unallowed in the inline keyboard"
        )
    data = button.get("callback_data")
    if data is not None and not 1 <= len(str(data).encode("utf-8")) <= 64:
        raise bad_request("BUTTON_DATA_INVALID")


def _inline_markup(params: Params) -> JSON | None:
    """The inline keyboard to attach; other reply markups never show on the message."""
    markup = get_object(params, "reply_markup")
    if markup is None or "inline_keyboard" not in markup:
        return None
    rows = markup["inline_keyboard"]
    if not isinstance(rows, list) or not all(isinstance(row, list) for row in rows):
        raise bad_request("can't parse inline keyboard markup JSON object")
    for row in rows:
        for button in row:
            _check_button(button)
    return {"inline_keyboard": rows} if any(rows) else None


def _link_preview_options(params: Params) -> JSON | None:
    options = get_object(params, "link_preview_options")
    if options is None and get_bool(params, "disable_web_page_preview"):
        options = {"is_disabled": True}
    return options


def _reply_to(world: World, chat: ChatRecord, params: Params) -> JSON | None:
    reply = get_object(params, "reply_parameters")
    if reply is None and params.get("reply_to_message_id") is not None:
        reply = {
            "message_id": params["reply_to_message_id"],
            "allow_sending_without_reply": get_bool(params, "allow_sending_without_reply"),
        }
    if reply is None:
        return None
    target_chat = world.find_chat(reply["chat_id"]) if "chat_id" in reply else chat
    allow = bool(reply.get("allow_sending_without_reply"))
    return world.reply_target(target_chat.id, get_int(reply, "message_id"), allow)


def _preview_url(message: JSON) -> str | None:
    options = message.get("link_preview_options") or {}
    if options.get("is_disabled"):
        return None
    if options.get("url"):
        return str(options["url"])
    for entity in message.get("entities", []):
        if entity["type"] == "text_link":
            return str(entity["url"])
        if entity["type"] == "url":
            encoded = str(message["text"]).encode("utf-16-le")
            start, end = entity["offset"] * 2, (entity["offset"] + entity["length"]) * 2
            return encoded[start:end].decode("utf-16-le")
    return None


async def _fetch_preview(world: World, message: JSON) -> None:
    """Telegram fetches the first link of a message to build its preview (DMs too)."""
    url = _preview_url(message)
    if url is not None and world.link_preview is not None:
        await world.link_preview(url)


# --- methods ----------------------------------------------------------------------------


async def get_me(world: World, params: Params) -> Any:
    return {
        **world.bot_user(),
        "can_join_groups": True,
        "can_read_all_group_messages": not world.privacy_mode,
        "supports_inline_queries": False,
        "can_connect_to_business": False,
        "has_main_web_app": False,
    }


async def return_true(world: World, params: Params) -> Any:
    return True


async def set_webhook(world: World, params: Params) -> Any:
    return await world.webhook.set(params)


async def delete_webhook(world: World, params: Params) -> Any:
    return await world.webhook.set(params, deleting=True)


async def get_webhook_info(world: World, params: Params) -> Any:
    return world.webhook.info()


async def get_updates(world: World, params: Params) -> Any:
    if world.webhook.active:
        raise ApiError(409, GET_UPDATES_CONFLICT)
    limit = max(1, min(100, get_int(params, "limit", 100)))
    timeout = float(params.get("timeout") or 0)
    world.updates.set_allowed(get_list(params, "allowed_updates"))
    return await world.updates.poll(get_opt_int(params, "offset"), limit, max(timeout, 0.0))


async def send_message(world: World, params: Params) -> Any:
    text, entities = _formatted_text(params)  # Telegram parses markup before the chat
    chat = world.writable_chat(_chat_id(params))
    _check_entity_urls(get_list(params, "entities"))
    content: JSON = {"text": text}
    if entities:
        content["entities"] = entities
    if (reply := _reply_to(world, chat, params)) is not None:
        content["reply_to_message"] = reply
    content.update(world.placement(chat, get_opt_int(params, "message_thread_id"), reply))
    if (options := _link_preview_options(params)) is not None:
        content["link_preview_options"] = options
    if (markup := _inline_markup(params)) is not None:
        content["reply_markup"] = markup
    record = world.add_message(chat, world.bot_user(), content)
    await _fetch_preview(world, record.message)
    return copy.deepcopy(record.message)


def _editable(world: World, params: Params) -> MessageRecord:
    if params.get("inline_message_id") is not None:
        raise bad_request("message to edit not found")  # no inline mode here
    chat = world.writable_chat(_chat_id(params))
    record = require_message(world, chat.id, get_int(params, "message_id"), "edit")
    if not record.from_bot:
        raise bad_request("message can't be edited")
    return record


def _apply_edit(record: MessageRecord, changes: JSON) -> JSON:
    message = record.message
    current = {key: message.get(key) for key in changes}
    if current == changes:
        raise bad_request(NOT_MODIFIED)
    for key, value in changes.items():
        if value is None:
            message.pop(key, None)
        else:
            message[key] = value
    message["edit_date"] = int(time.time())
    record.edited = True
    return copy.deepcopy(message)


async def edit_message_text(world: World, params: Params) -> Any:
    text, entities = _formatted_text(params)
    record = _editable(world, params)
    if "text" not in record.message:
        raise bad_request("there is no text in the message to edit")
    _check_entity_urls(get_list(params, "entities"))
    # Omitting reply_markup removes the keyboard, as in Telegram.
    changes: JSON = {"text": text, "entities": entities or None}
    changes["reply_markup"] = _inline_markup(params)
    options = _link_preview_options(params)
    if options is not None:
        changes["link_preview_options"] = options
    result = _apply_edit(record, changes)
    await _fetch_preview(world, record.message)
    return result


async def edit_message_reply_markup(world: World, params: Params) -> Any:
    record = _editable(world, params)
    return _apply_edit(record, {"reply_markup": _inline_markup(params)})


async def delete_message(world: World, params: Params) -> Any:
    chat = world.find_chat(_chat_id(params))
    record = require_message(world, chat.id, get_int(params, "message_id"), "delete")
    if not record.from_bot and chat.type != "private" and not chat.bot_is_admin:
        raise bad_request("message can't be deleted")
    record.deleted = True
    return True


async def send_chat_action(world: World, params: Params) -> Any:
    chat = world.writable_chat(_chat_id(params))
    world.placement(chat, get_opt_int(params, "message_thread_id"), None)
    if get_str(params, "action", "") not in CHAT_ACTIONS:
        raise bad_request("wrong parameter action in request")
    return True


async def get_file(world: World, params: Params) -> Any:
    record = world.files.get(get_str(params, "file_id", ""))
    if record is None:
        raise bad_request("invalid file_id")
    if record.file_size > world.max_download_bytes:
        raise bad_request("file is too big")
    return record.to_api()


def _commands_key(params: Params) -> str:
    scope = get_object(params, "scope") or {"type": "default"}
    return json.dumps(scope, sort_keys=True) + "|" + (get_opt_str(params, "language_code") or "")


async def set_my_commands(world: World, params: Params) -> Any:
    commands = get_list(params, "commands")
    if commands is None:
        raise bad_request("parameter commands is required")
    if len(commands) > 100:
        raise bad_request("too many commands specified")
    for command in commands:
        if not isinstance(command, dict) or not _COMMAND_NAME.fullmatch(
            str(command.get("command", ""))
        ):
            raise bad_request("BOT_COMMAND_INVALID")
        if not 1 <= len(str(command.get("description", ""))) <= 256:
            raise bad_request("BOT_COMMAND_DESCRIPTION_INVALID")
    world.commands[_commands_key(params)] = [
        {"command": c["command"], "description": c["description"]} for c in commands
    ]
    return True


async def get_my_commands(world: World, params: Params) -> Any:
    return copy.deepcopy(world.commands.get(_commands_key(params), []))


async def delete_my_commands(world: World, params: Params) -> Any:
    world.commands.pop(_commands_key(params), None)
    return True


async def answer_callback_query(world: World, params: Params) -> Any:
    query_id = get_str(params, "callback_query_id", "")
    if world.callback_queries.get(query_id, True):
        raise bad_request("query is too old and response timeout expired or query ID is invalid")
    if len(get_opt_str(params, "text") or "") > 200:
        raise bad_request("MESSAGE_TOO_LONG")
    world.callback_queries[query_id] = True
    return True


def _member(world: World, chat: ChatRecord, user_id: int) -> JSON:
    status = world.member_status(chat, user_id)
    user = world.bot_user() if user_id == world.bot_id else world.users[user_id].to_api()
    member: JSON = {"status": status, "user": user}
    if status == "creator":
        member["is_anonymous"] = False
    elif status == "administrator":
        member.update(
            {
                "can_be_edited": False,
                "is_anonymous": False,
                **dict.fromkeys(
                    (
                        "can_manage_chat",
                        "can_delete_messages",
                        "can_manage_video_chats",
                        "can_restrict_members",
                        "can_change_info",
                        "can_invite_users",
                        "can_post_stories",
                        "can_edit_stories",
                        "can_delete_stories",
                        "can_pin_messages",
                    ),
                    True,
                ),
                "can_promote_members": False,
            }
        )
    return member


async def get_chat_member(world: World, params: Params) -> Any:
    chat = world.find_chat(_chat_id(params))
    return _member(world, chat, get_int(params, "user_id"))


async def get_chat_administrators(world: World, params: Params) -> Any:
    chat = world.find_chat(_chat_id(params))
    ids = ([chat.creator] if chat.creator is not None else []) + sorted(chat.admins)
    if chat.bot_is_admin:
        ids.append(world.bot_id)
    return [_member(world, chat, user_id) for user_id in dict.fromkeys(ids)]


async def get_chat(world: World, params: Params) -> Any:
    chat = world.find_chat(_chat_id(params))
    gifts = ("unlimited_gifts", "limited_gifts", "unique_gifts", "premium_subscription")
    return {
        **chat.to_api(),
        "accent_color_id": 0,
        "max_reaction_count": 11,
        "accepted_gift_types": {**dict.fromkeys(gifts, True), "gifts_from_channels": False},
    }


METHODS: dict[str, Method] = {
    "getMe": get_me,
    "logOut": return_true,
    "close": return_true,
    "setWebhook": set_webhook,
    "deleteWebhook": delete_webhook,
    "getWebhookInfo": get_webhook_info,
    "getUpdates": get_updates,
    "sendMessage": send_message,
    "editMessageText": edit_message_text,
    "editMessageReplyMarkup": edit_message_reply_markup,
    "deleteMessage": delete_message,
    "sendChatAction": send_chat_action,
    "getFile": get_file,
    "setMyCommands": set_my_commands,
    "getMyCommands": get_my_commands,
    "deleteMyCommands": delete_my_commands,
    "answerCallbackQuery": answer_callback_query,
    "getChatMember": get_chat_member,
    "getChatAdministrators": get_chat_administrators,
    "getChat": get_chat,
}
# Telegram matches method names case-insensitively (sendmessage works too).
BY_LOWER_NAME = {name.lower(): name for name in METHODS}

__all__ = ["BY_LOWER_NAME", "METHODS", "ApiError", "Method"]
