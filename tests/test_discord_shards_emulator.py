"""The Discord emulator serves shards as Discord's gateway does, to real discord.py clients."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import discord
import pytest

from sandbox.discord_api import (
    DiscordEmulator,
    IdentifyRecord,
    RestCall,
    discord_endpoints,
    running_client,
)

APP_ID = 1_300_000_000_000_000_001
ANN = 1_300_000_000_000_000_201
CHANNELS = [1_300_000_000_000_000_100 + i for i in range(8)]
INTERVAL = 1.0  # the identify interval of the pacing tests (Discord's is 5 s)
Json = dict[str, Any]


class _Recording:
    """What reaches a client, and a shorter wait before a repeated IDENTIFY (discord.py's
    own ``before_identify_hook`` waits 5 s, as long as Discord's identify interval)."""

    def __init__(self, *, identify_delay: float = 5.0, **options: Any) -> None:
        intents = discord.Intents.default()
        intents.message_content = True
        super().__init__(  # type: ignore[call-arg]
            intents=intents, guild_ready_timeout=0.05, enable_debug_events=True, **options
        )
        self.identify_delay = identify_delay
        self.messages: asyncio.Queue[discord.Message] = asyncio.Queue()
        self.interactions: asyncio.Queue[discord.Interaction] = asyncio.Queue()
        self.readies: list[Json] = []

    async def before_identify_hook(self, shard_id: int | None, *, initial: bool = False) -> None:
        if not initial:
            await asyncio.sleep(self.identify_delay)

    async def on_message(self, message: discord.Message) -> None:
        await self.messages.put(message)

    async def on_interaction(self, interaction: discord.Interaction) -> None:
        await self.interactions.put(interaction)

    async def on_socket_raw_receive(self, raw: str) -> None:
        frame = json.loads(raw)
        if frame.get("t") == "READY":
            self.readies.append(frame["d"])


class ShardBot(_Recording, discord.Client):
    pass


class AutoBot(_Recording, discord.AutoShardedClient):
    pass


@pytest.fixture
async def dc() -> AsyncIterator[DiscordEmulator]:
    """Two shards' worth of guilds; every identify in its own bucket."""
    async with DiscordEmulator(application_id=APP_ID, max_concurrency=2) as emulator:
        emulator.add_user(ANN, "ann")
        yield emulator
        assert emulator.internal_errors == []


def _add_guilds(dc: DiscordEmulator, shards: list[tuple[int, int]]) -> list[int]:
    """A guild on each ``(shard_id, shard_count)``; the n-th guild of the emulator has
    the channel ``CHANNELS[n]``."""
    ids = []
    for shard_id, shard_count in shards:
        n = len(dc.world.guilds)
        guild_id = dc.guild_id_on_shard(shard_id, shard_count)
        dc.add_guild(guild_id, f"guild-{n}", owner_id=ANN, channels=[CHANNELS[n]])
        ids.append(guild_id)
    return ids


async def _next(queue: asyncio.Queue[Any]) -> Any:
    return await asyncio.wait_for(queue.get(), 5)


def _routes(dc: DiscordEmulator, event: str) -> list[tuple[int | None, tuple[int, int]]]:
    return [(d.object_id, d.shard) for d in dc.dispatches(event)]


def _nobody_identified_too_fast(
    log: list[IdentifyRecord], interval: float, max_concurrency: int = 1
) -> None:
    """Accepted IDENTIFYs of one bucket (``shard_id % max_concurrency``) lie at least
    ``interval`` apart."""
    last: dict[int, float] = {}
    for record in log:
        if record.accepted and record.shard is not None:
            bucket = record.shard[0] % max_concurrency
            if bucket in last:
                assert record.at - last[bucket] >= interval, log
            last[bucket] = record.at


def test_guild_ids_fall_on_the_chosen_shard() -> None:
    dc = DiscordEmulator()
    ids = [dc.guild_id_on_shard(shard, 3) for shard in (2, 0, 1, 1, 2)]
    assert [dc.shard_of(i, 3) for i in ids] == [2, 0, 1, 1, 2]
    assert ids == sorted(set(ids)) and dc.world.ids.next() > ids[-1]
    with pytest.raises(ValueError):
        dc.guild_id_on_shard(3, 3)


async def test_two_sharded_clients_each_get_only_their_guilds_and_dms_go_to_shard_0(
    dc: DiscordEmulator,
) -> None:
    g0, g1 = _add_guilds(dc, [(0, 2), (1, 2)])
    async with (
        running_client(ShardBot(shard_id=0, shard_count=2), dc) as zero,
        running_client(ShardBot(shard_id=1, shard_count=2), dc) as one,
    ):
        # Both identified at once: shards 0 and 1 are in different buckets.
        first, second = dc.identify_log
        assert [(r.shard, r.sharded, r.accepted) for r in (first, second)] == [
            ((0, 2), True, True),
            ((1, 2), True, True),
        ]
        assert second.at - first.at < 5.0
        assert [(r["shard"], r["guilds"]) for r in zero.readies + one.readies] == [
            ([0, 2], [{"id": str(g0), "unavailable": True}]),
            ([1, 2], [{"id": str(g1), "unavailable": True}]),
        ]
        assert [g.id for g in zero.guilds] == [g0] and [g.id for g in one.guilds] == [g1]

        for_one = await dc.send_message(CHANNELS[1], ANN, "for one", guild_id=g1)
        direct = await dc.send_message(None, ANN, "direct")
        for_zero = await dc.send_message(CHANNELS[0], ANN, "for zero", guild_id=g0)
        last = await dc.send_message(CHANNELS[1], ANN, "last", guild_id=g1)
        assert [(await _next(zero.messages)).content for _ in range(2)] == ["direct", "for zero"]
        # One connection delivers in order: "last" came after anything sent to one before.
        assert [(await _next(one.messages)).content for _ in range(2)] == ["for one", "last"]
        assert one.messages.empty()
        ids = [int(m["id"]) for m in (for_one, direct, for_zero, last)]
        assert _routes(dc, "MESSAGE_CREATE") == [
            (ids[0], (1, 2)),
            (ids[1], (0, 2)),
            (ids[2], (0, 2)),
            (ids[3], (1, 2)),
        ]

        # Interactions follow the guild, DM ones go to shard 0.
        command = {"name": "ping", "description": "Ping", "type": 1}
        await zero.http.upsert_global_command(APP_ID, command)  # type: ignore[arg-type]
        in_guild = await dc.slash_command("ping", ANN, CHANNELS[1], g1)
        in_dm = await dc.slash_command("ping", ANN, None)
        assert (await _next(one.interactions)).id == int(in_guild["id"])
        assert (await _next(zero.interactions)).id == int(in_dm["id"])
        assert _routes(dc, "INTERACTION_CREATE") == [
            (int(in_guild["id"]), (1, 2)),
            (int(in_dm["id"]), (0, 2)),
        ]

        # Threads, and a guild the bot joins, reach only their shard.
        thread = await dc.start_thread(CHANNELS[0], ANN, "chat")
        created = await zero.wait_for("thread_create", timeout=5)
        assert created.id == thread.id and _routes(dc, "THREAD_CREATE") == [(thread.id, (0, 2))]
        (later,) = _add_guilds(dc, [(1, 2)])
        joined = await one.wait_for("guild_join", timeout=5)
        await dc.drain()
        assert joined.id == later and zero.get_guild(later) is None
        assert [r for r in _routes(dc, "GUILD_CREATE") if r[0] == later] == [(later, (1, 2))]


async def test_an_auto_sharded_client_takes_the_recommended_count_and_is_paced() -> None:
    async with DiscordEmulator(
        application_id=APP_ID, guilds_per_shard=2, identify_interval=INTERVAL
    ) as dc:
        dc.add_user(ANN, "ann")
        guilds = _add_guilds(dc, [(0, 2), (1, 2), (0, 2)])
        async with running_client(AutoBot(identify_delay=INTERVAL + 0.1), dc) as bot:
            assert bot.shard_count == 2
            assert [c.path for c in dc.calls if c.path.startswith("/gateway")] == ["/gateway/bot"]
            log = dc.identify_log
            assert [(r.shard, r.accepted) for r in log] == [((0, 2), True), ((1, 2), True)]
            _nobody_identified_too_fast(log, INTERVAL)
            assert sorted(r["shard"] for r in bot.readies) == [[0, 2], [1, 2]]
            assert sorted(g.id for g in bot.guilds) == sorted(guilds)

            for i, guild_id in enumerate(guilds):
                await dc.send_message(CHANNELS[i], ANN, f"in {i}", guild_id=guild_id)
            received = [await _next(bot.messages) for _ in guilds]
            assert sorted((m.content, m.guild.shard_id) for m in received if m.guild) == [
                ("in 0", 0),
                ("in 1", 1),
                ("in 2", 0),
            ]
            routed = [(d.guild_id, d.shard) for d in dc.dispatches("MESSAGE_CREATE")]
            assert routed == [(guilds[0], (0, 2)), (guilds[1], (1, 2)), (guilds[2], (0, 2))]


async def test_an_identify_too_early_in_its_bucket_is_refused_and_discord_py_retries() -> None:
    async with DiscordEmulator(application_id=APP_ID, identify_interval=INTERVAL) as dc:
        dc.add_user(ANN, "ann")
        _add_guilds(dc, [(0, 2), (1, 2)])
        async with (
            running_client(ShardBot(shard_id=0, shard_count=2), dc),
            # Starts at once: an initial IDENTIFY, which discord.py does not delay.
            running_client(ShardBot(shard_id=1, shard_count=2, identify_delay=INTERVAL), dc) as one,
        ):
            log = dc.identify_log
            assert [(r.shard, r.refusal) for r in log] == [
                ((0, 2), None),
                ((1, 2), "too early"),
                ((1, 2), None),
            ]
            assert log[1].at - log[0].at < INTERVAL <= log[2].at - log[0].at
            _nobody_identified_too_fast(log, INTERVAL)
            # The refused connection got INVALID_SESSION; discord.py opened a new one.
            assert len(dc.gateway_queries) == 3
            assert [r["shard"] for r in one.readies] == [[1, 2]]
            assert len(dc.identifies) == 2  # accepted payloads only


async def test_an_unsharded_client_is_not_paced_unless_asked() -> None:
    interval = 2.0  # far longer than a client takes to get ready and stop
    for paced in (False, True):
        async with DiscordEmulator(
            application_id=APP_ID, identify_interval=interval, pace_unsharded=paced
        ) as dc:
            for _ in range(2):
                async with running_client(ShardBot(identify_delay=interval), dc) as bot:
                    assert "shard" not in bot.readies[-1]
            refusals = [(r.shard, r.sharded, r.refusal) for r in dc.identify_log]
            if paced:
                assert refusals == [
                    ((0, 1), False, None),
                    ((0, 1), False, "too early"),
                    ((0, 1), False, None),
                ]
            else:
                assert refusals == [((0, 1), False, None)] * 2


@pytest.mark.parametrize(("shard_id", "shard_count"), [(2, 2), (0, 0), (-1, 2)])
async def test_an_invalid_shard_is_closed_with_4010(
    dc: DiscordEmulator, shard_id: int, shard_count: int
) -> None:
    with pytest.raises(discord.ConnectionClosed) as closed:
        async with running_client(ShardBot(shard_id=shard_id, shard_count=shard_count), dc):
            pass
    assert closed.value.code == 4010  # discord.py keeps no close reason
    [record] = dc.identify_log
    assert (record.shard, record.sharded, record.accepted) == (None, True, False)


@pytest.mark.parametrize("shard", [["0", 2], [True, 2], [0], [0, 2, 1], {"id": 0}])
async def test_a_malformed_shard_is_closed_with_4010(dc: DiscordEmulator, shard: Any) -> None:
    assert await _identify_raw(dc, shard) == (4010, "Invalid shard")


async def _identify_raw(dc: DiscordEmulator, shard: Any) -> tuple[int, str]:
    """IDENTIFY over a bare websocket; the close code and reason it gets."""
    identify = {"token": dc.token, "intents": 0, "properties": {}, "shard": shard}
    async with aiohttp.ClientSession() as http, http.ws_connect(dc.gateway_url) as ws:
        assert (await ws.receive_json())["op"] == 10
        await ws.send_json({"op": 2, "d": identify})
        closing = await ws.receive()
    assert closing.type is aiohttp.WSMsgType.CLOSE, closing
    return int(closing.data), str(closing.extra)


async def test_too_many_guilds_for_one_shard_is_closed_with_4011() -> None:
    # No identify pacing here: the refused IDENTIFY took bucket 0's slot.
    async with DiscordEmulator(
        application_id=APP_ID, max_guilds_per_shard=2, identify_interval=0.0
    ) as dc:
        dc.add_user(ANN, "ann")
        guilds = _add_guilds(dc, [(0, 2), (1, 2), (0, 2)])
        with pytest.raises(discord.ConnectionClosed) as closed:
            async with running_client(ShardBot(), dc):
                pass
        assert closed.value.code == 4011  # discord.py keeps no close reason
        assert await _identify_raw(dc, None) == (4011, "Sharding required")
        # Two shards hold two guilds and one.
        async with running_client(ShardBot(shard_id=0, shard_count=2), dc) as zero:
            assert sorted(g.id for g in zero.guilds) == sorted([guilds[0], guilds[2]])
        assert [(r.shard, r.refusal) for r in dc.identify_log] == [
            ((0, 1), "Sharding required"),
            ((0, 1), "Sharding required"),
            ((0, 2), None),
        ]


async def test_gateway_bot_recommends_shards_and_counts_session_starts() -> None:
    async with DiscordEmulator(
        application_id=APP_ID, guilds_per_shard=2, max_concurrency=4, session_start_total=20
    ) as dc:
        dc.add_user(ANN, "ann")
        client = discord.AutoShardedClient(intents=discord.Intents.default())
        with discord_endpoints(dc.api_base, dc.gateway_url):
            await client.login(dc.token)
            try:
                shards, url, limits = await client.http.get_bot_gateway()
                assert (shards, url) == (1, dc.gateway_url)  # no guild yet: still one
                assert (limits["total"], limits["remaining"]) == (20, 20)
                assert (limits["max_concurrency"], limits["reset_after"]) == (4, 86_400_000)
                _add_guilds(dc, [(0, 1)] * 5)
                assert (await client.http.get_bot_gateway())[0] == 3  # ceil(5 / 2)
                async with running_client(ShardBot(shard_id=0, shard_count=3), dc):
                    pass
                started = await client.fetch_session_start_limits()
                assert (started.total, started.remaining) == (20, 19)
                assert 0 < started.reset_after <= 86_400_000
                assert started.max_concurrency == 4
            finally:
                await client.close()
        calls: list[RestCall] = [c for c in dc.calls if c.path == "/gateway/bot"]
        assert [c.status for c in calls] == [200] * 3
