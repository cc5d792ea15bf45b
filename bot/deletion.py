"""DeleteService: delete an upload on its owner's request.

Chevereto uploads are deleted by requesting their delete link (the bot does it; a redirect
answers success, 404 means already gone); the record is marked deleted, with every other
owner's reuse of the image, and the result names the bot messages the adapter should remove
or edit.

ImgBB-style hosts have no delete API: the delete link opens a page where the owner confirms.
The bot never fetches that link. It looks at the image itself (its direct URL): if it is
gone, the upload and its reuses are marked deleted; if not, the owner is handed the link
(again, on every request) and the upload stays active, recorded as "delete link handed
over", until the image is known to be gone.
"""

from __future__ import annotations

import enum
import logging
from dataclasses import dataclass, field
from typing import Any

import httpx

from bot.errors import HostError
from bot.hosts.chevereto import DeleteOutcome, delete_by_link
from bot.i18n import N_, Said
from bot.ownhost import OWN_HOST
from bot.store import ACTIVE, DELETED, BotMessage, Store, UploadRecord

log = logging.getLogger(__name__)


class DeleteStatus(enum.Enum):
    DELETED = "deleted"  # the host confirmed it
    ALREADY_GONE = "already_gone"  # the host no longer had it
    OPEN_LINK = "open_link"  # the owner must open delete_url (ImgBB-style hosts)
    UNLISTED = "unlisted"  # links reused from another owner: removed from this owner's list
    NOT_ALLOWED = "not_allowed"  # no such upload of this requester
    NOT_POSSIBLE = "not_possible"  # the host gave no delete link
    FAILED = "failed"  # the host could not be reached; nothing changed


@dataclass(frozen=True)
class DeleteResult:
    status: DeleteStatus
    message: str  # for the requester, in private (English; message_in for others)
    upload: UploadRecord | None = None
    delete_url: str | None = None  # only with OPEN_LINK, only for the owner, only in private
    bot_messages: list[BotMessage] = field(default_factory=list)
    said: Said | None = None  # ``message`` as msgid and parameters, for other languages

    def message_in(self, language: str) -> str:
        """``message`` in ``language``."""
        return self.said.in_language(language) if self.said else self.message

    @property
    def removed(self) -> bool:
        """Whether the image is gone (or dropped from the list) and posts should change."""
        return self.status in (
            DeleteStatus.DELETED,
            DeleteStatus.ALREADY_GONE,
            DeleteStatus.UNLISTED,
        )


def _result(
    status: DeleteStatus, said: Said, upload: UploadRecord | None = None, **more: Any
) -> DeleteResult:
    return DeleteResult(status, str(said), upload, said=said, **more)


def _said(message: str, **params: object) -> Said:
    return Said(message, params)


