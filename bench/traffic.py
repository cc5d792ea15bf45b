"""The people in the scale benchmark: Discord members posting images in auto-rehost
channels and Telegram users sending photos to the bot in private, and what the bot
answered them, as the emulators saw it.

``Replies`` hooks the emulators' call lists (each ``append`` is one request the bot made)
and stamps the bot's answers with ``time.monotonic()`` as they arrive: a Discord reply is
``POST /channels/{id}/messages`` with a ``message_reference`` to the image's message, a
Telegram one is a ``sendMessage`` replying to the photo.

``populate`` makes the guilds (each with an auto-rehost channel and a few members, spread
over the gateway shards) and the Telegram users. Two ways to send: ``closed_loop`` (each
sender posts an image, waits for its answer, posts the next, until the images run out: as
many in flight as there are senders, which keeps the bot saturated) and ``steady``
(images at a fixed rate, senders taking turns, whatever the answers do).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import math
import re
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Generic, SupportsIndex, TypeVar

from sandbox.discord_api import DiscordEmulator, RestCall
from sandbox.telegram_api import SentCall, TelegramEmulator

T = TypeVar("T")
ANSWER = "Rehosted"  # the first word of a successful answer, on both platforms
_POST_MESSAGE = re.compile(r"^/channels/(\d+)/messages$")

Key = tuple[str, int, int]  # (platform, channel or chat, message id)


class _Hooked(list[T], Generic[T]):
    """A list that calls ``hook`` with each item appended."""

    def __init__(self, items: list[T], hook: Callable[[T], None]) -> None:
        super().__init__(items)
        self.hook = hook

    def append(self, item: T, /) -> None:
        super().append(item)
        self.hook(item)

    def insert(self, index: SupportsIndex, item: T, /) -> None:  # not used by the emulators
        raise NotImplementedError


@dataclass
class Sent:
    """One image a person posted, in which ``phase``, when, and when the bot's first
    answer to it arrived."""

    key: Key
    at: float
    phase: str
    answered_at: float | None = None
    done: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def platform(self) -> str:
        return self.key[0]

    @property
    def latency(self) -> float | None:
        return None if self.answered_at is None else self.answered_at - self.at


class Replies:
    """What the bot answered to which image, stamped as the emulators received it."""

    def __init__(self, dc: DiscordEmulator, tg: TelegramEmulator) -> None:
        self.sent: dict[Key, Sent] = {}
        self.answers: Counter[Key] = Counter()  # answer calls per image (Telegram: sends)
        self.errors: Counter[Key] = Counter()  # answers that were not "Rehosted"
        self._early: dict[Key, float] = {}  # answers that came before send() returned
        dc.rest.calls = _Hooked(dc.rest.calls, self._discord)
        tg.calls = _Hooked(tg.calls, self._telegram)

    def _discord(self, call: RestCall) -> None:
        if call.method != "POST" or not isinstance(call.json, dict):
            return
        path = _POST_MESSAGE.match(call.path)
        reference = call.json.get("message_reference")
        if path is None or not isinstance(reference, dict):
            return
        key = ("discord", int(path[1]), int(reference["message_id"]))
        self._answered(key, str(call.json.get("content", "")))

    def _telegram(self, call: SentCall) -> None:
        if call.method != "sendMessage" or not call.ok:
            return
        reply = call.params.get("reply_parameters")
        if isinstance(reply, str):
            reply = json.loads(reply)
        message_id = reply.get("message_id") if isinstance(reply, dict) else None
        message_id = message_id or call.params.get("reply_to_message_id")
        if message_id is None:
            return
        key = ("telegram", int(call.params["chat_id"]), int(message_id))
        self._answered(key, str(call.params.get("text", "")))

    def _answered(self, key: Key, text: str) -> None:
        if ANSWER not in text:
            self.errors[key] += 1
            return
        self.answers[key] += 1
        now = time.monotonic()
        sent = self.sent.get(key)
        if sent is None:
            self._early.setdefault(key, now)
        elif sent.answered_at is None:
            sent.answered_at = now
            sent.done.set()

    def record(self, key: Key, at: float, phase: str) -> Sent:
        sent = Sent(key, at, phase)
        self.sent[key] = sent
        early = self._early.pop(key, None)
        if early is not None:
            sent.answered_at = early
            sent.done.set()
        return sent

    def of(self, phase: str) -> list[Sent]:
        return [s for s in self.sent.values() if s.phase == phase]

    def unanswered(self) -> list[Sent]:
        return [s for s in self.sent.values() if s.answered_at is None]


@dataclass(frozen=True)
class Sender:
    """A Discord member in a guild channel, or a Telegram user in their private chat."""

    platform: str
    chat: int
    user: int
    guild: int | None = None

    async def post(self, dc: DiscordEmulator, tg: TelegramEmulator, image: bytes) -> Key:
        if self.platform == "discord":
            attachment = dc.add_attachment(image, "photo.png", "image/png", channel_id=self.chat)
            message = await dc.send_message(self.chat, self.user, "", [attachment], self.guild)
            return ("discord", self.chat, int(message["id"]))
        message = tg.send_photo(self.chat, self.user, image)
        return ("telegram", self.chat, int(message["message_id"]))


@dataclass(frozen=True)
class World:
    """Who posts (``senders``), and the auto-rehost ``channels`` of the Discord guilds."""

    senders: list[Sender]
    channels: list[int]


def populate(
    dc: DiscordEmulator, tg: TelegramEmulator, *, shards: int, guilds_per_shard: int,
    members_per_guild: int, telegram_users: int,
) -> World:  # fmt: skip
    """The guilds, channels and people; the senders alternate between the platforms."""
    senders: list[Sender] = []
    channels: list[int] = []
    for shard in range(shards):
        for _ in range(guilds_per_shard):
            guild = dc.guild_id_on_shard(shard, shards)
            channel = dc.world.ids.next()
            members = [dc.world.ids.next() for _ in range(members_per_guild)]
            for index, user in enumerate(members):
                dc.add_user(user, f"member{len(senders) + index}")
            dc.add_guild(guild, owner_id=members[0], channels=[channel],
                         members=[(user, 0) for user in members])  # fmt: skip
            channels.append(channel)
            senders += [Sender("discord", channel, user, guild) for user in members]
    people = []
    for index in range(telegram_users):
        user = 5_000_000 + index
        tg.add_user(user, first_name=f"User{index}", username=f"user{index}")
        people.append(Sender("telegram", user, user))
    mixed = [s for pair in itertools.zip_longest(senders, people) for s in pair if s is not None]
    return World(mixed, channels)


async def closed_loop(
    senders: list[Sender], dc: DiscordEmulator, tg: TelegramEmulator, replies: Replies,
    images: list[bytes], *, phase: str, answer_timeout: float,
) -> None:  # fmt: skip
    """Every sender posts an image, waits for its answer (at most ``answer_timeout`` s;
    past that it counts as lost unless answered by the end), then posts the next, until
    ``images`` run out."""
    pending = iter(images)

    async def person(sender: Sender) -> None:
        for image in pending:
            at = time.monotonic()
            sent = replies.record(await sender.post(dc, tg, image), at, phase)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(sent.done.wait(), answer_timeout)

    await asyncio.gather(*(person(sender) for sender in senders))


async def steady(
    senders: list[Sender], dc: DiscordEmulator, tg: TelegramEmulator, replies: Replies,
    images: list[bytes], *, phase: str, rate: float,
) -> list[Sent]:  # fmt: skip
    """Post ``images`` at ``rate`` a second, the senders taking turns, whatever the
    answers do; returns once the last is posted."""
    start = time.monotonic()
    posts: list[asyncio.Task[Sent]] = []

    async def post(sender: Sender, image: bytes) -> Sent:
        at = time.monotonic()
        return replies.record(await sender.post(dc, tg, image), at, phase)

    for index, image in enumerate(images):
        await asyncio.sleep(max(0.0, start + index / rate - time.monotonic()))
        posts.append(asyncio.create_task(post(senders[index % len(senders)], image)))
    return list(await asyncio.gather(*posts))


async def answered(sent: list[Sent], timeout: float) -> None:
    """Until every one of ``sent`` is answered, or ``timeout`` s have passed."""
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(timeout):
            for one in sent:
                await one.done.wait()


def telegram_duplicates(replies: Replies) -> int:
    return sum(n - 1 for key, n in replies.answers.items() if key[0] == "telegram" and n > 1)


def discord_duplicates(dc: DiscordEmulator, channels: list[int]) -> int:
    """Answers Discord shows more than once: the bot's messages in the channels, counted
    per message they reply to (a send repeated with the same nonce is one message)."""
    per_source: Counter[str] = Counter()
    for channel in channels:
        for message in dc.channel_messages(channel):
            reference: Any = message.get("message_reference")
            if ANSWER in message["content"] and isinstance(reference, dict):
                per_source[str(reference.get("message_id"))] += 1
    return sum(n - 1 for n in per_source.values() if n > 1)


def percentile(values: list[float], share: float) -> float | None:
    """The nearest-rank percentile (``share`` 0.95 for p95)."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(1, math.ceil(len(ordered) * share)) - 1]
