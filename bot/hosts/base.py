"""What every host client shares: the upload source, the result, transport error handling.

A dialect module only says how to build its request and how to read its answers; sending,
timeouts and turning network failures into :class:`~bot.errors.HostUnavailable` live here.
"""

from __future__ import annotations

import hashlib
import io
import json
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any, ClassVar

import httpx

from bot.errors import (
    HostError,
    HostLimit,
    HostRefused,
    HostTimedOut,
    HostUnavailable,
    RateLimited,
)
from bot.expiration import Duration
from bot.hosts.multipart import multipart
from bot.hosts.presets import DEFAULT_FORMATS
from bot.media import BY_NAME, SNIFF_BYTES, ImageType, sniff
from bot.said import N_, Said, Size

CHUNK = 64 * 1024
CONNECT_TIMEOUT = 5.0
# Writing the file may take as long as sending it at this slow a rate, plus a margin.
SLOWEST_UPLOAD_RATE = 256 * 1024  # bytes per second
WRITE_MARGIN = 10.0
DEFAULT_COOLDOWN = 60.0
_WINDOWS = {"minute": 60.0, "hour": 3600.0, "day": 86400.0}


@dataclass(frozen=True)
class UploadSource:
    """An image ready to upload: its bytes live in a file or, when small, in memory."""

    filename: str
    image_type: ImageType
    size: int
    sha256: str
    path: Path | None = None
    data: bytes | None = None
    temporary: bool = False  # the file at ``path`` is ours to delete when done
    nsfw: bool = False  # hidden by its sender: hosts that can are told it is NSFW

    def discard(self) -> None:
        """Remove a temporary spool file (no-op otherwise)."""
        if self.temporary and self.path is not None:
            self.path.unlink(missing_ok=True)

    def open(self) -> IO[bytes]:
        """A fresh binary stream over the bytes (one per attempt, so retries start at 0)."""
        if self.path is not None:
            return self.path.open("rb")
        return io.BytesIO(self.data or b"")

    @classmethod
    def from_bytes(cls, data: bytes, filename: str) -> UploadSource | None:
        """The source for in-memory bytes, or ``None`` when they are not a known image."""
        image_type = sniff(data[:SNIFF_BYTES])
        if image_type is None:
            return None
        digest = hashlib.sha256(data).hexdigest()
        return cls(filename, image_type, len(data), digest, data=data)

    @classmethod
    def from_path(cls, path: Path) -> UploadSource | None:
        """The source for a file on disk (hashed in chunks), or ``None`` when not an image."""
        digest = hashlib.sha256()
        size = 0
        with path.open("rb") as stream:
            head = stream.read(SNIFF_BYTES)
            image_type = sniff(head)
            if image_type is None:
                return None
            while head:
                digest.update(head)
                size += len(head)
                head = stream.read(CHUNK)
        return cls(path.name, image_type, size, digest.hexdigest(), path=path)


@dataclass(frozen=True)
class UploadedImage:
    """A stored image, as any host reports it."""

    host: str
    dialect: str
    image_id: str
    viewer_url: str
    url: str | None  # None while a Chevereto upload is held for moderation
    delete_url: str | None  # None on Chevereto Free
    expires_at: datetime | None  # UTC; None = never


def record_fields(source: UploadSource, image: UploadedImage) -> dict[str, Any]:
    """What the upload record keeps of a stored image and the bytes it came from."""
    return {
        "sha256": source.sha256,
        "size": source.size,
        "mime": source.image_type.mime,
        "host": image.host,
        "dialect": image.dialect,
        "host_image_id": image.image_id,
        "viewer_url": image.viewer_url,
        "url": image.url,
        "delete_url": image.delete_url,
        "expires_at": image.expires_at,
    }


