"""World state of the Discord emulator and the JSON shapes Discord puts on the wire.

Everything here is plain data: users, guilds (with roles and members), channels, the
messages the emulator knows, registered application commands and interactions. The REST
and gateway modules read and change one :class:`World`; the shapes follow the Discord API
reference (user, guild member, role, channel, message objects).
"""

from __future__ import annotations

import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

from sandbox.discord_cdn import AttachmentStore

Json = dict[str, Any]

DISCORD_EPOCH_MS = 1_420_070_400_000
# An interaction token works for follow-ups this long after the interaction's id time.
INTERACTION_TOKEN_LIFETIME = 15 * 60

# Permission bits (Discord "Permissions" reference).
ADMINISTRATOR = 1 << 3
ADD_REACTIONS = 1 << 6
MANAGE_MESSAGES = 1 << 13
VIEW_CHANNEL = 1 << 10
SEND_MESSAGES = 1 << 11
EMBED_LINKS = 1 << 14
ATTACH_FILES = 1 << 15
READ_MESSAGE_HISTORY = 1 << 16
USE_APPLICATION_COMMANDS = 1 << 31
CREATE_PUBLIC_THREADS = 1 << 35
SEND_MESSAGES_IN_THREADS = 1 << 38
ALL_PERMISSIONS = (1 << 51) - 1
DEFAULT_EVERYONE = (
    ADD_REACTIONS
    | VIEW_CHANNEL
    | SEND_MESSAGES
    | EMBED_LINKS
    | ATTACH_FILES
    | READ_MESSAGE_HISTORY
    | USE_APPLICATION_COMMANDS
    | CREATE_PUBLIC_THREADS
    | SEND_MESSAGES_IN_THREADS
)

# Gateway intents.
GUILDS = 1 << 0
GUILD_MEMBERS = 1 << 1
GUILD_PRESENCES = 1 << 8
GUILD_MESSAGES = 1 << 9
DIRECT_MESSAGES = 1 << 12
MESSAGE_CONTENT = 1 << 15
PRIVILEGED_INTENTS = GUILD_MEMBERS | GUILD_PRESENCES | MESSAGE_CONTENT

# Message flags.
SUPPRESS_EMBEDS = 1 << 2
EPHEMERAL = 1 << 6
LOADING = 1 << 7
SUPPRESS_NOTIFICATIONS = 1 << 12
IS_COMPONENTS_V2 = 1 << 15

# Channel types.
GUILD_TEXT = 0
DM = 1
GUILD_ANNOUNCEMENT = 5
ANNOUNCEMENT_THREAD = 10
PUBLIC_THREAD = 11
PRIVATE_THREAD = 12
GUILD_FORUM = 15
GUILD_MEDIA = 16
THREAD_TYPES = frozenset({ANNOUNCEMENT_THREAD, PUBLIC_THREAD, PRIVATE_THREAD})
# Channels that hold no messages of their own: every post is a thread.
POST_CHANNEL_TYPES = frozenset({GUILD_FORUM, GUILD_MEDIA})
THREAD_ARCHIVE_MINUTES = 4320

# Attachment flags.
ATTACHMENT_IS_SPOILER = 1 << 3

# Message reference types.
REFERENCE_DEFAULT, REFERENCE_FORWARD = 0, 1


class ApiError(Exception):
    """A Discord JSON error answer: ``{"message": ..., "code": ...}`` with an HTTP status."""

    def __init__(self, status: int, code: int, message: str, errors: Json | None = None) -> None:
        super().__init__(f"{status} {code} {message}")
        self.status = status
        self.code = code
        self.message = message
        self.errors = errors

    def body(self) -> Json:
        out: Json = {"message": self.message, "code": self.code}
        if self.errors is not None:
            out["errors"] = self.errors
        return out


def invalid_form(field_path: str, code: str, message: str) -> ApiError:
    """Discord's 50035 "Invalid Form Body" with one nested error, as discord.py parses it."""
    errors: Json = {"_errors": [{"code": code, "message": message}]}
    for key in reversed(field_path.split(".")):
        errors = {key: errors}
    return ApiError(400, 50035, "Invalid Form Body", errors)


@dataclass
class Upload:
    """One ``files[N]`` part of a multipart request."""

    index: int | None
    filename: str
    data: bytes
    content_type: str | None


