"""The Telegram Bot API emulator, driven by the real python-telegram-bot Application."""

from __future__ import annotations

import asyncio
import datetime as dtm
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from telegram import (
    BotCommand,
    ChatMemberAdministrator,
    ChatMemberMember,
    ChatMemberOwner,
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    LinkPreviewOptions,
    MessageOriginChannel,
    MessageOriginUser,
    ReplyParameters,
    Update,
)
from telegram.error import BadRequest, EndPointNotFound, Forbidden, InvalidToken, RetryAfter
from telegram.ext import (
    Application,
    CallbackQueryHandler,
    CommandHandler,
    ContextTypes,
    MessageHandler,
    filters,
)

from sandbox.telegram_api import TelegramEmulator
from sandbox.telegram_entities import EntityParseError, normalize_url
from sandbox.telegram_flood import FloodLimits
from sandbox.telegram_markdown import parse_markdown_v2
from sandbox.telegram_ptb import application_builder, running, running_application

ANN = 7
NOBODY = 8  # never started the bot
GROUP = -1001234567890
BIG_PHOTO = b"\x89PNG\r\n\x1a\n" + b"\x00\x00\x00\rIHDR" + (1280).to_bytes(4, "big") * 2 + b"x"
SMALL_PHOTO = b"\x89PNG\r\n\x1a\n" + b"\x00\x00\x00\rIHDR" + (90).to_bytes(4, "big") * 2 + b"y"

BOB, CY = 10, 11
OTHER_GROUP = -1001234567891

Context = ContextTypes.DEFAULT_TYPE
App = Application[Any, Any, Any, Any, Any, Any]


@pytest.fixture
async def tg() -> AsyncIterator[TelegramEmulator]:
    async with TelegramEmulator() as emulator:
        emulator.add_user(ANN, first_name="Ann", username="ann")
        emulator.add_user(NOBODY, first_name="Nobody", username="nobody", started=False)
        emulator.add_group(GROUP, title="G", admins=[ANN], creator=ANN)
        yield emulator
        assert emulator.server_errors == []


@pytest.fixture
async def app(tg: TelegramEmulator) -> AsyncIterator[App]:
    async with running_application(tg) as application:
        yield application


def method_is(name: str) -> Any:
    return lambda call: call.method == name


class Clock:
    """A clock the test moves by hand, for the flood limits."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
async def timed() -> AsyncIterator[tuple[TelegramEmulator, Clock]]:
    """An emulator with Telegram's default flood limits on a hand-moved clock."""
    clock = Clock()
    async with TelegramEmulator(clock=clock) as emulator:
        for user_id in (ANN, BOB, CY):
            emulator.add_user(user_id, username=None)
        emulator.add_group(GROUP)
        emulator.add_group(OTHER_GROUP)
        yield emulator, clock
        assert emulator.server_errors == []


async def send(client: httpx.AsyncClient, tg: TelegramEmulator, chat_id: int) -> httpx.Response:
    url = f"{tg.base_url}{tg.token}/sendMessage"
    return await client.post(url, json={"chat_id": chat_id, "text": "hi"})


def flood_answer(retry_after: int) -> dict[str, Any]:
    return {
        "ok": False,
        "error_code": 429,
        "description": f"Too Many Requests: retry after {retry_after}",
        "parameters": {"retry_after": retry_after},
    }


async def test_command_handler_replies(tg: TelegramEmulator, app: App) -> None:
    async def start(update: Update, context: Context) -> None:
        assert update.effective_message is not None
        await update.effective_message.reply_text(f"hello {context.args}")

    app.add_handler(CommandHandler("start", start))
    tg.send_text(ANN, ANN, "/start now")
    tg.send_text(GROUP, ANN, "/start@rehost_test_bot")
    tg.send_text(GROUP, ANN, "/start@some_other_bot")  # addressed elsewhere: ignored

    await tg.wait_for(lambda c: c.method == "sendMessage" and c.params["chat_id"] == GROUP)
    reply = await tg.wait_for(lambda c: c.method == "sendMessage" and c.params["chat_id"] == ANN)
    assert reply.params["text"] == "hello ['now']"
    assert tg.messages(ANN)[0]["text"] == "hello ['now']"
    assert tg.messages(ANN)[0]["from"]["id"] == 4242
    await asyncio.sleep(0.1)
    assert len(tg.calls_to("sendMessage")) == 2


