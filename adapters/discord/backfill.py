"""``/rehost backfill``: a channel's earlier images, rehosted (Discord's side of
:mod:`bot.backfills`).

The command (Manage Server) records a backfill of up to ``limit`` messages before the
command, or before the message ``before``; ``stop:True`` asks the one under way to stop.
A :class:`BackfillLoop` runs it, in this process or, after a crash, the next one:

1. It posts one progress message in the channel (with a nonce: posting it again after a
   crash makes no second one) and reads the history (``GET /channels/{id}/messages``,
   100 at a time; discord.py waits out rate limits). It keeps the messages from people
   that have images (their own or a forward's), oldest first, except those rehosted
   already (a batch answers them). The attachment links come from this fresh read.
2. It feeds them to the queue a few at a time, as the intake records a message (key
   ``discord:m:<id>``, owned by its author; not counted against the authors' rate
   limits). Their batches are not answered one by one (delivery skips them); the
   progress message is edited as they finish (n of m images, failures), at most every
   :data:`EDIT_EVERY` seconds.
3. It posts the summary: the public links per message, in as few messages as Discord's
   2,000 characters allow. Each author finds the delete links in ``/mine``: no mass DMs.

Its posts are in the server's public language (its ``language`` setting, else its
``guild_locale``), as it was when the command recorded the backfill: the process that
finishes it, maybe another one after a restart, writes in the same language.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import discord
from discord import app_commands

from adapters.discord import render
from adapters.discord.intake import USER_MESSAGES, channel_title
from adapters.discord.language import interaction_languages, user_language
from adapters.discord.places import Places
from adapters.discord.sources import PLATFORM, attachments_of, split_attachments
from adapters.discord.translator import described
from bot.app import Core
from bot.backfills import (
    DONE,
    READING,
    REPORTING,
    RUNNING,
    Backfill,
    Backfills,
    Item,
    NewItem,
    Progress,
)
from bot.database import Row
from bot.errors import ExpirationError
from bot.expiration import parse_duration
from bot.i18n import N_, context_languages, languages_of, ntranslate, translate
from bot.leases import ClaimLoop
from bot.presenting import error_text
from bot.requests import RehostRequest, SourceRef
from bot.store import UploadRecord

log = logging.getLogger(__name__)
DEFAULT_LIMIT, MAX_LIMIT = 100, 1000
IN_FLIGHT = 8  # messages fed to the queue and not finished, at most
EDIT_EVERY = 2.0  # seconds between progress edits
LOOK_EVERY = 0.25  # seconds between looks at the queue
RETRY_AFTER = 30.0  # seconds before a backfill that failed unexpectedly is tried again
SLOTS = 2  # backfills run at once by one process
STOP_HINT = N_("Stop it with `/rehost backfill stop:True`.")
DELETE_LINKS = N_("Delete links: each author finds theirs in /mine.")
LIMIT_HELP = N_("How many earlier messages to look through (default {n})")


def jump(guild_id: object, chat_id: str, message_id: str) -> str:
    return f"https://discord.com/channels/{guild_id}/{chat_id}/{message_id}"


# --- texts ---------------------------------------------------------------------------------
# Public: in the language of the server's other posts, as recorded with the backfill.


def public_language(backfill: Backfill) -> str:
    """The language the backfill's posts are written in (English if none was recorded)."""
    return languages_of(backfill.context)[1]


def _sentences(language: str, *parts: str) -> str:
    """Sentences one after the other: Chinese puts no space after its full stop."""
    gap = "" if language == "zh_Hans" else " "
    return gap.join(part for part in parts if part)


def _tally(language: str, counts: Progress) -> str:
    messages = ntranslate(language, "{n} message", "{n} messages", counts.messages)
    return ntranslate(
        language,
        "{rehosted} of {n} image rehosted from {messages}, {failed} failed.",
        "{rehosted} of {n} images rehosted from {messages}, {failed} failed.",
        counts.images,
        rehosted=counts.rehosted,
        messages=messages,
        failed=counts.failed,
    )


