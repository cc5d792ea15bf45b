"""A local emulator of Discord's REST API, gateway and attachment CDN, for tests.

One aiohttp server on 127.0.0.1 serves all three:

- ``/api/v10/...`` (also ``v9``): the REST routes in :mod:`sandbox.discord_rest` and
  :mod:`sandbox.discord_interactions`, answering JSON with ``Content-Type:
  application/json`` exactly (discord.py treats anything else, even with a charset, as text);
- ``/gateway``: the websocket gateway of :mod:`sandbox.discord_gateway`;
- ``/attachments/...`` and ``/media/attachments/...``: signed attachment URLs.

Point discord.py at it with :func:`sandbox.discord_client.discord_endpoints` or run a client
with :func:`sandbox.discord_client.running_client`. Tests push gateway events
(:meth:`DiscordEmulator.send_message`, :meth:`~DiscordEmulator.slash_command`, ...) and read
what the bot did (:attr:`~DiscordEmulator.calls`, :meth:`~DiscordEmulator.followups`, ...).

Shards: sessions may IDENTIFY with ``shard`` and each gets only its guilds' events (see
:mod:`sandbox.discord_gateway`); :meth:`~DiscordEmulator.guild_id_on_shard` makes guild ids
that fall on a chosen shard, :attr:`~DiscordEmulator.identify_log` and
:meth:`~DiscordEmulator.dispatches` tell who identified when and which session got what.
"""

from __future__ import annotations

import asyncio
import copy
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from aiohttp import web

from sandbox.discord_cdn import LINK_LIFETIME
from sandbox.discord_client import discord_endpoints, running_client
from sandbox.discord_gateway import Dispatched, Gateway, IdentifyRecord
from sandbox.discord_http import RestCall, RestFrontend
from sandbox.discord_interactions import (
    APPLICATION_COMMAND,
    MESSAGE_COMPONENT,
    MODAL_SUBMIT,
    command_data,
    event_channel,
    find_command,
    find_component,
    new_interaction,
    resolve_options,
)
from sandbox.discord_interactions import ROUTES as INTERACTION_ROUTES
from sandbox.discord_messages import (
    announce,
    bulk_deletable,
    create_message,
    delete_message,
    delete_messages_bulk,
    public_view,
    served_view,
)
from sandbox.discord_model import (
    ANNOUNCEMENT_THREAD,
    ATTACHMENT_IS_SPOILER,
    DEFAULT_EVERYONE,
    GUILD_ANNOUNCEMENT,
    GUILD_TEXT,
    GUILDS,
    MANAGE_MESSAGES,
    MESSAGE_CONTENT,
    POST_CHANNEL_TYPES,
    PRIVATE_THREAD,
    PUBLIC_THREAD,
    REFERENCE_FORWARD,
    Channel,
    Guild,
    Json,
    Role,
    ShardingRules,
    User,
    World,
    shard_of,
)
from sandbox.discord_rest import ROUTES as REST_ROUTES
from sandbox.lifecycle import LocalServer

__all__ = [
    "DiscordEmulator",
    "Dispatched",
    "IdentifyRecord",
    "RestCall",
    "discord_endpoints",
    "running_client",
]

DEFAULT_TOKEN = "emulator-token"
SPOILER_PREFIX = "SPOILER_"
# What a forward copies of the message it forwards (Discord's message snapshot object).
SNAPSHOT_FIELDS = (
    "type",
    "content",
    "embeds",
    "attachments",
    "timestamp",
    "edited_timestamp",
    "flags",
    "mentions",
    "mention_roles",
    "components",
)


@dataclass
class _Server:
    runner: web.AppRunner
    base_url: str
    tasks: set[asyncio.Task[None]] = field(default_factory=set)