class HostClient(ABC):
    """One configured image host speaking one dialect over a shared ``httpx.AsyncClient``."""

    dialect: ClassVar[str]

    def __init__(
        self,
        name: str,
        endpoint: str,
        api_key: str,
        http: httpx.AsyncClient,
        *,
        max_bytes: int,
        timeout: float = 60.0,
        formats: frozenset[str] | None = None,
        time_budget: float = 30.0,
    ) -> None:
        self.name = name
        self.endpoint = endpoint
        self.max_bytes = max_bytes
        self.formats = formats if formats is not None else default_formats(self.dialect)
        self.time_budget = time_budget  # for all tries of one file on this host
        self._api_key = api_key
        self._http = http
        self._read_timeout = timeout  # waiting for the answer once the file is sent

    def accepts(self, image_type: ImageType) -> bool:
        return image_type.name in self.formats

    def refusal(self, source: UploadSource) -> HostLimit | None:
        """Why this host will not take ``source`` before anything is sent, if it won't."""
        if not self.accepts(source.image_type):
            taken = sorted(self.formats)
            return HostLimit(
                self.name,
                self.says(
                    N_("{host} does not take {format} files (it takes {formats})"),
                    format=source.image_type.label,
                    formats=[t.label for t in _types(taken)],
                ),
            )
        if source.size > self.max_bytes:
            return HostLimit(
                self.name,
                self.says(
                    N_("the file is {size}; {host} accepts at most {limit}"),
                    size=Size(source.size),
                    limit=Size(self.max_bytes),
                ),
            )
        return None

    def upload_timeout(self, size: int) -> httpx.Timeout:
        """A short connect timeout; a write timeout scaled to the file's size."""
        write = WRITE_MARGIN + size / SLOWEST_UPLOAD_RATE
        return httpx.Timeout(
            connect=CONNECT_TIMEOUT, write=write, read=self._read_timeout, pool=CONNECT_TIMEOUT
        )

    def __repr__(self) -> str:  # never show the key
        return f"<{type(self).__name__} {self.name} {self.endpoint}>"

    @abstractmethod
    def expiration_field(
        self, duration: Duration | None, now: datetime
    ) -> tuple[str | None, datetime | None]:
        """The wire value for ``duration`` and the expiry it will really have."""

    @abstractmethod
    def request_parts(
        self, source: UploadSource, expiration: str | None
    ) -> tuple[dict[str, str], dict[str, str]]:
        """Headers and form fields (the file part is added by :meth:`upload`)."""

    file_field: ClassVar[str]  # the multipart part that carries the image
    payload_key: ClassVar[str]  # the key of a success answer that holds the image

    @abstractmethod
    def read_image(
        self, response: httpx.Response, payload: Mapping[str, Any], planned: datetime | None
    ) -> UploadedImage:
        """The stored image from a success answer's payload."""

    @abstractmethod
    def classify_error(self, response: httpx.Response, body: Mapping[str, Any]) -> HostError:
        """The right :class:`HostError` for a JSON error answer."""

    def parse_answer(
        self, response: httpx.Response, body: Mapping[str, Any] | None, planned: datetime | None
    ) -> UploadedImage:
        """An :class:`UploadedImage` from an answer, or raise the right :class:`HostError`."""
        if response.status_code >= 500:
            raise self.server_error(response)
        if response.status_code == 429:
            raise self.rate_limited(_retry_after(response))
        if body is None:
            raise self.unreadable(response)
        payload = body.get(self.payload_key)
        if response.status_code == 200 and isinstance(payload, Mapping):
            return self.read_image(response, payload, planned)
        raise self.classify_error(response, body)

    async def upload(
        self, source: UploadSource, duration: Duration | None, now: datetime | None = None
    ) -> UploadedImage:
        """Upload ``source`` to expire after ``duration`` (``None``: never)."""
        refusal = self.refusal(source)
        if refusal is not None:
            raise refusal
        expiration, planned = self.expiration_field(duration, now or datetime.now(UTC))
        headers, fields = self.request_parts(source, expiration)
        with source.open() as stream:
            form, body = multipart(
                fields,
                self.file_field,
                filename=source.filename,
                content_type=source.image_type.mime,
                stream=stream,
                size=source.size,
            )
            response = await send(
                self._http,
                self.name,
                "POST",
                self.endpoint,
                headers={**headers, **form},
                content=body,
                timeout=self.upload_timeout(source.size),
            )
        return self.parse_answer(response, json_object(response), planned)

    def says(self, message: str, **params: object) -> Said:
        """A message about this host (its name is ``{host}``), for :mod:`bot.errors`."""
        return Said(message, {"host": self.name, **params})

    def rate_limited(self, cooldown: float | None = None, detail: str = "") -> RateLimited:
        return RateLimited(
            self.name,
            self.says(N_("{host} is rate limiting uploads")),
            detail,
            cooldown=cooldown or DEFAULT_COOLDOWN,
        )

    def empty_source(self, detail: str) -> HostLimit:
        """The host says it got no file although one was sent: over its post size limit."""
        return HostLimit(
            self.name,
            self.says(N_("{host} received no file: it probably refused its size")),
            detail,
        )

    def redact(self, text: str) -> str:
        """Host-supplied text with our API key taken out, cut to a sane length."""
        if self._api_key:
            text = text.replace(self._api_key, "[key]")
        return text[:300]

    def unreadable(self, response: httpx.Response) -> HostUnavailable:
        """The error for an answer that is not the JSON the dialect promises."""
        return HostUnavailable(
            self.name,
            self.says(
                N_("{host} answered something unreadable (HTTP {status})"),
                status=response.status_code,
            ),
            self.redact(response.text[:200]),
        )

    def server_error(self, response: httpx.Response) -> HostUnavailable:
        return server_error(self.name, response)

    def refused(self, response: httpx.Response, message: str) -> HostRefused:
        return HostRefused(
            self.name,
            self.says(N_("{host} refused the upload: {reason}"), reason=self.redact(message))
            if message
            else self.says(
                N_("{host} refused the upload (HTTP {status})"), status=response.status_code
            ),
            self.redact(message),
        )


