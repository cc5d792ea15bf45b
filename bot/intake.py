"""Intake: a request from a platform becomes a batch of job rows before any work starts.

After :meth:`Intake.submit` returns, nothing the user asked for can be lost: a crash from
here on leaves rows that a worker (in this process after a restart, or another) finds and
finishes. The per-user rate limit is applied here, so that every image over it still gets
its own "try again later" line in the answer.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable

from bot.community import Communities
from bot.errors import ExpirationError
from bot.expiration import Duration, parse_duration
from bot.queue import Batch, JobQueue, NewJob
from bot.ratelimit import RateLimit
from bot.requests import RehostRequest
from bot.store import Store

log = logging.getLogger(__name__)
ANSWER_BY_OUTBOX, ANSWER_TO_CALLER = "outbox", "caller"


class Intake:
    def __init__(
        self,
        store: Store,
        queue: JobQueue,
        limit: RateLimit,
        default_expiration: Duration | None,
        on_recorded: Callable[[], None] = lambda: None,
    ) -> None:
        self.store = store
        self.queue = queue
        self.limit = limit
        self.default_expiration = default_expiration
        self.on_recorded = on_recorded

    async def submit(
        self,
        request: RehostRequest,
        *,
        answer: str = ANSWER_BY_OUTBOX,
        wanted: bool = True,
        lease_to: tuple[str, float] | None = None,
    ) -> str:
        """Record the request's sources as jobs of one batch; returns the batch id.

        A request with the key of a batch still gathering (an album) adds its sources to
        it. ``wanted=False`` records album items nobody has asked for yet: they are held,
        and dropped unless a wanted request with the same key comes while it gathers.
        ``lease_to``: record the jobs already claimed by that worker (see JobQueue.record).
        """
        key = request.key or uuid.uuid4().hex
        sources = list(request.sources)
        closed = await self.queue.closed_items(key)
        if closed is not None:
            # The event was seen before and answered (a replay after a crash or a gateway
            # resume): only items that batch does not hold (an album's late item) are new.
            sources = [s for i, s in enumerate(sources) if (s.item_key or str(i)) not in closed]
            if not sources:
                return key
        duration = await self.duration(request)
        label = duration.label() if duration else None
        counted = request.rate_limited
        jobs = [
            NewJob(item_key=source.item_key or str(index), source=source.to_json(), counted=counted)
            for index, source in enumerate(sources)
        ]
        batch = self._batch(key, request, answer)
        if not await self.queue.record(
            batch,
            jobs,
            expiration=label,
            gather=request.gather,
            wanted=wanted,
            limit=self.limit,
            lease_to=lease_to,
        ):
            # The album already closed (an item arrived late): answer it on its own.
            first = jobs[0].item_key if jobs else "0"
            batch = self._batch(f"{key}:{first}", request, answer)
            await self.queue.record(
                batch, jobs, expiration=label, wanted=wanted, limit=self.limit, lease_to=lease_to
            )
        if wanted and await self.queue.has_held(batch.id):
            # Items of this album recorded before anyone asked for it become work now.
            await self.queue.want(batch, label, self.limit if counted else None)
        self.on_recorded()
        return batch.id

    def _batch(self, key: str, request: RehostRequest, answer: str) -> Batch:
        return Batch(
            id=key,
            platform=request.platform,
            chat_id=request.chat_id,
            owner_id=request.owner_id,
            owner_name=request.owner_name,
            message_id=request.message_id,
            chat_title=request.chat_title,
            private_in_place=request.private_in_place,
            context=dict(request.context),
            skipped=tuple(request.skipped),
            answer=answer,
            state="open",
            community_id=request.community_id,
        )

    async def duration(self, request: RehostRequest) -> Duration | None:
        """The expiry asked for, else the chat's default, else the bot's."""
        if not request.use_default_expiration:
            return request.expiration
        chat = await self.store.chat_settings(request.platform, request.chat_id)
        if chat.default_expiration:
            try:
                return parse_duration(chat.default_expiration)
            except ExpirationError:
                log.warning("ignoring a bad stored expiration for chat %s", request.chat_id)
        community = await Communities(self.store.db).settings(
            request.platform, request.community_id
        )
        if community.default_expiration:  # the community's managers chose it
            try:
                return parse_duration(community.default_expiration)
            except ExpirationError:
                log.warning("ignoring a bad community expiration for %s", request.community_id)
        return self.default_expiration
