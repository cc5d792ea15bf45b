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

from bot.presenting import (
    ResultLine,
    delete_warning_for,
    expiry_phrase,
    rehosted_heading,
    upload_lines,
)
from bot.store import UploadRecord

NO_PREVIEW = LinkPreviewOptions(is_disabled=True)
MAX_BUTTON_ROWS = 10
MAX_TEXT = 4096  # Telegram's limit for one message


def _link(label: str, url: str | None) -> str:
    return f'<a href="{escape(url, quote=True)}">{label}</a>' if url else f"{label}: pending"


def _state(upload: UploadRecord) -> str:
    if upload.state != "active":
        return f"#{upload.id} {upload.state}"
    return f"#{upload.id} on {escape(upload.host)}, {expiry_phrase(upload.expires_at)}"


def _note(line: ResultLine) -> str:
    return f"; {escape(line.note)}" if line.note else ""


def public_text(lines: Sequence[ResultLine], owner: str | None = None) -> str:
    """Viewer and direct links; a spoiler's as spoilers (send it with NO_PREVIEW)."""
    parts = [rehosted_heading(lines) + (f" (for {escape(owner)})" if owner else "")]
    for line in lines:
        prefix = f"{line.number}. " if len(lines) > 1 else ""
        upload = line.upload
        if upload is None:
            parts.append(f"{prefix}{escape(line.name)}: {escape(line.error or 'failed')}")
        elif upload.state != "active":
            parts.append(f"{prefix}{_state(upload)}")
        else:
            links = f"{_link('viewer', upload.viewer_url)} · {_link('direct', upload.url)}"
            if line.spoiler:
                links = f"<tg-spoiler>{links}</tg-spoiler> (spoiler)"
            parts.append(f"{prefix}{links} ({_state(upload)}{_note(line)})")
    return "\n".join(parts)


def private_text(
    lines: Sequence[ResultLine], where: str | None = None, heading: str | None = None
) -> str:
    """Full details, delete links included. Send only in private, with NO_PREVIEW."""
    heading = heading or rehosted_heading(lines) + (f" (in {escape(where)})" if where else "")
    parts = [heading]
    any_delete = False
    for line in lines:
        upload = line.upload
        parts.append("")
        if upload is None:
            parts.append(f"{line.number}. {escape(line.name)}: {escape(line.error or 'failed')}")
            continue
        parts.append(f"{line.number}. {_state(upload)}{_note(line)}")
        if upload.state != "active":
            continue
        parts.append(f"Viewer: {escape(upload.viewer_url)}")
        parts.append(f"Direct: {escape(upload.url or 'held for moderation')}")
        if upload.delete_url:
            any_delete = True
            parts.append(f"Delete: {escape(upload.delete_url)}")
        elif upload.reused_from is not None:
            parts.append("(same image as an earlier upload by someone else: no delete link)")
    warning = delete_warning_for(line.upload for line in lines) if any_delete else None
    if warning:
        parts += ["", f"<i>{escape(warning)} Or use the Delete button.</i>"]
    return "\n".join(parts)


def public_keyboard(lines: Sequence[ResultLine]) -> InlineKeyboardMarkup | None:
    """Open, and Take down for the group's admins (the bot checks who pressed it)."""
    rows = [
        [
            InlineKeyboardButton(_label("Open", line, lines), url=line.upload.viewer_url),
            InlineKeyboardButton(
                _label("Take down", line, lines), callback_data=f"td:{line.upload.id}"
            ),
        ]
        for line in lines
        if line.upload is not None and line.upload.state == "active"
    ]
    return InlineKeyboardMarkup(rows[:MAX_BUTTON_ROWS]) if rows else None


def private_keyboard(lines: Sequence[ResultLine]) -> InlineKeyboardMarkup | None:
    rows = []
    for line in lines:
        upload = line.upload
        if upload is None or upload.state != "active":
            continue
        rows.append(
            [
                InlineKeyboardButton(_label("Open", line, lines), url=upload.viewer_url),
                InlineKeyboardButton(
                    _label("Delete", line, lines), callback_data=f"del:{upload.id}"
                ),
            ]
        )
    return InlineKeyboardMarkup(rows[:MAX_BUTTON_ROWS]) if rows else None


def _label(verb: str, line: ResultLine, lines: Sequence[ResultLine]) -> str:
    return f"{verb} {line.number}" if len(lines) > 1 else verb


def confirm_text(upload: UploadRecord) -> str:
    return (
        f"Delete #{upload.id} ({escape(upload.viewer_url)})? "
        "The image will be gone for everyone it was shared with."
    )


def confirm_keyboard(upload_id: int) -> InlineKeyboardMarkup:
    return InlineKeyboardMarkup(
        [
            [
                InlineKeyboardButton("Yes, delete", callback_data=f"delok:{upload_id}"),
                InlineKeyboardButton("Cancel", callback_data=f"delno:{upload_id}"),
            ]
        ]
    )


def mine(uploads: Sequence[UploadRecord]) -> tuple[str, InlineKeyboardMarkup | None]:
    """The /mine answer: as many of the newest uploads as fit one message (and its
    buttons), saying how many more there are."""
    if not uploads:
        return "You have no live uploads.", None
    shown = list(uploads[:MAX_BUTTON_ROWS])
    while True:
        rest = len(uploads) - len(shown)
        heading = "Your live uploads" + (f" (newest {len(shown)}; {rest} more):" if rest else ":")
        text = private_text(upload_lines(shown), heading=heading)
        if len(text) <= MAX_TEXT or len(shown) == 1:
            return text, private_keyboard(upload_lines(shown))
        shown.pop()


PHOTO_NOTE = (
    "\n\n<i>Telegram sends photos recompressed, as a smaller JPEG, and that is what was "
    "rehosted. To keep your original, send it as a file (📎 > File): Telegram leaves "
    "files as they are.</i>"
)

HELP = (
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
