"""Per-server settings, end to end: Discord's /rehost settings and Telegram's /settings
against their emulators, the real core against the host emulators.

A server's managers choose its hosts, expiry, NSFW marking, quotas and its own image host;
members without the permission are refused even when they forge the interaction. A
server's own host's API key reaches that host and nothing else: no chat message, no log
line, no ``rehost history`` output.
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from cryptography.fernet import Fernet

from adapters.discord.bot import DiscordAdapter
from bot.app import Core, open_core
from bot.community import Communities
from bot.config import Config, ConfigError, parse_config
from bot.linkcheck import LinkChecker
from sandbox import samples
from sandbox.discord_api import DiscordEmulator
from sandbox.discord_interactions import APPLICATION_COMMAND, command_data
from sandbox.hostemu import HostEmulator
from sandbox.telegram_api import TelegramEmulator
from tests.conftest import CHEV_KEY, IMGBB_KEY, run_rehost
from tests.telegram_harness import (
    ANN as TG_ANN,
)
from tests.telegram_harness import (
    BOB,
    GROUP,
    running_adapter,
    settled,
    telegram_config,
    telegram_world,
)
from tests.test_discord_adapter import until

APP_ID = 1_400_000_000_000_000_001
GUILD = 1_400_000_000_000_000_100
CHANNEL = 1_400_000_000_000_000_101
ANN = 1_400_000_000_000_000_201  # the guild's owner (Manage Server)
CAT = 1_400_000_000_000_000_203  # a member without it
OWN_KEY = "own_community_key_93b1c7d2e4f5a6b8"
EPHEMERAL = 1 << 6
Json = dict[str, Any]


def image(shade: int) -> bytes:
    return samples.png(3, 2, (shade, 70, 20))


@pytest.fixture
async def dc() -> AsyncIterator[DiscordEmulator]:
    async with DiscordEmulator(application_id=APP_ID) as emulator:
        emulator.add_user(ANN, "ann")
        emulator.add_user(CAT, "cat")
        emulator.add_guild(GUILD, name="Gallery", owner_id=ANN, channels=[CHANNEL],
                           members=[(CAT, 0)])  # fmt: skip
        yield emulator
        assert emulator.internal_errors == []


def discord_config(
    tmp_path: Path,
    host_emu: HostEmulator,
    dc: DiscordEmulator,
    *,
    own: bool = False,
    loopback: bool = True,
) -> Config:
    raw: Json = {
        "upload": {"hosts": ["bb", "chev"], "retry_backoff": 0.01},
        "hosts": {
            "bb": {"dialect": "imgbb", "endpoint": host_emu.imgbb_endpoint, "api_key": IMGBB_KEY},
            "chev": {
                "dialect": "chevereto",
                "endpoint": host_emu.chevereto_endpoint,
                "api_key": CHEV_KEY,
            },
        },
        "storage": {"path": str(tmp_path / "rehost.db")},
        "discord": {
            "token": dc.token,
            "guild_ids": [GUILD],
            "api_base_url": dc.api_base,
            "gateway_url": dc.gateway_url,
        },
    }
    environ: dict[str, str] = {}
    if own:
        raw["communities"] = {"allow_own_host": True}
        environ["REHOST_SECRET_KEY"] = SECRET
    if loopback:  # the emulators listen on 127.0.0.1
        raw["links"] = {"allowed_networks": ["127.0.0.0/8"]}
    return parse_config(raw, base_dir=tmp_path, environ=environ)


SECRET = Fernet.generate_key().decode()


@asynccontextmanager
async def discord_bot(config: Config) -> AsyncIterator[Core]:
    async with open_core(config) as core:
        assert core.config.discord is not None
        adapter = DiscordAdapter(core, core.config.discord, guild_ready_timeout=0.05)
        await adapter.start()
        try:
            yield core
        finally:
            await adapter.stop()


async def answered(dc: DiscordEmulator, interaction: Json) -> Json:
    """The bot's one response to ``interaction``."""
    await until(lambda: bool(dc.interaction_responses(interaction["id"])))
    [response] = dc.interaction_responses(interaction["id"])
    return response


