"""Telegram texts and keyboards (HTML parse mode) for results, lists and deletions.

Public texts carry viewer and direct links only. Private texts add the delete link, and
every message that carries one is sent with link previews disabled: Telegram's preview
fetcher would request a Chevereto delete link, which deletes the image. An image its sender
covered with a spoiler stays covered: its public links are spoilers, sent without preview.
"""

from __future__ import annotations

from collections.abc import Sequence
from html import escape

from telegram import InlineKeyboardButton, InlineKeyboardMarkup, LinkPreviewOptions

from bot.i18n import ENGLISH, N_, translate
from bot.presenting import (
    ResultLine,
    delete_warning_for,
    error_text,
    expiry_phrase,
    note_text,
    rehosted_heading,
    upload_lines,
)
from bot.store import UploadRecord

NO_PREVIEW = LinkPreviewOptions(is_disabled=True)
MAX_BUTTON_ROWS = 10
MAX_TEXT = 4096  # Telegram's limit for one message


STATES = {
    "deleted": N_("#{id} deleted"),
    "expired": N_("#{id} expired"),
    "failed": N_("#{id} failed"),
}


def _link(label: str, url: str | None, language: str = ENGLISH) -> str:
    if url:
        return f'<a href="{escape(url, quote=True)}">{label}</a>'
    return translate(language, "{label}: pending", label=label)


def _state(upload: UploadRecord, language: str = ENGLISH) -> str:
    if upload.state != "active":
        said = STATES.get(upload.state)
        if said is None:
            return f"#{upload.id} {upload.state}"
        return translate(language, said, id=upload.id)
    return translate(
        language,
        "#{id} on {host}, {expiry}",
        id=upload.id,
        host=escape(upload.host),
        expiry=expiry_phrase(upload.expires_at, language=language),
    )


def _note(line: ResultLine, language: str) -> str:
    note = note_text(line.note, language)
    return f"; {escape(note)}" if note else ""


def public_text(
    lines: Sequence[ResultLine], owner: str | None = None, language: str = ENGLISH
) -> str:
    """Viewer and direct links; a spoiler's as spoilers (send it with NO_PREVIEW)."""
    heading = rehosted_heading(lines, language)
    if owner:
        heading = translate(
            language, "{heading} (for {owner})", heading=heading, owner=escape(owner)
        )
    parts = [heading]
    for line in lines:
        prefix = f"{line.number}. " if len(lines) > 1 else ""
        upload = line.upload
        if upload is None:
            parts.append(f"{prefix}{escape(line.name)}: {escape(error_text(line.error, language))}")
        elif upload.state != "active":
            parts.append(f"{prefix}{_state(upload, language)}")
        else:
            viewer, direct = translate(language, "viewer"), translate(language, "direct")
            links = f"{_link(viewer, upload.viewer_url)} · {_link(direct, upload.url, language)}"
            if line.spoiler:
                links = translate(
                    language, "<tg-spoiler>{links}</tg-spoiler> (spoiler)", links=links
                )
            parts.append(f"{prefix}{links} ({_state(upload, language)}{_note(line, language)})")
    return "\n".join(parts)


def private_text(
    lines: Sequence[ResultLine],
    where: str | None = None,
    heading: str | None = None,
    language: str = ENGLISH,
) -> str:
    """Full details, delete links included. Send only in private, with NO_PREVIEW."""
    if not heading:
        heading = rehosted_heading(lines, language)
        if where:
            heading = translate(
                language, "{heading} (in {place})", heading=heading, place=escape(where)
            )
    parts = [heading]
    any_delete = False
    for line in lines:
        upload = line.upload
        parts.append("")
        if upload is None:
            why = escape(error_text(line.error, language))
            parts.append(f"{line.number}. {escape(line.name)}: {why}")
            continue
        parts.append(f"{line.number}. {_state(upload, language)}{_note(line, language)}")
        if upload.state != "active":
            continue
        parts.append(translate(language, "Viewer: {url}", url=escape(upload.viewer_url)))
        direct = upload.url or translate(language, "held for moderation")
        parts.append(translate(language, "Direct: {url}", url=escape(direct)))
        if upload.delete_url:
            any_delete = True
            parts.append(translate(language, "Delete: {url}", url=escape(upload.delete_url)))
        elif upload.reused_from is not None:
            parts.append(
                translate(
                    language, "(same image as an earlier upload by someone else: no delete link)"
                )
            )
    warning = delete_warning_for((line.upload for line in lines), language) if any_delete else None
    if warning:
        tail = translate(language, "{warning} Or use the Delete button.", warning=escape(warning))
        parts += ["", f"<i>{tail}</i>"]
    return "\n".join(parts)


