"""Intake: a request from a platform becomes a batch of job rows before any work starts.

After :meth:`Intake.submit` returns, nothing the user asked for can be lost: a crash from
here on leaves rows that a worker (in this process after a restart, or another) finds and
finishes. The per-user rate limit is applied here, so that every image over it still gets
its own "try again later" line in the answer.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Sequence

from bot.errors import ExpirationError
from bot.expiration import Duration, minutes_phrase, parse_duration
from bot.queue import Batch, JobQueue, NewJob
from bot.ratelimit import SlidingWindowLimiter
from bot.requests import RehostRequest, SourceRef
from bot.store import Store

log = logging.getLogger(__name__)
ANSWER_BY_OUTBOX, ANSWER_TO_CALLER = "outbox", "caller"


class Intake:
    def __init__(
        self,
        store: Store,
        queue: JobQueue,
        limiter: SlidingWindowLimiter,
        default_expiration: Duration | None,
        on_recorded: Callable[[], None] = lambda: None,
    ) -> None:
        self.store = store
        self.queue = queue
        self.limiter = limiter
        self.default_expiration = default_expiration
        self.on_recorded = on_recorded

    def submit(
        self, request: RehostRequest, *, answer: str = ANSWER_BY_OUTBOX, wanted: bool = True
    ) -> str:
        """Record the request's sources as jobs of one batch; returns the batch id.

        A request with the key of a batch still gathering (an album) adds its sources to
        it. ``wanted=False`` records album items nobody has asked for yet: they are held,
        and dropped unless a wanted request with the same key comes while it gathers.
        """
        key = request.key or uuid.uuid4().hex
        sources = list(request.sources)
        closed = self.queue.closed_items(key)
        if closed is not None:
            # The event was seen before and answered (a replay after a crash or a gateway
            # resume): only items that batch does not hold (an album's late item) are new.
            sources = [s for i, s in enumerate(sources) if (s.item_key or str(i)) not in closed]
            if not sources:
                return key
        duration = self.duration(request)
        label = duration.label() if duration else None
        jobs = self._jobs(request, sources, counted=wanted and request.rate_limited)
        batch = self._batch(key, request, answer)
        if not self.queue.record(
            batch, jobs, expiration=label, gather=request.gather, wanted=wanted
        ):
            # The album already closed (an item arrived late): answer it on its own.
            first = jobs[0].item_key if jobs else "0"
            batch = self._batch(f"{key}:{first}", request, answer)
            self.queue.record(batch, jobs, expiration=label, wanted=wanted)
        if wanted:
            self._claim_held(batch, label)
        self.on_recorded()
        return batch.id

    def _claim_held(self, batch: Batch, label: str | None) -> None:
        """Items of this album recorded before anyone asked for it become work now."""
        held = self.queue.held_items(batch.id)
        if not held:
            return
        user = self._user_key(batch.platform, batch.owner_id)
        granted = self.limiter.take(user, len(held))
        refusal = self._refusal(user)
        self.queue.want(batch, label, {item: refusal for item in held[granted:]})

    def _jobs(
        self, request: RehostRequest, sources: Sequence[SourceRef], *, counted: bool
    ) -> list[NewJob]:
        granted = len(sources)
        refusal = None
        if counted and sources:
            user = self._user_key(request.platform, request.owner_id)
            granted = self.limiter.take(user, len(sources))
            refusal = self._refusal(user) if granted < len(sources) else None
        return [
            NewJob(
                item_key=source.item_key or str(index),
                source=source.to_json(),
                refusal=None if index < granted else refusal,
            )
            for index, source in enumerate(sources)
        ]

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
        )

    @staticmethod
    def _user_key(platform: str, owner_id: str) -> str:
        return f"{platform}:{owner_id}"

    def _refusal(self, user: str) -> str:
        wait = minutes_phrase(self.limiter.retry_after(user))
        return f"you have rehosted {self.limiter.limit} images recently; try again in {wait}"

    def duration(self, request: RehostRequest) -> Duration | None:
        """The expiry asked for, else the chat's default, else the bot's."""
        if not request.use_default_expiration:
            return request.expiration
        chat = self.store.chat_settings(request.platform, request.chat_id)
        if chat.default_expiration:
            try:
                return parse_duration(chat.default_expiration)
            except ExpirationError:
                log.warning("ignoring a bad stored expiration for chat %s", request.chat_id)
        return self.default_expiration
