"""python-telegram-bot's requests over aiohttp: :class:`TelegramRequest`.

PTB's default request class, ``HTTPXRequest``, costs several milliseconds of CPU per Bot
API call (httpx and httpcore's pool bookkeeping); aiohttp, which discord.py already
brings, does the same call for a fraction of that. PTB takes any
:class:`telegram.request.BaseRequest` (``ApplicationBuilder().request(...)`` and
``.get_updates_request(...)``, or ``Bot(request=..., get_updates_request=...)``); this
one does what ``HTTPXRequest`` does, on one ``aiohttp.ClientSession`` per instance:

- **The same wire format.** Parameters go as ``application/x-www-form-urlencoded``
  (``RequestData.json_parameters``), or, when files are uploaded, as
  ``multipart/form-data``, field by field as httpx encodes it (plain fields, then the
  files with their file name and type); file handles are streamed, not read whole.
- **The same timeouts, with PTB's defaults:** connect 5 s (DNS, TCP and TLS), read 5 s
  (each read of the answer), write 5 s (each block of the request body written; 20 s
  when files are uploaded), pool 1 s (waiting for one of ``connection_pool_size``
  connections). ``Bot.get_updates`` adds its long poll's timeout to the read timeout
  itself, from :attr:`read_timeout`.
- **The same errors:** a timeout of any kind is :class:`~telegram.error.TimedOut` (a
  full pool says so), any other failure of the connection
  :class:`~telegram.error.NetworkError`. Status codes (429 as ``RetryAfter``, 403 as
  ``Forbidden``, ...) are handled by ``BaseRequest`` from the ``(status, body)`` that
  :meth:`TelegramRequest.do_request` returns.
- **TLS and proxies as httpx has them:** httpx's default TLS context (certifi, or
  ``SSL_CERT_FILE`` / ``SSL_CERT_DIR``); ``HTTP(S)_PROXY`` / ``ALL_PROXY`` / ``NO_PROXY``
  read once per host rather than at every request, or an explicit ``proxy``.

Connections are kept alive for :data:`KEEPALIVE` seconds between calls. ``initialize``
opens the session (PTB calls it from ``Bot.initialize``), ``shutdown`` closes it and its
connections; a request object can be initialized again after a shutdown.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import mimetypes
import os
import ssl
import urllib.request
from collections.abc import Iterable
from typing import IO, Any
from urllib.parse import urlencode

import aiohttp
import httpx
from aiohttp.abc import AbstractStreamWriter
from aiohttp.payload import Payload
from telegram import Bot
from telegram._utils.defaultvalue import DefaultValue
from telegram._utils.types import ODVInput, UploadFileDict
from telegram.error import NetworkError, TimedOut
from telegram.request import BaseRequest, RequestData
from yarl import URL

from bot import metrics
from bot.config import TelegramSettings
from bot.logsafety import Redactor

log = logging.getLogger(__name__)

KEEPALIVE = 15.0  # seconds an idle connection stays open, below common server limits
CHUNK = 64 * 1024  # a request body is written in blocks of this size, each timed
POOL_TIMEOUT_MESSAGE = (
    "Pool timeout: All connections in the connection pool are occupied. Request was *not*"
    " sent to Telegram. Consider adjusting the connection pool size or the pool timeout."
)
_SSL: ssl.SSLContext | None = None
_NO_TYPE = ("Content-Type",)
_mask = Redactor()  # bot tokens out of error messages, which may be stored
Segment = bytes | IO[bytes]


def _ssl_context() -> ssl.SSLContext:
    """httpx's default context (certifi, or SSL_CERT_FILE/SSL_CERT_DIR), made once."""
    global _SSL
    if _SSL is None:
        _SSL = httpx.create_ssl_context()
    return _SSL


