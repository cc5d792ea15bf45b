"""The job queue: batches and their jobs, claimed by workers with leases.

A batch is one thing a user asked for (a message, an album, a command); its jobs are the
images in it. Jobs are recorded before any work starts and before the platform is told the
event was received. A worker *claims* a job by writing a lease (its name and an expiry) and
renews the lease while it works; a job whose lease lapsed (its worker died) is claimed
again by whoever looks next, in this process or another. So recovery after a crash is not
a special path: it is the normal loop finding work.

Claims are fair across users: jobs are ranked within their owner's queue and the lowest
rank goes first, so one user's burst of 30 images takes turns with everyone else's single
image instead of standing in front of it.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

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

    @property
    def private_chat(self) -> bool:
        return self.chat_title is None

    @classmethod
    def from_row(cls, row: sqlite3.Row) -> Batch:
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
        )


@dataclass(frozen=True)
class NewJob:
    item_key: str  # unique within the batch: recording the same item twice adds nothing
    source: dict[str, Any]
    refusal: str | None = None  # recorded as already failed with this message


def _job(row: sqlite3.Row) -> JobRecord:
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
    )


class JobQueue:
    def __init__(self, store: Store, clock: Any = time.time) -> None:
        self.store = store
        self._clock = clock
        self.conn = store.db.conn

    def now(self) -> float:
        return float(self._clock())

    # --- recording ------------------------------------------------------------------------

    def record(
        self,
        batch: Batch,
        jobs: Sequence[NewJob],
        *,
        expiration: str | None,
        gather: float = 0.0,
        wanted: bool = True,
    ) -> bool:
        """Record a batch (or more items of one still gathering) and its jobs, in one
        transaction. ``gather``: seconds to wait for further items from the last one's
        arrival (an album). ``wanted=False``: items of an album nobody asked for yet;
        :meth:`want` claims them. Returns False when the batch was already closed (a late
        album item): the caller starts another batch."""
        now = self._clock()
        with self.store.transaction() as conn:
            existing = conn.execute(
                "select state, wanted from batches where id = ?", (batch.id,)
            ).fetchone()
            if existing is not None and existing["state"] != BatchState.OPEN:
                return False
            if existing is None:
                conn.execute(
                    "insert into batches (id, platform, chat_id, owner_id, owner_name,"
                    " message_id, chat_title, private_in_place, context, skipped, answer,"
                    " ready_at, wanted, state, created_at)"
                    " values (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
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
                    ),
                )
            else:
                conn.execute(
                    "update batches set ready_at = max(ready_at, ?) where id = ?",
                    (now + gather, batch.id),
                )
                wanted = bool(existing["wanted"])
            self._insert_jobs(conn, batch, jobs, expiration, wanted)
        return True

    def _insert_jobs(
        self,
        conn: sqlite3.Connection,
        batch: Batch,
        jobs: Sequence[NewJob],
        expiration: str | None,
        wanted: bool,
    ) -> None:
        first = conn.execute(
            "select coalesce(max(position) + 1, 0) from jobs where batch = ?", (batch.id,)
        ).fetchone()[0]
        stamp = to_text(now_utc())
        waiting = JobState.PENDING if wanted else JobState.HELD
        position = int(first)
        for job in jobs:
            state = JobState.FAILED if job.refusal else waiting
            cursor = conn.execute(
                "insert or ignore into jobs (batch, item_key, position, platform, chat_id,"
                " message_id, owner_id, source, expiration, state, outcome, error, attempts,"
                " created_at, updated_at) values (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 0, ?, ?)",
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
                    job.refusal,
                    stamp,
                    stamp,
                ),
            )
            position += cursor.rowcount

    def want(self, batch: Batch, expiration: str | None, refusals: dict[str, str]) -> bool:
        """Someone asked for an album whose items were held: they become work, answered
        as ``batch`` says (its owner, reply target...). ``refusals`` maps item keys over
        the owner's rate limit to their message. False if the batch is not open or was
        wanted already."""
        with self.store.transaction() as conn:
            cursor = conn.execute(
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
            if cursor.rowcount == 0:
                return False
            conn.execute(
                "update jobs set state = ?, expiration = ?, owner_id = ?, message_id = ?"
                " where batch = ? and state = ?",
                (
                    JobState.PENDING,
                    expiration,
                    batch.owner_id,
                    batch.message_id,
                    batch.id,
                    JobState.HELD,
                ),
            )
            for item_key, refusal in refusals.items():
                self._fail(conn, batch.id, item_key, refusal)
        return True

    def _fail(self, conn: sqlite3.Connection, batch_id: str, item_key: str, error: str) -> None:
        conn.execute(
            "update jobs set state = ?, outcome = ?, error = ? where batch = ? and item_key = ?",
            (JobState.FAILED, JobOutcome.FAILED, error, batch_id, item_key),
        )

    def closed_items(self, batch_id: str) -> set[str] | None:
        """The item keys a batch answered, once it is answered; None if there is no such
        batch or it is still open or was dropped (an album nobody asked for answered
        nothing: asking for it later is new work)."""
        row = self.conn.execute("select state from batches where id = ?", (batch_id,)).fetchone()
        if row is None or row["state"] != BatchState.ANSWERED:
            return None
        rows = self.conn.execute(
            "select item_key from jobs where batch = ? and state != ?",
            (batch_id, JobState.DROPPED),
        )
        return {row["item_key"] for row in rows}

    def held_items(self, batch_id: str) -> list[str]:
        rows = self.conn.execute(
            "select item_key from jobs where batch = ? and state = ? order by position",
            (batch_id, JobState.HELD),
        )
        return [row["item_key"] for row in rows]

    def batch(self, batch_id: str) -> Batch | None:
        row = self.conn.execute("select * from batches where id = ?", (batch_id,)).fetchone()
        return Batch.from_row(row) if row is not None else None

    # --- claiming -------------------------------------------------------------------------

    def claim(
        self,
        worker: str,
        platforms: Iterable[str],
        lease: float,
        limit: int = 1,
        batch_id: str | None = None,
        running: Iterable[int] = (),
    ) -> list[JobRecord]:
        """Lease up to ``limit`` runnable jobs to ``worker``, fairly across owners (or the
        jobs of one batch). Each claim counts as an attempt."""
        now = self._clock()
        kinds = tuple(platforms)
        if not kinds:
            return []
        marks = ",".join("?" for _ in kinds)
        scope, params = f"j.platform in ({marks})", list[object](kinds)
        if batch_id is not None:
            scope += " and j.batch = ?"
            params.append(batch_id)
        else:  # a caller running its own batch works it itself
            scope += " and b.answer = 'outbox'"
        mine = tuple(running)
        # Never this worker's own jobs again, even if a renewal came late (filtered after
        # ranking: running jobs still count for their owner's turn).
        not_mine = f" and id not in ({','.join('?' for _ in mine)})" if mine else ""
        # Rank each pending job within its owner's queue (leased ones included, so an owner
        # with 4 uploads running is behind someone with none), then take the lowest ranks.
        sql = (
            "with ranked as (select j.id, j.lease_until, row_number() over"
            " (partition by j.platform, j.owner_id order by j.id) as turn"
            " from jobs j join batches b on b.id = j.batch"
            f" where j.state = ? and b.ready_at <= ? and b.wanted = 1 and {scope})"
            " select id from ranked where (lease_until is null or lease_until < ?)"
            f"{not_mine} order by turn, id limit ?"
        )
        with self.store.transaction() as conn:
            ids = [
                row["id"]
                for row in conn.execute(sql, (JobState.PENDING, now, *params, now, *mine, limit))
            ]
            if not ids:
                return []
            id_marks = ",".join("?" for _ in ids)
            conn.execute(
                "update jobs set lease_owner = ?, lease_until = ?, attempts = attempts + 1"
                f" where id in ({id_marks})",
                (worker, now + lease, *ids),
            )
            rows = conn.execute(f"select * from jobs where id in ({id_marks})", ids).fetchall()
        return sorted((_job(row) for row in rows), key=lambda job: job.id)

    def renew(self, worker: str, job_ids: Iterable[int], lease: float) -> None:
        ids = list(job_ids)
        if not ids:
            return
        marks = ",".join("?" for _ in ids)
        with self.store.transaction() as conn:
            conn.execute(
                f"update jobs set lease_until = ? where lease_owner = ? and id in ({marks})",
                (self._clock() + lease, worker, *ids),
            )

    def release(self, worker: str) -> None:
        """Give up this worker's leases (a clean stop): others may take the jobs at once."""
        with self.store.transaction() as conn:
            conn.execute(
                "update jobs set lease_owner = null, lease_until = null where lease_owner = ?",
                (worker,),
            )

    def next_ready_at(self, platforms: Iterable[str]) -> float | None:
        """When the next gathering batch with work becomes runnable (None: none waits)."""
        kinds = tuple(platforms)
        if not kinds:
            return None
        marks = ",".join("?" for _ in kinds)
        row = self.conn.execute(
            "select min(ready_at) from batches where state = ? and platform in"
            f" ({marks}) and ready_at > ?",
            (BatchState.OPEN, *kinds, self._clock()),
        ).fetchone()
        return None if row[0] is None else float(row[0])

    def next_lease_end(self, platforms: Iterable[str]) -> float | None:
        """When the soonest lease of a pending job lapses (another worker's, or a dead
        one's), so that a waiting worker knows when to look again."""
        kinds = tuple(platforms)
        if not kinds:
            return None
        marks = ",".join("?" for _ in kinds)
        row = self.conn.execute(
            f"select min(lease_until) from jobs where state = ? and platform in ({marks})"
            " and lease_until >= ?",
            (JobState.PENDING, *kinds, self._clock()),
        ).fetchone()
        return None if row[0] is None else float(row[0])

    # --- finishing ------------------------------------------------------------------------

    def pending(self, conn: sqlite3.Connection, job_id: int) -> bool:
        """Whether the job is still to be finished (a worker whose lease lapsed while it
        worked may find that another finished it meanwhile: then it records nothing)."""
        row = conn.execute("select state from jobs where id = ?", (job_id,)).fetchone()
        return row is not None and row["state"] == JobState.PENDING

    def finish(
        self,
        conn: sqlite3.Connection,
        job_id: int,
        outcome: JobOutcome,
        upload_id: int | None = None,
        error: str | None = None,
        *,
        state: JobState | None = None,
        note: str | None = None,
    ) -> None:
        """Record a job's end (inside the caller's transaction)."""
        if state is None:
            state = JobState.FAILED if outcome is JobOutcome.FAILED else JobState.DONE
        conn.execute(
            "update jobs set state = ?, outcome = ?, upload_id = ?, error = ?, note = ?,"
            " updated_at = ?, lease_owner = null, lease_until = null where id = ?",
            (state, outcome, upload_id, error, note, to_text(now_utc()), job_id),
        )

    def complete(self, conn: sqlite3.Connection, batch_id: str) -> Batch | None:
        """The batch, closed, if all its jobs are finished and it was still open (inside
        the caller's transaction, which then writes its answer); else None."""
        row = conn.execute(
            "select * from batches where id = ? and state = ? and ready_at <= ? and wanted = 1"
            " and not exists (select 1 from jobs where batch = ? and state in (?, ?))",
            (batch_id, BatchState.OPEN, self._clock(), batch_id, JobState.PENDING, JobState.HELD),
        ).fetchone()
        if row is None:
            return None
        conn.execute("update batches set state = ? where id = ?", (BatchState.ANSWERED, batch_id))
        return Batch.from_row(row)

    def complete_batches(self, platforms: Iterable[str]) -> list[str]:
        """Open, runnable batches with no work left (every item refused at once, or an
        answer interrupted): to be answered now."""
        kinds = tuple(platforms)
        if not kinds:
            return []
        marks = ",".join("?" for _ in kinds)
        rows = self.conn.execute(
            f"select id from batches b where state = ? and platform in ({marks})"
            " and ready_at <= ? and wanted = 1 and answer = 'outbox' and not exists"
            " (select 1 from jobs where batch = b.id and state in (?, ?))",
            (BatchState.OPEN, *kinds, self._clock(), JobState.PENDING, JobState.HELD),
        )
        return [row["id"] for row in rows]

    def drop_unwanted(self) -> int:
        """Albums nobody asked for while they gathered: forget them."""
        now = self._clock()
        with self.store.transaction() as conn:
            ids = [
                row["id"]
                for row in conn.execute(
                    "select id from batches where state = ? and wanted = 0 and ready_at <= ?",
                    (BatchState.OPEN, now),
                )
            ]
            for batch_id in ids:
                conn.execute(
                    "update jobs set state = ? where batch = ? and state = ?",
                    (JobState.DROPPED, batch_id, JobState.HELD),
                )
                conn.execute(
                    "update batches set state = ? where id = ?", (BatchState.DROPPED, batch_id)
                )
        return len(ids)

    def results(self, batch_id: str) -> list[sqlite3.Row]:
        """The batch's jobs in order, finished or not (dropped ones left out)."""
        return self.conn.execute(
            "select * from jobs where batch = ? and state != ? order by position",
            (batch_id, JobState.DROPPED),
        ).fetchall()
