"""The Discord adapter, end to end: the real discord.py client against the Discord emulator,
the real rehost core against the host emulator. Assertions are on what users would see.

After every test, a leak check: no delete link in any link Discord would preview, in any
public message, or in any message without SUPPRESS_EMBEDS.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
import os
import re
import signal
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any

import discord
import pytest
from discord.http import Route

from adapters.discord import render
from adapters.discord.bot import DiscordAdapter
from adapters.discord.sources import PLATFORM
from bot.app import Core, open_core
from bot.community import Communities
from bot.config import Config, parse_config
from bot.i18n import translate
from bot.logsafety import Redactor
from bot.migrate import Migrator
from bot.outbox import OutboxRow
from bot.presenting import ResultLine
from bot.requests import RehostRequest, SourceRef
from bot.runner import serve
from bot.sending import Delivered
from bot.states import Visibility
from bot.store import Store
from sandbox import samples
from sandbox.discord_api import DiscordEmulator, RestCall
from sandbox.discord_messages import announce
from sandbox.hostemu import Fault, HostEmulator
from tests.conftest import CHEV_KEY, IMGBB_KEY, ROOT, host_table, storage_target, write_config

# The bot's database on each engine: SQLite, then PostgreSQL.
pytestmark = pytest.mark.usefixtures("engine")

APP_ID = 1_300_000_000_000_000_001
GUILD = 1_300_000_000_000_000_100
AUTO = 1_300_000_000_000_000_101  # auto-rehost by configuration
OTHER = 1_300_000_000_000_000_102
ANN = 1_300_000_000_000_000_201  # the guild's owner (Manage Server)
BOB = 1_300_000_000_000_000_202  # DMs closed
CAT = 1_300_000_000_000_000_203
ROBOT = 1_300_000_000_000_000_204  # another bot
FORUM = 1_300_000_000_000_000_103  # a forum channel (type 15)
MEDIA = 1_300_000_000_000_000_104  # a media channel (type 16)
SUPPRESS_EMBEDS, EPHEMERAL = 1 << 2, 1 << 6
MESSAGE_CONTENT_INTENT = 1 << 15
PDF = b"%PDF-1.4\n1 0 obj << >> endobj\ntrailer << >>\n%%EOF\n"
Json = dict[str, Any]


def image(shade: int) -> bytes:
    """A distinct PNG per shade (identical bytes would be deduplicated)."""
    return samples.png(3, 2, (shade, 40, 90))


@pytest.fixture
async def dc() -> AsyncIterator[DiscordEmulator]:
    async with DiscordEmulator(application_id=APP_ID) as emulator:
        _populate(emulator)
        yield emulator
        assert emulator.internal_errors == []


def _populate(emulator: DiscordEmulator) -> None:
    emulator.add_user(ANN, "ann")
    emulator.add_user(BOB, "bob", dms_open=False)
    emulator.add_user(CAT, "cat")
    emulator.add_user(ROBOT, "robot", bot=True)
    emulator.add_guild(
        GUILD,
        name="G",
        owner_id=ANN,
        channels=[AUTO, OTHER],
        members=[(BOB, 0), (CAT, 0), (ROBOT, 0)],
    )
    emulator.add_channel(GUILD, FORUM, "art", kind=15)
    emulator.add_channel(GUILD, MEDIA, "clips", kind=16)


def make_config(
    tmp_path: Path, host_emu: HostEmulator, dc: DiscordEmulator, lease: float = 1.0
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
        # Short leases: work a stopped run left is taken over within a second.
        "storage": {"path": str(tmp_path / "rehost.db"), "lease_seconds": lease},
        "discord": {
            "token": dc.token,
            "auto_rehost_channels": [AUTO],
            "guild_ids": [GUILD],
            "api_base_url": dc.api_base,
            "gateway_url": dc.gateway_url,
        },
    }
    # On PostgreSQL (the engine fixture), REHOST_STORAGE_URL points at its database.
    environ = {k: v for k, v in os.environ.items() if k == "REHOST_STORAGE_URL"}
    return parse_config(raw, base_dir=tmp_path, environ=environ)


@asynccontextmanager
async def running(core: Core) -> AsyncIterator[DiscordAdapter]:
    assert core.config.discord is not None
    adapter = DiscordAdapter(core, core.config.discord, guild_ready_timeout=0.05)
    await adapter.start()
    try:
        yield adapter
    finally:
        await adapter.stop()


@pytest.fixture
async def config(tmp_path: Path, host_emu: HostEmulator, dc: DiscordEmulator) -> Config:
    return make_config(tmp_path, host_emu, dc)


@pytest.fixture
async def bot(
    config: Config, host_emu: HostEmulator, dc: DiscordEmulator
) -> AsyncIterator[DiscordAdapter]:
    async with open_core(config) as core, running(core) as adapter:
        yield adapter
    assert_nothing_leaked(dc, host_emu)


# --- what users see ----------------------------------------------------------------------


def delete_links(host_emu: HostEmulator) -> list[str]:
    return [img.delete_url for img in host_emu.images.values() if img.delete_url]


def assert_nothing_leaked(dc: DiscordEmulator, host_emu: HostEmulator) -> None:
    links = delete_links(host_emu)
    assert links, "the test uploaded nothing"
    assert not set(links) & set(dc.unfurled_urls), "a delete link would be previewed"
    for channel in dc.world.channels.values():  # guild channels, threads and DMs
        for message in dc.channel_messages(channel.id):
            shown = json.dumps([message["content"], message["embeds"]])
            if not any(link in shown for link in links):
                continue
            assert message["flags"] & SUPPRESS_EMBEDS, f"previews on: {message['content']}"
            if channel.guild_id is not None:
                assert message["flags"] & EPHEMERAL, f"public delete link: {message['content']}"


def bot_messages(dc: DiscordEmulator, channel: int | None) -> list[Json]:
    return [m for m in dc.channel_messages(channel or 0) if not m.get("deleted")]


def public_messages(dc: DiscordEmulator, channel: int) -> list[Json]:
    return [m for m in bot_messages(dc, channel) if not m["flags"] & EPHEMERAL]


def button_ids(message: Json) -> list[str]:
    return [b["custom_id"] for row in message["components"] for b in row["components"]]


def upload_ids(message: Json) -> list[int]:
    return [int(c.split(":")[-1]) for c in button_ids(message) if c.startswith("rehost:del:")]


def webhook(method: str, token: str, tail: str = "") -> Callable[[RestCall], bool]:
    path = f"/webhooks/{APP_ID}/{token}{tail}"
    return lambda call: call.method == method and call.path == path


def posted_in(channel: int | None) -> Callable[[RestCall], bool]:
    return lambda call: call.method == "POST" and call.path == f"/channels/{channel}/messages"


def dm_posted(dc: DiscordEmulator, user: int) -> Callable[[RestCall], bool]:
    """A message sent to ``user``'s DMs (the channel may not exist yet)."""
    return lambda call: posted_in(dc.dm_channel_of(user) or -1)(call)


def attachment_option(attachment: Json) -> Json:
    return {"name": "file", "type": 11, "value": attachment}


