"""Moderators take uploads down: on Discord, members with Manage Messages (the button on
the bot's post, its context menu, ``/rehost takedown``); on Telegram, a group's admins
(``/takedown``, the button). Anyone else is refused, even with a forged interaction, and
nothing is deleted. A takedown deletes on the host, removes the bot's post, tells the
uploader privately, and is recorded with who did it."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx
import pytest

from adapters.discord.bot import DiscordAdapter
from bot.app import open_core
from bot.community import Communities
from bot.deletion import DeleteService
from bot.moderation import Community, Moderation, Moderator
from bot.outbox import Outbox
from bot.store import Store
from sandbox import samples
from sandbox.discord_api import DiscordEmulator
from sandbox.discord_model import MANAGE_MESSAGES
from sandbox.hostemu import HostEmulator
from sandbox.telegram_api import SentCall, TelegramEmulator
from tests.telegram_harness import ANN as TG_ANN
from tests.telegram_harness import BOB as TG_BOB
from tests.telegram_harness import GROUP as TG_GROUP
from tests.telegram_harness import running_adapter, telegram_config
from tests.test_discord_adapter import (
    APP_ID,
    AUTO,
    EPHEMERAL,
    GUILD,
    Json,
    bot_messages,
    button_ids,
    make_config,
    public_messages,
    running,
    until,
    webhook,
)

ANN = 1_300_000_000_000_000_201  # the guild's owner
UPLOADER = 1_300_000_000_000_000_301
MOD = 1_300_000_000_000_000_302  # Manage Messages
MEMBER = 1_300_000_000_000_000_303  # no special permission
SECOND_UPLOADER = 1_300_000_000_000_000_304
OUTSIDER_GUILD = 1_300_000_000_000_000_400
OUTSIDE = 1_300_000_000_000_000_401  # a channel of another server
REFUSED = "Only members who can manage messages here can take uploads down."


@pytest.fixture
async def dc() -> AsyncIterator[DiscordEmulator]:
    async with DiscordEmulator(application_id=APP_ID) as emulator:
        emulator.add_user(ANN, "ann")
        emulator.add_user(UPLOADER, "uploader")
        emulator.add_user(MOD, "mod")
        emulator.add_user(MEMBER, "member")
        emulator.add_user(SECOND_UPLOADER, "second")
        emulator.add_guild(
            GUILD,
            name="Gallery",
            owner_id=ANN,
            channels=[AUTO],
            members=[(UPLOADER, 0), (MOD, MANAGE_MESSAGES), (MEMBER, 0), (SECOND_UPLOADER, 0)],
        )
        emulator.add_guild(OUTSIDER_GUILD, name="Other", owner_id=ANN, channels=[OUTSIDE])
        yield emulator
        assert emulator.internal_errors == []


@pytest.fixture
async def bot(tmp_path: Path, host_emu: HostEmulator, dc: DiscordEmulator) -> AsyncIterator[Any]:
    config = make_config(tmp_path, host_emu, dc)
    assert config.discord is not None
    both = replace(config.discord, guild_ids=(GUILD, OUTSIDER_GUILD))
    config = replace(config, discord=both)
    async with open_core(config) as core, running(core) as adapter:
        yield adapter


async def _posted(
    dc: DiscordEmulator, host_emu: HostEmulator, shade: int, author: int = UPLOADER
) -> tuple[Json, Any]:
    """The uploader posts an image in the auto-rehost channel: the bot's public post."""
    data = samples.png(3, 2, (shade, 60, 90))
    attachment = dc.add_attachment(data, f"{shade}.png", "image/png")
    before = len(public_messages(dc, AUTO))
    source = await dc.send_message(AUTO, author, "look", [attachment], GUILD)
    await until(lambda: len(public_messages(dc, AUTO)) == before + 1, timeout=10)
    [image] = [img for img in host_emu.images.values() if img.data == data]
    post = public_messages(dc, AUTO)[-1]
    post["source"] = source
    return post, image


