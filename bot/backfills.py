"""Backfills: the images a chat already holds, rehosted on request and resumably.

A backfill is one row (the chat, who asked, how far back, the message showing its
progress, its state) and one item per earlier message with images to rehost, numbered
oldest first. Each item is fed to the queue as an ordinary request, keyed as the adapter's
intake keys that message, so an item fed twice (after a crash) adds nothing; the job
worker does the work. The backfill only feeds its items a few at a time and counts what
their batches did.

A runner holds the row with a lease that it renews (:class:`~bot.leases.ClaimLoop`); a
process that dies loses it, and the next one carries on from what the rows say:

    reading ──▶ running ──▶ reporting ──▶ done
    (history read      (items fed,       (summary posted,
     into items)        counted)          part by part)

``stop_requested`` makes a running backfill feed nothing more; what was fed finishes and is
reported.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from bot.database import Row
from bot.requests import SourceRef
from bot.states import BatchState, JobState
from bot.store import Store, now_utc, to_text

READING, RUNNING, REPORTING, DONE = "reading", "running", "reporting", "done"
ACTIVE_STATES = (READING, RUNNING, REPORTING)


@dataclass(frozen=True)
class Backfill:
    id: int
    platform: str
    chat_id: str
    requested_by: str
    limit: int
    before: str | None
    state: str
    stop_requested: bool
    progress_message_id: str | None
    scanned: int
    skipped: int
    summary_sent: int
    context: dict[str, Any]

    @classmethod
    def from_row(cls, row: Row) -> Backfill:
        return cls(
            id=int(row["id"]),
            platform=row["platform"],
            chat_id=row["chat_id"],
            requested_by=row["requested_by"],
            limit=int(row["message_limit"]),
            before=row["before_id"],
            state=row["state"],
            stop_requested=bool(row["stop_requested"]),
            progress_message_id=row["progress_message_id"],
            scanned=int(row["scanned"] or 0),
            skipped=int(row["skipped"] or 0),
            summary_sent=int(row["summary_sent"] or 0),
            context=json.loads(row["context"] or "{}"),
        )


@dataclass(frozen=True)
class NewItem:
    """An earlier message with images, as read from the history."""

    message_id: str
    owner_id: str
    owner_name: str
    sources: Sequence[SourceRef]


@dataclass(frozen=True)
class Item:
    position: int
    message_id: str
    owner_id: str
    owner_name: str
    sources: tuple[SourceRef, ...]
    batch: str | None  # its request, once fed
    finished: bool  # its batch is answered

    @classmethod
    def from_row(cls, row: Row) -> Item:
        return cls(
            position=int(row["position"]),
            message_id=row["message_id"],
            owner_id=row["owner_id"],
            owner_name=row["owner_name"] or "",
            sources=tuple(SourceRef.from_json(s) for s in json.loads(row["sources"])),
            batch=row["batch"],
            finished=row["batch_state"] not in (None, BatchState.OPEN),
        )


@dataclass(frozen=True)
class Progress:
    images: int  # to rehost, in all items
    done: int  # images finished (rehosted or failed)
    failed: int
    messages: int  # items

    @property
    def rehosted(self) -> int:
        return self.done - self.failed


class Backfills:
    def __init__(self, store: Store, clock: Any = time.time) -> None:
        self.store = store
        self.db = store.db
        self._clock = clock

    # --- asking -----------------------------------------------------------------------------

    async def start(
        self,
        platform: str,
        chat_id: str,
        requested_by: str,
        limit: int,
        before: str | None,
        context: dict[str, Any],
    ) -> Backfill | None:
        """A new backfill of ``chat_id``; None if one is under way there already."""
        stamp = to_text(now_utc())
        async with self.db.transaction():
            if await self._active(platform, chat_id) is not None:
                return None
            backfill_id = await self.db.fetchval(
                "insert into backfills (platform, chat_id, requested_by, message_limit,"
                " before_id, state, stop_requested, scanned, skipped, summary_sent, context,"
                " created_at, updated_at) values (?, ?, ?, ?, ?, ?, 0, 0, 0, 0, ?, ?, ?)"
                " returning id",
                (
                    platform,
                    chat_id,
                    requested_by,
                    limit,
                    before,
                    READING,
                    json.dumps(context),
                    stamp,
                    stamp,
                ),
            )
        found = await self.get(int(backfill_id))
        assert found is not None
        return found

    async def active(self, platform: str, chat_id: str) -> Backfill | None:
        return await self._active(platform, chat_id)

    async def _active(self, platform: str, chat_id: str) -> Backfill | None:
        marks = ",".join("?" for _ in ACTIVE_STATES)
        row = await self.db.fetchrow(
            f"select * from backfills where platform = ? and chat_id = ? and state in ({marks})"
            " order by id desc limit 1",
            (platform, chat_id, *ACTIVE_STATES),
        )
        return None if row is None else Backfill.from_row(row)

    async def request_stop(self, platform: str, chat_id: str) -> Backfill | None:
        """Ask the backfill under way in ``chat_id`` to feed nothing more; None if none is."""
        async with self.db.transaction():
            found = await self._active(platform, chat_id)
            if found is None:
                return None
            await self._update(found.id, stop_requested=1)
        return await self.get(found.id)

    async def get(self, backfill_id: int) -> Backfill | None:
        row = await self.db.fetchrow("select * from backfills where id = ?", (backfill_id,))
        return None if row is None else Backfill.from_row(row)

    # --- leases -----------------------------------------------------------------------------

    async def claim(self, worker: str, platform: str, lease: float, limit: int) -> list[Backfill]:
        """Lease up to ``limit`` unfinished backfills nobody holds (or whose holder died)."""
        now = self._clock()
        marks = ",".join("?" for _ in ACTIVE_STATES)
        async with self.db.transaction():
            ids = [
                int(row["id"])
                for row in await self.db.fetch(
                    f"select id from backfills where platform = ? and state in ({marks})"
                    " and (lease_until is null or lease_until < ?) order by id limit ?"
                    f"{self.db.dialect.skip_locked}",
                    (platform, *ACTIVE_STATES, now, limit),
                )
            ]
            for backfill_id in ids:
                await self.db.execute(
                    "update backfills set lease_owner = ?, lease_until = ? where id = ?",
                    (worker, now + lease, backfill_id),
                )
        found = [await self.get(i) for i in ids]
        return [b for b in found if b is not None]

    async def renew(self, worker: str, ids: Iterable[int], lease: float) -> None:
        wanted = list(ids)
        if not wanted:
            return
        marks = ",".join("?" for _ in wanted)
        async with self.db.transaction():
            await self.db.execute(
                f"update backfills set lease_until = ? where lease_owner = ? and id in ({marks})",
                (self._clock() + lease, worker, *wanted),
            )

    async def release(self, worker: str) -> None:
        async with self.db.transaction():
            await self.db.execute(
                "update backfills set lease_owner = null, lease_until = null where lease_owner = ?",
                (worker,),
            )

    # --- reading ----------------------------------------------------------------------------

    async def rehosted(self, platform: str, chat_id: str, message_ids: Sequence[str]) -> set[str]:
        """Which of these messages were rehosted already (a batch answers them)."""
        found: set[str] = set()
        for start in range(0, len(message_ids), 500):
            chunk = list(message_ids[start : start + 500])
            marks = ",".join("?" for _ in chunk)
            rows = await self.db.fetch(
                "select distinct message_id from batches where platform = ? and chat_id = ?"
                f" and message_id in ({marks})",
                (platform, chat_id, *chunk),
            )
            found.update(str(row["message_id"]) for row in rows)
        return found

    async def set_progress_message(self, backfill_id: int, message_id: str) -> None:
        async with self.db.transaction():
            await self._update(backfill_id, progress_message_id=message_id)

    async def record_reading(
        self, backfill_id: int, items: Sequence[NewItem], *, scanned: int, skipped: int
    ) -> None:
        """The history is read: ``items`` (oldest first) are what to rehost."""
        async with self.db.transaction():
            await self.db.execute(
                "delete from backfill_items where backfill_id = ?", (backfill_id,)
            )
            for position, item in enumerate(items):
                await self.db.execute(
                    "insert into backfill_items (backfill_id, position, message_id, owner_id,"
                    " owner_name, sources, images) values (?, ?, ?, ?, ?, ?, ?)",
                    (
                        backfill_id,
                        position,
                        item.message_id,
                        item.owner_id,
                        item.owner_name,
                        json.dumps([s.to_json() for s in item.sources]),
                        len(item.sources),
                    ),
                )
            await self._update(backfill_id, state=RUNNING, scanned=scanned, skipped=skipped)

    # --- running ----------------------------------------------------------------------------

    async def items(self, backfill_id: int) -> list[Item]:
        rows = await self.db.fetch(
            "select i.*, b.state as batch_state from backfill_items i"
            " left join batches b on b.id = i.batch"
            " where i.backfill_id = ? order by i.position",
            (backfill_id,),
        )
        return [Item.from_row(row) for row in rows]

    async def fed(self, backfill_id: int, position: int, batch: str) -> None:
        async with self.db.transaction():
            await self.db.execute(
                "update backfill_items set batch = ? where backfill_id = ? and position = ?",
                (batch, backfill_id, position),
            )

    async def progress(self, backfill_id: int) -> Progress:
        totals = await self.db.fetchrow(
            "select count(*) as messages, coalesce(sum(images), 0) as images"
            " from backfill_items where backfill_id = ?",
            (backfill_id,),
        )
        assert totals is not None
        counts = {
            str(row["state"]): int(row["n"])
            for row in await self.db.fetch(
                "select j.state, count(*) as n from backfill_items i"
                " join jobs j on j.batch = i.batch where i.backfill_id = ? group by j.state",
                (backfill_id,),
            )
        }
        failed = counts.get(JobState.FAILED, 0) + counts.get(JobState.ABANDONED, 0)
        done = counts.get(JobState.DONE, 0) + failed
        return Progress(
            images=int(totals["images"]), done=done, failed=failed, messages=int(totals["messages"])
        )

    async def set_state(self, backfill_id: int, state: str) -> None:
        async with self.db.transaction():
            await self._update(backfill_id, state=state)

    async def summary_part_sent(self, backfill_id: int, parts: int) -> None:
        async with self.db.transaction():
            await self._update(backfill_id, summary_sent=parts)

    async def _update(self, backfill_id: int, **values: object) -> None:
        values["updated_at"] = to_text(now_utc())
        assignments = ", ".join(f"{name} = ?" for name in values)
        await self.db.execute(
            f"update backfills set {assignments} where id = ?", (*values.values(), backfill_id)
        )
