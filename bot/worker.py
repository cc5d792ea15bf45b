"""The job worker: claims jobs fairly, rehosts them, and records each end together with the
answer it completes.

Finishing a job is one transaction: the upload record, the job's end, and, when it was
the batch's last job, the batch's reply plan as outbox rows. A crash before it leaves the
job claimable again (its lease lapses); a crash after it leaves the answer in the outbox.
Either way every accepted image gets exactly one answer.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable, Iterable

from bot import metrics
from bot.i18n import N_, Said
from bot.keyleases import KeyLeases
from bot.leases import DEFAULT_LEASE, ClaimLoop
from bot.logcontext import log_context
from bot.outbox import Outbox
from bot.queue import JobQueue
from bot.rehosting import JobOutcome, Rehoster
from bot.replyplan import ReplyItem, plan_reply
from bot.requests import RehostResult, SourceRef
from bot.states import JobOutcome as Outcome
from bot.states import JobState
from bot.store import JobRecord, Store

log = logging.getLogger(__name__)

GENERIC_FAILURE = N_("something went wrong while rehosting this image")
# A job claimed this many times without finishing is given up (it may be what crashes the
# bot); it is answered as a failure, never left unanswered.
MAX_JOB_ATTEMPTS = 3
HOUSEKEEPING_INTERVAL = 1.0


class Answering:
    """Records job ends and writes a finished batch's answer to the outbox."""

    def __init__(
        self,
        store: Store,
        queue: JobQueue,
        outbox: Outbox,
        keys: KeyLeases,
        on_answered: Callable[[str], None] = lambda platform: None,
    ) -> None:
        self.store = store
        self.queue = queue
        self.outbox = outbox
        self.keys = keys
        self.on_answered = on_answered

    async def finish(self, job: JobRecord, outcome: JobOutcome) -> RehostResult:
        async with self.store.transaction():
            if outcome.held_key is not None:
                # Whoever waits for these bytes finds this record once it commits.
                await self.keys.release(*outcome.held_key)
            if not await self.queue.pending(job.id):
                # Our lease lapsed and another worker finished it: its answer stands.
                log.warning("job %d was finished by another worker meanwhile", job.id)
                return RehostResult(outcome.source, error=outcome.error)
            upload_id = outcome.existing.id if outcome.existing is not None else None
            if outcome.new is not None:
                upload_id = await self.store.add_upload(
                    platform=job.platform,
                    chat_id=job.chat_id,
                    message_id=job.message_id,
                    owner_id=job.owner_id,
                    community_id=job.community_id,
                    **outcome.new,
                )
            if upload_id is None:
                await self.queue.finish(job.id, Outcome.FAILED, error=outcome.error)
            else:
                kind = Outcome.DEDUP if outcome.dedup else Outcome.UPLOADED
                await self.queue.finish(job.id, kind, upload_id, note=outcome.note)
            answered = await self.answer_if_complete(job.batch)
        metrics.rehost_ended(job.platform, stored=upload_id is not None, dedup=outcome.dedup)
        if answered is not None:
            self.on_answered(answered)
        record = await self.store.upload(upload_id) if upload_id is not None else None
        return RehostResult(outcome.source, record, outcome.dedup, outcome.error, outcome.note)

    async def abandon(self, job: JobRecord) -> None:
        log.error("giving up job %d after %d attempts", job.id, job.attempts - 1)
        answered = None
        async with self.store.transaction():
            await self.queue.finish(
                job.id, Outcome.FAILED, error=Said(GENERIC_FAILURE), state=JobState.ABANDONED
            )
            answered = await self.answer_if_complete(job.batch)
        metrics.rehost_ended(job.platform, stored=False)
        if answered is not None:
            self.on_answered(answered)

    async def answer_if_complete(self, batch_id: str) -> str | None:
        """If the batch is complete, close it and queue its answer; its platform if so."""
        batch = await self.queue.complete(batch_id)
        if batch is None or batch.answer != "outbox":
            return None
        items = []
        owner_has_delete_links = False
        for row in await self.queue.results(batch_id):
            source = SourceRef.from_json(json.loads(row["source"]))
            upload_id = row["upload_id"]
            if upload_id is not None:
                record = await self.store.upload(int(upload_id))
                owner_has_delete_links |= bool(record and record.delete_url)
            items.append(
                ReplyItem(
                    source.filename,
                    upload_id,
                    None if upload_id is not None else (row["error"] or GENERIC_FAILURE),
                    row["outcome"] == Outcome.DEDUP,
                    spoiler=bool(source.spoiler),
                    note=row["note"],
                )
            )
        messages = plan_reply(batch, items, owner_has_delete_links)
        await self.outbox.add(batch.id, batch.platform, messages)
        return batch.platform

    async def answer_complete(self, platforms: Iterable[str]) -> None:
        """Answer batches with nothing left to do (every image refused at once)."""
        for batch_id in await self.queue.complete_batches(platforms):
            async with self.store.transaction():
                answered = await self.answer_if_complete(batch_id)
            if answered is not None:
                self.on_answered(answered)