async def _shown(core: Any, platform: str, chat: int, message_id: object) -> list[Any]:
    """The uploads a bot post shows, once the sender has recorded it."""
    found: list[Any] = []

    async def recorded() -> bool:
        found[:] = await core.library.uploads_in_message(platform, str(chat), str(message_id))
        return bool(found)

    await until(recorded)
    return found


async def _ephemeral_answer(dc: DiscordEmulator, interaction: Json) -> str:
    """The bot's ephemeral answer: at once, or after deferring (a follow-up)."""
    await dc.wait_for(lambda call: call.path.startswith(f"/interactions/{interaction['id']}/"))
    [response] = dc.interaction_responses(interaction["id"])
    assert response["flags"] & EPHEMERAL
    if response["data"] and response["data"].get("content"):
        return str(response["data"]["content"])
    await dc.wait_for(webhook("POST", interaction["token"]))
    [followup] = dc.followups(interaction["token"])
    assert followup["flags"] & EPHEMERAL
    return str(followup["content"])


def _takedown_options(upload_id: int) -> list[Json]:
    return [
        {"name": "takedown", "type": 1, "options": [{"name": "id", "type": 4, "value": upload_id}]}
    ]


async def test_a_moderator_takes_down_a_members_upload_and_others_cannot(
    bot: DiscordAdapter, dc: DiscordEmulator, host_emu: HostEmulator
) -> None:
    post, image = await _posted(dc, host_emu, 1)
    assert "rehost:takedown" in button_ids(post)
    [upload] = await _shown(bot.core, "discord", AUTO, post["id"])
    dm = dc.dm_channel_of(UPLOADER)
    assert dm is not None
    private_before = len(bot_messages(dc, dm))

    # A member without Manage Messages: the button, a forged command, a forged menu.
    press = await dc.press_button("rehost:takedown", MEMBER, AUTO, post["id"], GUILD)
    assert await _ephemeral_answer(dc, press) == REFUSED
    forged = await dc.slash_command(
        "rehost", MEMBER, AUTO, GUILD, options=_takedown_options(upload.id), forged=True
    )
    assert await _ephemeral_answer(dc, forged) == REFUSED
    menu = await dc.message_command("Take down", MEMBER, AUTO, post["id"], GUILD, forged=True)
    assert await _ephemeral_answer(dc, menu) == REFUSED
    with pytest.raises(AssertionError, match="may not see"):
        await dc.message_command("Take down", MEMBER, AUTO, post["id"], GUILD)
    assert not image.deleted
    assert [m["id"] for m in public_messages(dc, AUTO)] == [post["id"]]

    # The moderator presses the button: deleted on the host, the post goes, the uploader
    # is told in private, and it is recorded with who did it.
    press = await dc.press_button("rehost:takedown", MOD, AUTO, post["id"], GUILD)
    answer = await _ephemeral_answer(dc, press)
    assert answer == f"Took down #{upload.id} and deleted from the image host."
    assert image.deleted
    await until(lambda: public_messages(dc, AUTO) == [])
    await until(lambda: len(bot_messages(dc, dm)) == private_before + 1)
    notice = bot_messages(dc, dm)[-1]
    assert notice["content"].startswith(
        f"Your upload #{upload.id} was taken down: a moderator in Gallery took it down."
    )
    assert notice["components"] == []
    [record] = await Moderation(bot.core.store, bot.core.deleter, bot.core.rehost.outbox).takedowns(
        upload.id
    )
    assert record["moderator_id"] == str(MOD) and record["moderator_name"] == "mod"
    assert record["community_id"] == str(GUILD) and record["host_deleted"] == 1


