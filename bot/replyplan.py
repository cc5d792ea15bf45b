"""What the bot says after a rehost, and to whom: one reply contract for every platform.

The core turns a finished batch into planned messages; an adapter only decides how its
platform says each one. The rule that keeps delete links safe lives here and nowhere else:

- a PUBLIC message goes to the chat and never carries a delete link: :func:`lines` strips
  them from what it hands the renderer, so no renderer can show one;
- a PRIVATE message goes only to the owner (their private chat with the bot, their direct
  messages, or a reply only they can see) and is always sent without link previews, because
  a preview crawler opening a Chevereto delete link deletes the image.

When the private part goes by direct message it is sent first, so the public message can
say whether it arrived (or that the owner must open a private chat to get their links).
When the platform can show it in place (a Discord ephemeral follow-up), the public part
goes first, as the platform requires.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

from bot.i18n import N_, Said, from_stored
from bot.presenting import ResultLine
from bot.queue import Batch
from bot.states import Visibility
from bot.store import UploadRecord


@dataclass(frozen=True)
class ReplyItem:
    """One image of the answer: its upload, or why there is none."""

    name: str
    upload_id: int | None = None
    # As the job keeps them (bot.said.Said.to_text): a msgid, or one with parameters.
    error: str | None = None
    dedup: bool = False
    spoiler: bool = False  # hidden by its sender: no preview, links as spoilers in public
    note: str | None = None  # e.g. "converted from HEIC to JPEG"


@dataclass(frozen=True)
class PlannedMessage:
    visibility: Visibility
    chat_id: str | None  # None: the owner's direct messages
    owner_id: str
    reply_to: str | None
    items: tuple[ReplyItem, ...]
    skipped: tuple[str, ...] = ()  # attachments that are not images
    # Public, with the private part sent by direct message: say whether it arrived.
    tells_where_private_went: bool = False
    # Private, sent outside the chat it is about: that chat's title ("" when unknown).
    about_chat: str | None = None
    owner_name: str = ""
    in_place: bool = False  # private, shown in the chat to the owner only (ephemeral)
    # Not a new message: re-render this bot post in ``chat_id`` from what the store now
    # holds for it (edited, or removed when nothing in it is live), as after a deletion.
    refresh_message_id: str | None = None
    # A line from the core to put first (e.g. "moved to ..."), as a Said keeps it
    # (bot.said.Said.to_text): written out in the reader's language by note_in.
    note: str | None = None
    # The reader's language when the core knows it (a community's setting) and no batch
    # says it; None: the adapter decides.
    language: str | None = None

    def note_in(self, language: str) -> str | None:
        """``note`` in ``language``."""
        note = from_stored(self.note)
        return None if note is None else note.in_language(language)

    @property
    def previews(self) -> bool:
        """Link previews are allowed only where no delete link can be."""
        return self.visibility is Visibility.PUBLIC

    def to_json(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["visibility"] = str(self.visibility)
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> PlannedMessage:
        values = dict(data)
        values["visibility"] = Visibility(values["visibility"])
        values["items"] = tuple(ReplyItem(**item) for item in values["items"])
        values["skipped"] = tuple(values.get("skipped") or ())
        params = values.pop("note_params", None)  # queued before notes were kept as Said
        if params is not None and values.get("note"):
            values["note"] = Said(values["note"], params).to_text()
        return cls(**values)


def plan_reply(
    batch: Batch, items: Sequence[ReplyItem], owner_has_delete_links: bool
) -> list[PlannedMessage]:
    """The messages answering ``batch``, in the order they are to be sent."""
    common: dict[str, Any] = {
        "owner_id": batch.owner_id,
        "items": tuple(items),
        "owner_name": batch.owner_name,
    }
    if batch.private_chat:
        return [
            PlannedMessage(
                Visibility.PRIVATE,
                batch.chat_id,
                reply_to=batch.message_id,
                skipped=batch.skipped,
                **common,
            )
        ]
    public = PlannedMessage(
        Visibility.PUBLIC,
        batch.chat_id,
        reply_to=batch.message_id,
        skipped=batch.skipped,
        tells_where_private_went=owner_has_delete_links and not batch.private_in_place,
        **common,
    )
    if not owner_has_delete_links:
        return [public]
    if batch.private_in_place:
        private = PlannedMessage(
            Visibility.PRIVATE, batch.chat_id, reply_to=None, in_place=True, **common
        )
        return [public, private]
    private = PlannedMessage(
        Visibility.PRIVATE,
        None,
        reply_to=None,
        about_chat=batch.chat_title or "",
        **common,
    )
    return [private, public]


async def uploads_of(
    message: PlannedMessage, upload: Callable[[int], Awaitable[UploadRecord | None]]
) -> dict[int, UploadRecord]:
    """The records ``message`` shows, loaded by ``upload``, for :func:`lines`."""
    found = {}
    for item in message.items:
        if item.upload_id is not None and item.upload_id not in found:
            record = await upload(item.upload_id)
            if record is not None:
                found[item.upload_id] = record
    return found


def lines(
    message: PlannedMessage, upload: Callable[[int], UploadRecord | None]
) -> list[ResultLine]:
    """The numbered lines a renderer shows for ``message``, uploads loaded by ``upload``.
    A public message's uploads come without their delete links."""
    shown = []
    for number, item in enumerate(message.items, 1):
        record = upload(item.upload_id) if item.upload_id is not None else None
        if record is not None and message.visibility is Visibility.PUBLIC:
            record = dataclasses.replace(record, delete_url=None)
        error = from_stored(item.error) if record is None else None
        if item.upload_id is not None and record is None:
            error = Said(N_("no longer recorded"))
        note = from_stored(item.note)
        shown.append(ResultLine(number, item.name, record, error, item.dedup, item.spoiler, note))
    return shown


def refresh_post(
    platform_chat: str, message_id: str, visibility: Visibility, owner_id: str
) -> PlannedMessage:
    """Re-render one bot post after its uploads changed (moved to another host)."""
    return PlannedMessage(
        visibility,
        platform_chat,
        owner_id,
        reply_to=None,
        items=(),
        refresh_message_id=message_id,
    )


def moved_notice(
    owner_id: str, upload_id: int, old_host: str, new_host: str, language: str | None = None
) -> PlannedMessage:
    """The owner's new links (delete link included, in private) after a move, in
    ``language`` (theirs, see :func:`bot.userlanguages.owner_language`)."""
    return PlannedMessage(
        Visibility.PRIVATE,
        None,
        owner_id,
        reply_to=None,
        items=(ReplyItem(f"#{upload_id}", upload_id),),
        note=Said(
            N_("Your image #{id} moved from {old} to {new}: new links."),
            {"id": upload_id, "old": old_host, "new": new_host},
        ).to_text(),
        language=language,
    )


def public_view(uploads: Sequence[UploadRecord]) -> list[UploadRecord]:
    """Uploads as a public post may show them (re-rendered after a deletion)."""
    return [dataclasses.replace(upload, delete_url=None) for upload in uploads]
