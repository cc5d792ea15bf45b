"""The Discord emulator speaks well enough for the real discord.py to work against it."""

from __future__ import annotations

import asyncio
import datetime
import io
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import parse_qs, urlsplit

import aiohttp
import discord
import pytest
from discord import app_commands
from discord.ext import commands

from sandbox.discord_api import DiscordEmulator, RestCall, discord_endpoints, running_client
from sandbox.discord_model import DEFAULT_EVERYONE, MANAGE_MESSAGES

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
    dc.expire_attachment_urls()  # the target is served again, with fresh URLs
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


# -- stricter than kind: expiring tokens and URLs, nonces, replies to deleted messages


async def _sync_command(bot: EmuBot, name: str, callback: Any) -> None:
    bot.tree.command(name=name, description=name, guild=discord.Object(GUILD))(callback)
    await bot.tree.sync(guild=discord.Object(GUILD))


def _http_error(exc: BaseException) -> tuple[int, int]:
    assert isinstance(exc, discord.HTTPException), exc
    return exc.status, exc.code


async def test_interaction_token_expires_15_minutes_after_its_snowflake(
    dc: DiscordEmulator, bot: EmuBot
) -> None:
    outcomes: asyncio.Queue[list[BaseException | None]] = asyncio.Queue()

    async def try_all(*calls: Any) -> list[BaseException | None]:
        results: list[BaseException | None] = []
        for call in calls:
            try:
                await call()
                results.append(None)
            except discord.HTTPException as exc:
                results.append(exc)
        return results

    async def stale(interaction: discord.Interaction) -> None:
        await interaction.response.defer(thinking=True)  # the callback counts from dispatch
        await outcomes.put(
            await try_all(
                lambda: interaction.followup.send("late"),
                interaction.original_response,
                lambda: interaction.edit_original_response(content="late"),
                interaction.delete_original_response,
            )
        )

    async def fresh(interaction: discord.Interaction) -> None:
        await interaction.response.defer(thinking=True)
        first = await try_all(lambda: interaction.followup.send("in time"))
        # discord.py reads the same expiry from the snowflake; wait for it, then try again.
        await discord.utils.sleep_until(interaction.expires_at + datetime.timedelta(seconds=0.05))
        await outcomes.put(
            first + await try_all(lambda: interaction.edit_original_response(content="x"))
        )

    await _sync_command(bot, "stale", stale)
    await _sync_command(bot, "fresh", fresh)

    old = await dc.slash_command("stale", ANN, CHANNEL, GUILD, age=15 * 60 + 5)
    results = await asyncio.wait_for(outcomes.get(), 5)
    assert [_http_error(r) for r in results if r is not None] == [(401, 50027)] * 4
    assert [r["type"] for r in dc.interaction_responses(old["id"])] == [5]
    assert dc.followups(old["token"]) == []

    young = await dc.slash_command("fresh", ANN, CHANNEL, GUILD, age=15 * 60 - 2)
    sent, late = await asyncio.wait_for(outcomes.get(), 10)
    assert sent is None and _http_error(late or Exception()) == (401, 50027)
    assert [f["action"] for f in dc.followups(young["token"])] == ["send"]


async def test_old_button_press_can_be_acknowledged_but_not_edited(
    dc: DiscordEmulator, bot: EmuBot
) -> None:
    failed: asyncio.Future[BaseException] = asyncio.get_running_loop().create_future()

    class Old(discord.ui.View):
        @discord.ui.button(label="Go", custom_id="go")
        async def go(self, interaction: discord.Interaction, _: discord.ui.Button[Any]) -> None:
            await interaction.response.defer()
            try:
                await interaction.edit_original_response(content="edited")
            except discord.HTTPException as exc:
                failed.set_result(exc)

    channel = bot.get_channel(CHANNEL)
    assert isinstance(channel, discord.TextChannel)
    sent = await channel.send("press", view=Old(timeout=None))
    press = await dc.press_button("go", ANN, CHANNEL, sent.id, GUILD, age=20 * 60)
    assert _http_error(await asyncio.wait_for(failed, 5)) == (401, 50027)
    assert [r["type"] for r in dc.interaction_responses(press["id"])] == [6]
    assert dc.message(sent.id)["content"] == "press"


