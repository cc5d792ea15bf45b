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
"""

from __future__ import annotations

import asyncio
import copy
import json
import logging
import secrets
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
)

_log = logging.getLogger(__name__)

DISPATCH, HEARTBEAT, IDENTIFY, PRESENCE, VOICE_STATE = 0, 1, 2, 3, 4
RESUME, RECONNECT, REQUEST_MEMBERS, INVALID_SESSION, HELLO, HEARTBEAT_ACK = 6, 7, 8, 9, 10, 11

# Close codes (Discord "Gateway Close Event Codes").
UNKNOWN_OPCODE, DECODE_ERROR, NOT_AUTHENTICATED = 4001, 4002, 4003
AUTHENTICATION_FAILED, ALREADY_AUTHENTICATED = 4004, 4005
INVALID_VERSION, INVALID_INTENTS, DISALLOWED_INTENTS = 4012, 4013, 4014

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


@dataclass
class Session:
    id: str
    intents: int
    identify: Json
    seq: int = 0
    # (seq, frame) of every dispatch, replayed on RESUME
    log: list[tuple[int, Json]] = field(default_factory=list)
    connection: Connection | None = None
    # Keeps sequence numbers in order on the wire, also while a RESUME replays.
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)


class Gateway:
    """Sessions and connections; :meth:`dispatch` fans an event out to every session."""

    def __init__(self, world: World, *, heartbeat_interval_ms: int, url: Callable[[], str]) -> None:
        self.world = world
        self.heartbeat_interval_ms = heartbeat_interval_ms
        self._url = url
        self.sessions: dict[str, Session] = {}
        self.connections: list[Connection] = []
        self.connection_queries: list[dict[str, str]] = []
        self.identifies: list[Json] = []

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
        intents = data.get("intents")
        if not isinstance(intents, int) or intents < 0:
            await conn.ws.close(code=INVALID_INTENTS, message=b"Invalid intent(s).")
            return
        if intents & PRIVILEGED_INTENTS & ~self.world.privileged_intents:
            await conn.ws.close(code=DISALLOWED_INTENTS, message=b"Disallowed intent(s).")
            return
        self.identifies.append(data)
        session = Session(secrets.token_hex(16), intents, data, connection=conn)
        conn.session = session
        self.sessions[session.id] = session
        await self._send_dispatch(session, "READY", self._ready_payload(session))
        for guild in self.world.guilds.values():
            await self.send_guild_create(session, guild.id)

    def _ready_payload(self, session: Session) -> Json:
        world = self.world
        user = world.users[world.bot_user_id].payload()
        user.update(verified=True, mfa_enabled=False, email=None)
        return {
            "v": 10,
            "user": user,
            "guilds": [{"id": str(g), "unavailable": True} for g in world.guilds],
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

    async def send_guild_create(
        self, session: Session, guild_id: int, *, joined: bool = False
    ) -> None:
        """GUILD_CREATE; ``joined``: the bot was just added (no ``unavailable`` key, which
        discord.py turns into on_guild_join rather than on_guild_available)."""
        guild = self.world.guilds[guild_id]
        payload = self.world.guild_payload(guild, all_members=bool(session.intents & GUILD_MEMBERS))
        if joined:
            del payload["unavailable"]
        await self._send_dispatch(session, "GUILD_CREATE", payload)

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
        if guild is None:
            return
        chunk: Json = {
            "guild_id": str(guild.id),
            "members": [self.world.member_payload(guild, uid) for uid in guild.members],
            "chunk_index": 0,
            "chunk_count": 1,
        }
        if data.get("nonce"):
            chunk["nonce"] = data["nonce"]
        await self._send_dispatch(conn.session, "GUILD_MEMBERS_CHUNK", chunk)

    # -- dispatching

    async def _send_dispatch(self, session: Session, event: str, data: Json) -> None:
        async with session.lock:
            session.seq += 1
            frame = {"op": DISPATCH, "t": event, "s": session.seq, "d": data}
            session.log.append((session.seq, frame))
            if session.connection is not None:
                await session.connection.send(frame)

    async def dispatch(
        self, event: str, data: Json, *, intent: int = 0, content_gated: bool = False
    ) -> None:
        """Send ``event`` to every session subscribed to ``intent`` (0: always sent).

        ``content_gated``: the payload is a message whose content Discord blanks for a
        session without the MESSAGE_CONTENT intent.
        """
        for session in list(self.sessions.values()):
            if intent and not session.intents & intent:
                continue
            payload = copy.deepcopy(data)
            if content_gated and not session.intents & MESSAGE_CONTENT:
                payload.update(copy.deepcopy(CONTENT_FIELDS))
                # A forward's copy of the message is blanked the same way (the emulator
                # assumes so: Discord documents the intent for a message's own fields).
                for snapshot in payload.get("message_snapshots") or []:
                    snapshot["message"].update(copy.deepcopy(CONTENT_FIELDS))
            await self._send_dispatch(session, event, payload)

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
