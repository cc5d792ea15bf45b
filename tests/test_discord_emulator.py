"""The Discord emulator speaks well enough for the real discord.py to work against it."""

from __future__ import annotations

import asyncio
import io
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import discord
import pytest
from discord import app_commands
from discord.ext import commands

from sandbox.discord_api import DiscordEmulator, RestCall, discord_endpoints, running_client

APP_ID = 1_200_000_000_000_000_001
GUILD = 1_200_000_000_000_000_100
CHANNEL = 1_200_000_000_000_000_101
ANN = 1_200_000_000_000_000_201
BOB = 1_200_000_000_000_000_202  # DMs closed
PNG = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x03\x00\x00\x00\x02" + b"\x00" * 200


class EmuBot(discord.Client):
    """A small bot with a command tree; records what reaches it."""

    def __init__(self, *, message_content: bool = True, members: bool = False) -> None:
        intents = discord.Intents.default()
        intents.message_content = message_content
        intents.members = members
        super().__init__(intents=intents, guild_ready_timeout=0.05)
        self.tree = app_commands.CommandTree(self)
        self.messages: asyncio.Queue[discord.Message] = asyncio.Queue()
        self.resumed = asyncio.Event()

    async def on_message(self, message: discord.Message) -> None:
        if message.author.id != APP_ID:
            await self.messages.put(message)

    async def on_resumed(self) -> None:
        self.resumed.set()


@pytest.fixture
async def dc() -> AsyncIterator[DiscordEmulator]:
    async with DiscordEmulator(application_id=APP_ID, bot_name="rehost") as emulator:
        emulator.add_user(ANN, "ann")
        emulator.add_user(BOB, "bob", dms_open=False)
        emulator.add_guild(GUILD, name="G", owner_id=ANN, channels=[CHANNEL], members=[(BOB, 0)])
        yield emulator
        assert emulator.internal_errors == []


@pytest.fixture
async def bot(dc: DiscordEmulator) -> AsyncIterator[EmuBot]:
    async with running_client(EmuBot(), dc) as client:
        yield client


def _path_has(method: str, fragment: str) -> Any:
    return lambda call: call.method == method and fragment in call.path


async def test_ready_with_guild_over_zlib_stream(dc: DiscordEmulator, bot: EmuBot) -> None:
    guild = bot.get_guild(GUILD)
    assert guild is not None and guild.name == "G"
    assert guild.me is not None and guild.me.id == APP_ID
    channel = guild.get_channel(CHANNEL)
    assert isinstance(channel, discord.TextChannel)
    assert channel.permissions_for(guild.me).send_messages
    assert bot.application_id == APP_ID
    assert dc.gateway_queries[0] == {"v": "10", "encoding": "json", "compress": "zlib-stream"}
    assert dc.identifies[0]["intents"] & discord.Intents(message_content=True).value


async def test_tree_sync_to_guild_is_registered(dc: DiscordEmulator, bot: EmuBot) -> None:
    @bot.tree.command(name="rehost", description="Rehost an image", guild=discord.Object(GUILD))
    async def rehost(interaction: discord.Interaction, image: discord.Attachment) -> None:
        pass

    synced = await bot.tree.sync(guild=discord.Object(GUILD))
    [command] = dc.registered_commands(GUILD)
    assert command["name"] == "rehost" and command["options"][0]["type"] == 11
    assert synced[0].id == int(command["id"])
    assert dc.registered_commands() == []


