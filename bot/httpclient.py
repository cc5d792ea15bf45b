"""The one place the shared ``httpx.AsyncClient`` is configured, and the transport under it.

The bot keeps httpx's API (every host client and the fetcher take an ``httpx.AsyncClient``)
but sends over aiohttp, which discord.py installs anyway. Through httpx's own transport
(httpcore, h11, anyio) a rehost's download and upload took 5.2 ms of CPU in the benchmark's
burst (``python -m bench.clientcost``), 1.8 ms over this one, 1.1 ms with aiohttp alone:
httpcore's per-request machinery, and a pool that re-scans every connection at each
request and connects anew whenever more requests run at once than it keeps alive.

:class:`AiohttpTransport` is httpx's transport seam over one ``aiohttp.ClientSession``:
connections are kept alive up to the pool's size, with no cookie jar (the hosts set no
cookie we need). It keeps what the callers rely on from httpx: its exception tree (a
dropped connection is a transport error, not a timeout), its four timeouts (aiohttp has
no write timeout; here one runs while the body is sent, restarted by every chunk that
goes out), no redirect followed unless httpx follows it, bodies streamed both ways as
they come, undecoded until httpx decodes them. (The httpx-aiohttp package costs the same
but reports a dropped connection as ConnectTimeout, lets other aiohttp errors out of
httpx's tree, and has no write timeout: an upload to a host that stops reading hangs.)

Users' links do not come here: :mod:`bot.linkguard` checks every address in httpcore's
connection backend, where the connection goes to the address checked. aiohttp has no
such seam: its resolver is not asked about an IP-literal URL, and it caches answers.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections.abc import AsyncIterator, Awaitable, Iterator

import aiohttp
import httpx
from yarl import URL

USER_AGENT = "rehost/0.1"
# Connections the pool keeps, at least: every one stays open for the next request, so
# a pool as large as the requests in flight connects once per host, not once per request.
POOL_SIZE = 32
KEEPALIVE_SECONDS = 5.0


def new_http_client(*, concurrency: int = 0, **overrides: object) -> httpx.AsyncClient:
    """A client that never follows redirects on its own: a Chevereto delete link answers a
    redirect that must be seen, not followed. ``concurrency``: how many uploads may run
    at once (``upload.max_concurrency``); the pool keeps twice as many connections (each
    upload's download, then the upload), and never fewer than :data:`POOL_SIZE`."""
    options: dict[str, object] = {
        "follow_redirects": False,
        "headers": {"User-Agent": USER_AGENT},
        "timeout": httpx.Timeout(60.0, connect=10.0),
        "transport": AiohttpTransport(connections=max(POOL_SIZE, 2 * concurrency)),
    }
    options.update(overrides)
    return HttpClient(**options)  # type: ignore[arg-type]


class _NoCookies(httpx.Cookies):
    """A jar that keeps nothing a response sets (the hosts and file servers set no cookie
    the bot needs): httpx would otherwise parse every response's headers for cookies."""

    def extract_cookies(self, response: httpx.Response) -> None:
        pass


class HttpClient(httpx.AsyncClient):
    """``httpx.AsyncClient`` without a cookie jar."""

    @property
    def cookies(self) -> httpx.Cookies:
        return _NoCookies()

    @cookies.setter
    def cookies(self, cookies: object) -> None:
        if cookies:
            raise ValueError("this client keeps no cookies")


class AiohttpTransport(httpx.AsyncBaseTransport):
    """httpx requests sent by an aiohttp session (made on first use, in the running loop)."""

    def __init__(
        self,
        *,
        connections: int = POOL_SIZE,
        keepalive: float = KEEPALIVE_SECONDS,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self._connections = connections  # open at once, and kept alive when idle
        self._keepalive = keepalive
        # The certificates httpx's own transport trusts (certifi's).
        self._ssl = ssl_context or httpx.create_ssl_context()
        self._session: aiohttp.ClientSession | None = None
        self._closed = False

    def _open(self) -> aiohttp.ClientSession:
        if self._closed:
            raise RuntimeError("the transport is closed")
        if self._session is None:
            connector = aiohttp.TCPConnector(
                limit=self._connections,
                limit_per_host=0,
                keepalive_timeout=self._keepalive,
                ssl=self._ssl,
            )
            self._session = aiohttp.ClientSession(
                connector=connector,
                cookie_jar=aiohttp.DummyCookieJar(),
                auto_decompress=False,  # httpx decodes, by the response's headers
                trust_env=False,  # httpx mounts its own transport for proxies
            )
        return self._session

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        session = self._open()
        timeouts = request.extensions.get("timeout", {})
        pool, connect = timeouts.get("pool"), timeouts.get("connect")
        timeout = aiohttp.ClientTimeout(
            total=None,
            # aiohttp's "connect" is waiting for the pool and connecting, together.
            connect=None if pool is None or connect is None else pool + connect,
            sock_connect=connect,
            sock_read=timeouts.get("read"),
        )
        # The request's Content-Length, when it has one, is sent as it is (PHP hosts may
        # not read a chunked body); aiohttp chunks a body without one, as httpx does.
        headers = [
            (name, value)
            for name, value in request.headers.multi_items()
            if name.lower() != "transfer-encoding"
        ]
        body: _Body | None = None
        data: bytes | AsyncIterator[bytes] | None = None
        if isinstance(request.stream, httpx.ByteStream):  # bytes, already in memory
            data = await request.aread() or None
        elif isinstance(request.stream, httpx.AsyncByteStream):
            body = _Body(request.stream, timeouts.get("write"))
            data = body.chunks()
        sending = session.request(
            request.method,
            URL(str(request.url), encoded=True),  # as given: signed URLs stay signed
            headers=headers,
            data=data,
            allow_redirects=False,
            timeout=timeout,
        )
        with _mapped_errors():
            if body is None:
                response = await sending
            else:
                response = await body.send(sending)
        extensions: dict[str, object] = {"http_version": b"HTTP/1.1"}
        if response.reason:
            extensions["reason_phrase"] = response.reason.encode("ascii", "replace")
        return httpx.Response(
            response.status,
            headers=response.raw_headers,
            stream=_ResponseStream(response),
            request=request,
            extensions=extensions,
        )

    async def aclose(self) -> None:
        self._closed = True
        if self._session is not None:
            await self._session.close()


class _Body:
    """A streamed request body with httpx's write timeout: each chunk must be taken by the
    connection within ``write`` seconds of the one before it, so a host that stops reading
    an upload times out, and a slow one that keeps reading does not."""

    def __init__(self, stream: httpx.AsyncByteStream, write: float | None) -> None:
        self._stream = stream
        self._write = write
        self._deadline: asyncio.Timeout | None = None

    async def send(self, sending: Awaitable[aiohttp.ClientResponse]) -> aiohttp.ClientResponse:
        deadline = asyncio.timeout(None)
        try:
            async with deadline:
                self._deadline = deadline
                response = await sending
        except TimeoutError:
            if deadline.expired():
                raise httpx.WriteTimeout("the host stopped taking the request body") from None
            raise
        finally:
            self._deadline = None  # the answer has come (or never will): no write timeout
        return response

    def _restart(self, seconds: float | None) -> None:
        if self._deadline is not None and not self._deadline.expired():
            when = None if seconds is None else asyncio.get_running_loop().time() + seconds
            self._deadline.reschedule(when)

    async def chunks(self) -> AsyncIterator[bytes]:
        async for chunk in self._stream:
            self._restart(self._write)
            yield chunk
        self._restart(None)  # all sent: the read timeout takes over


class _ResponseStream(httpx.AsyncByteStream):
    def __init__(self, response: aiohttp.ClientResponse) -> None:
        self._response = response

    async def __aiter__(self) -> AsyncIterator[bytes]:
        with _mapped_errors():
            async for chunk in self._response.content.iter_any():  # as received
                yield chunk

    async def aclose(self) -> None:
        # A body not read to its end closes the connection instead of returning it.
        self._response.release()
        with _mapped_errors():
            await self._response.wait_for_close()


# Most specific first: the first class an error is an instance of decides.
_ERRORS: list[tuple[type[BaseException], type[httpx.TransportError]]] = [
    (aiohttp.ConnectionTimeoutError, httpx.ConnectTimeout),
    (aiohttp.SocketTimeoutError, httpx.ReadTimeout),
    (aiohttp.ServerTimeoutError, httpx.TimeoutException),
    (aiohttp.ClientProxyConnectionError, httpx.ProxyError),
    (aiohttp.ClientConnectorError, httpx.ConnectError),
    (aiohttp.ServerDisconnectedError, httpx.RemoteProtocolError),
    (aiohttp.ClientPayloadError, httpx.ReadError),
    (aiohttp.ClientResponseError, httpx.RemoteProtocolError),
    (aiohttp.NonHttpUrlClientError, httpx.UnsupportedProtocol),
    (aiohttp.InvalidURL, httpx.UnsupportedProtocol),
    (aiohttp.ClientConnectionError, httpx.NetworkError),
    (aiohttp.ClientError, httpx.TransportError),
]


@contextlib.contextmanager
def _mapped_errors() -> Iterator[None]:
    try:
        yield
    except aiohttp.ClientError as error:
        for theirs, ours in _ERRORS:
            if isinstance(error, theirs):
                raise ours(str(error) or type(error).__name__) from error
        raise  # pragma: no cover - ClientError is in the list