# Button verbs (:func:`_label` translates them).
VERBS = (N_("Open"), N_("Delete"), N_("Take down"))


def public_keyboard(
    lines: Sequence[ResultLine], language: str = ENGLISH
) -> InlineKeyboardMarkup | None:
    """Open, and Take down for the group's admins (the bot checks who pressed it)."""
    rows = [
        [
            InlineKeyboardButton(_label("Open", line, lines, language), url=line.upload.viewer_url),
            InlineKeyboardButton(
                _label("Take down", line, lines, language), callback_data=f"td:{line.upload.id}"
            ),
        ]
        for line in lines
        if line.upload is not None and line.upload.state == "active"
    ]
    return InlineKeyboardMarkup(rows[:MAX_BUTTON_ROWS]) if rows else None


def private_keyboard(
    lines: Sequence[ResultLine], language: str = ENGLISH
) -> InlineKeyboardMarkup | None:
    rows = []
    for line in lines:
        upload = line.upload
        if upload is None or upload.state != "active":
            continue
        rows.append(
            [
                InlineKeyboardButton(_label("Open", line, lines, language), url=upload.viewer_url),
                InlineKeyboardButton(
                    _label("Delete", line, lines, language), callback_data=f"del:{upload.id}"
                ),
            ]
        )
    return InlineKeyboardMarkup(rows[:MAX_BUTTON_ROWS]) if rows else None


def _label(
    verb: str, line: ResultLine, lines: Sequence[ResultLine], language: str = ENGLISH
) -> str:
    """A button's verb (one of :data:`VERBS`) in ``language``, numbered among several."""
    said = translate(language, verb)
    return f"{said} {line.number}" if len(lines) > 1 else said


def confirm_text(upload: UploadRecord, language: str = ENGLISH) -> str:
    return translate(
        language,
        "Delete #{id} ({viewer})? The image will be gone for everyone it was shared with.",
        id=upload.id,
        viewer=escape(upload.viewer_url),
    )


def confirm_keyboard(upload_id: int, language: str = ENGLISH) -> InlineKeyboardMarkup:
    return InlineKeyboardMarkup(
        [
            [
                InlineKeyboardButton(
                    translate(language, "Yes, delete"), callback_data=f"delok:{upload_id}"
                ),
                InlineKeyboardButton(
                    translate(language, "Cancel"), callback_data=f"delno:{upload_id}"
                ),
            ]
        ]
    )


def mine(
    uploads: Sequence[UploadRecord], language: str = ENGLISH
) -> tuple[str, InlineKeyboardMarkup | None]:
    """The /mine answer: as many of the newest uploads as fit one message (and its
    buttons), saying how many more there are."""
    if not uploads:
        return translate(language, "You have no live uploads."), None
    shown = list(uploads[:MAX_BUTTON_ROWS])
    while True:
        rest = len(uploads) - len(shown)
        if rest:
            heading = translate(
                language,
                "Your live uploads (newest {shown}; {rest} more):",
                shown=len(shown),
                rest=rest,
            )
        else:
            heading = translate(language, "Your live uploads:")
        text = private_text(upload_lines(shown), heading=heading, language=language)
        if len(text) <= MAX_TEXT or len(shown) == 1:
            return text, private_keyboard(upload_lines(shown), language)
        shown.pop()


def photo_note(language: str = ENGLISH) -> str:
    return "\n\n<i>" + translate(language, PHOTO_NOTE_TEXT) + "</i>"


PHOTO_NOTE_TEXT = N_(
    "Telegram sends photos recompressed, as a smaller JPEG, and that is what was "
    "rehosted. To keep your original, send it as a file (📎 > File): Telegram leaves "
    "files as they are."
)

HELP = N_(
    "I rehost images on a stable image host and give you links that keep working.\n\n"
    "• Send me a photo or an image file here: you get the links and a private delete link.\n"
    "• In a group, send /upload [duration] as the caption of a photo, or reply /upload to "
    "a message with a photo. The group sees the links; the delete link comes here.\n"
    "• Image links: send me a link to an image here, or /upload <link> [duration] anywhere.\n"
    "• Durations: 10m, 1h, 3d, 2w, 1mo, 1y or never.\n"
    "• /mine lists your uploads; /delete ID deletes one.\n"
    "• Telegram recompresses photos: to rehost your original, send it as a file. GIFs too: "
    "sent the usual way they become MP4 videos, which image hosts do not take.\n"
    "• Group admins: /autorehost on [duration] rehosts every image in the group; "
    "/autorehost off stops. In a topic, add “here” to switch only that topic."
)


def help_text(language: str = ENGLISH) -> str:
    return translate(language, HELP)
