"""The Telegram adapter end to end: real python-telegram-bot against the local Bot API
emulator, the real service against the local host emulator."""

from __future__ import annotations

import asyncio
import io
from pathlib import Path
from typing import Any

import pytest
from PIL import Image
from pillow_heif import register_heif_opener

from bot.community import Communities
from sandbox import samples
from sandbox.hostemu import Fault, HostEmulator
from sandbox.telegram_api import SentCall, TelegramEmulator
from tests.telegram_harness import (
    ANN,
    BOB,
    GROUP,
    NOBODY,
    QUIET_GROUP,
    running_adapter,
    settled,
    telegram_config,
)

# The bot's database on each engine: SQLite, then PostgreSQL.
pytestmark = pytest.mark.usefixtures("engine")

register_heif_opener()


def sent_to(chat: int) -> Any:
    def match(call: SentCall) -> bool:
        return call.method == "sendMessage" and call.ok and int(call.params["chat_id"]) == chat

    return match


def delete_links(host: HostEmulator) -> list[str]:
    return [image.delete_url for image in host.images.values() if image.delete_url]


def preview_disabled(call: SentCall) -> bool:
    return bool(call.params.get("link_preview_options", {}).get("is_disabled"))


def buttons(call: SentCall) -> list[dict[str, Any]]:
    markup = call.params.get("reply_markup") or {}
    return [button for row in markup.get("inline_keyboard", []) for button in row]


async def test_a_private_photo_gets_links_and_a_private_delete_link(
    tmp_path: Path, host: HostEmulator, tg: TelegramEmulator
) -> None:
    photo = samples.png(64, 48)
    async with running_adapter(telegram_config(tmp_path, host, tg)):
        tg.send_photo(ANN, ANN, [samples.png(8, 6), photo])
        reply = await tg.wait_for(sent_to(ANN), timeout=10)
    [image] = host.images.values()
    assert image.data == photo, "the largest size was rehosted"
    text = reply.params["text"]
    assert image.viewer_url in text and image.url in text
    assert image.delete_url in text
    assert preview_disabled(reply)
    labels = [b["text"] for b in buttons(reply)]
    assert labels == ["Open", "Delete"]
    assert tg.preview_fetches == []
    assert not image.deleted
    assert tg.calls_to("sendChatAction")[0].params["action"] == "upload_photo"
    commands = tg.calls_to("setMyCommands")[0].params["commands"]
    assert {c["command"] for c in commands} >= {"upload", "mine", "delete", "help"}


async def test_group_auto_rehost_posts_no_delete_link_and_dms_the_uploader(
    tmp_path: Path, host: HostEmulator, tg: TelegramEmulator
) -> None:
    async with running_adapter(telegram_config(tmp_path, host, tg)):
        sent = tg.send_photo(GROUP, BOB, samples.png(10, 10))
        public = await tg.wait_for(sent_to(GROUP), timeout=10)
        private = await tg.wait_for(sent_to(BOB))
    [image] = host.images.values()
    assert image.viewer_url in public.params["text"] and image.url in public.params["text"]
    assert all(link not in str(public.params) for link in delete_links(host))
    assert "sent privately" in public.params["text"]
    assert public.params["reply_parameters"]["message_id"] == sent["message_id"]
    assert image.delete_url in private.params["text"]
    assert preview_disabled(private)
    assert "Photos" in private.params["text"]
    assert tg.preview_fetches == [] or all("/delete/" not in u for u in tg.preview_fetches)


async def test_an_uploader_who_never_started_the_bot_sees_no_leak(
    tmp_path: Path, host: HostEmulator, tg: TelegramEmulator
) -> None:
    async with running_adapter(telegram_config(tmp_path, host, tg)):
        tg.send_photo(GROUP, NOBODY, samples.png(11, 11))
        public = await tg.wait_for(sent_to(GROUP), timeout=10)
        refused_dm = [c for c in tg.calls_to("sendMessage") if c.status == 403]
        # Later they start the bot and find the link in /mine.
        tg.send_text(NOBODY, NOBODY, "/mine")
        mine = await tg.wait_for(sent_to(NOBODY))
    [image] = host.images.values()
    assert image.delete_url is not None
    assert len(refused_dm) == 1
    assert "start a private chat with @rehost_test_bot" in public.params["text"]
    for call in tg.calls:
        if call.method in ("sendMessage", "editMessageText") and call.ok:
            chat = int(call.params["chat_id"])
            if chat != NOBODY:
                assert image.delete_url not in str(call.params)
    assert image.delete_url in mine.params["text"] and preview_disabled(mine)