async def test_photo_handler_downloads_the_largest_size(tg: TelegramEmulator, app: App) -> None:
    got: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()

    async def photo(update: Update, context: Context) -> None:
        assert update.message is not None
        largest = update.message.photo[-1]
        assert (largest.width, largest.height) == (1280, 1280)
        data = await (await context.bot.get_file(largest.file_id)).download_as_bytearray()
        got.set_result(bytes(data))

    app.add_handler(MessageHandler(filters.PHOTO, photo))
    tg.send_photo(ANN, ANN, [SMALL_PHOTO, BIG_PHOTO], caption="look")
    assert await asyncio.wait_for(got, 5) == BIG_PHOTO
    assert tg.calls_to("getFile")[0].ok


async def test_document_download_and_too_big_file(tg: TelegramEmulator, app: App) -> None:
    message = tg.send_document(ANN, ANN, b"%PDF", "a.pdf", "application/pdf", file_size=4)
    file = await app.bot.get_file(message["document"]["file_id"])
    assert bytes(await file.download_as_bytearray()) == b"%PDF"

    huge = tg.add_file(b"not really 21 MB", file_size=21 * 1024 * 1024)
    with pytest.raises(BadRequest, match="File is too big"):
        await app.bot.get_file(huge)
    with pytest.raises(BadRequest, match="Invalid file_id"):
        await app.bot.get_file("no-such-file")


async def test_link_preview_options_are_recorded(tg: TelegramEmulator, app: App) -> None:
    link = "https://host.example/delete/abc"
    off = LinkPreviewOptions(is_disabled=True)
    sent = await app.bot.send_message(ANN, f"delete: {link}", link_preview_options=off)
    await app.bot.send_message(ANN, f"view: {link}", disable_web_page_preview=True)

    first, second = tg.calls_to("sendMessage")
    assert first.params["link_preview_options"] == {"is_disabled": True}
    assert second.params["link_preview_options"] == {"is_disabled": True}  # PTB converts it
    assert sent.link_preview_options == off
    assert tg.messages(ANN)[0]["link_preview_options"] == {"is_disabled": True}
    assert tg.messages(ANN)[0]["entities"] == [{"type": "url", "offset": 8, "length": 31}]


async def test_link_previews_fetch_the_first_link_unless_disabled() -> None:
    async with TelegramEmulator(fetch_link_previews=True) as tg:
        tg.add_user(ANN)
        target = f"{tg.url}/preview/target"
        async with running_application(tg) as app:
            await app.bot.send_message(ANN, f"hidden {target}?a", disable_web_page_preview=True)
            await app.bot.send_message(ANN, f'<a href="{target}?b">link</a>', parse_mode="HTML")
        assert tg.preview_fetches == [f"{target}?b"]


async def test_inline_button_reaches_callback_handler(tg: TelegramEmulator, app: App) -> None:
    async def pressed(update: Update, context: Context) -> None:
        query = update.callback_query
        assert query is not None
        await query.answer("done")
        await query.edit_message_text(f"chose {query.data}")

    app.add_handler(CallbackQueryHandler(pressed))
    keyboard = InlineKeyboardMarkup([[InlineKeyboardButton("Delete", callback_data="del:1")]])
    sent = await app.bot.send_message(ANN, "pick", reply_markup=keyboard)
    assert tg.messages(ANN)[0]["reply_markup"] == keyboard.to_dict()

    query = tg.press_button(ANN, ANN, sent.message_id, "del:1")
    answer = await tg.wait_for(method_is("answerCallbackQuery"))
    assert answer.params == {"callback_query_id": query["id"], "text": "done"}
    await tg.wait_for(method_is("editMessageText"))
    edited = tg.messages(ANN)[0]
    assert (edited["text"], edited["edited"]) == ("chose del:1", True)
    assert "reply_markup" not in edited  # editing text without a markup drops the keyboard
    with pytest.raises(ValueError, match="no button"):
        tg.press_button(ANN, ANN, sent.message_id, "other")


