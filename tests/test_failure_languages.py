"""Why an image failed reaches each reader in their language, numbers and names included:
the core keeps the reason as a msgid with its parameters (bot.said.Said), through the
job's row and the queued answer, and the adapter writes it out for whoever reads it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bot.community import Communities
from sandbox import samples
from sandbox.hostemu import Fault, HostEmulator
from sandbox.telegram_api import SentCall, TelegramEmulator
from tests.telegram_harness import ANN, GROUP, running_adapter, telegram_config

CHEN = 10


def sent_to(chat: int) -> Any:
    def match(call: SentCall) -> bool:
        return call.method == "sendMessage" and call.ok and int(call.params["chat_id"]) == chat

    return match


async def test_a_hosts_refusal_with_its_status_is_told_in_chinese_and_in_spanish(
    tmp_path: Path, host: HostEmulator, tg: TelegramEmulator
) -> None:
    tg.add_user(CHEN, first_name="Chen", username="chen", language_code="zh-hans")
    host.script(Fault("status", status=503), times=50)  # every try, every retry
    async with running_adapter(telegram_config(tmp_path, host, tg)) as adapter:
        tg.send_photo(CHEN, CHEN, samples.png(40, 40))
        private = await tg.wait_for(sent_to(CHEN), timeout=20)
        # The same failure in a group whose managers chose Spanish.
        await Communities(adapter.core.store.db).change(
            "telegram", str(GROUP), str(ANN), "Ann", language="es"
        )
        tg.send_photo(GROUP, CHEN, samples.png(41, 41))
        public = await tg.wait_for(sent_to(GROUP), timeout=20)
    assert not host.images  # nothing stored
    assert "chev 出现故障（HTTP 503）" in private.params["text"]
    assert "HTTP 503" in public.params["text"]
    assert "chev tiene problemas (HTTP 503)" in public.params["text"]
    assert "having trouble" not in private.params["text"] + public.params["text"]


async def test_a_quota_refusal_names_its_number_in_the_groups_language(
    tmp_path: Path, host: HostEmulator, tg: TelegramEmulator
) -> None:
    async with running_adapter(telegram_config(tmp_path, host, tg)) as adapter:
        await Communities(adapter.core.store.db).change(
            "telegram", str(GROUP), str(ANN), "Ann", language="es", quota_images_per_member=1
        )
        tg.send_photo(GROUP, ANN, samples.png(42, 42))
        first = await tg.wait_for(sent_to(GROUP), timeout=20)
        tg.send_photo(GROUP, ANN, samples.png(43, 43))
        second = await tg.wait_for(lambda c: sent_to(GROUP)(c) and c is not first, timeout=20)
    assert len(host.uploads) == 1
    text = second.params["text"]
    assert "la cuota diaria de este grupo de 1 imagen por miembro está agotada" in text
    assert "se libera en" in text and "UTC)" in text