async def until(condition: Callable[[], bool | Awaitable[bool]], timeout: float = 5.0) -> None:
    """Until ``condition()`` (a plain or an async function) holds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        held = condition()
        if not isinstance(held, bool):
            held = await held
        if held:
            return
        assert loop.time() < deadline, "the bot did not do it in time"
        await asyncio.sleep(0.01)


async def outbox_empty(core: Core) -> bool:
    return await core.rehost.outbox.pending_count() == 0


# --- commands ----------------------------------------------------------------------------


async def test_commands_are_registered_in_the_configured_guild(
    bot: DiscordAdapter, dc: DiscordEmulator, host_emu: HostEmulator
) -> None:
    commands = {c["name"]: c for c in dc.registered_commands(GUILD)}
    assert set(commands) == {"upload", "Rehost images", "mine", "delete", "rehost", "Take down"}
    assert dc.registered_commands() == []
    expire = next(o for o in commands["upload"]["options"] if o["name"] == "expire")
    choices = {c["value"]: c["name"] for c in expire["choices"]}
    assert len(choices) <= 25 and choices["1d"] == "1 day" and choices["never"] == "never"
    assert "90s" not in choices  # only what Chevereto honours exactly
    assert commands["rehost"]["default_member_permissions"] == str(1 << 13)  # Manage Messages
    assert commands["Rehost images"]["type"] == 3
    with pytest.raises(AssertionError, match="may not see"):
        await dc.slash_command("rehost", BOB, OTHER, GUILD)
    # the intents: message content is the only privileged one asked for
    [identify] = dc.identifies
    assert identify["intents"] & MESSAGE_CONTENT_INTENT
    assert not identify["intents"] & ((1 << 1) | (1 << 8))  # members, presences
    await _upload(dc, "cat.png", image(1))  # something for the leak check


async def _upload(
    dc: DiscordEmulator, filename: str, data: bytes, *options: Json, user: int = ANN
) -> Json:
    attachment = dc.add_attachment(data, filename, "image/png")
    interaction = await dc.slash_command(
        "upload", user, OTHER, GUILD, options=[attachment_option(attachment), *options]
    )
    await dc.wait_for(webhook("POST", interaction["token"]))
    return interaction


async def test_upload_defers_then_posts_public_links_then_the_delete_link_privately(
    bot: DiscordAdapter, dc: DiscordEmulator, host_emu: HostEmulator
) -> None:
    # The host is slower than Discord's deadline to acknowledge: only deferring first works.
    dc.world.ack_deadline, host_emu.latency = 1.0, 1.2
    expire = {"name": "expire", "type": 3, "value": "1d"}
    interaction = await _upload(dc, "cat.png", image(2), expire)

    [hosted] = host_emu.images.values()
    assert hosted.expiration_sent == "P1D" and hosted.delete_url
    [deferred] = dc.interaction_responses(interaction["id"])
    assert (deferred["type"], deferred["flags"]) == (5, 0)  # "thinking", public
    edit, secret = dc.followups(interaction["token"])
    assert (edit["action"], edit["target"]) == ("edit", "@original")
    assert (secret["action"], secret["replaced_original"]) == ("send", False)
    public, private = bot_messages(dc, OTHER)
    # Everyone sees the links, the expiry as a Discord timestamp, an embed of the image.
    assert public["flags"] == 0
    assert hosted.viewer_url in public["content"] and hosted.url in public["content"]
    assert hosted.delete_url not in json.dumps(public)
    expires = int(hosted.expires_at.timestamp()) if hosted.expires_at else 0
    assert f"expires <t:{expires}:R>" in public["content"]
    assert public["embeds"][0]["image"]["url"] == hosted.url
    [upload_id] = upload_ids(public)
    # Only the uploader sees the delete link, with previews off.
    assert private["flags"] == EPHEMERAL | SUPPRESS_EMBEDS
    assert f"<{hosted.delete_url}>" in private["content"]
    assert private["content"].startswith("Only you can see this.")
    assert upload_ids(private) == [upload_id]


async def test_upload_of_a_file_that_is_not_an_image_is_answered_privately(
    bot: DiscordAdapter, dc: DiscordEmulator, host_emu: HostEmulator
) -> None:
    pdf = dc.add_attachment(PDF, "notes.pdf", "application/pdf")
    interaction = await dc.slash_command(
        "upload", ANN, OTHER, GUILD, options=[attachment_option(pdf)]
    )
    await dc.wait_for(lambda call: call.path.endswith("/callback"))
    [answer] = dc.interaction_responses(interaction["id"])
    assert answer["type"] == 4 and answer["flags"] == EPHEMERAL
    assert answer["data"]["content"].startswith("notes.pdf is not an image")
    assert dc.bytes_served(pdf["id"]) == 0
    await _upload(dc, "cat.png", image(3))  # something for the leak check


async def test_context_menu_rehosts_the_images_and_skips_the_pdf(
    bot: DiscordAdapter, dc: DiscordEmulator, host_emu: HostEmulator
) -> None:
    files = [
        dc.add_attachment(image(10), "one.png", "image/png", channel_id=OTHER),
        dc.add_attachment(image(11), "two.png", "image/png", channel_id=OTHER),
        dc.add_attachment(PDF, "doc.pdf", "application/pdf", channel_id=OTHER),
    ]
    posted = await dc.send_message(OTHER, CAT, "look", files, guild_id=GUILD)
    interaction = await dc.message_command("Rehost images", ANN, OTHER, posted, GUILD)
    await dc.wait_for(webhook("POST", interaction["token"]))

    assert len(host_emu.images) == 2 and dc.bytes_served(files[2]["id"]) == 0
    public, private = bot_messages(dc, OTHER)
    assert public["content"].startswith("Rehosted 2 images:")
    assert "Skipped doc.pdf: not an image." in public["content"]
    for hosted in host_emu.images.values():
        assert hosted.viewer_url in public["content"]
        assert f"<{hosted.delete_url}>" in private["content"]
    assert len(public["embeds"]) == 2 and len(upload_ids(public)) == 2
    assert private["flags"] & EPHEMERAL
    mine = await bot.client.core.library.live_uploads("discord", str(ANN))
    assert {u.owner_id for u in mine} == {str(ANN)}  # the one who asked owns them


# --- auto-rehost ---------------------------------------------------------------------------


async def test_auto_rehost_answers_in_an_enabled_channel_and_stays_silent_elsewhere(
    bot: DiscordAdapter, dc: DiscordEmulator, host_emu: HostEmulator
) -> None:
    elsewhere = dc.add_attachment(image(20), "elsewhere.png", "image/png", channel_id=OTHER)
    await dc.send_message(OTHER, ANN, "", [elsewhere], guild_id=GUILD)
    from_bot = dc.add_attachment(image(21), "bot.png", "image/png", channel_id=AUTO)
    await dc.send_message(AUTO, ROBOT, "", [from_bot], guild_id=GUILD)
    await dc.send_message(AUTO, ANN, "just text", guild_id=GUILD)
    pdf = dc.add_attachment(PDF, "doc.pdf", "application/pdf", channel_id=AUTO)
    photo = dc.add_attachment(image(22), "photo.png", "image/png", channel_id=AUTO)
    posted = await dc.send_message(AUTO, ANN, "", [photo, pdf], guild_id=GUILD)
    await dc.wait_for(posted_in(AUTO))

    [hosted] = host_emu.images.values()
    [reply] = bot_messages(dc, AUTO)
    assert reply["message_reference"]["message_id"] == posted["id"]
    assert hosted.viewer_url in reply["content"] and "doc.pdf" not in reply["content"]
    assert reply["content"].endswith("Delete links were sent by DM.")
    [dm] = bot_messages(dc, dc.dm_channel_of(ANN))
    assert f"<{hosted.delete_url}>" in dm["content"] and dm["flags"] & SUPPRESS_EMBEDS
    assert f"in <#{AUTO}>" in dm["content"]
    assert bot_messages(dc, OTHER) == []
    assert dc.bytes_served(elsewhere["id"]) == dc.bytes_served(from_bot["id"]) == 0

    # A member with Manage Server switches it on for another channel, with an expiry.
    options = [
        {
            "name": "auto",
            "type": 1,
            "options": [
                {"name": "state", "type": 3, "value": "on"},
                {"name": "expire", "type": 3, "value": "1w"},
            ],
        }
    ]
    switch = await dc.slash_command("rehost", ANN, OTHER, GUILD, options=options)
    await dc.wait_for(lambda call: call.path.endswith("/callback"))
    [answer] = dc.interaction_responses(switch["id"])
    assert answer["flags"] == 0 and answer["data"]["content"].startswith(
        f"Auto-rehost is on in <#{OTHER}> and its threads: images posted there are rehosted "
        "(kept for 1 week)."
    )
    later = dc.add_attachment(image(23), "later.png", "image/png", channel_id=OTHER)
    await dc.send_message(OTHER, CAT, "", [later], guild_id=GUILD)
    await dc.wait_for(posted_in(OTHER))
    assert [img.expiration_sent for img in host_emu.images.values()] == [None, "P1W"]


async def test_closed_dms_leak_nothing_and_the_links_wait_in_mine(
    bot: DiscordAdapter, dc: DiscordEmulator, host_emu: HostEmulator
) -> None:
    photo = dc.add_attachment(image(30), "photo.png", "image/png", channel_id=AUTO)
    await dc.send_message(AUTO, BOB, "", [photo], guild_id=GUILD)
    await dc.wait_for(posted_in(AUTO))

    [hosted] = host_emu.images.values()
    [reply] = bot_messages(dc, AUTO)
    assert hosted.viewer_url in reply["content"]
    last_line = reply["content"].splitlines()[-1]
    assert last_line == (
        f"<@{BOB}>: I could not DM you your delete links (your DMs are closed); they wait in /mine."
    )
    assert bot_messages(dc, dc.dm_channel_of(BOB)) == []

    mine = await dc.slash_command("mine", BOB, AUTO, GUILD)
    await dc.wait_for(lambda call: call.path.endswith("/callback"))
    [answer] = dc.interaction_responses(mine["id"])
    assert answer["flags"] == EPHEMERAL | SUPPRESS_EMBEDS
    assert answer["data"]["content"].startswith("Your live uploads:")
    assert f"<{hosted.delete_url}>" in answer["data"]["content"]


# --- deleting -------------------------------------------------------------------------------


async def test_dm_delete_by_the_owner_removes_the_image_and_the_channel_post(
    bot: DiscordAdapter, dc: DiscordEmulator, host_emu: HostEmulator
) -> None:
    photos = [
        dc.add_attachment(image(40), "a.png", "image/png", channel_id=AUTO),
        dc.add_attachment(image(41), "b.png", "image/png", channel_id=AUTO),
    ]
    await dc.send_message(AUTO, ANN, "", photos, guild_id=GUILD)
    await dc.wait_for(posted_in(AUTO))
    [post] = bot_messages(dc, AUTO)
    first, second = upload_ids(post)
    # The two were uploaded at the same time: which host image is which, by its record.
    by_link = {img.viewer_url: img for img in host_emu.images.values()}
    records = [await bot.core.store.upload(upload_id) for upload_id in (first, second)]
    image_a, image_b = (by_link[record.viewer_url] for record in records if record)

    # Someone else: refused, in their DM and on the public post's button.
    await dc.send_message(None, CAT, f"delete {first}")
    await dc.wait_for(posted_in(dc.dm_channel_of(CAT)))
    [refusal] = bot_messages(dc, dc.dm_channel_of(CAT))
    assert refusal["content"] == f"You have no live upload #{first}; see /mine."
    assert refusal["components"] == []
    press = await dc.press_button(f"rehost:del:{first}", CAT, AUTO, post["id"], GUILD)
    await dc.wait_for(lambda call: call.path.endswith("/callback"))
    [answer] = dc.interaction_responses(press["id"])
    assert answer["flags"] & EPHEMERAL and "no live upload" in answer["data"]["content"]
    assert not image_a.deleted and public_messages(dc, AUTO) == [post]

    # The owner, in DM: asked to confirm, then it is gone and the post shows the other one.
    dm_channel = dc.dm_channel_of(ANN)
    await dc.send_message(None, ANN, f"delete #{first}")
    await until(lambda: len(bot_messages(dc, dm_channel)) == 2)
    question = bot_messages(dc, dm_channel)[-1]
    assert question["content"].startswith(f"Delete #{first} (")
    assert button_ids(question) == [f"rehost:delok:{first}", f"rehost:delno:{first}"]
    confirm = await dc.press_button(f"rehost:delok:{first}", ANN, None, question["id"])
    await dc.wait_for(webhook("PATCH", confirm["token"], "/messages/@original"))
    assert image_a.deleted and not image_b.deleted
    assert dc.message(question["id"])["content"] == f"Deleted #{first}."
    edited = dc.message(post["id"])
    assert image_a.viewer_url not in edited["content"] and image_b.viewer_url in edited["content"]
    assert f"#{first} was deleted." in edited["content"]
    assert upload_ids(edited) == [second] and len(edited["embeds"]) == 1
    links_dm = bot_messages(dc, dm_channel)[0]
    assert image_a.delete_url not in links_dm["content"]
    assert image_b.delete_url in links_dm["content"] and links_dm["flags"] & SUPPRESS_EMBEDS

    # The owner again, with the public post's button: nothing live is left, the post goes.
    press = await dc.press_button(f"rehost:del:{second}", ANN, AUTO, post["id"], GUILD)
    await until(lambda: bot_messages(dc, AUTO)[-1]["content"].startswith(f"Delete #{second}"))
    question = bot_messages(dc, AUTO)[-1]
    assert question["flags"] & EPHEMERAL
    confirm = await dc.press_button(f"rehost:delok:{second}", ANN, AUTO, question["id"], GUILD)
    await dc.wait_for(webhook("PATCH", confirm["token"], "/messages/@original"))
    assert image_b.deleted and dc.message(post["id"]).get("deleted")
    assert await bot.client.core.library.live_uploads("discord", str(ANN)) == []


async def test_dm_images_are_answered_with_delete_links_and_buttons(
    bot: DiscordAdapter, dc: DiscordEmulator, host_emu: HostEmulator
) -> None:
    photo = dc.add_attachment(image(50), "dm.png", "image/png")
    await dc.send_message(None, ANN, "1h", [photo])
    dm_channel = dc.dm_channel_of(ANN)
    await dc.wait_for(posted_in(dm_channel))
    [hosted] = host_emu.images.values()
    [reply] = bot_messages(dc, dm_channel)
    assert hosted.expiration_sent == "PT1H"
    assert reply["flags"] & SUPPRESS_EMBEDS and f"<{hosted.delete_url}>" in reply["content"]
    [upload_id] = upload_ids(reply)

    await dc.press_button(f"rehost:del:{upload_id}", ANN, None, reply["id"])
    await until(lambda: any(m["flags"] & EPHEMERAL for m in bot_messages(dc, dm_channel)))
    question = bot_messages(dc, dm_channel)[-1]
    cancel = await dc.press_button(f"rehost:delno:{upload_id}", ANN, None, question["id"])
    await dc.wait_for(lambda call: cancel["id"] in call.path)
    assert dc.message(question["id"])["content"] == f"Kept #{upload_id}." and not hosted.deleted

    await dc.slash_command(
        "delete", ANN, AUTO, GUILD, options=[{"name": "id", "type": 4, "value": upload_id}]
    )
    await until(lambda: any(m["flags"] & EPHEMERAL for m in bot_messages(dc, AUTO)))
    [question] = bot_messages(dc, AUTO)
    confirm = await dc.press_button(f"rehost:delok:{upload_id}", ANN, AUTO, question["id"], GUILD)
    await dc.wait_for(webhook("PATCH", confirm["token"], "/messages/@original"))
    assert hosted.deleted
    assert f"#{upload_id} was deleted." in dc.message(reply["id"])["content"]

    pdf = dc.add_attachment(PDF, "doc.pdf", "application/pdf")
    await dc.send_message(None, ANN, "", [pdf])
    await until(lambda: len(bot_messages(dc, dm_channel)) == 3)
    assert bot_messages(dc, dm_channel)[-1]["content"].startswith("doc.pdf is not an image")


# --- threads, forum and media posts, forwards, GIFs, spoilers ---------------------------------


def rehost_auto(state: str, *, expire: str | None = None, channel: int | None = None) -> list[Json]:
    """The options of ``/rehost auto``."""
    options: list[Json] = [{"name": "state", "type": 3, "value": state}]
    if expire is not None:
        options.append({"name": "expire", "type": 3, "value": expire})
    if channel is not None:
        options.append({"name": "channel", "type": 7, "value": str(channel)})
    return [{"name": "auto", "type": 1, "options": options}]


async def command_answer(dc: DiscordEmulator, interaction: Json) -> str:
    """What the bot answered to a command it answers at once."""
    prefix = f"/interactions/{interaction['id']}/"
    await dc.wait_for(lambda call: call.path.startswith(prefix) and call.status < 300)
    [answer] = dc.interaction_responses(interaction["id"])
    return str(answer["data"]["content"])


def hosted(host_emu: HostEmulator, data: bytes) -> Any:
    [found] = [img for img in host_emu.images.values() if img.data == data]
    return found


async def test_images_in_threads_and_forum_posts_are_answered_in_their_thread(
    bot: DiscordAdapter, dc: DiscordEmulator, host_emu: HostEmulator
) -> None:
    # A thread of the auto-rehost channel follows it; the answer goes in the thread.
    thread = await dc.start_thread(AUTO, CAT, "chat")
    photo = dc.add_attachment(image(110), "thread.png", "image/png", channel_id=thread.id)
    posted = await dc.send_message(thread.id, ANN, "", [photo], guild_id=GUILD)
    await dc.wait_for(posted_in(thread.id))
    [reply] = bot_messages(dc, thread.id)
    assert reply["message_reference"]["message_id"] == posted["id"]
    assert hosted(host_emu, image(110)).viewer_url in reply["content"]
    assert reply["content"].endswith("Delete links were sent by DM.")
    await dc.wait_for(dm_posted(dc, ANN))
    [dm] = bot_messages(dc, dc.dm_channel_of(ANN))
    assert f"(in <#{thread.id}>)" in dm["content"]
    assert bot_messages(dc, AUTO) == []

    # A forum channel is switched on from another channel, for all its posts.
    switch = await dc.slash_command(
        "rehost", ANN, OTHER, GUILD, options=rehost_auto("on", expire="1w", channel=FORUM)
    )
    assert (await command_answer(dc, switch)).startswith(
        f"Auto-rehost is on in every post of <#{FORUM}>: images posted there are rehosted "
        "(kept for 1 week)."
    )
    # A post in the media channel (not switched on) stays unanswered; one in the forum is
    # answered in the post, with the forum's expiry.
    clip = dc.add_attachment(image(112), "clip.png", "image/png")
    quiet, _ = await dc.create_post(MEDIA, CAT, "my clip", "", [clip])
    art = dc.add_attachment(image(111), "art.png", "image/png")
    post, first = await dc.create_post(FORUM, CAT, "my art", "look", [art])
    await dc.wait_for(posted_in(post.id))
    [reply] = bot_messages(dc, post.id)
    assert reply["message_reference"]["message_id"] == first["id"] == str(post.id)
    assert hosted(host_emu, image(111)).viewer_url in reply["content"]
    assert hosted(host_emu, image(111)).expiration_sent == "P1W"
    assert bot_messages(dc, quiet.id) == [] and dc.bytes_served(clip["id"]) == 0
    assert not [call for call in dc.calls if posted_in(FORUM)(call)]


async def test_a_thread_the_bot_never_heard_of_is_looked_up_once(
    bot: DiscordAdapter, dc: DiscordEmulator, host_emu: HostEmulator
) -> None:
    thread = await dc.start_thread(AUTO, CAT, "reopened", announce=False)
    first = dc.add_attachment(image(113), "a.png", "image/png", channel_id=thread.id)
    await dc.send_message(thread.id, CAT, "", [first], guild_id=GUILD)
    await until(lambda: len(channel_posts(dc, thread.id)) == 1)
    second = dc.add_attachment(image(114), "b.png", "image/png", channel_id=thread.id)
    await dc.send_message(thread.id, CAT, "", [second], guild_id=GUILD)
    await until(lambda: len(channel_posts(dc, thread.id)) == 2)
    lookups = [c for c in dc.calls if c.method == "GET" and c.path == f"/channels/{thread.id}"]
    assert len(lookups) == 1
    assert len(host_emu.images) == 2


async def test_a_threads_own_setting_wins_over_its_channels(
    bot: DiscordAdapter, dc: DiscordEmulator, host_emu: HostEmulator
) -> None:
    quiet = await dc.start_thread(AUTO, ANN, "no bots here")
    switch = await dc.slash_command("rehost", ANN, quiet.id, GUILD, options=rehost_auto("off"))
    assert await command_answer(dc, switch) == (
        f"Auto-rehost is off in this thread only. <#{AUTO}> keeps its own setting.\n"
        f"For all of <#{AUTO}>, add `channel:` <#{AUTO}>."
    )
    private = await dc.start_thread(OTHER, ANN, "ours", private=True)
    switch = await dc.slash_command("rehost", ANN, private.id, GUILD, options=rehost_auto("on"))
    assert (await command_answer(dc, switch)).startswith(
        "Auto-rehost is on in this thread only: images posted there are rehosted"
    )
    post, _ = await dc.create_post(MEDIA, CAT, "clips", "")
    switch = await dc.slash_command("rehost", ANN, post.id, GUILD, options=rehost_auto("on"))
    assert (await command_answer(dc, switch)).startswith("Auto-rehost is on in this post only")

    ignored = dc.add_attachment(image(115), "ignored.png", "image/png", channel_id=quiet.id)
    await dc.send_message(quiet.id, CAT, "", [ignored], guild_id=GUILD)
    wanted = dc.add_attachment(image(116), "wanted.png", "image/png", channel_id=private.id)
    await dc.send_message(private.id, CAT, "", [wanted], guild_id=GUILD)
    clip = dc.add_attachment(image(117), "clip.png", "image/png", channel_id=post.id)
    await dc.send_message(post.id, CAT, "", [clip], guild_id=GUILD)
    await dc.wait_for(posted_in(private.id))
    await dc.wait_for(posted_in(post.id))
    assert channel_posts(dc, quiet.id) == [] and dc.bytes_served(ignored["id"]) == 0
    assert len(host_emu.images) == 2
    assert bot_messages(dc, OTHER) == [] and bot_messages(dc, MEDIA) == []


async def test_upload_and_the_context_menu_answer_in_a_thread(
    bot: DiscordAdapter, dc: DiscordEmulator, host_emu: HostEmulator
) -> None:
    # The channel's default expiry (set while auto-rehost stays off) reaches its threads.
    switch = await dc.slash_command(
        "rehost", ANN, OTHER, GUILD, options=rehost_auto("off", expire="1d")
    )
    assert await command_answer(dc, switch) == (
        f"Auto-rehost is off in <#{OTHER}> and its threads. "
        "A thread set on its own keeps its setting."
    )
    thread = await dc.start_thread(OTHER, CAT, "chat")
    attachment = dc.add_attachment(image(120), "cmd.png", "image/png")
    interaction = await dc.slash_command(
        "upload", ANN, thread.id, GUILD, options=[attachment_option(attachment)]
    )
    await dc.wait_for(webhook("POST", interaction["token"]))
    public, private = bot_messages(dc, thread.id)
    first = hosted(host_emu, image(120))
    assert first.viewer_url in public["content"] and not public["flags"]
    assert f"<{first.delete_url}>" in private["content"] and private["flags"] & EPHEMERAL
    assert first.expiration_sent == "P1D"

    photo = dc.add_attachment(image(121), "menu.png", "image/png", channel_id=thread.id)
    posted = await dc.send_message(thread.id, CAT, "", [photo], guild_id=GUILD)
    menu = await dc.message_command("Rehost images", ANN, thread.id, posted, GUILD)
    await dc.wait_for(webhook("POST", menu["token"]))
    assert hosted(host_emu, image(121)).viewer_url in bot_messages(dc, thread.id)[2]["content"]


async def test_a_forward_is_rehosted_for_whoever_forwarded_it(
    bot: DiscordAdapter, dc: DiscordEmulator, host_emu: HostEmulator
) -> None:
    files = [
        dc.add_attachment(image(122), "fwd.png", "image/png", channel_id=OTHER),
        dc.add_attachment(image(123), "dm.png", "image/png", channel_id=OTHER),
    ]
    original = await dc.send_message(OTHER, CAT, "", files[:1], guild_id=GUILD)
    forward = await dc.forward_message(AUTO, ANN, original, guild_id=GUILD)
    await dc.wait_for(posted_in(AUTO))
    [reply] = bot_messages(dc, AUTO)
    assert reply["message_reference"]["message_id"] == forward["id"]
    assert hosted(host_emu, image(122)).viewer_url in reply["content"]
    [mine] = await bot.client.core.library.live_uploads(PLATFORM, str(ANN))
    assert mine.viewer_url == hosted(host_emu, image(122)).viewer_url

    # Forwarded to the bot's DMs: answered there, delete link included.
    other = await dc.send_message(OTHER, ANN, "", files[1:], guild_id=GUILD)
    await dc.forward_message(None, CAT, other)
    await dc.wait_for(posted_in(dc.dm_channel_of(CAT)))
    [answer] = bot_messages(dc, dc.dm_channel_of(CAT))
    assert f"<{hosted(host_emu, image(123)).delete_url}>" in answer["content"]
    assert bot_messages(dc, OTHER) == []


async def test_a_gif_attachment_is_rehosted_as_a_gif(
    bot: DiscordAdapter, dc: DiscordEmulator, host_emu: HostEmulator
) -> None:
    gif = samples.gif(4, 3, (200, 10, 10))
    photo = dc.add_attachment(gif, "dance.gif", "image/gif", channel_id=AUTO)
    await dc.send_message(AUTO, ANN, "", [photo], guild_id=GUILD)
    await dc.wait_for(posted_in(AUTO))
    [image_gif] = host_emu.images.values()
    assert (image_gif.data, image_gif.mime, image_gif.extension) == (gif, "image/gif", "gif")
    [reply] = bot_messages(dc, AUTO)
    assert image_gif.viewer_url in reply["content"] and "dance.gif" in reply["content"]
    assert reply["embeds"][0]["image"]["url"] == image_gif.url


async def test_a_spoiler_stays_hidden_in_the_public_answer(
    bot: DiscordAdapter, dc: DiscordEmulator, host_emu: HostEmulator
) -> None:
    files = [
        dc.add_attachment(image(130), "ending.png", "image/png", channel_id=AUTO, spoiler=True),
        dc.add_attachment(image(131), "plain.png", "image/png", channel_id=AUTO),
    ]
    posted = await dc.send_message(AUTO, ANN, "", files, guild_id=GUILD)
    await dc.wait_for(posted_in(AUTO))
    secret, plain = hosted(host_emu, image(130)), hosted(host_emu, image(131))
    [reply] = bot_messages(dc, AUTO)

    def spoilered(content: str) -> list[str]:
        return re.findall(r"\|\|(.+?)\|\|", content)

    [hidden] = spoilered(reply["content"])
    assert "SPOILER\\_ending.png" in hidden and f"(<{secret.viewer_url}>)" in hidden
    assert f"(<{secret.url}>)" in hidden and plain.viewer_url not in hidden
    assert [embed["image"]["url"] for embed in reply["embeds"]] == [plain.url]
    assert secret.url not in dc.unfurled_urls and secret.viewer_url not in dc.unfurled_urls
    sources = await bot.client.core.rehost.queue.results(f"discord:m:{posted['id']}")
    assert [json.loads(row["source"])["spoiler"] for row in sources] == [True, False]
    nsfw = {
        received.files[0].data: received.param("nsfw")
        for received in host_emu.uploads
        if received.files
    }
    assert nsfw == {image(130): "1", image(131): None}  # Chevereto is told it is NSFW

    # Deleting the other image re-renders the post: the spoiler stays hidden.
    plain_id = next(
        u.id
        for u in await bot.client.core.library.live_uploads(PLATFORM, str(ANN))
        if u.viewer_url == plain.viewer_url
    )
    await dc.press_button(f"rehost:del:{plain_id}", ANN, AUTO, reply["id"], GUILD)
    await until(lambda: bot_messages(dc, AUTO)[-1]["flags"] & EPHEMERAL != 0)
    question = bot_messages(dc, AUTO)[-1]
    confirm = await dc.press_button(f"rehost:delok:{plain_id}", ANN, AUTO, question["id"], GUILD)
    await dc.wait_for(webhook("PATCH", confirm["token"], "/messages/@original"))
    edited = dc.message(reply["id"])
    assert edited["embeds"] == [] and len(spoilered(edited["content"])) == 1
    assert f"(<{secret.viewer_url}>)" in spoilered(edited["content"])[0]


# --- backfill -----------------------------------------------------------------------------------

HISTORY = 1_300_000_000_000_000_105  # a channel with earlier messages (not auto-rehosted)


def rehost_backfill(**values: int | str | bool) -> list[Json]:
    """The options of ``/rehost backfill``."""
    kinds = {"limit": 4, "before": 3, "stop": 5}
    options = [{"name": name, "type": kinds[name], "value": v} for name, v in values.items()]
    return [{"name": "backfill", "type": 1, "options": options}]


def earlier_request(message: Json) -> RehostRequest:
    """What auto-rehost recorded for a message with images, had it been on then."""
    sources = [
        SourceRef(a["filename"], url=a["url"], declared_size=a["size"], item_key=a["id"])
        for a in message["attachments"]
    ]
    return RehostRequest(
        "discord",
        message["channel_id"],
        message["author"]["id"],
        sources,
        message_id=message["id"],
        key=f"discord:m:{message['id']}",
        chat_title=f"<#{message['channel_id']}>",
    )


def write_history(
    dc: DiscordEmulator, channel: int, count: int, *, every: int = 5, shade: int = 150
) -> list[Json]:
    """``count`` earlier messages by three people; 3 of each ``every`` have an image
    (distinct images from ``shade`` on)."""
    authors = (ANN, CAT, BOB)
    posted = []
    for i in range(count):
        files = []
        if i % every < 3:
            files = [
                dc.add_attachment(image(shade + i), f"old{i}.png", "image/png", channel_id=channel)
            ]
        posted.append(dc.post_earlier(channel, authors[i % 3], f"message {i}", files))
    return posted


def progress_of(dc: DiscordEmulator, channel: int, nth: int = 0) -> str:
    """The content of the ``nth`` backfill progress message in ``channel`` (or "")."""
    shown = [m for m in public_messages(dc, channel) if m["content"].startswith("Backfill of ")]
    progress = [m for m in shown if "the links, by message" not in m["content"]]
    return str(progress[nth]["content"]) if len(progress) > nth else ""


async def test_backfill_rehosts_a_channels_earlier_images_once(
    tmp_path: Path, host_emu: HostEmulator, dc: DiscordEmulator
) -> None:
    dc.add_channel(GUILD, HISTORY, "history")
    posted = write_history(dc, HISTORY, 50)  # 30 with an image
    with_images = [m for m in posted if m["attachments"]]
    config = make_config(tmp_path, host_emu, dc)
    async with open_core(config) as core:  # 5 of them were rehosted before
        for message in with_images[10:15]:
            await core.rehost.rehost(earlier_request(message))
    assert len(host_emu.images) == 5
    earlier = {img.viewer_url for img in host_emu.images.values()}

    async with open_core(config) as core, running(core):
        command = await dc.slash_command(
            "rehost", ANN, HISTORY, GUILD, options=rehost_backfill(limit=50)
        )
        assert await command_answer(dc, command) == (
            f"Backfill of up to 50 earlier messages of <#{HISTORY}> started; its progress "
            "is shown in the channel."
        )
        await until(lambda: " done:" in progress_of(dc, HISTORY), timeout=30)

        assert len(host_emu.images) == 30  # 25 new
        progress, *summary = public_messages(dc, HISTORY)
        assert progress["content"] == (
            f"Backfill of <#{HISTORY}> done: 25 of 25 images rehosted from 25 messages, "
            "0 failed. 5 messages were rehosted before. The links follow. "
            "Delete links: each author finds theirs in /mine."
        )
        edits = [
            c
            for c in dc.calls
            if c.method == "PATCH" and c.path == f"/channels/{HISTORY}/messages/{progress['id']}"
        ]
        assert edits and all(c.status == 200 for c in edits)
        # One summary, in as few messages as 2,000 characters allow, oldest message first.
        assert summary[0]["content"].startswith(f"Backfill of <#{HISTORY}>: the links, by message.")
        assert summary[-1]["content"].endswith("Delete links: each author finds theirs in /mine.")
        for part, following in itertools.pairwise(summary):
            first_line = following["content"].split("\n")[0]
            assert len(part["content"]) + 1 + len(first_line) > 2000 >= len(part["content"])
        text = "\n".join(part["content"] for part in summary)
        new = [img for img in host_emu.images.values() if img.viewer_url not in earlier]
        assert all(f"(<{img.viewer_url}>)" in text for img in new)
        assert not any(url in text for url in earlier)
        order = [text.index(f"/{m['id']}>") for m in with_images if f"/{m['id']}>" in text]
        assert len(order) == 25 and order == sorted(order)
        # Nothing else was said: no answer per message, no DMs; the links wait in /mine.
        assert len(channel_posts(dc, HISTORY)) == 1 + len(summary)
        assert all(dc.dm_channel_of(user) is None for user in (ANN, BOB, CAT))
        mine = await core.library.live_uploads(PLATFORM, str(CAT))
        assert mine and all(u.delete_url for u in mine)

        # Again: everything there is rehosted already.
        again = await dc.slash_command(
            "rehost", ANN, HISTORY, GUILD, options=rehost_backfill(limit=50)
        )
        await command_answer(dc, again)
        await until(lambda: " done:" in progress_of(dc, HISTORY, 1), timeout=10)
        assert progress_of(dc, HISTORY, 1).startswith(
            f"Backfill of <#{HISTORY}> done: nothing new to rehost in 50 messages."
        )
        assert len(host_emu.images) == 30
    assert_nothing_leaked(dc, host_emu)


async def test_a_backfill_stopped_halfway_is_finished_by_the_next_run_and_can_be_stopped(
    tmp_path: Path, host_emu: HostEmulator, dc: DiscordEmulator
) -> None:
    dc.add_channel(GUILD, HISTORY, "history")
    first = write_history(dc, HISTORY, 20, every=3)  # each message has an image
    config = make_config(tmp_path, host_emu, dc)
    host_emu.latency = 0.2
    async with open_core(config) as core, running(core):
        await dc.slash_command("rehost", ANN, HISTORY, GUILD, options=rehost_backfill(limit=20))
        await until(lambda: len(host_emu.images) >= 3, timeout=10)
    # The process stopped halfway; the next one finishes the same backfill.
    async with open_core(config) as core, running(core):
        await until(lambda: " done:" in progress_of(dc, HISTORY), timeout=30)
        assert progress_of(dc, HISTORY).startswith(
            f"Backfill of <#{HISTORY}> done: 20 of 20 images rehosted from 20 messages"
        )
        _, *summary = public_messages(dc, HISTORY)
        text = "\n".join(part["content"] for part in summary)
        assert all(text.count(f"/{m['id']}>") == 1 for m in first)  # each message once
        recorded = await core.store.db.fetchrow(
            "select count(*) as n, count(distinct sha256) as distinct_bytes from uploads"
        )
        assert recorded == {"n": 20, "distinct_bytes": 20}

        # Another, stopped by a moderator: what was fed finishes and is reported.
        host_emu.latency = 1.0  # 40 images take 10 s: it is stopped long before
        write_history(dc, HISTORY, 40, every=3, shade=180)
        await dc.slash_command("rehost", ANN, HISTORY, GUILD, options=rehost_backfill(limit=40))
        await until(lambda: "of 40 images" in progress_of(dc, HISTORY, 1), timeout=10)
        stop = await dc.slash_command(
            "rehost", ANN, HISTORY, GUILD, options=rehost_backfill(stop=True)
        )
        assert (await command_answer(dc, stop)).startswith(f"Stopping the backfill of <#{HISTORY}>")
        await until(lambda: " stopped:" in progress_of(dc, HISTORY, 1), timeout=30)
        stopped = progress_of(dc, HISTORY, 1)
        rehosted = int(stopped.split(" stopped: ")[1].split(" of ")[0])
        assert 0 < rehosted < 40 and stopped.endswith(
            "Delete links: each author finds theirs in /mine."
        )
        assert await core.store.db.fetchval("select count(*) from uploads") == 20 + rehosted
    assert progress_of(dc, HISTORY, 2) == ""  # one progress message each
    assert_nothing_leaked(dc, host_emu)


async def test_a_backfill_posts_in_the_servers_language_and_answers_in_the_users(
    tmp_path: Path, host_emu: HostEmulator, dc: DiscordEmulator
) -> None:
    dc.add_channel(GUILD, HISTORY, "history")
    dc.world.guilds[GUILD].preferred_locale = "es-ES"  # the public posts: Spanish
    dc.world.users[ANN].locale = "zh-CN"  # her own answer: Chinese
    with_images = [m for m in write_history(dc, HISTORY, 6) if m["attachments"]]  # 4
    config = make_config(tmp_path, host_emu, dc)
    async with open_core(config) as core:  # one of them was rehosted before
        await core.rehost.rehost(earlier_request(with_images[0]))
    async with open_core(config) as core, running(core):
        command = await dc.slash_command(
            "rehost", ANN, HISTORY, GUILD, options=rehost_backfill(limit=6)
        )
        assert (await command_answer(dc, command)).startswith("已开始补录")
        done = f"Recuperación de <#{HISTORY}> terminada:"
        await until(
            lambda: any(m["content"].startswith(done) for m in public_messages(dc, HISTORY)),
            timeout=10,
        )
    first = channel_posts(dc, HISTORY)[0]
    assert first.json["content"] == (
        f"Recuperación de <#{HISTORY}>: leyendo hasta 6 mensajes anteriores…"
    )
    progress, *summary = public_messages(dc, HISTORY)
    assert progress["content"] == (
        f"{done} 3 de 3 imágenes realojadas de 3 mensajes, 0 con error. "
        "1 mensaje ya se había realojado. Los enlaces van a continuación. "
        "Enlaces de borrado: cada autor encuentra los suyos en /mine."
    )
    [part] = summary
    head, *lines = part["content"].split("\n")
    assert head == f"Recuperación de <#{HISTORY}>: los enlaces, por mensaje."
    assert lines[-1] == "Enlaces de borrado: cada autor encuentra los suyos en /mine."
    for message, line in zip(with_images[1:], lines[:-1], strict=True):  # oldest first
        img = hosted(host_emu, image(150 + int(message["content"].split()[-1])))
        link = f"https://discord.com/channels/{GUILD}/{HISTORY}/{message['id']}"
        author = message["author"]["id"]
        assert line == (
            f"- [mensaje](<{link}>) de <@{author}>: "
            f"[visor](<{img.viewer_url}>) · [directo](<{img.url}>)"
        )
    assert_nothing_leaked(dc, host_emu)


async def test_a_backfill_killed_halfway_is_finished_by_the_next_process(
    tmp_path: Path, host_emu: HostEmulator, dc: DiscordEmulator
) -> None:
    """SIGKILL in the middle of a backfill; the next ``rehost run`` completes it, each
    image recorded once, one progress message, one summary."""
    dc.add_channel(GUILD, HISTORY, "history")
    with_images = [m for m in write_history(dc, HISTORY, 50) if m["attachments"]]
    config = write_config(tmp_path, [host_table("chev", host_emu, "chevereto")], ["chev"])
    config.write_text(
        config.read_text() + f'\n[discord]\ntoken = "{dc.token}"\nguild_ids = [{GUILD}]\n'
        f'api_base_url = "{dc.api_base}"\ngateway_url = "{dc.gateway_url}"\n'
    )
    host_emu.latency = 0.2  # 30 images take at least 1.5 s

    async def rehost_run(log: str) -> asyncio.subprocess.Process:
        synced = len([c for c in dc.calls if c.method == "PUT" and c.path.endswith("/commands")])
        with (tmp_path / log).open("w") as stderr:  # its log, to read when this fails
            process = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "bot", "run", "-c", str(config), cwd=ROOT,
                stdout=asyncio.subprocess.DEVNULL, stderr=stderr,
            )  # fmt: skip
        await until(
            lambda: (
                len([c for c in dc.calls if c.method == "PUT" and c.path.endswith("/commands")])
                > synced
            ),
            timeout=30,
        )
        return process

    first = await rehost_run("first.log")
    try:
        await dc.slash_command("rehost", ANN, HISTORY, GUILD, options=rehost_backfill(limit=50))
        await until(lambda: len(host_emu.images) >= 6, timeout=30)
    finally:
        first.send_signal(signal.SIGKILL)
        await first.wait()
    assert " done:" not in progress_of(dc, HISTORY)
    second = await rehost_run("second.log")
    try:
        await until(lambda: " done:" in progress_of(dc, HISTORY), timeout=60)
    finally:
        second.send_signal(signal.SIGTERM)
        await asyncio.wait_for(second.wait(), 30)

    assert progress_of(dc, HISTORY).startswith(
        f"Backfill of <#{HISTORY}> done: 30 of 30 images rehosted from 30 messages, 0 failed."
    )
    assert progress_of(dc, HISTORY, 1) == ""  # the same progress message, edited
    _, *summary = public_messages(dc, HISTORY)
    text = "\n".join(part["content"] for part in summary)
    assert [text.count(f"/{m['id']}>") for m in with_images] == [1] * 30
    assert text.count("the links, by message") == 1
    store = await Store.open(storage_target(tmp_path))
    recorded = await store.db.fetchrow(
        "select count(*) as n, count(distinct sha256) as distinct_bytes from uploads"
    )
    await store.close()
    assert recorded == {"n": 30, "distinct_bytes": 30}
    assert len(host_emu.uploads) >= 30  # an upload cut short by the kill is made again
    assert_nothing_leaked(dc, host_emu)


# --- failures and lifecycle ------------------------------------------------------------------


async def test_long_answers_fit_discord_limits_and_rate_limits_are_waited_out(
    bot: DiscordAdapter, dc: DiscordEmulator, host_emu: HostEmulator
) -> None:
    long_name = "a-rather-long-file-name-" * 3
    photos = [
        dc.add_attachment(image(90 + i), f"{long_name}{i}.png", "image/png", channel_id=AUTO)
        for i in range(10)
    ]
    dc.fail_next("POST", rf"^/channels/{AUTO}/messages$", status=429, retry_after=0.05)
    await dc.send_message(AUTO, ANN, "", photos, guild_id=GUILD)
    await dc.wait_for(lambda call: posted_in(AUTO)(call) and call.status == 200)

    assert len(host_emu.images) == 10
    statuses = [call.status for call in dc.calls if posted_in(AUTO)(call)]
    assert statuses == [429, 200]
    [post] = bot_messages(dc, AUTO)
    assert len(post["content"]) <= 2000 and "more: see /mine." in post["content"]
    assert post["content"].endswith("Delete links were sent by DM.")
    assert len(post["embeds"]) == 10 and len(upload_ids(post)) == 10
    [dm] = bot_messages(dc, dc.dm_channel_of(ANN))
    assert len(dm["content"]) <= 2000 and "more: see /mine." in dm["content"]


async def test_a_wrong_token_fails_the_start_and_restores_the_endpoints(
    config: Config, dc: DiscordEmulator
) -> None:
    assert config.discord is not None
    before = Route.BASE
    async with open_core(config) as core:
        adapter = DiscordAdapter(core, replace(config.discord, token="wrong"))
        with pytest.raises(discord.LoginFailure):
            await adapter.start()
    assert (Route.BASE, dc.identifies) == (before, [])


async def test_unexpected_failures_get_a_safe_answer_and_go_to_the_log(
    bot: DiscordAdapter,
    dc: DiscordEmulator,
    host_emu: HostEmulator,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def broken(*args: object, **kwargs: object) -> Any:
        raise RuntimeError("internal detail 4711")

    # A command: a private sentence, the exception in the log only.
    monkeypatch.setattr(bot.client.core.library, "live_uploads", broken)
    mine = await dc.slash_command("mine", ANN, OTHER, GUILD)
    await dc.wait_for(lambda call: call.path.endswith("/callback"))
    [answer] = dc.interaction_responses(mine["id"])
    assert answer["flags"] == EPHEMERAL and answer["data"]["content"] == render.SORRY
    assert "command 'mine' failed" in caplog.text and "internal detail 4711" in caplog.text

    # A message: a short reply, the same handler.
    monkeypatch.setattr(bot.client.deletions, "confirm_prompt", broken)
    await dc.send_message(None, CAT, "delete 5")
    await dc.wait_for(posted_in(dc.dm_channel_of(CAT)))
    [reply] = bot_messages(dc, dc.dm_channel_of(CAT))
    assert reply["content"] == render.SORRY
    assert "handling message" in caplog.text
    everything = json.dumps([dc.channel_messages(c) for c in (OTHER, dc.dm_channel_of(CAT) or 0)])
    assert "4711" not in everything
    await _upload(dc, "cat.png", image(60))  # something for the leak check


async def test_a_failure_in_a_server_is_told_in_the_servers_language(
    config: Config, host_emu: HostEmulator, dc: DiscordEmulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Not from the server's setting: the database may be what failed."""
    dc.world.guilds[GUILD].preferred_locale = "es-ES"
    async with open_core(config) as core, running(core) as adapter:
        handle = adapter.client.intake.on_message

        async def fails_on_hola(message: discord.Message) -> None:
            if message.content == "hola":
                raise RuntimeError("internal detail 4711")
            await handle(message)

        monkeypatch.setattr(adapter.client.intake, "on_message", fails_on_hola)
        await dc.send_message(OTHER, ANN, "hola", guild_id=GUILD)
        await dc.wait_for(posted_in(OTHER))
    [reply] = bot_messages(dc, OTHER)
    assert reply["content"] == translate("es", render.SORRY) != render.SORRY
    assert "4711" not in reply["content"]


