"""Platform-neutral wording for results, shared by the adapters."""

from __future__ import annotations

from datetime import datetime

from bot.errors import ExpirationError
from bot.expiration import Duration, parse_duration
from bot.store import UploadRecord, now_utc

DELETE_WARNING = "Keep it private: opening it deletes the image."


def expiry_phrase(expires_at: datetime | None, now: datetime | None = None) -> str:
    """``never expires`` or ``expires 2026-11-25 10:00 UTC``."""
    if expires_at is None:
        return "never expires"
    if expires_at <= (now or now_utc()):
        return "expired"
    return f"expires {expires_at:%Y-%m-%d %H:%M} UTC"


def parse_expiry_argument(text: str | None) -> tuple[bool, Duration | None, str | None]:
    """What a user typed after a command: ``(given, duration, error)``.

    ``given`` is False when nothing was typed (use the chat's or the bot's default).
    """
    if text is None or not text.strip():
        return False, None, None
    try:
        return True, parse_duration(text), None
    except ExpirationError as error:
        return True, None, error.user_message


def upload_title(upload: UploadRecord) -> str:
    """``#12 on imgz``: how an upload is named in lists and confirmations."""
    return f"#{upload.id} on {upload.host}"
