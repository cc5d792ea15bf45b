"""Telegram images where people put them: forum topics, forwards, GIF animations, media
spoilers, and photos Telegram recompressed. Real python-telegram-bot against the Bot API
emulator, the real service against the host emulator."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from sandbox import samples
from sandbox.hostemu import HostEmulator
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
    telegram_world,
)

FORUM = -1001000000003  # a supergroup with topics; the bot is an admin there
NOTE = "send it as a file"


@pytest.fixture
async def tg() -> AsyncIterator[TelegramEmulator]:
    async with TelegramEmulator(fetch_link_previews=True) as emulator:
        telegram_world(emulator)
        emulator.add_group(
            FORUM, title="Forum", admins=[ANN], creator=ANN, bot_is_admin=True, is_forum=True
        )
        yield emulator
        assert emulator.server_errors == []


def sent_to(chat: int, containing: str = "") -> Callable[[SentCall], bool]:
    def match(call: SentCall) -> bool:
        return (
            call.method == "sendMessage"
            and call.ok
            and int(call.params["chat_id"]) == chat
            and containing in call.params["text"]
        )

    return match


def texts_to(tg: TelegramEmulator, chat: int) -> list[str]:
    return [c.params["text"] for c in tg.calls_to("sendMessage") if sent_to(chat)(c)]


def preview_disabled(call: SentCall) -> bool:
    return bool(call.params.get("link_preview_options", {}).get("is_disabled"))


# --- forum topics ---------------------------------------------------------------------------


async def test_a_topic_gets_the_answer_in_the_same_topic(
    tmp_path: Path, host: HostEmulator, tg: TelegramEmulator
) -> None:
    topic = tg.add_topic(FORUM, ANN, "Cats")
    async with running_adapter(telegram_config(tmp_path, host, tg)):
        photo = tg.send_photo(FORUM, BOB, samples.png(16, 16), "/upload", message_thread_id=topic)
        public = await tg.wait_for(sent_to(FORUM, "Rehosted"), timeout=10)
        private = await tg.wait_for(sent_to(BOB, "Rehosted"))
    assert public.params["message_thread_id"] == topic
    assert public.params["reply_parameters"]["message_id"] == photo["message_id"]
    [answer] = [m for m in tg.messages(FORUM) if "Rehosted" in m["text"]]
    assert answer["message_thread_id"] == topic and answer["is_topic_message"]
    assert answer["reply_to_message"]["message_id"] == photo["message_id"]
    assert "message_thread_id" not in private.params, "private parts go to the private chat"
    assert tg.calls_to("sendChatAction")[0].params["message_thread_id"] == topic


async def test_an_answer_whose_source_was_deleted_still_goes_to_its_topic(
    tmp_path: Path, host: HostEmulator, tg: TelegramEmulator
) -> None:
    topic = tg.add_topic(FORUM, ANN, "Dogs")
    async with running_adapter(telegram_config(tmp_path, host, tg)):
        photo = tg.send_photo(FORUM, BOB, samples.png(17, 17), "/upload", message_thread_id=topic)
        tg.delete_message(FORUM, photo["message_id"])  # before the bot could answer it
        public = await tg.wait_for(sent_to(FORUM, "Rehosted"), timeout=10)
    assert public.params["message_thread_id"] == topic
    [answer] = [m for m in tg.messages(FORUM) if "Rehosted" in m["text"]]
    assert answer["message_thread_id"] == topic
    # Not a reply to the photo (it is gone): in the topic, under its creation message.
    assert "forum_topic_created" in answer["reply_to_message"]
    assert "(for Bob)" in answer["text"]


async def test_autorehost_here_switches_one_topic_and_a_topics_setting_wins(
    tmp_path: Path, host: HostEmulator, tg: TelegramEmulator
) -> None:
    cats, dogs = tg.add_topic(FORUM, ANN, "Cats"), tg.add_topic(FORUM, ANN, "Dogs")
    async with running_adapter(telegram_config(tmp_path, host, tg)) as adapter:
        tg.send_text(FORUM, ANN, "/autorehost on here 1d", message_thread_id=cats)
        on_here = await tg.wait_for(sent_to(FORUM, "Auto-rehost is on"))
        tg.send_photo(FORUM, BOB, samples.png(18, 18), message_thread_id=dogs)
        tg.send_photo(FORUM, BOB, samples.png(19, 19))  # General
        await settled(adapter, tg)
        assert host.uploads == [], "only the Cats topic was switched on"
        tg.send_photo(FORUM, BOB, samples.png(20, 20), message_thread_id=cats)
        in_cats = await tg.wait_for(sent_to(FORUM, "Rehosted"), timeout=10)

        tg.send_text(FORUM, ANN, "/autorehost on", message_thread_id=dogs)
        whole = await tg.wait_for(sent_to(FORUM, "whole group"))
        tg.send_text(FORUM, ANN, "/autorehost off here", message_thread_id=cats)
        off_here = await tg.wait_for(sent_to(FORUM, "off in this topic"))
        tg.send_photo(FORUM, BOB, samples.png(21, 21), message_thread_id=cats)
        await settled(adapter, tg)
        assert len(host.uploads) == 1, "the Cats topic's own 'off' wins over the group's 'on'"
        tg.send_photo(FORUM, BOB, samples.png(22, 22), message_thread_id=dogs)
        await tg.wait_for(
            lambda c: sent_to(FORUM, "Rehosted")(c) and c.params.get("message_thread_id") == dogs,
            timeout=10,
        )
    assert "in this topic" in on_here.params["text"] and "kept for 1 day" in on_here.params["text"]
    assert on_here.params["message_thread_id"] == cats
    assert in_cats.params["message_thread_id"] == cats
    assert host.uploads[0].form["expiration"] == "P1D", "the topic's own expiry"
    assert "Topics switched on their own" in whole.params["text"]
    assert whole.params["message_thread_id"] == dogs
    assert off_here.params["message_thread_id"] == cats
    assert len(host.uploads) == 2


async def test_autorehost_here_outside_a_topic_is_explained(
    tmp_path: Path, host: HostEmulator, tg: TelegramEmulator
) -> None:
    async with running_adapter(telegram_config(tmp_path, host, tg)) as adapter:
        tg.send_text(FORUM, ANN, "/autorehost on here")  # in General: there is no "here"
        general = await tg.wait_for(sent_to(FORUM, "send it in that topic"))
        tg.send_text(QUIET_GROUP, ANN, "/autorehost on here")  # no topics at all
        quiet = await tg.wait_for(sent_to(QUIET_GROUP, "send it in that topic"))
        await settled(adapter, tg)
        assert await adapter.core.store.auto_rehost_chats("telegram") == set()
    assert "message_thread_id" not in general.params
    assert "whole group" in quiet.params["text"]


# --- forwards -------------------------------------------------------------------------------


async def test_a_forwarded_photo_is_rehosted_for_the_forwarder(
    tmp_path: Path, host: HostEmulator, tg: TelegramEmulator
) -> None:
    bobs = samples.png(23, 23)
    # Bob posts it where the bot (in privacy mode) does not see it; Ann forwards it.
    original = tg.send_photo(QUIET_GROUP, BOB, bobs, caption="1d")
    async with running_adapter(telegram_config(tmp_path, host, tg)) as adapter:
        tg.forward_message(ANN, ANN, QUIET_GROUP, original["message_id"])
        reply = await tg.wait_for(sent_to(ANN, "Rehosted"), timeout=10)
        tg.forward_message(GROUP, ANN, QUIET_GROUP, original["message_id"])
        public = await tg.wait_for(sent_to(GROUP, "Rehosted"), timeout=10)
        await settled(adapter, tg)
        anns = await adapter.core.library.live_uploads("telegram", str(ANN))
        bobs_uploads = await adapter.core.library.live_uploads("telegram", str(BOB))
    [image] = host.images.values()
    assert image.data == bobs
    assert [upload.viewer_url for upload in anns] == [image.viewer_url] and bobs_uploads == []
    assert image.delete_url is not None and image.delete_url in reply.params["text"]
    assert preview_disabled(reply)
    assert "(for Ann)" in public.params["text"] and "sent privately" in public.params["text"]
    # The caption "1d" is Bob's, not a request of Ann's: the default expiry applies.
    assert host.uploads[0].form.get("expiration") != "P1D"


# --- animations -----------------------------------------------------------------------------


async def test_an_animation_is_explained_and_a_gif_file_is_rehosted_as_gif(
    tmp_path: Path, host: HostEmulator, tg: TelegramEmulator
) -> None:
    clip = b"\x00\x00\x00\x18ftypmp42 an MP4 Telegram made of a GIF"
    gif = samples.gif(24, 24)
    async with running_adapter(telegram_config(tmp_path, host, tg)) as adapter:
        tg.send_animation(ANN, ANN, clip)
        explained = await tg.wait_for(sent_to(ANN), timeout=10)
        tg.send_animation(GROUP, BOB, clip)  # auto-rehost leaves it alone, silently
        animation = tg.send_animation(QUIET_GROUP, BOB, clip)
        tg.send_text(QUIET_GROUP, ANN, "/upload", reply_to_message_id=animation["message_id"])
        asked = await tg.wait_for(sent_to(QUIET_GROUP), timeout=10)
        await settled(adapter, tg)
        assert host.requests == [], "nothing was uploaded"
        assert texts_to(tg, GROUP) == []
        tg.send_document(ANN, ANN, gif, "dance.gif", "image/gif")
        rehosted = await tg.wait_for(sent_to(ANN, "Rehosted"), timeout=10)
    for call in (explained, asked):
        text = call.params["text"]
        assert "animation" in text and "MP4 video" in text
        assert "send it as a file" in text and ".gif" in text
    [upload] = host.uploads
    assert upload.files[0].data == gif and upload.files[0].content_type == "image/gif"
    [image] = host.images.values()
    assert image.viewer_url in rehosted.params["text"]


# --- spoilers -------------------------------------------------------------------------------


async def test_a_spoiler_photo_stays_hidden_in_the_public_answer(
    tmp_path: Path, host: HostEmulator, tg: TelegramEmulator
) -> None:
    async with running_adapter(telegram_config(tmp_path, host, tg)) as adapter:
        tg.send_photo(GROUP, BOB, samples.png(25, 25), has_media_spoiler=True)
        public = await tg.wait_for(sent_to(GROUP, "Rehosted"), timeout=10)
        await tg.wait_for(sent_to(BOB, "Rehosted"))
        tg.send_photo(GROUP, BOB, samples.png(26, 26))  # no spoiler: previews as usual
        plain = await tg.wait_for(
            lambda c: sent_to(GROUP, "Rehosted")(c) and c is not public, timeout=10
        )
        await settled(adapter, tg)
        sources = [
            json.loads(row["source"])
            for row in await adapter.core.store.db.fetch("select source from jobs order by id")
        ]
    hidden, shown = host.images.values()  # in the order they were uploaded
    text = public.params["text"]
    assert f'<tg-spoiler><a href="{hidden.viewer_url}">' in text
    assert preview_disabled(public)
    answer = next(m for m in tg.messages(GROUP) if "Rehosted" in m["text"])
    spoilers = [e for e in answer["entities"] if e["type"] == "spoiler"]
    assert spoilers, "Telegram shows the links covered"
    assert hidden.viewer_url not in tg.preview_fetches and hidden.url not in tg.preview_fetches
    assert [source["spoiler"] for source in sources] == [True, False]
    assert host.uploads[0].form.get("nsfw") == "1"
    assert "<tg-spoiler>" not in plain.params["text"] and not preview_disabled(plain)
    assert shown.viewer_url in plain.params["text"]


# --- the photo note -------------------------------------------------------------------------


async def test_the_photo_note_comes_once_per_user(
    tmp_path: Path, host: HostEmulator, tg: TelegramEmulator
) -> None:
    async with running_adapter(telegram_config(tmp_path, host, tg)) as adapter:
        tg.send_document(ANN, ANN, samples.png(27, 27), "file.png", "image/png")
        await tg.wait_for(sent_to(ANN, "Rehosted"), timeout=10)
        tg.send_photo(ANN, ANN, samples.png(28, 28))
        await tg.wait_for(sent_to(ANN, NOTE), timeout=10)
        tg.send_photo(ANN, ANN, samples.png(29, 29))
        tg.send_photo(GROUP, ANN, samples.png(30, 30))
        tg.send_photo(GROUP, BOB, samples.png(31, 31))
        tg.send_photo(GROUP, NOBODY, samples.png(32, 32))  # never started: no DM, no note
        await settled(adapter, tg)
        tg.send_photo(NOBODY, NOBODY, samples.png(33, 33))  # now they have
        await tg.wait_for(sent_to(NOBODY, "Rehosted"), timeout=10)
        await settled(adapter, tg)
    anns = texts_to(tg, ANN)
    assert len(anns) == 4
    assert NOTE not in anns[0], "a file is not recompressed"
    assert [NOTE in text for text in anns[1:]] == [True, False, False]
    assert [NOTE in text for text in texts_to(tg, BOB)] == [True]
    assert [NOTE in text for text in texts_to(tg, NOBODY)] == [True]
    assert all(NOTE not in text for text in texts_to(tg, GROUP)), "only in private"


async def test_a_spoiler_stays_covered_when_its_post_is_edited_after_a_deletion(
    tmp_path: Path, host: HostEmulator, tg: TelegramEmulator
) -> None:
    async with running_adapter(telegram_config(tmp_path, host, tg)) as adapter:
        tg.send_photo(
            GROUP, BOB, samples.png(34, 34), media_group_id="mixed", has_media_spoiler=True
        )
        tg.send_photo(GROUP, BOB, samples.png(35, 35), media_group_id="mixed")
        await tg.wait_for(sent_to(GROUP, "Rehosted 2 images"), timeout=10)
        await settled(adapter, tg)
        covered, plain = sorted(
            await adapter.core.library.live_uploads("telegram", str(BOB)), key=lambda u: u.id
        )
        tg.send_text(BOB, BOB, f"/delete {plain.id}")
        await tg.wait_for(lambda c: sent_to(BOB)(c) and "Yes, delete" in str(c.params))
        prompt = tg.messages(BOB)[-1]
        tg.press_button(BOB, BOB, prompt["message_id"], f"delok:{plain.id}")
        edit = await tg.wait_for(
            lambda c: c.method == "editMessageText" and int(c.params["chat_id"]) == GROUP
        )
    assert f'<tg-spoiler><a href="{covered.viewer_url}">' in edit.params["text"]
    assert plain.viewer_url not in edit.params["text"]
    assert preview_disabled(edit)


async def test_a_chat_marked_nsfw_sends_every_image_as_nsfw(
    tmp_path: Path, host: HostEmulator, tg: TelegramEmulator
) -> None:
    async with running_adapter(telegram_config(tmp_path, host, tg)) as adapter:
        tg.send_text(GROUP, BOB, "/nsfw on")
        refused = await tg.wait_for(sent_to(GROUP, "Only the group's admins"))
        tg.send_text(GROUP, ANN, "/nsfw on")
        await tg.wait_for(sent_to(GROUP, "now marked NSFW"))
        tg.send_photo(GROUP, BOB, samples.png(81, 80))
        await settled(adapter, tg)
        tg.send_text(GROUP, ANN, "/nsfw off")
        await tg.wait_for(sent_to(GROUP, "no longer marked NSFW"))
        tg.send_photo(GROUP, BOB, samples.png(82, 80))
        await settled(adapter, tg)
    assert refused.ok
    assert [upload.form.get("nsfw") for upload in host.uploads] == ["1", None]
