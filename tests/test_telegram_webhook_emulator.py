"""The Telegram emulator's webhooks (setWebhook and the delivery of updates to a local
aiohttp app standing in for the bot), and the load balancer of ``sandbox.balancer``."""

from __future__ import annotations

import asyncio
import datetime as dtm
import itertools
import socket
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Self

import httpx
import pytest
from aiohttp import web
from telegram import Bot, Update
from telegram.error import BadRequest, Conflict, RetryAfter

from sandbox.balancer import Balancer
from sandbox.telegram_api import TelegramEmulator
from sandbox.telegram_webhook import (
    ENDED_BY_SET_WEBHOOK,
    GET_UPDATES_CONFLICT,
    SECRET_HEADER,
    WebhookTiming,
)

ANN, BOB = 7, 10
GROUP = -1001234567890
PHOTO = b"\x89PNG\r\n\x1a\n" + b"\x00\x00\x00\rIHDR" + (90).to_bytes(4, "big") * 2 + b"y"
FAST = WebhookTiming(timeout=2.0, second=0.01)

Action = int | str | dict[str, Any]  # a status, "hang" (never answer), a JSON body (200)


@dataclass
class Received:
    update: dict[str, Any]
    headers: dict[str, str]
    path: str
    arrived: float
    answered: float = field(default=0.0)


class Receiver:
    """A bot's webhook: records every POST and answers from ``script`` (then 200).

    While ``hold`` is set, requests wait for ``release()`` before answering, so a test
    can see how many are in flight at once."""

    def __init__(self, script: Sequence[Action] = ()) -> None:
        self.script = list(script)
        self.received: list[Received] = []
        self.in_flight = 0
        self.hold = False
        self._gate = asyncio.Event()
        self._arrived: asyncio.Event | None = None
        self._runner: web.AppRunner | None = None
        self.url = ""

    async def __aenter__(self) -> Self:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, handler_cancellation=True, shutdown_timeout=0.1)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", 0).start()
        host, port = self._runner.addresses[0][:2]
        self.url = f"http://{host}:{port}/hook"
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.release()
        if self._runner is not None:
            await self._runner.cleanup()

    def release(self) -> None:
        self._gate.set()

    @property
    def update_ids(self) -> list[int]:
        return [r.update["update_id"] for r in self.received]

    async def wait_in_flight(self, count: int, timeout: float = 5.0) -> None:
        """Until ``count`` requests are being handled at once."""
        async with asyncio.timeout(timeout):
            while self.in_flight < count:
                if self._arrived is None:
                    self._arrived = asyncio.Event()
                await self._arrived.wait()

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        got = Received(await request.json(), dict(request.headers), request.path, time.monotonic())
        self.received.append(got)
        self.in_flight += 1
        if self._arrived is not None:
            self._arrived.set()
        self._arrived = asyncio.Event()
        try:
            action = self.script.pop(0) if self.script else 200
            if self.hold:
                await self._gate.wait()
            if action == "hang":
                await asyncio.Event().wait()  # until the emulator gives up and hangs up
            if isinstance(action, dict):
                return web.json_response(action)
            headers = {"Retry-After": "3"} if action == 429 else {}
            return web.Response(status=int(action), headers=headers)
        finally:
            self.in_flight -= 1
            got.answered = time.monotonic()


@pytest.fixture
async def tg() -> AsyncIterator[TelegramEmulator]:
    async with TelegramEmulator(flood_limits=None, webhook_timing=FAST) as emulator:
        emulator.add_user(ANN, first_name="Ann", username="ann")
        emulator.add_user(BOB, first_name="Bob", username="bob")
        emulator.add_group(GROUP, title="G", admins=[ANN], creator=ANN, bot_is_admin=True)
        yield emulator
        assert emulator.server_errors == []


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=10) as http:
        yield http


async def call(
    client: httpx.AsyncClient, tg: TelegramEmulator, method: str, **params: Any
) -> dict[str, Any]:
    answer = await client.post(f"{tg.base_url}{tg.token}/{method}", json=params)
    body: dict[str, Any] = answer.json()
    assert answer.status_code == body.get("error_code", 200)
    return body


