"""``rehost migrate``: moving every live upload off a host, with the bot running, and after
being killed halfway."""

from __future__ import annotations

import asyncio
import json
import signal
import sys
from pathlib import Path

from bot.requests import RehostRequest, SourceRef
from bot.store import Store
from sandbox import samples
from sandbox.hostemu import Fault, HostEmulator
from sandbox.telegram_api import TelegramEmulator
from tests.conftest import ROOT, host_table, run_rehost, write_config
from tests.service_harness import service_for
from tests.telegram_harness import ANN, GROUP, running_adapter, settled


def two_hosts(tmp_path: Path, host: HostEmulator, tg: TelegramEmulator | None = None) -> Path:
    tables = [host_table("old", host, "chevereto"), host_table("new", host, "imgbb")]
    config = write_config(tmp_path, tables, ["old", "new"])
    if tg is not None:
        config.write_text(
            config.read_text() + f'\n[telegram]\ntoken = "{tg.token}"\n'
            f'base_url = "{tg.base_url}"\nbase_file_url = "{tg.base_file_url}"\n'
            f"auto_rehost_chats = [{GROUP}]\n"
        )
    return config


async def test_migrate_moves_an_upload_edits_the_post_and_dms_the_new_delete_link(
    tmp_path: Path, host: HostEmulator, tg: TelegramEmulator
) -> None:
    config = two_hosts(tmp_path, host, tg)
    async with running_adapter(config) as adapter:
        tg.send_photo(GROUP, ANN, samples.png(31, 31))
        await settled(adapter, tg)
        [old] = await adapter.core.library.live_uploads("telegram", str(ANN))
        assert old.host == "old"
        ran = await run_rehost("migrate", "--from", "old", "-c", str(config), "--json")
        edit = await tg.wait_for(
            lambda c: c.method == "editMessageText" and int(c.params["chat_id"]) == GROUP, 15
        )
        dm = await tg.wait_for(
            lambda c: c.method == "sendMessage" and "moved from old to new" in c.params["text"], 15
        )
        await settled(adapter, tg)
        [moved] = await adapter.core.library.live_uploads("telegram", str(ANN))
    assert ran.code == 0, ran.stderr
    [line] = [json.loads(line) for line in ran.stdout.splitlines()]
    assert line["upload_id"] == old.id and line["to_host"] == "new" and line["old_deleted"]
    assert (moved.id, moved.owner_id, moved.host) == (old.id, old.owner_id, "new")
    assert moved.viewer_url in edit.params["text"] and old.viewer_url not in edit.params["text"]
    assert moved.delete_url is not None and moved.delete_url not in edit.params["text"]
    assert int(dm.params["chat_id"]) == ANN and moved.delete_url in dm.params["text"]
    assert dm.params["link_preview_options"]["is_disabled"], "a delete link: no preview"
    old_image = next(i for i in host.images.values() if i.viewer_url == old.viewer_url)
    assert old_image.deleted, "the old copy was deleted on the Chevereto host"


async def test_dry_run_moves_nothing(tmp_path: Path, host: HostEmulator) -> None:
    config = two_hosts(tmp_path, host)
    await rehost_some(host, tmp_path / "rehost.db", 2)
    ran = await run_rehost("migrate", "--from", "old", "-c", str(config), "--dry-run", "--json")
    lines = [json.loads(line) for line in ran.stdout.splitlines()]
    assert ran.code == 0 and len(lines) == 2
    assert all(line["to_host"] is None and "dry run" in line["problem"] for line in lines)
    assert [r.path for r in host.uploads].count("/1/upload") == 0


async def rehost_some(host: HostEmulator, db: Path, count: int) -> list[int]:
    ids = []
    async with service_for(host, db, hosts=("chev",)) as h:
        for i in range(count):
            url = host.add_blob(f"{i}.png", samples.png(40 + i, 4))
            [result] = await h.service.rehost(
                RehostRequest("telegram", str(ANN), str(ANN), [SourceRef(f"{i}.png", url=url)])
            )
            assert result.upload is not None
            ids.append(result.upload.id)
    store = await Store.open(db)  # the harness names its Chevereto host "chev": call it "old" here
    await store.db.execute("update uploads set host = 'old'")
    await store.close()
    return ids


async def test_killed_midway_and_rerun_moves_every_upload_exactly_once(
    tmp_path: Path, host: HostEmulator
) -> None:
    config = two_hosts(tmp_path, host)
    db = tmp_path / "rehost.db"
    ids = await rehost_some(host, db, 4)
    host.script(Fault("slow", delay=60), times=1, dialect="imgbb")
    first = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bot", "migrate", "--from", "old", "-c", str(config), "--json",
        cwd=ROOT, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL,
    )  # fmt: skip
    async with asyncio.timeout(30):
        while not [r for r in host.uploads if r.path == "/1/upload"]:
            await asyncio.sleep(0.02)
    first.send_signal(signal.SIGKILL)
    await first.wait()
    host.clear_faults()
    again = await run_rehost("migrate", "--from", "old", "-c", str(config), "--json")
    assert again.code == 0, again.stderr
    store = await Store.open(db)
    hosts = [row["host"] for row in await store.db.fetch("select host from uploads order by id")]
    moves = await store.db.fetch("select upload_id from host_moves order by upload_id")
    notices = await store.db.fetch(
        "select batch, count(*) as n from outbox where batch like 'move:%' group by batch"
    )
    await store.close()
    assert hosts == ["new"] * 4
    assert [row["upload_id"] for row in moves] == ids
    assert sorted(row["batch"] for row in notices) == sorted(f"move:{i}:telegram" for i in ids)
    assert all(row["n"] == 1 for row in notices), "one DM of the new delete link per upload"
    live_old = [i for i in host.images.values() if i.dialect == "chevereto" and not i.deleted]
    assert live_old == [], "every old copy was deleted"