async def test_slash_command_defers_reads_attachment_and_follows_up(
    dc: DiscordEmulator, bot: EmuBot
) -> None:
    done: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()

    @bot.tree.command(name="rehost", description="Rehost an image", guild=discord.Object(GUILD))
    async def rehost(interaction: discord.Interaction, image: discord.Attachment) -> None:
        await interaction.response.defer(thinking=True)
        data = await image.read()
        await interaction.edit_original_response(content=f"rehosted {image.filename}")
        await interaction.followup.send("secret", ephemeral=True, suppress_embeds=True)
        done.set_result(data)

    await bot.tree.sync(guild=discord.Object(GUILD))
    attachment = dc.add_attachment(PNG, "cat.png", "image/png")
    assert (attachment["width"], attachment["height"]) == (3, 2)
    option = {"name": "image", "type": 11, "value": attachment}
    interaction = await dc.slash_command("rehost", ANN, CHANNEL, GUILD, options=[option])

    assert await asyncio.wait_for(done, 5) == PNG
    assert dc.bytes_served(attachment["id"]) == len(PNG)
    assert [r["type"] for r in dc.interaction_responses(interaction["id"])] == [5]
    edit, secret = dc.followups(interaction["token"])
    assert (edit["action"], edit["target"]) == ("edit", "@original")
    assert edit["content"] == "rehosted cat.png"
    assert secret["action"] == "send" and secret["flags"] == 64 | 4
    assert not secret["replaced_original"]
    original, followup = dc.channel_messages(CHANNEL)
    assert original["content"] == "rehosted cat.png" and original["flags"] == 0
    assert followup["content"] == "secret" and followup["flags"] == 64 | 4


async def test_first_followup_after_public_defer_replaces_thinking_message(
    dc: DiscordEmulator, bot: EmuBot
) -> None:
    @bot.tree.command(name="leak", description="Shows the trap", guild=discord.Object(GUILD))
    async def leak(interaction: discord.Interaction) -> None:
        await interaction.response.defer(thinking=True)
        await interaction.followup.send("delete link", ephemeral=True)

    await bot.tree.sync(guild=discord.Object(GUILD))
    interaction = await dc.slash_command("leak", ANN, CHANNEL, GUILD)
    await dc.wait_for(_path_has("POST", "/webhooks/"))
    [entry] = dc.followups(interaction["token"])
    assert entry["flags"] == 64 and entry["replaced_original"]
    [message] = dc.channel_messages(CHANNEL)
    assert message["content"] == "delete link" and not message["flags"] & 64  # public!


async def test_message_context_menu_gets_target_with_attachments(
    dc: DiscordEmulator, bot: EmuBot
) -> None:
    seen: asyncio.Future[discord.Message] = asyncio.get_running_loop().create_future()

    @bot.tree.context_menu(name="Rehost images", guild=discord.Object(GUILD))
    async def rehost_images(interaction: discord.Interaction, message: discord.Message) -> None:
        await interaction.response.send_message("working", ephemeral=True)
        seen.set_result(message)

    await bot.tree.sync(guild=discord.Object(GUILD))
    attachment = dc.add_attachment(PNG, "dog.png", "image/png", channel_id=CHANNEL)
    posted = await dc.send_message(CHANNEL, ANN, "look", [attachment], guild_id=GUILD)
    await asyncio.wait_for(bot.messages.get(), 5)
    interaction = await dc.message_command("Rehost images", BOB, CHANNEL, posted, GUILD)

    message = await asyncio.wait_for(seen, 5)
    assert message.id == int(posted["id"]) and message.author.id == ANN
    assert [a.filename for a in message.attachments] == ["dog.png"]
    assert await message.attachments[0].read() == PNG
    [response] = dc.interaction_responses(interaction["id"])
    assert response["type"] == 4 and response["flags"] == 64