class TelegramRequest(BaseRequest):
    """An aiohttp-based :class:`~telegram.request.BaseRequest`; arguments and defaults as
    ``HTTPXRequest``'s. Give ``get_updates`` an instance of its own (PTB uses a pool of
    one connection for it)."""

    __slots__ = (
        "_connect",
        "_media_write",
        "_pool",
        "_pool_size",
        "_proxies",
        "_proxy",
        "_read",
        "_session",
        "_slots",
        "_timeouts",
        "_write",
    )

    def __init__(
        self,
        connection_pool_size: int = 256,
        read_timeout: float | None = 5.0,
        write_timeout: float | None = 5.0,
        connect_timeout: float | None = 5.0,
        pool_timeout: float | None = 1.0,
        media_write_timeout: float | None = 20.0,
        proxy: str | None = None,
    ) -> None:
        if connection_pool_size < 1:
            raise ValueError("connection_pool_size must be at least 1")
        self._pool_size = connection_pool_size
        self._read = read_timeout
        self._write = write_timeout
        self._connect = connect_timeout
        self._pool = pool_timeout
        self._media_write = media_write_timeout
        self._proxy = proxy
        self._proxies: dict[tuple[str, str | None], str | None] = {}
        self._timeouts: dict[tuple[float | None, float | None], aiohttp.ClientTimeout] = {}
        self._session: aiohttp.ClientSession | None = None
        self._slots: asyncio.Semaphore | None = None

    @property
    def read_timeout(self) -> float | None:
        """The default read timeout (``get_updates`` adds its long poll's to it)."""
        return self._read

    @property
    def closed(self) -> bool:
        """Whether there is no open session (never initialized, or shut down)."""
        return self._session is None or self._session.closed

    async def initialize(self) -> None:
        if not self.closed:
            return
        connector = aiohttp.TCPConnector(
            limit=self._pool_size,
            limit_per_host=0,
            keepalive_timeout=KEEPALIVE,
            ssl=_ssl_context(),
        )
        self._session = aiohttp.ClientSession(
            connector=connector,
            headers={"User-Agent": self.USER_AGENT},
            cookie_jar=aiohttp.DummyCookieJar(),  # the Bot API sets none
            timeout=self._timeout(self._connect, self._read),
        )
        self._slots = asyncio.Semaphore(self._pool_size)

    async def shutdown(self) -> None:
        session, self._session = self._session, None
        if session is None or session.closed:
            log.debug("this TelegramRequest is already shut down")
            return
        await session.close()

    async def do_request(
        self,
        url: str,
        method: str,
        request_data: RequestData | None = None,
        read_timeout: ODVInput[float] = BaseRequest.DEFAULT_NONE,
        write_timeout: ODVInput[float] = BaseRequest.DEFAULT_NONE,
        connect_timeout: ODVInput[float] = BaseRequest.DEFAULT_NONE,
        pool_timeout: ODVInput[float] = BaseRequest.DEFAULT_NONE,
    ) -> tuple[int, bytes]:
        """Send one request; the answer's status and body (``BaseRequest`` reads them)."""
        session, slots = self._session, self._slots
        if session is None or session.closed or slots is None:
            raise RuntimeError("This TelegramRequest is not initialized!")
        files = None
        if request_data is not None and request_data.contains_files:
            files = request_data.multipart_data
        read = self._read if isinstance(read_timeout, DefaultValue) else read_timeout
        connect = self._connect if isinstance(connect_timeout, DefaultValue) else connect_timeout
        pool = self._pool if isinstance(pool_timeout, DefaultValue) else pool_timeout
        if isinstance(write_timeout, DefaultValue):
            write = self._media_write if files else self._write
        else:
            write = write_timeout
        body = _body(request_data, files, write) if request_data is not None else None
        target = URL(url)
        proxy = self._proxy_for(target)
        await _acquire(slots, pool)
        try:
            async with session.request(
                method,
                target,
                data=body,
                # A POST without parameters: Content-Length 0 and, as from httpx, no type.
                skip_auto_headers=_NO_TYPE if body is None else None,
                timeout=self._timeout(connect, read),
                proxy=proxy,
                allow_redirects=False,  # as HTTPXRequest: httpx follows none by default
            ) as response:
                status, payload = response.status, await response.read()
        except TimeoutError as error:  # aiohttp's connect and read timeouts, our write's
            raise TimedOut from error
        except aiohttp.ClientError as error:
            raise NetworkError(_mask(f"aiohttp.{type(error).__name__}: {error}")) from error
        finally:
            slots.release()
        if status == 429:  # PTB raises RetryAfter; every caller waits it out its own way
            metrics.rate_limited("telegram")
        if log.isEnabledFor(logging.DEBUG):
            log.debug('HTTP Request: %s %s "%d"', method, url, status)
        return status, payload

    def _timeout(self, connect: float | None, read: float | None) -> aiohttp.ClientTimeout:
        timeout = self._timeouts.get((connect, read))
        if timeout is None:
            # ``connect``: getting a connection, which only ever means opening one, since
            # the pool is waited for before (``pool_timeout``); ``sock_read``: each read.
            timeout = aiohttp.ClientTimeout(
                total=None, connect=connect, sock_connect=connect, sock_read=read
            )
            self._timeouts[(connect, read)] = timeout
        return timeout

    def _proxy_for(self, url: URL) -> str | None:
        """The explicit proxy, else the environment's for this host (looked up once)."""
        if self._proxy is not None:
            return self._proxy
        key = (url.scheme, url.host)
        if key not in self._proxies:
            self._proxies[key] = _environment_proxy(url)
        return self._proxies[key]