# --- what Discord refuses: expired tokens and links, deleted messages, crashes ---------------


def channel_posts(dc: DiscordEmulator, channel: int) -> list[RestCall]:
    return [call for call in dc.calls if posted_in(channel)(call) and call.status == 200]


async def test_a_token_that_expires_during_a_slow_upload_answers_in_the_channel_and_by_dm(
    bot: DiscordAdapter, dc: DiscordEmulator, host_emu: HostEmulator
) -> None:
    # The interaction is 14 min 59 s old: its token dies while the host takes 2 s.
    host_emu.script(Fault("slow", delay=2.0))
    attachment = dc.add_attachment(image(100), "slow.png", "image/png")
    interaction = await dc.slash_command(
        "upload", ANN, OTHER, GUILD, options=[attachment_option(attachment)], age=15 * 60 - 1
    )
    await dc.wait_for(posted_in(OTHER), timeout=10)
    await dc.wait_for(dm_posted(dc, ANN))

    [hosted] = host_emu.images.values()
    [deferred] = dc.interaction_responses(interaction["id"])
    assert deferred["type"] == 5  # it was deferred in time...
    assert not [c for c in dc.calls if c.path.startswith("/webhooks/")]  # ...then not used
    [thinking, public] = bot_messages(dc, OTHER)
    assert thinking["flags"] & (1 << 7)  # still "thinking": nothing can change it now
    assert public["flags"] == 0 and public["content"].startswith(f"<@{ANN}>: rehosted:")
    assert hosted.viewer_url in public["content"] and upload_ids(public)
    [dm] = bot_messages(dc, dc.dm_channel_of(ANN))
    assert f"<{hosted.delete_url}>" in dm["content"] and dm["flags"] & SUPPRESS_EMBEDS
    assert f"(in <#{OTHER}>)" in dm["content"]


