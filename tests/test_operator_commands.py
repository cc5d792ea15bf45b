"""``rehost history``, ``rehost delete`` and ``rehost stats`` on a real database."""

from __future__ import annotations

import json
from pathlib import Path

from bot.requests import RehostRequest, SourceRef
from sandbox import samples
from sandbox.hostemu import HostEmulator
from tests.conftest import assert_no_secrets, host_table, run_rehost, write_config
from tests.service_harness import service_for


async def test_history_delete_and_stats(host_emu: HostEmulator, tmp_path: Path) -> None:
    config = write_config(tmp_path, [host_table("chev", host_emu, "chevereto")], ["chev"])
    data = samples.png(3, 3)
    url = host_emu.add_blob("a.png", data)
    async with service_for(host_emu, tmp_path / "rehost.db") as h:
        for owner in ("ann", "ann", "bob"):
            await h.service.rehost(RehostRequest("test", "c", owner, [SourceRef("a.png", url=url)]))
        await h.service.rehost(
            RehostRequest(
                "test", "c", "bob", [SourceRef("x.png", url=host_emu.add_blob("x", b"nope"))]
            )
        )

    history = await run_rehost("history", "-c", str(config), "--owner", "ann", "--json")
    assert history.code == 0, history.stderr
    [ann] = [json.loads(line) for line in history.stdout.splitlines()]
    assert ann["owner_id"] == "ann" and ann["state"] == "active" and "delete_url" not in ann

    stats = await run_rehost("stats", "-c", str(config), "--json")
    numbers = json.loads(stats.stdout)
    assert numbers["uploads"] == 1 and numbers["bytes"] == len(data)
    assert numbers["dedup_hits"] == 2 and numbers["failures"] == 1
    assert numbers["hosts"]["chev"]["uploads"] == 1

    deleted = await run_rehost("delete", str(ann["id"]), "-c", str(config))
    assert deleted.code == 0, deleted.stderr
    assert f"Deleted #{ann['id']}" in deleted.stdout
    assert all(image.deleted for image in host_emu.images.values())
    missing = await run_rehost("delete", "9999", "-c", str(config))
    assert missing.code == 1 and "No upload #9999" in missing.stdout

    listing = await run_rehost("history", "-c", str(config))
    assert listing.stdout.count("deleted") == 2  # ann's upload and bob's reuse of it
    assert_no_secrets(history.stdout, stats.stdout, deleted.stdout, listing.stdout)
    assert "/delete/" not in listing.stdout + history.stdout