async def _acquire(slots: asyncio.Semaphore, timeout: float | None) -> None:
    if not slots.locked():
        await slots.acquire()  # free: returns at once
        return
    try:
        async with asyncio.timeout(timeout):
            await slots.acquire()
    except TimeoutError:
        raise TimedOut(POOL_TIMEOUT_MESSAGE) from None


def _environment_proxy(url: URL) -> str | None:
    if url.host is None or urllib.request.proxy_bypass(url.host):
        return None
    proxies = urllib.request.getproxies()
    return proxies.get(url.scheme) or proxies.get("all")


# --- the request body, as httpx encodes it ---------------------------------------------------


def _body(request_data: RequestData, files: UploadFileDict | None, write: float | None) -> Any:
    """The body for ``request_data``: None when there is nothing to send (a POST then
    carries ``Content-Length: 0``, as from httpx)."""
    if files:
        return _multipart(request_data.json_parameters, files, write)
    fields = request_data.json_parameters
    if not fields:
        return None
    encoded = urlencode(fields).encode()  # RequestData.url_encoded_parameters(), once
    return Body([encoded], len(encoded), "application/x-www-form-urlencoded", write)


def _multipart(fields: dict[str, str], files: UploadFileDict, write: float | None) -> Body:
    boundary = os.urandom(16).hex().encode("ascii")
    segments: list[Segment] = []
    text = bytearray()  # what comes before the next file handle, written in one piece
    for name, value in fields.items():
        text += b"--%s\r\nContent-Disposition: form-data; %s\r\n\r\n" % (
            boundary,
            _form_param("name", name),
        )
        text += value.encode() + b"\r\n"
    for name, (filename, content, mimetype) in files.items():
        text += b"--%s\r\nContent-Disposition: form-data; %s" % (
            boundary,
            _form_param("name", name),
        )
        if filename:
            text += b"; " + _form_param("filename", filename)
        content_type = mimetype or _guess_type(filename)
        if content_type is not None:
            text += b"\r\nContent-Type: " + content_type.encode()
        text += b"\r\n\r\n"
        if isinstance(content, bytes) and len(content) <= CHUNK:
            text += content
        else:  # a large file stays apart, uncopied
            segments.extend((bytes(text), content))
            text.clear()
        text += b"\r\n"
    text += b"--%s--\r\n" % boundary
    segments.append(bytes(text))
    content_type = f"multipart/form-data; boundary={boundary.decode('ascii')}"
    return Body(segments, _total_size(segments), content_type, write)