async def test_button_presses_reach_view_callbacks(dc: DiscordEmulator, bot: EmuBot) -> None:
    clicks: asyncio.Queue[str] = asyncio.Queue()

    class Confirm(discord.ui.View):
        @discord.ui.button(label="Delete", custom_id="confirm-delete")
        async def confirm(
            self, interaction: discord.Interaction, _: discord.ui.Button[Any]
        ) -> None:
            await interaction.response.defer()  # a component: DEFERRED_UPDATE_MESSAGE
            await interaction.edit_original_response(content="deleting")
            await clicks.put(f"confirm by {interaction.user.id}")

        @discord.ui.button(label="Cancel", custom_id="cancel")
        async def cancel(self, interaction: discord.Interaction, _: discord.ui.Button[Any]) -> None:
            await interaction.response.edit_message(content="cancelled", view=None)
            await clicks.put("cancel")

    channel = bot.get_channel(CHANNEL)
    assert isinstance(channel, discord.TextChannel)
    sent = await channel.send("Delete the image?", view=Confirm(timeout=None))
    first = await dc.press_button("confirm-delete", ANN, CHANNEL, sent.id, GUILD)
    assert await asyncio.wait_for(clicks.get(), 5) == f"confirm by {ANN}"
    second = await dc.press_button("cancel", ANN, CHANNEL, sent.id, GUILD)
    assert await asyncio.wait_for(clicks.get(), 5) == "cancel"

    assert [r["type"] for r in dc.interaction_responses(first["id"])] == [6]
    assert [r["type"] for r in dc.interaction_responses(second["id"])] == [7]
    [edit] = dc.followups(first["token"])
    assert edit["message_id"] == str(sent.id) and edit["content"] == "deleting"
    [message] = dc.channel_messages(CHANNEL)
    assert message["content"] == "cancelled" and message["components"] == []
    with pytest.raises(AssertionError, match="not present"):
        await dc.press_button("cancel", ANN, CHANNEL, sent.id, GUILD)


async def test_guild_message_reaches_on_message(dc: DiscordEmulator, bot: EmuBot) -> None:
    attachment = dc.add_attachment(PNG, "a.png", "image/png", channel_id=CHANNEL)
    await dc.send_message(CHANNEL, ANN, "rehost this", [attachment], guild_id=GUILD)

    message = await asyncio.wait_for(bot.messages.get(), 5)
    assert message.content == "rehost this" and message.guild is not None
    assert isinstance(message.author, discord.Member) and message.author.id == ANN
    assert message.attachments[0].url == attachment["url"]


async def test_without_message_content_intent_guild_messages_are_blank(
    dc: DiscordEmulator,
) -> None:
    async with running_client(EmuBot(message_content=False), dc) as client:
        attachment = dc.add_attachment(PNG, "a.png", "image/png", channel_id=CHANNEL)
        await dc.send_message(CHANNEL, ANN, "hidden", [attachment], guild_id=GUILD)
        blank = await asyncio.wait_for(client.messages.get(), 5)
        await dc.send_message(CHANNEL, ANN, f"<@{APP_ID}> shown", guild_id=GUILD)
        mention = await asyncio.wait_for(client.messages.get(), 5)
        await dc.send_message(None, ANN, "dm", [attachment])
        direct = await asyncio.wait_for(client.messages.get(), 5)
    assert (blank.content, blank.attachments) == ("", [])
    assert mention.content.endswith("shown")
    assert direct.content == "dm" and len(direct.attachments) == 1
    assert direct.channel.id == dc.dm_channel_of(ANN)


async def test_dm_to_user_with_closed_dms_is_forbidden(dc: DiscordEmulator, bot: EmuBot) -> None:
    bob = await bot.fetch_user(BOB)
    with pytest.raises(discord.Forbidden) as caught:
        await bob.send("your delete link")
    assert caught.value.code == 50007
    assert dc.dm_channel_of(BOB) is not None
    assert dc.channel_messages(dc.dm_channel_of(BOB) or 0) == []

    ann = await bot.fetch_user(ANN)
    sent = await ann.send("<https://host.example/delete/1>", suppress_embeds=True)
    [stored] = dc.channel_messages(dc.dm_channel_of(ANN) or 0)
    assert int(stored["id"]) == sent.id and stored["flags"] == 4


