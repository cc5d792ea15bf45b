"""A community's daily quotas: images per member and bytes per community, enforced in the
database at admission (so across processes), each refused image answered with when the
quota frees up; on both engines."""

from __future__ import annotations

import asyncio
import html
import math
import re
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bot import metrics
from bot.app import open_core
from bot.community import Communities
from bot.i18n import format_size
from bot.intake import Intake
from bot.presenting import error_text
from bot.queue import JobQueue
from bot.quotas import WINDOW, wait_phrase
from bot.ratelimit import RateLimit
from bot.requests import RehostRequest, SourceRef
from bot.store import Store, to_text
from sandbox import samples
from sandbox.discord_api import DiscordEmulator, RestCall
from sandbox.hostemu import HostEmulator
from sandbox.telegram_api import SentCall, TelegramEmulator
from tests.service_harness import service_for
from tests.telegram_harness import ANN, BOB, GROUP, running_adapter, telegram_config
from tests.test_shared_work import processes

# 14:33 UTC: a quota filled now frees up at 14:33 UTC the next day.
T0 = datetime(2026, 11, 29, 14, 33, tzinfo=UTC).timestamp()
HOUR = 3600.0


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def request(
    owner: str, count: int, community: str | None = "g1", platform: str = "telegram"
) -> RehostRequest:
    sources = [SourceRef(f"{owner}-{i}.png", url=f"http://x/{owner}/{i}") for i in range(count)]
    title = None if community is None else "Photos"
    return RehostRequest(
        platform, f"chat-{community}", owner, sources, chat_title=title, community_id=community
    )


def refusals(reason: str) -> float:
    """rehost_refused_total for Telegram and ``reason``, as /metrics shows it."""
    value = metrics.REGISTRY.get_sample_value(
        "rehost_refused_total", {"platform": "telegram", "reason": reason}
    )
    return value or 0.0


async def errors(queue: JobQueue, batch: str) -> list[str | None]:
    """Each job's error as an English reader sees it."""
    return [
        error_text(row["error"]) if row["error"] else None for row in await queue.results(batch)
    ]


async def test_a_member_over_the_images_quota_is_told_when_it_frees_up(
    storage: Path | str,
) -> None:
    clock = Clock(T0)
    async with Store.opened(storage) as store:
        queue = JobQueue(store, clock)
        intake = Intake(store, queue, RateLimit(100, 600.0), None)
        await Communities(store.db).change("telegram", "g1", "1", "Ann", quota_images_per_member=2)
        assert await errors(queue, await intake.submit(request("ann", 1))) == [None]
        clock.now = T0 + 1 * HOUR + 47 * 60
        refused = "this group's daily quota of 2 images per member is used up;"
        assert await errors(queue, await intake.submit(request("ann", 3))) == [
            None,
            f"{refused} it frees up in 22 h 13 min (at 14:33 UTC)",
            f"{refused} it frees up in 22 h 13 min (at 14:33 UTC)",
        ], "the first image counted frees up 24 hours after it was counted"
        # Nobody else is affected: another member, Ann elsewhere, Ann in private.
        assert await errors(queue, await intake.submit(request("bob", 2))) == [None, None]
        assert await errors(queue, await intake.submit(request("ann", 1, "g2"))) == [None]
        assert await errors(queue, await intake.submit(request("ann", 1, None))) == [None]
        # A day after the first image, its slot is free again (and only it).
        clock.now = T0 + WINDOW + 1
        assert await errors(queue, await intake.submit(request("ann", 2))) == [
            None,
            f"{refused} it frees up in 1 h 47 min (at 16:20 UTC)",
        ]
        counted = await store.db.fetchval(
            "select count(*) from jobs where community_id = 'g1' and owner_id = 'ann'"
            " and counted_at is not null"
        )
        assert counted == 3, "refused images are not counted"