# What httpx escapes in a part's name and file name (the HTML5 form encoding).
_FORM_ESCAPES = {'"': "%22", "\\": "\\\\"} | {chr(c): f"%{c:02X}" for c in range(0x20) if c != 0x1B}
_FORM_ESCAPE_TABLE = str.maketrans(_FORM_ESCAPES)


def _form_param(name: str, value: str) -> bytes:
    return f'{name}="{value.translate(_FORM_ESCAPE_TABLE)}"'.encode()


def _guess_type(filename: str | None) -> str | None:
    if not filename:
        return None
    return mimetypes.guess_type(filename)[0] or "application/octet-stream"


def _total_size(segments: Iterable[Segment]) -> int | None:
    """The body's length, or None when a file's length cannot be told without reading
    it (the body is then sent chunked)."""
    total = 0
    for segment in segments:
        if isinstance(segment, bytes):
            total += len(segment)
            continue
        length = _file_length(segment)
        if length is None:
            return None
        total += length
    return total


def _file_length(file: IO[bytes]) -> int | None:
    """What httpx counts: the file's size (the whole file: it is sent from its start)."""
    try:
        return os.fstat(file.fileno()).st_size
    except (AttributeError, OSError):
        pass
    try:
        offset = file.tell()
        length = file.seek(0, os.SEEK_END)
        file.seek(offset)
    except (AttributeError, OSError):
        return None
    return length


class Body(Payload):
    """A request body of byte strings and file handles, written block by block, each
    block within the write timeout (aiohttp has no write timeout of its own)."""

    _autoclose = True  # it owns no file: PTB's InputFile does

    def __init__(
        self, segments: list[Segment], size: int | None, content_type: str, write: float | None
    ) -> None:
        super().__init__(segments, content_type=content_type)
        self._segments = segments
        self._size = size
        self._write_timeout = write

    def decode(self, encoding: str = "utf-8", errors: str = "strict") -> str:
        if not all(isinstance(segment, bytes) for segment in self._segments):
            raise TypeError("a body streaming a file cannot be decoded")
        return b"".join(self._segments).decode(encoding, errors)  # type: ignore[arg-type]

    async def write(self, writer: AbstractStreamWriter) -> None:
        await self.write_with_length(writer, None)

    async def write_with_length(
        self, writer: AbstractStreamWriter, content_length: int | None
    ) -> None:
        segments = self._segments
        if self._size is not None and self._size <= CHUNK and len(segments) == 1:
            # Smaller than a block, it only fills the transport's buffer: no wait to time.
            await writer.write(segments[0])  # type: ignore[arg-type]
            return
        for segment in segments:
            if isinstance(segment, bytes):
                view = memoryview(segment)
                for start in range(0, len(view), CHUNK):
                    await self._timed(writer, view[start : start + CHUNK])
                continue
            if hasattr(segment, "seek"):  # sent from its start, as httpx does
                with contextlib.suppress(OSError):  # io.UnsupportedOperation too
                    segment.seek(0)
            while block := segment.read(CHUNK):
                await self._timed(writer, block)

    async def _timed(self, writer: AbstractStreamWriter, block: bytes | memoryview) -> None:
        async with asyncio.timeout(self._write_timeout):
            await writer.write(block)


# --- bots on it ------------------------------------------------------------------------------


def bot_requests() -> tuple[TelegramRequest, TelegramRequest]:
    """For a Bot: the request object for its calls, and one for ``getUpdates`` (a long poll
    holds its one connection, as in PTB's defaults)."""
    return TelegramRequest(), TelegramRequest(connection_pool_size=1)


def new_bot(settings: TelegramSettings) -> Bot:
    """A Bot on :class:`TelegramRequest`, at the self-hosted Bot API server the settings
    name (``base_url`` and ``base_file_url``), else at Telegram's."""
    request, get_updates_request = bot_requests()
    if settings.base_url and settings.base_file_url:
        return Bot(
            settings.token,
            base_url=settings.base_url,
            base_file_url=settings.base_file_url,
            request=request,
            get_updates_request=get_updates_request,
        )
    return Bot(settings.token, request=request, get_updates_request=get_updates_request)