async def open_settings(dc: DiscordEmulator, user: int = ANN, *, forged: bool = False) -> Json:
    options = [{"name": "settings", "type": 1}]
    if forged:  # sent although Discord shows the command only to managers
        [command] = [c for c in dc.world.commands[GUILD] if c["name"] == "rehost"]
        channel = dc.world.channels[CHANNEL]
        data = {**command_data(command), "options": options}
        interaction = await dc._push_interaction(APPLICATION_COMMAND, data, user, channel)
    else:
        interaction = await dc.slash_command("rehost", user, CHANNEL, GUILD, options=options)
    await answered(dc, interaction)
    return interaction


def settings_message(dc: DiscordEmulator, interaction: Json) -> Json:
    original = dc.world.interactions[int(interaction["id"])].original_id
    assert original is not None
    return dc.message(original)


def select(message: Json, custom_id: str) -> Json:
    for row in message["components"]:
        for item in row["components"]:
            if item.get("custom_id") == custom_id:
                return item
    raise AssertionError(f"no {custom_id} on the settings message")


async def choose(
    dc: DiscordEmulator, message: Json, custom_id: str, values: list[str], user: int = ANN
) -> Json:
    """A user picks ``values`` in a menu of the settings message; the bot's response."""
    pressed = await dc.press_button(custom_id, user, CHANNEL, message, GUILD, values=values)
    return await answered(dc, pressed)


async def upload(dc: DiscordEmulator, data: bytes, *options: Json, user: int = ANN) -> Json:
    attachment = dc.add_attachment(data, "pic.png", "image/png")
    file = {"name": "file", "type": 11, "value": attachment}
    interaction = await dc.slash_command("upload", user, CHANNEL, GUILD, options=[file, *options])
    await until(lambda: len(dc.followups(interaction["token"])) >= 1)
    return interaction


def all_messages(dc: DiscordEmulator) -> str:
    return json.dumps([dc.channel_messages(c) for c in dc.world.channels])


async def test_a_manager_sets_hosts_expiry_and_nsfw_and_the_next_upload_follows_them(
    tmp_path: Path, host_emu: HostEmulator, dc: DiscordEmulator
) -> None:
    async with discord_bot(discord_config(tmp_path, host_emu, dc)) as core:
        opened = await open_settings(dc)
        message = settings_message(dc, opened)
        assert message["flags"] & EPHEMERAL
        assert "Settings of Gallery" in message["content"]
        assert "all configured hosts" in message["content"]

        await choose(dc, message, "rehost:set:hosts", ["chev"])
        await choose(dc, message, "rehost:set:default_expiration", ["1d"])
        await choose(dc, message, "rehost:set:max_expiration", ["1w"])
        response = await choose(dc, message, "rehost:set:switch", ["nsfw=on"])
        assert response["type"] == 7  # the settings message, edited in place
        shown = dc.message(message["id"])["content"]
        assert "Hosts: chev" in shown and "Default expiry: 1 day" in shown
        assert "NSFW: on" in shown and "Longest expiry: 1 week" in shown
        assert "ann: NSFW → on" in shown  # who changed what, newest first

        pressed = await dc.press_button("rehost:setb:quotas", ANN, CHANNEL, message, GUILD)
        assert (await answered(dc, pressed))["type"] == 9  # the quotas form
        submitted = await dc.submit_modal(
            pressed, {"quota_images_per_member": "5", "quota_bytes_per_day": "100"}
        )
        assert (await answered(dc, submitted))["data"]["content"] == "Quotas saved."
        settings = await Communities(core.store.db).settings("discord", str(GUILD))
        assert settings.quota_images_per_member == 5
        assert settings.quota_bytes_per_day == 100 * 1024 * 1024

        await upload(dc, image(1))  # the server's default expiry
        await upload(dc, image(2), {"name": "expire", "type": 3, "value": "never"})

    first, second = host_emu.uploads
    assert [u.path for u in host_emu.uploads] == ["/api/1/upload"] * 2  # chev, not bb
    assert first.param("nsfw") == "1" and second.param("nsfw") == "1"
    hosted = sorted(host_emu.images.values(), key=lambda i: i.uploaded_at)
    assert hosted[0].expiration_sent == "P1D"
    assert hosted[1].expiration_sent == "P1W"  # "never" asked: the longest allowed
    assert "the longest this community allows" in all_messages(dc)


