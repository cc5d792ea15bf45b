"""A local Telegram Bot API server for tests: a real aiohttp server on 127.0.0.1.

Point python-telegram-bot at it with ``ApplicationBuilder().token(tg.token)
.base_url(tg.base_url).base_file_url(tg.base_file_url)``; PTB then POSTs to
``{base_url}{token}/{method}`` and downloads files from ``{base_file_url}{token}/{path}``.

    async with TelegramEmulator() as tg:
        tg.add_user(7, first_name="Ann", username="ann")
        tg.send_text(7, 7, "/start")            # becomes an update for getUpdates
        call = await tg.wait_for(lambda c: c.method == "sendMessage")

The world (users, groups, files, messages) lives in ``sandbox.telegram_world``, the
methods in ``sandbox.telegram_methods``, text formatting in ``sandbox.telegram_text``.
``getUpdates`` calls are not recorded in ``calls`` (pass ``record_polling=True`` to
record them): they are the library's plumbing, not what the bot did.

As on the real platform, the bot is in privacy mode (in groups where it is not an admin
it sees only commands, replies to it and mentions of it) and sends are flood-limited
(``sandbox.telegram_flood``: 429 with ``retry_after``, then a flood wait on the chat).

Instead of polling, the bot may ``setWebhook`` to a local URL (``http://127.0.0.1:PORT``
is accepted, unlike on Telegram; see ``sandbox.telegram_webhook``): updates are then
POSTed to it, retried until it answers 2xx, and every POST is recorded:

    await bot.set_webhook(receiver_url, secret_token="s3cret")
    tg.send_text(7, 7, "hi")
    attempt = await tg.wait_for_webhook(lambda a: a.ok)
    await tg.wait_webhook_drained()          # nothing pending, nothing in flight
    tg.webhook_info()["last_error_message"]  # as getWebhookInfo shows it
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any

import aiohttp
from aiohttp import web

from sandbox.lifecycle import LocalServer
from sandbox.telegram_flood import SENDING_METHODS, TELEGRAM_LIMITS, FloodControl, FloodLimits
from sandbox.telegram_methods import BY_LOWER_NAME, METHODS
from sandbox.telegram_users import UserActions
from sandbox.telegram_webhook import TEST_TIMING, WebhookAttempt, WebhookTiming
from sandbox.telegram_wire import (
    ApiError,
    decode_params,
    error,
    json_response,
    ok,
    too_many_requests,
)
from sandbox.telegram_world import JSON, ChatRecord, UserRecord, World

DEFAULT_TOKEN = "4242:emulator-token"
_NOT_FOUND = ApiError(404, "Not Found")
_UNAUTHORIZED = ApiError(401, "Unauthorized")
_DEFAULT_DETAIL = {400: "Bad Request: ", 403: "Forbidden: "}


@dataclass(frozen=True)
class SentCall:
    """One Bot API call the bot made, with its parameters decoded.

    JSON-typed parameters are Python objects, uploaded files are ``bytes``.
    ``status`` is the HTTP status the emulator answered with.
    """

    method: str
    params: dict[str, Any]
    status: int = 200

    @property
    def ok(self) -> bool:
        return self.status == 200


@dataclass
class _Failure:
    status: int
    retry_after: int
    description: str | None
    times: int

    def error(self) -> ApiError:
        if self.status == 429:
            return too_many_requests(self.retry_after)
        prefix = _DEFAULT_DETAIL.get(self.status, "")
        detail = self.description or "scripted failure"
        if self.status not in _DEFAULT_DETAIL and self.description is None:
            detail = HTTPStatus(self.status).phrase
        text = detail if detail.startswith(prefix) else prefix + detail
        return ApiError(self.status, text)


class TelegramEmulator(UserActions, LocalServer):
    def __init__(
        self,
        token: str = DEFAULT_TOKEN,
        bot_id: int = 4242,
        bot_username: str = "rehost_test_bot",
        max_download_bytes: int = 20 * 1024 * 1024,
        *,
        bot_name: str = "Rehost Test Bot",
        privacy_mode: bool = True,
        fetch_link_previews: bool = False,
        record_polling: bool = False,
        flood_limits: FloodLimits | None = TELEGRAM_LIMITS,
        clock: Callable[[], float] = time.monotonic,
        webhook_timing: WebhookTiming = TEST_TIMING,
        webhook_in_chat_order: bool = True,
    ) -> None:
        """``privacy_mode``: in groups where the bot is not an admin, deliver only
        commands, replies to the bot and mentions of it (BotFather's default for real
        bots). ``fetch_link_previews``: GET the URL Telegram would preview for each bot
        message; the URLs land in ``preview_fetches``. ``flood_limits``: Telegram's by
        default, None for none (which also lifts setWebhook's once a second); ``clock``
        (seconds) times them. ``webhook_timing``: how long to wait for a webhook's answer
        and how fast to retry (``sandbox.telegram_webhook.TEST_TIMING``: 3 s, twenty
        times Telegram's pace). ``webhook_in_chat_order``: as Telegram, deliver a chat's
        messages to the webhook one after another; False sends every update as soon as
        a connection is free (an album's photos in parallel)."""
        self.token = token
        self.world = World(bot_id, bot_username, bot_name, max_download_bytes, privacy_mode)
        self.flood_control = FloodControl(flood_limits, clock)
        self.calls: list[SentCall] = []
        self.preview_fetches: list[str] = []
        # Exceptions raised inside the emulator while handling a call; tests may assert
        # it stays empty.
        self.server_errors: list[Exception] = []
        self._record_polling = record_polling
        self._fetch_previews = fetch_link_previews
        self._failures: dict[str, list[_Failure]] = {}
        self._held: dict[str, asyncio.Event] = {}
        self._calls_changed: asyncio.Event | None = None
        webhook = self.world.webhook
        webhook.timing = webhook_timing
        webhook.in_chat_order = webhook_in_chat_order
        webhook.rate_limited = flood_limits is not None
        webhook.clock = clock
        webhook.reply = self._webhook_reply
        webhook.errors = self.server_errors
        self._runner: web.AppRunner | None = None
        self._session: aiohttp.ClientSession | None = None
        self._root = ""

    # --- server lifecycle ---------------------------------------------------------------

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> None:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        # handler_cancellation: a long poll whose client went away stops waiting.
        self._runner = web.AppRunner(app, handler_cancellation=True, shutdown_timeout=1.0)
        await self._runner.setup()
        await web.TCPSite(self._runner, host, port).start()
        bound_host, bound_port = self._runner.addresses[0][:2]
        self._root = f"http://{bound_host}:{bound_port}"
        if self._fetch_previews:
            self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=2))
            self.world.link_preview = self._fetch_preview

    async def close(self) -> None:
        await self.world.webhook.close()
        self.world.updates.close()  # wake long polls so shutdown does not wait on them
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        if self._session is not None:
            await self._session.close()
            self._session = None

    @property
    def url(self) -> str:
        """The server root, e.g. ``http://127.0.0.1:40123``."""
        if not self._root:
            raise RuntimeError("TelegramEmulator is not started")
        return self._root

    @property
    def base_url(self) -> str:
        """For ``ApplicationBuilder.base_url``: PTB appends the token, then ``/method``."""
        return f"{self.url}/bot"

    @property
    def base_file_url(self) -> str:
        """For ``ApplicationBuilder.base_file_url``: PTB appends token and ``/file_path``."""
        return f"{self.url}/file/bot"

    # --- HTTP ---------------------------------------------------------------------------

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        path = request.path
        if path.startswith("/file/bot"):
            return self._download(path.removeprefix("/file/bot"))
        if not path.startswith("/bot"):
            return error(_NOT_FOUND)
        token, _, name = path.removeprefix("/bot").partition("/")
        if token != self.token:
            return error(_UNAUTHORIZED)
        method = BY_LOWER_NAME.get(name.lower(), name)
        try:
            params = await decode_params(request)
        except ApiError as exc:
            self._record(method, {}, exc.status)
            return error(exc)
        return await self._call(method, params)

    async def _call(self, method: str, params: dict[str, Any]) -> web.StreamResponse:
        try:
            if method not in METHODS:
                raise _NOT_FOUND
            held = self._held.get(method)
            if held is not None:
                await held.wait()
            self._scripted_failure(method)
            result = await self._run(method, params)
        except ApiError as exc:
            self._record(method, params, exc.status)
            return error(exc)
        except Exception as exc:  # an emulator bug: answer like Telegram's 500, keep it
            self.server_errors.append(exc)
            self._record(method, params, 500)
            return error(ApiError(500, f"Internal Server Error: {exc!r}"))
        self._record(method, params, 200)
        return ok(result)

    async def _run(self, method: str, params: dict[str, Any]) -> Any:
        chat_id = self._sent_to(method, params)
        if chat_id is None:
            return await METHODS[method](self.world, params)
        media = params.get("media")
        sends = len(media) if method == "sendMediaGroup" and isinstance(media, list) else 1
        at = self.flood_control.admit(chat_id, sends)  # 429 while flooded
        try:
            return await METHODS[method](self.world, params)
        except ApiError:  # refused: no message was created
            self.flood_control.refund(chat_id, at, sends)
            raise

    def _sent_to(self, method: str, params: dict[str, Any]) -> int | None:
        """The chat a message-creating call writes to; None if it creates no message or
        names no known chat (the method itself then answers the error)."""
        if method not in SENDING_METHODS:
            return None
        chat_id = params.get("chat_id")
        if not isinstance(chat_id, int | str):
            return None
        try:
            return self.world.find_chat(chat_id).id
        except ApiError:
            return None

    def _download(self, rest: str) -> web.StreamResponse:
        token, _, file_path = rest.partition("/")
        record = self.world.files_by_path.get(file_path)
        if token != self.token or record is None:
            return json_response(_NOT_FOUND.body(), status=404)
        return web.Response(body=record.data, content_type="application/octet-stream")

    def _scripted_failure(self, method: str) -> None:
        queue = self._failures.get(method)
        if not queue:
            return
        failure = queue[0]
        failure.times -= 1
        if failure.times <= 0:
            queue.pop(0)
        raise failure.error()

    def _record(self, method: str, params: dict[str, Any], status: int) -> None:
        if method == "getUpdates" and not self._record_polling:
            return
        self.calls.append(SentCall(method, params, status))
        if self._calls_changed is not None:
            self._calls_changed.set()
        self._calls_changed = asyncio.Event()

    async def _webhook_reply(self, method: str, params: dict[str, Any]) -> None:
        """A webhook answered an update with a Bot API call: run it, as Telegram does."""
        await self._call(BY_LOWER_NAME.get(method.lower(), method), params)

    async def _fetch_preview(self, url: str) -> None:
        self.preview_fetches.append(url)
        assert self._session is not None
        headers = {"User-Agent": "TelegramBot (like TwitterBot)"}
        try:
            async with self._session.get(url, headers=headers) as response:
                await response.read()
        except (aiohttp.ClientError, TimeoutError):
            pass  # Telegram shows no preview; the message is still sent

    # --- scripting the server ---------------------------------------------------------

    def fail_next(
        self,
        method: str,
        status: int = 429,
        retry_after: int = 1,
        times: int = 1,
        description: str | None = None,
    ) -> None:
        """Make the next ``times`` calls of ``method`` fail without taking effect.

        429 answers ``Too Many Requests: retry after N`` with ``parameters.retry_after``;
        400/403 prefix ``description`` with ``Bad Request: ``/``Forbidden: ``.
        """
        name = BY_LOWER_NAME.get(method.lower(), method)
        failure = _Failure(status, retry_after, description, times)
        self._failures.setdefault(name, []).append(failure)

    def hold(self, method: str) -> asyncio.Event:
        """Leave calls of ``method`` unanswered until the returned event is set (a Bot API
        slow to answer, e.g. ``getMe`` while a bot starts)."""
        name = BY_LOWER_NAME.get(method.lower(), method)
        held = self._held[name] = asyncio.Event()
        return held

    def flood(self, chat_id: int, retry_after: int) -> None:
        """Put the chat in a flood wait now: for ``retry_after`` s every message sent to
        it is refused with 429 and the seconds left (like a real group the bot flooded)."""
        self.flood_control.flood(chat_id, retry_after)

    # --- building the world -------------------------------------------------------------

    def add_user(
        self,
        user_id: int,
        first_name: str = "Ann",
        username: str | None = "ann",
        started: bool = True,
        *,
        last_name: str | None = None,
        language_code: str | None = None,
    ) -> JSON:
        """A user; ``started=False``: never pressed Start, so the bot gets 403 on DMs."""
        user = UserRecord(user_id, first_name, username, last_name, language_code, started)
        self.world.users[user_id] = user
        return user.to_api()

    def block_bot(self, user_id: int) -> None:
        """The user blocks the bot: DMs now fail with ``Forbidden: bot was blocked``."""
        self.world.user(user_id).blocked = True

    def add_group(
        self,
        chat_id: int,
        title: str = "G",
        admins: Sequence[int] = (),
        type: str = "supergroup",
        *,
        creator: int | None = None,
        username: str | None = None,
        bot_is_admin: bool = False,
        is_forum: bool = False,
    ) -> JSON:
        """A group; ``is_forum``: a supergroup with topics (open them with add_topic)."""
        if chat_id >= 0:
            raise ValueError("group and supergroup ids are negative on Telegram")
        if type not in ("group", "supergroup", "channel"):
            raise ValueError(f"not a group chat type: {type}")
        if is_forum and type != "supergroup":
            raise ValueError("only supergroups have topics")
        chat = ChatRecord(chat_id, type, title, username, set(admins), creator, bot_is_admin)
        chat.is_forum = is_forum
        self.world.groups[chat_id] = chat
        return chat.to_api()

    def add_topic(self, chat_id: int, from_user: int, name: str = "Topic") -> int:
        """``from_user`` opens a topic in a forum; returns its ``message_thread_id`` (the
        id of the ``forum_topic_created`` service message, which the bot is not sent)."""
        user = self.world.user(from_user)
        return self.world.add_topic(self.world.chat(chat_id), user.to_api(), name)

    def set_bot_admin(self, chat_id: int, is_admin: bool = True) -> None:
        """Promote (or demote) the bot in a group: an admin bot sees every message there,
        even in privacy mode."""
        if chat_id not in self.world.groups:
            raise ValueError(f"unknown group {chat_id}: call add_group() first")
        self.world.groups[chat_id].bot_is_admin = is_admin

    def set_admin(self, chat_id: int, user_id: int, is_admin: bool = True) -> None:
        """Promote (or demote) a user in a group; demoting the creator makes them a plain
        member too (as if ownership had been handed over)."""
        if chat_id not in self.world.groups:
            raise ValueError(f"unknown group {chat_id}: call add_group() first")
        chat = self.world.groups[chat_id]
        if is_admin:
            chat.admins.add(user_id)
            return
        chat.admins.discard(user_id)
        if chat.creator == user_id:
            chat.creator = None

    def add_file(
        self,
        data: bytes,
        file_size: int | None = None,
        *,
        folder: str = "documents",
        extension: str = "bin",
    ) -> str:
        """Store a file; return its file_id. ``file_size`` may claim more than ``data``
        holds, to exercise the download limit without allocating it."""
        return self.world.add_file(data, file_size, folder, extension).file_id

    # --- what the bot did ---------------------------------------------------------------

    def calls_to(self, method: str) -> list[SentCall]:
        name = BY_LOWER_NAME.get(method.lower(), method)
        return [call for call in self.calls if call.method == name]

    def messages(self, chat_id: int) -> list[JSON]:
        """The bot's messages in the chat, current state, with ``deleted``/``edited``."""
        return self.world.bot_messages(chat_id)

    def message(self, chat_id: int, message_id: int) -> JSON:
        """Any message of the chat (the bot's or a user's), current state."""
        record = self.world.messages.get(chat_id, {}).get(message_id)
        if record is None:
            raise KeyError(f"no message {message_id} in chat {chat_id}")
        return record.snapshot()

    @property
    def pending_updates(self) -> list[JSON]:
        """Updates the bot has not confirmed yet (with a later getUpdates offset)."""
        return self.world.updates.pending

    # --- the webhook ----------------------------------------------------------------------

    @property
    def webhook_attempts(self) -> list[WebhookAttempt]:
        """Every POST of an update to the webhook so far, in the order they ended."""
        return list(self.world.webhook.attempts)

    def webhook_info(self) -> JSON:
        """What ``getWebhookInfo`` answers now (``url`` is "" without a webhook)."""
        return self.world.webhook.info()

    async def wait_for_webhook(
        self, predicate: Callable[[WebhookAttempt], bool] = lambda _: True, timeout: float = 5.0
    ) -> WebhookAttempt:
        """The first webhook attempt (already made or still to come) matching
        ``predicate``, e.g. ``lambda a: a.update_id == 3 and a.ok``."""
        return await self.world.webhook.wait_for_attempt(predicate, timeout)

    async def wait_webhook_drained(self, timeout: float = 5.0) -> None:
        """Wait until no update is pending (``pending_update_count`` is 0) and none is in
        flight: each was delivered with a 2xx answer, or given up on."""
        await self.world.webhook.wait_drained(timeout)

    async def wait_for(
        self, predicate: Callable[[SentCall], bool], timeout: float = 5.0
    ) -> SentCall:
        """The first call (already received or still to come) matching ``predicate``."""
        deadline = time.monotonic() + timeout
        seen = 0
        while True:
            if self._calls_changed is None:
                self._calls_changed = asyncio.Event()
            changed = self._calls_changed
            for call in self.calls[seen:]:
                if predicate(call):
                    return call
            seen = len(self.calls)
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(
                    f"no matching Bot API call within {timeout} s; calls: {self.summary()}"
                )
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(changed.wait(), remaining)

    def summary(self) -> str:
        if not self.calls:
            return "(none)"
        return "; ".join(_describe(call) for call in self.calls)


def _describe(call: SentCall) -> str:
    shown = {
        key: (f"<{len(value)} bytes>" if isinstance(value, bytes) else value)
        for key, value in call.params.items()
    }
    status = "" if call.ok else f" -> {call.status}"
    return f"{call.method}({shown}){status}"


__all__ = ["DEFAULT_TOKEN", "SentCall", "TelegramEmulator"]