async def test_a_refused_token_answers_in_the_channel_and_never_in_a_follow_up(
    bot: DiscordAdapter, dc: DiscordEmulator, host_emu: HostEmulator
) -> None:
    # Discord refuses the token when the answer is ready, though the clock says it is fine.
    invalid = {"code": 50027, "message": "Invalid Webhook Token"}
    dc.fail_next("PATCH", r"/messages/@original$", status=401, body=invalid)
    files = [
        dc.add_attachment(image(101), "one.png", "image/png", channel_id=OTHER),
        dc.add_attachment(PDF, "doc.pdf", "application/pdf", channel_id=OTHER),
    ]
    posted = await dc.send_message(OTHER, CAT, "", files, guild_id=GUILD)
    interaction = await dc.message_command("Rehost images", ANN, OTHER, posted, GUILD)
    await dc.wait_for(dm_posted(dc, ANN))

    [hosted] = host_emu.images.values()
    [public] = bot_messages(dc, OTHER)  # the "thinking" response was removed
    assert public["message_reference"]["message_id"] == posted["id"]
    assert public["content"].startswith(f"<@{ANN}>: rehosted:")
    assert "Skipped doc.pdf: not an image." in public["content"]
    assert hosted.viewer_url in public["content"] and not public["flags"]
    followups = dc.followups(interaction["token"])
    assert [(f["action"], f["target"]) for f in followups] == [("delete", "@original")]
    [dm] = bot_messages(dc, dc.dm_channel_of(ANN))
    assert f"<{hosted.delete_url}>" in dm["content"] and dm["flags"] & SUPPRESS_EMBEDS