async def test_a_member_without_manage_server_is_refused_even_with_a_forged_interaction(
    tmp_path: Path, host_emu: HostEmulator, dc: DiscordEmulator
) -> None:
    async with discord_bot(discord_config(tmp_path, host_emu, dc)) as core:
        refused = await open_settings(dc, CAT, forged=True)
        [answer] = dc.interaction_responses(refused["id"])
        assert answer["flags"] & EPHEMERAL
        assert "Only members with Manage Server" in answer["data"]["content"]
        assert "components" not in answer["data"] or not answer["data"]["components"]

        # Pressing a menu of the manager's settings message with a forged interaction.
        message = settings_message(dc, await open_settings(dc))
        forged = await choose(dc, message, "rehost:set:switch", ["nsfw=on"], user=CAT)
        assert "Only members with Manage Server" in forged["data"]["content"]
        settings = await Communities(core.store.db).settings("discord", str(GUILD))
        assert settings.nsfw is None
        assert await Communities(core.store.db).changes("discord", str(GUILD)) == []


async def test_a_server_with_its_own_chevereto_uploads_there_and_its_key_stays_secret(
    tmp_path: Path,
    host_emu: HostEmulator,
    dc: DiscordEmulator,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    config = discord_config(tmp_path, host_emu, dc, own=True)
    async with HostEmulator(api_keys=(OWN_KEY,)) as own, discord_bot(config) as core:
        message = settings_message(dc, await open_settings(dc))
        pressed = await dc.press_button("rehost:setb:own", ANN, CHANNEL, message, GUILD)
        form = await answered(dc, pressed)
        assert form["type"] == 9  # a modal
        fields = [c for row in form["data"]["components"] for c in row["components"]]
        [key_field] = [f for f in fields if f["custom_id"] == "api_key"]
        assert not key_field.get("value")  # never pre-filled
        submitted = await dc.submit_modal(
            pressed,
            {"dialect": "chevereto", "endpoint": own.chevereto_endpoint, "api_key": OWN_KEY},
        )
        saved = await answered(dc, submitted)
        assert "Own host set: chevereto at 127.0.0.1" in saved["data"]["content"]

        again = settings_message(dc, await open_settings(dc))
        assert "Own host: chevereto at 127.0.0.1" in again["content"]
        await upload(dc, image(3))
        # Its links came from the community's endpoint: the link check leaves them alone.
        probes = await LinkChecker(core.store, core.http).probes()
        assert [p.host for p in probes] == []

    [received] = own.uploads
    assert received.headers.get("x-api-key") == OWN_KEY or received.param("key") == OWN_KEY
    assert host_emu.uploads == []  # the operator's hosts were not used
    [hosted] = own.images.values()
    assert hosted.viewer_url in all_messages(dc)
    assert OWN_KEY not in all_messages(dc)
    assert OWN_KEY not in caplog.text
    assert OWN_KEY not in json.dumps([c.__dict__ for c in dc.calls], default=str)

    env = {"REHOST_STORAGE_PATH": str(tmp_path / "rehost.db")}
    config_file = tmp_path / "rehost.toml"
    config_file.write_text(
        f'[upload]\nhosts = ["chev"]\n[hosts.chev]\ndialect = "chevereto"\n'
        f'endpoint = "{host_emu.chevereto_endpoint}"\napi_key = "{CHEV_KEY}"\n'
        f'[storage]\npath = "{tmp_path / "rehost.db"}"\n'
    )
    config_file.chmod(0o600)
    for args in (("history",), ("history", "--json")):
        ran = await run_rehost(*args, "-c", str(config_file), env=env)
        assert ran.code == 0, ran.stderr
        assert "own" in ran.stdout and hosted.viewer_url in ran.stdout
        assert OWN_KEY not in ran.stdout + ran.stderr
    assert OWN_KEY.encode() not in (tmp_path / "rehost.db").read_bytes()  # sealed at rest


async def test_an_own_endpoint_on_the_operators_network_is_refused(
    tmp_path: Path, host_emu: HostEmulator, dc: DiscordEmulator
) -> None:
    config = discord_config(tmp_path, host_emu, dc, own=True, loopback=False)
    async with HostEmulator(api_keys=(OWN_KEY,)) as own, discord_bot(config):
        message = settings_message(dc, await open_settings(dc))
        pressed = await dc.press_button("rehost:setb:own", ANN, CHANNEL, message, GUILD)
        await answered(dc, pressed)
        submitted = await dc.submit_modal(
            pressed, {"endpoint": own.chevereto_endpoint, "api_key": OWN_KEY}
        )
        answer = (await answered(dc, submitted))["data"]["content"]
    assert answer == (
        "Not saved: The endpoint 127.0.0.1 is a loopback address: only public ones are allowed."
    )
    assert own.requests == []
    assert OWN_KEY not in all_messages(dc)


def test_own_hosts_need_a_secret_key_from_the_environment(tmp_path: Path) -> None:
    raw: Json = {
        "upload": {"hosts": ["c"]},
        "hosts": {
            "c": {"dialect": "chevereto", "endpoint": "https://h/api/1/upload", "api_key": "k"}
        },
        "communities": {"allow_own_host": True},
    }
    with pytest.raises(ConfigError) as refused:
        parse_config(raw, base_dir=tmp_path, environ={})
    assert refused.value.key == "communities.allow_own_host"
    assert "REHOST_SECRET_KEY" in str(refused.value)
    with pytest.raises(ConfigError) as bad:
        parse_config(raw, base_dir=tmp_path, environ={"REHOST_SECRET_KEY": "short"})
    assert bad.value.key == "REHOST_SECRET_KEY"
    raw["communities"] = {"allow_own_hosts": True}
    with pytest.raises(ConfigError) as unknown:
        parse_config(raw, base_dir=tmp_path, environ={"REHOST_SECRET_KEY": SECRET})
    assert unknown.value.key == "communities.allow_own_hosts"
    config = parse_config(
        {**raw, "communities": {"allow_own_host": True}},
        base_dir=tmp_path,
        environ={"REHOST_SECRET_KEY": SECRET},
    )
    assert config.communities.allow_own_host and SECRET in config.secrets()


# --- Telegram ------------------------------------------------------------------------------


def telegram_messages(tg: TelegramEmulator, chat_id: int) -> list[str]:
    return [str(m.get("text", "")) for m in tg.messages(chat_id) if not m.get("deleted")]


def answers_to_buttons(tg: TelegramEmulator) -> list[str]:
    return [str(c.params.get("text", "")) for c in tg.calls_to("answerCallbackQuery")]


async def test_a_telegram_admin_changes_a_setting_with_the_keyboard_and_a_member_cannot(
    tmp_path: Path, host: HostEmulator, tg: TelegramEmulator
) -> None:
    telegram_world(tg)
    async with running_adapter(telegram_config(tmp_path, host, tg)) as adapter:
        db = adapter.core.store.db
        tg.send_text(GROUP, BOB, "/settings")
        await until(
            lambda: any("Only the group's admins" in t for t in telegram_messages(tg, GROUP))
        )

        tg.send_text(GROUP, TG_ANN, "/settings")
        await until(lambda: any("Settings of Photos" in t for t in telegram_messages(tg, GROUP)))
        [shown] = [m for m in tg.messages(GROUP) if "Settings of Photos" in m.get("text", "")]
        assert "NSFW: default" in shown["text"]
        nsfw_on = f"set:{GROUP}:nsfw=on"

        tg.press_button(GROUP, BOB, shown["message_id"], nsfw_on)  # anyone can press it
        await until(lambda: any("Only the group's admins" in t for t in answers_to_buttons(tg)))
        assert (await Communities(db).settings("telegram", str(GROUP))).nsfw is None

        tg.press_button(GROUP, TG_ANN, shown["message_id"], nsfw_on)
        await until(lambda: "NSFW: on" in tg.message(GROUP, shown["message_id"])["text"])
        assert (await Communities(db).settings("telegram", str(GROUP))).nsfw is True
        [change] = await Communities(db).changes("telegram", str(GROUP))
        assert (change["actor_id"], change["setting"]) == (str(TG_ANN), "nsfw")
        assert "ann: NSFW → on" in tg.message(GROUP, shown["message_id"])["text"]

        tg.send_photo(GROUP, BOB, image(7))  # auto-rehosted here: now marked NSFW
        await until(lambda: len(host.uploads) == 1)
    assert host.uploads[0].param("nsfw") == "1"


def picker_buttons(message: dict[str, Any]) -> list[tuple[str, str]]:
    rows = (message.get("reply_markup") or {}).get("inline_keyboard", [])
    return [(b["text"], b["callback_data"]) for row in rows for b in row]


async def test_the_private_settings_picker_remembers_an_admins_groups_across_a_restart(
    tmp_path: Path, host: HostEmulator, tg: TelegramEmulator
) -> None:
    """The groups offered by /settings in private outlive the process that saw the user
    as an admin; a group where they no longer are is refused, then no longer offered."""
    telegram_world(tg)
    config = telegram_config(tmp_path, host, tg)
    async with running_adapter(config) as adapter:
        tg.send_text(GROUP, TG_ANN, "/settings")
        await until(lambda: any("Settings of Photos" in t for t in telegram_messages(tg, GROUP)))
        await settled(adapter, tg)

    def pickers() -> list[dict[str, Any]]:
        return [m for m in tg.messages(TG_ANN) if m.get("text") == "Which group?"]

    opened = f"set:{GROUP}:open"
    async with running_adapter(config):  # a restart: nothing kept in memory
        tg.send_text(TG_ANN, TG_ANN, "/settings")
        await until(lambda: len(pickers()) == 1)
        [picker] = pickers()
        assert picker_buttons(picker) == [("Photos", opened)]
        tg.press_button(TG_ANN, TG_ANN, picker["message_id"], opened)
        await until(
            lambda: "Settings of Photos" in tg.message(TG_ANN, picker["message_id"])["text"]
        )

        tg.set_admin(GROUP, TG_ANN, False)
        tg.send_text(TG_ANN, TG_ANN, "/settings")
        await until(lambda: len(pickers()) == 1)  # the first one now shows the settings
        [again] = pickers()
        assert picker_buttons(again) == [("Photos", opened)]
        tg.press_button(TG_ANN, TG_ANN, again["message_id"], opened)
        await until(lambda: any("Only the group's admins" in t for t in answers_to_buttons(tg)))
        assert tg.message(TG_ANN, again["message_id"])["text"] == "Which group?"

        tg.send_text(TG_ANN, TG_ANN, "/settings")
        await until(
            lambda: any("Send /settings in a group" in t for t in telegram_messages(tg, TG_ANN))
        )
    assert pickers() == [again]


async def test_a_telegram_group_gets_its_own_host_in_private_and_the_key_is_deleted(
    tmp_path: Path,
    host: HostEmulator,
    tg: TelegramEmulator,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    telegram_world(tg)
    monkeypatch.setenv("REHOST_SECRET_KEY", SECRET)
    extra = '\n[communities]\nallow_own_host = true\n[links]\nallowed_networks = ["127.0.0.0/8"]\n'
    config = telegram_config(tmp_path, host, tg)
    config.write_text(config.read_text() + extra)
    async with HostEmulator(api_keys=(OWN_KEY,)) as own, running_adapter(config) as adapter:
        tg.send_text(GROUP, TG_ANN, "/settings")  # the bot sees Ann as an admin of Photos
        await until(lambda: any("Settings of Photos" in t for t in telegram_messages(tg, GROUP)))
        tg.send_text(TG_ANN, TG_ANN, "/settings")
        await until(lambda: any("Which group?" in t for t in telegram_messages(tg, TG_ANN)))

        sent = tg.send_text(
            TG_ANN, TG_ANN, f"/ownhost {GROUP} chevereto {own.chevereto_endpoint} {OWN_KEY}"
        )
        await until(lambda: any("Own host set" in t for t in telegram_messages(tg, TG_ANN)))
        deleted = [c.params for c in tg.calls_to("deleteMessage")]
        assert {"chat_id": TG_ANN, "message_id": sent["message_id"]} in [
            {"chat_id": int(p["chat_id"]), "message_id": int(p["message_id"])} for p in deleted
        ]
        tg.send_photo(GROUP, BOB, image(8))
        await until(lambda: len(own.uploads) == 1)
        await settled(adapter, tg)
    assert host.uploads == []
    assert own.uploads[0].headers.get("x-api-key") == OWN_KEY
    # Allowed here, so /ownhost is in the command list, in every language.
    lists = {
        c.params.get("language_code"): {
            d["command"]: d["description"] for d in c.params["commands"]
        }
        for c in tg.calls_to("setMyCommands")
    }
    assert lists[None]["ownhost"] == (
        "admins, in private: /ownhost GROUP_ID: set a group's own image host"
    )
    assert lists["es"]["ownhost"] == (
        "admins, en privado: /ownhost GROUP_ID: define el alojamiento propio de un grupo"
    )
    assert lists["zh"]["ownhost"] == "管理员，私聊中：/ownhost GROUP_ID：设置群组的自有图床"
    said = json.dumps([c.params for c in tg.calls], default=str)
    assert OWN_KEY not in said
    assert OWN_KEY not in caplog.text