async def test_an_album_asked_for_later_is_held_to_the_quota_too(storage: Path | str) -> None:
    async with Store.opened(storage) as store:
        queue = JobQueue(store, Clock(T0))
        intake = Intake(store, queue, RateLimit(2, 600.0), None)
        await Communities(store.db).change("telegram", "g1", "1", "Ann", quota_images_per_member=3)

        def item(n: int) -> RehostRequest:
            source = SourceRef(f"{n}.png", url="http://x", item_key=str(n))
            return RehostRequest(
                "telegram", "-1", "ann", [source], key="album", chat_title="G", community_id="g1"
            )

        for n in range(4):
            await intake.submit(item(n), wanted=False)
        await intake.submit(item(4))  # the caption asking for it
        found = await errors(queue, "album")
    assert found[:2] == [None, None]
    assert found[2] is not None and "try again in 10 minutes" in found[2], "the rate limit"
    quota = "this group's daily quota of 3 images per member is used up;"
    assert found[3:] == [f"{quota} it frees up in 24 h (at 14:33 UTC)"] * 2


async def test_on_discord_the_time_is_a_discord_timestamp(storage: Path | str) -> None:
    clock = Clock(T0)
    async with Store.opened(storage) as store:
        queue = JobQueue(store, clock)
        intake = Intake(store, queue, RateLimit(100, 600.0), None)
        await Communities(store.db).change("discord", "g1", "1", "Ann", quota_images_per_member=1)
        batch = await intake.submit(request("ann", 2, platform="discord"))
        frees = int(T0 + WINDOW)
        assert await errors(queue, batch) == [
            None,
            "this server's daily quota of 1 image per member is used up;"
            f" it frees up <t:{frees}:R> (at 14:33 UTC)",
        ]


async def test_the_bytes_quota_refuses_once_the_communitys_uploads_reach_it(
    storage: Path | str,
) -> None:
    clock = Clock(T0)
    async with Store.opened(storage) as store:
        queue = JobQueue(store, clock)
        intake = Intake(store, queue, RateLimit(100, 600.0), None)
        await Communities(store.db).change("telegram", "g1", "1", "Ann", quota_bytes_per_day=1000)

        async def uploaded(size: int, hours_ago: float, community: str = "g1") -> None:
            made = datetime.fromtimestamp(clock.now - hours_ago * HOUR, UTC)
            await store.add_upload(
                platform="telegram",
                owner_id="someone",
                sha256=f"{size}-{hours_ago}",
                size=size,
                host="chev",
                viewer_url="http://v",
                created_at=to_text(made),
                community_id=community,
            )

        await uploaded(700, 25)  # outside the window
        await uploaded(5000, 1, "g2")  # another community's
        await uploaded(600, 20)
        assert await errors(queue, await intake.submit(request("ann", 2))) == [None, None]
        await uploaded(300, 2)
        await uploaded(200, 1)  # 1100 bytes in the window: at the quota
        refused = "this group's daily quota of 1,000 B is used up; it frees up"
        counted = refusals("quota_bytes")
        # Below 1000 once the 600 bytes of 20 hours ago leave the window: in 4 hours.
        assert await errors(queue, await intake.submit(request("bob", 2))) == [
            f"{refused} in 4 h (at 18:33 UTC)",
            f"{refused} in 4 h (at 18:33 UTC)",
        ]
        assert refusals("quota_bytes") == counted + 2  # the operator sees them too
        assert await errors(queue, await intake.submit(request("ann", 1, None))) == [None]


async def test_a_quota_counts_every_processs_images(
    host_emu: HostEmulator, storage: Path | str
) -> None:
    urls = [host_emu.add_blob(f"{i}.png", samples.png(70 + i, 3)) for i in range(6)]

    def asked(*some: str) -> RehostRequest:
        sources = [SourceRef(f"{i}.png", url=url) for i, url in enumerate(some)]
        return RehostRequest("test", "-5", "ann", sources, chat_title="G", community_id="-5")

    async with processes(2, host_emu, storage) as (one, two):
        await Communities(one.store.db).change("test", "-5", "1", "A", quota_images_per_member=4)
        results = await asyncio.gather(
            one.service.rehost(asked(*urls[:3])), two.service.rehost(asked(*urls[3:]))
        )
    flat = [result for batch in results for result in batch]
    refused = [r for r in flat if not r.ok]
    assert sum(r.ok for r in flat) == 4 and len(refused) == 2
    pattern = r"daily quota of 4 images per member is used up; it frees up in 2[34] h"
    assert all(r.error and re.search(pattern, str(r.error)) for r in refused), refused