async def test_user_who_never_started_the_bot_is_forbidden(tg: TelegramEmulator, app: App) -> None:
    with pytest.raises(Forbidden, match="bot can't initiate conversation with a user"):
        await app.bot.send_message(NOBODY, "your delete link")
    tg.block_bot(ANN)
    with pytest.raises(Forbidden, match="bot was blocked by the user"):
        await app.bot.send_message(ANN, "hi")
    assert [c.status for c in tg.calls_to("sendMessage")] == [403, 403]
    assert tg.messages(NOBODY) == []


async def test_scripted_429_raises_retry_after(
    tg: TelegramEmulator, app: App, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PTB_TIMEDELTA", "true")  # retry_after as a timedelta, no warning
    tg.fail_next("sendMessage", status=429, retry_after=3)
    with pytest.raises(RetryAfter) as caught:
        await app.bot.send_message(ANN, "hi")
    assert caught.value.retry_after == dtm.timedelta(seconds=3)
    await app.bot.send_message(ANN, "hi")  # only the next call failed
    assert [c.status for c in tg.calls_to("sendMessage")] == [429, 200]
    assert len(tg.messages(ANN)) == 1

    tg.fail_next("deleteMessage", status=400, description="message can't be deleted")
    with pytest.raises(BadRequest, match="Message can't be deleted"):
        await app.bot.delete_message(ANN, 1)


async def test_a_chat_takes_five_messages_in_five_seconds_then_a_flood_wait(
    timed: tuple[TelegramEmulator, Clock],
) -> None:
    tg, clock = timed
    async with httpx.AsyncClient() as client:
        for _ in range(5):
            assert (await send(client, tg, ANN)).status_code == 200
            clock.now += 0.5
        refused = await send(client, tg, ANN)  # 2.5 s after the first of five
        assert (refused.status_code, refused.json()) == (429, flood_answer(3))
        assert (await send(client, tg, BOB)).status_code == 200  # other chats still fine
        clock.now += 2.75  # the first message has left the window, but the wait holds
        assert (await send(client, tg, ANN)).json() == flood_answer(1)
        clock.now += 0.25
        assert (await send(client, tg, ANN)).status_code == 200
    assert [c.status for c in tg.calls_to("sendMessage")] == [200] * 5 + [429, 200, 429, 200]
    assert len(tg.messages(ANN)) == 6  # refused sends created nothing


async def test_a_bot_that_ignores_retry_after_stays_refused(
    timed: tuple[TelegramEmulator, Clock],
) -> None:
    tg, clock = timed
    async with httpx.AsyncClient() as client:
        for _ in range(5):
            await send(client, tg, ANN)
        assert (await send(client, tg, ANN)).json() == flood_answer(5)
        for seconds_left in (4, 3, 2, 1):
            clock.now += 1
            assert (await send(client, tg, ANN)).json() == flood_answer(seconds_left)
        clock.now += 1
        assert (await send(client, tg, ANN)).status_code == 200


async def test_a_group_takes_twenty_messages_a_minute(
    timed: tuple[TelegramEmulator, Clock],
) -> None:
    tg, clock = timed
    async with httpx.AsyncClient() as client:
        for _ in range(20):
            assert (await send(client, tg, GROUP)).status_code == 200
            clock.now += 1  # one a second: within the per-chat limit
        assert (await send(client, tg, GROUP)).json() == flood_answer(40)
        assert (await send(client, tg, OTHER_GROUP)).status_code == 200
        clock.now += 40
        assert (await send(client, tg, GROUP)).status_code == 200
    assert len(tg.messages(GROUP)) == 21


async def test_the_bot_takes_thirty_messages_a_second_overall() -> None:
    clock = Clock()
    async with TelegramEmulator(clock=clock) as tg, httpx.AsyncClient() as client:
        chats = range(1, 8)
        for chat_id in chats:
            tg.add_user(chat_id, username=None)
        for chat_id in chats[:6]:
            for _ in range(5):
                assert (await send(client, tg, chat_id)).status_code == 200
        assert (await send(client, tg, 7)).json() == flood_answer(1)
        clock.now += 1
        assert (await send(client, tg, 7)).status_code == 200


async def test_only_messages_count_and_only_sent_ones(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PTB_TIMEDELTA", "true")
    clock = Clock()
    limits = FloodLimits(per_chat=(1, 5.0))
    async with TelegramEmulator(clock=clock, flood_limits=limits) as tg:
        tg.add_user(ANN)
        async with application_builder(tg).build().bot as bot:
            with pytest.raises(BadRequest, match="Message text is empty"):
                await bot.send_message(ANN, " ")
            sent = await bot.send_message(ANN, "the one message")
            for _ in range(3):  # no flood limit on actions, edits, reads, deletions
                assert await bot.send_chat_action(ANN, "typing")
                await bot.get_chat(ANN)
            await bot.edit_message_text("edited", ANN, sent.message_id)
            assert await bot.delete_message(ANN, sent.message_id)
            with pytest.raises(RetryAfter):
                await bot.send_message(ANN, "a second one within 5 s")
            assert await bot.send_chat_action(ANN, "typing")  # allowed during the wait


async def test_flood_puts_a_chat_in_a_flood_wait_now(
    tg: TelegramEmulator, app: App, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PTB_TIMEDELTA", "true")
    tg.flood(GROUP, retry_after=30)
    with pytest.raises(RetryAfter) as caught:
        await app.bot.send_message(GROUP, "results")
    assert caught.value.retry_after == dtm.timedelta(seconds=30)
    await app.bot.send_message(ANN, "other chats are fine")
    assert [c.status for c in tg.calls_to("sendMessage")] == [429, 200]
    assert tg.messages(GROUP) == []


async def test_flood_limits_none_sends_without_limit_but_flood_still_works() -> None:
    async with TelegramEmulator(flood_limits=None) as tg, httpx.AsyncClient() as client:
        tg.add_group(GROUP)
        for _ in range(40):
            assert (await send(client, tg, GROUP)).status_code == 200
        tg.flood(GROUP, retry_after=7)
        assert (await send(client, tg, GROUP)).json() == flood_answer(7)


async def test_album_arrives_as_one_update_per_photo(tg: TelegramEmulator, app: App) -> None:
    seen: list[tuple[str | None, str | None]] = []
    three = asyncio.Event()

    async def photo(update: Update, context: Context) -> None:
        assert update.message is not None
        seen.append((update.message.media_group_id, update.message.caption))
        if len(seen) == 3:
            three.set()

    app.add_handler(MessageHandler(filters.PHOTO, photo))
    tg.set_bot_admin(GROUP)  # in privacy mode a bot sees uncaptioned photos only as admin
    tg.send_photo(GROUP, ANN, BIG_PHOTO, caption="/rehost", media_group_id="album-1")
    tg.send_photo(GROUP, ANN, BIG_PHOTO, media_group_id="album-1")
    tg.send_photo(GROUP, ANN, BIG_PHOTO, media_group_id="album-1")
    await asyncio.wait_for(three.wait(), 5)
    assert seen == [("album-1", "/rehost"), ("album-1", None), ("album-1", None)]


async def test_privacy_mode_hides_plain_group_messages() -> None:
    async with TelegramEmulator() as tg:  # privacy mode is the default, as for real bots
        tg.add_user(ANN)
        tg.add_group(GROUP)
        tg.send_photo(GROUP, ANN, BIG_PHOTO, caption="/rehost", media_group_id="a")
        tg.send_photo(GROUP, ANN, BIG_PHOTO, media_group_id="a")
        tg.send_text(ANN, ANN, "private chats are always delivered")
        kinds = [u["message"].get("caption", u["message"].get("text")) for u in tg.pending_updates]
        assert kinds == ["/rehost", "private chats are always delivered"]
        async with application_builder(tg).build().bot as bot:
            assert (await bot.get_me()).can_read_all_group_messages is False


async def test_privacy_mode_delivers_mentions_and_replies_and_all_to_an_admin(
    tg: TelegramEmulator,
) -> None:
    tg.send_text(GROUP, ANN, "hey @Rehost_Test_Bot, this one")
    tg.send_text(GROUP, ANN, "@someone_else not this one")
    tg.send_photo(GROUP, ANN, BIG_PHOTO, caption="nor this photo")
    async with application_builder(tg).build().bot as bot:  # not polling: updates stay
        posted = await bot.send_message(GROUP, "links")
    tg.send_text(GROUP, ANN, "a reply to the bot", reply_to_message_id=posted.message_id)
    tg.set_bot_admin(GROUP)
    tg.send_text(GROUP, ANN, "an admin bot sees everything")
    seen = [u["message"]["text"] for u in tg.pending_updates]
    assert seen == [
        "hey @Rehost_Test_Bot, this one",
        "a reply to the bot",
        "an admin bot sees everything",
    ]


async def test_an_update_is_gone_once_a_later_offset_is_confirmed(tg: TelegramEmulator) -> None:
    url = f"{tg.base_url}{tg.token}/getUpdates"
    for text in ("one", "two", "three"):
        tg.send_text(ANN, ANN, text)
    async with httpx.AsyncClient() as client:

        async def texts(**params: int) -> list[str]:
            answer = (await client.post(url, json={"timeout": 0, **params})).json()
            return [u["message"]["text"] for u in answer["result"]]

        ids = [u["update_id"] for u in tg.pending_updates]
        assert await texts(limit=1) == ["one"]
        assert await texts() == ["one", "two", "three"]  # unconfirmed: served again
        assert await texts(offset=ids[1]) == ["two", "three"]  # confirms "one"
        assert await texts(offset=ids[0]) == ["two", "three"]  # "one" does not come back
        assert await texts() == ["two", "three"]
        assert await texts(offset=ids[2] + 1) == []
        assert await texts() == []
    assert tg.pending_updates == []


async def test_commands_are_recorded(tg: TelegramEmulator, app: App) -> None:
    await app.bot.set_my_commands([BotCommand("rehost", "Rehost the images you reply to")])
    call = tg.calls_to("setMyCommands")[0]
    assert call.params["commands"] == [
        {"command": "rehost", "description": "Rehost the images you reply to"}
    ]
    assert [c.command for c in await app.bot.get_my_commands()] == ["rehost"]
    with pytest.raises(BadRequest, match="Bot_command_invalid"):
        await app.bot.set_my_commands([BotCommand("Rehost", "capitals are refused")])
    await app.bot.delete_my_commands()
    assert await app.bot.get_my_commands() == ()


async def test_chat_members_and_chats(tg: TelegramEmulator, app: App) -> None:
    other = 9
    tg.add_user(other, first_name="Bo", username="bo")
    tg.add_group(-100777, admins=[other], creator=ANN)
    assert isinstance(await app.bot.get_chat_member(-100777, ANN), ChatMemberOwner)
    assert isinstance(await app.bot.get_chat_member(-100777, other), ChatMemberAdministrator)
    tg.add_user(10, first_name="Cy")
    assert isinstance(await app.bot.get_chat_member(-100777, 10), ChatMemberMember)
    chat = await app.bot.get_chat(-100777)
    assert (chat.type, chat.title) == ("supergroup", "G")
    with pytest.raises(BadRequest, match="Chat not found"):
        await app.bot.get_chat(-1)


async def test_formatting_is_parsed_like_telegram(tg: TelegramEmulator, app: App) -> None:
    sent = await app.bot.send_message(
        ANN, '<b>Done</b> <a href="https://i.example/x.png">view</a> &amp; 😀', parse_mode="HTML"
    )
    assert sent.text == "Done view & 😀"
    assert sent.text_html == '<b>Done</b> <a href="https://i.example/x.png">view</a> &amp; 😀'
    with pytest.raises(BadRequest, match=r"Can't parse entities: character '\.' is reserved"):
        await app.bot.send_message(ANN, "https://i.example/x.png", parse_mode="MarkdownV2")
    with pytest.raises(BadRequest, match='unsupported start tag "url"'):
        await app.bot.send_message(ANN, "<url>", parse_mode="HTML")
    with pytest.raises(BadRequest, match="Message text is empty"):
        await app.bot.send_message(ANN, "  \n ")


async def test_edit_and_delete(tg: TelegramEmulator, app: App) -> None:
    sent = await app.bot.send_message(ANN, "working")
    await app.bot.edit_message_text("done", ANN, sent.message_id)
    with pytest.raises(BadRequest, match="Message is not modified"):
        await app.bot.edit_message_text("done", ANN, sent.message_id)
    assert await app.bot.delete_message(ANN, sent.message_id)
    with pytest.raises(BadRequest, match="Message to delete not found"):
        await app.bot.delete_message(ANN, sent.message_id)
    with pytest.raises(BadRequest, match="Message to edit not found"):
        await app.bot.edit_message_text("again", ANN, sent.message_id)
    assert tg.messages(ANN)[0] | {"date": 0, "edit_date": 0} == {
        "message_id": sent.message_id,
        "from": tg.world.bot_user(),
        "chat": {"id": ANN, "type": "private", "first_name": "Ann", "username": "ann"},
        "date": 0,
        "edit_date": 0,
        "text": "done",
        "deleted": True,
        "edited": True,
    }
    assert await app.bot.send_chat_action(ANN, "typing")


async def test_reply_to_a_user_message(tg: TelegramEmulator, app: App) -> None:
    photo = tg.send_photo(ANN, ANN, BIG_PHOTO)
    sent = await app.bot.send_message(ANN, "rehosted", reply_to_message_id=photo["message_id"])
    assert sent.reply_to_message is not None
    assert sent.reply_to_message.photo[-1].file_id == photo["photo"][-1]["file_id"]
    with pytest.raises(BadRequest, match="Message to be replied not found"):
        await app.bot.send_message(ANN, "x", reply_to_message_id=999)


async def test_forum_topics_carry_their_thread_id_both_ways(tg: TelegramEmulator, app: App) -> None:
    forum = -1001234567892
    tg.add_group(forum, title="Forum", creator=ANN, bot_is_admin=True, is_forum=True)
    topic = tg.add_topic(forum, ANN, "Cats")
    got: asyncio.Future[Update] = asyncio.get_running_loop().create_future()

    async def photo(update: Update, context: Context) -> None:
        got.set_result(update)

    app.add_handler(MessageHandler(filters.PHOTO, photo))
    posted = tg.send_photo(forum, ANN, BIG_PHOTO, message_thread_id=topic)
    update = await asyncio.wait_for(got, 5)
    message = update.message
    assert message is not None and message.chat.is_forum
    assert (message.message_thread_id, message.is_topic_message) == (topic, True)
    # In a topic, a message that replies to nothing replies to the topic's creation.
    assert message.reply_to_message is not None
    assert message.reply_to_message.forum_topic_created is not None
    assert message.reply_to_message.forum_topic_created.name == "Cats"

    in_topic = await app.bot.send_message(forum, "links", message_thread_id=topic)
    assert (in_topic.message_thread_id, in_topic.is_topic_message) == (topic, True)
    # A reply lands in the topic of the message it replies to.
    reply = await message.reply_text("a reply", do_quote=True)
    assert reply.message_thread_id == topic
    # With its source gone, a reply allowed without it still goes where it is sent.
    tg.delete_message(forum, posted["message_id"])
    fallback = await app.bot.send_message(
        forum,
        "still in the topic",
        message_thread_id=topic,
        reply_parameters=ReplyParameters(posted["message_id"], allow_sending_without_reply=True),
    )
    assert fallback.message_thread_id == topic and fallback.reply_to_message is not None
    assert fallback.reply_to_message.forum_topic_created is not None
    general = await app.bot.send_message(forum, "in General")
    assert general.message_thread_id is None and not general.is_topic_message

    with pytest.raises(BadRequest, match="Message thread not found"):
        await app.bot.send_message(forum, "x", message_thread_id=topic + 100)
    with pytest.raises(BadRequest, match="Message thread not found"):
        await app.bot.send_message(GROUP, "no topics here", message_thread_id=topic)
    with pytest.raises(BadRequest, match="Message thread not found"):
        await app.bot.send_chat_action(forum, "typing", message_thread_id=topic + 100)
    assert (await app.bot.get_chat(forum)).is_forum
    with pytest.raises(ValueError, match="no topics"):
        tg.add_topic(GROUP, ANN)


async def test_a_forward_carries_the_media_and_where_it_came_from(
    tg: TelegramEmulator, app: App
) -> None:
    tg.add_user(BOB, first_name="Bob", username="bob")
    channel = -1009876543210
    tg.add_group(channel, title="News", type="channel", creator=BOB)
    original = tg.send_photo(BOB, BOB, BIG_PHOTO, caption="mine", has_media_spoiler=True)
    post = tg.send_document(channel, BOB, b"GIF89a", "a.gif", "image/gif")
    forwarded: list[Update] = []
    both = asyncio.Event()

    async def media(update: Update, context: Context) -> None:
        forwarded.append(update)
        if len(forwarded) == 2:
            both.set()

    app.add_handler(MessageHandler(filters.FORWARDED, media))
    tg.forward_message(ANN, ANN, BOB, original["message_id"])
    again = tg.forward_message(ANN, ANN, channel, post["message_id"])
    await asyncio.wait_for(both.wait(), 5)
    first, second = (update.message for update in forwarded)
    assert first is not None and second is not None
    assert first.from_user is not None and first.from_user.id == ANN  # the forwarder
    assert isinstance(first.forward_origin, MessageOriginUser)
    assert first.forward_origin.sender_user.id == BOB
    assert first.photo[-1].file_id == original["photo"][-1]["file_id"]
    assert (first.caption, first.has_media_spoiler) == ("mine", True)
    assert isinstance(second.forward_origin, MessageOriginChannel)
    assert second.forward_origin.chat.id == channel
    assert second.forward_origin.message_id == post["message_id"]
    assert second.document is not None and second.document.file_name == "a.gif"
    # Forwarded on, a message keeps its first origin.
    onward = tg.forward_message(ANN, ANN, ANN, again["message_id"])
    assert onward["forward_origin"]["type"] == "channel"


async def test_a_gif_arrives_as_an_mp4_animation_with_a_document(
    tg: TelegramEmulator, app: App
) -> None:
    got: asyncio.Future[Update] = asyncio.get_running_loop().create_future()

    async def animation(update: Update, context: Context) -> None:
        got.set_result(update)

    app.add_handler(MessageHandler(filters.ANIMATION, animation))
    clip = b"\x00\x00\x00\x18ftypmp42 not really a video"
    sent = tg.send_animation(ANN, ANN, clip, "funny.gif.mp4", has_media_spoiler=True, caption="lol")
    message = (await asyncio.wait_for(got, 5)).message
    assert message is not None and message.animation is not None
    assert message.animation.mime_type == "video/mp4"
    assert (message.animation.width, message.animation.height) == (320, 240)
    assert sent["animation"]["duration"] == 3
    # For clients older than animations, the same file is the message's document.
    assert message.document is not None
    assert message.document.file_unique_id == message.animation.file_unique_id
    assert message.has_media_spoiler and message.caption == "lol"
    file = await app.bot.get_file(message.animation.file_id)
    assert bytes(await file.download_as_bytearray()) == clip


async def test_a_spoiler_photo_says_so(tg: TelegramEmulator, app: App) -> None:
    covered = tg.send_photo(ANN, ANN, BIG_PHOTO, has_media_spoiler=True)
    plain = tg.send_photo(ANN, ANN, BIG_PHOTO)
    assert covered["has_media_spoiler"] is True
    assert "has_media_spoiler" not in plain
    updates = [Update.de_json(u, app.bot) for u in tg.pending_updates]
    assert [u.message.has_media_spoiler for u in updates if u.message] == [True, None]


async def test_wrong_token_and_unknown_method(tg: TelegramEmulator, app: App) -> None:
    with pytest.raises(EndPointNotFound):
        await app.bot.do_api_request("sendSomethingNew", api_kwargs={"chat_id": ANN})
    intruder = application_builder(tg).token("4242:wrong-token").build()
    with pytest.raises(InvalidToken):
        await intruder.initialize()
    await intruder.shutdown()


async def test_wait_for_reports_the_calls_it_saw(tg: TelegramEmulator, app: App) -> None:
    await app.bot.send_message(ANN, "only this")
    with pytest.raises(AssertionError, match=r"sendMessage.*only this"):
        await tg.wait_for(method_is("deleteMessage"), timeout=0.1)


async def test_long_poll_wire_behaviour(tg: TelegramEmulator) -> None:
    url = f"{tg.base_url}{tg.token}/getUpdates"
    async with httpx.AsyncClient(timeout=10) as client:
        waiting = asyncio.create_task(client.post(url, data={"timeout": "5"}))
        await asyncio.sleep(0.1)
        started = time.monotonic()
        tg.send_text(ANN, ANN, "hi")
        first = (await waiting).json()["result"]
        assert time.monotonic() - started < 1  # the push ended the long poll
        again = (await client.post(url, data={"timeout": "0"})).json()["result"]
        assert again == first  # not confirmed yet, so served again
        offset = str(first[-1]["update_id"] + 1)
        assert (await client.post(url, json={"offset": offset, "timeout": 0})).json() == {
            "ok": True,
            "result": [],
        }
        older = asyncio.create_task(client.post(url, data={"timeout": "5"}))
        await asyncio.sleep(0.1)
        newer = asyncio.create_task(client.post(url, data={"timeout": "0"}))
        assert (await older).status_code == 409  # two pollers: Telegram ends the first
        assert (await newer).json()["result"] == []


async def test_multipart_and_query_parameters_are_decoded(tg: TelegramEmulator) -> None:
    url = f"{tg.base_url}{tg.token}/sendMessage"
    async with httpx.AsyncClient() as client:
        answer = await client.post(
            url + f"?chat_id={ANN}",
            data={"text": "123", "reply_markup": '{"remove_keyboard": true}'},
            files={"thumbnail": ("t.jpg", b"\xff\xd8", "image/jpeg")},
        )
    assert answer.json()["ok"], answer.text
    assert tg.calls[-1].params == {
        "chat_id": ANN,
        "text": "123",
        "reply_markup": {"remove_keyboard": True},
        "thumbnail": b"\xff\xd8",
    }


async def test_stopping_a_polling_application_is_fast(tg: TelegramEmulator) -> None:
    app = application_builder(tg).build()
    async with running(app):
        await asyncio.sleep(0.2)  # a long poll is now waiting in the emulator
        started = time.monotonic()
    assert time.monotonic() - started < 1.5


# Cases from tdlib's own test suite (test/message_entities.cpp), the parser behind the Bot API.
@pytest.mark.parametrize(
    ("markup", "text", "entities"),
    [
        ("🏟 🏟_🏟 __🏟___", "🏟 🏟🏟 🏟", [("italic", 5, 5), ("underline", 8, 2)]),
        ("[telegram\\.org](https://telegram.dog?)", "telegram.org", [("text_link", 0, 12)]),
        ("[ ](as)", " ", []),
        ("abc\n> \n> \n>\ndef", "abc\n \n \n\ndef", [("blockquote", 4, 5)]),
        ("🏟 🏟```🏟\n🏟```", "🏟 🏟🏟", [("pre", 5, 2)]),
    ],
)
def test_markdown_v2_matches_tdlib(markup: str, text: str, entities: list[Any]) -> None:
    parsed_text, parsed = parse_markdown_v2(markup)
    assert parsed_text == text
    assert [(e["type"], e["offset"], e["length"]) for e in parsed] == entities


@pytest.mark.parametrize(
    ("markup", "detail"),
    [
        ("🏟 🏟_abacaba", "Can't find end of Italic entity at byte offset 9"),
        ("🏟 🏟```a ", "Can't find end of PreCode entity at byte offset 9"),
        ("🏟 🏟>", "Character '>' is reserved and must be escaped with the preceding '\\'"),
    ],
)
def test_markdown_v2_errors_match_tdlib(markup: str, detail: str) -> None:
    with pytest.raises(EntityParseError) as caught:
        parse_markdown_v2(markup)
    assert str(caught.value) == detail


def test_urls_are_stored_the_way_telegram_stores_them() -> None:
    assert normalize_url("telegram.org") == "http://telegram.org/"
    assert normalize_url("https://telegram.dog?") == "https://telegram.dog/?"
    assert normalize_url("localhost") is None