async def test_closed_dms_after_an_expired_token_are_said_in_the_channel(
    bot: DiscordAdapter, dc: DiscordEmulator, host_emu: HostEmulator
) -> None:
    attachment = dc.add_attachment(image(102), "late.png", "image/png")
    await dc.slash_command(
        "upload", BOB, OTHER, GUILD, options=[attachment_option(attachment)], age=15 * 60
    )
    await until(lambda: len(channel_posts(dc, OTHER)) == 2)
    [hosted] = host_emu.images.values()
    _, public, note = bot_messages(dc, OTHER)
    assert hosted.viewer_url in public["content"] and public["content"].startswith(f"<@{BOB}>")
    assert note["content"] == (
        f"<@{BOB}>: I could not DM you your delete links (your DMs are closed); they wait in /mine."
    )
    assert bot_messages(dc, dc.dm_channel_of(BOB)) == []


async def test_a_deleted_source_message_gets_a_plain_answer_and_the_delete_link_by_dm(
    bot: DiscordAdapter, dc: DiscordEmulator, host_emu: HostEmulator
) -> None:
    host_emu.script(Fault("slow", delay=0.5))
    photo = dc.add_attachment(image(103), "gone.png", "image/png", channel_id=AUTO)
    posted = await dc.send_message(AUTO, ANN, "", [photo], guild_id=GUILD)
    await until(lambda: len(host_emu.uploads) == 1)  # uploading: the author deletes it now
    await dc.delete_user_message(AUTO, posted)
    await until(lambda: len(channel_posts(dc, AUTO)) == 1)

    [hosted] = host_emu.images.values()
    statuses = [call.status for call in dc.calls if posted_in(AUTO)(call)]
    assert statuses == [400, 200]  # the reply (50035), then a plain message
    [post] = bot_messages(dc, AUTO)
    assert "message_reference" not in post
    assert post["content"].startswith(f"<@{ANN}>: rehosted:")
    assert hosted.viewer_url in post["content"]
    assert post["content"].endswith("Delete links were sent by DM.")
    [dm] = bot_messages(dc, dc.dm_channel_of(ANN))
    assert f"<{hosted.delete_url}>" in dm["content"] and dm["flags"] & SUPPRESS_EMBEDS