async def test_the_bytes_quota_counts_what_was_uploaded(
    host_emu: HostEmulator, storage: Path | str
) -> None:
    first, second = (host_emu.add_blob(f"{i}.png", samples.png(90 + i, 5)) for i in range(2))

    def asked(url: str) -> RehostRequest:
        return RehostRequest(
            "test", "-6", "bob", [SourceRef("a.png", url=url)], chat_title="G", community_id="-6"
        )

    async with service_for(host_emu, storage) as h:
        [made] = await h.service.rehost(asked(first))
        assert made.upload is not None
        size = made.upload.size
        await Communities(h.store.db).change("test", "-6", "1", "A", quota_bytes_per_day=size)
        [refused] = await h.service.rehost(asked(second))
    assert refused.error is not None
    said = str(refused.error)
    assert said.startswith(f"this group's daily quota of {format_size(size, 'en')} is used up")
    assert re.search(r"it frees up in (23 h 59 min|24 h) \(at \d\d:\d\d UTC\)$", said)
    assert len(host_emu.uploads) == 1


async def test_an_image_that_would_pass_the_bytes_quota_is_refused_before_it_is_uploaded(
    host_emu: HostEmulator, storage: Path | str
) -> None:
    """Admitted while the community was under its quota, an image is checked again once its
    size is known: one that does not fit is not uploaded, one that does still is."""
    big, small = samples.png(200, 200), samples.png(2, 2)
    urls = [host_emu.add_blob(name, data) for name, data in (("big.png", big), ("s.png", small))]
    first = host_emu.add_blob("first.png", samples.png(91, 5))

    def asked(url: str, group: str = "-7") -> RehostRequest:
        return RehostRequest(
            "test", group, "bob", [SourceRef("a.png", url=url)], chat_title="G", community_id=group
        )

    async with service_for(host_emu, storage) as h:
        [made] = await h.service.rehost(asked(first))
        assert made.upload is not None
        quota = made.upload.size + len(big) - 1  # room for the small one, not the big one
        assert len(small) < len(big) - 1
        await Communities(h.store.db).change("test", "-7", "1", "A", quota_bytes_per_day=quota)
        [refused] = await h.service.rehost(asked(urls[0]))
        [fits] = await h.service.rehost(asked(urls[1]))
        # A group with nothing uploaded yet, whose whole quota is smaller than the image.
        await Communities(h.store.db).change("test", "-8", "1", "A", quota_bytes_per_day=10)
        lone = host_emu.add_blob("lone.png", samples.png(9, 9))
        [never] = await h.service.rehost(asked(lone, "-8"))
    assert not refused.ok and fits.ok and not never.ok
    said = str(refused.error)
    assert said.startswith(f"this group's daily quota of {format_size(quota, 'en')} is used up")
    assert re.search(r"it frees up in (23 h 59 min|24 h) \(at \d\d:\d\d UTC\)$", said)
    assert str(never.error).endswith(", more than this group's daily quota of 10 B")
    assert len(host_emu.uploads) == 2  # the first image and the small one


def test_the_phrases() -> None:
    assert [wait_phrase(s) for s in (1, 60, 61, 3600, 3660, 86399)] == [
        "1 min",
        "1 min",
        "2 min",
        "1 h",
        "1 h 1 min",
        "24 h",
    ]
    sizes = (1, 12, 1000, 1536, 50 << 20, 1_500_000, 2 << 30, 3 << 29)
    assert [format_size(n, "en") for n in sizes] == [
        "1 B",
        "12 B",
        "1,000 B",
        "1.5 kB",
        "50 MB",
        "1.4 MB",
        "2 GB",
        "1,536 MB",
    ]
    assert format_size(1536, "es") == "1,5 kB" and format_size(2 << 30, "zh_Hans") == "2 GB"


