"""The emulated Discord gateway: one websocket per connection, sessions that can RESUME.

Wire protocol (Discord "Gateway" docs): the server opens with HELLO (op 10), answers
HEARTBEAT (op 1) with HEARTBEAT_ACK (op 11), IDENTIFY (op 2) with READY then one
GUILD_CREATE per guild, RESUME (op 6) with the missed dispatches then RESUMED, and
REQUEST_GUILD_MEMBERS (op 8) with GUILD_MEMBERS_CHUNK. Dispatches (op 0) carry a sequence
number ``s`` that increases per session.

The connection URL's query is honoured: ``v`` must be 9 or 10, ``encoding`` must be
``json`` (ETF is not emulated: close 4002) and ``compress=zlib-stream`` makes every frame a
binary chunk of one shared zlib stream ending in a Z_SYNC_FLUSH, as Discord does; any other
``compress`` value (discord.py asks ``zstd-stream`` when a zstd module is installed) gets
plain text frames, which discord.py reads without decompressing.

Sharding (Discord "Gateway" docs, "Sharding" and "Max Concurrency"): IDENTIFY may carry
``shard: [shard_id, shard_count]``; without it the session is shard ``[0, 1]``. A shard
that is not two integers with ``0 <= shard_id < shard_count`` is closed with 4010. Each
session gets only the guilds with ``(guild_id >> 22) % shard_count == shard_id`` (in READY's
``guilds``, as GUILD_CREATE, and every dispatch whose payload names that guild); DMs and
other events of no guild go to shard 0 only. Sessions are routed each by its own shard
pair, so two sessions may share a shard, as Discord allows. A session that would hold more
than :attr:`ShardingRules.max_guilds_per_shard` guilds (Discord: 2,500) is closed with 4011.
READY echoes ``shard`` when IDENTIFY sent one.

Identify pacing: per bucket ``shard_id % max_concurrency`` at most one IDENTIFY is accepted
per :attr:`ShardingRules.identify_interval` (Discord: 5 s). One that comes too early is
answered, as the docs say ("If your app exceeds this limit, Discord will respond with a
Invalid Session (opcode 9) event"), with INVALID_SESSION ``d: false`` and the connection is
left open; discord.py then closes it, reconnects and IDENTIFYs again after
``Client.before_identify_hook`` (5 s by default for a non-initial IDENTIFY). Checks run in
this order: token (4004), intents (4013, 4014), shard (4010), pacing (op 9), guild count
(4011); so an IDENTIFY refused as too early, or before, does not take its bucket's slot,
and one closed with 4011 does. An IDENTIFY without ``shard`` takes bucket 0's slot too but
is refused only with ``ShardingRules.pace_unsharded`` (off by default, so a single
unsharded client, restarted at once by a test, is served as before). Every IDENTIFY with
the right token is recorded in :attr:`Gateway.identify_log` and counts down
``session_start_limit.remaining`` of ``GET /gateway/bot`` (Discord counts IDENTIFY calls);
every dispatch sent is recorded in :attr:`Gateway.dispatched` with its session and shard.
"""

from __future__ import annotations

import asyncio
import copy
import json
import logging
import secrets
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import WSMsgType, web

from sandbox.discord_model import (
    GUILD_MEMBERS,
    MESSAGE_CONTENT,
    PRIVILEGED_INTENTS,
    Json,
    World,
    shard_of,
)

_log = logging.getLogger(__name__)

DISPATCH, HEARTBEAT, IDENTIFY, PRESENCE, VOICE_STATE = 0, 1, 2, 3, 4
RESUME, RECONNECT, REQUEST_MEMBERS, INVALID_SESSION, HELLO, HEARTBEAT_ACK = 6, 7, 8, 9, 10, 11

