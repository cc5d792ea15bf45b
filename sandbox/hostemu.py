"""A local emulator of the two image-host API dialects, as a real HTTP server.

One `HostEmulator` serves both dialects described in shared/HOSTS.md:

- "imgbb" (zg.is, ImgBB) at ``/1/upload``: key in the query string or the body,
  image in ``image``, expiration in seconds, numbers sent as strings;
- "chevereto" (API V1.1) at ``/api/1/upload``: key in ``X-API-Key`` or ``key``,
  image in a file part named ``source``, expiration from a fixed ISO-8601 list,
  every error an HTTP 400. It answers as a stock Chevereto 4.2.0 was measured
  to (shared/HOSTS.md, "Measured on a real Chevereto 4.2.0"), or as 4.0/4.1
  with ``chevereto_version="4.1"``.

It also serves what an upload links to (viewer pages, direct image URLs,
delete links with each dialect's semantics) and ``/cdn/<name>`` blobs, which
stand in for a chat platform's attachment CDN and count the bytes they send.
Every request is recorded, and faults can be scripted for the next uploads.

Error answers, by cause (status/code message):

====================  ==========================  ===================  =================
cause                 chevereto (always 400)      imgbb_errors="zg"    imgbb_errors="imgbb"
====================  ==========================  ===================  =================
no key                100 No key provided         401/100              400/100 Invalid API v1 key.
bad key               100 Invalid API key.        401/100              400/100 Invalid API v1 key.
key denied            401 Request denied          (imgbb: bad key)     (imgbb: bad key)
no image              130 Empty upload source     400/200              400/130 Empty upload source.
body over post limit  130 Empty upload source     413 (front proxy)    413 (front proxy)
base64 by GET         130 (must use POST)         (accepted)           (accepted)
bad base64            120 Invalid base64 string   400/300              400/120
URL not fetchable     610 Can't get target ...    400/300              400/310
not an image          610 Can't get target ...    400/300              400/310
                      (4.0/4.1: 400 Invalid image)
format not accepted   613 Unavailable image ...   400/300              400/310
too large             400 File too big - max N    400/300              400/400
duplicate (opt-in)    101 Duplicated upload       -                    -
bad expiration        (never an error)            400/300              400/400
flood / rate limit    130 Flooding detected...    400/100 Rate limit reached.  (same)
====================  ==========================  ===================  =================

The zg flavour words every 400/300 as "Upload failed (<reason>)." With
``format=txt`` a Chevereto error is HTTP 200 with the bare message as its body.

Formats: imgbb takes JPEG, PNG, GIF, WebP, BMP and TIFF; chevereto takes
``chevereto_formats`` (by default JPEG, PNG, GIF, WebP, BMP and AVIF, as a
stock 4.2 does: TIFF and HEIC are refused with 613).

Chevereto expiration (none is ever an error): a value from the fixed list is
honoured exactly, calendar months and years included, on every version.
Anything else, on 4.2: an ISO-8601 duration is honoured and clamped to 5
minutes .. 365 days, an integer is seconds (clamped alike), ``0`` is no expiry,
and a value that does not parse (``3d``, ``never``, ``p1d``) means 5 minutes.
On 4.0 and 4.1 it is ignored: the image never expires.

Flooding and rate limits (off by default): ``flood_per_minute`` (chevereto)
and ``imgbb_rate_per_minute`` count the uploads each dialect accepted from one
client address in the last 60 seconds of `clock`; refused uploads do not count.

Delete links: chevereto's deletes on GET or HEAD and answers 301 to the
absolute viewer URL plus ``?deleted`` (a 404 page by then); a used or wrong
link is a 404 HTML page. ``url_short`` answers 302 to the viewer URL. imgbb's
is a page with a confirm button; only the POST of that form deletes.

Choices where the hosts leave room:
- Chevereto month and year durations are calendar months (the day is clamped
  to the end of a shorter month), as PHP's DateInterval does.
- Where a parameter arrives both in the query string and in the body, the body
  wins (PHP's $_REQUEST order).
- A URL given as the image source is fetched only when it points at this
  emulator (for instance a /cdn/ blob); any other URL fails as unreachable.
- The chevereto ``width`` parameter is recorded but the image is not resized.
- Expired images answer 404 like deleted ones; pass ``clock`` to move time.
- The post limit (PHP's post_max_size) is checked against Content-Length
  when the client sends one, else against the bytes of form and file data read.
- Flood windows slide (the last 60 s), counted per client address.

Run it by hand with ``python -m sandbox.hostemu --help`` (the project's
``rehost emulate-host`` command calls `main`).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import html
import logging
import re
import secrets
import signal
import socket
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Literal, TypeAlias, get_args
from urllib.parse import quote, unquote, urlsplit

import aiohttp
from aiohttp import web

from sandbox import hostwire as wire
from sandbox.hostwire import (
    CHEVERETO_EXPIRATIONS,
    IMGBB_MAX_EXPIRATION,
    IMGBB_MIN_EXPIRATION,
    ReceivedFile,
    ReceivedRequest,
    add_iso_duration,
)
from sandbox.imagesniff import FORMATS, ImageInfo, Unsupported, sniff
from sandbox.lifecycle import LocalServer

__all__ = [
    "CHEVERETO_EXPIRATIONS",
    "CHEVERETO_FORMATS",
    "IMGBB_FORMATS",
    "Fault",
    "FaultKind",
    "HostEmulator",
    "HostedImage",
    "ReceivedFile",
    "ReceivedRequest",
    "add_iso_duration",
    "main",
    "serve_forever",
]

Dialect: TypeAlias = Literal["imgbb", "chevereto"]
CheveretoVersion: TypeAlias = Literal["4.0", "4.1", "4.2"]
FaultKind: TypeAlias = Literal["status", "slow", "drop", "html", "garbled", "flood", "ratelimit"]
Clock: TypeAlias = Callable[[], datetime]

IMGBB_PATH = "/1/upload"
CHEVERETO_PATH = "/api/1/upload"
CDN_CHUNK = 64 * 1024
# What a stock Chevereto 4.2 accepts, and what imgbb-style hosts do (shared/HOSTS.md).
CHEVERETO_FORMATS = ("jpeg", "png", "gif", "webp", "bmp", "avif")
IMGBB_FORMATS = ("jpeg", "png", "gif", "webp", "bmp", "tiff")
_FORMAT_ALIASES = {"jpg": "jpeg", "tif": "tiff", "heif": "heic"}
# Chevereto 4.2 clamps an expiration off its list to this range.
CHEVERETO_MIN_EXPIRY = timedelta(minutes=5)
CHEVERETO_MAX_EXPIRY = timedelta(days=365)
FLOOD_WINDOW = timedelta(minutes=1)


# --- Public records -----------------------------------------------------------


@dataclass(frozen=True)
class Fault:
    """What the next scripted upload request gets instead of a normal answer."""

    kind: FaultKind
    status: int = 503
    delay: float = 0.0

    def __post_init__(self) -> None:
        if self.kind not in get_args(FaultKind):
            raise ValueError(f"unknown fault kind {self.kind!r}")
        if not 200 <= self.status <= 599:
            raise ValueError("a fault status must be a final HTTP status, 200..599")
        if self.delay < 0:
            raise ValueError("a fault delay cannot be negative")


def _utcnow() -> datetime:
    return datetime.now(UTC)


def _key_tuple(keys: Iterable[str]) -> tuple[str, ...]:
    # A lone string is one key, not a sequence of one-letter keys.
    return (keys,) if isinstance(keys, str) else tuple(keys)


def _format_set(formats: Iterable[str]) -> frozenset[str]:
    """Format names, normalised ("JPG" -> "jpeg"); ValueError for one `sniff` cannot tell."""
    names = {_FORMAT_ALIASES.get(name.lower(), name.lower()) for name in _key_tuple(formats)}
    unknown = names - FORMATS
    if unknown:
        known = ", ".join(sorted(FORMATS))
        raise ValueError(f"unknown image format(s) {sorted(unknown)}; known: {known}")
    return frozenset(names)


def _positive_or_none(name: str, value: int | None) -> int | None:
    if value is not None and value < 1:
        raise ValueError(f"{name} must be a positive number (or None for no limit)")
    return value


@dataclass
class HostedImage:
    id: str
    dialect: str
    data: bytes
    mime: str
    extension: str
    width: int
    height: int
    expiration_sent: str | None = None
    expires_at: datetime | None = None  # UTC
    delete_token: str | None = None
    deleted: bool = False
    # Beyond the brief's fields: what the upload answer linked to.
    name: str = ""
    title: str = ""
    url: str = ""  # direct bytes URL
    viewer_url: str = ""
    delete_url: str | None = None
    uploaded_at: datetime = field(default_factory=_utcnow)

    @property
    def size(self) -> int:
        return len(self.data)

    def is_live(self, now: datetime) -> bool:
        """Not deleted and not expired at `now`."""
        return not self.deleted and (self.expires_at is None or now < self.expires_at)


# --- The emulator ------------------------------------------------------------------

Handler: TypeAlias = Callable[[web.Request], Awaitable[web.StreamResponse]]
_IMGBB_FORMAT_SET = frozenset(IMGBB_FORMATS)


class HostEmulator(LocalServer):
    """Both image-host dialects on one local aiohttp server. See the module docstring."""

    def __init__(
        self,
        api_keys: Iterable[str] = ("test-key",),
        denied_keys: Iterable[str] = (),
        imgbb_errors: Literal["zg", "imgbb"] = "zg",
        imgbb_numbers_as_strings: bool = True,
        chevereto_delete_links: bool = True,
        chevereto_version: CheveretoVersion = "4.2",
        chevereto_formats: Iterable[str] = CHEVERETO_FORMATS,
        chevereto_key_from_header: bool = True,
        chevereto_post_max_bytes: int | None = None,
        flood_per_minute: int | None = None,
        imgbb_rate_per_minute: int | None = None,
        moderation: bool = False,
        imgbb_max_bytes: int = 32 * 1024 * 1024,
        chevereto_max_bytes: int = 10 * 1024 * 1024,
        latency: float = 0.0,
        reject_duplicates: bool = False,
        clock: Clock | None = None,
        access_log: bool = False,
        keep_bytes: bool = True,
    ) -> None:
        """Options beyond the obvious ones (all off or as a stock server by default):

        chevereto_version: "4.2", or "4.1"/"4.0" for their expiration and
            not-an-image answers.
        chevereto_formats: the formats the chevereto dialect accepts (names as
            `ImageInfo.format`: jpeg, png, gif, webp, bmp, tiff, avif, heic).
        chevereto_key_from_header: False reads the key only from the ``key``
            field, as Chevereto Free 1.x does.
        chevereto_post_max_bytes: PHP's post_max_size; a bigger request body
            reaches Chevereto empty. Default: the imgbb front proxy's limit.
        flood_per_minute, imgbb_rate_per_minute: accepted uploads per client
            address per minute before the dialect's flood / rate-limit answer.
        """
        if imgbb_errors not in ("zg", "imgbb"):
            raise ValueError("imgbb_errors must be 'zg' or 'imgbb'")
        if chevereto_version not in get_args(CheveretoVersion):
            raise ValueError(f"chevereto_version must be one of {get_args(CheveretoVersion)}")
        self.api_keys = _key_tuple(api_keys)
        self.denied_keys = _key_tuple(denied_keys)
        self.imgbb_errors = imgbb_errors
        self.imgbb_numbers_as_strings = imgbb_numbers_as_strings
        self.chevereto_delete_links = chevereto_delete_links
        self.chevereto_version: CheveretoVersion = chevereto_version
        self.chevereto_formats = _format_set(chevereto_formats)
        self.chevereto_key_from_header = chevereto_key_from_header
        self.flood_per_minute = _positive_or_none("flood_per_minute", flood_per_minute)
        self.imgbb_rate_per_minute = _positive_or_none(
            "imgbb_rate_per_minute", imgbb_rate_per_minute
        )
        self.moderation = moderation
        self.imgbb_max_bytes = imgbb_max_bytes
        self.chevereto_max_bytes = chevereto_max_bytes
        self.latency = latency
        self.reject_duplicates = reject_duplicates
        self.clock: Clock = clock or _utcnow
        self._access_log = access_log
        # False: forget uploaded bytes once answered (for long or large benchmark runs).
        # Records stay; hosted images then have no bytes (size 0) and serve empty files.
        self.keep_bytes = keep_bytes

        self.requests: list[ReceivedRequest] = []
        self.uploads: list[ReceivedRequest] = []
        self.images: dict[str, HostedImage] = {}
        self._faults: list[tuple[Fault, Dialect | None]] = []
        self._checksums: set[str] = set()
        self._blobs: dict[str, tuple[bytes, str]] = {}
        self._served: dict[str, int] = {}
        self._active_downloads = 0
        self._downloads_idle = asyncio.Event()
        self._downloads_idle.set()
        self._in_flight: dict[int, ReceivedRequest] = {}
        self._stored: dict[int, HostedImage] = {}  # by id(received), when not keep_bytes
        # When each dialect accepted uploads, by client address (for flood limits).
        self._accepted: dict[tuple[Dialect, str], list[datetime]] = {}
        self._runner: web.AppRunner | None = None
        self._base_url: str | None = None
        # Whole request bodies above this are refused with 413, as a front proxy would
        # (except Chevereto's endpoint, where PHP's post_max_size empties them instead).
        self._body_limit = max(imgbb_max_bytes, chevereto_max_bytes) + (1 << 20)
        self.chevereto_post_max_bytes = (
            self._body_limit if chevereto_post_max_bytes is None else chevereto_post_max_bytes
        )

    # -- lifecycle --

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> None:
        """Listen on `host`:`port` (0 picks a free port)."""
        if self._runner is not None:
            raise RuntimeError("emulator already started")
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((host, port))
            runner = await self._serve_on(sock)
        except BaseException:
            sock.close()
            raise
        self._runner = runner
        bound_port = sock.getsockname()[1]
        shown_host = f"[{host}]" if family == socket.AF_INET6 else host
        self._base_url = f"http://{shown_host}:{bound_port}"

    async def _serve_on(self, sock: socket.socket) -> web.AppRunner:
        quiet: dict[str, Any] = {} if self._access_log else {"access_log": None}
        runner = web.AppRunner(
            self._make_app(),
            # Cancel a handler when its client goes away (slow faults, aborted
            # downloads) and do not wait long for stragglers on close.
            handler_cancellation=True,
            shutdown_timeout=0.25,
            **quiet,
        )
        await runner.setup()
        try:
            await web.SockSite(runner, sock).start()
        except BaseException:
            await runner.cleanup()
            raise
        return runner

    async def close(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    # -- addresses --

    @property
    def base_url(self) -> str:
        if self._base_url is None:
            raise RuntimeError("emulator not started")
        return self._base_url

    @property
    def imgbb_endpoint(self) -> str:
        return self.base_url + IMGBB_PATH

    @property
    def chevereto_endpoint(self) -> str:
        return self.base_url + CHEVERETO_PATH

    # -- test controls --

    def script(self, fault: Fault, times: int = 1, dialect: Dialect | None = None) -> None:
        """Give the next `times` upload requests (of `dialect`, or any) `fault`."""
        self._faults.extend([(fault, dialect)] * times)

    def clear_faults(self) -> None:
        self._faults.clear()

    def add_blob(self, name: str, data: bytes, content_type: str = "image/png") -> str:
        """Serve `data` at base_url/cdn/<name>; returns that URL."""
        self._blobs[name] = (data, content_type)
        self._served.setdefault(name, 0)
        return f"{self.base_url}/cdn/{quote(name)}"

    def bytes_served(self, path_or_url: str) -> int:
        """Bytes written to clients so far for a /cdn/ blob (URL, path or name)."""
        path = urlsplit(path_or_url).path if "://" in path_or_url else path_or_url
        name = unquote(path.removeprefix("/cdn/")) if path.startswith("/cdn/") else path
        return self._served.get(name, 0)

    async def wait_downloads(self, timeout: float = 5.0) -> None:
        """Wait until no /cdn/ download is streaming (so bytes_served is final)."""
        await asyncio.wait_for(self._downloads_idle.wait(), timeout)

    def image_by_url(self, url: str) -> HostedImage | None:
        """The image whose direct, viewer or delete URL is `url`."""
        for image in self.images.values():
            if url in (image.url, image.viewer_url, image.delete_url):
                return image
        return None

    # -- application --

    def _make_app(self) -> web.Application:
        app = web.Application(middlewares=[self._record])
        routes: list[tuple[str, str, Handler]] = [
            ("POST", IMGBB_PATH, self._imgbb_upload),
            ("GET", IMGBB_PATH, self._imgbb_upload),
            ("POST", CHEVERETO_PATH, self._chevereto_upload),
            ("GET", CHEVERETO_PATH, self._chevereto_upload),
            ("GET", "/i/{id}", self._imgbb_viewer),
            ("GET", "/i/{id}/{tail}", self._imgbb_file_or_delete_page),
            ("POST", "/i/{id}/{tail}", self._imgbb_delete_confirm),
            ("GET", "/image/{tail}", self._chevereto_viewer),
            ("GET", "/image/{id}/delete/{token}", self._chevereto_delete),
            ("GET", "/images/{file}", self._chevereto_file),
            ("GET", "/cdn/{name:.+}", self._cdn),
        ]
        for method, path, handler in routes:
            if method == "GET" and path not in (IMGBB_PATH, CHEVERETO_PATH):
                # HEAD too, as PHP serves it: a HEAD of a Chevereto delete link deletes.
                app.router.add_get(path, handler)
            else:
                app.router.add_route(method, path, handler)
        return app

    @web.middleware
    async def _record(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        received = wire.envelope(request)
        self.requests.append(received)
        if request.path in (IMGBB_PATH, CHEVERETO_PATH):
            self.uploads.append(received)
        if request.path == CHEVERETO_PATH:
            await self._read_php_body(request, received)
        else:
            try:
                await wire.read_body(request, self._body_limit, received)
            except wire.BodyTooLarge:
                return web.Response(status=413, text="Request Entity Too Large")
            except ValueError:
                pass  # PHP carries on with whatever it could parse, and so do we
        # Handlers find the parsed request here (keyed by identity: requests are unhashable).
        self._in_flight[id(request)] = received
        try:
            return await handler(request)
        finally:
            del self._in_flight[id(request)]
            if not self.keep_bytes:
                self._forget_bytes(received)

    async def _read_php_body(self, request: web.Request, received: ReceivedRequest) -> None:
        """Read the body as PHP does: past post_max_size the script sees no form and no files
        (and the answer comes once the whole body is in)."""
        limit = self.chevereto_post_max_bytes
        length = request.content_length
        try:
            if length is not None and length > limit:
                raise wire.BodyTooLarge
            await wire.read_body(request, limit, received)
        except wire.BodyTooLarge:
            await wire.discard_body(request)
            received.form.clear()
            received.files.clear()
            received.body_dropped = True
        except ValueError:
            pass  # PHP carries on with whatever it could parse, and so do we

    def _forget_bytes(self, received: ReceivedRequest) -> None:
        for part in received.files:
            part.data = b""
        for name in ("image", "source"):  # base64 sources arrive as text fields
            if name in received.form:
                received.form[name] = ""
        image = self._stored.pop(id(received), None)
        if image is not None:
            image.data = b""

    def _received(self, request: web.Request) -> ReceivedRequest:
        return self._in_flight[id(request)]

    # -- uploads: shared machinery --

    def _next_fault(self, dialect: Dialect) -> Fault | None:
        for index, (fault, target) in enumerate(self._faults):
            if target in (None, dialect):
                del self._faults[index]
                return fault
        return None

    async def _fault_response(
        self, request: web.Request, fault: Fault, dialect: Dialect
    ) -> web.StreamResponse | None:
        """The answer for `fault`, or None to carry on normally (after a "slow" delay)."""
        if fault.kind == "slow":
            await asyncio.sleep(fault.delay)
            return None
        if fault.kind == "drop":
            return await _drop_connection(request)
        if fault.kind == "status":
            return wire.status_response(fault.status)
        if fault.kind == "html":
            return web.Response(status=502, text=wire.PROXY_502, content_type="text/html")
        if fault.kind == "garbled":
            return web.Response(status=200, text=wire.GARBLED, content_type="text/html")
        # "flood" and "ratelimit": each dialect's rate-limit answer.
        rejection = wire.Rejected("flood", str(self.flood_per_minute or 50))
        if dialect == "chevereto":
            return self._chevereto_error(rejection, self._received(request))
        return wire.imgbb_error(rejection, self.imgbb_errors)

    async def _before_upload(
        self, request: web.Request, dialect: Dialect
    ) -> web.StreamResponse | None:
        if self.latency > 0:
            await asyncio.sleep(self.latency)
        fault = self._next_fault(dialect)
        if fault is None:
            return None
        return await self._fault_response(request, fault, dialect)

    async def _fetch_own_url(self, url: str, limit: int) -> bytes:
        """Download `url` if it is served by this emulator (never the network)."""
        if urlsplit(url).netloc != urlsplit(self.base_url).netloc:
            raise wire.Rejected("unreachable")
        data = bytearray()
        try:
            async with aiohttp.ClientSession() as session, session.get(url) as response:
                if response.status != 200:
                    raise wire.Rejected("unreachable")
                async for chunk in response.content.iter_chunked(CDN_CHUNK):
                    data += chunk
                    if len(data) > limit:
                        raise wire.Rejected("too_big", wire.human_size(limit))
        except aiohttp.ClientError as error:
            raise wire.Rejected("unreachable") from error
        return bytes(data)

    async def _text_source(self, text: str, method: str, limit: int, dialect: Dialect) -> bytes:
        if wire.is_url(text):
            return await self._fetch_own_url(text.strip(), limit)
        if dialect == "chevereto" and method != "POST":
            raise wire.Rejected("base64_by_get")
        data = wire.decode_base64(text)
        if data is None:
            raise wire.Rejected("bad_base64")
        return data

    async def _source(
        self, received: ReceivedRequest, field_name: str, limit: int, dialect: Dialect
    ) -> tuple[bytes, str | None]:
        """The uploaded bytes and original file name, from a file part or a text field."""
        part = received.file(field_name)
        if part is not None and part.data:
            return part.data, part.filename
        text = received.param(field_name)
        if text is None or not text.strip():
            raise wire.Rejected("no_source")
        data = await self._text_source(text, received.method, limit, dialect)
        if not data:
            raise wire.Rejected("no_source")
        return data, None

    @staticmethod
    def _examine(data: bytes, limit: int, formats: frozenset[str]) -> ImageInfo:
        if len(data) > limit:
            raise wire.Rejected("too_big", wire.human_size(limit))
        found = sniff(data)
        if isinstance(found, Unsupported):
            raise wire.Rejected("unsupported", found.name)
        if found is None:
            raise wire.Rejected("not_image")
        if found.format not in formats:
            raise wire.Rejected("unsupported", found.format)
        return found

    # -- uploads: flood limits --

    def _check_flood(self, dialect: Dialect, received: ReceivedRequest, limit: int | None) -> None:
        """Refuse when `limit` uploads were accepted from this address in the last minute."""
        if limit is None:
            return
        since = self.clock() - FLOOD_WINDOW
        moments = self._accepted.get((dialect, received.remote or ""), [])
        moments[:] = [moment for moment in moments if moment > since]
        if len(moments) >= limit:
            raise wire.Rejected("flood", str(limit))

    def _count_accepted(
        self, dialect: Dialect, received: ReceivedRequest, limit: int | None
    ) -> None:
        if limit is not None:  # without a limit nothing needs remembering
            self._accepted.setdefault((dialect, received.remote or ""), []).append(self.clock())

    def _new_id(self, length: int) -> str:
        while True:
            image_id = wire.random_id(length)
            if image_id not in self.images:
                return image_id

    # -- uploads: imgbb dialect --

    def _imgbb_check_key(self, received: ReceivedRequest) -> None:
        key = received.param("key")
        if not key:
            raise wire.Rejected("no_key")
        if key not in self.api_keys:
            raise wire.Rejected("bad_key")

    @staticmethod
    def _imgbb_expiration(received: ReceivedRequest) -> int | None:
        raw = received.param("expiration")
        if raw is None or raw.strip() == "":
            return None
        value = raw.strip()
        if not value.isascii() or not value.isdigit():
            raise wire.Rejected("bad_expiration")
        seconds = int(value)
        if not IMGBB_MIN_EXPIRATION <= seconds <= IMGBB_MAX_EXPIRATION:
            raise wire.Rejected("bad_expiration")
        return seconds

    @staticmethod
    def _imgbb_name(received: ReceivedRequest, filename: str | None) -> str:
        wanted = received.param("name") or wire.stem(filename)
        if re.search(r"\.(jpe?g|png|gif|webp|bmp|tiff?)$", wanted, re.IGNORECASE):
            wanted = wanted.rsplit(".", 1)[0]
        return wire.slugify(wanted, keep_case=True) or secrets.token_hex(6)

    async def _imgbb_upload(self, request: web.Request) -> web.StreamResponse:
        early = await self._before_upload(request, "imgbb")
        if early is not None:
            return early
        received = self._received(request)
        try:
            image = await self._imgbb_store(received)
        except wire.Rejected as rejection:
            return wire.imgbb_error(rejection, self.imgbb_errors)
        return wire.json_response(self._imgbb_answer(image))

    async def _imgbb_store(self, received: ReceivedRequest) -> HostedImage:
        self._imgbb_check_key(received)
        self._check_flood("imgbb", received, self.imgbb_rate_per_minute)
        limit = self.imgbb_max_bytes
        data, filename = await self._source(received, "image", limit, "imgbb")
        seconds = self._imgbb_expiration(received)
        info = self._examine(data, limit, _IMGBB_FORMAT_SET)
        now = self.clock().replace(microsecond=0)
        image_id = self._new_id(7)
        name = self._imgbb_name(received, filename)
        viewer = f"{self.base_url}/i/{image_id}"
        token = secrets.token_hex(16)
        image = HostedImage(
            id=image_id,
            dialect="imgbb",
            data=data,
            mime=info.mime,
            extension=info.extension,
            width=info.width,
            height=info.height,
            expiration_sent=received.param("expiration"),
            expires_at=now + timedelta(seconds=seconds) if seconds else None,
            delete_token=token,
            name=name,
            title=name,
            url=f"{viewer}/{name}.{info.extension}",
            viewer_url=viewer,
            delete_url=f"{viewer}/{token}",
            uploaded_at=now,
        )
        self.images[image_id] = image
        self._count_accepted("imgbb", received, self.imgbb_rate_per_minute)
        if not self.keep_bytes:
            self._stored[id(received)] = image
        return image

    def _imgbb_number(self, value: int) -> int | str:
        return str(value) if self.imgbb_numbers_as_strings else value

    def _imgbb_answer(self, image: HostedImage) -> dict[str, object]:
        expiration = 0
        if image.expires_at is not None:
            expiration = int((image.expires_at - image.uploaded_at).total_seconds())
        file_info = {
            "filename": f"{image.name}.{image.extension}",
            "name": image.name,
            "mime": image.mime,
            "extension": image.extension,
            "url": image.url,
        }
        number = self._imgbb_number
        data = {
            "id": image.id,
            "title": image.title,
            "url_viewer": image.viewer_url,
            "url": image.url,
            "display_url": image.url,
            "width": number(image.width),
            "height": number(image.height),
            "size": number(image.size),
            "time": number(int(image.uploaded_at.timestamp())),
            "expiration": number(expiration),
            "image": file_info,
            "thumb": dict(file_info),
            "medium": dict(file_info),
            "delete_url": image.delete_url,
        }
        return {"data": data, "success": True, "status": 200}

    # -- uploads: chevereto dialect --

    def _chevereto_check_key(self, received: ReceivedRequest) -> None:
        # The header wins over the field; Chevereto Free 1.x reads only the field.
        header = received.headers.get("x-api-key") if self.chevereto_key_from_header else None
        key = header or received.param("key")
        if not key:
            raise wire.Rejected("no_key")
        if key in self.denied_keys:
            raise wire.Rejected("denied")
        if key not in self.api_keys:
            raise wire.Rejected("bad_key")

    def _chevereto_expiry(self, sent: str | None, now: datetime) -> datetime | None:
        """When an image uploaded at `now` with expiration `sent` expires (None: never)."""
        if not sent:
            return None
        if sent in CHEVERETO_EXPIRATIONS:
            return add_iso_duration(now, sent)
        if self.chevereto_version != "4.2":
            return None  # 4.0 and 4.1: a value off the list is silently ignored
        shortest, longest = now + CHEVERETO_MIN_EXPIRY, now + CHEVERETO_MAX_EXPIRY
        if sent.isascii() and sent.isdigit():  # whole seconds; 0 is no expiry
            if int(sent) == 0:
                return None
            seconds = min(int(sent), int(CHEVERETO_MAX_EXPIRY.total_seconds()))
            return max(now + timedelta(seconds=seconds), shortest)
        try:
            wanted = add_iso_duration(now, sent)
        except (OverflowError, ValueError):  # past year 9999: far beyond the clamp
            return longest
        if wanted is None:
            return shortest  # a value 4.2 cannot parse means 5 minutes
        return min(max(wanted, shortest), longest)

    def _chevereto_check_duplicate(self, data: bytes) -> None:
        checksum = hashlib.sha256(data).hexdigest()
        if self.reject_duplicates and checksum in self._checksums:
            raise wire.Rejected("duplicate")
        self._checksums.add(checksum)

    @staticmethod
    def _chevereto_output(received: ReceivedRequest) -> str:
        return (received.param("format") or "json").lower()

    def _chevereto_error(self, rejection: wire.Rejected, received: ReceivedRequest) -> web.Response:
        older = self.chevereto_version != "4.2"
        return wire.chevereto_error(rejection, self._chevereto_output(received), older)

    async def _chevereto_upload(self, request: web.Request) -> web.StreamResponse:
        early = await self._before_upload(request, "chevereto")
        if early is not None:
            return early
        received = self._received(request)
        try:
            image = await self._chevereto_store(received)
        except wire.Rejected as rejection:
            return self._chevereto_error(rejection, received)
        answer = self._chevereto_answer(image, received)
        output = self._chevereto_output(received)
        if output == "txt":
            text = image.url if not self.moderation else image.viewer_url
            return web.Response(text=text, content_type="text/plain")
        if output == "redirect":
            raise web.HTTPFound(location=str(answer["path_viewer"]))
        return wire.json_response(
            {
                "status_code": 200,
                "success": {"message": "file uploaded", "code": 200},
                "image": answer,
                "status_txt": "OK",
            }
        )

    async def _chevereto_store(self, received: ReceivedRequest) -> HostedImage:
        self._chevereto_check_key(received)
        self._check_flood("chevereto", received, self.flood_per_minute)
        limit = self.chevereto_max_bytes
        data, filename = await self._source(received, "source", limit, "chevereto")
        info = self._examine(data, limit, self.chevereto_formats)
        self._chevereto_check_duplicate(data)
        now = self.clock().replace(microsecond=0)
        image_id = self._new_id(4)
        title = received.param("title") or wire.stem(filename)
        name = wire.slugify(wire.stem(filename), keep_case=True) or image_id
        slug = wire.slugify(title).replace("_", "-")
        short = f"{self.base_url}/image/{image_id}"
        token = secrets.token_hex(24) if self.chevereto_delete_links else None
        sent = received.param("expiration")
        image = HostedImage(
            id=image_id,
            dialect="chevereto",
            data=data,
            mime=info.mime,
            extension=info.extension,
            width=info.width,
            height=info.height,
            expiration_sent=sent,
            expires_at=self._chevereto_expiry(sent, now),
            delete_token=token,
            name=name,
            title=title,
            url=f"{self.base_url}/images/{image_id}.{info.extension}",
            viewer_url=f"{self.base_url}/image/{slug}.{image_id}" if slug else short,
            delete_url=f"{short}/delete/{token}" if token else None,
            uploaded_at=now,
        )
        self.images[image_id] = image
        self._count_accepted("chevereto", received, self.flood_per_minute)
        if not self.keep_bytes:
            self._stored[id(received)] = image
        return image

    def _chevereto_answer(self, image: HostedImage, received: ReceivedRequest) -> dict[str, object]:
        """The `image` object of a Chevereto V1.1 answer, after seeds/001."""
        ext = image.extension
        date = wire.gmt(image.uploaded_at)
        title = image.title or None
        tags = [t.strip() for t in (received.param("tags") or "").split(",") if t.strip()]
        thumb_url = f"{self.base_url}/images/{image.id}.th.{ext}"
        answer: dict[str, object] = {
            "name": image.name,
            "extension": ext,
            "size": image.size,
            "width": image.width,
            "height": image.height,
            "date": date,
            "date_gmt": date,
            "title": title,
            "tags": tags,
            "description": received.param("description") or None,
            "nsfw": 1 if received.param("nsfw") == "1" else 0,
            "storage_mode": "datefolder",
            "checksum": hashlib.md5(image.data).hexdigest(),
            "source_checksum": None,
            "original_filename": f"{image.name}.{ext}",
            "original_exifdata": None,
            "views": 0,
            "category_id": received.param("category_id") or None,
            "chain": 7,
            "thumb_size": image.size,
            "medium_size": 0,
            "expiration_date_gmt": wire.gmt(image.expires_at) if image.expires_at else None,
            "likes": 0,
            "is_animated": 0,
            "is_approved": 0 if self.moderation else 1,
            "is_360": 0,
            "type": "image",
            "tags_string": ",".join(tags),
            "file": {"resource": {"type": "file"}},
            "id_encoded": image.id,
            "filename": f"{image.name}.{ext}",
            "mime": image.mime,
            "url": image.url,
            "ratio": image.width / image.height if image.height else 0,
            "size_formatted": wire.human_size(image.size),
            "image": self._chevereto_file_info(image, f"{image.name}.{ext}", image.url),
            "thumb": self._chevereto_file_info(image, f"{image.name}.th.{ext}", thumb_url),
            "medium": dict.fromkeys(("filename", "name", "mime", "extension", "url")),
            "url_viewer": image.viewer_url,
            "path_viewer": urlsplit(image.viewer_url).path,
            "url_short": f"{self.base_url}/image/{image.id}",
            "display_url": image.url,
            "display_width": image.width,
            "display_height": image.height,
            "views_label": "views",
            "likes_label": "likes",
            "how_long_ago": "moments ago",
            "date_fixed_peer": date,
            "title_truncated": (title or "")[:25],
            "title_truncated_html": (title or "")[:25],
            "is_use_loader": False,
            "display_title": title or image.name,
        }
        if image.delete_url is not None:
            answer["delete_url"] = image.delete_url
        if self.moderation:
            # Held for moderation: the answer carries no public image URL.
            del answer["url"], answer["display_url"]
        return answer

    @staticmethod
    def _chevereto_file_info(image: HostedImage, filename: str, url: str) -> dict[str, object]:
        return {
            "filename": filename,
            "name": filename.rsplit(".", 1)[0],
            "mime": image.mime,
            "extension": image.extension,
            "url": url,
            "size": image.size,
        }

    # -- what uploads link to --

    def _live_image(self, image_id: str, dialect: Dialect) -> HostedImage | None:
        image = self.images.get(image_id)
        if image is None or image.dialect != dialect or not image.is_live(self.clock()):
            return None
        return image

    @staticmethod
    def _viewer_page(image: HostedImage) -> web.Response:
        title = html.escape(image.title or image.id)
        body = f'<h1>{title}</h1><img src="{html.escape(image.url)}" alt="{title}">'
        return wire.html_response(title, body)

    @staticmethod
    def _image_bytes(image: HostedImage) -> web.Response:
        return web.Response(body=image.data, content_type=image.mime)

    async def _imgbb_viewer(self, request: web.Request) -> web.StreamResponse:
        image = self._live_image(request.match_info["id"], "imgbb")
        return self._viewer_page(image) if image else wire.not_found()

    async def _imgbb_file_or_delete_page(self, request: web.Request) -> web.StreamResponse:
        image = self._live_image(request.match_info["id"], "imgbb")
        tail = request.match_info["tail"]
        if image is None:
            return wire.not_found()
        if tail == f"{image.name}.{image.extension}":
            return self._image_bytes(image)
        if tail == image.delete_token:
            # A page with a confirm button: looking at it deletes nothing.
            form = (
                f"<p>Delete {html.escape(image.title)}?</p>"
                f'<form method="post" action="{html.escape(image.delete_url or "")}">'
                '<input type="hidden" name="confirm" value="1">'
                '<button type="submit">Delete image</button></form>'
            )
            return wire.html_response("Delete image", form)
        return wire.not_found()

    async def _imgbb_delete_confirm(self, request: web.Request) -> web.StreamResponse:
        image = self._live_image(request.match_info["id"], "imgbb")
        if image is None or request.match_info["tail"] != image.delete_token:
            return wire.not_found()
        image.deleted = True
        return wire.html_response("Image deleted", "<p>The image has been deleted.</p>")

    async def _chevereto_viewer(self, request: web.Request) -> web.StreamResponse:
        # "<slug>.<id>" or the short form "<id>"
        tail = request.match_info["tail"]
        image = self._live_image(tail.rsplit(".", 1)[-1], "chevereto")
        if image is None:
            return wire.not_found()
        if "." not in tail and image.viewer_url != f"{self.base_url}/image/{tail}":
            # The short URL redirects to the full viewer URL (absolute).
            raise web.HTTPFound(location=image.viewer_url)
        return self._viewer_page(image)

    async def _chevereto_delete(self, request: web.Request) -> web.StreamResponse:
        image = self._live_image(request.match_info["id"], "chevereto")
        if image is None or image.delete_token is None:
            return wire.not_found()
        token = request.match_info["token"].encode()
        if not secrets.compare_digest(token, image.delete_token.encode()):
            return wire.not_found()
        # No confirmation: any GET (or HEAD) of the link deletes at once, and the
        # answer is a permanent redirect to the (absolute) viewer URL, now a 404.
        image.deleted = True
        raise web.HTTPMovedPermanently(location=f"{image.viewer_url}?deleted")

    async def _chevereto_file(self, request: web.Request) -> web.StreamResponse:
        # "<id>.<ext>" or the thumbnail "<id>.th.<ext>" (same bytes: nothing is resized)
        image_id, _, rest = request.match_info["file"].partition(".")
        image = self._live_image(image_id, "chevereto")
        if image is None or rest not in (image.extension, f"th.{image.extension}"):
            return wire.not_found()
        return self._image_bytes(image)

    # -- CDN blobs --

    async def _cdn(self, request: web.Request) -> web.StreamResponse:
        name = request.match_info["name"]
        blob = self._blobs.get(name)
        if blob is None:
            return wire.not_found()
        data, content_type = blob
        response = web.StreamResponse(headers={"Content-Type": content_type})
        response.content_length = len(data)
        await response.prepare(request)
        if request.method == "HEAD":
            return response
        self._active_downloads += 1
        self._downloads_idle.clear()
        try:
            await self._stream_blob(response, name, data)
        finally:
            self._active_downloads -= 1
            if self._active_downloads == 0:
                self._downloads_idle.set()
        return response

    async def _stream_blob(self, response: web.StreamResponse, name: str, data: bytes) -> None:
        try:
            for start in range(0, len(data), CDN_CHUNK):
                chunk = data[start : start + CDN_CHUNK]
                await response.write(chunk)
                self._served[name] = self._served.get(name, 0) + len(chunk)
            await response.write_eof()
        except ConnectionError:
            pass  # the client went away: the count stays at what was written


async def _drop_connection(request: web.Request) -> web.StreamResponse:
    """Close the connection without answering; the client sees a transport error."""
    transport = request.transport
    if transport is not None:
        transport.close()
    # With handler_cancellation on, aiohttp cancels this handler as soon as it
    # notices the closed connection; the sleep only waits for that.
    await asyncio.sleep(3600)
    raise ConnectionResetError("connection dropped on purpose")


# --- Command line -------------------------------------------------------------------


async def serve_forever(host: str, port: int, **options: Any) -> None:
    """Run an emulator until cancelled (Ctrl-C), printing where it listens."""
    emulator = HostEmulator(**options)
    await emulator.start(host=host, port=port)
    try:
        print(f"imgbb dialect (zg.is style):  {emulator.imgbb_endpoint}", flush=True)
        print(f"chevereto dialect (API V1.1): {emulator.chevereto_endpoint}", flush=True)
        print(f"accepted API key(s): {', '.join(emulator.api_keys)}", flush=True)
        print("Press Ctrl-C to stop.", flush=True)
        await asyncio.Event().wait()
    finally:
        await emulator.close()


async def _serve_until_signalled(host: str, port: int, options: dict[str, Any]) -> None:
    """serve_forever, stopped cleanly by SIGINT or SIGTERM."""
    task = asyncio.create_task(serve_forever(host, port, **options))
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        # Not available on Windows; there Ctrl-C still raises KeyboardInterrupt.
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(signum, task.cancel)
    with contextlib.suppress(asyncio.CancelledError):
        await task


def _format_list(text: str) -> frozenset[str]:
    try:
        return _format_set(name.strip() for name in text.split(",") if name.strip())
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from error


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="rehost emulate-host",
        description="Serve a local emulator of the imgbb and chevereto image-host APIs.",
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8089)
    parser.add_argument(
        "--api-key", action="append", dest="api_keys", metavar="KEY",
        help="an accepted API key (repeatable; default: test-key)",
    )  # fmt: skip
    parser.add_argument("--imgbb-errors", choices=("zg", "imgbb"), default="zg")
    parser.add_argument(
        "--chevereto-version", choices=get_args(CheveretoVersion), default="4.2",
        help="answer as this Chevereto version (expiration, not-an-image code)",
    )  # fmt: skip
    parser.add_argument(
        "--chevereto-formats", type=_format_list, metavar="LIST",
        default=",".join(CHEVERETO_FORMATS),
        help="comma-separated formats chevereto accepts (default: %(default)s)",
    )  # fmt: skip
    parser.add_argument(
        "--flood-per-minute", type=int, default=None, metavar="N",
        help="chevereto: uploads per client per minute before 'Flooding detected'",
    )  # fmt: skip
    parser.add_argument(
        "--imgbb-rate-per-minute", type=int, default=None, metavar="N",
        help="imgbb: uploads per client per minute before 'Rate limit reached.'",
    )  # fmt: skip
    parser.add_argument("--latency", type=float, default=0.0, help="seconds before each answer")
    parser.add_argument("--moderation", action="store_true", help="hold chevereto uploads")
    parser.add_argument(
        "--no-delete-links", action="store_true", help="chevereto answers without delete_url"
    )
    parser.add_argument("--access-log", action="store_true", help="log every request")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.access_log:
        logging.basicConfig(level=logging.INFO, format="%(message)s")
    options: dict[str, Any] = {
        "api_keys": tuple(args.api_keys or ["test-key"]),
        "imgbb_errors": args.imgbb_errors,
        "chevereto_version": args.chevereto_version,
        "chevereto_formats": args.chevereto_formats,
        "flood_per_minute": args.flood_per_minute,
        "imgbb_rate_per_minute": args.imgbb_rate_per_minute,
        "latency": args.latency,
        "moderation": args.moderation,
        "chevereto_delete_links": not args.no_delete_links,
        "access_log": args.access_log,
    }
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_serve_until_signalled(args.host, args.port, options))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
