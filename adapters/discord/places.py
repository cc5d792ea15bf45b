"""Where something happened on Discord, and whose auto-rehost setting applies there.

Messages in a thread (public, private or announcement) and in every post of a forum or
media channel carry the thread's id as their channel id; the thread names its channel in
``parent_id``. The answer goes in the thread (its id is the chat), but the setting comes
from the thread itself if it has one of its own (``/rehost auto`` run in it, or its id in
``auto_rehost_channels``), else from its parent channel.

discord.py knows the threads Discord told it about (GUILD_CREATE lists the active ones,
THREAD_CREATE the new ones). A message in any other thread (one reopened after being
archived, a private thread the bot was just added to) comes with a partial channel: the
channel is then fetched once (``GET /channels/{id}``) and remembered.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import discord
from discord import app_commands

from adapters.discord.sources import PLATFORM
from bot.errors import ExpirationError
from bot.expiration import Duration, parse_duration
from bot.library import Library

log = logging.getLogger(__name__)
# (given, duration): not given means the channel's or the bot's default expiry.
Expiry = tuple[bool, Duration | None]
POST_PARENTS = frozenset({discord.ChannelType.forum, discord.ChannelType.media})
THREADS = frozenset(
    {
        discord.ChannelType.public_thread,
        discord.ChannelType.private_thread,
        discord.ChannelType.news_thread,
    }
)
REMEMBERED = 4096  # channels looked up over REST, kept (a thread never changes parent)


@dataclass(frozen=True)
class Place:
    """A channel, a thread (with its parent), a forum or media channel, or a DM."""

    channel_id: int
    parent_id: int | None = None
    kind: str = "channel"  # channel, thread, post (in a forum or media channel), posts, dm

    @property
    def in_thread(self) -> bool:
        return self.parent_id is not None


@dataclass(frozen=True)
class Setting:
    """Whether a place auto-rehosts, decided by ``decided_by`` (the place, its parent, or
    nothing: 0), and the default expiry stored there (a label; None: the bot's)."""

    auto_rehost: bool
    decided_by: int = 0
    expiration: str | None = None


def _post_parent(channel: object) -> bool:
    return getattr(channel, "type", None) in POST_PARENTS


def place_of(channel: object, parent: object | None = None) -> Place | None:
    """The place of a channel discord.py knows (a Thread, a text or forum channel, a DM,
    or a command's resolved channel option); None for a partial channel. ``parent``:
    the thread's parent channel, when known (it tells a forum post from a thread)."""
    if isinstance(channel, discord.DMChannel | discord.GroupChannel):
        return Place(channel.id, kind="dm")
    if isinstance(channel, discord.Thread | app_commands.AppCommandThread):
        if parent is None and isinstance(channel, discord.Thread):
            parent = channel.parent
        kind = "post" if _post_parent(parent) else "thread"
        return Place(channel.id, channel.parent_id, kind)
    if isinstance(channel, discord.abc.GuildChannel | app_commands.AppCommandChannel):
        return Place(channel.id, kind="posts" if _post_parent(channel) else "channel")
    return None


class Places:
    def __init__(
        self,
        client: discord.Client,
        library: Library,
        configured: Callable[[], tuple[int, ...]],
    ) -> None:
        self.client = client
        self.library = library
        self.configured = configured  # the configuration's auto-rehost channels, as of now
        self._fetched: OrderedDict[int, Place] = OrderedDict()

    async def locate(self, channel: Any) -> Place:
        """Where a message or a command is: from discord.py's cache, else asked once."""
        known = place_of(channel)
        if known is not None:
            return known
        channel_id = int(channel.id)
        remembered = self._fetched.get(channel_id)
        if remembered is not None:
            self._fetched.move_to_end(channel_id)
            return remembered
        try:
            fetched = await self.client.fetch_channel(channel_id)
        except discord.HTTPException as error:
            log.info(
                "could not look up channel %s (HTTP %s, code %s); taking it as a channel",
                channel_id,
                error.status,
                error.code,
            )
            return Place(channel_id)  # not remembered: asked again next time
        place = place_of(fetched, self._parent(fetched)) or Place(channel_id)
        self._fetched[channel_id] = place
        while len(self._fetched) > REMEMBERED:
            self._fetched.popitem(last=False)
        return place

    def _parent(self, channel: object) -> object | None:
        parent_id = getattr(channel, "parent_id", None)
        if not isinstance(channel, discord.Thread) or parent_id is None:
            return None
        return self.client.get_channel(parent_id)

    def of_option(
        self, channel: app_commands.AppCommandChannel | app_commands.AppCommandThread
    ) -> Place:
        """A channel or thread picked in a command option."""
        parent = None
        if isinstance(channel, app_commands.AppCommandThread):
            parent = self.client.get_channel(channel.parent_id)
        return place_of(channel, parent) or Place(channel.id)

    # --- settings --------------------------------------------------------------------------

    async def own_setting(self, channel_id: int) -> Setting | None:
        """The setting of this very channel or thread, if it has one."""
        stored = await self.library.own_chat_settings(PLATFORM, str(channel_id))
        configured = channel_id in self.configured()
        if stored is None and not configured:
            return None
        enabled = configured or (stored is not None and stored.auto_rehost)
        label = stored.default_expiration if stored is not None else None
        return Setting(enabled, channel_id, label)

    async def setting(self, place: Place) -> Setting:
        """The thread's own setting wins; else its parent's; else off."""
        for channel_id in (place.channel_id, place.parent_id):
            if channel_id is None:
                continue
            own = await self.own_setting(channel_id)
            if own is not None:
                return own
        return Setting(False)

    async def expiry(self, place: Place, asked: Expiry) -> Expiry:
        """The expiry for a request made in ``place``: what was asked, else the default
        stored where the setting comes from. The core looks up the request's own chat (the
        thread), so a parent's default is passed on explicitly."""
        given, _ = asked
        if given or not place.in_thread:
            return asked
        setting = await self.setting(place)
        if setting.decided_by in (0, place.channel_id) or not setting.expiration:
            return asked
        try:
            return True, parse_duration(setting.expiration)
        except ExpirationError:
            log.warning("ignoring a bad stored expiration for channel %s", setting.decided_by)
            return asked


# Channels /rehost auto may be pointed at: text, announcement, forum and media channels,
# and threads of every kind (forum and media posts are threads).
AutoTarget = app_commands.AppCommandChannel | app_commands.AppCommandThread
AUTO_CHANNEL_TYPES = [
    discord.ChannelType.text,
    discord.ChannelType.news,
    discord.ChannelType.forum,
    discord.ChannelType.media,
    discord.ChannelType.public_thread,
    discord.ChannelType.private_thread,
    discord.ChannelType.news_thread,
]


class AutoTargetTransformer(app_commands.Transformer):
    """The ``channel`` option of /rehost auto, as Discord resolved it (no cache needed)."""

    @property
    def type(self) -> discord.AppCommandOptionType:
        return discord.AppCommandOptionType.channel

    @property
    def channel_types(self) -> list[discord.ChannelType]:
        return AUTO_CHANNEL_TYPES

    async def transform(self, interaction: discord.Interaction[Any], value: Any, /) -> Any:
        if not isinstance(value, AutoTarget):
            raise app_commands.TransformerError(value, self.type, self)
        return value
