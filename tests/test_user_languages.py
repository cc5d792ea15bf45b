"""Each user's last language, remembered per platform: stored as a catalogue name, written
only when it changed (as far as this process knows), and read back, with the community's
language and then English as fallbacks."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path

import pytest

from adapters.discord import render
from adapters.discord.sources import PLATFORM
from bot.app import open_core
from bot.community import Communities
from bot.i18n import translate
from bot.migrate import Migrator
from bot.store import Store
from bot.userlanguages import UserLanguages, owner_language, remembered
from sandbox import samples
from sandbox.discord_api import DiscordEmulator
from sandbox.hostemu import HostEmulator
from sandbox.telegram_api import TelegramEmulator
from tests.conftest import IMGBB_KEY
from tests.telegram_harness import ANN as TG_ANN
from tests.telegram_harness import BOB as TG_BOB
from tests.telegram_harness import GROUP as TG_GROUP
from tests.telegram_harness import running_adapter, telegram_config
from tests.test_discord_adapter import (
    ANN,
    APP_ID,
    AUTO,
    GUILD,
    OTHER,
    _populate,
    assert_nothing_leaked,
    attachment_option,
    bot_messages,
    dm_posted,
    image,
    make_config,
    posted_in,
    public_messages,
    running,
    until,
    webhook,
)

NOTE_MOVED = "Your image #{id} moved from {old} to {new}: new links."
NOTE_TAKEN_DOWN = "Your upload #{id} was taken down: a moderator in {place} took it down."


@pytest.fixture
async def dc() -> AsyncIterator[DiscordEmulator]:
    async with DiscordEmulator(application_id=APP_ID) as emulator:
        _populate(emulator)
        yield emulator
        assert emulator.internal_errors == []


async def test_languages_are_remembered_per_platform_as_catalogue_names(
    storage: Path | str,
) -> None:
    async with Store.opened(storage) as store:
        db = store.db
        languages = UserLanguages(db)
        await languages.saw("discord", 7, "es-ES")
        await languages.saw("telegram", 7, "zh-hans")
        await languages.saw("telegram", 8, None)  # no code: nothing known
        assert await remembered(db, "discord", "7") == "es"
        assert await remembered(db, "telegram", "7") == "zh_Hans"
        assert await remembered(db, "telegram", "8") is None
        # Another process (its own cache) changes it: the database follows.
        await UserLanguages(db).saw("discord", 7, "fr")
        assert await remembered(db, "discord", "7") == "en"
        # Unprompted texts: theirs, else the community's, else English.
        await Communities(db).change("telegram", "-5", "1", "Ann", language="es")
        assert await owner_language(db, "telegram", "7", "-5") == "zh_Hans"
        assert await owner_language(db, "telegram", "9", "-5") == "es"
        assert await owner_language(db, "telegram", "9", "-6") == "en"
        assert await owner_language(db, "telegram", "9") == "en"


async def test_a_language_seen_again_is_not_written_again_until_its_entry_lapses(
    tmp_path: Path,
) -> None:
    async with Store.opened(tmp_path / "rehost.db") as store:
        now = [0.0]
        languages = UserLanguages(store.db, capacity=2, trusted_for=60.0, clock=lambda: now[0])
        writes: list[object] = []
        store.db.trace = lambda sql, params: (  # type: ignore[attr-defined]
            writes.append(params) if sql.startswith("insert into user_languages") else None
        )
        for _ in range(3):
            await languages.saw("telegram", 1, "es")
        assert len(writes) == 1
        await languages.saw("telegram", 1, "en")  # a change is written at once
        assert len(writes) == 2
        assert await languages.of("telegram", 1) == "en"
        now[0] = 61.0  # another process may have changed it since: write again
        await languages.saw("telegram", 1, "en")
        assert len(writes) == 3
        # Bounded: the least recently seen user is forgotten first.
        await languages.saw("telegram", 2, "es")
        await languages.saw("telegram", 3, "es")
        assert len(writes) == 5
        await languages.saw("telegram", 3, "es")  # still known
        assert len(writes) == 5
        await languages.saw("telegram", 1, "en")  # forgotten: written again
        assert len(writes) == 6


# --- what users see --------------------------------------------------------------------------


async def test_a_discord_user_is_written_to_in_the_locale_of_their_last_interaction(
    tmp_path: Path, host_emu: HostEmulator, dc: DiscordEmulator
) -> None:
    """A DM written as text, the delete links of an auto-rehost in an English server, and
    the new links after a move carry no locale: they follow the user's last interaction."""
    config = make_config(tmp_path, host_emu, dc)
    hosts = dict(config.hosts)
    hosts["new"] = replace(
        hosts["chev"],
        name="new",
        dialect="imgbb",
        endpoint=host_emu.imgbb_endpoint,
        formats=frozenset({"png", "jpeg"}),
        api_key=IMGBB_KEY,
    )
    config = replace(config, hosts=hosts, upload=replace(config.upload, hosts=("chev", "new")))
    async with open_core(config) as core, running(core):
        # Never seen: English.
        await dc.send_message(None, ANN, "help")
        await dc.wait_for(dm_posted(dc, ANN))
        dm = dc.dm_channel_of(ANN)
        assert bot_messages(dc, dm)[-1]["content"] == render.help_text("en")

        # She uses /upload with her client in Spanish; then writes "help" again.
        dc.world.users[ANN].locale = "es-ES"
        attachment = dc.add_attachment(image(70), "cat.png", "image/png")
        command = await dc.slash_command(
            "upload", ANN, OTHER, GUILD, options=[attachment_option(attachment)]
        )
        await dc.wait_for(webhook("POST", command["token"]))

        async def remembered_spanish() -> bool:  # noted beside the command's own handling
            return await remembered(core.store.db, PLATFORM, ANN) == "es"

        await until(remembered_spanish)
        await dc.send_message(None, ANN, "help")
        await until(lambda: len(bot_messages(dc, dm)) == 2)
        assert bot_messages(dc, dm)[-1]["content"] == render.help_text("es")
        assert render.help_text("es") != render.help_text("en")

        # An image in the (English) server's auto-rehost channel: the post in English,
        # her delete links by DM in Spanish.
        photo = dc.add_attachment(image(71), "dog.png", "image/png", channel_id=AUTO)
        await dc.send_message(AUTO, ANN, "", [photo], guild_id=GUILD)
        await dc.wait_for(posted_in(AUTO))
        await until(lambda: len(bot_messages(dc, dm)) == 3)
        assert public_messages(dc, AUTO)[-1]["content"].startswith("Rehosted")
        links = bot_messages(dc, dm)[-1]["content"]
        assert links.startswith(f"Imagen realojada: (en <#{AUTO}>)"), links
        assert "borrar: <" in links

        # The operator moves everything off the host: the new links, in Spanish.
        migrator = Migrator(core.store, core.rehost.uploader, core.rehost.fetcher, core.http)
        moved = await migrator.run("chev", ["new"])
        assert len(moved) == 2 and all(m.ok for m in moved)
        await until(lambda: len(bot_messages(dc, dm)) == 5, timeout=10)
        notices = [m["content"] for m in bot_messages(dc, dm)[3:]]
        for upload in moved:
            said = translate("es", NOTE_MOVED, id=upload.upload_id, old="chev", new="new")
            assert any(notice.startswith(said) for notice in notices), notices
    assert_nothing_leaked(dc, host_emu)