async def test_an_album_of_three_gets_one_reply_with_three_links(
    tmp_path: Path, host: HostEmulator, tg: TelegramEmulator
) -> None:
    photos = [samples.png(20 + i, 20) for i in range(3)]
    async with running_adapter(telegram_config(tmp_path, host, tg)) as adapter:
        for photo in photos:
            tg.send_photo(ANN, ANN, photo, media_group_id="album-1")
        reply = await tg.wait_for(sent_to(ANN), timeout=10)
        await settled(adapter, tg)
        replies = [c for c in tg.calls_to("sendMessage") if c.ok]
    assert len(replies) == 1
    assert {image.data for image in host.images.values()} == set(photos)
    for image in host.images.values():
        assert image.viewer_url in reply.params["text"]
    assert [b["text"] for b in buttons(reply)][:2] == ["Open 1", "Delete 1"]


async def test_upload_on_a_pdf_gets_a_plain_refusal(
    tmp_path: Path, host: HostEmulator, tg: TelegramEmulator
) -> None:
    async with running_adapter(telegram_config(tmp_path, host, tg)):
        tg.send_document(
            QUIET_GROUP, ANN, b"%PDF-1.7\n", "report.pdf", "application/pdf", caption="/upload"
        )
        reply = await tg.wait_for(sent_to(QUIET_GROUP), timeout=10)
    assert reply.params["text"].startswith("report.pdf is not an image")
    assert host.requests == []


async def test_upload_in_reply_with_a_duration(
    tmp_path: Path, host: HostEmulator, tg: TelegramEmulator
) -> None:
    tg.set_bot_admin(QUIET_GROUP)  # it sees the photo, and must leave it alone
    async with running_adapter(telegram_config(tmp_path, host, tg)) as adapter:
        photo = tg.send_photo(QUIET_GROUP, BOB, samples.png(12, 12))
        await settled(adapter, tg)
        assert host.uploads == [], "no auto-rehost in this group"
        tg.send_text(QUIET_GROUP, ANN, "/upload 3d", reply_to_message_id=photo["message_id"])
        public = await tg.wait_for(sent_to(QUIET_GROUP), timeout=10)
        await tg.wait_for(sent_to(ANN))
    assert host.uploads[0].form["expiration"] == "P3D"
    assert public.params["reply_parameters"]["message_id"] == photo["message_id"]
    assert "expires" in public.params["text"]


async def test_the_owner_deletes_with_the_button_and_the_group_post_goes(
    tmp_path: Path, host: HostEmulator, tg: TelegramEmulator
) -> None:
    async with running_adapter(telegram_config(tmp_path, host, tg)):
        tg.send_photo(GROUP, ANN, samples.png(13, 13))
        await tg.wait_for(sent_to(GROUP), timeout=10)
        private = await tg.wait_for(sent_to(ANN))
        dm = tg.messages(ANN)[-1]
        delete_button = next(b for b in buttons(private) if b["text"] == "Delete")
        tg.press_button(ANN, ANN, dm["message_id"], delete_button["callback_data"])
        confirm = await tg.wait_for(
            lambda c: sent_to(ANN)(c) and "Yes, delete" in str(c.params.get("reply_markup"))
        )
        prompt = tg.messages(ANN)[-1]
        assert "Delete #" in confirm.params["text"]
        tg.press_button(
            ANN, ANN, prompt["message_id"], f"delok:{delete_button['callback_data'][4:]}"
        )
        await tg.wait_for(lambda c: c.method == "deleteMessage")
        done = await tg.wait_for(
            lambda c: c.method == "editMessageText" and "Deleted" in c.params.get("text", "")
        )
    [image] = host.images.values()
    assert image.deleted
    [group_post] = tg.world.bot_messages(GROUP)  # the public answer, the bot's only post
    assert group_post["deleted"]
    assert "Deleted #" in done.params["text"]


async def test_another_user_cannot_delete(
    tmp_path: Path, host: HostEmulator, tg: TelegramEmulator
) -> None:
    async with running_adapter(telegram_config(tmp_path, host, tg)) as adapter:
        tg.send_photo(ANN, ANN, samples.png(14, 14))
        await tg.wait_for(sent_to(ANN), timeout=10)
        [upload] = await adapter.core.library.live_uploads("telegram", str(ANN))
        tg.send_text(BOB, BOB, f"/delete {upload.id}")
        refusal = await tg.wait_for(sent_to(BOB))
        tg.send_text(ANN, ANN, f"/delete {upload.id}")
        await tg.wait_for(lambda c: sent_to(ANN)(c) and "Yes, delete" in str(c.params))
    assert f"You have no live upload #{upload.id}" in refusal.params["text"]
    assert not any(image.deleted for image in host.images.values())


