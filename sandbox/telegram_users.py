"""What users do in the emulated Telegram: write, send photos, files and animations,
forward messages, press buttons. Each action becomes an update for ``getUpdates`` (unless
privacy mode hides it from the bot) and returns the message as the Bot API shows it.

Messages carry what Telegram puts on them:

- in a forum (a supergroup with topics), ``message_thread_id`` and ``is_topic_message``,
  and a message that replies to nothing replies to its topic's creation message;
- a forward carries the media itself and a ``forward_origin`` (the original sender, or
  the channel and its post), whoever forwards it;
- a GIF sent the usual way arrives as an ``animation``: an MP4 that Telegram made of it,
  with the same file repeated in ``document`` (for clients that predate animations);
- a photo or animation the sender covered has ``has_media_spoiler``.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence

from sandbox.telegram_text import fix_text
from sandbox.telegram_world import JSON, ChatRecord, World, image_size

# What a forward copies of the original message.
_FORWARDED = (
    "text", "entities", "caption", "caption_entities", "photo", "document", "animation",
    "video", "audio", "voice", "sticker", "has_media_spoiler", "show_caption_above_media",
)  # fmt: skip


class UserActions:
    """The user side of :class:`~sandbox.telegram_api.TelegramEmulator`."""

    world: World

    def send_text(
        self,
        chat_id: int,
        from_user: int,
        text: str,
        reply_to_message_id: int | None = None,
        *,
        message_thread_id: int | None = None,
    ) -> JSON:
        """A user writes ``text``; entities (``bot_command`` for ``/cmd``, URLs, ...) are
        detected as Telegram does."""
        clean, entities = fix_text(text, [])
        content: JSON = {"text": clean}
        if entities:
            content["entities"] = entities
        return self._push_message(
            chat_id, from_user, content, reply_to_message_id, message_thread_id
        )

    def send_photo(
        self,
        chat_id: int,
        from_user: int,
        data: bytes | Sequence[bytes],
        caption: str | None = None,
        media_group_id: str | None = None,
        reply_to_message_id: int | None = None,
        *,
        has_media_spoiler: bool = False,
        message_thread_id: int | None = None,
    ) -> JSON:
        """A photo; ``data`` may list several sizes, smallest first (Telegram's order)."""
        blobs = [data] if isinstance(data, bytes) else list(data)
        content: JSON = {"photo": self.world.photo_sizes(blobs)}
        if has_media_spoiler:
            content["has_media_spoiler"] = True
        self._add_caption(content, caption, media_group_id)
        return self._push_message(
            chat_id, from_user, content, reply_to_message_id, message_thread_id
        )

    def send_document(
        self,
        chat_id: int,
        from_user: int,
        data: bytes,
        file_name: str,
        mime_type: str,
        caption: str | None = None,
        media_group_id: str | None = None,
        reply_to_message_id: int | None = None,
        *,
        file_size: int | None = None,
        message_thread_id: int | None = None,
    ) -> JSON:
        """A file sent as a file ("uncompressed"): Telegram keeps its bytes as they are."""
        content: JSON = {"document": self._document(data, file_name, mime_type, file_size)}
        self._add_caption(content, caption, media_group_id)
        return self._push_message(
            chat_id, from_user, content, reply_to_message_id, message_thread_id
        )

    def send_animation(
        self,
        chat_id: int,
        from_user: int,
        data: bytes,
        file_name: str = "animation.mp4",
        mime_type: str = "video/mp4",
        caption: str | None = None,
        reply_to_message_id: int | None = None,
        *,
        duration: int = 3,
        has_media_spoiler: bool = False,
        message_thread_id: int | None = None,
    ) -> JSON:
        """A GIF as Telegram delivers it: an ``animation`` (an MP4 Telegram made of the
        GIF, unless ``mime_type`` says otherwise), with the same file in ``document``."""
        document = self._document(data, file_name, mime_type, None, folder="animations")
        width, height = image_size(data) or (320, 240)
        animation = {**document, "width": width, "height": height, "duration": duration}
        content: JSON = {"animation": animation, "document": document}
        if has_media_spoiler:
            content["has_media_spoiler"] = True
        self._add_caption(content, caption, None)
        return self._push_message(
            chat_id, from_user, content, reply_to_message_id, message_thread_id
        )

    def forward_message(
        self,
        chat_id: int,
        from_user: int,
        source_chat_id: int,
        message_id: int,
        *,
        message_thread_id: int | None = None,
    ) -> JSON:
        """``from_user`` forwards a message of ``source_chat_id`` into ``chat_id``: the
        media itself, and where it came from in ``forward_origin`` (kept from the original
        when that was a forward already)."""
        record = self.world.record(source_chat_id, message_id)
        if record is None:
            raise ValueError(f"no message {message_id} in chat {source_chat_id}")
        original = record.message
        content: JSON = {key: copy.deepcopy(original[key]) for key in _FORWARDED if key in original}
        content["forward_origin"] = copy.deepcopy(
            original.get("forward_origin") or self._origin(source_chat_id, original)
        )
        return self._push_message(chat_id, from_user, content, None, message_thread_id)

    def delete_message(self, chat_id: int, message_id: int) -> None:
        """A user deletes a message. Telegram tells bots nothing of it: a reply to it now
        fails, unless sent with ``allow_sending_without_reply``."""
        if self.world.record(chat_id, message_id) is None:
            raise ValueError(f"no message {message_id} in chat {chat_id}")
        self.world.messages[chat_id][message_id].deleted = True

    def press_button(
        self, chat_id: int, from_user: int, message_id: int, callback_data: str
    ) -> JSON:
        """The user presses the inline button carrying ``callback_data`` on a bot message."""
        user = self.world.user(from_user)
        record = self.world.record(chat_id, message_id)
        if record is None or not record.from_bot:
            raise ValueError(f"no bot message {message_id} in chat {chat_id}")
        rows = record.message.get("reply_markup", {}).get("inline_keyboard", [])
        if not any(b.get("callback_data") == callback_data for row in rows for b in row):
            raise ValueError(f"message {message_id} has no button with data {callback_data!r}")
        query: JSON = {
            "id": self.world.new_callback_query_id(),
            "from": user.to_api(),
            "message": copy.deepcopy(record.message),
            "chat_instance": str(abs(hash((chat_id, self.world.bot_id)))),
            "data": callback_data,
        }
        self.world.updates.push("callback_query", query)
        return copy.deepcopy(query)

    # --- building messages --------------------------------------------------------------

    def _document(
        self,
        data: bytes,
        file_name: str,
        mime_type: str,
        file_size: int | None,
        folder: str = "documents",
    ) -> JSON:
        extension = file_name.rpartition(".")[2] if "." in file_name else "bin"
        record = self.world.add_file(data, file_size, folder, extension)
        return {**record.to_api(with_path=False), "file_name": file_name, "mime_type": mime_type}

    def _origin(self, chat_id: int, message: JSON) -> JSON:
        """Telegram's ``MessageOrigin`` for a message forwarded for the first time."""
        chat = self.world.chat(chat_id)
        if chat.type == "channel":
            return {
                "type": "channel",
                "chat": chat.to_api(),
                "message_id": message["message_id"],
                "date": message["date"],
            }
        return {"type": "user", "sender_user": message["from"], "date": message["date"]}

    @staticmethod
    def _add_caption(content: JSON, caption: str | None, media_group_id: str | None) -> None:
        if caption:
            text, entities = fix_text(caption, [])
            content["caption"] = text
            if entities:
                content["caption_entities"] = entities
        if media_group_id is not None:
            content["media_group_id"] = str(media_group_id)

    def _push_message(
        self,
        chat_id: int,
        from_user: int,
        content: JSON,
        reply_to_message_id: int | None,
        message_thread_id: int | None = None,
    ) -> JSON:
        chat = self.world.chat(chat_id)
        user = self.world.user(from_user)
        if chat.type == "private":
            if chat_id != from_user:
                raise ValueError("in a private chat, chat_id is the user's id")
            user.started = True  # writing to the bot lets it answer
        reply = None
        if reply_to_message_id is not None:
            if self.world.record(chat_id, reply_to_message_id) is None:
                raise ValueError(f"no message {reply_to_message_id} in chat {chat_id}")
            reply = self.world.reply_target(chat_id, reply_to_message_id, allow_missing=False)
            content["reply_to_message"] = reply
        if message_thread_id is not None and message_thread_id not in chat.topics:
            raise ValueError(f"no topic {message_thread_id} in chat {chat_id}: add_topic() first")
        content.update(self.world.placement(chat, message_thread_id, reply))
        record = self.world.add_message(chat, user.to_api(), content)
        message = copy.deepcopy(record.message)
        if self._delivered(chat, message):
            self.world.updates.push("message", copy.deepcopy(message))
        return message

    def _delivered(self, chat: ChatRecord, message: JSON) -> bool:
        """Privacy mode: in groups where it is not an admin, a bot sees only commands,
        replies to itself and mentions of itself."""
        if not self.world.privacy_mode or chat.user is not None or chat.bot_is_admin:
            return True
        text = message.get("text") or message.get("caption") or ""
        if text.startswith("/"):
            command = text.split()[0]
            addressee = command.partition("@")[2]
            return not addressee or addressee.lower() == self.world.bot_username.lower()
        replied = message.get("reply_to_message", {})
        if replied.get("from", {}).get("id") == self.world.bot_id:
            return True
        return self._mentioned(text, message.get("entities") or message.get("caption_entities"))

    def _mentioned(self, text: str, entities: list[JSON] | None) -> bool:
        """Whether an ``@username`` mention in ``text`` names the bot."""
        encoded = text.encode("utf-16-le")
        for entity in entities or []:
            if entity["type"] == "mention":
                start, end = entity["offset"] * 2, (entity["offset"] + entity["length"]) * 2
                name = encoded[start:end].decode("utf-16-le")
                if name[1:].lower() == self.world.bot_username.lower():
                    return True
        return False


__all__ = ["UserActions"]
