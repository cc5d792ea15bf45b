"""Nothing is lost: a process killed mid-upload, and a database from the first schema."""

from __future__ import annotations

import asyncio
import shutil
import signal
import sys
from pathlib import Path

from bot.store import SCHEMA_VERSION, Store
from sandbox import samples
from sandbox.hostemu import Fault, HostEmulator
from tests.conftest import ROOT
from tests.service_harness import service_for

FIXTURE = Path(__file__).parent / "fixtures" / "schema_v1.db"


async def wait_until(condition, timeout: float = 20.0) -> None:  # type: ignore[no-untyped-def]
    async with asyncio.timeout(timeout):
        while not condition():
            await asyncio.sleep(0.02)


async def test_a_batch_killed_mid_upload_is_finished_after_restart(
    host_emu: HostEmulator, tmp_path: Path
) -> None:
    images = [samples.png(i + 2, 2) for i in range(3)]
    urls = [host_emu.add_blob(f"album-{i}.png", data) for i, data in enumerate(images)]
    host_emu.script(Fault("slow", delay=60), times=3)
    db = tmp_path / "rehost.db"
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

    async with service_for(host_emu, db) as h:
        assert len(h.store.pending_jobs("test")) == 3
        [batch] = await h.service.recover("test")
        again = await h.service.recover("test")
    assert (batch.chat_id, batch.owner_id) == ("chat-9", "ann")
    assert [r.ok for r in batch.results] == [True, True, True]
    stored = {image.data for image in host_emu.images.values()}
    assert stored == set(images)
    assert again == []


async def test_recovery_gives_up_on_a_job_that_keeps_crashing(
    host_emu: HostEmulator, tmp_path: Path
) -> None:
    db = tmp_path / "rehost.db"
    store = Store(db)
    [job] = store.add_jobs(
        "b1",
        {"platform": "test", "chat_id": "c", "owner_id": "ann", "expiration": None},
        [{"filename": "x.png", "url": host_emu.add_blob("x.png", samples.png())}],
    )
    for _ in range(3):
        store.job_attempted(job)
    store.close()
    async with service_for(host_emu, db) as h:
        [batch] = await h.service.recover("test")
    assert not batch.results[0].ok
    assert host_emu.uploads == []


def test_the_first_schema_upgrades_in_place(tmp_path: Path) -> None:
    copy = tmp_path / "old.db"
    shutil.copy(FIXTURE, copy)
    store = Store(copy)
    assert store.version == SCHEMA_VERSION
    history = store.history()
    assert [(u.platform, u.owner_id, u.state) for u in history] == [
        ("discord", "42", "deleted"),
        ("telegram", "1001", "active"),
    ]
    assert history[1].delete_url is not None and history[1].reused_from is None
    settings = store.chat_settings("telegram", "-100200")
    assert settings.auto_rehost and settings.default_expiration == "1d" and settings.hosts is None
    # The new tables work on the upgraded file.
    store.add_bot_message(history[1].id, "telegram", "-100200", "18", "public")
    assert len(store.bot_messages(history[1].id)) == 1
    store.close()
    assert Store(copy).version == SCHEMA_VERSION  # reopening migrates nothing twice


def test_a_newer_database_is_refused(tmp_path: Path) -> None:
    import sqlite3

    import pytest

    path = tmp_path / "future.db"
    Store(path).close()
    with sqlite3.connect(path) as conn:
        conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    with pytest.raises(RuntimeError, match="newer rehost"):
        Store(path)
