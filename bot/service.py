"""RehostService: the core as adapters see it.

It composes the seams of the core, each in its own module:

- :mod:`bot.intake`: a request becomes job rows before any work (nothing is lost after);
- :mod:`bot.worker`: jobs are claimed fairly with leases, rehosted (:mod:`bot.rehosting`,
  :mod:`bot.dedup`), and finished together with their batch's answer;
- :mod:`bot.replyplan` and :mod:`bot.outbox`: the answer, as durable rows a platform's
  sender delivers;
- :mod:`bot.library` (``service.library``): the user's uploads, the bot's posts, chat
  settings.

Adapters submit requests and deliver outbox rows. :meth:`RehostService.rehost` runs a
request at once and returns its results to the caller (the benchmarks and unit tests).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from datetime import datetime

from bot.dedup import Dedup
from bot.expiration import Duration
from bot.fetch import Fetcher
from bot.intake import ANSWER_TO_CALLER, Intake
from bot.keyleases import KeyLeases
from bot.leases import DEFAULT_LEASE, worker_name
from bot.library import Library
from bot.outbox import Outbox
from bot.queue import JobQueue
from bot.ratelimit import RateLimit
from bot.rehosting import Rehoster
from bot.requests import RehostRequest, RehostResult, Resolver, SourceRef
from bot.said import from_stored
from bot.store import Store, now_utc
from bot.uploader import Uploader
from bot.worker import Answering, JobWorker, run_job


class RehostService:
    def __init__(
        self,
        store: Store,
        uploader: Uploader,
        fetcher: Fetcher,
        *,
        default_expiration: Duration | None = None,
        max_concurrency: int = 4,
        limit: RateLimit | None = None,
        resolvers: dict[str, Resolver] | None = None,
        clock: Callable[[], datetime] = now_utc,
        lease: float = DEFAULT_LEASE,
    ) -> None:
        self.store = store
        self.uploader = uploader
        self.fetcher = fetcher
        self.resolvers: dict[str, Resolver] = resolvers if resolvers is not None else {}
        self.queue = JobQueue(store)
        self.outbox = Outbox(store)
        self.library = Library(store, clock)
        self.intake = Intake(
            store,
            self.queue,
            limit or RateLimit(20, 600.0),
            default_expiration,
            on_recorded=self._recorded,
        )
        keys = KeyLeases(store.db, lease)
        self.rehoster = Rehoster(
            store, uploader, fetcher, Dedup(store, clock), self.resolvers, keys
        )
        self._answer_listeners: dict[str, Callable[[], None]] = {}
        self.answering = Answering(store, self.queue, self.outbox, keys, self._answered)
        self._gate = asyncio.Semaphore(max_concurrency)
        self.worker = JobWorker(
            self.queue,
            self.rehoster,
            self.answering,
            self._gate,
            slots=max_concurrency,
            lease=lease,
        )
        self._caller = worker_name("caller")
        self.lease = lease

    @property
    def default_expiration(self) -> Duration | None:
        return self.intake.default_expiration

    @default_expiration.setter
    def default_expiration(self, value: Duration | None) -> None:
        self.intake.default_expiration = value

    @property
    def limit(self) -> RateLimit:
        return self.intake.limit

    # --- the adapters' path: submit, and deliver the outbox ----------------------------

    async def submit(self, request: RehostRequest, *, wanted: bool = True) -> str:
        """Record the request as a batch of jobs; its answer will come through the outbox."""
        return await self.intake.submit(request, wanted=wanted)

    def on_answer(self, platform: str, listener: Callable[[], None]) -> None:
        """Call ``listener`` when an answer for ``platform`` is queued (wake its sender)."""
        self._answer_listeners[platform] = listener

    def wake_sender(self, platform: str) -> None:
        """An answer was queued outside a batch's work (a takedown's notice): send it."""
        self._answered(platform)

    def _answered(self, platform: str) -> None:
        listener = self._answer_listeners.get(platform)
        if listener is not None:
            listener()

    def _recorded(self) -> None:
        self.worker.wake()

    # --- a caller's path: run now, get the results back ---------------------------------

    async def rehost(self, request: RehostRequest) -> list[RehostResult]:
        """One result per source, in order; each failure carries a message for the user."""
        # Recorded already claimed by this caller: one transaction, and no claim after it.
        batch = await self.intake.submit(
            request, answer=ANSWER_TO_CALLER, lease_to=(self._caller, self.lease)
        )
        jobs = await self.queue.leased(batch, self._caller)
        done = await asyncio.gather(
            *(run_job(job, self.rehoster, self.answering, self._gate, self._caller) for job in jobs)
        )
        by_position = {job.position: result for job, result in zip(jobs, done, strict=True)}
        results = []
        for row in await self.queue.results(batch):
            result = by_position.get(row["position"])
            if result is None:  # refused at intake (the rate limit)
                result = self._refused(row["source"], row["error"])
            results.append(result)
        return results

    @staticmethod
    def _refused(source: str, error: str | None) -> RehostResult:
        return RehostResult(SourceRef.from_json(json.loads(source)), error=from_stored(error))