@dataclass
class ApiRequest:
    method: str
    path: str  # below the API base, e.g. "/channels/1/messages"
    json: Any
    uploads: list[Upload]
    query: dict[str, str]


@dataclass
class Reply:
    status: int = 200
    body: Any = None  # None: an empty body (204 unless status says otherwise)


Handler = Callable[["World", ApiRequest, "re.Match[str]"], Awaitable[Reply]]


@dataclass
class Route:
    method: str
    pattern: re.Pattern[str]
    handler: Handler
    auth: bool = True  # interaction and webhook routes are authorised by their token


def route(method: str, path: str, handler: Handler, *, auth: bool = True) -> Route:
    """``path`` with ``{name}`` placeholders for one path segment each."""
    regex = re.sub(r"\{(\w+)\}", r"(?P<\1>[^/]+)", path)
    return Route(method, re.compile(f"^{regex}$"), handler, auth)


@dataclass
class Interaction:
    """An interaction the emulator created, and what the bot did with it."""

    id: int
    token: str
    type: int
    payload: Json
    created: float  # time.monotonic() when dispatched
    channel_id: int
    guild_id: int | None
    user_id: int
    response_type: int | None = None
    original_id: int | None = None  # the message "@original" refers to
    source_message_id: int | None = None  # the message whose component was used
    responses: list[Json] = field(default_factory=list)
    followups: list[Json] = field(default_factory=list)
    followup_ids: list[int] = field(default_factory=list)

    def token_expired(self) -> bool:
        """Discord refuses the webhook token 15 minutes after the id's time (not dispatch)."""
        return time.time() >= snowflake_seconds(self.id) + INTERACTION_TOKEN_LIFETIME


class EventSink(Protocol):
    """Where world changes are announced as gateway dispatches."""

    async def dispatch(
        self, event: str, data: Json, *, intent: int = 0, content_gated: bool = False
    ) -> None: ...


class _NoEvents:
    async def dispatch(
        self, event: str, data: Json, *, intent: int = 0, content_gated: bool = False
    ) -> None:
        return None


class Snowflakes:
    """Time-based ids: discord.py reads creation time from ids (e.g. to pick rate limits)."""

    def __init__(self) -> None:
        self._last = 0
        self._dated = 0

    def next(self) -> int:
        now = (int(time.time() * 1000) - DISCORD_EPOCH_MS) << 22
        self._last = max(now, self._last + 1)
        return self._last

    def on_shard(self, shard_id: int, shard_count: int) -> int:
        """A fresh id that a session ``[shard_id, shard_count]`` is sent events of: its
        timestamp is moved up to ``shard_count - 1`` ms ahead until
        ``(id >> 22) % shard_count == shard_id`` (Discord's sharding formula)."""
        if not 0 <= shard_id < shard_count:
            raise ValueError(f"no shard {shard_id} of {shard_count}")
        candidate = self.next()
        ahead = (shard_id - (candidate >> 22)) % shard_count
        if ahead:
            candidate = ((candidate >> 22) + ahead) << 22
        self._last = max(self._last, candidate)
        return candidate

    def dated(self, age: float) -> int:
        """An id made ``age`` seconds ago; its low bits keep it apart from :meth:`next`'s."""
        if age <= 0:
            return self.next()
        ms = int((time.time() - age) * 1000) - DISCORD_EPOCH_MS
        self._dated += 1
        return (ms << 22) | (1 << 21) | (self._dated % (1 << 21))


def shard_of(guild_id: int, shard_count: int) -> int:
    """The shard a guild's events go to (Discord's "Sharding Formula")."""
    return (guild_id >> 22) % shard_count


