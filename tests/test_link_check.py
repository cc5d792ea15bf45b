"""``rehost check``: images a host lost before their expiry are found and reported."""

from __future__ import annotations

import json
from pathlib import Path

import httpx

from bot.linkcheck import LinkChecker
from bot.requests import RehostRequest, SourceRef
from bot.store import Store
from sandbox import samples
from sandbox.hostemu import HostEmulator
from tests.conftest import host_table, run_rehost, write_config
from tests.service_harness import service_for


async def rehost_three(emu: HostEmulator, db: Path) -> list[int]:
    ids = []
    async with service_for(emu, db) as h:
        for i, owner in enumerate(["ann", "bob", "cid"]):
            url = emu.add_blob(f"{i}.png", samples.png(i + 1, 3))
            [result] = await h.service.rehost(
                RehostRequest("test", "c", owner, [SourceRef(f"{i}.png", url=url)])
            )
            assert result.upload is not None
            ids.append(result.upload.id)
    return ids


async def test_check_marks_an_image_the_host_no_longer_serves_as_gone(
    tmp_path: Path, host_emu: HostEmulator
) -> None:
    config = write_config(tmp_path, [host_table("chev", host_emu, "chevereto")], ["chev"])
    db = tmp_path / "rehost.db"
    first, second, _ = await rehost_three(host_emu, db)
    store = await Store.open(db)
    lost = await store.upload(second)
    await store.close()
    assert lost is not None and lost.delete_url is not None
    async with httpx.AsyncClient() as http:  # the host loses it (a moderator, a purge)
        assert (await http.get(lost.delete_url)).status_code == 301
    probes_before = len(host_emu.requests)

    ran = await run_rehost("check", "-c", str(config), "--json")
    stats = await run_rehost("stats", "-c", str(config), "--json")

    findings = [json.loads(line) for line in ran.stdout.splitlines()]
    assert ran.code == 1, "an image was found gone"
    assert {tuple(f["upload_ids"]): f["state"] for f in findings} == {
        (first,): "alive",
        (second,): "gone",
        (second + 1,): "alive",
    }
    probes = host_emu.requests[probes_before:]
    assert {r.method for r in probes} == {"HEAD"}, "a HEAD each, nothing downloaded"
    assert all("/delete/" not in r.path for r in probes), "never the delete link"
    assert json.loads(stats.stdout)["gone_before_expiry"] == {"chev": 1}
    store = await Store.open(db)
    checked = await store.upload(second)
    assert checked is not None and checked.state == "active"  # gone is a finding, not a state
    row = await store.db.fetchrow(
        "select link_state, checked_at from uploads where id = ?", (second,)
    )
    assert row is not None and row["link_state"] == "gone" and row["checked_at"]
    await store.close()


async def test_a_host_without_head_is_probed_with_a_one_byte_get(
    tmp_path: Path, host_emu: HostEmulator
) -> None:
    db = tmp_path / "rehost.db"
    await rehost_three(host_emu, db)
    store = await Store.open(db)

    async def no_head(request: httpx.Request) -> httpx.Response:
        if request.method == "HEAD":
            return httpx.Response(405)
        assert request.headers["range"] == "bytes=0-0"
        return httpx.Response(206, content=b"x")

    async with httpx.AsyncClient(transport=httpx.MockTransport(no_head)) as http:
        findings = await LinkChecker(store, http).run()
    await store.close()
    assert [f.state for f in findings] == ["alive", "alive", "alive"]


async def test_check_only_one_host_and_an_unknown_host_is_one_line(
    tmp_path: Path, host_emu: HostEmulator
) -> None:
    config = write_config(tmp_path, [host_table("chev", host_emu, "chevereto")], ["chev"])
    await rehost_three(host_emu, tmp_path / "rehost.db")
    ran = await run_rehost("check", "-c", str(config), "--host", "chev")
    unknown = await run_rehost("check", "-c", str(config), "--host", "nope")
    assert ran.code == 0 and "checked 3 links: 3 alive, 0 gone" in ran.stderr
    assert unknown.code == 2 and "no host named 'nope'" in unknown.stderr


async def test_a_handed_over_imgbb_link_used_by_its_owner_ends_the_upload_and_its_reuses(
    tmp_path: Path, host_emu: HostEmulator
) -> None:
    """ImgBB-style hosts have no delete API: the owner is handed the link and the upload
    stays live until the image is known gone. The check finds it gone once it is."""
    db = tmp_path / "rehost.db"
    async with service_for(host_emu, db, hosts=("zg",)) as h:
        url = host_emu.add_blob("a.png", samples.png(7, 7))
        [first] = await h.service.rehost(
            RehostRequest("test", "c", "ann", [SourceRef("a.png", url=url)])
        )
        [reuse] = await h.service.rehost(
            RehostRequest("test", "c", "bob", [SourceRef("b.png", url=url)])
        )
        assert first.upload is not None and reuse.upload is not None and reuse.dedup
        handed = await h.deleter.delete(first.upload.id, "test", "ann")
        assert handed.delete_url is not None
        findings = await LinkChecker(h.store, h.http).run()
        still = await h.store.upload(first.upload.id)
        assert [f.state for f in findings] == ["alive"]
        assert still is not None and still.state == "active", "the link was not used yet"
        [image] = host_emu.images.values()
        image.deleted = True  # the owner opened the link and confirmed
        findings = await LinkChecker(h.store, h.http).run()
        ended = [await h.store.upload(i) for i in (first.upload.id, reuse.upload.id)]
    assert [f.state for f in findings] == ["gone"]
    assert [u.state for u in ended if u is not None] == ["deleted", "deleted"]
