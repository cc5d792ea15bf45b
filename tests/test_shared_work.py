"""Work shared by several processes over one database: each "process" here is a core of
its own (its own connections), as separate processes would have, on both engines.

What must hold across them: the same bytes upload once, the per-user limit counts every
process's images, a delete is done once, host cooldowns are seen by all, identifies are
paced per bucket, and sharded Discord gateways each take their own guilds' messages.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

from adapters.discord.bot import DiscordAdapter, Shards
from adapters.discord.identify import IdentifyGate
from bot.app import Core, open_core
from bot.config import Config, parse_config
from bot.cooldowns import Cooldowns
from bot.deletion import DeleteStatus
from bot.requests import RehostRequest, SourceRef
from bot.store import Store
from sandbox import samples
from sandbox.discord_api import DiscordEmulator
from sandbox.hostemu import HostEmulator
from tests.conftest import CHEV_KEY, unfinished
from tests.service_harness import Harness, service_for

APP_ID = 1_300_000_000_000_000_001
ANN = 1_300_000_000_000_000_201


def request(owner: str, *urls: str) -> RehostRequest:
    sources = [SourceRef(f"{i}.png", url=url) for i, url in enumerate(urls)]
    return RehostRequest("test", f"chat-{owner}", owner, sources)


@asynccontextmanager
async def processes(
    count: int, host_emu: HostEmulator, storage: Path | str, **options: Any
) -> AsyncIterator[list[Harness]]:
    """``count`` services over the same database, as ``count`` processes would run."""
    async with AsyncExitStack() as stack:
        yield [
            await stack.enter_async_context(service_for(host_emu, storage, **options))
            for _ in range(count)
        ]


async def test_the_same_bytes_in_two_processes_at_once_upload_once(
    host_emu: HostEmulator, storage: Path | str
) -> None:
    host_emu.latency = 0.3  # the first upload is still on its way when the second looks
    url = host_emu.add_blob("same.png", samples.png(41, 41))
    async with processes(2, host_emu, storage) as (one, two):
        first, second = await asyncio.gather(
            one.service.rehost(request("ann", url)), two.service.rehost(request("bob", url))
        )
    assert len(host_emu.uploads) == 1, "one upload for both"
    [a], [b] = first, second
    assert a.ok and b.ok and a.upload is not None and b.upload is not None
    assert a.upload.viewer_url == b.upload.viewer_url
    assert sorted([a.dedup, b.dedup]) == [False, True]
    reused = b.upload if b.dedup else a.upload
    assert reused.delete_url is None, "the other owner never gets the first one's delete link"


async def test_the_rate_limit_counts_every_processs_images(
    host_emu: HostEmulator, storage: Path | str
) -> None:
    urls = [host_emu.add_blob(f"{i}.png", samples.png(50 + i, 3)) for i in range(6)]
    async with processes(2, host_emu, storage, rate_limit=4) as (one, two):
        results = await asyncio.gather(
            one.service.rehost(request("ann", *urls[:3])),
            two.service.rehost(request("ann", *urls[3:])),
        )
    flat = [result for batch in results for result in batch]
    refused = [r for r in flat if not r.ok]
    assert sum(r.ok for r in flat) == 4 and len(refused) == 2
    assert all(r.error and "try again in" in str(r.error) for r in refused), "each gets its reply"


async def test_a_delete_from_two_processes_at_once_is_done_once(
    host_emu: HostEmulator, storage: Path | str
) -> None:
    url = host_emu.add_blob("gone.png", samples.png(61, 3))
    async with processes(2, host_emu, storage) as (one, two):
        [made] = await one.service.rehost(request("ann", url))
        assert made.upload is not None
        outcomes = await asyncio.gather(
            one.deleter.delete(made.upload.id, "test", "ann"),
            two.deleter.delete(made.upload.id, "test", "ann"),
        )
        record = await two.store.upload(made.upload.id)
    statuses = sorted(outcome.status.value for outcome in outcomes)
    assert statuses == sorted([DeleteStatus.DELETED.value, DeleteStatus.ALREADY_GONE.value])
    assert record is not None and record.state == "deleted"
    assert [image.deleted for image in host_emu.images.values()] == [True]


async def test_a_host_cooling_down_is_left_alone_by_every_process(storage: Path | str) -> None:
    async with Store.opened(storage) as one, Store.opened(storage) as two:
        await Cooldowns(one).cool("chev", 60.0, "flooding")
        assert await Cooldowns(two).remaining("chev") > 55
        assert "chev" in await Cooldowns(two).active()


async def test_identifies_take_turns_per_bucket_across_processes(storage: Path | str) -> None:
    now = [1000.0]

    def clock() -> float:
        return now[0]

    async with Store.opened(storage) as one, Store.opened(storage) as two:
        first = IdentifyGate(one.db, max_concurrency=2, interval=5.0, clock=clock)
        second = IdentifyGate(two.db, max_concurrency=2, interval=5.0, clock=clock)
        assert await first._take_turn(first.bucket(0)) == 0
        assert await second._take_turn(second.bucket(1)) == 0, "another bucket goes at once"
        assert await second._take_turn(second.bucket(2)) == pytest.approx(5.0)
        now[0] += 5.0
        assert await second._take_turn(second.bucket(2)) == 0
        assert await first._take_turn(first.bucket(0)) == pytest.approx(5.0)


# --- Discord shards in separate processes ------------------------------------------------


def discord_config(
    tmp_path: Path, host_emu: HostEmulator, dc: DiscordEmulator, url: str, channels: list[int]
) -> Config:
    raw = {
        "upload": {"hosts": ["chev"], "retry_backoff": 0.01},
        "hosts": {
            "chev": {
                "dialect": "chevereto",
                "endpoint": host_emu.chevereto_endpoint,
                "api_key": CHEV_KEY,
            }
        },
        "storage": {"url": url, "lease_seconds": 1.0},
        "discord": {
            "token": dc.token,
            "auto_rehost_channels": channels,
            "api_base_url": dc.api_base,
            "gateway_url": dc.gateway_url,
        },
    }
    return parse_config(raw, base_dir=tmp_path, environ={})


@asynccontextmanager
async def discord_process(
    config: Config, **options: Any
) -> AsyncIterator[tuple[Core, DiscordAdapter]]:
    assert config.discord is not None
    async with open_core(config) as core:
        adapter = DiscordAdapter(core, config.discord, guild_ready_timeout=0.05, **options)
        await adapter.start()
        try:
            yield core, adapter
        finally:
            await adapter.stop()


def answers(dc: DiscordEmulator, channel: int) -> list[dict[str, Any]]:
    return [m for m in dc.channel_messages(channel) if "Rehosted" in m["content"]]


async def settled(core: Core, timeout: float = 20.0) -> None:
    """Until no job, batch or answer is left to do (a duplicate would be one)."""
    async with asyncio.timeout(timeout):
        while await unfinished(core.store):
            await asyncio.sleep(0.02)


async def until(condition: Callable[[], bool], timeout: float = 20.0) -> None:
    async with asyncio.timeout(timeout):
        while not condition():
            await asyncio.sleep(0.02)


async def test_two_shard_processes_each_take_their_own_guilds(
    tmp_path: Path, host_emu: HostEmulator, postgres_url: str
) -> None:
    async with DiscordEmulator(application_id=APP_ID, identify_interval=0.5) as dc:
        dc.add_user(ANN, "ann")
        guilds = [dc.guild_id_on_shard(shard, 2) for shard in (0, 1)]
        channels = [guild + 1 for guild in guilds]
        for guild, channel in zip(guilds, channels, strict=True):
            dc.add_guild(guild, owner_id=ANN, channels=[channel])
        config = discord_config(tmp_path, host_emu, dc, postgres_url, channels)
        async with (
            discord_process(config, work=False, shards=Shards((0,), 2), identify_interval=0.5),
            discord_process(config, work=False, shards=Shards((1,), 2), identify_interval=0.5),
            discord_process(config, intake=False) as (worker, _),
        ):
            posted = []
            for round_ in range(3):
                for guild, channel in zip(guilds, channels, strict=True):
                    shade = 10 * round_ + guild % 7
                    photo = dc.add_attachment(
                        samples.png(3, 2, (shade, round_, 90)), "a.png", "image/png",
                        channel_id=channel,
                    )  # fmt: skip
                    message = await dc.send_message(channel, ANN, "", [photo], guild)
                    posted.append((int(message["id"]), guild))
            await until(lambda: all(len(answers(dc, c)) == 3 for c in channels))
            await settled(worker)
    created = [d for d in dc.dispatches("MESSAGE_CREATE") if d.guild_id in guilds]
    by_message: dict[int | None, list[tuple[int, int]]] = {}
    for dispatched in created:
        by_message.setdefault(dispatched.object_id, []).append(dispatched.shard)
    user_messages = {message_id for message_id, _ in posted}
    assert {k: v for k, v in by_message.items() if k in user_messages} == {
        message_id: [(dc.shard_of(guild, 2), 2)] for message_id, guild in posted
    }, "each guild's messages went to its own shard's process, once"
    for channel in channels:
        replies = answers(dc, channel)
        assert len(replies) == 3, "every message answered exactly once"
        assert len({m["message_reference"]["message_id"] for m in replies}) == 3
    accepted = [r for r in dc.identify_log if r.accepted]
    assert sorted(r.shard for r in accepted if r.shard is not None) == [(0, 2), (1, 2)]
    syncs = [c for c in dc.calls if c.method == "PUT" and c.path.endswith("/commands")]
    assert len(syncs) == 1, "the commands are synced once, by the process with shard 0"
