"""Health and metrics over HTTP for ``rehost run`` (``[observability] listen``).

- ``GET /healthz``: ``200 {"status": "ok"}`` when the database answers a query within
  :data:`DATABASE_TIMEOUT` and every adapter this process runs is connected; otherwise
  ``503 {"status": "unavailable", "problems": [...]}``, one line per problem, such as
  ``"telegram: not connected"`` or ``"database: no answer within 2 s"``. The server starts
  before the adapters do, so it answers 503 until they are connected: a load balancer or
  an orchestrator sends nothing to a process still starting.
- ``GET /metrics``: every metric of :mod:`bot.metrics` in the Prometheus text format (or
  OpenMetrics, when the scraper asks for it). The gauges of state (jobs waiting, answers
  not sent, host cooldowns, the event loop's lag) are read at each scrape, with a few
  indexed queries.

Nothing secret is served: a problem names a part and what is wrong with it, never an
exception's text (which might hold an address), and label values come from fixed sets.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from typing import Protocol

from aiohttp import web
from prometheus_client.aiohttp import make_aiohttp_handler

from bot import metrics
from bot.app import Core
from bot.cli import UsageError
from bot.cooldowns import Cooldowns
from bot.looplag import LoopLag
from bot.store import from_text
from bot.webserve import listen

log = logging.getLogger(__name__)
DATABASE_TIMEOUT = 2.0  # seconds the database has to answer the health check
STATE_TIMEOUT = 2.0  # seconds the scrape's queries have, together
SHUTDOWN_GRACE = 1.0


class Watched(Protocol):
    """What the health check asks of an adapter."""

    name: str

    def problem(self) -> str | None:
        """Why it is not serving now (not connected...), or None when it is."""


class Observability:
    """The HTTP server; ``start()`` listens on ``listen``, ``stop()`` closes it."""

    def __init__(
        self,
        core: Core,
        adapters: Sequence[Watched],
        lag: LoopLag | None = None,
        *,
        listen: tuple[str, int],
    ) -> None:
        self.core = core
        self.adapters = list(adapters)
        self.lag = lag
        self.listen = listen
        self._runner: web.AppRunner | None = None
        self._render = make_aiohttp_handler(metrics.REGISTRY)

    async def start(self) -> None:
        """Listen; raises OSError when the address cannot be used (in use, no permission)."""
        app = web.Application()
        app.router.add_get("/healthz", self._healthz)
        app.router.add_get("/metrics", self._metrics)
        self._runner = await listen(app, self.listen, shutdown_grace=SHUTDOWN_GRACE)
        host = self.listen[0]
        log.info("health and metrics on http://%s:%d (/healthz, /metrics)", host, self.port)

    @property
    def port(self) -> int:
        """The port listened on (the one chosen, when ``listen`` asked for 0)."""
        assert self._runner is not None, "not started"
        return int(self._runner.addresses[0][1])

    async def stop(self) -> None:
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()

    # --- health --------------------------------------------------------------------------

    async def problems(self) -> list[str]:
        """Everything that keeps this process from serving now (empty: healthy)."""
        found = []
        database = await self._database_problem()
        if database is not None:
            found.append(f"database: {database}")
        for adapter in self.adapters:
            problem = adapter.problem()
            if problem is not None:
                found.append(f"{adapter.name}: {problem}")
        return found

    async def _database_problem(self) -> str | None:
        try:
            async with asyncio.timeout(DATABASE_TIMEOUT):
                await self.core.store.db.fetchval("select 1 as ok")
        except TimeoutError:
            return f"no answer within {DATABASE_TIMEOUT:g} s"
        except Exception as error:
            log.warning("the health check's query failed", exc_info=True)
            return f"the query failed ({type(error).__name__})"
        return None

    async def _healthz(self, request: web.Request) -> web.Response:
        problems = await self.problems()
        if problems:
            body = {"status": "unavailable", "problems": problems}
            return web.json_response(body, status=503)
        return web.json_response({"status": "ok"})

    # --- metrics -------------------------------------------------------------------------

    async def _metrics(self, request: web.Request) -> web.StreamResponse:
        metrics.STATE.state = await self._state()
        return await self._render(request)

    async def _state(self) -> metrics.State:
        """The gauges' values now; without those the database did not give in time."""
        state = metrics.State(loop_lag=self.lag.recent_worst if self.lag is not None else None)
        rehost = self.core.rehost
        try:
            async with asyncio.timeout(STATE_TIMEOUT):
                queue = await rehost.queue.depth()
                state.outbox = await rehost.outbox.depth()
                cooling = await Cooldowns(self.core.store).active()
        except Exception as error:
            log.warning("reading the queue for /metrics failed (%s)", type(error).__name__)
            return state
        now = time.time()
        for adapter in self.adapters:  # this process's platforms show 0, not nothing
            state.queue[adapter.name] = (0, 0.0)
            state.outbox.setdefault(adapter.name, 0)
        for platform, (count, oldest) in queue.items():
            recorded = from_text(oldest)
            age = now - recorded.timestamp() if recorded is not None else 0.0
            state.queue[platform] = (count, max(0.0, age))
        for host in self.core.config.upload.hosts:  # configured names only
            state.cooldowns[host] = max(0.0, cooling.get(host, (0.0, ""))[0])
        return state


async def start_observability(
    core: Core, adapters: Sequence[Watched], lag: LoopLag | None = None
) -> Observability | None:
    """Serve /healthz and /metrics where ``[observability] listen`` says (None: not
    configured). An address that cannot be used stops the start with one line."""
    listen = core.config.observability.listen
    if listen is None:
        return None
    observer = Observability(core, adapters, lag, listen=listen)
    try:
        await observer.start()
    except OSError as error:
        host, port = listen
        reason = error.strerror or type(error).__name__
        raise UsageError(
            f"[observability] listen: cannot listen on {host}:{port}: {reason}"
        ) from error
    return observer