def refused_url() -> str:
    """A loopback URL where nothing listens."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/hook"


# --- setting the webhook ---------------------------------------------------------------------


async def test_an_update_is_posted_with_the_secret_token(
    tg: TelegramEmulator, client: httpx.AsyncClient
) -> None:
    async with Receiver() as hook:
        answer = await call(client, tg, "setWebhook", url=hook.url, secret_token="s3cret_-OK")
        assert answer == {"ok": True, "result": True, "description": "Webhook was set"}
        message = tg.send_text(ANN, ANN, "hi")
        attempt = await tg.wait_for_webhook(lambda a: a.ok)
        await tg.wait_webhook_drained()
    got = hook.received[0]
    assert got.update == {"update_id": attempt.update_id, "message": message}
    assert got.headers[SECRET_HEADER] == "s3cret_-OK"
    assert got.headers["Content-Type"] == "application/json"
    assert got.path == "/hook"
    assert (attempt.url, attempt.status, attempt.error, attempt.attempt) == (hook.url, 200, None, 1)
    assert tg.pending_updates == []
    assert tg.webhook_info() == {
        "url": hook.url,
        "has_custom_certificate": False,
        "pending_update_count": 0,
        "max_connections": 40,
        "ip_address": "127.0.0.1",
    }


async def test_without_a_secret_token_there_is_no_header(
    tg: TelegramEmulator, client: httpx.AsyncClient
) -> None:
    async with Receiver() as hook:
        await call(client, tg, "setWebhook", url=hook.url)
        tg.send_text(ANN, ANN, "hi")
        await tg.wait_webhook_drained()
    assert SECRET_HEADER not in hook.received[0].headers


async def test_get_updates_conflicts_with_a_webhook_until_it_is_deleted(
    tg: TelegramEmulator, client: httpx.AsyncClient
) -> None:
    url = refused_url()
    await call(client, tg, "setWebhook", url=url)
    tg.send_text(ANN, ANN, "kept")
    refused = await tg.wait_for_webhook(lambda a: a.error == "Connection refused")
    assert await call(client, tg, "getUpdates", timeout=0) == {
        "ok": False,
        "error_code": 409,
        "description": GET_UPDATES_CONFLICT,
    }
    info = (await call(client, tg, "getWebhookInfo"))["result"]
    assert info["url"] == url
    assert info["pending_update_count"] == 1
    assert info["last_error_message"] == "Connection refused"
    assert abs(info["last_error_date"] - time.time()) < 10
    deleted = await call(client, tg, "deleteWebhook")
    assert deleted == {"ok": True, "result": True, "description": "Webhook was deleted"}
    again = await call(client, tg, "deleteWebhook")
    assert again["description"] == "Webhook is already deleted"
    # What the webhook never got, getUpdates now serves, with the same id.
    updates = (await call(client, tg, "getUpdates", timeout=0))["result"]
    assert [u["update_id"] for u in updates] == [refused.update_id]
    assert updates[0]["message"]["text"] == "kept"
    assert tg.webhook_info() == {
        "url": "",
        "has_custom_certificate": False,
        "pending_update_count": 1,
    }


async def test_set_webhook_ends_a_waiting_long_poll(
    tg: TelegramEmulator, client: httpx.AsyncClient
) -> None:
    url = f"{tg.base_url}{tg.token}/getUpdates"
    waiting = asyncio.create_task(client.post(url, data={"timeout": "5"}))
    async with asyncio.timeout(5):
        while not tg.world.updates.polling:
            await asyncio.sleep(0.01)
    started = time.monotonic()
    async with Receiver() as hook:
        assert (await call(client, tg, "setWebhook", url=hook.url))["ok"]
    ended = await waiting
    assert time.monotonic() - started < 1
    assert ended.status_code == 409
    assert ended.json()["description"] == ENDED_BY_SET_WEBHOOK


async def test_an_update_is_dropped_on_request(
    tg: TelegramEmulator, client: httpx.AsyncClient
) -> None:
    tg.send_text(ANN, ANN, "old news")
    async with Receiver() as hook:
        await call(client, tg, "setWebhook", url=hook.url, drop_pending_updates=True)
        tg.send_text(ANN, ANN, "fresh")
        await tg.wait_webhook_drained()
    assert [r.update["message"]["text"] for r in hook.received] == ["fresh"]


# --- what setWebhook refuses ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("params", "description"),
    [
        ({"url": "not a url"}, "invalid webhook URL specified"),
        ({"url": "ftp://127.0.0.1/hook"}, "invalid webhook URL specified"),
        ({"url": "https://:443/hook"}, "invalid webhook URL specified"),
        ({"url": "https://example.com:99999/hook"}, "invalid webhook URL specified"),
        (
            {"url": "http://example.com/hook"},
            "bad webhook: An HTTPS URL must be provided for webhook",
        ),
        (
            {"url": "https://example.com:8080/hook"},
            "bad webhook: Webhook can be set up only on ports 80, 88, 443 or 8443",
        ),
        ({"url": "https://10.1.2.3/hook"}, "bad webhook: IP address 10.1.2.3 is reserved"),
        (
            {"url": "https://example.com/hook"},
            "bad webhook: Failed to resolve host: Name or service not known",
        ),
        (
            {"url": "example.com:8443/hook"},  # no scheme: https, as Telegram reads it
            "bad webhook: Failed to resolve host: Name or service not known",
        ),
        ({"url": "http://127.0.0.1:1/h", "secret_token": "x" * 257}, "secret token is too long"),
        (
            {"url": "http://127.0.0.1:1/h", "secret_token": "not secret"},
            "secret token contains unallowed characters",
        ),
        (
            {"url": "http://127.0.0.1:1/h", "secret_token": "a+b/c="},
            "secret token contains unallowed characters",
        ),
    ],
)
async def test_set_webhook_refuses_what_telegram_refuses(
    tg: TelegramEmulator, client: httpx.AsyncClient, params: dict[str, Any], description: str
) -> None:
    async with Receiver() as hook:
        await call(client, tg, "setWebhook", url=hook.url)
        answer = await call(client, tg, "setWebhook", **params)
    assert answer == {"ok": False, "error_code": 400, "description": f"Bad Request: {description}"}
    # Telegram closes the old webhook before it looks at the new URL.
    assert tg.webhook_info()["url"] == ""
    assert (await call(client, tg, "getUpdates", timeout=0))["ok"]


async def test_max_connections_is_clamped_and_a_repeat_changes_nothing(
    tg: TelegramEmulator, client: httpx.AsyncClient
) -> None:
    async with Receiver() as hook:
        for given, kept in ((0, 1), (500, 100), (7, 7)):
            await call(client, tg, "setWebhook", url=hook.url, max_connections=given)
            assert tg.webhook_info()["max_connections"] == kept
        same = await call(
            client, tg, "setWebhook", url=hook.url, max_connections=7, allowed_updates=["message"]
        )
        assert same["description"] == "Webhook is already set"
        assert tg.webhook_info()["allowed_updates"] == ["message"]  # still taken from a repeat


async def test_an_uploaded_certificate_is_accepted_and_shown(
    tg: TelegramEmulator, client: httpx.AsyncClient
) -> None:
    async with Receiver() as hook:
        answer = await client.post(
            f"{tg.base_url}{tg.token}/setWebhook",
            data={"url": hook.url},
            files={"certificate": ("cert.pem", b"-----BEGIN CERTIFICATE-----", "text/plain")},
        )
        assert answer.json()["ok"], answer.text
        assert tg.webhook_info()["has_custom_certificate"] is True
        await call(client, tg, "setWebhook", url=hook.url, certificate="not a file")
        assert tg.webhook_info()["has_custom_certificate"] is False


async def test_set_webhook_is_allowed_once_a_second(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PTB_TIMEDELTA", "true")  # retry_after as a timedelta, no warning
    now = [1000.0]
    async with (
        TelegramEmulator(clock=lambda: now[0]) as tg,
        Receiver() as hook,
        Bot(tg.token, base_url=tg.base_url, base_file_url=tg.base_file_url) as bot,
    ):
        assert await bot.set_webhook(hook.url)
        with pytest.raises(RetryAfter) as raised:
            await bot.set_webhook(hook.url, max_connections=3)
        assert raised.value.retry_after == dtm.timedelta(seconds=1)
        assert await bot.delete_webhook()  # deleting is not limited
        now[0] += 1
        assert await bot.set_webhook(hook.url, max_connections=3)


# --- delivery ---------------------------------------------------------------------------------


async def test_a_failed_update_comes_again_with_the_same_id(
    tg: TelegramEmulator, client: httpx.AsyncClient
) -> None:
    async with Receiver([500]) as hook:
        await call(client, tg, "setWebhook", url=hook.url)
        before = int(time.time())
        tg.send_text(ANN, ANN, "stored, then the receiver failed")
        await tg.wait_webhook_drained()
    update_id = hook.update_ids[0]
    assert hook.update_ids == [update_id, update_id]
    error = "Wrong response from the webhook: 500 Internal Server Error"
    assert [(a.update_id, a.status, a.error, a.attempt) for a in tg.webhook_attempts] == [
        (update_id, 500, error, 1),
        (update_id, 200, None, 2),
    ]
    info = (await call(client, tg, "getWebhookInfo"))["result"]
    assert info["pending_update_count"] == 0
    assert info["last_error_message"] == error
    assert before <= info["last_error_date"] <= time.time()


async def test_an_update_that_times_out_is_sent_again() -> None:
    timing = WebhookTiming(timeout=0.3, second=0.01)
    async with TelegramEmulator(webhook_timing=timing) as tg, Receiver(["hang"]) as hook:
        tg.add_user(ANN)
        async with httpx.AsyncClient() as client:
            await call(client, tg, "setWebhook", url=hook.url)
        tg.send_text(ANN, ANN, "slow")
        await tg.wait_webhook_drained()
        assert [(a.status, a.error) for a in tg.webhook_attempts] == [
            (None, "Read timeout expired"),
            (200, None),
        ]
        assert tg.webhook_attempts[0].duration >= 0.3
        assert len(set(hook.update_ids)) == 1 and len(hook.update_ids) == 2
        assert tg.webhook_info()["last_error_message"] == "Read timeout expired"


async def test_retries_back_off_and_follow_retry_after(
    tg: TelegramEmulator, client: httpx.AsyncClient
) -> None:
    # Telegram retries at once, then after 2, 4 ... seconds (here 0.01 s each), and after
    # Retry-After seconds when the answer names them (429 with Retry-After: 3).
    async with Receiver([502, 502, 502, 429]) as hook:
        await call(client, tg, "setWebhook", url=hook.url)
        tg.send_text(ANN, ANN, "persist")
        await tg.wait_webhook_drained()
    got = hook.received
    assert len(got) == 5 and len(set(hook.update_ids)) == 1
    gaps = [later.arrived - earlier.answered for earlier, later in itertools.pairwise(got)]
    assert gaps[1] >= 2 * FAST.second
    assert gaps[2] >= 4 * FAST.second
    assert gaps[3] >= 3 * FAST.second  # Retry-After
    assert tg.webhook_attempts[-2].error == "Wrong response from the webhook: 429 Too Many Requests"


async def test_allowed_updates_filter_what_the_webhook_gets(
    tg: TelegramEmulator, client: httpx.AsyncClient
) -> None:
    keyboard = {"inline_keyboard": [[{"text": "Go", "callback_data": "go"}]]}
    sent = await call(client, tg, "sendMessage", chat_id=ANN, text="press", reply_markup=keyboard)
    async with Receiver() as hook:
        await call(client, tg, "setWebhook", url=hook.url, allowed_updates=["callback_query"])
        assert tg.webhook_info()["allowed_updates"] == ["callback_query"]
        tg.send_text(ANN, ANN, "not wanted")
        tg.press_button(ANN, ANN, sent["result"]["message_id"], "go")
        await tg.wait_webhook_drained()
    assert [list(r.update)[1] for r in hook.received] == ["callback_query"]
    assert tg.webhook_info()["pending_update_count"] == 0


async def test_deleting_the_webhook_mid_delivery_keeps_the_update(
    tg: TelegramEmulator, client: httpx.AsyncClient
) -> None:
    async with Receiver() as hook:
        hook.hold = True
        await call(client, tg, "setWebhook", url=hook.url)
        tg.send_text(ANN, ANN, "in flight")
        await hook.wait_in_flight(1)
        await call(client, tg, "deleteWebhook")
    updates = (await call(client, tg, "getUpdates", timeout=0))["result"]
    assert [u["update_id"] for u in updates] == hook.update_ids
    assert tg.webhook_attempts == []  # abandoned, not answered


async def test_a_webhook_may_answer_with_a_method_call(
    tg: TelegramEmulator, client: httpx.AsyncClient
) -> None:
    reply = {"method": "sendMessage", "chat_id": ANN, "text": "pong"}
    async with Receiver([reply]) as hook:
        await call(client, tg, "setWebhook", url=hook.url)
        tg.send_text(ANN, ANN, "ping")
        sent = await tg.wait_for(lambda c: c.method == "sendMessage")
    assert sent.params == {"chat_id": ANN, "text": "pong"}
    assert [m["text"] for m in tg.messages(ANN)] == ["pong"]


# --- order and parallelism --------------------------------------------------------------------


async def warm_up(tg: TelegramEmulator, hook: Receiver) -> None:
    """Telegram opens more than one connection only after a 2xx answer: get one."""
    tg.send_text(BOB, BOB, "warm-up")
    await tg.wait_webhook_drained()
    hook.received.clear()


async def test_a_chat_s_messages_arrive_one_after_another(
    tg: TelegramEmulator, client: httpx.AsyncClient
) -> None:
    async with Receiver() as hook:
        await call(client, tg, "setWebhook", url=hook.url)
        await warm_up(tg, hook)
        hook.hold = True
        photos = [tg.send_photo(ANN, ANN, PHOTO, media_group_id="album") for _ in range(3)]
        tg.send_text(GROUP, ANN, "elsewhere")
        tg.send_text(BOB, BOB, "and here")
        await hook.wait_in_flight(3)
        pending = [u["update_id"] for u in tg.pending_updates]
        first_photo, group_text, bob_text = pending[0], pending[3], pending[4]
        # The album's first photo and one update of each other chat: nothing more.
        assert tg.world.webhook.in_flight == [first_photo, group_text, bob_text]
        hook.release()
        await tg.wait_webhook_drained()
    album = [r for r in hook.received if "photo" in r.update.get("message", {})]
    assert [r.update["message"]["message_id"] for r in album] == [p["message_id"] for p in photos]
    for earlier, later in itertools.pairwise(album):
        assert later.arrived >= earlier.answered


async def test_without_chat_order_an_album_is_in_flight_at_once() -> None:
    async with (
        TelegramEmulator(webhook_timing=FAST, webhook_in_chat_order=False) as tg,
        Receiver() as hook,
        httpx.AsyncClient() as client,
    ):
        tg.add_user(ANN)
        tg.add_user(BOB)
        await call(client, tg, "setWebhook", url=hook.url, max_connections=2)
        await warm_up(tg, hook)
        hook.hold = True
        for _ in range(3):
            tg.send_photo(ANN, ANN, PHOTO, media_group_id="album")
        await hook.wait_in_flight(2)
        assert len(tg.world.webhook.in_flight) == 2  # max_connections
        hook.release()
        await tg.wait_webhook_drained()
        assert len(hook.received) == 3


async def test_before_a_first_success_one_update_at_a_time(
    tg: TelegramEmulator, client: httpx.AsyncClient
) -> None:
    async with Receiver() as hook:
        hook.hold = True
        await call(client, tg, "setWebhook", url=hook.url)
        tg.send_text(ANN, ANN, "one")
        tg.send_text(BOB, BOB, "two")
        await hook.wait_in_flight(1)
        assert len(tg.world.webhook.in_flight) == 1
        hook.release()
        await tg.wait_webhook_drained()
    assert len(hook.received) == 2


# --- python-telegram-bot against the emulator -------------------------------------------------


async def test_ptb_sets_reads_and_deletes_the_webhook(tg: TelegramEmulator) -> None:
    async with (
        Receiver([500]) as hook,
        Bot(tg.token, base_url=tg.base_url, base_file_url=tg.base_file_url) as bot,
    ):
        assert await bot.set_webhook(
            hook.url,
            secret_token="abc-123",
            allowed_updates=["message"],
            max_connections=5,
            drop_pending_updates=True,
        )
        with pytest.raises(Conflict, match="use deleteWebhook"):
            await bot.get_updates()
        tg.send_text(ANN, ANN, "hello bot")
        await tg.wait_webhook_drained()
        info = await bot.get_webhook_info()
        assert info.url == hook.url
        assert (info.max_connections, info.allowed_updates) == (5, ("message",))
        assert (info.pending_update_count, info.has_custom_certificate) == (0, False)
        assert info.ip_address == "127.0.0.1"
        assert (
            info.last_error_message == "Wrong response from the webhook: 500 Internal Server Error"
        )
        assert isinstance(info.last_error_date, dtm.datetime)
        update = Update.de_json(hook.received[-1].update, bot)
        assert update.message is not None and update.message.text == "hello bot"
        assert hook.received[-1].headers[SECRET_HEADER] == "abc-123"
        with pytest.raises(BadRequest, match="Secret token contains unallowed characters"):
            await bot.set_webhook(hook.url, secret_token="no way")
        assert await bot.delete_webhook(drop_pending_updates=True)
        assert (await bot.get_webhook_info()).url == ""
        assert await bot.get_updates(timeout=0) == ()


# --- the load balancer ------------------------------------------------------------------------


class Backend:
    """An HTTP service that answers with its name and what it was sent."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.url = ""
        self._runner: web.AppRunner | None = None

    async def __aenter__(self) -> Self:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", 0).start()
        host, port = self._runner.addresses[0][:2]
        self.url = f"http://{host}:{port}"
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        body = {
            "backend": self.name,
            "method": request.method,
            "path": str(request.rel_url),
            "header": request.headers.get("X-Test"),
            "forwarded_for": request.headers.get("X-Forwarded-For"),
            "body": (await request.read()).decode(),
        }
        return web.json_response(body, status=201, headers={"X-Backend": self.name})


