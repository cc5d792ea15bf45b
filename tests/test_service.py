"""RehostService and DeleteService over SQLite, against the host emulator."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.database import SQLiteDatabase
from bot.deletion import DeleteStatus
from bot.expiration import Duration
from bot.requests import RehostRequest, SourceRef
from bot.store import ACTIVE, DELETED
from sandbox import samples
from sandbox.hostemu import HostEmulator
from tests.service_harness import service_for


def request(owner: str, *refs: SourceRef, chat: str = "chat-1", **extra: object) -> RehostRequest:
    return RehostRequest(platform="test", chat_id=chat, owner_id=owner, sources=refs, **extra)  # type: ignore[arg-type]


def blob(emu: HostEmulator, name: str, data: bytes) -> SourceRef:
    return SourceRef(filename=name, url=emu.add_blob(name, data), declared_size=len(data))


async def test_rehost_records_and_returns_links(
    host_emu: HostEmulator, storage: Path | str
) -> None:
    data = samples.png(4, 4)
    async with service_for(host_emu, storage) as h:
        [result] = await h.service.rehost(request("ann", blob(host_emu, "a.png", data)))
    assert result.ok and not result.dedup
    assert result.upload is not None
    assert result.upload.state == ACTIVE and result.upload.owner_id == "ann"
    assert host_emu.images[result.upload.host_image_id].data == data
    assert result.delete_url is not None and "/delete/" in result.delete_url


async def test_same_owner_same_bytes_makes_no_host_request(
    host_emu: HostEmulator, storage: Path | str
) -> None:
    data = samples.png(5, 5)
    async with service_for(host_emu, storage) as h:
        [first] = await h.service.rehost(request("ann", blob(host_emu, "a.png", data)))
        [second] = await h.service.rehost(request("ann", blob(host_emu, "b.png", data)))
        stats = await h.store.stats()
    assert len(host_emu.uploads) == 1
    assert second.dedup and second.upload == first.upload
    assert second.delete_url == first.delete_url
    assert stats["dedup_hits"] == 1 and stats["uploads"] == 1


async def test_another_owner_reuses_links_but_never_gets_the_delete_link(
    host_emu: HostEmulator, storage: Path | str
) -> None:
    data = samples.png(6, 6)
    async with service_for(host_emu, storage) as h:
        [first] = await h.service.rehost(request("ann", blob(host_emu, "a.png", data)))
        [other] = await h.service.rehost(request("bob", blob(host_emu, "b.png", data)))
    assert len(host_emu.uploads) == 1
    assert other.dedup and other.upload is not None and first.upload is not None
    assert other.upload.viewer_url == first.upload.viewer_url
    assert other.upload.owner_id == "bob"
    assert other.delete_url is None


async def test_dedup_respects_the_asked_expiry(host_emu: HostEmulator, storage: Path | str) -> None:
    data = samples.png(7, 7)
    ref = blob(host_emu, "a.png", data)
    day, week = Duration(seconds=86400), Duration(seconds=7 * 86400)
    async with service_for(host_emu, storage) as h:
        await h.service.rehost(request("ann", ref, expiration=day, use_default_expiration=False))
        # Asking for longer than the existing copy lives: upload again.
        await h.service.rehost(request("ann", ref, expiration=week, use_default_expiration=False))
        assert len(host_emu.uploads) == 2
        # The same expiry again, or never vs expiring: reuse only what fits.
        await h.service.rehost(request("ann", ref, expiration=week, use_default_expiration=False))
        assert len(host_emu.uploads) == 2
        await h.service.rehost(request("ann", ref, expiration=None, use_default_expiration=False))
        assert len(host_emu.uploads) == 3


async def test_owner_deletes_from_chevereto_then_it_is_already_gone(
    host_emu: HostEmulator, storage: Path | str
) -> None:
    async with service_for(host_emu, storage) as h:
        [result] = await h.service.rehost(request("ann", blob(host_emu, "a.png", samples.png())))
        assert result.upload is not None
        await h.store.add_bot_message(result.upload.id, "test", "chat-1", "m-77", "public")
        deleted = await h.deleter.delete(result.upload.id, "test", "ann")
        again = await h.deleter.delete(result.upload.id, "test", "ann")
        record = await h.store.upload(result.upload.id)
    assert deleted.status is DeleteStatus.DELETED
    assert [m.message_id for m in deleted.bot_messages] == ["m-77"]
    assert host_emu.images[result.upload.host_image_id].deleted
    assert again.status is DeleteStatus.ALREADY_GONE and "already" in again.message
    assert record is not None and record.state == DELETED


async def test_a_link_already_used_on_the_host_reports_already_gone(
    host_emu: HostEmulator, storage: Path | str
) -> None:
    async with service_for(host_emu, storage) as h:
        [result] = await h.service.rehost(request("ann", blob(host_emu, "a.png", samples.png())))
        assert result.delete_url is not None and result.upload is not None
        assert (await h.http.get(result.delete_url)).status_code == 301  # as Chevereto 4.2 answers
        outcome = await h.deleter.delete(result.upload.id, "test", "ann")
    assert outcome.status is DeleteStatus.ALREADY_GONE
    assert "already gone" in outcome.message


async def test_another_users_delete_is_refused_and_changes_nothing(
    host_emu: HostEmulator, storage: Path | str
) -> None:
    async with service_for(host_emu, storage) as h:
        [result] = await h.service.rehost(request("ann", blob(host_emu, "a.png", samples.png())))
        assert result.upload is not None
        before = len(host_emu.requests)
        refused = await h.deleter.delete(result.upload.id, "test", "mallory")
        record = await h.store.upload(result.upload.id)
    assert refused.status is DeleteStatus.NOT_ALLOWED
    assert refused.delete_url is None and not refused.bot_messages
    assert len(host_emu.requests) == before, "no request to the host"
    assert record is not None and record.state == ACTIVE
    assert not host_emu.images[result.upload.host_image_id].deleted


async def test_imgbb_delete_hands_over_the_link_and_never_fetches_it(
    host_emu: HostEmulator, storage: Path | str
) -> None:
    async with service_for(host_emu, storage, hosts=("zg",)) as h:
        [result] = await h.service.rehost(request("ann", blob(host_emu, "a.png", samples.png())))
        assert result.upload is not None and result.delete_url is not None
        outcome = await h.deleter.delete(result.upload.id, "test", "ann")
        record = await h.store.upload(result.upload.id)
    assert outcome.status is DeleteStatus.OPEN_LINK
    assert outcome.delete_url == result.delete_url
    token_path = result.delete_url.split("://", 1)[1].split("/", 1)[1]
    assert not any(r.path.lstrip("/") == token_path for r in host_emu.requests)
    # Handed over, not deleted: it stays live until the image is known to be gone.
    assert record is not None and record.state == ACTIVE and record.delete_handed_at is not None


async def test_deleting_shared_links_only_unlists_for_the_second_owner(
    host_emu: HostEmulator, storage: Path | str
) -> None:
    data = samples.png(8, 8)
    async with service_for(host_emu, storage) as h:
        [first] = await h.service.rehost(request("ann", blob(host_emu, "a.png", data)))
        [other] = await h.service.rehost(request("bob", blob(host_emu, "b.png", data)))
        assert first.upload is not None and other.upload is not None
        unlisted = await h.deleter.delete(other.upload.id, "test", "bob")
        assert not host_emu.images[first.upload.host_image_id].deleted
        original = await h.deleter.delete(first.upload.id, "test", "ann")
    assert unlisted.status is DeleteStatus.UNLISTED
    assert original.status is DeleteStatus.DELETED


async def test_oversize_attachment_is_refused_before_the_download_finishes(
    host_emu: HostEmulator, storage: Path | str
) -> None:
    big = samples.png(pad_to=24 << 20)  # larger than loopback socket buffers can absorb
    url = host_emu.add_blob("big.png", big)
    declared = SourceRef("big.png", url=url, declared_size=len(big))
    lying = SourceRef("big2.png", url=host_emu.add_blob("big2.png", big), declared_size=1000)
    async with service_for(host_emu, storage, max_bytes=1 << 20) as h:
        [by_declaration] = await h.service.rehost(request("ann", declared))
        [by_stream] = await h.service.rehost(request("ann", lying))
    await host_emu.wait_downloads()
    assert by_declaration.error is not None and "the limit is 1 MB" in str(by_declaration.error)
    assert host_emu.bytes_served(url) == 0
    assert by_stream.error is not None and "the limit is 1 MB" in str(by_stream.error)
    assert host_emu.bytes_served("big2.png") < len(big)
    assert host_emu.uploads == []


async def test_a_non_image_named_png_is_refused(
    host_emu: HostEmulator, storage: Path | str
) -> None:
    ref = blob(host_emu, "invoice.png", b"%PDF-1.4\n" + b"x" * 5000)
    async with service_for(host_emu, storage) as h:
        [result] = await h.service.rehost(request("ann", ref))
        stats = await h.store.stats()
    assert result.error is not None and "not a supported image" in str(result.error)
    assert host_emu.uploads == []
    assert stats["failures"] == 1


async def test_large_files_spool_to_disk_and_are_cleaned_up(
    host_emu: HostEmulator, tmp_path: Path
) -> None:
    spool = tmp_path / "spool"
    spool.mkdir()
    data = samples.png(pad_to=600_000)
    async with service_for(
        host_emu, tmp_path / "r.db", spool_threshold=64 << 10, spool_dir=spool
    ) as h:
        [result] = await h.service.rehost(request("ann", blob(host_emu, "a.png", data)))
    assert result.upload is not None
    assert host_emu.images[result.upload.host_image_id].data == data
    assert list(spool.iterdir()) == []


async def test_the_per_user_rate_limit_refuses_plainly(
    host_emu: HostEmulator, storage: Path | str
) -> None:
    refs = [blob(host_emu, f"{i}.png", samples.png(i + 1, 1)) for i in range(3)]
    async with service_for(host_emu, storage, rate_limit=2) as h:
        results = await h.service.rehost(request("ann", *refs))
        [other_user] = await h.service.rehost(request("bob", refs[2]))
    assert [r.ok for r in results] == [True, True, False]
    assert results[2].error is not None and "try again in" in str(results[2].error)
    assert other_user.ok
    assert len(host_emu.uploads) == 3


async def test_host_failures_come_back_as_results(
    host_emu: HostEmulator, storage: Path | str
) -> None:
    from sandbox.hostemu import Fault

    host_emu.script(Fault("status", status=503), times=10)
    async with service_for(host_emu, storage) as h:
        [result] = await h.service.rehost(request("ann", blob(host_emu, "a.png", samples.png())))
        jobs = await h.store.db.fetchval("select count(*) from jobs where state = 'pending'")
    assert not result.ok
    assert str(result.error) == "chev is having trouble (HTTP 503)"
    assert jobs == 0


async def test_the_sweep_marks_expired_uploads(host_emu: HostEmulator, storage: Path | str) -> None:
    from datetime import timedelta

    from bot.store import now_utc

    async with service_for(host_emu, storage) as h:
        [result] = await h.service.rehost(
            request(
                "ann",
                blob(host_emu, "a.png", samples.png()),
                expiration=Duration(seconds=300),
                use_default_expiration=False,
            )
        )
        assert result.upload is not None and result.upload.expires_at is not None
        assert await h.service.library.sweep_expired() == 0
        later = now_utc() + timedelta(minutes=6)
        assert await h.store.expire_due(later) == 1
        assert await h.service.library.live_uploads("test", "ann") == []


@pytest.mark.parametrize("auto", [True, False])
async def test_chat_settings_round_trip(
    host_emu: HostEmulator, storage: Path | str, auto: bool
) -> None:
    async with service_for(host_emu, storage) as h:
        await h.service.library.set_auto_rehost("test", "c", auto, Duration(seconds=3600))
        settings = await h.service.library.chat_settings("test", "c")
        chats = await h.store.auto_rehost_chats("test")
    assert settings.auto_rehost is auto and settings.default_expiration == "1h"
    assert chats == ({"c"} if auto else set())


async def test_uploads_run_at_most_max_concurrency_at_once(tmp_path: Path) -> None:
    import httpx

    from bot.fetch import Fetcher
    from bot.hosts.chevereto import CheveretoClient
    from bot.service import RehostService
    from bot.store import Store
    from bot.uploader import Uploader
    from tests.conftest import ALL_KEYS, CHEV_KEY

    class CountingClient(CheveretoClient):
        """The real client, counting how many of its uploads are in flight."""

        in_flight = 0
        most = 0

        async def upload(self, *args, **kwargs):  # type: ignore[no-untyped-def]
            CountingClient.in_flight += 1
            CountingClient.most = max(CountingClient.most, CountingClient.in_flight)
            try:
                return await super().upload(*args, **kwargs)
            finally:
                CountingClient.in_flight -= 1

    async with HostEmulator(api_keys=ALL_KEYS, latency=0.1) as emu, httpx.AsyncClient() as http:
        client = CountingClient("chev", emu.chevereto_endpoint, CHEV_KEY, http, max_bytes=1 << 20)
        service = RehostService(
            await Store.open(tmp_path / "r.db"),
            Uploader([client]),
            Fetcher(http, max_bytes=1 << 20),
            max_concurrency=3,
        )
        refs = [blob(emu, f"{i}.png", samples.png(i + 1, 2)) for i in range(8)]
        results = await service.rehost(request("ann", *refs, message_id="m-5"))
    assert all(r.ok for r in results)
    assert CountingClient.most == 3
    assert {r.upload.message_id for r in results if r.upload} == {"m-5"}


async def test_auto_rehost_expiry_can_be_kept_changed_or_set_to_never(
    host_emu: HostEmulator, storage: Path | str
) -> None:
    async with service_for(host_emu, storage) as h:
        await h.service.library.set_auto_rehost("test", "c", True, Duration(seconds=86400))
        kept = await h.service.library.set_auto_rehost("test", "c", False)
        assert kept.default_expiration == "1d"
        never = await h.service.library.set_auto_rehost("test", "c", True, None)
        assert never.default_expiration == "never"
        h.service.default_expiration = Duration(seconds=3600)  # the chat's "never" wins
        data = samples.png(9, 9)
        [result] = await h.service.rehost(request("ann", blob(host_emu, "a.png", data), chat="c"))
    assert result.upload is not None and result.upload.expires_at is None
    assert "expiration" not in host_emu.uploads[0].form


async def test_a_known_source_key_is_reused_without_downloading_again(
    host_emu: HostEmulator, storage: Path | str
) -> None:
    data = samples.png(10, 10)
    first_url, again_url = host_emu.add_blob("a.png", data), host_emu.add_blob("b.png", data)
    key = "telegram:AgADuw4AAi"
    async with service_for(host_emu, storage) as h:
        [first] = await h.service.rehost(
            request("ann", SourceRef("a.png", url=first_url, source_key=key))
        )
        [again] = await h.service.rehost(
            request("ann", SourceRef("b.png", url=again_url, source_key=key))
        )
        [other_key] = await h.service.rehost(
            request("ann", SourceRef("c.png", url=again_url, source_key="telegram:other"))
        )
    await host_emu.wait_downloads()
    assert again.dedup and again.upload == first.upload
    assert host_emu.bytes_served(again_url) == len(data), "only the third request downloaded"
    assert other_key.dedup, "a new key still falls back to the sha256"
    assert len(host_emu.uploads) == 1


async def test_a_rehost_costs_two_write_transactions_on_sqlite(
    host_emu: HostEmulator, tmp_path: Path
) -> None:
    """One records the request (already claimed by its caller), one records the upload
    with the job's end; everything else only reads."""
    urls = [blob(host_emu, f"{i}.png", samples.png(90 + i, 4)) for i in range(6)]
    async with service_for(host_emu, tmp_path / "r.db") as h:
        await h.service.rehost(request("ann", urls[0]))  # the first one sets things up
        db = h.store.db
        assert isinstance(db, SQLiteDatabase)
        statements: list[str] = []
        db.trace = lambda sql, params: statements.append(sql)
        before = db.write_transactions
        for index, ref in enumerate(urls[1:]):
            [result] = await h.service.rehost(request(f"user-{index}", ref))
            assert result.ok
        transactions = db.write_transactions - before
    # The counter agrees with the statements themselves.
    writes = ("insert", "update", "delete")
    inside, seen = False, 0
    for sql in statements:
        if sql == "BEGIN IMMEDIATE":
            inside, seen = True, seen + 1
        elif sql == "COMMIT":
            inside = False
        elif sql.split()[0].lower() in writes and not inside:
            seen += 1  # a write on its own is a transaction of its own
    assert transactions == seen > 0
    assert transactions / (len(urls) - 1) <= 2
