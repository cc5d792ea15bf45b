"""The Discord adapter, end to end: the real discord.py client against the Discord emulator,
the real rehost core against the host emulator. Assertions are on what users would see.

After every test, a leak check: no delete link in any link Discord would preview, in any
public message, or in any message without SUPPRESS_EMBEDS.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any

import discord
import pytest
from discord.http import Route

from adapters.discord import render
from adapters.discord.bot import DiscordAdapter
from bot.app import Core, open_core
from bot.config import Config, parse_config
from bot.runner import serve
from bot.service import RehostRequest, SourceRef
from sandbox import samples
from sandbox.discord_api import DiscordEmulator, RestCall
from sandbox.hostemu import HostEmulator
from tests.conftest import CHEV_KEY

APP_ID = 1_300_000_000_000_000_001
GUILD = 1_300_000_000_000_000_100
AUTO = 1_300_000_000_000_000_101  # auto-rehost by configuration
OTHER = 1_300_000_000_000_000_102
ANN = 1_300_000_000_000_000_201  # the guild's owner (Manage Server)
BOB = 1_300_000_000_000_000_202  # DMs closed
CAT = 1_300_000_000_000_000_203
ROBOT = 1_300_000_000_000_000_204  # another bot
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


def make_config(tmp_path: Path, host_emu: HostEmulator, dc: DiscordEmulator) -> Config:
    raw = {
        "upload": {"hosts": ["chev"], "retry_backoff": 0.01},
        "hosts": {
            "chev": {
                "dialect": "chevereto",
                "endpoint": host_emu.chevereto_endpoint,
                "api_key": CHEV_KEY,
            }
        },
        "storage": {"path": str(tmp_path / "rehost.db")},
        "discord": {
            "token": dc.token,
            "auto_rehost_channels": [AUTO],
            "guild_ids": [GUILD],
            "api_base_url": dc.api_base,
            "gateway_url": dc.gateway_url,
        },
    }
    return parse_config(raw, base_dir=tmp_path, environ={})


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
    channels = [AUTO, OTHER] + [dc.dm_channel_of(u) or 0 for u in (ANN, BOB, CAT)]
    for channel in channels:
        for message in dc.channel_messages(channel):
            shown = json.dumps([message["content"], message["embeds"]])
            if not any(link in shown for link in links):
                continue
            assert message["flags"] & SUPPRESS_EMBEDS, f"previews on: {message['content']}"
            if channel in (AUTO, OTHER):
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


def attachment_option(attachment: Json) -> Json:
    return {"name": "file", "type": 11, "value": attachment}


async def until(condition: Callable[[], bool], timeout: float = 5.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not condition():
        assert loop.time() < deadline, "the bot did not do it in time"
        await asyncio.sleep(0.01)


# --- commands ----------------------------------------------------------------------------


async def test_commands_are_registered_in_the_configured_guild(
    bot: DiscordAdapter, dc: DiscordEmulator, host_emu: HostEmulator
) -> None:
    commands = {c["name"]: c for c in dc.registered_commands(GUILD)}
    assert set(commands) == {"upload", "Rehost images", "mine", "delete", "rehost"}
    assert dc.registered_commands() == []
    expire = next(o for o in commands["upload"]["options"] if o["name"] == "expire")
    choices = {c["value"]: c["name"] for c in expire["choices"]}
    assert len(choices) <= 25 and choices["1d"] == "1 day" and choices["never"] == "never"
    assert "90s" not in choices  # only what Chevereto honours exactly
    assert commands["rehost"]["default_member_permissions"] == str(1 << 5)  # Manage Server
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
    mine = bot.client.service.live_uploads("discord", str(ANN))
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
        "Auto-rehost is on: images posted in this channel are rehosted (kept for 1 week)."
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
    image_a, image_b = host_emu.images.values()

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
    assert bot.client.service.live_uploads("discord", str(ANN)) == []


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


async def test_an_unexpected_failure_gets_a_safe_answer(
    bot: DiscordAdapter,
    dc: DiscordEmulator,
    host_emu: HostEmulator,
    caplog: pytest.LogCaptureFixture,
) -> None:
    dc.fail_next("PATCH", r"/messages/@original$", status=400, body={"code": 0, "message": "x"})
    attachment = dc.add_attachment(image(60), "cat.png", "image/png")
    interaction = await dc.slash_command(
        "upload", ANN, OTHER, GUILD, options=[attachment_option(attachment)]
    )
    token = interaction["token"]
    await until(
        lambda: len([c for c in dc.calls if webhook("PATCH", token, "/messages/@original")(c)]) == 2
    )
    await until(lambda: len(dc.followups(token)) == 1)
    [message] = bot_messages(dc, OTHER)
    assert message["content"] == render.SORRY_AFTER_UPLOAD and message["flags"] == 0
    assert "command 'upload' failed" in caplog.text
    assert "HTTPException" in caplog.text  # in the log, never in the chat


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


async def test_rehost_run_starts_the_adapter_and_finishes_interrupted_rehosts(
    tmp_path: Path, host_emu: HostEmulator, dc: DiscordEmulator
) -> None:
    config = make_config(tmp_path, host_emu, dc)
    photo = dc.add_attachment(image(80), "late.png", "image/png", channel_id=AUTO)
    source = SourceRef("late.png", url=photo["url"], declared_size=photo["size"])
    async with open_core(config) as core:  # a run that stopped before rehosting
        core.rehost.enqueue(RehostRequest("discord", str(AUTO), str(ANN), [source]))
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