async def test_attachment_urls_expire_and_are_signed_again(
    dc: DiscordEmulator, bot: EmuBot
) -> None:
    attachment = dc.add_attachment(PNG, "a.png", "image/png", channel_id=CHANNEL)
    posted = await dc.send_message(CHANNEL, ANN, "look", [attachment], guild_id=GUILD)
    await asyncio.wait_for(bot.messages.get(), 5)
    short = dc.add_attachment(b"gone", "b.txt", "text/plain", expires_in=0)
    dc.expire_attachment_urls()  # the bot was down for a day

    channel = bot.get_channel(CHANNEL)
    assert isinstance(channel, discord.TextChannel)
    fetched = await channel.fetch_message(int(posted["id"]))
    assert fetched.attachments[0].url != attachment["url"]
    assert await fetched.attachments[0].read() == PNG

    elsewhere = "https://img.example/a.png"
    urls = [attachment["url"], short["url"], elsewhere]
    route = discord.http.Route("POST", "/attachments/refresh-urls")
    answer = await bot.http.request(route, json={"attachment_urls": urls})
    pairs = [(r["original"], r["refreshed"]) for r in answer["refreshed_urls"]]
    assert [original for original, _ in pairs] == urls
    assert pairs[2] == (elsewhere, elsewhere)  # not an attachment URL: returned unchanged
    async with aiohttp.ClientSession() as http:
        for url in (attachment["url"], short["url"]):
            async with http.get(url) as response:
                assert response.status == 404
        for url, data in ((pairs[0][1], PNG), (pairs[1][1], b"gone")):
            async with http.get(url) as response:
                assert await response.read() == data
        async with http.post(f"{dc.api_base}/attachments/refresh-urls", json=answer) as response:
            assert response.status == 401  # needs the bot token


async def test_attachment_url_lifetime_is_configurable() -> None:
    async with DiscordEmulator(application_id=APP_ID, attachment_url_lifetime=3600) as hourly:
        url = hourly.add_attachment(PNG, "a.png", "image/png")["url"]
        query = {key: int(value, 16) for key, [value] in parse_qs(urlsplit(url).query).items()}
        assert query["ex"] - query["is"] == 3600


async def test_enforced_nonce_answers_the_earlier_message(dc: DiscordEmulator, bot: EmuBot) -> None:
    channel = bot.get_channel(CHANNEL)
    assert isinstance(channel, discord.TextChannel)
    first = await channel.send("links", nonce="rehost-42")
    again = await channel.send("links", nonce="rehost-42")
    assert again.id == first.id and again.nonce == "rehost-42"
    assert len(dc.channel_messages(CHANNEL)) == 1

    ann = await bot.fetch_user(ANN)
    in_dm = await ann.send("links", nonce="rehost-42")  # another channel: a new message
    assert (await ann.send("links", nonce="rehost-42")).id == in_dm.id != first.id
    assert len(dc.channel_messages(dc.dm_channel_of(ANN) or 0)) == 1

    with pytest.raises(discord.HTTPException) as caught:
        await channel.send("links", nonce="n" * 26)
    assert (caught.value.status, caught.value.code) == (400, 50035)

    route = discord.http.Route("POST", "/channels/{channel_id}/messages", channel_id=CHANNEL)
    plain = [await bot.http.request(route, json={"content": "x", "nonce": "p"}) for _ in "ab"]
    assert plain[0]["id"] != plain[1]["id"] and plain[0]["nonce"] == "p"
    assert len(dc.channel_messages(CHANNEL)) == 3


async def test_reply_to_deleted_message_fails_unless_told_not_to(
    dc: DiscordEmulator, bot: EmuBot
) -> None:
    posted = await dc.send_message(CHANNEL, ANN, "image", guild_id=GUILD)
    incoming = await asyncio.wait_for(bot.messages.get(), 5)
    deleted = asyncio.ensure_future(bot.wait_for("raw_message_delete", timeout=5))
    await asyncio.sleep(0)  # let the waiter register
    await dc.delete_user_message(CHANNEL, posted["id"])
    assert (await deleted).message_id == incoming.id

    with pytest.raises(discord.HTTPException) as caught:
        await incoming.reply("links")
    assert (caught.value.status, caught.value.code) == (400, 50035)
    reference = incoming.to_reference(fail_if_not_exists=False)
    plain = await incoming.channel.send("links", reference=reference)
    assert plain.reference is None
    stored = dc.message(plain.id)
    assert stored["type"] == 0 and "message_reference" not in stored

    body = {"content": "x", "message_reference": {"message_id": str(posted["id"])}}
    headers = {"Authorization": f"Bot {dc.token}"}
    async with (
        aiohttp.ClientSession() as http,
        http.post(f"{dc.api_base}/channels/{CHANNEL}/messages", json=body, headers=headers) as r,
    ):
        assert r.status == 400
        assert await r.json() == {
            "code": 50035,
            "message": "Invalid Form Body",
            "errors": {
                "message_reference": {
                    "_errors": [{"code": "REPLIES_UNKNOWN_MESSAGE", "message": "Unknown message"}]
                }
            },
        }
    with pytest.raises(AssertionError, match="no live message"):
        await dc.delete_user_message(CHANNEL, posted["id"])