async def test_a_moderator_sees_rehost_for_takedown_and_nothing_that_needs_manage_server(
    bot: DiscordAdapter, dc: DiscordEmulator, host_emu: HostEmulator
) -> None:
    """Discord shows /rehost to Manage Messages (subcommands have no permissions of
    their own); every subcommand but takedown checks Manage Server itself."""
    post, image = await _posted(dc, host_emu, 5)
    [upload] = await _shown(bot.core, "discord", AUTO, post["id"])
    manage_server = "You need the Manage Server permission for that."
    for options in (
        [{"name": "auto", "type": 1, "options": [{"name": "state", "type": 3, "value": "off"}]}],
        [{"name": "nsfw", "type": 1, "options": [{"name": "state", "type": 3, "value": "on"}]}],
        [{"name": "backfill", "type": 1, "options": []}],
    ):
        asked = await dc.slash_command("rehost", MOD, AUTO, GUILD, options=options)
        assert await _ephemeral_answer(dc, asked) == manage_server, options[0]["name"]
    settings = await dc.slash_command(
        "rehost", MOD, AUTO, GUILD, options=[{"name": "settings", "type": 1, "options": []}]
    )
    assert "Manage Server" in await _ephemeral_answer(dc, settings)
    chat = await bot.core.store.chat_settings("discord", str(AUTO))
    assert chat is not None and not chat.nsfw  # nothing changed
    # Takedown by id: the moderator's own command, no Manage Server needed.
    by_id = await dc.slash_command("rehost", MOD, AUTO, GUILD, options=_takedown_options(upload.id))
    assert await _ephemeral_answer(dc, by_id) == (
        f"Took down #{upload.id} and deleted from the image host."
    )
    assert image.deleted


async def test_takedown_by_id_and_menu_stay_within_the_server(
    bot: DiscordAdapter, dc: DiscordEmulator, host_emu: HostEmulator
) -> None:
    post, image = await _posted(dc, host_emu, 2)
    [upload] = await _shown(bot.core, "discord", AUTO, post["id"])
    # From another server, the id is unknown (the same answer as a made-up one).
    elsewhere = await dc.slash_command(
        "rehost", ANN, OUTSIDE, OUTSIDER_GUILD, options=_takedown_options(upload.id)
    )
    assert await _ephemeral_answer(dc, elsewhere) == f"No upload #{upload.id} was posted here."
    assert not image.deleted
    # The menu on a member's own message: not the bot's post.
    menu = await dc.message_command("Take down", MOD, AUTO, post["source"]["id"], GUILD)
    assert "not one of this bot's posts" in await _ephemeral_answer(dc, menu)
    # The owner, in the server: by id.
    here = await dc.slash_command("rehost", ANN, AUTO, GUILD, options=_takedown_options(upload.id))
    assert await _ephemeral_answer(dc, here) == (
        f"Took down #{upload.id} and deleted from the image host."
    )
    assert image.deleted
    await until(lambda: public_messages(dc, AUTO) == [])


async def test_deleting_the_source_takes_it_down_when_the_server_says_so(
    bot: DiscordAdapter, dc: DiscordEmulator, host_emu: HostEmulator
) -> None:
    await Communities(bot.core.store.db).change(
        "discord", str(GUILD), str(ANN), "ann", takedown_on_source_delete=True
    )
    post, image = await _posted(dc, host_emu, 4)
    [upload] = await _shown(bot.core, "discord", AUTO, post["id"])
    await dc.delete_user_message(AUTO, post["source"]["id"])
    await until(lambda: image.deleted)
    await until(lambda: public_messages(dc, AUTO) == [])
    [record] = await Moderation(bot.core.store, bot.core.deleter, bot.core.rehost.outbox).takedowns(
        upload.id
    )
    assert record["moderator_id"] == str(UPLOADER)
    assert record["reason"] == "source message deleted"


