"""A stand-in for the web sites users link to: images, redirects and pages.

One :class:`WebSite` listens on one loopback address (``127.0.0.1`` by default, port 0)
and records every request it receives, so a test can show that a request never reached
it. Paths are set up by the test:

- :meth:`WebSite.add_image`: bytes with a content type (``image/png`` by default);
- :meth:`WebSite.add_page`: an HTML page;
- :meth:`WebSite.add_redirect`: a 3xx answer with ``Location`` (absolute or relative);
- :meth:`WebSite.add_endless`: an image that never ends, a few bytes at a time;
- anything else: 404.

A site on another loopback address (``127.0.0.2``, ``::1``) stands for "another machine"
in tests: the bot may be told to allow one address and not the other.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import ssl
from dataclasses import dataclass

from aiohttp import web

from sandbox.lifecycle import LocalServer

PAGE = (
    "<!DOCTYPE html>\n<html><head><title>Cat pictures</title></head>"
    "<body><img src='/cat.png'></body></html>\n"
)


@dataclass(frozen=True)
class Seen:
    """One request as the site received it."""

    method: str
    path: str
    host: str  # the Host header
    headers: dict[str, str]


@dataclass(frozen=True)
class _Answer:
    status: int
    body: bytes = b""
    content_type: str | None = None
    location: str | None = None
    endless: bool = False


class WebSite(LocalServer):
    """``ssl_context``: serve HTTPS with it (a server context holding a certificate)."""

    def __init__(self, host: str = "127.0.0.1", ssl_context: ssl.SSLContext | None = None) -> None:
        self.host = host
        self.port = 0
        self._ssl = ssl_context
        self.requests: list[Seen] = []
        self._answers: dict[str, _Answer] = {}
        self._runner: web.AppRunner | None = None

    async def start(self, host: str | None = None, port: int = 0) -> None:
        self.host = host or self.host
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        family = socket.AF_INET6 if ipaddress.ip_address(self.host).version == 6 else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.bind((self.host, port))
        self.port = int(sock.getsockname()[1])
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        await web.SockSite(self._runner, sock, ssl_context=self._ssl).start()

    async def close(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    @property
    def base_url(self) -> str:
        host = self.host
        if ipaddress.ip_address(host).version == 6:
            host = f"[{host}]"
        return f"{'https' if self._ssl else 'http'}://{host}:{self.port}"

    def url(self, path: str) -> str:
        return self.base_url + path

    def add_image(self, path: str, data: bytes, content_type: str | None = "image/png") -> str:
        self._answers[path] = _Answer(200, data, content_type)
        return self.url(path)

    def add_page(self, path: str, html: str = PAGE) -> str:
        self._answers[path] = _Answer(200, html.encode(), "text/html; charset=utf-8")
        return self.url(path)

    def add_redirect(self, path: str, location: str, status: int = 302) -> str:
        self._answers[path] = _Answer(status, location=location)
        return self.url(path)

    def add_endless(self, path: str, head: bytes, content_type: str = "image/png") -> str:
        """``head``, then zero bytes in small pieces, until the client goes away."""
        self._answers[path] = _Answer(200, head, content_type, endless=True)
        return self.url(path)

    def paths(self) -> list[str]:
        """The paths requested so far, in order."""
        return [seen.path for seen in self.requests]

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        self.requests.append(
            Seen(request.method, request.path_qs, request.host, dict(request.headers))
        )
        answer = self._answers.get(request.path_qs) or self._answers.get(request.path)
        if answer is None:
            return web.Response(status=404, text="not found")
        if answer.location is not None:
            return web.Response(status=answer.status, headers={"Location": answer.location})
        if answer.endless:
            return await self._dribble(request, answer)
        response = web.Response(status=answer.status, body=answer.body)
        if answer.content_type is not None:
            response.headers["Content-Type"] = answer.content_type
        return response

    async def _dribble(self, request: web.Request, answer: _Answer) -> web.StreamResponse:
        response = web.StreamResponse(status=200)
        response.content_type = answer.content_type or "application/octet-stream"
        await response.prepare(request)
        await response.write(answer.body)
        try:
            while True:
                await asyncio.sleep(0.005)
                await response.write(b"\0" * 16)
        except (ConnectionResetError, RuntimeError):
            return response  # the client went away
