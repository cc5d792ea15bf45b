"""The HTTP side of the emulated REST API: parsing, routing, auth, scripted failures.

Every request below ``/api/v{n}`` is recorded as a :class:`RestCall` before it is
answered. Answers are JSON with ``Content-Type: application/json`` exactly: discord.py's
``json_or_text`` compares that header verbatim and treats anything else (even with a
``charset``) as text. Errors are Discord's ``{"message": ..., "code": ...}`` bodies.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from aiohttp import BodyPartReader, web

from sandbox.discord_model import ApiError, ApiRequest, Json, Reply, Route, Upload, World

_log = logging.getLogger(__name__)
_FILE_FIELD = re.compile(r"^files\[(\d+)\]$")


@dataclass
class RestCall:
    """One request below the API base, as received, and the status it was answered with."""

    method: str
    path: str  # e.g. "/channels/1/messages", query string excluded
    json: Any | None
    files: list[tuple[str, bytes]]
    query: dict[str, str]
    status: int = 0  # 0 while the emulator is still answering


@dataclass
class _Failure:
    method: str
    pattern: re.Pattern[str]
    status: int
    body: Json | None
    retry_after: float
    times: int
    via: bool


def json_response(status: int, body: Any, headers: dict[str, str] | None = None) -> web.Response:
    # Exactly "application/json": discord.py compares the header verbatim.
    all_headers = {"Content-Type": "application/json", **(headers or {})}
    return web.Response(status=status, body=json.dumps(body).encode(), headers=all_headers)


async def read_body(request: web.Request) -> tuple[Any, list[Upload]]:
    if request.content_type.startswith("multipart/"):
        return await _read_multipart(request)
    raw = await request.read()
    return (_parse_json(raw) if raw else None), []


def _parse_json(raw: bytes | bytearray) -> Any:
    try:
        return json.loads(raw)
    except ValueError:
        raise ApiError(400, 50109, "The request body contains invalid JSON.") from None


async def _read_multipart(request: web.Request) -> tuple[Any, list[Upload]]:
    payload: Any = None
    uploads: list[Upload] = []
    reader = await request.multipart()
    while (part := await reader.next()) is not None:
        if not isinstance(part, BodyPartReader):
            continue
        name = part.name or ""
        if name == "payload_json":
            payload = _parse_json(await part.read(decode=False))
            continue
        match = _FILE_FIELD.match(name)
        data = bytes(await part.read(decode=False))
        index = int(match.group(1)) if match else None
        ctype = part.headers.get("Content-Type")
        uploads.append(Upload(index, part.filename or name, data, ctype))
    return payload, uploads


class RestFrontend:
    """Routes requests to handlers, after auth and any scripted failure."""

    def __init__(self, world: World, routes: list[Route]) -> None:
        self.world = world
        self.calls: list[RestCall] = []
        self._routes = routes
        self._failures: list[_Failure] = []
        self._new_call = asyncio.Event()
        self.internal_errors: list[Exception] = []

    async def handle(self, request: web.Request) -> web.StreamResponse:
        path = "/" + request.match_info["tail"]
        query = dict(request.query)
        early: ApiError | None = None
        try:
            body, uploads = await read_body(request)
        except ApiError as exc:
            body, uploads, early = None, [], exc
        call = RestCall(request.method, path, body, [(u.filename, u.data) for u in uploads], query)
        self.calls.append(call)
        if early is not None:
            response = json_response(early.status, early.body())
        else:
            req = ApiRequest(request.method, path, body, uploads, query)
            response = await self._answer(request, req)
        call.status = response.status
        self._new_call.set()
        self._new_call = asyncio.Event()
        return response

    async def _answer(self, request: web.Request, req: ApiRequest) -> web.Response:
        failure = self._take_failure(req.method, req.path)
        if failure is not None:
            return failure
        found = self._match(req.method, req.path)
        if isinstance(found, web.Response):
            return found
        route, match = found
        authorization = request.headers.get("Authorization")
        if route.auth and authorization != f"Bot {self.world.token}":
            return json_response(401, {"message": "401: Unauthorized", "code": 0})
        try:
            reply: Reply = await route.handler(self.world, req, match)
        except ApiError as exc:
            return json_response(exc.status, exc.body())
        except Exception as exc:
            # An emulator bug. 503 because discord.py raises it at once; it would retry
            # a 500 five times with growing sleeps.
            _log.exception("emulator failed on %s %s", req.method, req.path)
            self.internal_errors.append(exc)
            return json_response(503, {"message": f"emulator error: {exc!r}", "code": 0})
        if reply.body is None:
            return web.Response(status=204 if reply.status == 200 else reply.status)
        return json_response(reply.status, reply.body)

    def _match(self, method: str, path: str) -> tuple[Route, re.Match[str]] | web.Response:
        allowed = False
        for candidate in self._routes:
            match = candidate.pattern.match(path)
            if match is None:
                continue
            if candidate.method == method:
                return candidate, match
            allowed = True
        if allowed:
            return json_response(405, {"message": "405: Method Not Allowed", "code": 0})
        return json_response(404, {"message": "404: Not Found", "code": 0})

    def _take_failure(self, method: str, path: str) -> web.Response | None:
        for failure in self._failures:
            if failure.method == method and failure.pattern.search(path):
                failure.times -= 1
                if failure.times <= 0:
                    self._failures.remove(failure)
                return self._failure_response(failure)
        return None

    @staticmethod
    def _failure_response(failure: _Failure) -> web.Response:
        if failure.status != 429:
            body = failure.body or {"message": f"{failure.status}: Scripted failure", "code": 0}
            return json_response(failure.status, body)
        body = failure.body or {
            "message": "You are being rate limited.",
            "retry_after": failure.retry_after,
            "global": False,
        }
        # discord.py retries a 429 only when it carries Via (else it blames Cloudflare).
        headers = {
            "Retry-After": str(max(1, math.ceil(failure.retry_after))),
            "X-RateLimit-Scope": "user",
        }
        if failure.via:
            headers["Via"] = "1.1 google"
        return json_response(429, body, headers)

    def fail_next(
        self,
        method: str,
        path_regex: str,
        status: int,
        body: Json | None,
        retry_after: float,
        times: int,
        *,
        via: bool,
    ) -> None:
        failure = _Failure(
            method.upper(), re.compile(path_regex), status, body, retry_after, times, via
        )
        self._failures.append(failure)

    async def wait_for(
        self, predicate: Callable[[RestCall], bool], timeout: float = 5.0
    ) -> RestCall:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            for call in self.calls:
                if call.status and predicate(call):
                    return call
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise AssertionError(self._summary(timeout))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._new_call.wait(), remaining)

    def _summary(self, timeout: float) -> str:
        lines = [f"no matching REST call within {timeout}s; calls received:"]
        lines += [f"  {c.method} {c.path} -> {c.status} {c.json!r:.200}" for c in self.calls[-30:]]
        return "\n".join(lines)