async def test_a_replayed_message_is_answered_once(
    bot: DiscordAdapter, dc: DiscordEmulator, host_emu: HostEmulator
) -> None:
    photo = dc.add_attachment(image(104), "once.png", "image/png", channel_id=AUTO)
    posted = await dc.send_message(AUTO, ANN, "", [photo], guild_id=GUILD)
    await until(lambda: len(channel_posts(dc, AUTO)) == 1)
    # The gateway delivers the same MESSAGE_CREATE again (as after a resume), then another.
    await announce(dc.world, "MESSAGE_CREATE", dc.world.messages[int(posted["id"])])
    later = dc.add_attachment(image(105), "later.png", "image/png", channel_id=AUTO)
    await dc.send_message(AUTO, ANN, "", [later], guild_id=GUILD)
    await until(lambda: len(channel_posts(dc, AUTO)) == 2)

    first, second = bot_messages(dc, AUTO)
    assert first["message_reference"]["message_id"] == posted["id"]
    assert "later.png" in second["content"] and len(host_emu.images) == 2
    assert len(bot_messages(dc, dc.dm_channel_of(ANN))) == 2


async def test_refused_message_content_intent_is_reported_and_the_rest_works(
    tmp_path: Path, host_emu: HostEmulator, caplog: pytest.LogCaptureFixture
) -> None:
    async with DiscordEmulator(application_id=APP_ID, privileged_intents=0) as dc:
        _populate(dc)
        config = make_config(tmp_path, host_emu, dc)
        with caplog.at_level(logging.WARNING):
            async with open_core(config) as core, running(core):
                photo = dc.add_attachment(image(70), "dm.png", "image/png")
                await dc.send_message(None, ANN, "", [photo])
                await dc.wait_for(posted_in(dc.dm_channel_of(ANN)))
        assert "Discord refused the Message Content intent" in caplog.text
        assert [bool(i["intents"] & MESSAGE_CONTENT_INTENT) for i in dc.identifies] == [False]
        assert len(host_emu.images) == 1
        assert_nothing_leaked(dc, host_emu)


