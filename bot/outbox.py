"""The reply outbox: every planned message is a durable row until the platform has it.

Rows are written in the same transaction that finishes the jobs they report (see
:mod:`bot.worker`), so an answer is never lost between "uploaded" and "said". A sender
claims rows with a lease, delivers them through its adapter, records the platform's
message id and marks them sent. A row whose sender died is claimed again once its lease
lapses. Within a batch the rows go in order (a row waits until those before it are done);
across chats, claims take turns, so one chat's 300 answers do not hold up another's one.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from bot.database import Row
from bot.leases import EXTRA_CANDIDATES, lease_rows
from bot.queue import marks
from bot.replyplan import PlannedMessage
from bot.states import OutboxState, Visibility
from bot.store import Store, from_text, now_utc, to_text

# Where a row goes, for taking turns: the chat, or the owner's direct messages.
TARGET = "coalesce(chat_id, 'dm:' || owner_id)"
CANDIDATES = 256  # targets considered per claim


@dataclass(frozen=True)
class OutboxRow:
    id: int
    batch: str
    platform: str
    seq: int
    message: PlannedMessage
    attempts: int

    @property
    def target(self) -> str:
        return self.message.chat_id or f"dm:{self.message.owner_id}"

    @property
    def nonce(self) -> str:
        """A key for idempotent sending (Discord's ``nonce``: at most 25 characters)."""
        return f"rehost-{self.id}"[:25]


class Outbox:
    def __init__(self, store: Store, clock: Any = time.time) -> None:
        self.store = store
        self.db = store.db
        self._clock = clock

    async def add(self, batch: str, platform: str, messages: list[PlannedMessage]) -> None:
        """Queue a batch's answer (inside the caller's transaction)."""
        stamp = to_text(now_utc())
        for seq, message in enumerate(messages):
            await self.db.execute(
                "insert into outbox (batch, platform, seq, visibility, chat_id,"
                " owner_id, payload, state, attempts, not_before, created_at, updated_at)"
                " values (?, ?, ?, ?, ?, ?, ?, ?, 0, 0, ?, ?) on conflict do nothing",
                (
                    batch,
                    platform,
                    seq,
                    message.visibility,
                    message.chat_id,
                    message.owner_id,
                    json.dumps(message.to_json()),
                    OutboxState.PENDING,
                    stamp,
                    stamp,
                ),
            )

    async def claim(
        self,
        worker: str,
        platform: str,
        lease: float,
        limit: int,
        busy_targets: Iterable[str] = (),
        served: dict[str, float] | None = None,
    ) -> list[OutboxRow]:
        """Lease up to ``limit`` deliverable rows: the oldest of each target (a chat, or an
        owner's direct messages), none for ``busy_targets``, and the targets least recently
        ``served`` (target -> when) first, so that chats take turns. Rows another process
        is claiming at the same moment are skipped, not waited for."""
        now = self._clock()
        busy = tuple(busy_targets)
        exclude = f" and {TARGET} not in ({marks(busy)})" if busy else ""
        sql = (
            f"with ready as (select o.id, {TARGET} as target, o.lease_until, o.not_before,"
            f" row_number() over (partition by {TARGET} order by o.id) as turn from outbox o"
            f" where o.state = ? and o.platform = ?{exclude} and not exists"
            " (select 1 from outbox p where p.batch = o.batch and p.seq < o.seq"
            " and p.state = ?))"
            " select id, target from ready where turn = 1 and not_before <= ?"
            " and (lease_until is null or lease_until < ?) order by id limit ?"
        )
        db = self.db
        async with db.transaction():
            candidates = await db.fetch(
                sql,
                (OutboxState.PENDING, platform, *busy, OutboxState.PENDING, now, now, CANDIDATES),
            )
            last = served or {}
            candidates.sort(key=lambda row: (last.get(row["target"], 0.0), row["id"]))
            rows = await lease_rows(
                db,
                "outbox",
                [row["id"] for row in candidates[: limit + EXTRA_CANDIDATES]],
                pending=OutboxState.PENDING,
                worker=worker,
                now=now,
                lease=lease,
                limit=limit,
            )
        return [_outbox_row(row) for row in sorted(rows, key=lambda row: int(row["id"]))]

    async def renew(self, worker: str, row_ids: Iterable[int], lease: float) -> None:
        ids = list(row_ids)
        if not ids:
            return
        await self.db.execute(
            f"update outbox set lease_until = ? where lease_owner = ? and id in ({marks(ids)})",
            (self._clock() + lease, worker, *ids),
        )

    async def sent(
        self, row: OutboxRow, chat_id: str | None, message_id: str | None, outcome: str = "sent"
    ) -> None:
        """Mark ``row`` delivered (``outcome``: sent, or unreachable when the owner cannot
        be messaged) and remember which uploads the platform message shows."""
        db = self.db
        async with db.transaction():
            await db.execute(
                "update outbox set state = ?, outcome = ?, sent_message_id = ?, updated_at = ?,"
                " lease_owner = null, lease_until = null where id = ?",
                (OutboxState.SENT, outcome, message_id, to_text(now_utc()), row.id),
            )
            if chat_id is None or message_id is None:
                return
            for item in row.message.items:
                if item.upload_id is None:
                    continue
                await db.execute(
                    "insert into bot_messages (upload_id, platform, chat_id, message_id,"
                    " visibility) values (?, ?, ?, ?, ?)",
                    (item.upload_id, row.platform, chat_id, message_id, row.message.visibility),
                )

    async def postpone(self, row: OutboxRow, seconds: float) -> None:
        """The platform said to wait (a flood wait): not before then, and not counted."""
        attempts = self.db.dialect.greatest("attempts - 1", "0")
        await self.db.execute(
            f"update outbox set not_before = ?, attempts = {attempts},"
            " lease_owner = null, lease_until = null where id = ?",
            (self._clock() + seconds, row.id),
        )

    async def release(self, row: OutboxRow, seconds: float) -> None:
        """A transient failure: try again after ``seconds``."""
        await self.db.execute(
            "update outbox set not_before = ?, lease_owner = null, lease_until = null where id = ?",
            (self._clock() + seconds, row.id),
        )

    async def failed(self, row: OutboxRow, reason: str) -> None:
        await self.db.execute(
            "update outbox set state = ?, outcome = ?, updated_at = ?, lease_owner = null,"
            " lease_until = null where id = ?",
            (OutboxState.FAILED, reason, to_text(now_utc()), row.id),
        )

    async def private_outcome(self, batch: str) -> str | None:
        """How the batch's private part went: ``sent``, ``unreachable``, ``failed`` (or
        None if it has none or it is not done)."""
        outcome = await self.db.fetchval(
            "select outcome from outbox where batch = ? and visibility = ? and state != ?"
            " order by seq limit 1",
            (batch, Visibility.PRIVATE, OutboxState.PENDING),
        )
        return None if outcome is None else str(outcome)

    async def next_due(self, platform: str) -> float | None:
        """When the soonest postponed or leased row becomes claimable."""
        due = self.db.dialect.greatest("not_before", "coalesce(lease_until, 0)")
        value = await self.db.fetchval(
            f"select min({due}) as soonest from outbox where state = ? and platform = ?",
            (OutboxState.PENDING, platform),
        )
        return None if value is None else float(value)

    async def pending_count(self, platform: str | None = None) -> int:
        sql, params = "select count(*) as n from outbox where state = ?", [str(OutboxState.PENDING)]
        if platform is not None:
            sql += " and platform = ?"
            params.append(platform)
        return int(await self.db.fetchval(sql, params))

    async def depth(self) -> dict[str, int]:
        """Per platform: messages not yet sent (through the index on state, platform)."""
        rows = await self.db.fetch(
            "select platform, count(*) as n from outbox where state = ? group by platform",
            (OutboxState.PENDING,),
        )
        return {row["platform"]: int(row["n"]) for row in rows}

    async def received_at(self, batch: str) -> float | None:
        """When the message a batch answers arrived (Unix time). A batch records that
        time to the second (``created_at``) and, for one message, exactly as the moment it
        became ready (``ready_at``); an album is ready only after its wait, so for it the
        second of its first item's arrival is what is known."""
        row = await self.db.fetchrow(
            "select created_at, ready_at from batches where id = ?", (batch,)
        )
        created = from_text(row["created_at"]) if row is not None else None
        if row is None or created is None:
            return None
        start, ready = created.timestamp(), row["ready_at"]
        return float(ready) if ready is not None and start <= ready < start + 1 else start


def _outbox_row(row: Row) -> OutboxRow:
    return OutboxRow(
        id=row["id"],
        batch=row["batch"],
        platform=row["platform"],
        seq=row["seq"],
        message=PlannedMessage.from_json(json.loads(row["payload"])),
        attempts=row["attempts"],
    )
