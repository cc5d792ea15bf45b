"""Platform-neutral wording for results, shared by the adapters."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from bot.errors import ExpirationError
from bot.expiration import Duration, parse_duration
from bot.requests import RehostResult
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


def chat_expiry_phrase(label: str | None) -> str:
    """How long a chat's auto-rehosted images last, from its stored setting."""
    if label is None:
        return "with the bot's default expiry"
    _, duration, error = parse_expiry_argument(label)
    if error:
        return "with the bot's default expiry"
    return f"kept for {duration.describe()}" if duration else "kept until deleted"


# --- result lines, the same for every platform ----------------------------------------------

NOT_AN_IMAGE = "not an image: I rehost JPEG, PNG, GIF, WebP, BMP and TIFF files"


@dataclass(frozen=True)
class ResultLine:
    """One image of a reply: its upload, or why there is none."""

    number: int
    name: str
    upload: UploadRecord | None = None
    error: str | None = None
    dedup: bool = False


def result_lines(results: Sequence[RehostResult]) -> list[ResultLine]:
    """Numbered lines for a fresh answer (named after the files)."""
    return [
        ResultLine(i, r.source.filename, r.upload, r.error, r.dedup)
        for i, r in enumerate(results, 1)
    ]


def upload_lines(uploads: Sequence[UploadRecord]) -> list[ResultLine]:
    """Numbered lines for a re-rendered post or a list (named ``#id``)."""
    return [ResultLine(i, f"#{u.id}", u) for i, u in enumerate(uploads, 1)]


def rehosted_heading(lines: Sequence[ResultLine]) -> str:
    """``Rehosted:``, ``Rehosted 2 images:`` or ``Nothing was rehosted.``"""
    done = sum(1 for line in lines if line.upload is not None)
    if done == 0:
        return "Nothing was rehosted."
    return f"Rehosted {done} image{'s' if done != 1 else ''}:" if len(lines) > 1 else "Rehosted:"