def progress_text(backfill: Backfill, counts: Progress | None) -> str:
    """The progress message, as the backfill stands."""
    language = public_language(backfill)
    place = channel_title(int(backfill.chat_id))
    if counts is None:
        return ntranslate(
            language,
            "Backfill of {place}: reading up to {n} earlier message…",
            "Backfill of {place}: reading up to {n} earlier messages…",
            backfill.limit,
            place=place,
        )
    earlier = ""
    if backfill.skipped:
        earlier = ntranslate(
            language,
            "{n} message was rehosted before.",
            "{n} messages were rehosted before.",
            backfill.skipped,
        )
    if not counts.images:
        nothing = ntranslate(
            language,
            "Backfill of {place} done: nothing new to rehost in {n} message.",
            "Backfill of {place} done: nothing new to rehost in {n} messages.",
            backfill.scanned,
            place=place,
        )
        return _sentences(language, nothing, earlier)
    tally = _tally(language, counts)
    if backfill.state in (DONE, REPORTING):
        ended = (
            translate(language, "Backfill of {place} stopped: {tally}", place=place, tally=tally)
            if backfill.stop_requested
            else translate(language, "Backfill of {place} done: {tally}", place=place, tally=tally)
        )
        follow = translate(language, "The links follow.")
        return _sentences(language, ended, earlier, follow, translate(language, DELETE_LINKS))
    if backfill.stop_requested:
        stopping = translate(
            language, "Backfill of {place}, stopping: {tally}", place=place, tally=tally
        )
        return _sentences(language, stopping, earlier)
    running = translate(language, "Backfill of {place}: {tally}", place=place, tally=tally)
    return _sentences(language, running, earlier, translate(language, STOP_HINT))


def unreadable_text(backfill: Backfill) -> str:
    return translate(
        public_language(backfill),
        "Backfill of {place} stopped: Discord does not let the bot read this channel's "
        "history (it needs the Read Message History permission).",
        place=channel_title(int(backfill.chat_id)),
    )


def _image_part(row: Row, number: int | None, upload: UploadRecord | None, language: str) -> str:
    """One image of a message in the summary: its public links, or why there are none."""
    source = SourceRef.from_json(json.loads(row["source"]))
    prefix = f"{number}. " if number is not None else ""
    if upload is None or not upload.active:
        reason = (
            error_text(row["error"], language)
            if row["error"]
            else translate(language, "not rehosted")
        )
        return f"{prefix}{render.name(source.filename)}: {render.escape(reason)}"
    links = render.link(translate(language, "viewer"), upload.viewer_url)
    if upload.url:
        links += " · " + render.link(translate(language, "direct"), upload.url)
    return f"{prefix}||{links}||" if source.spoiler else f"{prefix}{links}"


def message_block(language: str, link: str, owner_id: str, images: Sequence[str]) -> str:
    """A message's line in the summary: a link to it, its author, its images."""
    separator = "；" if language == "zh_Hans" else "; "
    said = translate(
        language,
        "{link} by {author}: {images}",
        link=link,
        author=render.mention(owner_id),
        images=separator.join(images),
    )
    return f"- {said}"


def summary_parts(backfill: Backfill, blocks: Sequence[str]) -> list[str]:
    """The summary, packed into as few messages as Discord's limit allows."""
    language = public_language(backfill)
    head = translate(
        language,
        "Backfill of {place}: the links, by message.",
        place=channel_title(int(backfill.chat_id)),
    )
    parts: list[str] = []
    current = head
    for whole in [*blocks, translate(language, DELETE_LINKS)]:
        block = whole[: render.MAX_CONTENT]
        if len(current) + 1 + len(block) > render.MAX_CONTENT:
            parts.append(current)
            current = block
        else:
            current += "\n" + block
    parts.append(current)
    return parts


# --- the command -----------------------------------------------------------------------------


def message_id_of(text: str | None) -> str | None:
    """A message id, or the last number of a message link (``.../channel/message``)."""
    if not text:
        return None
    last = text.strip().rstrip("/").rsplit("/", 1)[-1]
    return last if last.isdigit() and len(last) <= 20 else ""


def backfill_command(
    core: Core, places: Places, wake: Callable[[], None]
) -> app_commands.Command[Any, ..., Any]:
    backfills = Backfills(core.store)

    @app_commands.command(
        name="backfill", description=N_("Rehost the images of this channel's earlier messages")
    )
    @app_commands.checks.has_permissions(manage_guild=True)  # /rehost is shown to moderators
    @app_commands.describe(
        limit=described(LIMIT_HELP, n=DEFAULT_LIMIT),
        before=N_("Start above this message (its id or link); default: here and now"),
        stop=N_("True: stop the backfill under way here"),
    )
    async def backfill(
        interaction: discord.Interaction[Any],
        limit: app_commands.Range[int, 1, MAX_LIMIT] = DEFAULT_LIMIT,
        before: str | None = None,
        stop: bool = False,
    ) -> None:
        chat_id = str(interaction.channel_id or 0)
        where = channel_title(int(chat_id))
        mine = user_language(interaction)  # the answers below are ephemeral
        if stop:
            stopping = await backfills.request_stop(PLATFORM, chat_id)
            text = (
                translate(
                    mine,
                    "Stopping the backfill of {place}: what is under way finishes, then its "
                    "links are posted.",
                    place=where,
                )
                if stopping is not None
                else translate(mine, "No backfill is under way in {place}.", place=where)
            )
            await interaction.response.send_message(text, ephemeral=True)
            wake()
            return
        start_at = message_id_of(before) if before else str(interaction.id)
        if not start_at:
            await interaction.response.send_message(
                translate(mine, "`before` takes a message's id or link."), ephemeral=True
            )
            return
        place = await places.locate(interaction.channel)
        given, duration = await places.expiry(place, (False, None))
        context = {
            "guild_id": str(interaction.guild_id or ""),
            "expire_given": given,
            "expire": duration.label() if duration else None,
            # Its posts, written by whichever process runs it, in the server's language.
            **await interaction_languages(core, interaction),
        }
        started = await backfills.start(
            PLATFORM, chat_id, str(interaction.user.id), limit, start_at, context
        )
        if started is None:
            await interaction.response.send_message(
                translate(mine, "A backfill of {place} is under way already.", place=where)
                + " "
                + translate(mine, STOP_HINT),
                ephemeral=True,
            )
            return
        await interaction.response.send_message(
            translate(
                mine,
                "Backfill of up to {limit} earlier messages of {place} started; its progress "
                "is shown in the channel.",
                limit=limit,
                place=where,
            ),
            ephemeral=True,
        )
        wake()

    return backfill


