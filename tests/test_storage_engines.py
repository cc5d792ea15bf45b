"""The store on both engines: one schema whichever way a database got there, migrations
run once when several processes start together, and a lock held by another process
never stalls the event loop."""

from __future__ import annotations

import asyncio
import sqlite3
import time
from pathlib import Path

import pytest

from bot import schema
from bot.community import Communities
from bot.communityadmins import Administered, CommunityAdmins
from bot.database import SQLiteDatabase
from bot.errors import StorageError
from bot.schema import SCHEMA_VERSION, SNAPSHOT_VERSION, SQLITE_HISTORY
from bot.store import Store
from bot.userlanguages import UserLanguages, remembered


def sqlite_schema(path: Path) -> dict[str, object]:
    """Tables with their columns (name, type, primary key), and indexes with theirs."""
    with sqlite3.connect(path) as conn:
        tables = [r[0] for r in conn.execute("select name from sqlite_master where type='table'")]
        found: dict[str, object] = {}
        for table in sorted(tables):
            columns = conn.execute(f"pragma table_info({table})").fetchall()
            found[table] = sorted((c[1], c[2].upper(), c[5]) for c in columns)
            for index in conn.execute(f"pragma index_list({table})").fetchall():
                if index[3] != "c":  # made by a primary key or a unique constraint
                    continue
                info = conn.execute(f"pragma index_info({index[1]})").fetchall()
                found[f"index {index[1]}"] = (table, bool(index[2]), [i[2] for i in info])
    return found


async def test_a_new_database_and_an_upgraded_one_have_the_same_schema(tmp_path: Path) -> None:
    fresh, upgraded = tmp_path / "fresh.db", tmp_path / "upgraded.db"
    db = SQLiteDatabase(upgraded)
    await db.open()
    assert db.sqlite is not None
    for migration in SQLITE_HISTORY:  # what rehost up to version 12 built, step by step
        migration(db.sqlite)
    await db.call(lambda: db.conn.execute(f"pragma user_version = {SNAPSHOT_VERSION}"))
    await db.close()
    for path in (fresh, upgraded):
        async with Store.opened(path) as store:
            assert await store.version() == SCHEMA_VERSION
    assert sqlite_schema(fresh) == sqlite_schema(upgraded)


async def test_processes_starting_together_migrate_once(storage: Path | str) -> None:
    stores = await asyncio.gather(*(Store.open(storage) for _ in range(4)))
    try:
        versions = [await store.version() for store in stores]
        upload_id = await stores[0].add_upload(
            platform="t", owner_id="o", sha256="s", size=1, host="h", viewer_url="v"
        )
        seen = [await store.upload(upload_id) for store in stores]
    finally:
        for store in stores:
            await store.close()
    assert versions == [SCHEMA_VERSION] * 4
    assert all(record is not None and record.viewer_url == "v" for record in seen)


async def test_the_latest_migration_upgrades_a_database_of_the_version_before(
    storage: Path | str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The newest migration (v16 -> v17: where each user was seen as an admin) on each
    engine: what the database held stays, and the new table works."""
    monkeypatch.setattr(schema, "MIGRATIONS", schema.MIGRATIONS[:-1])
    monkeypatch.setattr(schema, "SCHEMA_VERSION", SCHEMA_VERSION - 1)
    async with Store.opened(storage) as before:
        assert await before.version() == SCHEMA_VERSION - 1
        await Communities(before.db).change("discord", "1", "2", "ann", language="es")
        await UserLanguages(before.db).saw("telegram", 7, "es-ES")
    monkeypatch.undo()
    async with Store.opened(storage) as after:
        assert await after.version() == SCHEMA_VERSION
        assert (await Communities(after.db).settings("discord", "1")).language == "es"
        assert await remembered(after.db, "telegram", 7) == "es"
        admins = CommunityAdmins(after.db)
        await admins.seen("telegram", -100, 7, "Photos")
        await admins.seen("telegram", -200, 7, "Travel")
        assert await admins.of("telegram", 7) == [
            Administered("-200", "Travel"),
            Administered("-100", "Photos"),
        ]
        await CommunityAdmins(after.db).gone("telegram", -200, 7)  # another process's
        assert await admins.of("telegram", 7) == [Administered("-100", "Photos")]


async def test_a_lock_held_by_another_process_does_not_stall_the_event_loop(
    tmp_path: Path,
) -> None:
    path = tmp_path / "rehost.db"
    async with Store.opened(path) as store:
        other = sqlite3.connect(path, isolation_level=None)  # another process's writer
        other.execute("begin immediate")
        write = asyncio.create_task(store.set_state(1, "deleted"))
        ticks = 0
        started = time.monotonic()
        while not write.done() and ticks < 20:
            await asyncio.sleep(0.01)  # the loop turns while the write waits for the lock
            ticks += 1
        assert not write.done(), "the write waits for the other writer"
        assert ticks == 20 and time.monotonic() - started < 5
        other.execute("commit")
        other.close()
        await write


async def test_an_unreachable_server_is_one_line_without_the_password() -> None:
    url = "postgresql://rehost:hunter22@127.0.0.1:1/rehost"
    with pytest.raises(StorageError) as caught:
        await Store.open(url)
    message = str(caught.value)
    assert "hunter22" not in message and "rehost:***@127.0.0.1:1/rehost" in message
    assert "\n" not in message