async def test_admins_switch_auto_rehost_and_others_cannot(
    tmp_path: Path, host: HostEmulator, tg: TelegramEmulator
) -> None:
    tg.set_bot_admin(QUIET_GROUP)  # in privacy mode only an admin bot sees plain photos
    async with running_adapter(telegram_config(tmp_path, host, tg)):
        tg.send_text(QUIET_GROUP, BOB, "/autorehost on")
        refused = await tg.wait_for(sent_to(QUIET_GROUP))
        tg.send_text(QUIET_GROUP, ANN, "/autorehost on 1d")
        await tg.wait_for(lambda c: sent_to(QUIET_GROUP)(c) and "is on" in c.params["text"])
        tg.send_photo(QUIET_GROUP, BOB, samples.png(15, 15))
        await tg.wait_for(lambda c: sent_to(QUIET_GROUP)(c) and "Rehosted" in c.params["text"], 10)
    assert "Only the group's admins" in refused.params["text"]
    assert host.uploads[0].form["expiration"] == "P1D"


async def test_rate_limits_and_download_limits_are_handled(
    tmp_path: Path, host: HostEmulator, tg: TelegramEmulator
) -> None:
    tg.fail_next("sendMessage", status=429, retry_after=1)
    async with running_adapter(telegram_config(tmp_path, host, tg)):
        tg.send_document(ANN, ANN, samples.png(), "huge.png", "image/png", file_size=30 << 20)
        reply = await tg.wait_for(sent_to(ANN), timeout=15)
    assert [c.status for c in tg.calls_to("sendMessage")] == [429, 200]
    assert "Telegram lets bots download files of at most 20 MB" in reply.params["text"]
    assert host.requests == []


async def test_a_restart_in_the_middle_of_an_album_loses_nothing(
    tmp_path: Path, host: HostEmulator, tg: TelegramEmulator
) -> None:
    config = telegram_config(tmp_path, host, tg)
    photos = [samples.png(30 + i, 30) for i in range(3)]
    host.script(Fault("slow", delay=30), times=3)
    async with running_adapter(config):
        for photo in photos:
            tg.send_photo(GROUP, BOB, photo, media_group_id="album-2")
        async with asyncio.timeout(10):
            while not host.uploads:
                await asyncio.sleep(0.05)
    # Stopped mid-upload: nothing was answered, nothing stored.
    assert not [c for c in tg.calls_to("sendMessage") if int(c.params["chat_id"]) == GROUP]
    host.clear_faults()
    async with running_adapter(config):
        public = await tg.wait_for(sent_to(GROUP), timeout=10)
        await tg.wait_for(sent_to(BOB))
    assert {image.data for image in host.images.values()} == set(photos)
    for image in host.images.values():
        assert image.viewer_url in public.params["text"]
    assert len([c for c in tg.calls_to("sendMessage") if sent_to(GROUP)(c)]) == 1


async def test_mine_fits_one_message_however_many_uploads(
    tmp_path: Path, host: HostEmulator, tg: TelegramEmulator
) -> None:
    async with running_adapter(telegram_config(tmp_path, host, tg)):
        for i in range(12):
            tg.send_photo(ANN, ANN, samples.png(40 + i, 40))
        async with asyncio.timeout(20):
            while len([c for c in tg.calls_to("sendMessage") if sent_to(ANN)(c)]) < 12:
                await asyncio.sleep(0.05)
        tg.send_text(ANN, ANN, "/mine")
        mine = await tg.wait_for(lambda c: sent_to(ANN)(c) and "live uploads" in c.params["text"])
    text = mine.params["text"]
    assert len(text) <= 4096
    assert "more)" in text
    assert len(buttons(mine)) <= 20 and preview_disabled(mine)


async def test_auto_rehost_warns_when_privacy_mode_hides_the_photos(
    tmp_path: Path, host: HostEmulator, tg: TelegramEmulator
) -> None:
    async with running_adapter(telegram_config(tmp_path, host, tg)):
        tg.send_text(QUIET_GROUP, ANN, "/autorehost on")
        hidden = await tg.wait_for(
            lambda c: sent_to(QUIET_GROUP)(c) and "is on" in c.params["text"]
        )
        tg.set_bot_admin(QUIET_GROUP)
        tg.send_text(QUIET_GROUP, ANN, "/autorehost on 1d")
        seen = await tg.wait_for(
            lambda c: sent_to(QUIET_GROUP)(c) and "kept for 1 day" in c.params["text"]
        )
    assert "make me an admin" in hidden.params["text"]
    assert "make me an admin" not in seen.params["text"]


async def test_an_id_beyond_any_integer_is_just_an_unknown_upload(
    tmp_path: Path, host: HostEmulator, tg: TelegramEmulator
) -> None:
    async with running_adapter(telegram_config(tmp_path, host, tg)):
        tg.send_text(ANN, ANN, "/delete 99999999999999999999")
        reply = await tg.wait_for(sent_to(ANN))
    assert "You have no live upload #99999999999999999999" in reply.params["text"]