# --- threads, forum and media channels, forwards, spoilers -------------------------------------

FORUM = 1_200_000_000_000_000_111
MEDIA = 1_200_000_000_000_000_112
NEWS = 1_200_000_000_000_000_113


async def _thread_known(guild: discord.Guild, thread_id: int) -> discord.Thread:
    """The thread once discord.py has handled its THREAD_CREATE."""
    for _ in range(500):
        thread = guild.get_thread(thread_id)
        if thread is not None:
            return thread
        await asyncio.sleep(0.01)
    raise AssertionError(f"THREAD_CREATE of {thread_id} did not arrive")


async def test_threads_and_forum_posts_reach_discord_py_with_their_parent(
    dc: DiscordEmulator,
) -> None:
    dc.add_channel(GUILD, FORUM, "art", kind=15)
    dc.add_channel(GUILD, MEDIA, "clips", kind=16)
    dc.add_channel(GUILD, NEWS, "news", kind=5)
    async with running_client(EmuBot(), dc) as client:
        guild = client.get_guild(GUILD)
        assert guild is not None
        forum, media = guild.get_channel(FORUM), guild.get_channel(MEDIA)
        assert isinstance(forum, discord.ForumChannel) and not forum.is_media()
        assert isinstance(media, discord.ForumChannel) and media.is_media()

        thread = await dc.start_thread(CHANNEL, ANN, "chat")
        attachment = dc.add_attachment(PNG, "a.png", "image/png", channel_id=thread.id)
        await dc.send_message(thread.id, ANN, "in a thread", [attachment], guild_id=GUILD)
        in_thread = await asyncio.wait_for(client.messages.get(), 5)
        assert isinstance(in_thread.channel, discord.Thread)
        assert (in_thread.channel.id, in_thread.channel.parent_id) == (thread.id, CHANNEL)
        assert in_thread.channel.type is discord.ChannelType.public_thread

        post, first = await dc.create_post(MEDIA, ANN, "my clip", "look", [attachment])
        in_post = await asyncio.wait_for(client.messages.get(), 5)
        assert int(first["id"]) == post.id == in_post.id  # a post's first message: its id
        assert isinstance(in_post.channel, discord.Thread) and in_post.channel.parent_id == MEDIA

        private = await dc.start_thread(CHANNEL, ANN, "secret", private=True)
        news_thread = await dc.start_thread(NEWS, ANN, "update")
        await _thread_known(guild, news_thread.id)
        kinds = {t.id: t.type for t in guild.threads}
        assert kinds[private.id] is discord.ChannelType.private_thread
        assert kinds[news_thread.id] is discord.ChannelType.news_thread

        # A thread the client never heard of: its messages come with a partial channel,
        # and the thread itself can be fetched.
        unknown = await dc.start_thread(CHANNEL, ANN, "quiet", announce=False)
        await dc.send_message(unknown.id, ANN, "who am I", guild_id=GUILD)
        quiet = await asyncio.wait_for(client.messages.get(), 5)
        assert isinstance(quiet.channel, discord.PartialMessageable)
        fetched = await client.fetch_channel(unknown.id)
        assert isinstance(fetched, discord.Thread) and fetched.parent_id == CHANNEL

        # The bot answers in a thread; a forum channel itself holds no messages.
        sent = await in_post.channel.send("answer")
        assert dc.channel_messages(post.id)[-1]["id"] == str(sent.id)
        with pytest.raises(discord.HTTPException) as refused:
            await client.get_partial_messageable(FORUM).send("not here")
        assert (refused.value.status, refused.value.code) == (400, 50008)
        with pytest.raises(AssertionError, match="posts"):
            await dc.send_message(FORUM, ANN, "not here", guild_id=GUILD)


async def test_a_restarted_client_knows_active_threads_from_guild_create(
    dc: DiscordEmulator,
) -> None:
    async with running_client(EmuBot(), dc) as first:
        thread = await dc.start_thread(CHANNEL, ANN, "old")
        guild = first.get_guild(GUILD)
        assert guild is not None
        await _thread_known(guild, thread.id)
    async with running_client(EmuBot(), dc) as client:
        known = client.get_channel(thread.id)
        assert isinstance(known, discord.Thread) and known.parent_id == CHANNEL