async def test_a_takedown_notice_follows_the_uploaders_language_not_the_groups(
    tmp_path: Path, host_emu: HostEmulator, tg: TelegramEmulator
) -> None:
    tg.world.users[TG_BOB].language_code = "zh-hans"
    async with running_adapter(telegram_config(tmp_path, host_emu, tg)) as adapter:
        tg.send_photo(TG_GROUP, TG_BOB, samples.png(16, 16))
        post = await tg.wait_for(
            lambda call: call.method == "sendMessage" and int(call.params["chat_id"]) == TG_GROUP,
            timeout=10,
        )
        assert post.params["text"].startswith("Rehosted"), "the group is English"
        [upload] = await adapter.core.library.live_uploads("telegram", str(TG_BOB))
        tg.send_text(TG_GROUP, TG_ANN, f"/takedown {upload.id}")
        notice = await tg.wait_for(
            lambda call: (
                call.method == "sendMessage"
                and int(call.params["chat_id"]) == TG_BOB
                and f"#{upload.id}" in call.params["text"]
                and "Rehosted" not in call.params["text"]
                and "已转存" not in call.params["text"]
            ),
            timeout=10,
        )
    told = translate("zh_Hans", NOTE_TAKEN_DOWN, id=upload.id, place="Photos")
    assert told != translate("en", NOTE_TAKEN_DOWN, id=upload.id, place="Photos")
    assert notice.params["text"].startswith(told)
