"""Takedowns: a community's moderator removes an upload that was posted in it.

Adapters decide who is a moderator (Discord's Manage Messages in the channel, a Telegram
group's admins) and which chats belong to the community; this module does the rest, the
same on every platform:

- the upload must have been posted in the community: an id from elsewhere gets the same
  answer as an unknown one, so ids of other communities cannot be probed;
- the image is deleted on the host through :class:`~bot.deletion.DeleteService`, exactly
  as its owner's delete would; where the host has no delete API (ImgBB-style hosts) or
  gave no delete link, the upload is marked deleted so the bot stops showing it, and the
  image stays on the host until it expires (the owner still has its delete link);
- the takedown is recorded in ``takedowns`` with who did it;
- the uploader is told in private, through the outbox like every other private answer;
- the caller gets the bot posts to re-render (a public post with nothing left is removed).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from bot.deletion import DeleteService, DeleteStatus
from bot.i18n import N_, Said
from bot.outbox import Outbox
from bot.replyplan import PlannedMessage, ReplyItem
from bot.states import Visibility
from bot.store import ACTIVE, DELETED, BotMessage, Store, UploadRecord, now_utc, to_text
from bot.userlanguages import owner_language

log = logging.getLogger(__name__)

# Moderator id of a takedown caused by deleting the source message, its author unknown.
SOURCE_DELETED = "source-deleted"


@dataclass(frozen=True)
class Moderator:
    id: str
    name: str = ""


@dataclass(frozen=True)
class Community:
    """A Discord server or a Telegram group; ``holds`` says whether a chat (a channel or
    thread id; the group's own id) belongs to it."""

    platform: str
    id: str
    holds: Callable[[str], Awaitable[bool]]
    title: str = ""


@dataclass(frozen=True)
class Takedown:
    taken_down: bool
    message: str  # for the moderator (English; message_in for other languages)
    upload: UploadRecord | None = None
    host_deleted: bool = False
    bot_messages: list[BotMessage] = field(default_factory=list)
    said: Said | None = None  # ``message`` as msgid and parameters

    def message_in(self, language: str) -> str:
        return self.said.in_language(language) if self.said else self.message


def _takedown(
    taken_down: bool, said: Said, upload: UploadRecord | None = None, **more: Any
) -> Takedown:
    return Takedown(taken_down, str(said), upload, said=said, **more)


_ALREADY = {
    "deleted": N_("Upload #{id} is already deleted."),
    "expired": N_("Upload #{id} is already expired."),
    "failed": N_("Upload #{id} is already failed."),
}


class Moderation:
    def __init__(
        self,
        store: Store,
        deleter: DeleteService,
        outbox: Outbox,
        answered: Callable[[str], None] = lambda platform: None,
    ) -> None:
        """``answered(platform)``: a private notice was queued (wakes its sender)."""
        self.store = store
        self.deleter = deleter
        self.outbox = outbox
        self.answered = answered

    async def take_down_each(
        self,
        upload_ids: Sequence[int],
        moderator: Moderator,
        community: Community,
        refresh: Callable[[Sequence[BotMessage]], Awaitable[None]],
    ) -> list[Takedown]:
        """Take each upload down in turn, re-rendering (``refresh``) the bot's posts that
        showed it as soon as it is down."""
        results = []
        for upload_id in upload_ids:
            result = await self.take_down(upload_id, moderator, community)
            await refresh(result.bot_messages)
            results.append(result)
        return results

    async def take_down(
        self,
        upload_id: int,
        moderator: Moderator,
        community: Community,
        reason: str | None = None,
        *,
        by_source: bool = False,
    ) -> Takedown:
        """Take ``upload_id`` down as ``moderator`` of ``community``; ``by_source``: because
        its source message was deleted (the uploader is told so)."""
        upload = await self.store.upload(upload_id)
        if (
            upload is None
            or upload.platform != community.platform
            or upload.chat_id is None
            or not await community.holds(upload.chat_id)
        ):
            return _takedown(False, Said(N_("No upload #{id} was posted here."), {"id": upload_id}))
        if upload.state != ACTIVE:
            gone = _ALREADY.get(upload.state)
            if gone is None:
                return Takedown(False, f"Upload #{upload_id} is already {upload.state}.", upload)
            return _takedown(False, Said(gone, {"id": upload_id}), upload)
        host_deleted, messages = await self._remove(upload)
        if messages is None:
            return _takedown(
                False,
                Said(
                    N_("Could not delete #{id} from {host} now; try again later."),
                    {"id": upload_id, "host": upload.host},
                ),
                upload,
            )
        await self._record(upload, moderator, community, reason, host_deleted, by_source)
        if host_deleted:
            said = Said(N_("Took down #{id} and deleted from the image host."), {"id": upload_id})
        else:
            said = Said(
                N_(
                    "Took down #{id} (it stays on the host until it expires; only its uploader"
                    " can delete it)."
                ),
                {"id": upload_id},
            )
        return _takedown(True, said, upload, host_deleted=host_deleted, bot_messages=messages)

    async def _remove(self, upload: UploadRecord) -> tuple[bool, list[BotMessage] | None]:
        """Delete on the host where it can be; (deleted there, posts to re-render), or
        ``None`` for the posts when the host could not be reached (nothing changed)."""
        deletable = upload.reused_from is None and upload.dialect != "imgbb" and upload.delete_url
        if deletable:
            result = await self.deleter.delete_record(upload)
            if result.status is DeleteStatus.FAILED:
                return False, None
            if result.removed:
                return result.status is DeleteStatus.DELETED, result.bot_messages
        # Not deletable from here: stop showing it (this upload only; the image stays).
        async with self.store.transaction():
            if not await self.store.take_state(upload.id, ACTIVE, DELETED):
                return False, []
            return False, await self.store.bot_messages(upload.id)

    async def _record(
        self,
        upload: UploadRecord,
        moderator: Moderator,
        community: Community,
        reason: str | None,
        host_deleted: bool,
        by_source: bool,
    ) -> None:
        db = self.store.db
        platform = community.platform
        # The uploader's notice: in the language they last used, else the community's.
        language = await owner_language(db, platform, upload.owner_id, community.id)
        async with db.transaction():
            takedown_id = await db.fetchval(
                "insert into takedowns (upload_id, platform, community_id, chat_id,"
                " moderator_id, moderator_name, reason, host_deleted, created_at)"
                " values (?, ?, ?, ?, ?, ?, ?, ?, ?) returning id",
                (
                    upload.id,
                    platform,
                    community.id,
                    upload.chat_id,
                    moderator.id,
                    moderator.name or None,
                    reason,
                    int(host_deleted),
                    to_text(now_utc()),
                ),
            )
            await self.outbox.add(
                f"takedown:{takedown_id}:{platform}",
                platform,
                [notice(upload, community, by_source=by_source, language=language)],
            )
        log.info(
            "upload %d taken down in %s community %s by %s",
            upload.id,
            platform,
            community.id,
            moderator.id,
        )
        self.answered(platform)

    async def takedowns(self, upload_id: int) -> list[dict[str, object]]:
        """The takedowns recorded for an upload, oldest first."""
        return await self.store.db.fetch(
            "select * from takedowns where upload_id = ? order by id", (upload_id,)
        )


_NOTICES = {
    (True, True): N_(
        "Your upload #{id} was taken down: its source message in {place} was deleted."
    ),
    (True, False): N_("Your upload #{id} was taken down: its source message was deleted."),
    (False, True): N_("Your upload #{id} was taken down: a moderator in {place} took it down."),
    (False, False): N_("Your upload #{id} was taken down: a moderator took it down."),
}


def notice(
    upload: UploadRecord, community: Community, *, by_source: bool, language: str | None = None
) -> PlannedMessage:
    """The uploader's private notice (their upload's line, now deleted, below it);
    ``language``: theirs (see :func:`bot.userlanguages.owner_language`)."""
    return PlannedMessage(
        Visibility.PRIVATE,
        None,
        upload.owner_id,
        reply_to=None,
        items=(ReplyItem(f"#{upload.id}", upload.id),),
        note=Said(
            _NOTICES[by_source, bool(community.title)], {"id": upload.id, "place": community.title}
        ).to_text(),
        language=language,
    )