async def test_a_forward_carries_the_original_in_message_snapshots(
    dc: DiscordEmulator, bot: EmuBot
) -> None:
    attachment = dc.add_attachment(PNG, "a.png", "image/png", channel_id=CHANNEL)
    original = await dc.send_message(CHANNEL, BOB, "original", [attachment], guild_id=GUILD)
    await asyncio.wait_for(bot.messages.get(), 5)
    forwarded = await dc.forward_message(None, ANN, original)
    message = await asyncio.wait_for(bot.messages.get(), 5)

    assert message.content == "" and message.attachments == []
    assert message.reference is not None
    assert message.reference.type is discord.MessageReferenceType.forward
    assert message.reference.message_id == int(original["id"])
    [snapshot] = message.message_snapshots
    assert snapshot.content == "original"
    [copied] = snapshot.attachments
    assert copied.id == int(attachment["id"]) and copied.filename == "a.png"
    assert forwarded["message_reference"]["type"] == 1
    async with aiohttp.ClientSession() as session, session.get(copied.url) as response:
        assert response.status == 200 and await response.read() == PNG


async def test_without_message_content_a_forwards_snapshot_is_blank(dc: DiscordEmulator) -> None:
    async with running_client(EmuBot(message_content=False), dc) as client:
        attachment = dc.add_attachment(PNG, "a.png", "image/png", channel_id=CHANNEL)
        original = await dc.send_message(None, BOB, "dm", [attachment])
        await asyncio.wait_for(client.messages.get(), 5)
        await dc.forward_message(CHANNEL, ANN, original, guild_id=GUILD)
        message = await asyncio.wait_for(client.messages.get(), 5)
    [snapshot] = message.message_snapshots
    assert (snapshot.content, snapshot.attachments) == ("", [])


async def test_spoiler_attachments_are_marked_by_name_and_flag(
    dc: DiscordEmulator, bot: EmuBot
) -> None:
    hidden = dc.add_attachment(PNG, "a.png", "image/png", channel_id=CHANNEL, spoiler=True)
    plain = dc.add_attachment(PNG, "b.png", "image/png", channel_id=CHANNEL)
    await dc.send_message(CHANNEL, ANN, "", [hidden, plain], guild_id=GUILD)
    message = await asyncio.wait_for(bot.messages.get(), 5)
    first, second = message.attachments
    assert first.filename == "SPOILER_a.png" and first.flags.spoiler and first.is_spoiler()
    assert not second.is_spoiler()
    assert "/SPOILER_a.png?" in first.url


async def test_history_pages_before_a_message_newest_first(
    dc: DiscordEmulator, bot: EmuBot
) -> None:
    posted = [dc.post_earlier(CHANNEL, ANN, f"m{i}") for i in range(120)]
    attachment = dc.add_attachment(PNG, "a.png", "image/png", channel_id=CHANNEL)
    with_file = dc.post_earlier(CHANNEL, BOB, "file", [attachment])
    channel = bot.get_partial_messageable(CHANNEL)

    newest = [m async for m in channel.history(limit=3)]
    assert [m.id for m in newest] == [
        int(with_file["id"]),
        int(posted[-1]["id"]),
        int(posted[-2]["id"]),
    ]
    assert newest[0].attachments[0].filename == "a.png"
    before = discord.Object(int(posted[100]["id"]))
    older = [m.content async for m in channel.history(limit=150, before=before)]
    assert older == [f"m{i}" for i in range(99, -1, -1)]  # two pages, then the start
    pages = [c for c in dc.calls if c.method == "GET" and c.path == f"/channels/{CHANNEL}/messages"]
    assert [c.query.get("limit") for c in pages][-2:] == ["100", "50"]
    after = [
        m.content
        async for m in channel.history(limit=2, after=discord.Object(int(posted[5]["id"])))
    ]
    assert sorted(after) == ["m6", "m7"]


async def test_history_hides_content_without_the_intent() -> None:
    async with DiscordEmulator(application_id=APP_ID, privileged_intents=0) as dc:
        dc.add_guild(GUILD, owner_id=ANN, channels=[CHANNEL])
        attachment = dc.add_attachment(PNG, "a.png", "image/png", channel_id=CHANNEL)
        dc.post_earlier(CHANNEL, ANN, "secret", [attachment])
        dc.post_earlier(CHANNEL, ANN, f"<@{APP_ID}> hello")
        async with running_client(EmuBot(message_content=False), dc) as client:
            channel = client.get_partial_messageable(CHANNEL)
            mention, hidden = [m async for m in channel.history(limit=5)]
    assert (hidden.content, hidden.attachments) == ("", [])
    assert mention.content.endswith("hello")


