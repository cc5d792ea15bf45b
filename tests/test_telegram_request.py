"""The aiohttp request class python-telegram-bot runs on (adapters/telegram/request.py),
over real sockets: against the Telegram emulator, and byte for byte against what PTB's
own HTTPXRequest sends."""

from __future__ import annotations

import asyncio
import io
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from telegram import Bot, InlineKeyboardButton, InlineKeyboardMarkup, InputFile
from telegram.error import (
    BadRequest,
    Forbidden,
    InvalidToken,
    NetworkError,
    RetryAfter,
    TimedOut,
)
from telegram.request import BaseRequest, HTTPXRequest, RequestData
from telegram.request._requestparameter import RequestParameter

from adapters.telegram.request import POOL_TIMEOUT_MESSAGE, TelegramRequest, bot_requests
from sandbox import samples
from sandbox.hostemu import HostEmulator
from sandbox.telegram_api import TelegramEmulator
from tests.telegram_harness import ANN, free_port, running_adapter, telegram_config


@asynccontextmanager
async def emulator_bot(tg: TelegramEmulator) -> AsyncIterator[Bot]:
    request, get_updates_request = bot_requests()
    bot = Bot(
        tg.token,
        base_url=tg.base_url,
        base_file_url=tg.base_file_url,
        request=request,
        get_updates_request=get_updates_request,
    )
    async with bot:
        yield bot


def method_url(tg: TelegramEmulator, method: str) -> str:
    return f"{tg.base_url}{tg.token}/{method}"


def request_data(**params: Any) -> RequestData:
    return RequestData([RequestParameter.from_input(k, v) for k, v in params.items()])


async def test_the_bot_calls_telegram_through_it(tg: TelegramEmulator) -> None:
    tg.add_file(b"abc", folder="photos", extension="jpg")
    keyboard = InlineKeyboardMarkup([[InlineKeyboardButton("Open", url="https://e.org/a?b=1&c")]])
    async with emulator_bot(tg) as bot:
        assert isinstance(bot.request, TelegramRequest)
        assert bot.username == "rehost_test_bot"  # getMe, at initialize
        text = "<b>Héllo</b> & = + ✓ 100%"
        sent = await bot.send_message(ANN, text, parse_mode="HTML", reply_markup=keyboard)
    [call] = tg.calls_to("sendMessage")
    assert call.params["chat_id"] == ANN
    assert call.params["text"] == text
    assert call.params["reply_markup"] == keyboard.to_dict()
    assert sent.text == "Héllo & = + ✓ 100%"


async def test_a_multipart_upload_arrives_whole(tg: TelegramEmulator, tmp_path: Path) -> None:
    """A sendPhoto-like call: plain fields, an image from bytes and a file streamed from
    its handle, in one multipart/form-data body."""
    photo = samples.png(40, 30)
    document = tmp_path / "big.bin"
    document.write_bytes(bytes(range(256)) * 1024)  # 256 KB: written in several blocks
    async with emulator_bot(tg) as bot, asyncio.timeout(10):
        with document.open("rb") as handle:
            data = request_data(
                chat_id=ANN,
                text='a "caption" — ✓',
                photo=InputFile(photo, filename='ph "o"\\to.png'),
                document=InputFile(handle, filename="big.bin", read_file_handle=False),
            )
            assert data.contains_files
            await bot.request.post(method_url(tg, "sendMessage"), data)
    [call] = tg.calls_to("sendMessage")
    assert call.params["chat_id"] == ANN
    assert call.params["text"] == 'a "caption" — ✓'
    assert call.params["photo"] == photo
    assert call.params["document"] == document.read_bytes()


async def test_a_long_poll_ends_empty_or_as_timed_out(tg: TelegramEmulator) -> None:
    async with emulator_bot(tg) as bot, asyncio.timeout(20):
        # PTB adds the poll's timeout to the read timeout: an empty poll ends cleanly.
        started = time.monotonic()
        assert await bot.get_updates(timeout=1) == ()
        assert 0.9 < time.monotonic() - started < 4
        # A read timeout shorter than the poll: TimedOut, not some other error.
        updates_request: BaseRequest = bot._request[0]
        assert isinstance(updates_request, TelegramRequest)
        started = time.monotonic()
        with pytest.raises(TimedOut):
            await updates_request.post(
                method_url(tg, "getUpdates"), request_data(timeout=5), read_timeout=0.3
            )
        assert time.monotonic() - started < 2
        # Polling goes on, and an update arriving during a poll ends it.
        asyncio.get_running_loop().call_later(0.2, tg.send_text, ANN, ANN, "hello")
        [update] = await bot.get_updates(timeout=5)
        assert update.message is not None and update.message.text == "hello"


