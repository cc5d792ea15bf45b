"""The ImgBB dialect (zg.is, ImgBB itself, and compatible services).

The key and the expiration travel in the multipart body, never in the URL: request URLs end
up in logs. Errors come two ways: zg.is uses 401/400 with its own codes, ImgBB answers every
error as 400 and even reports rate limiting as code 100, so status, code and message are
read together.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, ClassVar

import httpx

from bot.errors import CredentialsError, FileRejected, HostError, HostLimit
from bot.expiration import Duration, imgbb_seconds
from bot.hosts.base import (
    HostClient,
    UploadedImage,
    UploadSource,
    cooldown_from,
    error_parts,
    text_field,
)
from bot.said import N_

_FILE_WORDS = ("format", "size", "big", "large", "mime", "upload failed")


class ImgbbClient(HostClient):
    dialect: ClassVar[str] = "imgbb"
    file_field: ClassVar[str] = "image"
    payload_key: ClassVar[str] = "data"

    def expiration_field(
        self, duration: Duration | None, now: datetime
    ) -> tuple[str | None, datetime | None]:
        if duration is None:
            return None, None
        seconds = imgbb_seconds(duration, now)
        return str(seconds), duration.after(now)

    def request_parts(
        self, source: UploadSource, expiration: str | None
    ) -> tuple[dict[str, str], dict[str, str]]:
        fields = {"key": self._api_key, "name": source.filename.rsplit(".", 1)[0][:100]}
        if expiration is not None:
            fields["expiration"] = expiration
        return {}, fields

    def read_image(
        self, response: httpx.Response, data: Mapping[str, Any], planned: datetime | None
    ) -> UploadedImage:
        image_id = text_field(data, "id")
        viewer = text_field(data, "url_viewer")
        if image_id is None or viewer is None:
            raise self.unreadable(response)
        return UploadedImage(
            host=self.name,
            dialect=self.dialect,
            image_id=image_id,
            viewer_url=viewer,
            url=text_field(data, "url") or text_field(data, "display_url"),
            delete_url=text_field(data, "delete_url"),
            expires_at=_reported_expiry(data) or planned,
        )

    def classify_error(self, response: httpx.Response, body: Mapping[str, Any]) -> HostError:
        code, message = error_parts(body)
        text = message.lower()
        status = response.status_code
        detail = self.redact(message)
        if "rate limit" in text or "flood" in text:  # ImgBB reports these as 400
            return self.rate_limited(cooldown_from(message), detail)
        if status in (401, 403) or code == 100 or "key" in text:
            return CredentialsError(self.name, self.says(N_("{host} refused the API key")), detail)
        if code in (130, 200) or "required" in text or "empty" in text:
            return self.empty_source(detail)  # a file was sent: its size, most likely
        if "invalid image" in text or "not an image" in text:
            return FileRejected(
                self.name,
                self.says(N_("{host} says the file is not an image")),
                detail,
            )
        if code in (300, 310) or any(word in text for word in _FILE_WORDS):
            return HostLimit(
                self.name,
                self.says(N_("{host} refused the file: {reason}"), reason=detail),
                detail,
            )
        return self.refused(response, message)


def _reported_expiry(data: Mapping[str, Any]) -> datetime | None:
    """``time + expiration`` when the host reports a finite expiration."""
    try:
        seconds = int(text_field(data, "expiration") or 0)
        uploaded = int(text_field(data, "time") or 0)
    except ValueError:
        return None
    if seconds <= 0 or uploaded <= 0:
        return None
    return datetime.fromtimestamp(uploaded + seconds, UTC)
