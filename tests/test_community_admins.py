"""Where each user was seen as an admin: one process writes a sighting once while it
trusts its cache, and a row another process wrote or dropped is what every process reads."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bot.communityadmins import Administered, CommunityAdmins
from bot.store import Store


async def test_a_sighting_is_written_once_while_trusted_and_read_by_another_process(
    tmp_path: Path,
) -> None:
    now = [0.0]
    async with Store.opened(tmp_path / "rehost.db") as store:
        writes: list[str] = []

        def trace(sql: str, params: Any) -> None:
            if sql.startswith(("insert into community_admins", "delete from community_admins")):
                writes.append(sql.split()[0])

        store.db.trace = trace  # type: ignore[attr-defined]
        mine = CommunityAdmins(store.db, trusted_for=60.0, clock=lambda: now[0])
        other = CommunityAdmins(store.db)  # another process on the same database
        for _ in range(3):
            await mine.seen("telegram", -100, 7, "Photos")
        assert writes == ["insert"]
        assert await other.of("telegram", 7) == [Administered("-100", "Photos")]

        await mine.seen("telegram", -100, 7, "Holiday photos")  # renamed: written at once
        now[0] = 61.0
        await mine.seen("telegram", -100, 7, "Holiday photos")  # lapsed: seen_at refreshed
        assert writes == ["insert"] * 3

        await mine.gone("telegram", -100, 7)
        await mine.gone("telegram", -100, 7)
        assert writes == ["insert"] * 3 + ["delete"]
        assert await other.of("telegram", 7) == []
        await mine.seen("telegram", -100, 7, "")  # promoted again; no title: its id
        assert await other.of("telegram", 7) == [Administered("-100", "-100")]


async def test_a_users_groups_come_most_recently_seen_first_and_limited(tmp_path: Path) -> None:
    async with Store.opened(tmp_path / "rehost.db") as store:
        admins = CommunityAdmins(store.db)
        for group in range(1, 5):
            await admins.seen("telegram", -group, 7, f"Group {group}")
        await admins.seen("telegram", -1, 8, "Group 1")  # someone else's
        await admins.seen("discord", "1", 7, "A server")  # another platform's
        assert [g.title for g in await admins.of("telegram", 7, limit=3)] == [
            "Group 4",
            "Group 3",
            "Group 2",
        ]