async def test_rehost_run_finishes_what_a_stopped_run_recorded(
    tmp_path: Path, host_emu: HostEmulator, dc: DiscordEmulator
) -> None:
    config = make_config(tmp_path, host_emu, dc)
    photo = dc.add_attachment(image(80), "late.png", "image/png", channel_id=AUTO)
    async with open_core(config) as core:  # a run that stopped before rehosting
        await core.rehost.submit(auto_rehost_request(photo))
    stop = asyncio.Event()
    run = asyncio.create_task(serve(config, stop))
    await dc.wait_for(posted_in(AUTO), timeout=10)
    stop.set()
    await asyncio.wait_for(run, 10)

    [hosted] = host_emu.images.values()
    [post] = bot_messages(dc, AUTO)
    assert hosted.viewer_url in post["content"] and post["content"].endswith("sent by DM.")
    [dm] = bot_messages(dc, dc.dm_channel_of(ANN))
    assert f"<{hosted.delete_url}>" in dm["content"]
    assert_nothing_leaked(dc, host_emu)
    assert re.search(r"\(#\d+\)", post["content"])


def auto_rehost_request(attachment: Json, message_id: int = 1) -> RehostRequest:
    """What intake records for an image posted in the auto-rehost channel."""
    source = SourceRef(
        attachment["filename"],
        url=attachment["url"],
        declared_size=attachment["size"],
        item_key=attachment["id"],
    )
    return RehostRequest(
        "discord",
        str(AUTO),
        str(ANN),
        [source],
        key=f"discord:m:{message_id}",
        owner_name="ann",
        chat_title=f"<#{AUTO}>",
    )


async def test_after_a_long_downtime_expired_attachment_links_are_renewed_first(
    tmp_path: Path, host_emu: HostEmulator, dc: DiscordEmulator
) -> None:
    config = make_config(tmp_path, host_emu, dc)
    # Posted while the bot was down; its link expired an hour ago (and the CDN says so).
    photo = dc.add_attachment(image(81), "old.png", "image/png", channel_id=AUTO, expires_in=-3600)
    async with open_core(config) as core:
        await core.rehost.submit(auto_rehost_request(photo))
    async with open_core(config) as core, running(core):
        await dc.wait_for(posted_in(AUTO), timeout=10)

    [refresh] = [call for call in dc.calls if call.path == "/attachments/refresh-urls"]
    assert refresh.json == {"attachment_urls": [photo["url"]]} and refresh.status == 200
    assert dc.bytes_served(photo["id"]) == len(image(81))
    [hosted] = host_emu.images.values()
    [post] = bot_messages(dc, AUTO)
    assert hosted.viewer_url in post["content"]
    assert_nothing_leaked(dc, host_emu)


async def test_a_command_stopped_mid_upload_is_answered_in_place_by_the_next_run(
    tmp_path: Path, host_emu: HostEmulator, dc: DiscordEmulator
) -> None:
    config = make_config(tmp_path, host_emu, dc)
    host_emu.script(Fault("slow", delay=30.0))
    attachment = dc.add_attachment(image(83), "again.png", "image/png")
    async with open_core(config) as core, running(core):
        interaction = await dc.slash_command(
            "upload", ANN, OTHER, GUILD, options=[attachment_option(attachment)]
        )
        await until(lambda: len(host_emu.uploads) == 1)  # stopped while uploading
    # Another process, with no Interaction object: the stored token answers in place.
    async with open_core(config) as core, running(core):
        await dc.wait_for(webhook("POST", interaction["token"]), timeout=10)

    [hosted] = host_emu.images.values()
    edit, secret = dc.followups(interaction["token"])
    assert (edit["action"], edit["target"], secret["replaced_original"]) == (
        "edit",
        "@original",
        False,
    )
    public, private = bot_messages(dc, OTHER)
    assert hosted.viewer_url in public["content"] and not public["flags"]
    assert private["flags"] == EPHEMERAL | SUPPRESS_EMBEDS
    assert f"<{hosted.delete_url}>" in private["content"]
    assert_nothing_leaked(dc, host_emu)