# Close codes (Discord "Gateway Close Event Codes").
UNKNOWN_OPCODE, DECODE_ERROR, NOT_AUTHENTICATED = 4001, 4002, 4003
AUTHENTICATION_FAILED, ALREADY_AUTHENTICATED = 4004, 4005
INVALID_SHARD, SHARDING_REQUIRED = 4010, 4011
INVALID_VERSION, INVALID_INTENTS, DISALLOWED_INTENTS = 4012, 4013, 4014

# Why an IDENTIFY was refused (IdentifyRecord.refusal).
INVALID_INTENTS_REASON = "Invalid intent(s)."
DISALLOWED_INTENTS_REASON = "Disallowed intent(s)."
INVALID_SHARD_REASON = "Invalid shard"
SHARDING_REQUIRED_REASON = "Sharding required"
TOO_EARLY_REASON = "too early"  # INVALID_SESSION, no close
_CLOSE_CODES = {
    INVALID_INTENTS_REASON: INVALID_INTENTS,
    DISALLOWED_INTENTS_REASON: DISALLOWED_INTENTS,
    INVALID_SHARD_REASON: INVALID_SHARD,
    SHARDING_REQUIRED_REASON: SHARDING_REQUIRED,
}
# Dispatches about a guild that name it ``id`` rather than ``guild_id``.
_GUILD_OBJECT_EVENTS = frozenset({"GUILD_CREATE", "GUILD_UPDATE", "GUILD_DELETE"})

# Fields Discord blanks in messages for an app without the MESSAGE_CONTENT intent.
CONTENT_FIELDS: dict[str, Any] = {
    "content": "",
    "embeds": [],
    "attachments": [],
    "components": [],
}


class Connection:
    """One websocket; frames go out in order through one (optional) zlib stream."""

    def __init__(self, ws: web.WebSocketResponse, *, zlib_stream: bool) -> None:
        self.ws = ws
        self._compressor = zlib.compressobj() if zlib_stream else None
        self._lock = asyncio.Lock()
        self.session: Session | None = None

    async def send(self, payload: Json) -> None:
        text = json.dumps(payload, separators=(",", ":"))
        async with self._lock:
            if self.ws.closed:
                return
            try:
                if self._compressor is None:
                    await self.ws.send_str(text)
                else:
                    data = self._compressor.compress(text.encode())
                    await self.ws.send_bytes(data + self._compressor.flush(zlib.Z_SYNC_FLUSH))
            except ConnectionResetError:
                # Closing under us: the dispatch stays in the session log for a RESUME.
                _log.debug("gateway frame dropped on a closing connection")


@dataclass(frozen=True)
class IdentifyRecord:
    """One IDENTIFY with the right token, accepted or not."""

    shard: tuple[int, int] | None  # [shard_id, shard_count] served; None: invalid
    sharded: bool  # the IDENTIFY carried ``shard``
    at: float  # time.monotonic() when it arrived
    refusal: str | None  # None: accepted; else one of the *_REASON strings
    session_id: str | None = None

    @property
    def accepted(self) -> bool:
        return self.refusal is None


@dataclass(frozen=True)
class Dispatched:
    """One dispatch as sent to one session (RESUME replays are not recorded again)."""

    event: str
    seq: int
    session_id: str
    shard: tuple[int, int]
    guild_id: int | None  # the guild it was routed by; None: no guild (shard 0 only)
    object_id: int | None  # the payload's ``id``: the message, interaction, thread, guild


@dataclass
class Session:
    id: str
    intents: int
    identify: Json
    shard: tuple[int, int] = (0, 1)
    sharded: bool = False  # IDENTIFY carried ``shard`` (READY echoes it)
    seq: int = 0
    # (seq, frame) of every dispatch, replayed on RESUME
    log: list[tuple[int, Json]] = field(default_factory=list)
    connection: Connection | None = None
    # Keeps sequence numbers in order on the wire, also while a RESUME replays.
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    def receives(self, guild_id: int | None) -> bool:
        """Whether events of ``guild_id`` (None: no guild, e.g. a DM) come to this session."""
        shard_id, shard_count = self.shard
        if guild_id is None:
            return shard_id == 0
        return shard_of(guild_id, shard_count) == shard_id


