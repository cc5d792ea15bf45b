"""The settings texts in the manager's language: the change log's lines (each setting by
its label, each value written for people) and the refusals of values that cannot be
used, numbers and durations included, on Discord and on Telegram."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bot.community import Communities
from bot.i18n import format_datetime
from bot.store import from_text
from sandbox.discord_api import DiscordEmulator
from sandbox.hostemu import HostEmulator
from sandbox.telegram_api import TelegramEmulator
from tests.telegram_harness import ANN as TG_ANN
from tests.telegram_harness import GROUP, running_adapter, telegram_config, telegram_world
from tests.test_community_settings import (
    ANN,
    APP_ID,
    CHANNEL,
    GUILD,
    OWN_KEY,
    SECRET,
    answered,
    answers_to_buttons,
    discord_bot,
    discord_config,
    open_settings,
    settings_message,
    telegram_messages,
)
from tests.test_discord_adapter import until


@pytest.fixture
async def dc() -> AsyncIterator[DiscordEmulator]:
    async with DiscordEmulator(application_id=APP_ID) as emulator:
        emulator.add_user(ANN, "ann")
        emulator.add_guild(GUILD, name="Gallery", owner_id=ANN, channels=[CHANNEL])
        yield emulator
        assert emulator.internal_errors == []


async def test_a_spanish_manager_sees_a_quota_change_in_spanish_with_its_label_and_size(
    tmp_path: Path, host_emu: HostEmulator, dc: DiscordEmulator
) -> None:
    dc.world.users[ANN].locale = "es-ES"
    async with discord_bot(discord_config(tmp_path, host_emu, dc)) as core:
        message = settings_message(dc, await open_settings(dc))
        pressed = await dc.press_button("rehost:setb:quotas", ANN, CHANNEL, message, GUILD)
        form = (await answered(dc, pressed))["data"]
        assert form["title"] == "Cuotas"
        labels = [c["label"] for row in form["components"] for c in row["components"]]
        assert labels == [
            "Imágenes por miembro/día (vacío: sin límite)",
            "MB al día, todo el servidor (vacío: ninguno)",
        ]

        refused = await dc.submit_modal(
            pressed, {"quota_images_per_member": "", "quota_bytes_per_day": "mucho"}
        )
        assert (await answered(dc, refused))["data"]["content"] == (
            "No guardado: 'mucho' no es un número entero."
        )
        # The form closes once submitted: opened again for the right value.
        pressed = await dc.press_button("rehost:setb:quotas", ANN, CHANNEL, message, GUILD)
        await answered(dc, pressed)
        saved = await dc.submit_modal(
            pressed, {"quota_images_per_member": "", "quota_bytes_per_day": "2048"}
        )
        assert (await answered(dc, saved))["data"]["content"] == "Cuotas guardadas."

        shown = settings_message(dc, await open_settings(dc))["content"]
        [change] = await Communities(core.store.db).changes("discord", str(GUILD), limit=1)
        when = format_datetime(from_text(change["changed_at"]) or change["changed_at"], "es")
        assert re.fullmatch(r"\d{1,2} \w+ \d{4} \d\d:\d\d UTC", when)  # 29 nov 2026 20:15 UTC
        lines = shown.split("\n")
        assert "• Total al día: 2 GB" in lines
        assert f"• ann: Total al día → 2 GB ({when})" in lines
        assert "quota_bytes_per_day" not in shown and str(2048 * 1024 * 1024) not in shown


async def test_a_chinese_telegram_admin_is_told_why_a_value_was_refused_with_its_numbers(
    tmp_path: Path, host_emu: HostEmulator, tg: TelegramEmulator
) -> None:
    telegram_world(tg)
    tg.world.users[TG_ANN].language_code = "zh-hans"
    async with running_adapter(telegram_config(tmp_path, host_emu, tg)) as adapter:
        db = adapter.core.store.db
        tg.send_text(TG_ANN, TG_ANN, f"/settings {GROUP} quota 20 5000000")
        too_large = "未保存：请输入 0 到 1000000 之间的整数。"
        await until(lambda: too_large in telegram_messages(tg, TG_ANN))

        tg.send_text(TG_ANN, TG_ANN, f"/settings {GROUP}")
        await until(lambda: any("Photos 的设置：" in t for t in telegram_messages(tg, TG_ANN)))
        [shown] = [m for m in tg.messages(TG_ANN) if "Photos 的设置：" in m.get("text", "")]
        at = shown["message_id"]

        def press(data: str) -> None:
            tg.press_button(TG_ANN, TG_ANN, at, f"set:{GROUP}:{data}")

        press("m=max_expiration")
        await until(lambda: _has(tg, at, "x=1d"))
        press("x=1d")
        await until(lambda: "最长过期时间 → 1天" in tg.message(TG_ANN, at)["text"])
        press("m=default_expiration")
        await until(lambda: _has(tg, at, "d=1w"))
        press("d=1w")
        refusal = "默认过期时间（1周）不能长于允许的最长过期时间（1天）。"
        await until(lambda: refusal in answers_to_buttons(tg))
        settings = await Communities(db).settings("telegram", str(GROUP))
        assert (settings.default_expiration, settings.max_expiration) == (None, "1d")
        assert settings.quota_images_per_member is None  # nothing of the refused pair saved
        text = tg.message(TG_ANN, at)["text"]
        assert "• 最长过期时间：1天" in text
        assert "ann：最长过期时间 → 1天（" in text


def _has(tg: TelegramEmulator, message_id: int, action: str) -> bool:
    """Whether the message shows a button carrying ``action`` (the menu is open)."""
    rows = tg.message(TG_ANN, message_id).get("reply_markup", {}).get("inline_keyboard", [])
    return any(b.get("callback_data") == f"set:{GROUP}:{action}" for row in rows for b in row)


async def test_an_own_endpoint_refused_by_the_address_guard_is_told_in_the_admins_language(
    tmp_path: Path, host_emu: HostEmulator, tg: TelegramEmulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    telegram_world(tg)
    tg.world.users[TG_ANN].language_code = "zh-hans"
    monkeypatch.setenv("REHOST_SECRET_KEY", SECRET)
    config = telegram_config(tmp_path, host_emu, tg)  # no allowed_networks: 127.0.0.1 refused
    config.write_text(config.read_text() + "\n[communities]\nallow_own_host = true\n")
    async with running_adapter(config) as adapter:
        endpoint = host_emu.chevereto_endpoint
        tg.send_text(TG_ANN, TG_ANN, f"/ownhost {GROUP} chevereto {endpoint} {OWN_KEY}")
        refusal = "未保存：端点 127.0.0.1 是环回地址：只允许公网地址。"
        await until(lambda: refusal in telegram_messages(tg, TG_ANN))
        settings = await Communities(adapter.core.store.db).settings("telegram", str(GROUP))
    assert settings.own_host is None
    assert OWN_KEY not in str([c.params for c in tg.calls])