class JobWorker(ClaimLoop[JobRecord]):
    """Runs jobs of the platforms it serves, at most ``slots`` at a time."""

    def __init__(
        self,
        queue: JobQueue,
        rehoster: Rehoster,
        answering: Answering,
        gate: asyncio.Semaphore,
        *,
        slots: int,
        lease: float = DEFAULT_LEASE,
        poll: float = 1.0,
    ) -> None:
        super().__init__("jobs", slots=slots, lease=lease, poll=poll)
        self.queue = queue
        self.rehoster = rehoster
        self.answering = answering
        self.gate = gate
        self.platforms: set[str] = set()
        self._housekept = 0.0

    def serve(self, platform: str) -> None:
        """Start running this platform's jobs (its adapter can now resolve its files)."""
        self.platforms.add(platform)
        self.wake()

    async def claim(self, free: int) -> list[JobRecord]:
        return await self.queue.claim(
            self.name, self.platforms, self.lease, free, running=self.running
        )

    def key(self, item: JobRecord) -> int:
        return item.id

    async def renew(self, ids: Iterable[int]) -> None:
        await self.queue.renew(self.name, ids, self.lease)
        await self.answering.keys.renew(f"{self.name}:")

    async def released(self) -> None:
        await self.queue.release(self.name)

    async def housekeeping(self) -> None:
        """Forget albums nobody asked for; answer batches with nothing left to do."""
        now = self.queue.now()
        if now - self._housekept < HOUSEKEEPING_INTERVAL:
            return
        self._housekept = now
        try:
            await self.queue.drop_unwanted()
            await self.answering.answer_complete(self.platforms)
        except Exception:
            log.exception("job housekeeping failed")

    async def idle_timeout(self) -> float:
        """Until the next gathering batch is ready or a lease lapses, at most ``poll``."""
        now = self.queue.now()
        soonest = [self.poll]
        for moment in (
            await self.queue.next_ready_at(self.platforms),
            await self.queue.next_lease_end(self.platforms),
        ):
            if moment is not None:
                soonest.append(max(0.01, moment - now + 0.01))
        return min(soonest)

    async def work(self, item: JobRecord) -> None:
        try:
            await run_job(item, self.rehoster, self.answering, self.gate, self.name)
        except Exception:
            log.exception("recording job %d failed; it will be retried", item.id)


async def run_job(
    job: JobRecord,
    rehoster: Rehoster,
    answering: Answering,
    gate: asyncio.Semaphore,
    worker: str,
) -> RehostResult:
    """Rehost one claimed job and record its end (with its batch's answer if last)."""
    with log_context(platform=job.platform, chat=job.chat_id, job=job.id):
        if job.attempts > MAX_JOB_ATTEMPTS:
            await answering.abandon(job)
            return RehostResult(SourceRef.from_json(job.source), error=Said(GENERIC_FAILURE))
        try:
            async with gate:
                outcome = await rehoster.run(job, f"{worker}:{job.id}")
        except Exception:
            log.exception("rehosting job %d failed unexpectedly", job.id)
            outcome = JobOutcome(SourceRef.from_json(job.source), error=Said(GENERIC_FAILURE))
        return await answering.finish(job, outcome)