@dataclass
class ShardingRules:
    """Discord's rules for gateway sessions, as the emulator applies them.

    Real values: one shard may hold at most 2,500 guilds; ``GET /gateway/bot`` recommends
    about one shard per 1,000 guilds; ``max_concurrency`` IDENTIFYs per 5 s, one per
    bucket ``shard_id % max_concurrency``; 1,000 session starts a day.
    """

    guilds_per_shard: int = 1000
    max_guilds_per_shard: int = 2500
    max_concurrency: int = 1
    identify_interval: float = 5.0
    pace_unsharded: bool = False
    session_start_total: int = 1000
    session_start_window_ms: int = 86_400_000
    # time.monotonic() of every IDENTIFY counted as a session start
    session_starts: list[float] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.guilds_per_shard < 1 or self.max_guilds_per_shard < 1:
            raise ValueError("a shard holds at least one guild")
        if self.max_concurrency < 1:
            raise ValueError("max_concurrency is at least 1")
        if self.identify_interval < 0:
            raise ValueError("identify_interval cannot be negative")

    def recommended_shards(self, guild_count: int) -> int:
        """``shards`` of ``GET /gateway/bot``: ceil(guilds / guilds_per_shard), at least 1."""
        return max(1, -(-guild_count // self.guilds_per_shard))

    def bucket(self, shard_id: int) -> int:
        """The identify rate-limit key (Discord: ``shard_id % max_concurrency``)."""
        return shard_id % self.max_concurrency

    def session_start_limit(self, now: float) -> Json:
        """The ``session_start_limit`` object. The emulator never resets the count, and
        running out is not emulated (Discord would end every session and reset the token)."""
        elapsed_ms = 0 if not self.session_starts else (now - self.session_starts[0]) * 1000
        return {
            "total": self.session_start_total,
            "remaining": max(0, self.session_start_total - len(self.session_starts)),
            "reset_after": max(0, int(self.session_start_window_ms - elapsed_ms)),
            "max_concurrency": self.max_concurrency,
        }


def snowflake_seconds(snowflake: int) -> float:
    """The Unix time a snowflake was made at."""
    return ((snowflake >> 22) + DISCORD_EPOCH_MS) / 1000


def iso_time(snowflake: int) -> str:
    ms = (snowflake >> 22) + DISCORD_EPOCH_MS
    return datetime.fromtimestamp(ms / 1000, UTC).isoformat()


def now_iso() -> str:
    return datetime.now(UTC).isoformat()


@dataclass
class User:
    id: int
    name: str
    bot: bool = False
    dms_open: bool = True
    locale: str = "en-US"  # the user's client language, sent with their interactions

    def payload(self) -> Json:
        return {
            "id": str(self.id),
            "username": self.name,
            "discriminator": "0",
            "global_name": None if self.bot else self.name,
            "avatar": None,
            "bot": self.bot,
            "public_flags": 0,
            "flags": 0,
            "banner": None,
            "accent_color": None,
            "avatar_decoration_data": None,
        }


@dataclass
class Role:
    id: int
    name: str
    permissions: int
    position: int
    bot_id: int | None = None

    def payload(self) -> Json:
        out: Json = {
            "id": str(self.id),
            "name": self.name,
            "permissions": str(self.permissions),
            "position": self.position,
            "color": 0,
            "colors": {"primary_color": 0, "secondary_color": None, "tertiary_color": None},
            "hoist": False,
            "icon": None,
            "unicode_emoji": None,
            "managed": self.bot_id is not None,
            "mentionable": False,
            "flags": 0,
        }
        if self.bot_id is not None:
            out["tags"] = {"bot_id": str(self.bot_id)}
        return out


@dataclass
class Channel:
    """A guild channel, a DM, or a thread (``parent_id``: the text, announcement, forum
    or media channel it belongs to; ``owner_id``: who started it)."""

    id: int
    type: int
    name: str
    guild_id: int | None = None
    position: int = 0
    recipient_id: int | None = None
    parent_id: int | None = None
    owner_id: int | None = None
    archived: bool = False
    locked: bool = False

    @property
    def is_thread(self) -> bool:
        return self.type in THREAD_TYPES

    def payload(self, world: World) -> Json:
        out: Json = {"id": str(self.id), "type": self.type, "last_message_id": None, "flags": 0}
        if self.type == DM:
            user = world.user(self.recipient_id or 0)
            out["recipients"] = [user.payload()]
            return out
        if self.is_thread:
            return out | self._thread_fields(world)
        out.update(
            guild_id=str(self.guild_id),
            name=self.name,
            position=self.position,
            permission_overwrites=[],
            nsfw=False,
            topic=None,
            parent_id=None,  # a category; the emulator has none
            rate_limit_per_user=0,
        )
        if self.type in POST_CHANNEL_TYPES:
            out.update(
                available_tags=[],
                default_reaction_emoji=None,
                default_sort_order=None,
                default_forum_layout=0,
                default_thread_rate_limit_per_user=0,
                default_auto_archive_duration=THREAD_ARCHIVE_MINUTES,
            )
        return out

    def _thread_fields(self, world: World) -> Json:
        messages = world.channel_log.get(self.id, [])
        metadata: Json = {
            "archived": self.archived,
            "auto_archive_duration": THREAD_ARCHIVE_MINUTES,
            "archive_timestamp": iso_time(self.id),
            "locked": self.locked,
            "create_timestamp": iso_time(self.id),
        }
        if self.type == PRIVATE_THREAD:
            metadata["invitable"] = True
        out: Json = {
            "guild_id": str(self.guild_id),
            "name": self.name,
            "parent_id": str(self.parent_id),
            "owner_id": str(self.owner_id),
            "rate_limit_per_user": 0,
            "message_count": len(messages),
            "total_message_sent": len(messages),
            "member_count": 1,
            "thread_metadata": metadata,
        }
        parent = world.channels.get(self.parent_id or 0)
        if parent is not None and parent.type in POST_CHANNEL_TYPES:
            out["applied_tags"] = []
        return out


@dataclass
class Guild:
    id: int
    name: str
    owner_id: int
    channel_ids: list[int] = field(default_factory=list)
    thread_ids: list[int] = field(default_factory=list)
    roles: dict[int, Role] = field(default_factory=dict)
    # member user id -> role ids (besides @everyone)
    members: dict[int, list[int]] = field(default_factory=dict)
    preferred_locale: str = "en-US"  # sent as an interaction's guild_locale


class World:
    """Everything the emulated Discord knows; mutated by REST calls and test helpers."""

    def __init__(
        self,
        *,
        application_id: int,
        bot_user_id: int,
        bot_name: str,
        token: str,
        owner_id: int,
        privileged_intents: int,
        attachment_size_limit: int,
        ack_deadline: float,
        attachment_url_lifetime: float,
    ) -> None:
        self.application_id = application_id
        self.bot_user_id = bot_user_id
        self.token = token
        self.owner_id = owner_id
        self.privileged_intents = privileged_intents
        self.attachment_size_limit = attachment_size_limit
        self.ack_deadline = ack_deadline
        self.gateway_url = ""  # set when the server is listening
        self.ids = Snowflakes()
        self.users: dict[int, User] = {bot_user_id: User(bot_user_id, bot_name, bot=True)}
        self.users.setdefault(owner_id, User(owner_id, "owner"))
        self.guilds: dict[int, Guild] = {}
        self.channels: dict[int, Channel] = {}
        self.messages: dict[int, Json] = {}
        self.channel_log: dict[int, list[int]] = {}
        self.dm_by_user: dict[int, int] = {}
        self.commands: dict[int | None, list[Json]] = {}
        self.interactions: dict[int, Interaction] = {}
        self.interactions_by_token: dict[str, Interaction] = {}
        self.unfurled: list[str] = []
        self.on_unfurl: Callable[[str], None] | None = None
        # (channel id, author id, nonce) -> the message created with that nonce
        self.nonces: dict[tuple[int, int, str], int] = {}
        self.cdn = AttachmentStore(attachment_url_lifetime)
        self.events: EventSink = _NoEvents()
        self.sharding = ShardingRules()

    def note_unfurl(self, url: str) -> None:
        """Discord's link-preview crawler would GET ``url`` now."""
        self.unfurled.append(url)
        if self.on_unfurl is not None:
            self.on_unfurl(url)

    # -- lookups that answer like Discord when something is missing

    def user(self, user_id: int) -> User:
        try:
            return self.users[user_id]
        except KeyError:
            raise ApiError(404, 10013, "Unknown User") from None

    def ensure_user(self, user_id: int) -> User:
        return self.users.setdefault(user_id, User(user_id, f"user{user_id}"))

    def channel(self, channel_id: int) -> Channel:
        try:
            return self.channels[channel_id]
        except KeyError:
            raise ApiError(404, 10003, "Unknown Channel") from None

    def guild(self, guild_id: int) -> Guild:
        try:
            return self.guilds[guild_id]
        except KeyError:
            raise ApiError(404, 10004, "Unknown Guild") from None

    def message(self, channel_id: int, message_id: int) -> Json:
        msg = self.messages.get(message_id)
        if msg is None or msg.get("deleted") or msg["channel_id"] != str(channel_id):
            raise ApiError(404, 10008, "Unknown Message")
        return msg

    def dm_channel(self, user_id: int, channel_id: int | None = None) -> Channel:
        """The DM channel between the bot and ``user_id``, created on first use."""
        existing = self.dm_by_user.get(user_id)
        if existing is not None:
            return self.channels[existing]
        self.ensure_user(user_id)
        cid = channel_id if channel_id is not None else self.ids.next()
        channel = Channel(cid, DM, "", recipient_id=user_id)
        self.channels[cid] = channel
        self.dm_by_user[user_id] = cid
        return channel

    # -- permissions

    def role_for(self, guild: Guild, permissions: int) -> int:
        """A role granting exactly ``permissions``, shared by members that need the same."""
        for role in guild.roles.values():
            if role.permissions == permissions and role.id != guild.id and role.bot_id is None:
                return role.id
        role_id = self.ids.next()
        guild.roles[role_id] = Role(role_id, f"perm-{permissions}", permissions, len(guild.roles))
        return role_id

    def permissions(self, guild: Guild, user_id: int) -> int:
        if user_id == guild.owner_id:
            return ALL_PERMISSIONS
        total = guild.roles[guild.id].permissions
        for role_id in guild.members.get(user_id, []):
            total |= guild.roles[role_id].permissions
        return ALL_PERMISSIONS if total & ADMINISTRATOR else total

    def require(self, channel: Channel, permission: int) -> None:
        """403 Missing Permissions unless the bot holds ``permission`` in ``channel``."""
        if channel.guild_id is None:
            return
        if not self.permissions(self.guilds[channel.guild_id], self.bot_user_id) & permission:
            raise ApiError(403, 50013, "Missing Permissions")

    # -- payloads

    def member_payload(self, guild: Guild, user_id: int, *, with_user: bool = True) -> Json:
        out: Json = {
            "roles": [str(r) for r in guild.members.get(user_id, [])],
            "joined_at": iso_time(guild.id),
            "deaf": False,
            "mute": False,
            "flags": 0,
            "pending": False,
            "nick": None,
            "avatar": None,
            "premium_since": None,
            "communication_disabled_until": None,
        }
        if with_user:
            out["user"] = self.ensure_user(user_id).payload()
        return out

    def guild_payload(self, guild: Guild, *, all_members: bool) -> Json:
        """GUILD_CREATE data; without GUILD_MEMBERS Discord sends only the bot's member."""
        shown = list(guild.members) if all_members else [self.bot_user_id]
        return {
            "id": str(guild.id),
            "name": guild.name,
            "icon": None,
            "owner_id": str(guild.owner_id),
            "unavailable": False,
            "large": False,
            "member_count": len(guild.members),
            "joined_at": iso_time(guild.id),
            "roles": [r.payload() for r in guild.roles.values()],
            "channels": [self.channels[c].payload(self) for c in guild.channel_ids],
            "members": [self.member_payload(guild, uid) for uid in shown],
            "threads": [
                self.channels[t].payload(self)
                for t in guild.thread_ids
                if not self.channels[t].archived
            ],
            "voice_states": [],
            "presences": [],
            "emojis": [],
            "stickers": [],
            "features": [],
            "stage_instances": [],
            "guild_scheduled_events": [],
            "soundboard_sounds": [],
            "preferred_locale": guild.preferred_locale,
            "verification_level": 0,
            "default_message_notifications": 0,
            "explicit_content_filter": 0,
            "mfa_level": 0,
            "nsfw_level": 0,
            "premium_tier": 0,
            "afk_timeout": 300,
            "system_channel_id": None,
            "description": None,
        }

    def application_payload(self) -> Json:
        return {
            "id": str(self.application_id),
            "name": self.users[self.bot_user_id].name,
            "icon": None,
            "description": "",
            "bot_public": True,
            "bot_require_code_grant": False,
            "owner": self.user(self.owner_id).payload(),
            "team": None,
            "verify_key": "0" * 64,
            "flags": self.application_flags(),
            "interactions_endpoint_url": None,
            "redirect_uris": [],
            "bot": self.users[self.bot_user_id].payload(),
        }

    def application_flags(self) -> int:
        # GATEWAY_*_LIMITED flags: what the developer portal toggles set for small bots.
        flags = 0
        if self.privileged_intents & GUILD_PRESENCES:
            flags |= 1 << 13
        if self.privileged_intents & GUILD_MEMBERS:
            flags |= 1 << 15
        if self.privileged_intents & MESSAGE_CONTENT:
            flags |= 1 << 19
        return flags