async def test_a_crash_between_sending_and_recording_makes_one_channel_message(
    tmp_path: Path, host_emu: HostEmulator, dc: DiscordEmulator
) -> None:
    config = make_config(tmp_path, host_emu, dc, lease=0.5)
    async with open_core(config) as core, running(core) as adapter:
        deliver = adapter.sender.deliver

        async def then_die(row: OutboxRow) -> Delivered:
            delivered = await deliver(row)
            if row.message.visibility is Visibility.PUBLIC:
                await asyncio.Event().wait()  # killed here: sent, never recorded
            return delivered

        adapter.sender.deliver = then_die
        photo = dc.add_attachment(image(82), "crash.png", "image/png", channel_id=AUTO)
        await dc.send_message(AUTO, ANN, "", [photo], guild_id=GUILD)
        await dc.wait_for(posted_in(AUTO))
    # The next run takes the row over once its lease lapsed, and sends it again.
    async with open_core(config) as core, running(core):
        await until(lambda: outbox_empty(core))

    first, again = [call.json or {} for call in dc.calls if posted_in(AUTO)(call)]
    assert first["nonce"] == again["nonce"] and again["enforce_nonce"] is True
    [post] = bot_messages(dc, AUTO)
    assert post["content"].endswith("Delete links were sent by DM.")
    assert len(bot_messages(dc, dc.dm_channel_of(ANN))) == 1
    assert_nothing_leaked(dc, host_emu)


# --- units ----------------------------------------------------------------------------------


def test_a_hosts_message_is_shown_inert_in_a_public_answer() -> None:
    error = f"refused **everything** @everyone <@{ANN}> [click](http://x.invalid)"
    text = render.public_text([ResultLine(1, "a_b.png", None, error)])
    assert "**everything**" not in text and "\\*\\*everything\\*\\*" in text
    assert "@everyone" not in text and f"<@{ANN}>" not in text and "\\[click]" in text
    assert "a\\_b.png" in text


def test_interaction_tokens_are_masked_in_logs() -> None:
    token = "aW50ZXJhY3Rpb246MTIzNDU2Nzg5OmFiY2RlZg-_.x"
    line = f"PATCH https://discord.com/api/v10/webhooks/{APP_ID}/{token}/messages/@original"
    callback = f"POST /api/v10/interactions/123/{token}/callback"
    assert token not in Redactor()(line) and token not in Redactor()(callback)
    assert Redactor()(line).endswith(f"/webhooks/{APP_ID}/[redacted]/messages/@original")


async def test_migrate_edits_the_channel_post_and_dms_the_new_delete_link(
    tmp_path: Path, host_emu: HostEmulator, dc: DiscordEmulator
) -> None:
    """``rehost migrate`` run beside the bot: the bot edits its post to the new links and
    DMs the owner the new delete link, embeds suppressed."""
    config = make_config(tmp_path, host_emu, dc)
    hosts = dict(config.hosts)
    hosts["new"] = replace(
        hosts["chev"], name="new", dialect="imgbb", endpoint=host_emu.imgbb_endpoint
    )
    hosts["new"] = replace(hosts["new"], formats=frozenset({"png", "jpeg"}), api_key=IMGBB_KEY)
    config = replace(config, hosts=hosts, upload=replace(config.upload, hosts=("chev", "new")))
    async with open_core(config) as core, running(core) as adapter:
        photo = dc.add_attachment(image(60), "photo.png", "image/png", channel_id=AUTO)
        await dc.send_message(AUTO, ANN, "", [photo], guild_id=GUILD)
        await dc.wait_for(posted_in(AUTO))
        await dc.wait_for(dm_posted(dc, ANN))
        [old] = await adapter.core.library.live_uploads(PLATFORM, str(ANN))
        migrator = Migrator(core.store, core.rehost.uploader, core.rehost.fetcher, core.http)
        [moved] = await migrator.run("chev", ["new"])  # the sender finds its rows
        await dc.wait_for(
            lambda call: call.method == "PATCH" and f"/channels/{AUTO}/messages/" in call.path
        )
        await until(lambda: len(bot_messages(dc, dc.dm_channel_of(ANN))) == 2)
        [now] = await adapter.core.library.live_uploads(PLATFORM, str(ANN))
    assert moved.ok and (now.id, now.host) == (old.id, "new")
    [post] = bot_messages(dc, AUTO)
    assert now.viewer_url in post["content"] and old.viewer_url not in post["content"]
    notice = bot_messages(dc, dc.dm_channel_of(ANN))[-1]
    assert "moved from chev to new" in notice["content"]
    assert now.delete_url is not None and f"<{now.delete_url}>" in notice["content"]
    assert notice["flags"] & SUPPRESS_EMBEDS
    assert_nothing_leaked(dc, host_emu)


async def test_a_heic_photo_arrives_as_jpeg_and_the_answers_say_it_was_converted(
    bot: DiscordAdapter, dc: DiscordEmulator, host_emu: HostEmulator
) -> None:
    import io

    from PIL import Image
    from pillow_heif import register_heif_opener

    register_heif_opener()
    heic = io.BytesIO()
    Image.new("RGB", (6, 4), (10, 200, 30)).save(heic, format="HEIF")
    photo = dc.add_attachment(heic.getvalue(), "IMG_0001.heic", "image/heic", channel_id=AUTO)
    await dc.send_message(AUTO, ANN, "", [photo], guild_id=GUILD)
    await dc.wait_for(posted_in(AUTO))
    await dc.wait_for(dm_posted(dc, ANN))
    [upload] = host_emu.uploads
    assert upload.files[0].content_type == "image/jpeg"
    [public] = bot_messages(dc, AUTO)
    [dm] = bot_messages(dc, dc.dm_channel_of(ANN))
    assert "converted from HEIC to JPEG" in public["content"]
    assert "converted from HEIC to JPEG" in dm["content"]


async def test_a_channel_marked_nsfw_sends_every_image_as_nsfw(
    bot: DiscordAdapter, dc: DiscordEmulator, host_emu: HostEmulator
) -> None:
    options = [
        {"name": "nsfw", "type": 1, "options": [{"name": "state", "type": 3, "value": "on"}]}
    ]
    switch = await dc.slash_command("rehost", ANN, AUTO, GUILD, options=options)
    await dc.wait_for(lambda call: call.path.endswith("/callback"))
    [answer] = dc.interaction_responses(switch["id"])
    photo = dc.add_attachment(image(90), "photo.png", "image/png", channel_id=AUTO)
    await dc.send_message(AUTO, CAT, "", [photo], guild_id=GUILD)
    await dc.wait_for(posted_in(AUTO))
    assert "now marked NSFW" in answer["data"]["content"]
    assert [upload.form.get("nsfw") for upload in host_emu.uploads] == ["1"]


# --- languages ------------------------------------------------------------------------------


async def test_the_ephemeral_answer_follows_the_users_locale_and_the_post_the_servers(
    bot: DiscordAdapter, dc: DiscordEmulator, host_emu: HostEmulator
) -> None:
    dc.world.users[ANN].locale = "es-ES"
    dc.world.guilds[GUILD].preferred_locale = "zh-CN"
    interaction = await _upload(dc, "cat.png", image(40))
    public, private = bot_messages(dc, OTHER)
    [hosted] = host_emu.images.values()
    # Only ANN sees this: in Spanish, the delete link with its warning.
    assert private["flags"] == EPHEMERAL | SUPPRESS_EMBEDS
    assert private["content"].startswith("Solo tú puedes ver esto. Imagen realojada:")
    assert f"borrar: <{hosted.delete_url}>" in private["content"]
    assert "O usa el botón Borrar." in private["content"]
    # The server's post: in the server's language (Chinese), the expiry a Discord timestamp.
    assert public["content"].startswith("已转存：")
    assert f"[查看页](<{hosted.viewer_url}>)" in public["content"]
    assert "Rehosted" not in public["content"] and "Solo" not in public["content"]
    assert interaction["locale"] == "es-ES" and interaction["guild_locale"] == "zh-CN"

    # A language chosen for the server wins over its locale, for the public post only.
    await Communities(bot.core.store.db).change(
        PLATFORM, str(GUILD), str(ANN), "ann", language="es"
    )
    dc.world.users[ANN].locale = "en-US"
    await _upload(dc, "dog.png", image(41))
    public, private = bot_messages(dc, OTHER)[2:]
    assert public["content"].startswith("Imagen realojada:")
    assert private["content"].startswith("Only you can see this. Rehosted:")


async def test_command_descriptions_are_localised_and_names_stay_english(
    bot: DiscordAdapter, dc: DiscordEmulator, host_emu: HostEmulator
) -> None:
    commands = {c["name"]: c for c in dc.registered_commands(GUILD)}
    upload = commands["upload"]
    assert upload["description"] == "Rehost an image and get stable links"
    localised = upload["description_localizations"]
    assert (
        localised["es-ES"] == localised["es-419"] == "Realoja una imagen y obtén enlaces estables"
    )
    assert localised["zh-CN"] == "转存一张图片并获取稳定链接"
    assert not upload.get("name_localizations")
    expire = next(o for o in upload["options"] if o["name"] == "expire")
    assert not expire.get("name_localizations")
    assert expire["description_localizations"]["es-ES"].startswith("Cuándo caduca la imagen")
    choices = {c["value"]: c for c in expire["choices"]}
    assert choices["1d"]["name_localizations"]["es-ES"] == "1 día"
    assert choices["never"]["name_localizations"]["zh-CN"] == "永不"
    # A description with a number in it: the same number in every language.
    backfill = next(o for o in commands["rehost"]["options"] if o["name"] == "backfill")
    limit = next(o for o in backfill["options"] if o["name"] == "limit")
    assert limit["description"] == "How many earlier messages to look through (default 100)"
    assert limit["description_localizations"]["es-ES"] == (
        "Cuántos mensajes anteriores revisar (por defecto 100)"
    )
    assert limit["description_localizations"]["zh-CN"] == "要查看多少条较早的消息（默认 100）"
    await _upload(dc, "cat.png", image(42))  # something for the leak check