class DiscordEmulator(LocalServer):
    """Discord's REST API + gateway + CDN for one bot application; see the module doc."""

    def __init__(
        self,
        *,
        application_id: int = 1_100_000_000_000_000_001,
        bot_user_id: int | None = None,
        bot_name: str = "rehost",
        token: str = DEFAULT_TOKEN,
        owner_id: int = 1_100_000_000_000_000_009,
        privileged_intents: int = MESSAGE_CONTENT,
        attachment_size_limit: int = 10 * 1024 * 1024,
        ack_deadline: float = 3.0,
        heartbeat_interval_ms: int = 41_250,
        fetch_unfurls: bool = False,
        attachment_url_lifetime: float = LINK_LIFETIME,
        max_concurrency: int = 1,
        identify_interval: float = 5.0,
        pace_unsharded: bool = False,
        guilds_per_shard: int = 1000,
        max_guilds_per_shard: int = 2500,
        session_start_total: int = 1000,
    ) -> None:
        """``privileged_intents``: what the developer portal allows; IDENTIFY asking for
        more is closed with 4014. ``fetch_unfurls``: really GET the links the bot posts
        without SUPPRESS_EMBEDS, as Discord's preview crawler does (else only recorded).
        ``attachment_url_lifetime``: seconds a signed attachment URL works (about a day).

        Sharding (Discord's values are the defaults): ``max_concurrency`` IDENTIFYs may
        start together, one per bucket ``shard_id % max_concurrency`` per
        ``identify_interval`` seconds; a sharded IDENTIFY sooner in its bucket gets
        INVALID_SESSION (an unsharded one only with ``pace_unsharded``).
        ``GET /gateway/bot`` recommends ceil(guilds / ``guilds_per_shard``) shards; a
        session that would hold more than ``max_guilds_per_shard`` guilds is closed with
        4011. ``session_start_total``: ``session_start_limit.total``."""
        self.world = World(
            application_id=application_id,
            bot_user_id=bot_user_id if bot_user_id is not None else application_id,
            bot_name=bot_name,
            token=token,
            owner_id=owner_id,
            privileged_intents=privileged_intents,
            attachment_size_limit=attachment_size_limit,
            ack_deadline=ack_deadline,
            attachment_url_lifetime=attachment_url_lifetime,
        )
        self.world.sharding = ShardingRules(
            guilds_per_shard=guilds_per_shard,
            max_guilds_per_shard=max_guilds_per_shard,
            max_concurrency=max_concurrency,
            identify_interval=identify_interval,
            pace_unsharded=pace_unsharded,
            session_start_total=session_start_total,
        )
        self.token = token
        self.gateway = Gateway(
            self.world, heartbeat_interval_ms=heartbeat_interval_ms, url=lambda: self.gateway_url
        )
        self.world.events = self.gateway
        self.rest = RestFrontend(self.world, [*REST_ROUTES, *INTERACTION_ROUTES])
        self._server: _Server | None = None
        self._fetch_unfurls = fetch_unfurls
        # (url, status or None when unreachable) of each preview fetch, see fetch_unfurls
        self.unfurl_statuses: list[tuple[str, int | None]] = []

    # -- lifecycle

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> None:
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_route("*", r"/api/v{version:\d+}/{tail:.*}", self.rest.handle)
        app.router.add_get("/gateway", self.gateway.handle)
        cdn = self.world.cdn.handle
        app.router.add_get("/attachments/{channel_id}/{attachment_id}/{filename}", cdn)
        app.router.add_get("/media/attachments/{channel_id}/{attachment_id}/{filename}", cdn)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, host, port)
        await site.start()
        bound = runner.addresses[0]
        self._server = _Server(runner, f"http://{host}:{bound[1]}")
        self.world.cdn.base_url = self._server.base_url
        self.world.gateway_url = self.gateway_url
        if self._fetch_unfurls:
            self.world.on_unfurl = self._spawn_unfurl

    async def close(self) -> None:
        server, self._server = self._server, None
        if server is None:
            return
        for task in server.tasks:
            task.cancel()
        await asyncio.gather(*server.tasks, return_exceptions=True)
        await self.gateway.close()
        await server.runner.cleanup()

    @property
    def base_url(self) -> str:
        if self._server is None:
            raise RuntimeError("the emulator is not started")
        return self._server.base_url

    @property
    def api_base(self) -> str:
        """What ``discord.http.Route.BASE`` must be set to."""
        return f"{self.base_url}/api/v10"

    @property
    def gateway_url(self) -> str:
        """What ``DiscordWebSocket.DEFAULT_GATEWAY`` must be (discord.py adds the query)."""
        return "ws" + self.base_url.removeprefix("http") + "/gateway"

    async def drain(self) -> None:
        """Wait for background work (preview fetches, GUILD_CREATE of added guilds)."""
        while self._server is not None and self._server.tasks:
            await asyncio.gather(*self._server.tasks, return_exceptions=True)

    def _spawn(self, coro: Any) -> None:
        assert self._server is not None
        task: asyncio.Task[None] = asyncio.get_running_loop().create_task(coro)
        self._server.tasks.add(task)
        task.add_done_callback(self._server.tasks.discard)

    def _spawn_unfurl(self, url: str) -> None:
        self._spawn(self._fetch_unfurl(url))

    async def _fetch_unfurl(self, url: str) -> None:
        timeout = aiohttp.ClientTimeout(total=5)
        try:
            async with (
                aiohttp.ClientSession(timeout=timeout) as session,
                session.get(url) as response,
            ):
                await response.read()
                self.unfurl_statuses.append((url, response.status))
        except (aiohttp.ClientError, TimeoutError):
            self.unfurl_statuses.append((url, None))

    # -- REST traffic

    @property
    def calls(self) -> list[RestCall]:
        """Every request below the API base, in arrival order (a live list)."""
        return self.rest.calls

    @property
    def internal_errors(self) -> list[Exception]:
        """Exceptions raised by the emulator itself (answered 503); should stay empty."""
        return list(self.rest.internal_errors)

    def fail_next(
        self,
        method: str,
        path_regex: str,
        status: int = 429,
        body: Json | None = None,
        retry_after: float = 0.05,
        times: int = 1,
        *,
        via: bool = True,
    ) -> None:
        """Answer the next ``times`` matching requests with ``status`` instead of serving
        them. A 429 gets Discord's rate-limit body and (unless ``via=False``, which is how
        a Cloudflare ban looks) a ``Via`` header, without which discord.py does not retry."""
        self.rest.fail_next(method, path_regex, status, body, retry_after, times, via=via)

    async def wait_for(
        self, predicate: Callable[[RestCall], bool], timeout: float = 5.0
    ) -> RestCall:
        """The first answered call (past ones count) matching ``predicate``; on timeout an
        AssertionError listing the calls received."""
        return await self.rest.wait_for(predicate, timeout)

    # -- the world

    def add_user(
        self, user_id: int, name: str = "ann", bot: bool = False, dms_open: bool = True
    ) -> User:
        """A user; ``dms_open=False`` makes the bot's DMs answer 403 code 50007."""
        user = User(user_id, name, bot=bot, dms_open=dms_open)
        self.world.users[user_id] = user
        return user

    def add_guild(
        self,
        guild_id: int,
        name: str = "G",
        owner_id: int | None = None,
        channels: Iterable[int] = (),
        members: Iterable[tuple[int, int]] = (),
        *,
        everyone_permissions: int = DEFAULT_EVERYONE,
        bot_permissions: int = DEFAULT_EVERYONE,
    ) -> Guild:
        """A guild the bot is in, with text channels and ``(user_id, permissions)`` members.

        Permissions become roles (``@everyone`` has ``everyone_permissions``). Sent as
        GUILD_CREATE after READY; added while a client is connected, it is sent at once
        (to the sessions whose shard holds it; see :meth:`guild_id_on_shard`).
        """
        world = self.world
        members = list(members)
        owner = owner_id if owner_id is not None else (members[0][0] if members else world.owner_id)
        guild = Guild(guild_id, name, owner)
        guild.roles[guild_id] = Role(guild_id, "@everyone", everyone_permissions, 0)
        bot_role = world.ids.next()
        guild.roles[bot_role] = Role(
            bot_role,
            name=world.users[world.bot_user_id].name,
            permissions=bot_permissions,
            position=1,
            bot_id=world.bot_user_id,
        )
        guild.members[world.bot_user_id] = [bot_role]
        for user_id, permissions in [(owner, 0), *members]:
            world.ensure_user(user_id)
            roles = [world.role_for(guild, permissions)] if permissions else []
            guild.members[user_id] = roles
        world.guilds[guild_id] = guild
        for position, channel_id in enumerate(channels):
            self.add_channel(guild_id, channel_id, "general" if position == 0 else None)
        if self._server is not None:
            for session in self.gateway.sessions_for(guild_id):
                self._spawn(self.gateway.send_guild_create(session, guild_id, joined=True))
        return guild

    def guild_id_on_shard(self, shard_id: int, shard_count: int) -> int:
        """A fresh guild id whose events go to shard ``[shard_id, shard_count]``, i.e.
        ``(id >> 22) % shard_count == shard_id``; pass it to :meth:`add_guild`."""
        return self.world.ids.on_shard(shard_id, shard_count)

    @staticmethod
    def shard_of(guild_id: int, shard_count: int) -> int:
        """The shard of ``shard_count`` that gets ``guild_id``'s events."""
        return shard_of(guild_id, shard_count)

    def add_channel(
        self, guild_id: int, channel_id: int, name: str | None = None, *, kind: int = GUILD_TEXT
    ) -> Channel:
        """A guild channel: text (``GUILD_TEXT``), announcement (``GUILD_ANNOUNCEMENT``),
        or a forum or media channel (``GUILD_FORUM``, ``GUILD_MEDIA``), whose messages all
        live in posts (see :meth:`create_post`). Added before a client connects, it is in
        GUILD_CREATE."""
        guild = self.world.guild(guild_id)
        channel = Channel(
            channel_id,
            kind,
            name or f"channel-{channel_id}",
            guild_id,
            position=len(guild.channel_ids),
        )
        self.world.channels[channel_id] = channel
        guild.channel_ids.append(channel_id)
        return channel

    async def start_thread(
        self,
        parent_id: int,
        owner_id: int,
        name: str = "thread",
        *,
        private: bool = False,
        thread_id: int | None = None,
        announce: bool = True,
    ) -> Channel:
        """A member starts a thread in a text or announcement channel (public, private, or
        an announcement thread, as the parent decides). THREAD_CREATE goes out (GUILDS
        intent) unless ``announce=False``: a thread the bot has not heard of, whose
        messages discord.py can only place by asking ``GET /channels/{id}``."""
        parent = self.world.channel(parent_id)
        if parent.type == GUILD_ANNOUNCEMENT:
            kind = ANNOUNCEMENT_THREAD
        elif parent.type == GUILD_TEXT:
            kind = PRIVATE_THREAD if private else PUBLIC_THREAD
        else:
            raise AssertionError(f"channel {parent_id} cannot hold threads (type {parent.type})")
        return await self._add_thread(parent, kind, owner_id, name, thread_id, announce)

    async def create_post(
        self,
        channel_id: int,
        author_id: int,
        title: str = "post",
        content: str = "",
        attachments: Iterable[Json] = (),
        *,
        announce: bool = True,
    ) -> tuple[Channel, Json]:
        """A member posts in a forum or media channel: a thread (THREAD_CREATE) whose first
        message (MESSAGE_CREATE, with the thread's id as its own) holds the content."""
        parent = self.world.channel(channel_id)
        if parent.type not in POST_CHANNEL_TYPES:
            raise AssertionError(f"channel {channel_id} is not a forum or media channel")
        thread_id = self.world.ids.next()
        thread = await self._add_thread(
            parent, PUBLIC_THREAD, author_id, title, thread_id, announce
        )
        message = await self._post(thread, author_id, content, attachments, message_id=thread_id)
        return thread, message

    async def _add_thread(
        self,
        parent: Channel,
        kind: int,
        owner_id: int,
        name: str,
        thread_id: int | None,
        announce: bool,
    ) -> Channel:
        self._require_session()
        world = self.world
        if parent.guild_id is None:
            raise AssertionError("threads live in guild channels")
        guild = world.guild(parent.guild_id)
        world.ensure_user(owner_id)
        guild.members.setdefault(owner_id, [])
        thread = Channel(
            thread_id if thread_id is not None else world.ids.next(),
            kind,
            name,
            parent.guild_id,
            parent_id=parent.id,
            owner_id=owner_id,
        )
        world.channels[thread.id] = thread
        guild.thread_ids.append(thread.id)
        if announce:
            payload = thread.payload(world) | {"newly_created": True}
            await world.events.dispatch("THREAD_CREATE", payload, intent=GUILDS)
        return thread

    def add_attachment(
        self,
        data: bytes,
        filename: str,
        content_type: str | None = None,
        *,
        channel_id: int = 0,
        declared_size: int | None = None,
        description: str | None = None,
        expires_in: float | None = None,
        spoiler: bool = False,
    ) -> Json:
        """An attachment object whose signed ``url`` this emulator serves (the CDN).
        ``declared_size`` makes ``size`` lie, as a client must not trust it;
        ``expires_in`` overrides the lifetime of these URLs (re-signed ones get the
        emulator's ``attachment_url_lifetime``). ``spoiler``: marked as a spoiler, as
        Discord does it (the name gets ``SPOILER_`` in front and the IS_SPOILER flag)."""
        world = self.world
        if spoiler and not filename.startswith(SPOILER_PREFIX):
            filename = SPOILER_PREFIX + filename
        attachment = world.cdn.add(
            world.ids.next(),
            channel_id,
            data,
            filename,
            content_type,
            declared_size=declared_size,
            description=description,
            expires_in=expires_in,
        )
        if spoiler:
            attachment["flags"] |= ATTACHMENT_IS_SPOILER
        return attachment

    def expire_attachment_urls(self) -> None:
        """Every attachment URL signed so far stops working (the bot was down for a day);
        messages fetched again and ``POST /attachments/refresh-urls`` give working ones."""
        self.world.cdn.expire_all()

    def bytes_served(self, attachment_id: int | str) -> int:
        return self.world.cdn.bytes_served(int(attachment_id))

    # -- gateway events

    def _require_session(self) -> None:
        if not self.gateway.sessions:
            raise AssertionError("no gateway session; connect a client before pushing events")

    async def send_message(
        self,
        channel_id: int | None,
        author_id: int,
        content: str = "",
        attachments: Iterable[Json] = (),
        guild_id: int | None = None,
        embeds: Iterable[Json] = (),
    ) -> Json:
        """A user posts a message: MESSAGE_CREATE. ``guild_id=None``: in the author's DM
        with the bot (``channel_id`` may then be None). Returns the full message; a session
        without MESSAGE_CONTENT receives it with content and attachments blanked.
        ``embeds``: those Discord made of its links (an ``image`` embed for a link to an
        image, ``rich`` ones a bot or webhook sent)."""
        self._require_session()
        channel = event_channel(self.world, channel_id, guild_id, author_id)
        extra = {"embeds": list(embeds)} if embeds else None
        return await self._post(channel, author_id, content, attachments, extra=extra)

    def post_earlier(
        self,
        channel_id: int,
        author_id: int,
        content: str = "",
        attachments: Iterable[Json] = (),
        *,
        age: float = 0,
    ) -> Json:
        """A message posted before the bot was there (or while it was away): stored and
        served by ``GET /channels/{id}/messages``, with no MESSAGE_CREATE. ``age``: how many
        seconds ago it was posted (its id's time)."""
        world = self.world
        channel = world.channel(channel_id)
        world.ensure_user(author_id)
        if channel.guild_id is not None:
            world.guild(channel.guild_id).members.setdefault(author_id, [])
        message_id = world.ids.dated(age) if age > 0 else None
        stored = self._store(channel, author_id, content, attachments, message_id=message_id)
        return public_view(stored)

    async def forward_message(
        self,
        channel_id: int | None,
        author_id: int,
        source: Json | int | str,
        guild_id: int | None = None,
    ) -> Json:
        """A user forwards ``source`` (any stored message) here: a message with no content
        of its own, a FORWARD ``message_reference`` and the source's content and
        attachments (freshly signed) in ``message_snapshots``. Channels as for
        :meth:`send_message`."""
        self._require_session()
        world = self.world
        original = self._stored_message(source)
        channel = event_channel(world, channel_id, guild_id, author_id)
        reference: Json = {
            "type": REFERENCE_FORWARD,
            "message_id": original["id"],
            "channel_id": original["channel_id"],
        }
        origin = world.channels[int(original["channel_id"])]
        if origin.guild_id is not None:
            reference["guild_id"] = str(origin.guild_id)
        served = served_view(world, original)
        snapshot = {key: served.get(key) for key in SNAPSHOT_FIELDS}
        extra = {"message_reference": reference, "message_snapshots": [{"message": snapshot}]}
        return await self._post(channel, author_id, "", (), extra=extra)

    async def _post(
        self,
        channel: Channel,
        author_id: int,
        content: str,
        attachments: Iterable[Json],
        *,
        extra: Json | None = None,
        message_id: int | None = None,
    ) -> Json:
        msg = self._store(channel, author_id, content, attachments, extra, message_id)
        await announce(self.world, "MESSAGE_CREATE", msg)
        return public_view(msg)

    def _store(
        self,
        channel: Channel,
        author_id: int,
        content: str,
        attachments: Iterable[Json],
        extra: Json | None = None,
        message_id: int | None = None,
    ) -> Json:
        """A user's message, stored (the caller dispatches it, or not)."""
        if channel.type in POST_CHANNEL_TYPES:
            raise AssertionError("messages in a forum or media channel live in its posts")
        return create_message(
            self.world,
            channel,
            {"content": content},
            [],
            author_id=author_id,
            allowed_flags=0,
            extra={"attachments": list(attachments), **(extra or {})},
            allow_empty=True,
            message_id=message_id,
        )

    async def slash_command(
        self,
        name: str,
        user_id: int,
        channel_id: int | None,
        guild_id: int | None = None,
        options: Iterable[Json] = (),
        resolved: Json | None = None,
        *,
        age: float = 0.0,
        forged: bool = False,
    ) -> Json:
        """A user runs a registered chat-input command. An attachment option (type 11)
        may carry the attachment object itself as ``value``; it is moved to ``resolved``.
        ``age``: seconds the interaction's snowflake predates now; its token expires 15
        minutes after that time (acknowledging still has 3 s from now). ``forged``: sent
        although Discord would not show the command to this member (a stale client, or a
        forged request); the payload still carries the member's real permissions."""
        self._require_session()
        world = self.world
        channel = event_channel(world, channel_id, guild_id, user_id)
        data = command_data(find_command(world, name, 1, channel, user_id, check=not forged))
        res = copy.deepcopy(resolved or {})
        opts = resolve_options(world, list(options), res, user_id)
        if opts:
            data["options"] = opts
        if res:
            data["resolved"] = res
        return await self._push_interaction(APPLICATION_COMMAND, data, user_id, channel, age=age)

    async def message_command(
        self,
        name: str,
        user_id: int,
        channel_id: int | None,
        target_message: Json | int | str,
        guild_id: int | None = None,
        *,
        age: float = 0.0,
        forged: bool = False,
    ) -> Json:
        """A user picks a message context-menu command on ``target_message`` (served
        again: fresh attachment URLs). ``age`` and ``forged`` as for :meth:`slash_command`."""
        self._require_session()
        world = self.world
        channel = event_channel(world, channel_id, guild_id, user_id)
        target = self._stored_message(target_message)
        data = command_data(find_command(world, name, 3, channel, user_id, check=not forged))
        data["target_id"] = target["id"]
        data["resolved"] = {"messages": {target["id"]: served_view(world, target)}}
        return await self._push_interaction(APPLICATION_COMMAND, data, user_id, channel, age=age)

    async def press_button(
        self,
        custom_id: str,
        user_id: int,
        channel_id: int | None,
        message: Json | int | str,
        guild_id: int | None = None,
        values: list[str] | None = None,
        *,
        age: float = 0.0,
    ) -> Json:
        """A user uses the component ``custom_id`` of ``message`` (as it is now stored);
        a missing or disabled component fails the test, as no user could click it.
        ``age`` as for :meth:`slash_command`."""
        self._require_session()
        world = self.world
        channel = event_channel(world, channel_id, guild_id, user_id)
        msg = self._stored_message(message)
        component = find_component(msg["components"], custom_id)
        if component is None or component.get("disabled"):
            state = "disabled" if component else "not present"
            raise AssertionError(f"component {custom_id!r} is {state} on message {msg['id']}")
        data: Json = {"custom_id": custom_id, "component_type": component["type"]}
        if values is not None:
            data["values"] = values
        return await self._push_interaction(MESSAGE_COMPONENT, data, user_id, channel, msg, age=age)

    async def submit_modal(
        self,
        opened_by: Json | int | str,
        values: dict[str, str],
        *,
        user_id: int | None = None,
    ) -> Json:
        """The user fills in and submits the modal the bot answered ``opened_by`` (an
        interaction) with: ``values`` by text input custom id; a field not given is sent
        as its default. ``user_id``: another user submitting it (a forged request)."""
        self._require_session()
        world = self.world
        inter_id = int(opened_by["id"] if isinstance(opened_by, dict) else opened_by)
        opener = world.interactions[inter_id]
        modals = [r["data"] for r in opener.responses if r.get("type") == 9]
        if not modals:
            raise AssertionError(f"interaction {inter_id} was not answered with a modal")
        modal = modals[-1]
        rows: list[Json] = []
        for row in modal.get("components", []):
            inputs: list[Json] = []
            for item in row.get("components", []):
                if item.get("type") != 4:
                    continue
                value = values.get(item["custom_id"], item.get("value") or "")
                inputs.append({"type": 4, "custom_id": item["custom_id"], "value": value})
            rows.append({"type": 1, "components": inputs})
        fields = {str(item["custom_id"]) for row in rows for item in row["components"]}
        unknown = set(values) - fields
        if unknown:
            raise AssertionError(f"the modal has no field {sorted(unknown)}")
        data: Json = {"custom_id": modal["custom_id"], "components": rows}
        channel = world.channels[opener.channel_id]
        source = None
        if opener.source_message_id is not None:
            source = world.messages.get(opener.source_message_id)
        submitter = opener.user_id if user_id is None else user_id
        return await self._push_interaction(MODAL_SUBMIT, data, submitter, channel, source)

    async def _push_interaction(
        self,
        itype: int,
        data: Json,
        user_id: int,
        channel: Channel,
        message: Json | None = None,
        *,
        age: float = 0.0,
    ) -> Json:
        inter = new_interaction(self.world, itype, data, user_id, channel, message, age=age)
        await self.gateway.dispatch("INTERACTION_CREATE", inter.payload)
        return copy.deepcopy(inter.payload)

    def _stored_message(self, message: Json | int | str) -> Json:
        message_id = int(message["id"] if isinstance(message, dict) else message)
        try:
            return self.world.messages[message_id]
        except KeyError:
            raise AssertionError(f"unknown message {message_id}") from None

    async def delete_user_message(self, channel_id: int, message_id: Json | int | str) -> None:
        """A user deletes their own message: REST answers 10008 for it from now on, a
        reply to it fails, and MESSAGE_DELETE goes out on the gateway."""
        msg = self._stored_message(message_id)
        if msg["channel_id"] != str(channel_id) or msg.get("deleted"):
            raise AssertionError(f"no live message {msg['id']} in channel {channel_id}")
        if int(msg["author"]["id"]) == self.world.bot_user_id:
            raise AssertionError("that is the bot's message; a user cannot delete it")
        await delete_message(self.world, msg)

    async def purge_messages(
        self, channel_id: int, moderator_id: int, messages: Iterable[Json | int | str]
    ) -> None:
        """A moderator (Manage Messages in the guild) purges ``messages`` of a guild channel
        at once, as a moderation bot's purge command does through the bulk delete endpoint:
        Discord's limits apply (2 to 100 messages, none older than two weeks; refused with
        :class:`~sandbox.discord_model.ApiError`), they are deleted, and ONE
        MESSAGE_DELETE_BULK goes out on the gateway (GUILD_MESSAGES intent)."""
        self._require_session()
        world = self.world
        channel = world.channel(channel_id)
        if channel.guild_id is None:
            raise AssertionError("only messages of a guild channel can be purged")
        if not world.permissions(world.guilds[channel.guild_id], moderator_id) & MANAGE_MESSAGES:
            raise AssertionError(f"user {moderator_id} may not manage messages there")
        ids = [int(msg["id"] if isinstance(msg, dict) else msg) for msg in messages]
        await delete_messages_bulk(world, channel, bulk_deletable(world, channel, ids))

    async def drop_gateway_connections(self, code: int = 4000) -> None:
        """Close every gateway websocket; discord.py then RESUMEs its session."""
        await self.gateway.drop_connections(code)

    # -- what the bot did

    def interaction_responses(self, interaction_id: int | str) -> list[Json]:
        """Accepted callbacks: ``{"type", "data", "flags"}`` (flags copied from data)."""
        inter = self.world.interactions.get(int(interaction_id))
        return [] if inter is None else copy.deepcopy(inter.responses)

    def followups(self, interaction_token: str) -> list[Json]:
        """Webhook traffic of an interaction, in order: each entry is the request body plus
        ``action`` ("send" / "edit" / "delete"), ``target`` (None for a new follow-up, else
        "@original" or an id), ``message_id`` and ``replaced_original`` (True when a
        follow-up took the place of a deferred "thinking" message)."""
        inter = self.world.interactions_by_token.get(interaction_token)
        return [] if inter is None else copy.deepcopy(inter.followups)

    def channel_messages(self, channel_id: int) -> list[Json]:
        """The bot's messages in a channel (DMs too), as they are now; deleted ones carry
        ``"deleted": True`` and ephemeral ones have flag 64."""
        world = self.world
        ids = world.channel_log.get(channel_id, [])
        msgs = (world.messages[i] for i in ids)
        return [copy.deepcopy(m) for m in msgs if int(m["author"]["id"]) == world.bot_user_id]

    def message(self, message_id: int | str) -> Json:
        """Any stored message (users' too) as it is now, with reactions and ``deleted``."""
        return copy.deepcopy(self._stored_message(message_id))

    def dm_channel_of(self, user_id: int) -> int | None:
        return self.world.dm_by_user.get(user_id)

    def registered_commands(self, guild_id: int | None = None) -> list[Json]:
        return copy.deepcopy(self.world.commands.get(guild_id, []))

    @property
    def unfurled_urls(self) -> list[str]:
        """Links the bot posted where Discord would build a preview (i.e. GET them)."""
        return list(self.world.unfurled)

    @property
    def identifies(self) -> list[Json]:
        """IDENTIFY payloads accepted so far (``intents`` tells what the bot asked for)."""
        return copy.deepcopy(self.gateway.identifies)

    @property
    def identify_log(self) -> list[IdentifyRecord]:
        """Every IDENTIFY that had the right token, in order: ``shard`` (``(0, 1)`` when
        none was sent, None when it was invalid), ``at`` (``time.monotonic()``),
        ``accepted`` and ``refusal`` (``"too early"`` for one refused by the identify
        pacing, else the close reason). Each counted down the session start limit."""
        return list(self.gateway.identify_log)

    def dispatches(self, event: str | None = None) -> list[Dispatched]:
        """Every dispatch sent so far (of ``event``, if given), one per session it went
        to: ``event``, ``seq``, ``session_id``, ``shard``, the ``guild_id`` it was
        routed by (None: no guild, so shard 0 only) and ``object_id``, the payload's
        ``id`` (the message, interaction, thread or guild; None for READY and the like)."""
        return [d for d in self.gateway.dispatched if event is None or d.event == event]

    @property
    def gateway_queries(self) -> list[dict[str, str]]:
        """The query of every gateway connection (``v``, ``encoding``, ``compress``)."""
        return [dict(q) for q in self.gateway.connection_queries]
