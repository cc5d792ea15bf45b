"""Nothing is lost: a process killed mid-upload, and a database from the first schema."""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import json
import shutil
import signal
import sqlite3
import sys
from pathlib import Path

from bot.replyplan import PlannedMessage
from bot.requests import RehostRequest, SourceRef
from bot.store import SCHEMA_VERSION, StorageError, Store
from bot.worker import GENERIC_FAILURE
from sandbox import samples
from sandbox.hostemu import Fault, HostEmulator
from tests.conftest import ROOT
from tests.service_harness import Harness, service_for

FIXTURE = Path(__file__).parent / "fixtures" / "schema_v1.db"


async def wait_until(condition, timeout: float = 20.0) -> None:  # type: ignore[no-untyped-def]
    """Until ``condition()`` (a plain or an async function) holds."""
    async with asyncio.timeout(timeout):
        while True:
            held = condition()
            if inspect.isawaitable(held):
                held = await held
            if held:
                return
            await asyncio.sleep(0.02)


async def worked_until_answered(h: Harness, batch: str) -> list[PlannedMessage]:
    """Run the worker until ``batch`` has its answer in the outbox; that answer."""
    h.service.worker.serve("test")
    worker = asyncio.create_task(h.service.worker.run())
    try:
        await wait_until(lambda: answered(h, batch))
    finally:
        worker.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await worker
    rows = await h.store.db.fetch(
        "select payload from outbox where batch = ? order by seq", (batch,)
    )
    return [PlannedMessage.from_json(json.loads(row["payload"])) for row in rows]


async def answered(h: Harness, batch_id: str) -> bool:
    batch = await h.service.queue.batch(batch_id)
    return batch is not None and batch.state == "answered"


async def test_a_batch_killed_mid_upload_is_taken_over_and_answered_once(
    host_emu: HostEmulator, storage: Path | str
) -> None:
    images = [samples.png(i + 2, 2) for i in range(3)]
    urls = [host_emu.add_blob(f"album-{i}.png", data) for i, data in enumerate(images)]
    host_emu.script(Fault("slow", delay=60), times=3)
    db = storage
    worker = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "tests.crash_worker", str(db), host_emu.base_url, *urls,
        cwd=ROOT, stdout=asyncio.subprocess.PIPE,
    )  # fmt: skip
    try:
        await wait_until(lambda: len(host_emu.uploads) >= 1)
    finally:
        worker.send_signal(signal.SIGKILL)
        await worker.wait()
    assert host_emu.images == {}, "nothing was stored before the crash"
    host_emu.clear_faults()

    async with service_for(host_emu, db, lease=1.0) as h:
        # The dead worker's leases lapse; this one takes the jobs over.
        [answer] = await worked_until_answered(h, "batch-1")
        again = await h.service.queue.claim("another", ["test"], 1.0, 10)
    assert answer.visibility == "private" and answer.chat_id == "chat-9"
    assert [item.upload_id is not None for item in answer.items] == [True, True, True]
    assert {image.data for image in host_emu.images.values()} == set(images)
    assert again == []


async def test_a_job_that_keeps_crashing_is_given_up_and_still_answered(
    host_emu: HostEmulator, tmp_path: Path
) -> None:
    db = tmp_path / "rehost.db"
    async with service_for(host_emu, db, lease=1.0) as h:
        url = host_emu.add_blob("x.png", samples.png())
        batch = await h.service.submit(
            RehostRequest("test", "c", "ann", [SourceRef("x.png", url=url)], chat_title="G")
        )
        for _ in range(3):  # three workers claimed it and died
            await h.service.queue.claim("dead", ["test"], -1.0, 1)
        [public] = await worked_until_answered(h, batch)
    assert public.visibility == "public" and public.items[0].upload_id is None
    assert public.items[0].error == GENERIC_FAILURE
    assert host_emu.uploads == []


async def test_jobs_left_pending_by_the_previous_version_are_answered(
    host_emu: HostEmulator, tmp_path: Path
) -> None:
    path = tmp_path / "v3.db"
    shutil.copy(FIXTURE, path)
    url = host_emu.add_blob("old.png", samples.png(3, 3))
    with sqlite3.connect(path) as conn:  # what a v3 bot left: a pending job, no batch
        conn.execute("PRAGMA user_version = 3")
        conn.execute("alter table uploads add column updated_at text")
        conn.execute("alter table uploads add column reused_from integer")
        conn.execute("alter table uploads add column source_key text")
        conn.execute("alter table chat_settings add column hosts text")
        conn.execute(
            "create table bot_messages (id integer primary key, upload_id integer,"
            " platform text, chat_id text, message_id text, visibility text)"
        )
        conn.execute(
            "create table jobs (id integer primary key, batch text, position integer,"
            " platform text, chat_id text, message_id text, owner_id text, source text,"
            " expiration text, state text, outcome text, upload_id integer, error text,"
            " attempts integer, created_at text, updated_at text)"
        )
        conn.execute(
            "insert into jobs (batch, position, platform, chat_id, message_id, owner_id,"
            " source, state, attempts, created_at) values ('old', 0, 'test', 'ann', '5',"
            " 'ann', ?, 'pending', 1, '2026-11-20T10:00:00Z')",
            (json.dumps({"filename": "old.png", "url": url}),),
        )
    async with service_for(host_emu, path, lease=1.0) as h:
        [answer] = await worked_until_answered(h, "old")
    assert answer.visibility == "private" and answer.reply_to == "5"
    assert answer.items[0].upload_id is not None


async def test_the_first_schema_upgrades_in_place(tmp_path: Path) -> None:
    copy = tmp_path / "old.db"
    shutil.copy(FIXTURE, copy)
    store = await Store.open(copy)
    assert await store.version() == SCHEMA_VERSION
    history = await store.history()
    assert [(u.platform, u.owner_id, u.state) for u in history] == [
        ("discord", "42", "deleted"),
        ("telegram", "1001", "active"),
    ]
    assert history[1].delete_url is not None and history[1].reused_from is None
    settings = await store.chat_settings("telegram", "-100200")
    assert settings.auto_rehost and settings.default_expiration == "1d" and settings.hosts is None
    # The new tables work on the upgraded file.
    await store.add_bot_message(history[1].id, "telegram", "-100200", "18", "public")
    assert len(await store.bot_messages(history[1].id)) == 1
    await store.close()
    async with Store.opened(copy) as again:  # reopening migrates nothing twice
        assert await again.version() == SCHEMA_VERSION


async def test_a_newer_database_is_refused(tmp_path: Path) -> None:
    import pytest

    path = tmp_path / "future.db"
    await (await Store.open(path)).close()
    with sqlite3.connect(path) as conn:
        conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    with pytest.raises(StorageError, match="newer rehost") as caught:
        await Store.open(path)
    assert str(path) in str(caught.value)
