"""Platform-neutral wording for results, shared by the adapters."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

from bot.errors import ExpirationError
from bot.expiration import Duration, parse_duration
from bot.i18n import (
    ENGLISH,
    N_,
    Said,
    format_datetime,
    format_duration,
    from_stored,
    ntranslate,
    translate,
)
from bot.media import SUPPORTED
from bot.requests import RehostResult
from bot.store import UploadRecord, now_utc

# What opening a delete link does, per host dialect. Chevereto deletes on the first request
# (a preview crawler's included); an ImgBB-style link is a page with a confirm button.
DELETE_LINK_EFFECTS = {
    "chevereto": N_("opening it deletes the image at once"),
    "imgbb": N_("it opens a page where you confirm the deletion"),
}
_UNKNOWN_EFFECT = N_("opening it may delete the image at once")


def delete_link_effect(dialect: str | None, language: str = ENGLISH) -> str:
    """What opening a delete link of this dialect does, e.g. for ``(private: ...)``."""
    return translate(language, DELETE_LINK_EFFECTS.get(dialect or "", _UNKNOWN_EFFECT))


def delete_warning(dialect: str | None, language: str = ENGLISH) -> str:
    """The sentence under one delete link, e.g. ``Keep it private: it opens a page where
    you confirm the deletion.``"""
    return translate(
        language, "Keep it private: {effect}.", effect=delete_link_effect(dialect, language)
    )


def delete_warning_for(
    uploads: Iterable[UploadRecord | None], language: str = ENGLISH
) -> str | None:
    """The sentence under a message's delete links: the wording of their dialect, or both
    wordings naming the hosts when the links come from both; ``None`` without links."""
    hosts: dict[str, list[str]] = {}
    for upload in uploads:
        if upload is not None and upload.delete_url:
            names = hosts.setdefault(upload.dialect or "", [])
            if upload.host not in names:
                names.append(upload.host)
    if not hosts:
        return None
    if len(hosts) == 1:
        return delete_warning(next(iter(hosts)), language)
    parts = [
        translate(
            language,
            "on {hosts} {effect}",
            hosts=", ".join(names),
            effect=delete_link_effect(d, language),
        )
        for d, names in hosts.items()
    ]
    return translate(language, "Keep them private: {parts}.", parts="; ".join(parts))


def expiry_phrase(
    expires_at: datetime | None, now: datetime | None = None, language: str = ENGLISH
) -> str:
    """``never expires`` or ``expires Nov 25, 2026 10:00 UTC`` (dates as ``language``
    writes them)."""
    if expires_at is None:
        return translate(language, "never expires")
    if expires_at <= (now or now_utc()):
        return translate(language, "expired")
    return translate(language, "expires {date}", date=format_datetime(expires_at, language))


def parse_expiry_argument(text: str | None) -> tuple[bool, Duration | None, Said | None]:
    """What a user typed after a command: ``(given, duration, error)``.

    ``given`` is False when nothing was typed (use the chat's or the bot's default).
    """
    if text is None or not text.strip():
        return False, None, None
    try:
        return True, parse_duration(text), None
    except ExpirationError as error:
        return True, None, error.said


def chat_expiry_phrase(label: str | None, language: str = ENGLISH) -> str:
    """How long a chat's auto-rehosted images last, from its stored setting."""
    if label is None:
        return translate(language, "with the bot's default expiry")
    _, duration, error = parse_expiry_argument(label)
    if error:
        return translate(language, "with the bot's default expiry")
    if not duration:
        return translate(language, "kept until deleted")
    return translate(language, "kept for {duration}", duration=format_duration(duration, language))


# --- result lines, the same for every platform ----------------------------------------------


def not_an_image(language: str = ENGLISH) -> str:
    """``not an image: I rehost JPEG, PNG and GIF files`` in ``language``."""
    formats = [image_type.label for image_type in SUPPORTED]
    return Said(N_("not an image: I rehost {formats} files"), {"formats": formats}).in_language(
        language
    )


def error_text(error: Said | str | None, language: str = ENGLISH) -> str:
    """Why an image failed, as the core recorded it (a :class:`Said`, or as a job keeps
    it: :meth:`Said.to_text`), in ``language``; ``failed`` when nothing was recorded."""
    if isinstance(error, str):
        error = from_stored(error)
    if error is None or not error.message:
        return translate(language, "failed")
    return error.in_language(language)


def note_text(note: Said | None, language: str = ENGLISH) -> str | None:
    """How an image was handled (``converted from HEIC to JPEG``), in ``language``."""
    return None if note is None else note.in_language(language)


@dataclass(frozen=True)
class ResultLine:
    """One image of a reply: its upload, or why there is none."""

    number: int
    name: str
    upload: UploadRecord | None = None
    error: Said | None = None
    dedup: bool = False
    spoiler: bool = False  # hidden by its sender: no preview, links as spoilers in public
    note: Said | None = None  # how it was handled, e.g. "converted from HEIC to JPEG"


def result_lines(results: Sequence[RehostResult]) -> list[ResultLine]:
    """Numbered lines for a fresh answer (named after the files)."""
    return [
        ResultLine(i, r.source.filename, r.upload, r.error, r.dedup)
        for i, r in enumerate(results, 1)
    ]


def upload_lines(uploads: Sequence[UploadRecord]) -> list[ResultLine]:
    """Numbered lines for a re-rendered post or a list (named ``#id``)."""
    return [ResultLine(i, f"#{u.id}", u) for i, u in enumerate(uploads, 1)]


def rehosted_heading(lines: Sequence[ResultLine], language: str = ENGLISH) -> str:
    """``Rehosted:``, ``Rehosted 2 images:`` or ``Nothing was rehosted.``"""
    done = sum(1 for line in lines if line.upload is not None)
    if done == 0:
        return translate(language, "Nothing was rehosted.")
    if len(lines) == 1:
        return translate(language, "Rehosted:")
    return ntranslate(language, "Rehosted {n} image:", "Rehosted {n} images:", done)