async def test_rate_limit_with_via_is_retried(dc: DiscordEmulator, bot: EmuBot) -> None:
    dc.fail_next("POST", r"^/channels/\d+/messages$", status=429, retry_after=0.05)
    channel = bot.get_channel(CHANNEL)
    assert isinstance(channel, discord.TextChannel)
    sent = await channel.send("hello")
    statuses = [c.status for c in dc.calls if c.method == "POST" and "/messages" in c.path]
    assert statuses == [429, 200]
    assert dc.channel_messages(CHANNEL)[0]["id"] == str(sent.id)

    dc.fail_next("POST", r"/messages$", status=429, via=False)
    with pytest.raises(discord.HTTPException) as caught:
        await channel.send("again")
    assert caught.value.status == 429


async def test_links_are_crawled_unless_suppressed(dc: DiscordEmulator, bot: EmuBot) -> None:
    channel = bot.get_channel(CHANNEL)
    assert isinstance(channel, discord.TextChannel)
    await channel.send("view https://img.example/a.png")
    await channel.send("delete https://img.example/del/1", suppress_embeds=True)
    await channel.send("delete <https://img.example/del/2>")
    assert dc.unfurled_urls == ["https://img.example/a.png"]


async def test_preview_crawler_fetches_links_when_asked() -> None:
    async with DiscordEmulator(application_id=APP_ID, fetch_unfurls=True) as crawling:
        crawling.add_guild(GUILD, owner_id=ANN, channels=[CHANNEL])
        image = crawling.add_attachment(PNG, "a.png", "image/png")
        async with running_client(EmuBot(), crawling) as client:
            channel = client.get_channel(CHANNEL)
            assert isinstance(channel, discord.TextChannel)
            await channel.send(f"see {image['url']}")
            await crawling.drain()
    assert crawling.unfurl_statuses == [(image["url"], 200)]
    assert crawling.bytes_served(image["id"]) == len(PNG)


async def test_late_acknowledgement_is_unknown_interaction(
    dc: DiscordEmulator, bot: EmuBot
) -> None:
    dc.world.ack_deadline = 0.05
    failed: asyncio.Future[discord.NotFound] = asyncio.get_running_loop().create_future()

    @bot.tree.command(name="slow", description="Too slow", guild=discord.Object(GUILD))
    async def slow(interaction: discord.Interaction) -> None:
        await asyncio.sleep(0.1)
        try:
            await interaction.response.defer()
        except discord.NotFound as exc:
            failed.set_result(exc)

    await bot.tree.sync(guild=discord.Object(GUILD))
    await dc.slash_command("slow", ANN, CHANNEL, GUILD)
    assert (await asyncio.wait_for(failed, 5)).code == 10062


async def test_gateway_resume_after_dropped_connection(dc: DiscordEmulator, bot: EmuBot) -> None:
    await dc.drop_gateway_connections()
    await asyncio.wait_for(bot.resumed.wait(), 5)
    await dc.send_message(CHANNEL, ANN, "still here", guild_id=GUILD)
    assert (await asyncio.wait_for(bot.messages.get(), 5)).content == "still here"
    assert len(dc.gateway_queries) == 2 and len(dc.identifies) == 1


async def test_uploads_are_served_back(dc: DiscordEmulator, bot: EmuBot) -> None:
    @bot.tree.command(name="echo", description="Echo a file", guild=discord.Object(GUILD))
    async def echo(interaction: discord.Interaction) -> None:
        await interaction.response.send_message("here", file=discord.File(io.BytesIO(PNG), "e.png"))

    await bot.tree.sync(guild=discord.Object(GUILD))
    channel = bot.get_channel(CHANNEL)
    assert isinstance(channel, discord.TextChannel)
    user_message = await dc.send_message(CHANNEL, ANN, "hi", guild_id=GUILD)
    incoming = await asyncio.wait_for(bot.messages.get(), 5)
    await incoming.add_reaction("\N{HOURGLASS}")
    reaction = {"count": 1, "me": True, "emoji": {"id": None, "name": "\N{HOURGLASS}"}}
    assert dc.message(incoming.id)["reactions"] == [reaction]
    sent = await incoming.reply("report", file=discord.File(io.BytesIO(b"log"), "r.txt"))
    assert await sent.attachments[0].read() == b"log"
    assert sent.reference is not None and sent.reference.message_id == int(user_message["id"])
    upload = await dc.wait_for(_path_has("POST", f"/channels/{CHANNEL}/messages"))
    assert upload.files == [("r.txt", b"log")]
    assert upload.json is not None and upload.json["content"] == "report"

    await dc.slash_command("echo", ANN, CHANNEL, GUILD)
    await dc.wait_for(_path_has("POST", "/callback"))
    echoed = dc.channel_messages(CHANNEL)[-1]
    assert echoed["content"] == "here" and echoed["attachments"][0]["filename"] == "e.png"
    assert dc.bytes_served(echoed["attachments"][0]["id"]) == 0