async def test_a_purge_of_the_sources_takes_their_rehosts_down(
    bot: DiscordAdapter, dc: DiscordEmulator, host_emu: HostEmulator
) -> None:
    await Communities(bot.core.store.db).change(
        "discord", str(GUILD), str(ANN), "ann", takedown_on_source_delete=True
    )
    authors = [UPLOADER, SECOND_UPLOADER, UPLOADER]
    posted = [await _posted(dc, host_emu, 10 + n, author) for n, author in enumerate(authors)]
    uploads = [(await _shown(bot.core, "discord", AUTO, post["id"]))[0] for post, _ in posted]
    dms = {author: dc.dm_channel_of(author) for author in set(authors)}
    assert None not in dms.values()
    private_before = {author: len(bot_messages(dc, dm)) for author, dm in dms.items()}
    unrelated = await dc.send_message(AUTO, MEMBER, "spam", guild_id=GUILD)

    # One MESSAGE_DELETE_BULK for the three sources and the unrelated message.
    sources = [post["source"] for post, _ in posted]
    await dc.purge_messages(AUTO, MOD, [*sources, unrelated])
    assert len(dc.dispatches("MESSAGE_DELETE_BULK")) == 1

    await until(lambda: all(image.deleted for _, image in posted))
    await until(lambda: public_messages(dc, AUTO) == [])
    told = {author: authors.count(author) for author in dms}
    await until(
        lambda: all(len(bot_messages(dc, dms[a])) == private_before[a] + told[a] for a in dms)
    )
    for author, dm in dms.items():
        notices = [m["content"] for m in bot_messages(dc, dm)[-told[author] :]]
        mine = sorted(u.id for u, who in zip(uploads, authors, strict=True) if who == author)
        assert sorted(int(n.split("#")[1].split(" ")[0]) for n in notices) == mine
        assert all("its source message in Gallery was deleted." in n for n in notices)
    moderation = Moderation(bot.core.store, bot.core.deleter, bot.core.rehost.outbox)
    for upload, author in zip(uploads, authors, strict=True):
        [record] = await moderation.takedowns(upload.id)
        assert record["moderator_id"] == str(author)  # the author, whom discord.py cached
        assert record["reason"] == "source message deleted" and record["host_deleted"] == 1