async def test_status_codes_become_ptb_errors(tg: TelegramEmulator) -> None:
    async with emulator_bot(tg) as bot, asyncio.timeout(10):
        tg.fail_next("sendMessage", 429, retry_after=7)
        with pytest.raises(RetryAfter, match="Retry in 7 seconds"):
            await bot.send_message(ANN, "one")
        tg.fail_next("sendMessage", 403, description="bot was blocked by the user")
        with pytest.raises(Forbidden, match="blocked"):
            await bot.send_message(ANN, "two")
        with pytest.raises(BadRequest, match=r"(?i)invalid file_id"):
            await bot.get_file("no-such-file")
        await bot.send_message(ANN, "three")  # the connection is still good
    wrong = Bot("1:wrong", base_url=tg.base_url, request=TelegramRequest())
    with pytest.raises(InvalidToken):
        await wrong.initialize()
    await wrong.shutdown()


async def test_a_refused_connection_is_a_network_error() -> None:
    url = f"http://127.0.0.1:{free_port()}/bot4242:emulator-token/getMe"
    async with TelegramRequest() as request, asyncio.timeout(10):
        with pytest.raises(NetworkError) as refused:
            await request.post(url, request_data())
    assert not isinstance(refused.value, TimedOut)
    assert "aiohttp.ClientConnectorError" in refused.value.message
    assert "emulator-token" not in refused.value.message


async def test_shutdown_closes_the_session(tg: TelegramEmulator) -> None:
    request = TelegramRequest()
    assert request.closed
    await request.initialize()
    assert request.read_timeout == 5.0
    await request.post(method_url(tg, "getMe"))
    session = request._session
    assert session is not None and not session.closed
    await request.shutdown()
    assert request.closed and session.closed
    with pytest.raises(NetworkError, match="not initialized"):
        await request.post(method_url(tg, "getMe"))
    await request.shutdown()  # twice is harmless
    async with request:  # and it opens again
        assert await request.post(method_url(tg, "getMe"))
    assert request.closed


async def test_a_full_pool_is_a_pool_timeout(tg: TelegramEmulator) -> None:
    async with TelegramRequest(connection_pool_size=1, pool_timeout=0.2) as request:
        poll = asyncio.create_task(
            request.post(method_url(tg, "getUpdates"), request_data(timeout=3), read_timeout=9)
        )
        await asyncio.sleep(0.2)
        started = time.monotonic()
        with pytest.raises(TimedOut, match=re.escape(POOL_TIMEOUT_MESSAGE[:30])):
            await request.post(method_url(tg, "getMe"))
        assert time.monotonic() - started < 1.5
        poll.cancel()
        with pytest.raises(asyncio.CancelledError):
            await poll
        assert await request.post(method_url(tg, "getMe"))  # the slot came back