# --- bulk deletes ---------------------------------------------------------------------------

MODS = 1_200_000_000_000_000_120  # a guild where the bot may manage messages
MODS_CHANNEL = 1_200_000_000_000_000_121
TWO_WEEKS = 14 * 24 * 3600


async def _bulk_refusal(bot: EmuBot, channel_id: int, ids: list[int]) -> tuple[int, int]:
    with pytest.raises(discord.HTTPException) as caught:
        await bot.http.delete_messages(channel_id, ids)
    return _http_error(caught.value)


async def test_bulk_delete_sends_one_event_and_refuses_like_discord(
    dc: DiscordEmulator, bot: EmuBot
) -> None:
    joined = asyncio.ensure_future(bot.wait_for("guild_join", timeout=5))
    await asyncio.sleep(0)  # let the waiter register
    dc.add_guild(
        MODS,
        owner_id=ANN,
        channels=[MODS_CHANNEL],
        bot_permissions=DEFAULT_EVERYONE | MANAGE_MESSAGES,
    )
    channel = (await joined).get_channel(MODS_CHANNEL)
    assert isinstance(channel, discord.TextChannel)
    posted = [dc.post_earlier(MODS_CHANNEL, ANN, f"m{i}") for i in range(3)]
    ids = [int(m["id"]) for m in posted]
    old = int(dc.post_earlier(MODS_CHANNEL, ANN, "old", age=TWO_WEEKS + 60)["id"])
    elsewhere = int(dc.post_earlier(CHANNEL, ANN, "in the other guild")["id"])

    # Without Manage Messages (the bot's permissions in GUILD): 403 50013.
    assert await _bulk_refusal(bot, CHANNEL, [elsewhere, ids[0]]) == (403, 50013)
    # 2 to 100 ids (ids of no message count), none older than two weeks.
    assert await _bulk_refusal(bot, MODS_CHANNEL, ids[:1]) == (400, 50016)
    too_many = ids + [ids[-1] + n for n in range(1, 99)]
    assert len(too_many) == 101
    assert await _bulk_refusal(bot, MODS_CHANNEL, too_many) == (400, 50016)
    assert await _bulk_refusal(bot, MODS_CHANNEL, [ids[0], old]) == (400, 50034)
    assert dc.dispatches("MESSAGE_DELETE_BULK") == []
    assert not any(dc.message(i).get("deleted") for i in [*ids, old, elsewhere])

    # Accepted: one MESSAGE_DELETE_BULK with the ids that were messages here.
    event = asyncio.ensure_future(bot.wait_for("raw_bulk_message_delete", timeout=5))
    await asyncio.sleep(0)
    await channel.delete_messages([discord.Object(i) for i in [*ids[:2], ids[-1] + 10**6]])
    payload = await event
    assert payload.message_ids == set(ids[:2])
    assert (payload.channel_id, payload.guild_id) == (MODS_CHANNEL, MODS)
    assert len(dc.dispatches("MESSAGE_DELETE_BULK")) == 1
    assert dc.dispatches("MESSAGE_DELETE") == []
    with pytest.raises(discord.NotFound):
        await channel.fetch_message(ids[0])
    assert (await channel.fetch_message(ids[2])).content == "m2"


async def test_a_moderators_purge_is_one_bulk_event(dc: DiscordEmulator, bot: EmuBot) -> None:
    """ANN owns GUILD (every permission); BOB has no Manage Messages."""
    first = await dc.send_message(CHANNEL, ANN, "spam 1", guild_id=GUILD)
    second = await dc.send_message(CHANNEL, BOB, "spam 2", guild_id=GUILD)
    for _ in range(2):
        await asyncio.wait_for(bot.messages.get(), 5)
    with pytest.raises(AssertionError, match="may not manage messages"):
        await dc.purge_messages(CHANNEL, BOB, [first, second])
    event = asyncio.ensure_future(bot.wait_for("raw_bulk_message_delete", timeout=5))
    await asyncio.sleep(0)
    await dc.purge_messages(CHANNEL, ANN, [first, second])
    payload = await event
    assert payload.message_ids == {int(first["id"]), int(second["id"])}
    assert payload.guild_id == GUILD
    # discord.py's cache had both: they come with the event.
    assert sorted(m.content for m in payload.cached_messages) == ["spam 1", "spam 2"]
    assert dc.message(first["id"])["deleted"] and dc.message(second["id"])["deleted"]