async def test_an_avif_file_is_rehosted_and_a_heic_arrives_as_jpeg_saying_so(
    tmp_path: Path, host: HostEmulator, tg: TelegramEmulator
) -> None:
    heic = io.BytesIO()
    Image.new("RGB", (12, 8), (200, 30, 40)).save(heic, format="HEIF")
    async with running_adapter(telegram_config(tmp_path, host, tg)) as adapter:
        tg.send_document(ANN, ANN, samples.avif(), "photo.avif", "image/avif")
        tg.send_document(ANN, ANN, heic.getvalue(), "photo.heic", "image/heic")
        await settled(adapter, tg)
    texts = [c.params["text"] for c in tg.calls_to("sendMessage") if sent_to(ANN)(c)]
    assert len(texts) == 2 and all(t.startswith("Rehosted") for t in texts)
    assert "Keep it private: opening it deletes the image at once." in texts[0]  # Chevereto
    assert [t for t in texts if "converted from HEIC to JPEG" in t]
    assert sorted(r.files[0].content_type for r in host.uploads) == ["image/avif", "image/jpeg"]


async def test_upload_in_reply_to_an_album_nobody_asked_for_in_time_is_answered(
    tmp_path: Path, host: HostEmulator, tg: TelegramEmulator
) -> None:
    tg.set_bot_admin(QUIET_GROUP)  # it sees the album, and must leave it alone
    async with running_adapter(telegram_config(tmp_path, host, tg)) as adapter:
        first = tg.send_photo(QUIET_GROUP, BOB, samples.png(70, 71), media_group_id="late")
        tg.send_photo(QUIET_GROUP, BOB, samples.png(71, 71), media_group_id="late")
        await settled(adapter, tg)  # gathered, then dropped: nobody asked
        assert host.uploads == []
        tg.send_text(QUIET_GROUP, ANN, "/upload", reply_to_message_id=first["message_id"])
        public = await tg.wait_for(sent_to(QUIET_GROUP), timeout=10)
        await settled(adapter, tg)
        tg.send_text(QUIET_GROUP, BOB, "/upload", reply_to_message_id=first["message_id"])
        again = await tg.wait_for(lambda c: sent_to(QUIET_GROUP)(c) and c is not public, timeout=10)
    assert "Rehosted" in public.params["text"]
    assert "Rehosted" in again.params["text"], "asking again gets an answer too"


async def test_a_user_with_language_code_zh_hans_is_answered_in_chinese(
    tmp_path: Path, host: HostEmulator, tg: TelegramEmulator
) -> None:
    chen = 10
    tg.add_user(chen, first_name="Chen", username="chen", language_code="zh-hans")
    async with running_adapter(telegram_config(tmp_path, host, tg)) as adapter:
        tg.send_photo(chen, chen, samples.png(30, 30))
        reply = await tg.wait_for(sent_to(chen), timeout=10)
        # In a group: the public post follows the group (English until its managers
        # choose), the delete link comes in Chinese.
        tg.send_photo(GROUP, chen, samples.png(31, 31))
        public = await tg.wait_for(sent_to(GROUP), timeout=10)
        private = await tg.wait_for(lambda call: sent_to(chen)(call) and call is not reply)
        communities = Communities(adapter.core.store.db)
        await communities.change("telegram", str(GROUP), str(ANN), "Ann", language="es")
        tg.send_photo(GROUP, chen, samples.png(32, 32))
        spanish = await tg.wait_for(lambda call: sent_to(GROUP)(call) and call is not public)
    first, second, _ = host.images.values()
    text = reply.params["text"]
    assert text.startswith("已转存：")
    assert f"删除：{first.delete_url}" in text and "请勿公开：" in text
    assert [b["text"] for b in buttons(reply)] == ["打开", "删除"]
    assert public.params["text"].startswith("Rehosted: (for Chen)")
    assert second.delete_url not in str(public.params)
    assert private.params["text"].startswith("已转存：（在 Photos）")
    assert f"删除：{second.delete_url}" in private.params["text"]
    assert spanish.params["text"].startswith("Imagen realojada: (para Chen)")
    # The command list, once per language.
    lists = {
        c.params.get("language_code"): c.params["commands"] for c in tg.calls_to("setMyCommands")
    }
    assert {"es", "zh"} <= set(lists)
    descriptions = {c["command"]: c["description"] for c in lists["zh"]}
    assert descriptions["help"] == "如何使用这个机器人"
    assert descriptions["settings"] == "管理员：群组设置（私聊中：选择一个群组）"
    spanish = {c["command"]: c["description"] for c in lists["es"]}
    assert spanish["settings"] == "admins: los ajustes del grupo (en privado: elige un grupo)"
    assert [c["command"] for c in lists["zh"]] == [c["command"] for c in lists[None]]
    assert "ownhost" not in descriptions  # the operator allows no own hosts here
