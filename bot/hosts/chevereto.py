"""The Chevereto API V1.1 dialect (imgz.io, imagehosting.me, uploadimage.io,
images-uploader.com, and any self-hosted Chevereto).

Chevereto answers every error as HTTP 400 and reuses codes (130 is both "empty source" and
"flooding"), so the message decides. It silently ignores expiration values outside its fixed
list, so only list values are sent. Its delete link deletes on a plain GET and answers a
redirect: the redirect is the success, and it must not be followed.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, ClassVar

import httpx

from bot.errors import (
    CredentialsError,
    FileRejected,
    HostError,
    HostLimit,
    HostRefused,
)
from bot.expiration import Duration, chevereto_interval
from bot.hosts.base import (
    HostClient,
    UploadedImage,
    UploadSource,
    cooldown_from,
    error_parts,
    send,
    server_error,
    text_field,
)
from bot.said import N_, Said


class DeleteOutcome(enum.Enum):
    DELETED = "deleted"
    ALREADY_GONE = "already_gone"


class CheveretoClient(HostClient):
    dialect: ClassVar[str] = "chevereto"
    file_field: ClassVar[str] = "source"  # a part named "image" is ignored by Chevereto 4
    payload_key: ClassVar[str] = "image"

    def expiration_field(
        self, duration: Duration | None, now: datetime
    ) -> tuple[str | None, datetime | None]:
        if duration is None:
            return None, None
        value, effective = chevereto_interval(duration, now)
        return value, effective.after(now)

    def request_parts(
        self, source: UploadSource, expiration: str | None
    ) -> tuple[dict[str, str], dict[str, str]]:
        # Chevereto 4 reads the header; Chevereto Free 1.x only the field. Both, then (in
        # the body, never the URL).
        fields = {"key": self._api_key, "format": "json"}
        if expiration is not None:
            fields["expiration"] = expiration
        if source.nsfw:
            fields["nsfw"] = "1"
        return {"X-API-Key": self._api_key}, fields

    def read_image(
        self, response: httpx.Response, image: Mapping[str, Any], planned: datetime | None
    ) -> UploadedImage:
        image_id = text_field(image, "id_encoded") or text_field(image, "id")
        viewer = text_field(image, "url_viewer") or text_field(image, "url_short")
        if image_id is None or viewer is None:
            raise self.unreadable(response)
        return UploadedImage(
            host=self.name,
            dialect=self.dialect,
            image_id=image_id,
            viewer_url=viewer,
            # Held for moderation: neither is present until a moderator approves.
            url=text_field(image, "url") or text_field(image, "display_url"),
            delete_url=text_field(image, "delete_url"),
            expires_at=_gmt(text_field(image, "expiration_date_gmt")) or planned,
        )

    def classify_error(self, response: httpx.Response, body: Mapping[str, Any]) -> HostError:
        code, message = error_parts(body)
        text = message.lower()
        detail = self.redact(message)
        if "flood" in text or "rate limit" in text:
            return self.rate_limited(cooldown_from(message), detail)
        if "empty upload source" in text:  # sent, but over the server's post size limit
            return self.empty_source(detail)
        if code == 100 or "api key" in text or "no key" in text:
            return CredentialsError(self.name, self.says(N_("{host} refused the API key")), detail)
        if code == 401 or "denied" in text:
            return CredentialsError(
                self.name,
                self.says(N_("{host} does not allow uploads with this API key")),
                detail,
            )
        if code in (101, 102, 103) or "duplicat" in text:
            return HostRefused(self.name, self.says(N_("{host} already has this file")), detail)
        if code in (120, 130):
            return FileRejected(self.name, self.says(N_("{host} received no usable image")), detail)
        if "too big" in text or "too large" in text or code == 601:
            return HostLimit(self.name, self.says(N_("the file is too large for {host}")), detail)
        if code in (612, 613, 614) or "format" in text or "mime" in text:
            return HostLimit(
                self.name,
                self.says(N_("{host} does not accept this format")),
                detail,
            )
        if "invalid image" in text or code == 610:
            return FileRejected(
                self.name,
                self.says(N_("{host} says the file is not an image")),
                detail,
            )
        if code == 400:
            return FileRejected(
                self.name,
                self.says(N_("{host} refused the file: {reason}"), reason=detail),
                detail,
            )
        return self.refused(response, message)


async def delete_by_link(http: httpx.AsyncClient, delete_url: str, host: str) -> DeleteOutcome:
    """Delete by requesting the delete link. It answers a redirect to the viewer page with
    ``?deleted``; that redirect is the success and is not followed (the page is a 404 now).
    """
    response = await send(http, host, "GET", delete_url, follow_redirects=False, timeout=30.0)
    # 301 with an absolute Location to "<viewer>?deleted" from Chevereto 4.2; any redirect.
    if response.status_code in (301, 302, 303, 307, 308):
        return DeleteOutcome.DELETED
    if response.status_code in (404, 410):
        return DeleteOutcome.ALREADY_GONE
    if response.status_code >= 500:
        raise server_error(host, response)
    raise HostRefused(
        host,
        Said(
            N_("{host} did not confirm the deletion (HTTP {status})"),
            {"host": host, "status": response.status_code},
        ),
    )


def _gmt(value: str | None) -> datetime | None:
    """Chevereto's ``YYYY-MM-DD HH:MM:SS`` (UTC) as an aware datetime."""
    if not value:
        return None
    try:
        return datetime.strptime(value, "%Y-%m-%d %H:%M:%S").replace(tzinfo=UTC)
    except ValueError:
        return None