async def send(
    http: httpx.AsyncClient, host: str, method: str, url: str, **kwargs: Any
) -> httpx.Response:
    """One request to ``host``; timeouts and network failures become HostUnavailable."""
    try:
        return await http.request(method, url, **kwargs)
    except httpx.TimeoutException:
        raise HostTimedOut(host, did_not_answer(host)) from None
    except httpx.TransportError as error:
        raise HostUnavailable(
            host, Said(N_("{host} could not be reached"), {"host": host}), type(error).__name__
        ) from None


def did_not_answer(host: str) -> Said:
    return Said(N_("{host} did not answer in time"), {"host": host})


def default_formats(dialect: str) -> frozenset[str]:
    return DEFAULT_FORMATS[dialect]


def _types(names: list[str]) -> list[ImageType]:
    return [BY_NAME[name] for name in names if name in BY_NAME]


def cooldown_from(message: str) -> float:
    """How long a flood refusal asks to wait: its window ("... per minute"), else a minute."""
    text = message.lower()
    for word, seconds in _WINDOWS.items():
        if f"per {word}" in text or f"a {word}" in text:
            return seconds
    return DEFAULT_COOLDOWN


def _retry_after(response: httpx.Response) -> float | None:
    try:
        return max(1.0, float(response.headers.get("retry-after", "")))
    except ValueError:
        return None


def server_error(host: str, response: httpx.Response) -> HostUnavailable:
    return HostUnavailable(
        host,
        Said(
            N_("{host} is having trouble (HTTP {status})"),
            {"host": host, "status": response.status_code},
        ),
    )


def json_object(response: httpx.Response) -> dict[str, Any] | None:
    """The answer's JSON object, or ``None`` for anything else (HTML error pages, text)."""
    try:
        body = json.loads(response.content)
    except (ValueError, UnicodeDecodeError):
        return None
    return body if isinstance(body, dict) else None


def text_field(mapping: Mapping[str, Any] | None, key: str) -> str | None:
    """A non-empty string value, accepting numbers sent as numbers or strings."""
    if not isinstance(mapping, Mapping):
        return None
    value = mapping.get(key)
    if value is None or isinstance(value, (dict, list, bool)):
        return None
    text = str(value).strip()
    return text or None


def error_parts(body: Mapping[str, Any] | None) -> tuple[int | None, str]:
    """``(error.code, error.message)`` from either dialect's error body."""
    error = body.get("error") if isinstance(body, Mapping) else None
    if isinstance(error, Mapping):
        code = error.get("code")
        message = error.get("message")
    elif isinstance(body, Mapping):  # some ImgBB clones flatten the error
        code, message = body.get("code"), body.get("message") or body.get("error")
    else:
        code, message = None, None
    try:
        number = int(code) if code is not None else None
    except (TypeError, ValueError):
        number = None
    return number, str(message) if isinstance(message, (str, int)) else ""
