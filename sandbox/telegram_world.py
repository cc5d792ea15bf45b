"""The state of the emulated Telegram: users, chats, messages, files.

Everything here is shaped like the Bot API's own objects (``User``, ``Chat``,
``Message``, ``PhotoSize``, ``Document``, ``File``) so python-telegram-bot can
de-serialise it unchanged.
"""

from __future__ import annotations

import copy
import itertools
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from sandbox.imagesniff import ImageInfo, sniff
from sandbox.telegram_updates import UpdateQueue
from sandbox.telegram_webhook import WebhookDispatcher
from sandbox.telegram_wire import bad_request, forbidden

JSON = dict[str, Any]


@dataclass
class UserRecord:
    id: int
    first_name: str
    username: str | None = None
    last_name: str | None = None
    language_code: str | None = None
    # A user who never pressed Start cannot be messaged by the bot (403).
    started: bool = True
    blocked: bool = False

    def to_api(self) -> JSON:
        user: JSON = {"id": self.id, "is_bot": False, "first_name": self.first_name}
        for key in ("last_name", "username", "language_code"):
            if (value := getattr(self, key)) is not None:
                user[key] = value
        return user


@dataclass
class ChatRecord:
    id: int
    type: str
    title: str | None = None
    username: str | None = None
    admins: set[int] = field(default_factory=set)
    creator: int | None = None
    bot_is_admin: bool = False
    user: UserRecord | None = None  # the other side of a private chat
    # A supergroup with topics: each topic's id is the message_id of the service message
    # that created it (``forum_topic_created``), mapped to its name.
    is_forum: bool = False
    topics: dict[int, str] = field(default_factory=dict)

    def to_api(self) -> JSON:
        if self.user is not None:
            chat = {k: v for k, v in self.user.to_api().items() if k != "is_bot"}
            chat.pop("language_code", None)
            return {**chat, "type": "private"}
        chat = {"id": self.id, "type": self.type, "title": self.title}
        if self.username:
            chat["username"] = self.username
        if self.is_forum:
            chat["is_forum"] = True
        return chat


@dataclass
class MessageRecord:
    message: JSON
    from_bot: bool
    deleted: bool = False
    edited: bool = False

    def snapshot(self) -> JSON:
        """The message as tests see it: API fields plus ``deleted`` and ``edited``."""
        return {**copy.deepcopy(self.message), "deleted": self.deleted, "edited": self.edited}


@dataclass
class FileRecord:
    file_id: str
    file_unique_id: str
    data: bytes
    file_size: int
    file_path: str

    def to_api(self, with_path: bool = True) -> JSON:
        result: JSON = {
            "file_id": self.file_id,
            "file_unique_id": self.file_unique_id,
            "file_size": self.file_size,
        }
        if with_path:
            result["file_path"] = self.file_path
        return result


def image_size(data: bytes) -> tuple[int, int] | None:
    """Width and height read from an image header (the sandbox's shared sniffer)."""
    info = sniff(data)
    return (info.width, info.height) if isinstance(info, ImageInfo) else None