class DeleteService:
    def __init__(
        self, store: Store, http: httpx.AsyncClient, links: httpx.AsyncClient | None = None
    ) -> None:
        self.store = store
        self._http = http
        # A community's own host gave its links: they get the users'-links guard.
        self._links = links or http

    def _client(self, upload: UploadRecord) -> httpx.AsyncClient:
        return self._links if upload.host == OWN_HOST else self._http

    async def delete(self, upload_id: int, platform: str, requester_id: str) -> DeleteResult:
        """Delete for a chat user: only the owner may."""
        upload = await self.store.upload(upload_id)
        if upload is None or upload.platform != platform or upload.owner_id != requester_id:
            # The same answer whether it exists or not: ids reveal nothing about others.
            return _result(
                DeleteStatus.NOT_ALLOWED,
                _said(N_("You have no upload #{id}; see /mine."), id=upload_id),
            )
        return await self.delete_record(upload)

    async def delete_record(self, upload: UploadRecord) -> DeleteResult:
        """Delete an upload with no ownership check (callers have done it)."""
        upload_id = upload.id
        if upload.state != "active":
            return _result(DeleteStatus.ALREADY_GONE, _gone_already(upload), upload)
        if upload.reused_from is not None:
            return await self._finish(
                upload,
                DeleteStatus.UNLISTED,
                _said(
                    N_(
                        "Removed #{id} from your list. Someone else uploaded the same image "
                        "first, so it stays on the host until they delete it or it expires."
                    ),
                    id=upload_id,
                ),
            )
        if upload.dialect == "imgbb" and upload.delete_url:
            return await self._hand_over(upload, upload.delete_url)
        if not upload.delete_url:
            return _result(
                DeleteStatus.NOT_POSSIBLE,
                _said(
                    N_("{host} gave no delete link for #{id}; it cannot be deleted from here."),
                    host=upload.host,
                    id=upload_id,
                ),
                upload,
            )
        try:
            outcome = await delete_by_link(self._client(upload), upload.delete_url, upload.host)
        except HostError as error:
            log.warning("deleting upload %d failed: %s", upload.id, error.user_message)
            return _result(
                DeleteStatus.FAILED,
                _said(
                    N_("Could not delete #{id} now ({reason}); try again later."),
                    id=upload_id,
                    reason=error.said,
                ),
                upload,
            )
        if outcome is DeleteOutcome.DELETED:
            return await self._finish(
                upload, DeleteStatus.DELETED, _said(N_("Deleted #{id}."), id=upload_id)
            )
        return await self._finish(
            upload,
            DeleteStatus.ALREADY_GONE,
            _said(
                N_("#{id} was already gone from {host}; marked deleted."),
                id=upload_id,
                host=upload.host,
            ),
        )

    async def _hand_over(self, upload: UploadRecord, delete_url: str) -> DeleteResult:
        """ImgBB-style: the image gone already, or the link to open (the upload stays)."""
        if await image_gone(self._client(upload), upload):
            return await self._finish(
                upload,
                DeleteStatus.ALREADY_GONE,
                _said(
                    N_("#{id} is already gone from {host}; marked deleted."),
                    id=upload.id,
                    host=upload.host,
                ),
            )
        earlier = upload.delete_handed_at
        record = await self.store.hand_over_delete_link(upload.id) or upload
        if earlier is None:
            said = _said(
                N_(
                    "{host} deletes only on its own page: open this link and confirm there"
                    " to delete #{id}. It stays in your list until the image is gone."
                ),
                host=upload.host,
                id=upload.id,
            )
        else:
            said = _said(
                N_(
                    "#{id} is still on {host} (you were given its delete link on {date}):"
                    " open the link again and confirm on the page. It stays in your list"
                    " until the image is gone."
                ),
                id=upload.id,
                host=upload.host,
                date=earlier,
            )
        return _result(DeleteStatus.OPEN_LINK, said, record, delete_url=delete_url)

    async def _finish(self, upload: UploadRecord, status: DeleteStatus, said: Said) -> DeleteResult:
        """Mark the upload (and, when the image itself is gone, every reuse of it) deleted.

        The mark is a conditional update: of two deletes at once (two processes, or a
        double click), one marks it and changes the posts; the other is told it is gone."""
        async with self.store.transaction():
            if not await self.store.take_state(upload.id, ACTIVE, DELETED):
                # Another delete recorded it first (and changes the posts). If the host
                # deleted the image at this request, that is still what happened here.
                if status is DeleteStatus.DELETED:
                    return _result(status, said, upload)
                return _result(
                    DeleteStatus.ALREADY_GONE,
                    _said(N_("Upload #{id} is already deleted."), id=upload.id),
                    upload,
                )
            messages = await self.store.bot_messages(upload.id)
            if status is not DeleteStatus.UNLISTED:
                for record in await self.store.sharing(upload.id):
                    if await self.store.take_state(record.id, ACTIVE, DELETED):
                        messages += await self.store.bot_messages(record.id)
        return _result(status, said, upload, bot_messages=messages)


_GONE = {
    "deleted": N_("Upload #{id} is already deleted."),
    "expired": N_("Upload #{id} is already expired."),
    "failed": N_("Upload #{id} is already failed."),
}


def _gone_already(upload: UploadRecord) -> Said:
    return _said(
        _GONE.get(upload.state, "Upload #{id} is already {state}."),
        id=upload.id,
        state=upload.state,
    )


# How long a look at an image may take before it is taken to be still there.
PROBE_TIMEOUT = 10.0


async def image_gone(http: httpx.AsyncClient, upload: UploadRecord) -> bool:
    """Whether the host says the image is gone (404 or 410 for its direct URL, else its
    viewer page). Never requests the delete link; anything unclear counts as not gone."""
    url = upload.url or upload.viewer_url
    if not url or url == upload.delete_url:
        return False
    try:
        async with http.stream(
            "GET", url, follow_redirects=True, timeout=PROBE_TIMEOUT
        ) as response:
            return response.status_code in (404, 410)
    except httpx.HTTPError as error:
        log.info("could not look at upload %d on %s: %s", upload.id, upload.host, error)
        return False


async def delete_as_operator(store: Store, http: httpx.AsyncClient, upload_id: int) -> DeleteResult:
    """Delete any upload, as the operator does from the command line."""
    upload = await store.upload(upload_id)
    if upload is None:
        return _result(
            DeleteStatus.NOT_ALLOWED, _said(N_("No upload #{id} is recorded."), id=upload_id)
        )
    return await DeleteService(store, http).delete_record(upload)
