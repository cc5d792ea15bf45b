"""A tiny HTTP load balancer for tests and benchmarks: one address in front of several
copies of a service, each request to the next backend in turn (round robin).

    async with Balancer(["http://127.0.0.1:8001", "http://127.0.0.1:8002"]) as lb:
        await bot.set_webhook(lb.url + "/telegram")   # each update to one of the two

Each request is forwarded as it came (method, path with query string, headers, body) to
``{backend}{path}``, and the backend's answer (status, headers, body) is relayed back.
Headers that belong to one connection (``Connection``, ``Keep-Alive``,
``Transfer-Encoding``, ...) are not copied either way; ``Host`` becomes the backend's
own, ``X-Forwarded-For`` / ``X-Forwarded-Host`` / ``X-Forwarded-Proto`` tell it where the
request came from. A backend that refuses the connection (or cannot be reached) gets the
client a 502 Bad Gateway, one that does not answer within ``timeout`` seconds a 504
Gateway Timeout; the balancer does not try another backend, so a test sees every
failure. ``forwarded`` records where each request went.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Sequence
from dataclasses import dataclass

import aiohttp
from aiohttp import web
from multidict import CIMultiDict, CIMultiDictProxy

from sandbox.lifecycle import LocalServer

# Hop-by-hop headers (RFC 9110 7.6.1) and those aiohttp recomputes for the new message.
_NOT_FORWARDED = frozenset(
    {
        "connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te",
        "trailer", "transfer-encoding", "upgrade", "proxy-connection", "host",
        "content-length",
    }
)  # fmt: skip


@dataclass(frozen=True)
class Forwarded:
    """One request the balancer handled: where it went and what the client got.

    ``status`` is the backend's status, or 502/504 when the balancer answered itself
    (``error`` then says why)."""

    backend: str
    method: str
    path: str
    status: int
    error: str | None
    duration: float


def _copied(headers: CIMultiDictProxy[str]) -> CIMultiDict[str]:
    dropped = set(_NOT_FORWARDED)
    for value in headers.getall("Connection", []):
        dropped.update(name.strip().lower() for name in value.split(","))
    return CIMultiDict((k, v) for k, v in headers.items() if k.lower() not in dropped)


class Balancer(LocalServer):
    def __init__(self, backends: Sequence[str], *, timeout: float = 30.0) -> None:
        """``backends``: base URLs (``http://127.0.0.1:8001``, a path prefix allowed),
        served in this order, round and round. ``timeout``: seconds to wait for a
        backend's whole answer before answering 504."""
        if not backends:
            raise ValueError("a balancer needs at least one backend")
        self.backends = [b.rstrip("/") for b in backends]
        self.timeout = timeout
        self.forwarded: list[Forwarded] = []
        self._recorded: asyncio.Event | None = None
        self._next = 0
        self._runner: web.AppRunner | None = None
        self._session: aiohttp.ClientSession | None = None
        self._root = ""

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> None:
        if self._runner is not None:
            raise RuntimeError("balancer already started")
        app = web.Application(client_max_size=1 << 30)
        app.router.add_route("*", "/{tail:.*}", self._handle)
        runner = web.AppRunner(app, handler_cancellation=True, shutdown_timeout=0.25)
        await runner.setup()
        try:
            await web.TCPSite(runner, host, port).start()
        except BaseException:
            await runner.cleanup()
            raise
        self._runner = runner
        bound_host, bound_port = runner.addresses[0][:2]
        shown = f"[{bound_host}]" if ":" in bound_host else bound_host
        self._root = f"http://{shown}:{bound_port}"
        # No pooling limit, no decompression: bodies are relayed byte for byte.
        connector = aiohttp.TCPConnector(limit=0)
        self._session = aiohttp.ClientSession(connector=connector, auto_decompress=False)

    async def close(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        if self._session is not None:
            await self._session.close()
            self._session = None

    @property
    def url(self) -> str:
        """The balancer's root, e.g. ``http://127.0.0.1:40125``."""
        if not self._root:
            raise RuntimeError("Balancer is not started")
        return self._root

    def _pick(self) -> str:
        backend = self.backends[self._next % len(self.backends)]
        self._next += 1
        return backend

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        assert self._session is not None
        backend = self._pick()
        started = time.monotonic()
        target = backend + str(request.rel_url)
        headers = _copied(request.headers)
        peer = request.remote or ""
        earlier = request.headers.get("X-Forwarded-For")
        headers["X-Forwarded-For"] = f"{earlier}, {peer}" if earlier else peer
        headers.setdefault("X-Forwarded-Host", request.host)
        headers.setdefault("X-Forwarded-Proto", request.scheme)
        body = await request.read()
        timeout = aiohttp.ClientTimeout(total=self.timeout)

        def record(status: int, error: str | None = None) -> None:
            duration = time.monotonic() - started
            self.forwarded.append(
                Forwarded(backend, request.method, str(request.rel_url), status, error, duration)
            )
            if self._recorded is not None:
                self._recorded.set()
            self._recorded = asyncio.Event()

        try:
            async with self._session.request(
                request.method,
                target,
                headers=headers,
                data=body if body else None,
                timeout=timeout,
                allow_redirects=False,
            ) as answer:
                content = await answer.read()
                relayed = _copied(answer.headers)
                record(answer.status)
                return web.Response(
                    status=answer.status, reason=answer.reason, headers=relayed, body=content
                )
        except TimeoutError:
            record(504, "timeout")
            return web.Response(status=504, text="Gateway Timeout")
        except aiohttp.ClientError as exc:
            record(502, str(exc) or type(exc).__name__)
            return web.Response(status=502, text="Bad Gateway")

    async def wait_for(self, count: int, timeout: float = 5.0) -> list[Forwarded]:
        """Until at least ``count`` requests were handled; all of them so far."""
        deadline = time.monotonic() + timeout
        while len(self.forwarded) < count:
            if self._recorded is None:
                self._recorded = asyncio.Event()
            recorded = self._recorded
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"{len(self.forwarded)} of {count} requests after {timeout} s")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(recorded.wait(), remaining)
        return list(self.forwarded)


__all__ = ["Balancer", "Forwarded"]