class World:
    def __init__(
        self,
        bot_id: int,
        bot_username: str,
        bot_name: str,
        max_download_bytes: int,
        privacy_mode: bool,
    ) -> None:
        self.bot_id = bot_id
        self.bot_username = bot_username
        self.bot_name = bot_name
        self.max_download_bytes = max_download_bytes
        self.privacy_mode = privacy_mode
        # Called with the URL Telegram would fetch to build a link preview, if set.
        self.link_preview: Callable[[str], Awaitable[None]] | None = None
        self.users: dict[int, UserRecord] = {}
        self.groups: dict[int, ChatRecord] = {}
        self.messages: dict[int, dict[int, MessageRecord]] = {}
        self.files: dict[str, FileRecord] = {}
        self.files_by_path: dict[str, FileRecord] = {}
        self.callback_queries: dict[str, bool] = {}  # id -> answered
        self.commands: dict[str, list[JSON]] = {}  # scope+language -> commands
        self.updates = UpdateQueue()
        self.webhook = WebhookDispatcher(self.updates)  # feeds a webhook once one is set
        self._ids = itertools.count(1)
        self._next_message_id: dict[int, int] = {}

    # --- people and chats ---------------------------------------------------------------

    def bot_user(self) -> JSON:
        return {
            "id": self.bot_id,
            "is_bot": True,
            "first_name": self.bot_name,
            "username": self.bot_username,
        }

    def user(self, user_id: int) -> UserRecord:
        try:
            return self.users[user_id]
        except KeyError:
            raise ValueError(f"unknown user {user_id}: call add_user() first") from None

    def chat(self, chat_id: int) -> ChatRecord:
        """A chat known to the world (for the emulator's own pushes)."""
        if chat_id in self.groups:
            return self.groups[chat_id]
        if chat_id in self.users:
            user = self.users[chat_id]
            return ChatRecord(id=user.id, type="private", user=user)
        raise ValueError(f"unknown chat {chat_id}: call add_user() or add_group() first")

    def find_chat(self, chat_id: int | str) -> ChatRecord:
        """A chat as a Bot API method names it; 400 "chat not found" otherwise."""
        if isinstance(chat_id, str):
            name = chat_id.removeprefix("@").lower()
            for group in self.groups.values():
                if chat_id.startswith("@") and (group.username or "").lower() == name:
                    return group
            try:
                chat_id = int(chat_id)
            except ValueError:
                raise bad_request("chat not found") from None
        if chat_id in self.groups or (chat_id in self.users and self.users[chat_id].started):
            return self.chat(chat_id)
        raise bad_request("chat not found")

    def writable_chat(self, chat_id: int | str) -> ChatRecord:
        """The chat to send to, with Telegram's 403s for users who can't be messaged."""
        if isinstance(chat_id, int) and chat_id in self.users:
            user = self.users[chat_id]
            if user.blocked:
                raise forbidden("bot was blocked by the user")
            if not user.started:
                raise forbidden("bot can't initiate conversation with a user")
        return self.find_chat(chat_id)

    def member_status(self, chat: ChatRecord, user_id: int) -> str:
        if user_id == self.bot_id:
            return "administrator" if chat.bot_is_admin else "member"
        if chat.creator == user_id:
            return "creator"
        if user_id in chat.admins:
            return "administrator"
        if user_id not in self.users:
            raise bad_request("user not found")
        return "member"

    # --- messages -----------------------------------------------------------------------

    def _message_id(self, chat_id: int) -> int:
        message_id = self._next_message_id.get(chat_id, 1)
        self._next_message_id[chat_id] = message_id + 1
        return message_id

    def record(self, chat_id: int, message_id: int) -> MessageRecord | None:
        record = self.messages.get(chat_id, {}).get(message_id)
        return None if record is None or record.deleted else record

    def reply_target(self, chat_id: int, message_id: int, allow_missing: bool) -> JSON | None:
        record = self.record(chat_id, message_id)
        if record is None:
            if allow_missing:
                return None
            raise bad_request("message to be replied not found")
        target = copy.deepcopy(record.message)
        target.pop("reply_to_message", None)  # Telegram nests replies one level deep
        return target

    def add_message(self, chat: ChatRecord, sender: JSON, content: JSON) -> MessageRecord:
        message: JSON = {
            "message_id": self._message_id(chat.id),
            "from": sender,
            "chat": chat.to_api(),
            "date": int(time.time()),
        }
        message.update(content)
        record = MessageRecord(message=message, from_bot=sender["id"] == self.bot_id)
        self.messages.setdefault(chat.id, {})[message["message_id"]] = record
        return record

    def add_topic(self, chat: ChatRecord, creator: JSON, name: str) -> int:
        """Open a topic in a forum: its id is the id of the service message creating it."""
        if not chat.is_forum:
            raise ValueError(f"chat {chat.id} has no topics: add_group(..., is_forum=True)")
        content: JSON = {"forum_topic_created": {"name": name, "icon_color": 0x6FB9F0}}
        record = self.add_message(chat, creator, content)
        thread_id = int(record.message["message_id"])
        record.message.update({"message_thread_id": thread_id, "is_topic_message": True})
        chat.topics[thread_id] = name
        return thread_id

    def placement(self, chat: ChatRecord, thread_id: int | None, reply: JSON | None) -> JSON:
        """Where a new message goes in a forum, as fields of the message: the topic named,
        else the topic of the message it replies to, else General (no fields). A message
        in a topic that replies to nothing replies to the topic's creation message, as
        Telegram shows it. 400 "message thread not found" for a topic the chat lacks."""
        if thread_id is None and reply is not None and reply.get("is_topic_message"):
            thread_id = int(reply["message_thread_id"])
        if thread_id is None:
            return {}
        if thread_id not in chat.topics:
            raise bad_request("message thread not found")
        fields: JSON = {"message_thread_id": thread_id, "is_topic_message": True}
        if reply is None:
            root = self.reply_target(chat.id, thread_id, allow_missing=True)
            if root is not None:
                fields["reply_to_message"] = root
        return fields

    def bot_messages(self, chat_id: int) -> list[JSON]:
        records = self.messages.get(chat_id, {}).values()
        return [r.snapshot() for r in records if r.from_bot]

    # --- files --------------------------------------------------------------------------

    def add_file(
        self, data: bytes, file_size: int | None, folder: str, extension: str
    ) -> FileRecord:
        number = next(self._ids)
        record = FileRecord(
            file_id=f"emu-file-{number}-{secrets.token_hex(6)}",
            file_unique_id=f"emu-unique-{number}",
            data=data,
            file_size=len(data) if file_size is None else file_size,
            file_path=f"{folder}/file_{number}.{extension}",
        )
        self.files[record.file_id] = record
        self.files_by_path[record.file_path] = record
        return record

    def photo_sizes(self, blobs: list[bytes]) -> list[JSON]:
        sizes = []
        for index, data in enumerate(blobs):
            record = self.add_file(data, None, "photos", "jpg")
            # Without a readable header, invent sizes that grow like Telegram's (s, m, x, y).
            width, height = image_size(data) or (90 * 4**index, 60 * 4**index)
            sizes.append({**record.to_api(with_path=False), "width": width, "height": height})
        return sizes

    def new_callback_query_id(self) -> str:
        query_id = str(4_000_000_000 + next(self._ids))
        self.callback_queries[query_id] = False
        return query_id


def require_message(world: World, chat_id: int, message_id: int, action: str) -> MessageRecord:
    record = world.record(chat_id, message_id)
    if record is None:
        raise bad_request(f"message to {action} not found")
    return record


__all__ = [
    "ChatRecord",
    "FileRecord",
    "MessageRecord",
    "UserRecord",
    "World",
    "image_size",
    "require_message",
]