async def test_commands_bot_global_command_in_dm(dc: DiscordEmulator) -> None:
    answered: asyncio.Future[discord.Interaction] = asyncio.get_running_loop().create_future()

    class Bot(commands.Bot):
        async def setup_hook(self) -> None:
            await self.tree.sync()

    intents = discord.Intents.default()
    bot = Bot(command_prefix=commands.when_mentioned, intents=intents, guild_ready_timeout=0.05)

    @bot.tree.command(name="mylinks", description="Your uploads")
    async def mylinks(interaction: discord.Interaction) -> None:
        await interaction.response.send_message("nothing yet", ephemeral=True)
        answered.set_result(interaction)

    @bot.tree.command(name="setup", description="Admins only")
    @app_commands.guild_only()
    @app_commands.default_permissions(manage_guild=True)
    async def setup(interaction: discord.Interaction) -> None:
        await interaction.response.send_message("ok")

    async with running_client(bot, dc):
        assert {c["name"] for c in dc.registered_commands()} == {"mylinks", "setup"}
        await dc.slash_command("mylinks", ANN, None)
        interaction = await asyncio.wait_for(answered, 5)
        assert isinstance(interaction.channel, discord.DMChannel)
        assert interaction.channel.id == dc.dm_channel_of(ANN)
        with pytest.raises(AssertionError, match="not offered"):
            await dc.slash_command("setup", ANN, None)
        with pytest.raises(AssertionError, match="may not see"):
            await dc.slash_command("setup", BOB, CHANNEL, GUILD)
        await dc.slash_command("setup", ANN, CHANNEL, GUILD)  # the owner may
        dc.add_guild(GUILD + 1, name="Later", channels=[CHANNEL + 10])
        joined = await bot.wait_for("guild_join", timeout=5)
        assert joined.id == GUILD + 1 and joined.get_channel(CHANNEL + 10) is not None


async def test_bad_token_and_privileged_intents_are_refused(dc: DiscordEmulator) -> None:
    client = EmuBot()
    with discord_endpoints(dc.api_base, dc.gateway_url), pytest.raises(discord.LoginFailure):
        await client.login("not-the-token")
    await client.close()
    with pytest.raises(discord.PrivilegedIntentsRequired):
        async with running_client(EmuBot(members=True), dc):
            pass


async def test_wire_details(dc: DiscordEmulator) -> None:
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{dc.api_base}/gateway") as response:
            assert response.headers["Content-Type"] == "application/json"
            assert await response.json() == {"url": dc.gateway_url}
        async with http.get(f"{dc.api_base}/users/@me") as response:
            assert response.status == 401
        attachment = dc.add_attachment(b"abc", "a.txt", "text/plain")
        async with http.get(attachment["url"].split("?")[0]) as response:
            assert response.status == 404  # the CDN wants the signed query
        async with http.get(attachment["url"]) as response:
            assert await response.read() == b"abc"
    unanswered: list[RestCall] = [c for c in dc.calls if not c.status]
    assert unanswered == []
    with pytest.raises(AssertionError, match="no matching REST call"):
        await dc.wait_for(_path_has("DELETE", "/nothing"), timeout=0.05)
