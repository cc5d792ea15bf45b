"""What an adapter hands the core (a request to rehost some sources) and gets back."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from bot.expiration import Duration
from bot.said import Said
from bot.store import UploadRecord


@dataclass(frozen=True)
class SourceRef:
    """Where an attachment's bytes are, and what the platform says about them."""

    filename: str
    url: str | None = None  # fetchable as is (a Discord attachment; may need refreshing)
    file_id: str | None = None  # resolved to a URL by the platform's resolver (Telegram)
    declared_size: int | None = None
    declared_mime: str | None = None
    # The platform's stable id for these exact bytes (Telegram's file_unique_id), so a
    # repeat is recognised without downloading it again.
    source_key: str | None = None
    # Unique within its request (a message's attachment id, an album item's message id):
    # recording the same item again adds nothing.
    item_key: str | None = None
    # A link a user gave (not a platform's attachment URL): fetched only from public
    # addresses (``[links] allowed_networks`` aside), see :mod:`bot.linkguard`.
    user_link: bool = False
    # Hidden by its sender (a Discord spoiler, a Telegram media spoiler): the public answer
    # shows no preview and the host is told it is NSFW.
    spoiler: bool = False

    def to_json(self) -> dict[str, object]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: Mapping[str, object]) -> SourceRef:
        return cls(**{key: data.get(key) for key in cls.__dataclass_fields__})  # type: ignore[arg-type]


# Turns a source into a download URL: a Telegram file_id through getFile, a Discord
# attachment URL re-signed when it has expired. Raises ValueError with a user-fit message
# (e.g. the file is over the platform's download limit).
Resolver = Callable[[SourceRef], Awaitable[str]]


@dataclass(frozen=True)
class RehostRequest:
    platform: str
    chat_id: str
    owner_id: str
    sources: Sequence[SourceRef]
    message_id: str | None = None
    expiration: Duration | None = None
    use_default_expiration: bool = True  # False: ``expiration`` was given (None = never)
    # Derived from the platform event (chat and message, interaction id...), so that an
    # event handled twice after a crash is recorded once. None: a fresh random key.
    key: str | None = None
    owner_name: str = ""
    chat_title: str | None = None  # None: the chat is the owner's private chat with the bot
    # The platform can show the owner a private answer in the chat itself (Discord's
    # ephemeral follow-up to a command).
    private_in_place: bool = False
    context: Mapping[str, Any] = field(default_factory=dict)  # kept for the adapter
    skipped: Sequence[str] = ()  # attachments that are not images, to name in the answer
    gather: float = 0.0  # seconds to wait for more items of the same key (an album)
    # False: not counted against the owner's rate limit (a backfill an admin asked for).
    rate_limited: bool = True
    # The community the message was posted in (a Discord server's id, a Telegram group's
    # chat id); None for a private chat. Its managers' settings and quotas apply.
    community_id: str | None = None


@dataclass(frozen=True)
class RehostResult:
    source: SourceRef
    upload: UploadRecord | None = None
    dedup: bool = False
    error: Said | None = None  # why it was not stored, in words for the user
    note: Said | None = None  # how it was handled, e.g. "converted from HEIC to JPEG"

    @property
    def ok(self) -> bool:
        return self.upload is not None

    @property
    def delete_url(self) -> str | None:
        """The owner's delete link (never set for links reused from another owner)."""
        return self.upload.delete_url if self.upload else None
