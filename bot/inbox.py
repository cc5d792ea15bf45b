"""The inbox: platform updates recorded before the platform is told they were received.

Telegram forgets an update once a later offset is confirmed; recording it first means a
crash between receiving and handling loses nothing: the next start handles what is still
``new``. An update id recorded twice (Telegram sends again what was not confirmed) is
handled once.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from bot.store import Store, now_utc, to_text

NEW, DONE = "new", "done"


class Inbox:
    def __init__(self, store: Store) -> None:
        self.store = store
        self.db = store.db

    async def record(
        self, platform: str, updates: Sequence[tuple[int, dict[str, Any]]]
    ) -> list[int]:
        """Record updates in one transaction; returns the ids that were new."""
        stamp = to_text(now_utc())
        fresh = []
        async with self.db.transaction():
            for update_id, payload in updates:
                added = await self.db.execute(
                    "insert into inbox (platform, update_id, payload, state, received_at)"
                    " values (?, ?, ?, ?, ?) on conflict do nothing",
                    (platform, update_id, json.dumps(payload), NEW, stamp),
                )
                if added:
                    fresh.append(update_id)
        return fresh

    async def unhandled(self, platform: str) -> list[tuple[int, dict[str, Any]]]:
        rows = await self.db.fetch(
            "select update_id, payload from inbox where platform = ? and state = ?"
            " order by update_id",
            (platform, NEW),
        )
        return [(int(row["update_id"]), json.loads(row["payload"])) for row in rows]

    async def handled(self, platform: str, update_id: int) -> None:
        await self.db.execute(
            "update inbox set state = ?, payload = '{}' where platform = ? and update_id = ?",
            (DONE, platform, update_id),
        )

    async def prune(self, before: str) -> int:
        """Forget handled updates received before ``before`` (ISO text, as stored)."""
        return await self.db.execute(
            "delete from inbox where state = ? and received_at < ?", (DONE, before)
        )