async def test_a_stalled_upload_times_out_writing(tmp_path: Path) -> None:
    """A server that stops reading: the body's writes time out (``write_timeout``)."""
    accepted: list[asyncio.StreamWriter] = []

    async def never_read(_: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        accepted.append(writer)

    server = await asyncio.start_server(never_read, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    big = tmp_path / "sparse.bin"
    with big.open("wb") as handle:
        handle.truncate(128 << 20)  # more than any socket buffer holds
    try:
        async with TelegramRequest() as request, asyncio.timeout(20):
            with big.open("rb") as handle:
                data = request_data(
                    document=InputFile(handle, filename="s.bin", read_file_handle=False)
                )
                started = time.monotonic()
                with pytest.raises(TimedOut):
                    await request.post(
                        f"http://127.0.0.1:{port}/bot1:x/sendDocument", data, write_timeout=0.3
                    )
                assert time.monotonic() - started < 10
    finally:
        for writer in accepted:
            writer.close()
        server.close()
        await server.wait_closed()


# --- the same bytes as HTTPXRequest ----------------------------------------------------------


@dataclass
class Received:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes


@asynccontextmanager
async def recording_server() -> AsyncIterator[tuple[str, list[Received]]]:
    """A server that keeps every request as it came and answers ``{"ok": true}``."""
    received: list[Received] = []

    async def keep(request: web.Request) -> web.Response:
        headers = {k.lower(): v for k, v in request.headers.items()}
        received.append(Received(request.method, request.path, headers, await request.read()))
        return web.json_response({"ok": True, "result": True})

    app = web.Application(client_max_size=64 << 20)
    app.router.add_route("*", "/{tail:.*}", keep)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    try:
        yield f"http://{host}:{port}", received
    finally:
        await runner.cleanup()


def normalized(request: Received) -> tuple[str, str, dict[str, str | None], bytes]:
    """The request with its multipart boundary (random each time) made the same."""
    content_type = request.headers.get("content-type", "")
    body = request.body
    if match := re.search(r"boundary=([0-9a-f]+)", content_type):
        boundary = match.group(1)
        content_type = content_type.replace(boundary, "BOUNDARY")
        body = body.replace(boundary.encode(), b"BOUNDARY")
    headers = {
        "content-type": content_type or None,
        "content-length": request.headers.get("content-length"),
        "transfer-encoding": request.headers.get("transfer-encoding"),
        "user-agent": request.headers.get("user-agent"),
    }
    return request.method, request.path, headers, body


Call = Callable[[BaseRequest, str], Awaitable[object]]


async def _send_message(request: BaseRequest, root: str) -> object:
    markup = InlineKeyboardMarkup([[InlineKeyboardButton("Delete", callback_data="d:1")]])
    data = request_data(
        chat_id=-1001000000001,
        text="links: https://i.example/a?x=1&y=2 ✓ «quoted» 100% + more",
        parse_mode="HTML",
        reply_markup=markup,
        disable_notification=True,
        message_thread_id=None,
    )
    return await request.post(f"{root}/bot1:x/sendMessage", data)


async def _send_photo(request: BaseRequest, root: str) -> object:
    data = request_data(
        chat_id=7,
        caption='a "caption"\\ with\ttab ✓',
        photo=InputFile(samples.png(12, 9), filename='ph"o\\to\x01.png'),
        document=InputFile(b"%PDF-1.4 tiny", filename="notes.pdf"),
    )
    return await request.post(f"{root}/bot1:x/sendPhoto", data)


async def _send_big_file(request: BaseRequest, root: str) -> object:
    payload = bytes(range(256)) * 4096  # 1 MB
    handle = io.BytesIO(payload)
    data = request_data(
        chat_id=7, document=InputFile(handle, filename="big.bin", read_file_handle=False)
    )
    return await request.post(f"{root}/bot1:x/sendDocument", data)


async def _get_me(request: BaseRequest, root: str) -> object:
    return await request.post(f"{root}/bot1:x/getMe", request_data())


async def _download(request: BaseRequest, root: str) -> object:
    return await request.retrieve(f"{root}/file/bot1:x/photos/file_1.jpg")


@pytest.mark.parametrize(
    "call",
    [_send_message, _send_photo, _send_big_file, _get_me, _download],
    ids=["form", "multipart", "multipart-file-handle", "no-parameters", "download"],
)
async def test_it_sends_what_httpx_sends(call: Call) -> None:
    async with recording_server() as (root, received):
        async with HTTPXRequest() as httpx_request:
            await call(httpx_request, root)
        async with TelegramRequest() as aiohttp_request:
            await call(aiohttp_request, root)
    by_httpx, by_aiohttp = received
    assert normalized(by_aiohttp) == normalized(by_httpx)


async def test_the_adapter_runs_on_it(
    tmp_path: Path, host: HostEmulator, tg: TelegramEmulator
) -> None:
    async with running_adapter(telegram_config(tmp_path, host, tg)) as adapter:
        bot = adapter.delivery.bot
        assert isinstance(bot.request, TelegramRequest)
        assert isinstance(bot._request[0], TelegramRequest)
        assert bot._request[0] is not bot.request
        tg.send_photo(ANN, ANN, samples.png(32, 24))
        reply = await tg.wait_for(
            lambda c: c.method == "sendMessage" and c.params["chat_id"] == ANN, timeout=10
        )
    assert "Rehosted" in reply.params["text"]
    assert [c.method for c in tg.calls_to("getFile")] == ["getFile"]