# --- running -------------------------------------------------------------------------------


class BackfillLoop(ClaimLoop[Backfill]):
    """Runs the Discord backfills nobody else holds, a few at a time."""

    def __init__(
        self, client: discord.Client, core: Core, *, lease: float, poll: float = 1.0
    ) -> None:
        super().__init__("discord-backfill", slots=SLOTS, lease=lease, poll=poll)
        self.client = client
        self.core = core
        self.backfills = Backfills(core.store)

    async def claim(self, free: int) -> list[Backfill]:
        return await self.backfills.claim(self.name, PLATFORM, self.lease, free)

    def key(self, item: Backfill) -> int:
        return item.id

    async def renew(self, ids: Iterable[int]) -> None:
        await self.backfills.renew(self.name, ids, self.lease)

    async def released(self) -> None:
        await self.backfills.release(self.name)

    async def work(self, item: Backfill) -> None:
        try:
            await BackfillRun(self.client, self.core, self.backfills, item).run()
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("backfill %d of channel %s failed; trying again later", *_ids(item))
            await self.backfills.renew(self.name, [item.id], RETRY_AFTER)


def _ids(backfill: Backfill) -> tuple[int, str]:
    return backfill.id, backfill.chat_id


class BackfillRun:
    """One backfill, from where its rows say it is to done."""

    def __init__(
        self, client: discord.Client, core: Core, backfills: Backfills, backfill: Backfill
    ) -> None:
        self.client = client
        self.core = core
        self.backfills = backfills
        self.backfill = backfill
        self.channel = client.get_partial_messageable(int(backfill.chat_id))
        self._edited_at = 0.0
        self._shown = ""

    async def _reload(self) -> Backfill:
        found = await self.backfills.get(self.backfill.id)
        assert found is not None
        self.backfill = found
        return found

    async def run(self) -> None:
        try:
            await self._show_progress(None, force=True)
        except discord.Forbidden as error:
            log.warning(
                "backfill %d cannot post in channel %s (code %s); it is given up",
                self.backfill.id,
                self.backfill.chat_id,
                error.code,
            )
            await self.backfills.set_state(self.backfill.id, DONE)
            return
        if (await self._reload()).state == READING:
            await self._read()
        if (await self._reload()).state == RUNNING:
            await self._feed()
        if (await self._reload()).state == REPORTING:
            await self._report()

    # --- 1. reading the history ------------------------------------------------------------

    async def _read(self) -> None:
        backfill = self.backfill
        before = discord.Object(int(backfill.before)) if backfill.before else None
        found: list[NewItem] = []
        scanned = 0
        try:
            async for message in self.channel.history(limit=backfill.limit, before=before):
                scanned += 1
                item = self._item(message)
                if item is not None:
                    found.append(item)
        except (discord.Forbidden, discord.NotFound) as error:
            log.warning(
                "backfill %d cannot read channel %s (HTTP %s, code %s)",
                backfill.id,
                backfill.chat_id,
                error.status,
                error.code,
            )
            await self._say_unreadable()
            return
        found.reverse()  # oldest first
        ids = [item.message_id for item in found]
        done = await self.backfills.rehosted(PLATFORM, backfill.chat_id, ids)
        items = [item for item in found if item.message_id not in done]
        await self.backfills.record_reading(
            backfill.id, items, scanned=scanned, skipped=len(found) - len(items)
        )

    def _item(self, message: discord.Message) -> NewItem | None:
        if message.author.bot or message.webhook_id is not None:
            return None
        if message.type not in USER_MESSAGES:
            return None
        images, _ = split_attachments(attachments_of(message))
        if not images:
            return None
        return NewItem(str(message.id), str(message.author.id), message.author.name, images)

    async def _say_unreadable(self) -> None:
        await self.backfills.set_state(self.backfill.id, DONE)
        await self._edit(unreadable_text(self.backfill))

    # --- 2. feeding the queue --------------------------------------------------------------

    async def _feed(self) -> None:
        while True:
            backfill = await self._reload()
            items = await self.backfills.items(backfill.id)
            waiting = [item for item in items if item.batch is None]
            running = [item for item in items if item.batch is not None and not item.finished]
            if not backfill.stop_requested:
                for item in waiting[: max(0, IN_FLIGHT - len(running))]:
                    await self._submit(item)
                    running.append(item)
            if not running and (backfill.stop_requested or not waiting):
                break
            await self._show_progress(await self.backfills.progress(backfill.id))
            await asyncio.sleep(LOOK_EVERY)
        await self.backfills.set_state(self.backfill.id, REPORTING)

    async def _submit(self, item: Item) -> None:
        backfill = self.backfill
        ours = public_language(backfill)
        given = bool(backfill.context.get("expire_given"))
        expiration = None
        label = backfill.context.get("expire")
        if given and label:
            try:
                expiration = parse_duration(str(label))
            except ExpirationError:
                given = False
        batch = await self.core.rehost.submit(
            RehostRequest(
                platform=PLATFORM,
                chat_id=backfill.chat_id,
                owner_id=item.owner_id,
                sources=item.sources,
                message_id=item.message_id,
                expiration=expiration,
                use_default_expiration=not given,
                key=f"discord:m:{item.message_id}",
                owner_name=item.owner_name,
                chat_title=channel_title(int(backfill.chat_id)),
                # Its owner is answered as for a message: in the server's language.
                context={"backfill": backfill.id, **context_languages(ours, ours)},
                rate_limited=False,
                community_id=str(backfill.context.get("guild_id") or "") or None,
            )
        )
        await self.backfills.fed(backfill.id, item.position, batch)

    # --- 3. reporting ----------------------------------------------------------------------

    async def _report(self) -> None:
        backfill = self.backfill
        counts = await self.backfills.progress(backfill.id)
        if counts.images:
            parts = summary_parts(backfill, await self._blocks())
            for number in range(backfill.summary_sent, len(parts)):
                await self.channel.send(
                    parts[number], nonce=f"rehost-bf{backfill.id}-{number}", suppress_embeds=True
                )
                await self.backfills.summary_part_sent(backfill.id, number + 1)
        await self.backfills.set_state(backfill.id, DONE)
        await self._show_progress(counts, force=True)

    async def _blocks(self) -> list[str]:
        backfill = self.backfill
        guild_id = backfill.context.get("guild_id") or "@me"
        language = public_language(backfill)
        library = self.core.library
        blocks = []
        for item in await self.backfills.items(backfill.id):
            if item.batch is None:
                continue  # stopped before it was fed
            rows = await self.core.rehost.queue.results(item.batch)
            several = len(rows) > 1
            parts = []
            for number, row in enumerate(rows, 1):
                upload_id = row["upload_id"]
                upload = await library.upload(int(upload_id)) if upload_id is not None else None
                parts.append(_image_part(row, number if several else None, upload, language))
            url = jump(guild_id, backfill.chat_id, item.message_id)
            link = render.link(translate(language, "message"), url)
            blocks.append(message_block(language, link, item.owner_id, parts))
        return blocks

    # --- the progress message --------------------------------------------------------------

    async def _show_progress(self, counts: Progress | None, *, force: bool = False) -> None:
        backfill = self.backfill
        if backfill.progress_message_id is None:
            sent = await self.channel.send(
                progress_text(backfill, counts), nonce=f"rehost-bf{backfill.id}"
            )
            await self.backfills.set_progress_message(backfill.id, str(sent.id))
            await self._reload()
            self._shown = sent.content
            self._edited_at = time.monotonic()
            return
        if counts is None and backfill.state != READING:
            counts = await self.backfills.progress(backfill.id)
        if not force and time.monotonic() - self._edited_at < EDIT_EVERY:
            return
        await self._edit(progress_text(backfill, counts))

    async def _edit(self, text: str) -> None:
        backfill = await self._reload()
        if text == self._shown or backfill.progress_message_id is None:
            return
        message = self.channel.get_partial_message(int(backfill.progress_message_id))
        try:
            await message.edit(content=text)
        except discord.NotFound:
            log.info("the progress message of backfill %d was deleted", backfill.id)
        self._shown = text
        self._edited_at = time.monotonic()
