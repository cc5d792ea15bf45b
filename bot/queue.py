"""The job queue: batches and their jobs, claimed by workers with leases.

A batch is one thing a user asked for (a message, an album, a command); its jobs are the
images in it. Jobs are recorded before any work starts and before the platform is told the
event was received. A worker *claims* a job by writing a lease (its name and an expiry) and
renews the lease while it works; a job whose lease lapsed (its worker died) is claimed
again by whoever looks next, in this process or another. So recovery after a crash is not
a special path: it is the normal loop finding work.

Claims are fair across users, by start-time fair queuing: each job gets a place in line
(``fair_key``) when it is recorded, right after its owner's jobs still waiting, but never
before the place of the last job claimed on its platform (``fair_clocks``). So one user's
burst of 30 images lines up one after another, and someone else's single image goes in
at the head of the line, next. A claim then reads the line in order through an index: it
costs the same whether 10 jobs wait or 10,000.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from bot import metrics, quotas
from bot.database import Row
from bot.leases import EXTRA_CANDIDATES, lease_rows
from bot.ratelimit import RateLimit
from bot.said import Said, stored
from bot.states import BatchState, JobOutcome, JobState
from bot.store import JobRecord, Store, now_utc, to_text


@dataclass(frozen=True)
class Batch:
    id: str
    platform: str
    chat_id: str
    owner_id: str
    owner_name: str
    message_id: str | None
    chat_title: str | None  # None: the owner's private chat with the bot
    private_in_place: bool
    context: dict[str, Any]
    skipped: tuple[str, ...]
    answer: str
    state: str
    community_id: str | None = None  # see RehostRequest.community_id

    @property
    def private_chat(self) -> bool:
        return self.chat_title is None

    @classmethod
    def from_row(cls, row: Row) -> Batch:
        return cls(
            id=row["id"],
            platform=row["platform"],
            chat_id=row["chat_id"],
            owner_id=row["owner_id"],
            owner_name=row["owner_name"] or "",
            message_id=row["message_id"],
            chat_title=row["chat_title"],
            private_in_place=bool(row["private_in_place"]),
            context=json.loads(row["context"] or "{}"),
            skipped=tuple(json.loads(row["skipped"] or "[]")),
            answer=row["answer"],
            state=row["state"],
            community_id=row.get("community_id"),
        )


@dataclass(frozen=True)
class NewJob:
    item_key: str  # unique within the batch: recording the same item twice adds nothing
    source: dict[str, Any]
    refusal: Said | None = None  # recorded as already failed with this message
    counted: bool = False  # counts against its owner's rate limit


def _job(row: Row) -> JobRecord:
    return JobRecord(
        id=row["id"],
        batch=row["batch"],
        position=row["position"],
        platform=row["platform"],
        chat_id=row["chat_id"],
        message_id=row["message_id"],
        owner_id=row["owner_id"],
        source=json.loads(row["source"]),
        expiration=row["expiration"],
        state=row["state"],
        attempts=row["attempts"] or 0,
        community_id=row.get("community_id"),
    )


def marks(values: Sequence[object]) -> str:
    return ",".join("?" for _ in values)


class JobQueue:
    def __init__(self, store: Store, clock: Any = time.time) -> None:
        self.store = store
        self.db = store.db
        self._clock = clock

    def now(self) -> float:
        return float(self._clock())

    # --- recording ------------------------------------------------------------------------

    async def record(
        self,
        batch: Batch,
        jobs: Sequence[NewJob],
        *,
        expiration: str | None,
        gather: float = 0.0,
        wanted: bool = True,
        limit: RateLimit | None = None,
        lease_to: tuple[str, float] | None = None,
    ) -> bool:
        """Record a batch (or more items of one still gathering) and its jobs, in one
        transaction. ``gather``: seconds to wait for further items from the last one's
        arrival (an album). ``wanted=False``: items of an album nobody asked for yet;
        :meth:`want` claims them. Jobs marked ``counted`` take a slot of their owner's
        ``limit`` each (over it, they are recorded as refused). ``lease_to`` (worker,
        seconds): the jobs are recorded already claimed by that worker (a caller running
        its own batch at once). Returns False when the batch was already closed (a late
        album item): the caller starts another batch."""
        now = self.now()
        db = self.db
        async with db.transaction():
            # Items of one album arrive in parallel (in other processes too): one at a time.
            await db.lock_key(f"batch {batch.id}")
            existing = await db.fetchrow(
                "select state, wanted from batches where id = ?", (batch.id,)
            )
            if existing is not None and existing["state"] != BatchState.OPEN:
                return False
            if existing is None:
                await db.execute(
                    "insert into batches (id, platform, chat_id, owner_id, owner_name,"
                    " message_id, chat_title, private_in_place, context, skipped, answer,"
                    " ready_at, wanted, state, created_at, community_id)"
                    " values (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (
                        batch.id,
                        batch.platform,
                        batch.chat_id,
                        batch.owner_id,
                        batch.owner_name,
                        batch.message_id,
                        batch.chat_title,
                        int(batch.private_in_place),
                        json.dumps(batch.context),
                        json.dumps(list(batch.skipped)),
                        batch.answer,
                        now + gather,
                        int(wanted),
                        BatchState.OPEN,
                        to_text(now_utc()),
                        batch.community_id,
                    ),
                )
            else:
                await db.execute(
                    f"update batches set ready_at = {db.dialect.greatest('ready_at', '?')}"
                    " where id = ?",
                    (now + gather, batch.id),
                )
                wanted = bool(existing["wanted"])
            if wanted:
                jobs = await self._within_quota(batch, jobs, now)
            if wanted and limit is not None:
                jobs = await self._limited(batch, jobs, limit, now)
            await self._insert_jobs(batch, jobs, expiration, wanted, now, lease_to)
        return True

    async def _within_quota(self, batch: Batch, jobs: Sequence[NewJob], now: float) -> list[NewJob]:
        """The jobs, those over the community's quotas refused (inside the transaction)."""
        counted = [job for job in jobs if job.counted and job.refusal is None]
        if not counted or batch.community_id is None:
            return list(jobs)
        grant = await quotas.take(
            self.db, batch.platform, batch.community_id, batch.owner_id, len(counted), now
        )
        over = {id(job) for job in counted[grant.granted :]}
        metrics.refused(batch.platform, grant.reason, len(over))
        return [
            NewJob(job.item_key, job.source, grant.refusal, counted=False)
            if id(job) in over
            else job
            for job in jobs
        ]

    async def _limited(
        self, batch: Batch, jobs: Sequence[NewJob], limit: RateLimit, now: float
    ) -> list[NewJob]:
        """The jobs, those over the owner's rate limit refused (inside the transaction)."""
        counted = [job for job in jobs if job.counted and job.refusal is None]
        if not counted:
            return list(jobs)
        grant = await limit.take(self.db, batch.platform, batch.owner_id, len(counted), now)
        over = {id(job) for job in counted[grant.granted :]}
        metrics.refused(batch.platform, "rate_limit", len(over))
        refusal = limit.refusal(grant)
        return [
            NewJob(job.item_key, job.source, refusal, counted=False) if id(job) in over else job
            for job in jobs
        ]

    async def _insert_jobs(
        self,
        batch: Batch,
        jobs: Sequence[NewJob],
        expiration: str | None,
        wanted: bool,
        now: float,
        lease_to: tuple[str, float] | None,
    ) -> None:
        first = await self.db.fetchval(
            "select coalesce(max(position) + 1, 0) as next from jobs where batch = ?",
            (batch.id,),
        )
        stamp = to_text(now_utc())
        waiting = JobState.PENDING if wanted else JobState.HELD
        position = int(first)
        key = await self._first_key(batch.platform, batch.owner_id)
        owner, until = lease_to if lease_to is not None else (None, None)
        for job in jobs:
            state = JobState.FAILED if job.refusal else waiting
            counted_at = now if wanted and job.counted and not job.refusal else None
            leased = state == JobState.PENDING and owner is not None
            added = await self.db.execute(
                "insert into jobs (batch, item_key, position, platform, chat_id,"
                " message_id, owner_id, source, expiration, state, outcome, error, attempts,"
                " counted_at, fair_key, lease_owner, lease_until, created_at, updated_at,"
                " community_id)"
                " values (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
                " on conflict do nothing",
                (
                    batch.id,
                    job.item_key,
                    position,
                    batch.platform,
                    batch.chat_id,
                    batch.message_id,
                    batch.owner_id,
                    json.dumps(job.source),
                    expiration,
                    state,
                    JobOutcome.FAILED if job.refusal else None,
                    stored(job.refusal),
                    1 if leased else 0,
                    counted_at,
                    key,
                    owner if leased else None,
                    now + until if leased and until is not None else None,
                    stamp,
                    stamp,
                    batch.community_id,
                ),
            )
            position += added
            key += added

    async def _first_key(self, platform: str, owner_id: str) -> float:
        """The place in line of an owner's next job: after their jobs still waiting, and
        not before the last job claimed on the platform."""
        db = self.db
        clock = await db.fetchval("select clock from fair_clocks where platform = ?", (platform,))
        last = await db.fetchval(
            "select max(fair_key) as last from jobs where state in (?, ?) and owner_id = ?"
            " and platform = ?",
            (JobState.PENDING, JobState.HELD, owner_id, platform),
        )
        start = float(clock or 0.0)
        return start if last is None else max(start, float(last) + 1)

    async def leased(self, batch_id: str, worker: str) -> list[JobRecord]:
        """The batch's jobs recorded as claimed by ``worker`` (see ``lease_to``)."""
        rows = await self.db.fetch(
            "select * from jobs where batch = ? and state = ? and lease_owner = ? order by id",
            (batch_id, JobState.PENDING, worker),
        )
        return [_job(row) for row in rows]

    async def want(
        self, batch: Batch, expiration: str | None, limit: RateLimit | None = None
    ) -> bool:
        """Someone asked for an album whose items were held: they become work, answered
        as ``batch`` says (its owner, reply target...), each taking a slot of the owner's
        ``limit`` (over it, refused). False if the batch is not open or was wanted
        already."""
        now = self.now()
        db = self.db
        async with db.transaction():
            changed = await db.execute(
                "update batches set wanted = 1, owner_id = ?, owner_name = ?, message_id = ?,"
                " context = ? where id = ? and state = ? and wanted = 0",
                (
                    batch.owner_id,
                    batch.owner_name,
                    batch.message_id,
                    json.dumps(batch.context),
                    batch.id,
                    BatchState.OPEN,
                ),
            )
            if changed == 0:
                return False
            held = [
                row["item_key"]
                for row in await db.fetch(
                    "select item_key from jobs where batch = ? and state = ? order by position",
                    (batch.id, JobState.HELD),
                )
            ]
            refusals: list[Said | None] = [None] * len(held)
            if limit is not None and held:
                quota = await quotas.take(
                    db, batch.platform, batch.community_id, batch.owner_id, len(held), now
                )
                grant = await limit.take(db, batch.platform, batch.owner_id, quota.granted, now)
                refusals[grant.granted : quota.granted] = [limit.refusal(grant)] * (
                    quota.granted - grant.granted
                )
                refusals[quota.granted :] = [quota.refusal] * (len(held) - quota.granted)
                metrics.refused(batch.platform, "rate_limit", quota.granted - grant.granted)
                metrics.refused(batch.platform, quota.reason, len(held) - quota.granted)
            await db.execute(
                "update jobs set state = ?, expiration = ?, owner_id = ?, message_id = ?,"
                " counted_at = ? where batch = ? and state = ?",
                (
                    JobState.PENDING,
                    expiration,
                    batch.owner_id,
                    batch.message_id,
                    now if limit is not None else None,
                    batch.id,
                    JobState.HELD,
                ),
            )
            for item_key, refusal in zip(held, refusals, strict=True):
                if refusal is None:
                    continue
                await db.execute(
                    "update jobs set state = ?, outcome = ?, error = ?, counted_at = null"
                    " where batch = ? and item_key = ?",
                    (JobState.FAILED, JobOutcome.FAILED, stored(refusal), batch.id, item_key),
                )
        return True

    async def closed_items(self, batch_id: str) -> set[str] | None:
        """The item keys a batch answered, once it is answered; None if there is no such
        batch or it is still open or was dropped (an album nobody asked for answered
        nothing: asking for it later is new work)."""
        state = await self.db.fetchval("select state from batches where id = ?", (batch_id,))
        if state != BatchState.ANSWERED:
            return None
        rows = await self.db.fetch(
            "select item_key from jobs where batch = ? and state != ?",
            (batch_id, JobState.DROPPED),
        )
        return {row["item_key"] for row in rows}

    async def has_held(self, batch_id: str) -> bool:
        row = await self.db.fetchrow(
            "select 1 as held from jobs where batch = ? and state = ? limit 1",
            (batch_id, JobState.HELD),
        )
        return row is not None

    async def batch(self, batch_id: str) -> Batch | None:
        row = await self.db.fetchrow("select * from batches where id = ?", (batch_id,))
        return Batch.from_row(row) if row is not None else None

    # --- claiming -------------------------------------------------------------------------

    async def claim(
        self,
        worker: str,
        platforms: Iterable[str],
        lease: float,
        limit: int = 1,
        batch_id: str | None = None,
        running: Iterable[int] = (),
    ) -> list[JobRecord]:
        """Lease up to ``limit`` runnable jobs to ``worker``, the first in line (of all
        owners, or of one batch). Each claim counts as an attempt. Jobs another process
        is claiming at the same moment are skipped, not waited for."""
        now = self.now()
        kinds = tuple(platforms)
        if not kinds or limit <= 0:
            return []
        scope, params = f"j.platform in ({marks(kinds)})", list[object](kinds)
        if batch_id is not None:
            scope += " and j.batch = ?"
            params.append(batch_id)
        else:  # a caller running its own batch works it itself
            scope += " and b.answer = 'outbox'"
        mine = tuple(running)
        # Never this worker's own jobs again, even if a renewal came late.
        not_mine = f" and j.id not in ({marks(mine)})" if mine else ""
        line = (
            "select j.id from jobs j join batches b on b.id = j.batch"
            " where j.state = ? and (j.lease_until is null or j.lease_until < ?)"
            f" and b.ready_at <= ? and b.wanted = 1 and {scope}{not_mine}"
            " order by j.fair_key, j.id limit ?"
        )
        db = self.db
        async with db.transaction():
            candidates = [
                row["id"]
                for row in await db.fetch(
                    line, (JobState.PENDING, now, now, *params, *mine, limit + EXTRA_CANDIDATES)
                )
            ]
            rows = await lease_rows(
                db,
                "jobs",
                candidates,
                pending=JobState.PENDING,
                worker=worker,
                now=now,
                lease=lease,
                limit=limit,
            )
            await self._advance_clocks(rows)
        return sorted((_job(row) for row in rows), key=lambda job: job.id)

    async def _advance_clocks(self, claimed: Sequence[Row]) -> None:
        """The platform's line has reached the last claimed job's place."""
        reached: dict[str, float] = {}
        for row in claimed:
            key = float(row["fair_key"] or 0.0)
            reached[row["platform"]] = max(key, reached.get(row["platform"], key))
        later = self.db.dialect.greatest("fair_clocks.clock", "excluded.clock")
        for platform, clock in reached.items():
            await self.db.execute(
                "insert into fair_clocks (platform, clock) values (?, ?)"
                f" on conflict (platform) do update set clock = {later}",
                (platform, clock),
            )

    async def renew(self, worker: str, job_ids: Iterable[int], lease: float) -> None:
        ids = list(job_ids)
        if not ids:
            return
        await self.db.execute(
            f"update jobs set lease_until = ? where lease_owner = ? and id in ({marks(ids)})",
            (self.now() + lease, worker, *ids),
        )

    async def release(self, worker: str) -> None:
        """Give up this worker's leases (a clean stop): others may take the jobs at once."""
        await self.db.execute(
            "update jobs set lease_owner = null, lease_until = null where lease_owner = ?",
            (worker,),
        )

    async def next_ready_at(self, platforms: Iterable[str]) -> float | None:
        """When the next gathering batch with work becomes runnable (None: none waits)."""
        kinds = tuple(platforms)
        if not kinds:
            return None
        value = await self.db.fetchval(
            "select min(ready_at) as soonest from batches where state = ? and platform in"
            f" ({marks(kinds)}) and ready_at > ?",
            (BatchState.OPEN, *kinds, self.now()),
        )
        return None if value is None else float(value)

    async def next_lease_end(self, platforms: Iterable[str]) -> float | None:
        """When the soonest lease of a pending job lapses (another worker's, or a dead
        one's), so that a waiting worker knows when to look again."""
        kinds = tuple(platforms)
        if not kinds:
            return None
        value = await self.db.fetchval(
            "select min(lease_until) as soonest from jobs where state = ?"
            f" and platform in ({marks(kinds)}) and lease_until >= ?",
            (JobState.PENDING, *kinds, self.now()),
        )
        return None if value is None else float(value)

    # --- finishing ------------------------------------------------------------------------

    async def pending(self, job_id: int) -> bool:
        """Whether the job is still to be finished (a worker whose lease lapsed while it
        worked may find that another finished it meanwhile: then it records nothing).
        Inside a transaction, the row stays locked until it ends (PostgreSQL)."""
        lock = self.db.dialect.for_update
        state = await self.db.fetchval(f"select state from jobs where id = ?{lock}", (job_id,))
        return bool(state == JobState.PENDING)

    async def finish(
        self,
        job_id: int,
        outcome: JobOutcome,
        upload_id: int | None = None,
        error: Said | None = None,
        *,
        state: JobState | None = None,
        note: Said | None = None,
    ) -> None:
        """Record a job's end (inside the caller's transaction). The error and the note
        are kept as msgid and parameters (:meth:`Said.to_text`), written out in each
        reader's language when shown."""
        if state is None:
            state = JobState.FAILED if outcome is JobOutcome.FAILED else JobState.DONE
        await self.db.execute(
            "update jobs set state = ?, outcome = ?, upload_id = ?, error = ?, note = ?,"
            " updated_at = ?, lease_owner = null, lease_until = null where id = ?",
            (state, outcome, upload_id, stored(error), stored(note), to_text(now_utc()), job_id),
        )

    async def complete(self, batch_id: str) -> Batch | None:
        """The batch, closed, if all its jobs are finished and it was still open (inside
        the caller's transaction, which then writes its answer); else None. Of two
        processes finishing a batch's last jobs at once, one closes it."""
        rows = await self.db.fetch(
            "update batches set state = ? where id = ? and state = ? and ready_at <= ?"
            " and wanted = 1 and not exists"
            " (select 1 from jobs where batch = ? and state in (?, ?)) returning *",
            (
                BatchState.ANSWERED,
                batch_id,
                BatchState.OPEN,
                self.now(),
                batch_id,
                JobState.PENDING,
                JobState.HELD,
            ),
        )
        return Batch.from_row(rows[0]) if rows else None

    async def complete_batches(self, platforms: Iterable[str]) -> list[str]:
        """Open, runnable batches with no work left (every item refused at once, or an
        answer interrupted): to be answered now."""
        kinds = tuple(platforms)
        if not kinds:
            return []
        rows = await self.db.fetch(
            f"select id from batches b where state = ? and platform in ({marks(kinds)})"
            " and ready_at <= ? and wanted = 1 and answer = 'outbox' and not exists"
            " (select 1 from jobs where batch = b.id and state in (?, ?))",
            (BatchState.OPEN, *kinds, self.now(), JobState.PENDING, JobState.HELD),
        )
        return [row["id"] for row in rows]

    async def drop_unwanted(self) -> int:
        """Albums nobody asked for while they gathered: forget them."""
        now = self.now()
        db = self.db
        async with db.transaction():
            ids = [
                row["id"]
                for row in await db.fetch(
                    "update batches set state = ? where state = ? and wanted = 0"
                    " and ready_at <= ? returning id",
                    (BatchState.DROPPED, BatchState.OPEN, now),
                )
            ]
            for batch_id in ids:
                await db.execute(
                    "update jobs set state = ? where batch = ? and state = ?",
                    (JobState.DROPPED, batch_id, JobState.HELD),
                )
        return len(ids)

    async def depth(self) -> dict[str, tuple[int, str]]:
        """Per platform: the jobs waiting or being worked, and when the oldest of them was
        recorded. Read through the index on ``state``: it costs what is pending, however
        many jobs the table keeps."""
        rows = await self.db.fetch(
            "select platform, count(*) as n, min(created_at) as oldest from jobs"
            " where state = ? group by platform",
            (JobState.PENDING,),
        )
        return {row["platform"]: (int(row["n"]), str(row["oldest"])) for row in rows}

    async def results(self, batch_id: str) -> list[Row]:
        """The batch's jobs in order, finished or not (dropped ones left out)."""
        return await self.db.fetch(
            "select * from jobs where batch = ? and state != ? order by position",
            (batch_id, JobState.DROPPED),
        )