async def test_the_balancer_takes_turns_and_relays_everything() -> None:
    async with (
        Backend("a") as a,
        Backend("b") as b,
        Balancer([a.url, b.url]) as lb,
        httpx.AsyncClient() as http,
    ):
        answers = [
            await http.post(f"{lb.url}/p/{n}?q={n}", content=f"body {n}", headers={"X-Test": "t"})
            for n in range(4)
        ]
        await http.delete(f"{lb.url}/gone")
    assert [r.json()["backend"] for r in answers] == ["a", "b", "a", "b"]
    assert [r.headers["X-Backend"] for r in answers] == ["a", "b", "a", "b"]
    assert answers[3].status_code == 201
    assert answers[3].json() == {
        "backend": "b",
        "method": "POST",
        "path": "/p/3?q=3",
        "header": "t",
        "forwarded_for": "127.0.0.1",
        "body": "body 3",
    }
    assert [(f.backend, f.method, f.path) for f in lb.forwarded][-1] == (a.url, "DELETE", "/gone")


async def test_a_dead_backend_gives_502() -> None:
    dead = refused_url().removesuffix("/hook")
    async with Backend("a") as a, Balancer([a.url, dead]) as lb, httpx.AsyncClient() as http:
        statuses = [(await http.get(f"{lb.url}/x")).status_code for _ in range(4)]
    assert statuses == [201, 502, 201, 502]
    assert [f.status for f in lb.forwarded] == statuses
    assert lb.forwarded[1].backend == dead and lb.forwarded[1].error


async def test_a_webhook_behind_the_balancer_reaches_both_receivers(
    tg: TelegramEmulator, client: httpx.AsyncClient
) -> None:
    async with Receiver() as one, Receiver() as two:
        backends = [r.url.removesuffix("/hook") for r in (one, two)]
        async with Balancer(backends) as lb:
            await call(client, tg, "setWebhook", url=f"{lb.url}/hook", secret_token="s")
            for text in ("a", "b", "c", "d"):
                tg.send_text(ANN, ANN, text)
            await tg.wait_webhook_drained()
    assert len(one.received) == len(two.received) == 2
    texts = sorted(r.update["message"]["text"] for r in one.received + two.received)
    assert texts == ["a", "b", "c", "d"]
    assert all(r.headers[SECRET_HEADER] == "s" for r in one.received + two.received)