async def test_a_telegram_member_over_the_groups_quota_sees_when_it_frees_up(
    tmp_path: Path, host: HostEmulator, tg: TelegramEmulator, engine: str
) -> None:
    def answer_to(sent: dict[str, Any]) -> Callable[[SentCall], bool]:
        def match(call: SentCall) -> bool:
            reply = call.params.get("reply_parameters") or {}
            return (
                call.method == "sendMessage"
                and call.ok
                and int(call.params["chat_id"]) == GROUP
                and reply.get("message_id") == sent["message_id"]
            )

        return match

    async with running_adapter(telegram_config(tmp_path, host, tg)) as adapter:
        db = adapter.core.store.db
        quota = {"quota_images_per_member": 1}
        await Communities(db).change("telegram", str(GROUP), str(ANN), "Ann", **quota)
        first = await tg.wait_for(answer_to(tg.send_photo(GROUP, BOB, samples.png(12, 12))), 10)
        refused = await tg.wait_for(answer_to(tg.send_photo(GROUP, BOB, samples.png(13, 13))), 10)
        other = await tg.wait_for(answer_to(tg.send_photo(GROUP, ANN, samples.png(14, 14))), 10)
        counted = await db.fetchval(
            "select min(counted_at) as first from jobs where owner_id = ?", (str(BOB),)
        )
    assert "Rehosted" in first.params["text"] and "Rehosted" in other.params["text"]
    frees = datetime.fromtimestamp(math.ceil((float(counted) + WINDOW) / 60) * 60, UTC)
    text = html.unescape(refused.params["text"])  # what the member reads (parse_mode HTML)
    assert "this group's daily quota of 1 image per member is used up" in text
    assert re.search(r"; it frees up in (23 h 59 min|24 h) \(at \d\d:\d\d UTC\)", text)
    assert f"(at {frees:%H:%M} UTC)" in text, "a day after Bob's first image was counted"
    assert len(host.uploads) == 2, "Bob's first image and Ann's"


def answering(channel: int, message_id: str) -> Callable[[RestCall], bool]:
    """The bot's post in ``channel`` replying to message ``message_id``."""

    def match(call: RestCall) -> bool:
        if call.method != "POST" or call.path != f"/channels/{channel}/messages":
            return False
        reference = (call.json or {}).get("message_reference") or {}
        return str(reference.get("message_id")) == message_id

    return match


async def test_on_discord_the_member_sees_a_discord_timestamp(
    tmp_path: Path, host_emu: HostEmulator
) -> None:
    from tests import test_discord_adapter as discord_test

    async with DiscordEmulator(application_id=discord_test.APP_ID) as dc:
        discord_test._populate(dc)
        config = discord_test.make_config(tmp_path, host_emu, dc)
        async with open_core(config) as core, discord_test.running(core):
            quota = {"quota_images_per_member": 1}
            guild = discord_test.GUILD
            await Communities(core.store.db).change("discord", str(guild), "1", "Ann", **quota)
            channel, cat = discord_test.AUTO, discord_test.CAT
            for shade in (30, 31):
                photo = dc.add_attachment(
                    discord_test.image(shade), f"{shade}.png", "image/png", channel_id=channel
                )
                posted = await dc.send_message(channel, cat, "", [photo], guild_id=guild)
                await dc.wait_for(answering(channel, str(posted["id"])))
            counted = await core.store.db.fetchval(
                "select min(counted_at) as first from jobs where owner_id = ?", (str(cat),)
            )
        _, refused = discord_test.public_messages(dc, channel)
        discord_test.assert_nothing_leaked(dc, host_emu)
        assert dc.internal_errors == []
    frees = math.ceil((float(counted) + WINDOW) / 60) * 60
    at = datetime.fromtimestamp(frees, UTC)
    assert "this server's daily quota of 1 image per member is used up;" in refused["content"]
    assert f"it frees up <t:{frees}:R> (at {at:%H:%M} UTC)" in refused["content"]
    assert len(host_emu.uploads) == 1