class Gateway:
    """Sessions and connections; :meth:`dispatch` fans an event out to every session whose
    shard holds the event's guild."""

    def __init__(self, world: World, *, heartbeat_interval_ms: int, url: Callable[[], str]) -> None:
        self.world = world
        self.heartbeat_interval_ms = heartbeat_interval_ms
        self._url = url
        self.sessions: dict[str, Session] = {}
        self.connections: list[Connection] = []
        self.connection_queries: list[dict[str, str]] = []
        self.identifies: list[Json] = []
        self.identify_log: list[IdentifyRecord] = []
        self.dispatched: list[Dispatched] = []
        # bucket (shard_id % max_concurrency) -> time.monotonic() of its last IDENTIFY
        self._bucket_identified: dict[int, float] = {}

    # -- websocket handling

    async def handle(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(autoping=True, max_msg_size=0)
        await ws.prepare(request)
        query = dict(request.query)
        self.connection_queries.append(query)
        conn = Connection(ws, zlib_stream=query.get("compress") == "zlib-stream")
        self.connections.append(conn)
        try:
            if await self._check_query(conn, query):
                await conn.send(_op(HELLO, {"heartbeat_interval": self.heartbeat_interval_ms}))
                await self._receive_loop(conn)
        finally:
            self.connections.remove(conn)
            if conn.session is not None and conn.session.connection is conn:
                conn.session.connection = None
        return ws

    async def _check_query(self, conn: Connection, query: dict[str, str]) -> bool:
        if query.get("v", "10") not in ("9", "10"):
            await conn.ws.close(code=INVALID_VERSION, message=b"Invalid API version")
            return False
        if query.get("encoding", "json") != "json":
            await conn.ws.close(code=DECODE_ERROR, message=b"Only JSON encoding is emulated")
            return False
        return True

    async def _receive_loop(self, conn: Connection) -> None:
        async for msg in conn.ws:
            if msg.type is not WSMsgType.TEXT:
                await conn.ws.close(code=DECODE_ERROR, message=b"Decode error")
                return
            try:
                payload = json.loads(msg.data)
                op = payload["op"]
            except (ValueError, KeyError, TypeError):
                await conn.ws.close(code=DECODE_ERROR, message=b"Decode error")
                return
            await self._on_op(conn, op, payload.get("d"))

    async def _on_op(self, conn: Connection, op: int, data: Any) -> None:
        if op == HEARTBEAT:
            await conn.send(_op(HEARTBEAT_ACK, None))
        elif op == IDENTIFY:
            await self._identify(conn, data)
        elif op == RESUME:
            await self._resume(conn, data)
        elif conn.session is None:
            await conn.ws.close(code=NOT_AUTHENTICATED, message=b"Not authenticated.")
        elif op == REQUEST_MEMBERS:
            await self._members_chunk(conn, data)
        elif op not in (PRESENCE, VOICE_STATE):
            await conn.ws.close(code=UNKNOWN_OPCODE, message=b"Unknown opcode.")

    async def _identify(self, conn: Connection, data: Json) -> None:
        if conn.session is not None:
            await conn.ws.close(code=ALREADY_AUTHENTICATED, message=b"Already authenticated.")
            return
        if data.get("token") != self.world.token:
            await conn.ws.close(code=AUTHENTICATION_FAILED, message=b"Authentication failed.")
            return
        now = time.monotonic()
        self.world.sharding.session_starts.append(now)
        sharded = data.get("shard") is not None
        shard = _shard_pair(data["shard"]) if sharded else (0, 1)
        refusal = self._identify_refusal(data, shard, sharded, now)
        if refusal is not None:
            self.identify_log.append(IdentifyRecord(shard, sharded, now, refusal))
            if refusal == TOO_EARLY_REASON:
                await conn.send(_op(INVALID_SESSION, False))
            else:
                await conn.ws.close(code=_CLOSE_CODES[refusal], message=refusal.encode())
            return
        assert shard is not None
        session = Session(
            secrets.token_hex(16), data["intents"], data, shard, sharded, connection=conn
        )
        self.identify_log.append(IdentifyRecord(shard, sharded, now, None, session.id))
        self.identifies.append(data)
        conn.session = session
        self.sessions[session.id] = session
        await self._send_dispatch(session, "READY", self._ready_payload(session))
        for guild_id in self.world.guilds:
            if session.receives(guild_id):
                await self.send_guild_create(session, guild_id)

    def _identify_refusal(
        self, data: Json, shard: tuple[int, int] | None, sharded: bool, now: float
    ) -> str | None:
        """Why this IDENTIFY is refused (None: it is accepted and took its bucket's slot)."""
        intents = data.get("intents")
        if not isinstance(intents, int) or intents < 0:
            return INVALID_INTENTS_REASON
        if intents & PRIVILEGED_INTENTS & ~self.world.privileged_intents:
            return DISALLOWED_INTENTS_REASON
        if shard is None:
            return INVALID_SHARD_REASON
        rules = self.world.sharding
        bucket = rules.bucket(shard[0])
        last = self._bucket_identified.get(bucket)
        paced = sharded or rules.pace_unsharded
        if paced and last is not None and now - last < rules.identify_interval:
            return TOO_EARLY_REASON
        self._bucket_identified[bucket] = now
        shard_id, shard_count = shard
        held = sum(1 for g in self.world.guilds if shard_of(g, shard_count) == shard_id)
        if held > rules.max_guilds_per_shard:
            return SHARDING_REQUIRED_REASON
        return None

    def sessions_for(self, guild_id: int | None) -> list[Session]:
        """The sessions that get events of ``guild_id`` (None: DMs, i.e. shard 0)."""
        return [s for s in self.sessions.values() if s.receives(guild_id)]

    def _ready_payload(self, session: Session) -> Json:
        world = self.world
        user = world.users[world.bot_user_id].payload()
        user.update(verified=True, mfa_enabled=False, email=None)
        payload: Json = {
            "v": 10,
            "user": user,
            "guilds": [
                {"id": str(g), "unavailable": True} for g in world.guilds if session.receives(g)
            ],
            "session_id": session.id,
            "resume_gateway_url": self._url(),
            "session_type": "normal",
            "application": {"id": str(world.application_id), "flags": world.application_flags()},
            "private_channels": [],
            "relationships": [],
            "presences": [],
            "guild_join_requests": [],
            "user_settings": {},
            "geo_ordered_rtc_regions": [],
            "auth": {},
        }
        if session.sharded:
            payload["shard"] = list(session.shard)
        return payload

    async def send_guild_create(
        self, session: Session, guild_id: int, *, joined: bool = False
    ) -> None:
        """GUILD_CREATE; ``joined``: the bot was just added (no ``unavailable`` key, which
        discord.py turns into on_guild_join rather than on_guild_available)."""
        guild = self.world.guilds[guild_id]
        payload = self.world.guild_payload(guild, all_members=bool(session.intents & GUILD_MEMBERS))
        if joined:
            del payload["unavailable"]
        await self._send_dispatch(session, "GUILD_CREATE", payload, guild_id)

    async def _resume(self, conn: Connection, data: Json) -> None:
        session = self.sessions.get(str(data.get("session_id")))
        if data.get("token") != self.world.token:
            await conn.ws.close(code=AUTHENTICATION_FAILED, message=b"Authentication failed.")
            return
        if session is None:
            await conn.send(_op(INVALID_SESSION, False))
            return
        if session.connection is not None and session.connection is not conn:
            await session.connection.ws.close(code=4000)
        since = int(data.get("seq") or 0)
        async with session.lock:
            session.connection = conn
            conn.session = session
            for seq, frame in session.log:
                if seq > since:
                    await conn.send(frame)
        await self._send_dispatch(session, "RESUMED", {})

    async def _members_chunk(self, conn: Connection, data: Json) -> None:
        assert conn.session is not None
        if not conn.session.intents & GUILD_MEMBERS:
            await conn.ws.close(code=DISALLOWED_INTENTS, message=b"Disallowed intent(s).")
            return
        guild = self.world.guilds.get(int(data.get("guild_id", 0)))
        if guild is None or not conn.session.receives(guild.id):
            return
        chunk: Json = {
            "guild_id": str(guild.id),
            "members": [self.world.member_payload(guild, uid) for uid in guild.members],
            "chunk_index": 0,
            "chunk_count": 1,
        }
        if data.get("nonce"):
            chunk["nonce"] = data["nonce"]
        await self._send_dispatch(conn.session, "GUILD_MEMBERS_CHUNK", chunk, guild.id)

    # -- dispatching

    async def _send_dispatch(
        self, session: Session, event: str, data: Json, guild_id: int | None = None
    ) -> None:
        async with session.lock:
            session.seq += 1
            frame = {"op": DISPATCH, "t": event, "s": session.seq, "d": data}
            session.log.append((session.seq, frame))
            record = Dispatched(
                event, session.seq, session.id, session.shard, guild_id, _id_of(data)
            )
            self.dispatched.append(record)
            if session.connection is not None:
                await session.connection.send(frame)

    async def dispatch(
        self, event: str, data: Json, *, intent: int = 0, content_gated: bool = False
    ) -> None:
        """Send ``event`` to every session subscribed to ``intent`` (0: always sent) whose
        shard holds the event's guild: the payload's ``guild_id`` (``id`` for GUILD_*
        events), which Discord puts in every guild-scoped dispatch; none: shard 0 only.

        ``content_gated``: the payload is a message whose content Discord blanks for a
        session without the MESSAGE_CONTENT intent.
        """
        guild_id = _routing_guild(event, data)
        for session in self.sessions_for(guild_id):
            if intent and not session.intents & intent:
                continue
            payload = copy.deepcopy(data)
            if content_gated and not session.intents & MESSAGE_CONTENT:
                payload.update(copy.deepcopy(CONTENT_FIELDS))
                # A forward's copy of the message is blanked the same way (the emulator
                # assumes so: Discord documents the intent for a message's own fields).
                for snapshot in payload.get("message_snapshots") or []:
                    snapshot["message"].update(copy.deepcopy(CONTENT_FIELDS))
            await self._send_dispatch(session, event, payload, guild_id)

    async def drop_connections(self, code: int = 4000) -> None:
        """Close every live websocket, as Discord does before asking clients to resume."""
        for conn in list(self.connections):
            await conn.ws.close(code=code, message=b"Emulator dropped the connection")

    async def request_reconnect(self) -> None:
        """Send op 7 RECONNECT on every live connection."""
        for conn in list(self.connections):
            await conn.send(_op(RECONNECT, None))

    async def close(self) -> None:
        for conn in list(self.connections):
            await conn.ws.close(code=1001, message=b"Going away")


def _op(op: int, data: Any) -> Json:
    return {"op": op, "d": data, "s": None, "t": None}


def _shard_pair(value: Any) -> tuple[int, int] | None:
    """IDENTIFY's ``shard`` as ``(shard_id, shard_count)``, None when Discord refuses it."""
    if not isinstance(value, list) or len(value) != 2:
        return None
    shard_id, shard_count = value
    if not all(isinstance(n, int) and not isinstance(n, bool) for n in value):
        return None
    if shard_count < 1 or not 0 <= shard_id < shard_count:
        return None
    return shard_id, shard_count


def _id_of(data: Json) -> int | None:
    raw = data.get("id")
    return int(raw) if isinstance(raw, str | int) and str(raw).isdigit() else None


def _routing_guild(event: str, data: Json) -> int | None:
    raw = data.get("guild_id")
    if raw is None and event in _GUILD_OBJECT_EVENTS:
        raw = data.get("id")
    return None if raw is None else int(raw)
