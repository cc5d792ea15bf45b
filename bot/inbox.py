"""The inbox: platform updates recorded before the platform is told they were received.

Telegram forgets an update once a later offset is confirmed; recording it first means a
crash between receiving and handling loses nothing: the next start handles what is still
``new``. An update id recorded twice (Telegram sends again what was not confirmed) is
handled once.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Sequence
from typing import Any

from bot.store import Store, now_utc, to_text

NEW, DONE = "new", "done"


class Inbox:
    def __init__(self, store: Store) -> None:
        self.store = store
        self.conn = store.db.conn

    def record(self, platform: str, updates: Sequence[tuple[int, dict[str, Any]]]) -> list[int]:
        """Record updates in one transaction; returns the ids that were new."""
        stamp = to_text(now_utc())
        fresh = []
        with self.store.transaction() as conn:
            for update_id, payload in updates:
                cursor = conn.execute(
                    "insert or ignore into inbox (platform, update_id, payload, state,"
                    " received_at) values (?, ?, ?, ?, ?)",
                    (platform, update_id, json.dumps(payload), NEW, stamp),
                )
                if cursor.rowcount:
                    fresh.append(update_id)
        return fresh

    def unhandled(self, platform: str) -> list[tuple[int, dict[str, Any]]]:
        rows: list[sqlite3.Row] = self.conn.execute(
            "select update_id, payload from inbox where platform = ? and state = ?"
            " order by update_id",
            (platform, NEW),
        ).fetchall()
        return [(row["update_id"], json.loads(row["payload"])) for row in rows]

    def handled(self, platform: str, update_id: int) -> None:
        with self.store.transaction() as conn:
            conn.execute(
                "update inbox set state = ?, payload = '{}' where platform = ? and update_id = ?",
                (DONE, platform, update_id),
            )

    def prune(self, before: str) -> int:
        """Forget handled updates received before ``before`` (ISO text, as stored)."""
        with self.store.transaction() as conn:
            cursor = conn.execute(
                "delete from inbox where state = ? and received_at < ?", (DONE, before)
            )
        return int(cursor.rowcount)