async def test_a_purge_takes_nothing_down_when_the_server_has_not_said_so(
    bot: DiscordAdapter,
    dc: DiscordEmulator,
    host_emu: HostEmulator,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    posted = [await _posted(dc, host_emu, 20 + n) for n in range(2)]
    shown = [m["id"] for m in public_messages(dc, AUTO)]
    dm = dc.dm_channel_of(UPLOADER)
    private_before = len(bot_messages(dc, dm))
    # Seen through: the bot's handler of the purge has returned.
    takedowns = bot.client.takedowns
    handled = asyncio.Event()
    purged = takedowns.on_sources_purged

    async def seen(payload: Any) -> None:
        await purged(payload)
        handled.set()

    monkeypatch.setattr(takedowns, "on_sources_purged", seen)
    await dc.purge_messages(AUTO, MOD, [post["source"] for post, _ in posted])
    await asyncio.wait_for(handled.wait(), 5)
    assert not any(image.deleted for _, image in posted)
    assert [m["id"] for m in public_messages(dc, AUTO)] == shown
    assert len(bot_messages(dc, dm)) == private_before


# --- Telegram ------------------------------------------------------------------------------


def _answered(tg: TelegramEmulator, query_id: str) -> Any:
    def match(call: SentCall) -> bool:
        return call.method == "answerCallbackQuery" and call.params.get("callback_query_id") == str(
            query_id
        )

    return match


def _sent_to(chat: int) -> Any:
    def match(call: SentCall) -> bool:
        return call.method == "sendMessage" and call.ok and int(call.params["chat_id"]) == chat

    return match


def _posts(tg: TelegramEmulator) -> list[Json]:
    """The bot's live posts with buttons in the group."""
    return [m for m in tg.messages(TG_GROUP) if not m["deleted"] and m.get("reply_markup")]


async def test_telegram_group_admins_take_uploads_down_and_members_cannot(
    tmp_path: Path, host_emu: HostEmulator, tg: TelegramEmulator
) -> None:
    async with running_adapter(telegram_config(tmp_path, host_emu, tg)) as adapter:
        first_data, second_data = samples.png(12, 12), samples.png(13, 13)
        tg.send_photo(TG_GROUP, TG_BOB, first_data)
        await tg.wait_for(_sent_to(TG_GROUP), timeout=10)
        [post] = _posts(tg)
        post_id = int(post["message_id"])
        [first] = await _shown(adapter.core, "telegram", TG_GROUP, post_id)
        image = next(img for img in host_emu.images.values() if img.data == first_data)
        keyboard = post["reply_markup"]["inline_keyboard"]
        assert [b["text"] for b in keyboard[0]] == ["Open", "Take down"]

        # Bob (not an admin) presses it: an alert, nothing deleted.
        query = tg.press_button(TG_GROUP, TG_BOB, post_id, f"td:{first.id}")
        refusal = await tg.wait_for(_answered(tg, query["id"]))
        assert refusal.params["text"] == "Only the group's admins can take uploads down."
        assert refusal.params["show_alert"] is True
        assert not image.deleted and len(_posts(tg)) == 1

        # Ann (an admin) sends /takedown ID: gone from the host, the post deleted, Bob told.
        tg.send_text(TG_GROUP, TG_ANN, f"/takedown {first.id}")
        await tg.wait_for(
            lambda call: (
                call.method == "deleteMessage"
                and int(call.params["message_id"]) == post_id
                and call.ok
            )
        )
        assert image.deleted and _posts(tg) == []
        notice = await tg.wait_for(
            lambda call: _sent_to(TG_BOB)(call) and "taken down" in call.params["text"]
        )
        assert (
            f"#{first.id} was taken down: a moderator in Photos took it down."
            in (notice.params["text"])
        )

        # The button, pressed by an admin, on the next post.
        tg.send_photo(TG_GROUP, TG_BOB, second_data)
        await until(lambda: len(_posts(tg)) == 1, timeout=10)
        second_id = int(_posts(tg)[0]["message_id"])
        [second] = await _shown(adapter.core, "telegram", TG_GROUP, second_id)
        query = tg.press_button(TG_GROUP, TG_ANN, second_id, f"td:{second.id}")
        done = await tg.wait_for(_answered(tg, query["id"]))
        assert done.params["text"].startswith(f"Took down #{second.id}")
        assert next(img for img in host_emu.images.values() if img.data == second_data).deleted
        await until(lambda: _posts(tg) == [])

        # /takedown in reply to the bot's post; Bob's own /takedown is refused first.
        third_data = samples.png(14, 14)
        tg.send_photo(TG_GROUP, TG_BOB, third_data)
        await until(lambda: len(_posts(tg)) == 1, timeout=10)
        third_id = int(_posts(tg)[0]["message_id"])
        [third] = await _shown(adapter.core, "telegram", TG_GROUP, third_id)
        tg.send_text(TG_GROUP, TG_BOB, "/takedown", reply_to_message_id=third_id)
        refused = await tg.wait_for(
            lambda call: _sent_to(TG_GROUP)(call) and "admins" in call.params["text"]
        )
        assert refused.params["text"] == "Only the group's admins can take uploads down."
        third_image = next(img for img in host_emu.images.values() if img.data == third_data)
        assert not third_image.deleted
        tg.send_text(TG_GROUP, TG_ANN, "/takedown", reply_to_message_id=third_id)
        await until(lambda: _posts(tg) == [])
        assert third_image.deleted
        takedowns = await Moderation(
            adapter.core.store, adapter.core.deleter, adapter.core.rehost.outbox
        ).takedowns(third.id)
        assert [(t["moderator_id"], t["moderator_name"]) for t in takedowns] == [
            (str(TG_ANN), "Ann")
        ]

        # Seen as an admin of Photos: /settings in private offers it to Ann.
        tg.send_text(TG_ANN, TG_ANN, "/settings")
        await until(lambda: any(m.get("text") == "Which group?" for m in tg.messages(TG_ANN)))
        [picker] = [m for m in tg.messages(TG_ANN) if m.get("text") == "Which group?"]
        [[button]] = picker["reply_markup"]["inline_keyboard"]
        assert (button["text"], button["callback_data"]) == ("Photos", f"set:{TG_GROUP}:open")


# --- the core, on both engines ---------------------------------------------------------------


async def test_an_imgbb_upload_is_no_longer_shown_and_other_communities_cannot_touch_it(
    storage: Path | str,
) -> None:
    """ImgBB-style hosts have no delete API: the takedown stops the bot showing the image
    (the uploader keeps its delete link); an id from another group is simply unknown."""
    store = await Store.open(storage)
    try:
        async with httpx.AsyncClient() as http:
            outbox = Outbox(store)
            woken: list[str] = []
            moderation = Moderation(store, DeleteService(store, http), outbox, woken.append)
            upload_id = await store.add_upload(
                platform="telegram",
                chat_id="-100",
                owner_id="8",
                sha256="ab" * 32,
                size=10,
                host="ibb",
                dialect="imgbb",
                viewer_url="https://ibb.example/v/1",
                url="https://ibb.example/i/1.png",
                delete_url="https://ibb.example/v/1/delete-token",
            )
            await store.add_bot_message(upload_id, "telegram", "-100", "55", "public")

            async def group(chat_id: str) -> bool:
                return chat_id == "-100"

            async def other_group(chat_id: str) -> bool:
                return chat_id == "-200"

            here = Community("telegram", "-100", group, "Photos")
            elsewhere = Community("telegram", "-200", other_group, "Other")
            ann = Moderator("7", "Ann")
            for unknown in (upload_id, upload_id + 1000):
                refused = await moderation.take_down(unknown, ann, elsewhere)
                assert not refused.taken_down
                assert refused.message == f"No upload #{unknown} was posted here."
            record = await store.upload(upload_id)
            assert record is not None and record.state == "active"

            done = await moderation.take_down(upload_id, ann, here, "spam")
            assert done.taken_down and not done.host_deleted
            assert "stays on the host" in done.message
            assert [(p.chat_id, p.message_id) for p in done.bot_messages] == [("-100", "55")]
            record = await store.upload(upload_id)
            assert record is not None and record.state == "deleted"
            [row] = await moderation.takedowns(upload_id)
            assert (row["moderator_id"], row["reason"], row["host_deleted"]) == ("7", "spam", 0)
            assert woken == ["telegram"]
            [notice] = await outbox.claim("test", "telegram", 30.0, 10)
            assert notice.message.owner_id == "8" and notice.message.chat_id is None
            assert notice.message.note_in("en") == (
                f"Your upload #{upload_id} was taken down: a moderator in Photos took it down."
            )
            again = await moderation.take_down(upload_id, ann, here)
            assert (
                not again.taken_down and again.message == f"Upload #{upload_id} is already deleted."
            )
    finally:
        await store.close()


async def test_a_takedown_is_told_in_the_groups_language_and_the_alert_in_the_pressers(
    tmp_path: Path, host_emu: HostEmulator, tg: TelegramEmulator
) -> None:
    tg.world.users[TG_ANN].language_code = "zh-hans"
    async with running_adapter(telegram_config(tmp_path, host_emu, tg)) as adapter:
        communities = Communities(adapter.core.store.db)
        await communities.change("telegram", str(TG_GROUP), str(TG_ANN), "Ann", language="es")
        tg.send_photo(TG_GROUP, TG_BOB, samples.png(15, 15))
        await tg.wait_for(_sent_to(TG_GROUP), timeout=10)
        [post] = _posts(tg)
        post_id = int(post["message_id"])
        assert post["text"].startswith("Imagen realojada:")
        [upload] = await _shown(adapter.core, "telegram", TG_GROUP, post_id)
        assert [b["text"] for b in post["reply_markup"]["inline_keyboard"][0]] == [
            "Abrir",
            "Retirar",
        ]
        query = tg.press_button(TG_GROUP, TG_ANN, post_id, f"td:{upload.id}")
        done = await tg.wait_for(_answered(tg, query["id"]))
        assert done.params["text"] == f"已下架 #{upload.id}，并已从图床删除。"
        notice = await tg.wait_for(
            lambda call: _sent_to(TG_BOB)(call) and "retirada" in call.params["text"]
        )
        assert notice.params["text"].startswith(
            f"Tu subida #{upload.id} fue retirada: la retiró un moderador de Photos."
        )
