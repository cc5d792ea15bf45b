"""The webhook: Telegram POSTs each update here; it is recorded before it is answered.

The server listens on ``[telegram] webhook_listen`` and answers POSTs on the path of
``webhook_url`` (``https://bot.example.org/tg/webhook`` -> ``/tg/webhook``), so a load
balancer (or Telegram itself) can send updates to any number of processes:

- a missing or wrong ``X-Telegram-Bot-Api-Secret-Token`` header: 403, nothing recorded;
- a body that is not a JSON object with an ``update_id``: 400;
- the update is written to the inbox, and only then answered 200. Telegram sends again
  whatever it got no 2xx for, so an update the database could not take (500) comes back;
  an update id seen twice is recorded, and handled, once.

Fresh updates are then handled like polled ones, by
:class:`~adapters.telegram.handling.UpdateHandling`. When all its slots are busy, the
answer waits for one: Telegram, which keeps a bounded number of requests in flight, slows
down rather than this process piling up work in memory.
"""

from __future__ import annotations

import hmac
import json
import logging
from typing import Any

from aiohttp import web

from adapters.telegram.handling import UpdateHandling
from adapters.telegram.trigger import PLATFORM
from bot.inbox import Inbox
from bot.webserve import listen

log = logging.getLogger(__name__)
SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"
MAX_BODY = 1 << 20  # an update is a few kilobytes
SHUTDOWN_GRACE = 2.0  # seconds a request in flight gets to finish when stopping


class WebhookServer:
    def __init__(
        self,
        inbox: Inbox,
        handling: UpdateHandling,
        *,
        listen: tuple[str, int],
        path: str,
        secret: str,
    ) -> None:
        if not secret:
            raise ValueError("a webhook needs a secret token")
        self.inbox = inbox
        self.handling = handling
        self.listen = listen
        self.path = path or "/"
        self._secret = secret.encode()
        self._runner: web.AppRunner | None = None

    async def start(self) -> None:
        """Listen; raises OSError when the address cannot be used (in use, no permission)."""
        app = web.Application(client_max_size=MAX_BODY)
        app.router.add_post(self.path, self._receive)
        self._runner = await listen(app, self.listen, shutdown_grace=SHUTDOWN_GRACE)
        host, port = self.listen
        log.info("Telegram webhook listening on %s:%d%s", host, port, self.path)

    @property
    def listening(self) -> bool:
        return self._runner is not None

    async def stop(self) -> None:
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()

    async def _receive(self, request: web.Request) -> web.Response:
        given = request.headers.get(SECRET_HEADER, "").encode("utf-8", "surrogateescape")
        if not hmac.compare_digest(given, self._secret):
            log.warning("refused a webhook request from %s: wrong secret token", request.remote)
            return web.Response(status=403, text="Forbidden")
        try:
            payload: Any = json.loads(await request.read())
        except ValueError:
            return web.Response(status=400, text="not JSON")
        update_id = payload.get("update_id") if isinstance(payload, dict) else None
        if not isinstance(update_id, int) or isinstance(update_id, bool):
            return web.Response(status=400, text="not an update")
        try:
            fresh = await self.inbox.record(PLATFORM, [(update_id, payload)])
        except Exception:
            log.exception(
                "could not record Telegram update %d; Telegram will send it again", update_id
            )
            return web.Response(status=500, text="not recorded")
        if fresh:
            await self.handling.admit(update_id, payload)
        return web.Response(status=200)
