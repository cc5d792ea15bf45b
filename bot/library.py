"""A user's library: their uploads, the bot posts that show them, and chat settings."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable
from datetime import datetime
from typing import Literal

from bot.expiration import Duration
from bot.store import ChatSettings, Store, UploadRecord


class Library:
    def __init__(self, store: Store, clock: Callable[[], datetime]) -> None:
        self.store = store
        self._clock = clock

    async def upload(self, upload_id: int) -> UploadRecord | None:
        return await self.store.upload(upload_id)

    async def owned_upload(
        self, upload_id: int, platform: str, owner_id: str
    ) -> UploadRecord | None:
        """The upload if it belongs to this user on this platform, else ``None``."""
        upload = await self.upload(upload_id)
        if upload is None or upload.platform != platform or upload.owner_id != owner_id:
            return None
        return upload

    async def live_uploads(
        self, platform: str, owner_id: str, limit: int = 25
    ) -> list[UploadRecord]:
        return await self.store.live_uploads(platform, owner_id, self._clock(), limit)

    async def uploads_in_message(
        self, platform: str, chat_id: str, message_id: str
    ) -> list[UploadRecord]:
        """What a bot message shows, to re-render it after a deletion."""
        return await self.store.uploads_in_message(platform, chat_id, message_id)

    async def hidden_uploads(self, upload_ids: Iterable[int]) -> set[int]:
        """Uploads whose source was hidden by its sender (a spoiler): a post re-rendered
        after a deletion keeps hiding them."""
        return await self.store.hidden_uploads(upload_ids)

    async def chat_settings(self, platform: str, chat_id: str) -> ChatSettings:
        return await self.store.chat_settings(platform, chat_id)

    async def own_chat_settings(self, platform: str, chat_id: str) -> ChatSettings | None:
        """The settings stored for this very chat, or None if it has none of its own."""
        return await self.store.own_chat_settings(platform, chat_id)

    async def claim_notice(self, platform: str, owner_id: str, notice: str, occasion: str) -> bool:
        """For a hint given once per user: whether ``occasion`` (e.g. an outbox row) is the
        one to give it; :meth:`release_notice` if it could not be given after all."""
        return await self.store.claim_notice(platform, owner_id, notice, occasion)

    async def release_notice(
        self, platform: str, owner_id: str, notice: str, occasion: str
    ) -> None:
        await self.store.release_notice(platform, owner_id, notice, occasion)

    async def set_auto_rehost(
        self,
        platform: str,
        chat_id: str,
        enabled: bool,
        expiration: Duration | Literal["keep"] | None = "keep",
    ) -> ChatSettings:
        """Switch auto-rehost; ``expiration`` sets the chat's default (``None``: never),
        or ``"keep"`` leaves it as it is."""
        current = await self.store.chat_settings(platform, chat_id)
        if expiration == "keep":
            label = current.default_expiration
        else:
            label = expiration.label() if expiration else "never"
        updated = dataclasses.replace(current, auto_rehost=enabled, default_expiration=label)
        await self.store.set_chat_settings(platform, chat_id, updated)
        return updated

    async def set_nsfw(self, platform: str, chat_id: str, nsfw: bool) -> ChatSettings:
        """Mark (or stop marking) every image from this chat NSFW on the hosts."""
        current = await self.store.chat_settings(platform, chat_id)
        updated = dataclasses.replace(current, nsfw=nsfw)
        await self.store.set_chat_settings(platform, chat_id, updated)
        return updated

    async def sweep_expired(self) -> int:
        """Mark uploads whose expiry has passed (run periodically)."""
        return await self.store.expire_due(self._clock())
