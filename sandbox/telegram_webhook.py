"""Webhooks: ``setWebhook``, ``deleteWebhook``, ``getWebhookInfo`` and the delivery of
updates to the webhook, the way Telegram's Bot API server does it (tdlib's
telegram-bot-api: ``Client::process_set_webhook_query``, ``WebhookActor``).

Setting the webhook
    ``setWebhook`` takes ``url`` (an empty one deletes the webhook, like
    ``deleteWebhook``), ``secret_token`` (up to 256 of ``A-Z a-z 0-9 _ -``; 400 "secret
    token is too long" / "secret token contains unallowed characters"),
    ``max_connections`` (clamped into 1-100, 40 by default), ``allowed_updates``,
    ``drop_pending_updates``; ``certificate`` and ``ip_address`` are accepted (and shown
    by getWebhookInfo) but change nothing here. A URL that does not parse gets 400
    "invalid webhook URL specified". As on Telegram, the old webhook is closed (and
    pending updates dropped, if asked) before the new URL is checked, so a refused
    ``setWebhook`` leaves no webhook; the same settings again answer "Webhook is already
    set" and change nothing; a non-empty URL at most once a second, else 429 (lifted with
    the emulator's ``flood_limits=None``). A waiting ``getUpdates`` ends with 409
    "Conflict: terminated by setWebhook request", and while the webhook is set every
    ``getUpdates`` gets 409 "Conflict: can't use getUpdates method while webhook is
    active; use deleteWebhook to delete the webhook first".

Delivery
    Each update is POSTed as JSON (``Content-Type: application/json``) with the header
    ``X-Telegram-Bot-Api-Secret-Token`` when a secret token is set. Only a 2xx answer
    delivers it; on any other answer, a refused connection or no answer in time, the
    same update (same ``update_id``) is sent again later, and getWebhookInfo shows the
    error: "Wrong response from the webhook: 500 Internal Server Error", "Connection
    refused", "Read timeout expired". The first retry is at once, then after 2, 4, 8 ...
    seconds, up to 60-120; a ``Retry-After`` header on an error answer sets the next delay
    (at most 3600 s). An update that could not be delivered in a day is dropped. A 2xx
    answer may carry a Bot API call as its JSON body (``{"method": "sendMessage", ...}``),
    which Telegram runs (not ``get*``, ``setWebhook``, ``deleteWebhook``, ``close``,
    ``logOut``); its answer is not sent anywhere.

Order and parallelism
    Telegram keeps one queue per chat for its messages (new, edited, channel posts): the
    next one leaves only once the one before it was delivered, so the photos of an album
    arrive one after another, never side by side. Queues of different chats are served
    in parallel, up to ``max_connections`` requests in flight, but only while the webhook
    has answered 2xx within the last 10 s; before its first success (and after 10 s of
    failures) Telegram keeps to a single connection, one update at a time. The emulator
    gives every other kind of update (callback queries...) a queue of its own.
    ``in_chat_order=False`` (the emulator's ``webhook_in_chat_order``) gives every update
    a queue of its own, so an album's photos are in flight together: not Telegram's
    behaviour, but a harder test of a receiver.

Where the emulator differs from Telegram, on purpose
    - Telegram wants HTTPS on port 443, 80, 88 or 8443 ("bad webhook: An HTTPS URL must be
      provided for webhook", "bad webhook: Webhook can be set up only on ports 80, 88,
      443 or 8443") and refuses reserved addresses ("bad webhook: IP address 10.0.0.1
      is reserved"), 127.0.0.1 among them. The emulator takes ``http://`` and
      ``https://`` URLs on the loopback interface (``127.0.0.1``, ``localhost``,
      ``[::1]``) on any port, as a Bot API server started with ``--local`` does, so tests
      can point it at a local aiohttp app. Any other URL passes Telegram's checks above
      and is then refused with "bad webhook: Failed to resolve host: Name or service not
      known": the emulator never sends updates off the machine.
    - Times: :class:`WebhookTiming` sets how long to wait for an answer (Telegram: about a
      minute), how long a second of the retry schedule lasts and when to give up on an
      update. The emulator's default, :data:`TEST_TIMING`, waits 3 s, retries twenty
      times faster than Telegram and gives up after 10 minutes; :data:`TELEGRAM_TIMING`
      is Telegram's.
    - A custom certificate is not used to check the webhook's TLS certificate.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import json
import math
import os
import random
import string
import time
from collections.abc import Awaitable, Callable, Hashable
from dataclasses import dataclass
from typing import Any

import aiohttp
from multidict import CIMultiDictProxy
from yarl import URL

from sandbox.telegram_updates import UpdateQueue, update_type
from sandbox.telegram_wire import (
    ApiError,
    Described,
    Params,
    bad_request,
    decode_json_body,
    get_bool,
    get_list,
    too_many_requests,
)

JSON = dict[str, Any]
Reply = Callable[[str, Params], Awaitable[None]]

SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"
GET_UPDATES_CONFLICT = (
    "Conflict: can't use getUpdates method while webhook is active; "
    "use deleteWebhook to delete the webhook first"
)
ENDED_BY_SET_WEBHOOK = "Conflict: terminated by setWebhook request"
WEBHOOK_PORTS = frozenset({443, 80, 88, 8443})
DEFAULT_MAX_CONNECTIONS = 40
MAX_CONNECTIONS = 100
MAX_SECRET_TOKEN = 256
MAX_RESEND_DELAY = 60  # retries back off to 60-120 (Telegram) seconds
MAX_RETRY_AFTER = 3600
_SECRET_CHARS = frozenset(string.ascii_letters + string.digits + "_-")
_MESSAGE_KINDS = frozenset({"message", "edited_message", "channel_post", "edited_channel_post"})
_NOT_RUN = frozenset({"deletewebhook", "setwebhook", "close", "logout"})


@dataclass(frozen=True)
class WebhookTiming:
    """Where Telegram waits, how long the emulator waits.

    ``timeout``: seconds to wait for the webhook's answer (Telegram: about 60).
    ``second``: how long one second of Telegram's retry schedule lasts: a failed update
    is retried at once, then after 2, 4, 8 ... up to 60-120 of them, or after the
    ``Retry-After`` its answer named.
    ``active_window``: seconds after the last 2xx during which more than one request
    may be in flight (Telegram: 10).
    ``lifetime``: seconds after which an update never delivered is dropped (a day).
    """

    timeout: float = 60.0
    second: float = 1.0
    active_window: float = 10.0
    lifetime: float = 86400.0


TELEGRAM_TIMING = WebhookTiming()
TEST_TIMING = WebhookTiming(timeout=3.0, second=0.05, lifetime=600.0)


@dataclass(frozen=True)
class WebhookAttempt:
    """One POST of an update to the webhook.

    ``status``: the HTTP status of the answer, None when there was none (refused,
    timed out). ``error``: what getWebhookInfo's ``last_error_message`` says about it,
    None when the update was delivered (a 2xx answer). ``attempt``: 1 for an update's
    first POST, 2 for its first retry, ... ``started`` is ``time.monotonic()``.
    """

    url: str
    update_id: int
    status: int | None
    error: str | None
    attempt: int
    started: float
    duration: float

    @property
    def ok(self) -> bool:
        return self.error is None


@dataclass(frozen=True)
class WebhookConfig:
    url: str  # as the bot gave it (getWebhookInfo shows this)
    target: str  # where requests go (with the https:// Telegram assumes when none is given)
    secret_token: str
    max_connections: int
    has_custom_certificate: bool
    fixed_ip: str  # the ip_address parameter, "" if none
    ip_address: str  # the address getWebhookInfo shows


@dataclass
class _Retry:
    """Telegram's per-update retry state (``WebhookActor::Update``)."""

    first_seen: float
    wakeup_at: float
    delay: int = 1  # Telegram seconds
    failures: int = 0
    attempts: int = 0


def parse_webhook_url(url: str) -> URL | None:
    """The URL as Telegram reads it (``https://`` when no scheme is given); None if it
    is not a valid http(s) URL with a host and a port in range."""
    if any(c.isspace() or ord(c) < 0x20 for c in url):
        return None
    if "://" not in url:
        url = "https://" + url
    try:
        parsed = URL(url)  # checks the port too
    except (ValueError, TypeError):
        return None
    if parsed.scheme not in ("http", "https") or not parsed.host:
        return None
    return parsed


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _reachable_address(target: URL, fixed_ip: str) -> str:
    """The address updates go to, or 400 "bad webhook: ..." as Telegram answers it."""
    host = target.host or ""
    if _is_loopback(host) and (not fixed_ip or _is_loopback(fixed_ip)):
        return fixed_ip or ("127.0.0.1" if host == "localhost" else host)
    if target.scheme == "http":
        raise bad_request("bad webhook: An HTTPS URL must be provided for webhook")
    if target.port not in WEBHOOK_PORTS:
        raise bad_request("bad webhook: Webhook can be set up only on ports 80, 88, 443 or 8443")
    with contextlib.suppress(ValueError):
        address = ipaddress.ip_address(fixed_ip or host)
        if address.version == 6:
            raise bad_request("bad webhook: IPv6-only addresses are not allowed")
        if not address.is_global:
            raise bad_request(f"bad webhook: IP address {address} is reserved")
    # Telegram would resolve the name and connect; the sandbox stays on this machine.
    raise bad_request("bad webhook: Failed to resolve host: Name or service not known")


def _has_certificate(params: Params) -> bool:
    """Whether a certificate was uploaded (a file, or ``attach://<part>``); Telegram
    ignores one given as a string."""
    value = params.get("certificate")
    if isinstance(value, str) and value.startswith("attach://"):
        value = params.get(value.removeprefix("attach://"))
    return isinstance(value, bytes) and bool(value)


def _max_connections(params: Params) -> int:
    """Telegram clamps max_connections into 1-100 rather than refusing it."""
    value = params.get("max_connections")
    if value is None or value == "":
        return DEFAULT_MAX_CONNECTIONS
    try:
        number = int(value)
    except (TypeError, ValueError):
        number = 0
    return max(1, min(MAX_CONNECTIONS, number))


def _retry_after(headers: CIMultiDictProxy[str]) -> int:
    try:
        return max(0, min(MAX_RETRY_AFTER, int(headers.get("Retry-After", "0"))))
    except ValueError:
        return 0


def _connection_error(exc: aiohttp.ClientConnectorError) -> str:
    """The system's words for a socket error, such as "Connection refused"."""
    number = exc.os_error.errno
    return os.strerror(number) if number else str(exc.os_error) or "Connection failed"


class WebhookDispatcher:
    """The webhook of one bot: its settings and the deliveries to it.

    Tests read ``attempts`` (every POST, in the order they ended), ``dropped`` (ids of
    updates given up on) and ``info()`` (getWebhookInfo's answer), or wait with
    ``wait_for_attempt`` and ``wait_drained``. ``timing``, ``in_chat_order``,
    ``rate_limited``, ``clock`` (for the once-a-second limit), ``reply`` (runs a method
    a webhook answered with) and ``errors`` (where a bug in delivery is kept) may be set
    before the first ``setWebhook``.
    """

    def __init__(self, updates: UpdateQueue) -> None:
        self.timing = TEST_TIMING
        self.in_chat_order = True
        self.rate_limited = True
        self.clock: Callable[[], float] = time.monotonic
        self.reply: Reply | None = None
        self.errors: list[Exception] = []
        self.config: WebhookConfig | None = None
        self.attempts: list[WebhookAttempt] = []
        self.dropped: list[int] = []
        self.last_error_date: int | None = None
        self.last_error_message: str | None = None
        self._updates = updates
        self._retries: dict[int, _Retry] = {}
        self._in_flight: dict[int, asyncio.Task[None]] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._scheduler: asyncio.Task[None] | None = None
        self._kick: asyncio.Event | None = None
        self._changed: asyncio.Event | None = None
        self._session: aiohttp.ClientSession | None = None
        self._last_success: float | None = None
        self._next_set_at = -math.inf
        updates.on_change = self._on_queue_change

    @property
    def active(self) -> bool:
        return self.config is not None

    @property
    def in_flight(self) -> list[int]:
        """Ids of the updates being POSTed right now."""
        return sorted(self._in_flight)

    # --- the Bot API methods --------------------------------------------------------------

    async def set(self, params: Params, *, deleting: bool = False) -> Described:
        """``setWebhook`` (or ``deleteWebhook`` with ``deleting``)."""
        url = "" if deleting else str(params.get("url") or "")
        if url and self.rate_limited:
            now = self.clock()
            if now < self._next_set_at:
                raise too_many_requests(1)
            self._next_set_at = now + 1
        certificate = bool(url) and _has_certificate(params)
        max_connections = _max_connections(params) if url else 0
        secret = str(params.get("secret_token") or "") if url else ""
        fixed_ip = str(params.get("ip_address") or "") if url else ""
        drop = get_bool(params, "drop_pending_updates")
        old = self.config
        if (
            (old.url if old else "") == url
            and not (old and old.has_custom_certificate)
            and not certificate
            and (old.max_connections if old else 0) == max_connections
            and (old.secret_token if old else "") == secret
            and (old.fixed_ip if old else "") == fixed_ip
            and not drop
        ):
            self._updates.set_allowed(get_list(params, "allowed_updates"))
            return Described(
                True, "Webhook is already set" if url else "Webhook is already deleted"
            )
        if url:
            self._updates.end_polls(ENDED_BY_SET_WEBHOOK)
        await self._stop()
        if drop:
            self._updates.drop_pending()
        if not url:
            return Described(True, "Webhook was deleted" if old else "Webhook is already deleted")
        target = parse_webhook_url(url)
        if target is None:
            raise bad_request("invalid webhook URL specified")
        if len(secret) > MAX_SECRET_TOKEN:
            raise bad_request("secret token is too long")
        if not set(secret) <= _SECRET_CHARS:
            raise bad_request("secret token contains unallowed characters")
        address = _reachable_address(target, fixed_ip)
        self._updates.set_allowed(get_list(params, "allowed_updates"))
        self.config = WebhookConfig(
            url, str(target), secret, max_connections, certificate, fixed_ip, address
        )
        self._scheduler = asyncio.create_task(self._schedule_forever())
        return Described(True, "Webhook was set")

    def info(self) -> JSON:
        """``getWebhookInfo``'s answer."""
        config = self.config
        info: JSON = {
            "url": config.url if config else "",
            "has_custom_certificate": bool(config and config.has_custom_certificate),
            "pending_update_count": len(self._updates.pending),
        }
        if self.last_error_date is not None:
            info["last_error_date"] = self.last_error_date
            info["last_error_message"] = self.last_error_message
        if config is not None:
            info["max_connections"] = config.max_connections
            info["ip_address"] = config.ip_address
        allowed = self._updates.allowed
        if allowed is not None:
            info["allowed_updates"] = allowed
        return info

    # --- lifecycle ------------------------------------------------------------------------

    async def _stop(self) -> None:
        """Close the webhook: deliveries in flight are abandoned (their updates stay
        pending), and retry state and the last error are forgotten."""
        tasks = [t for t in (self._scheduler, *self._tasks) if t is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._scheduler = None
        self._tasks.clear()
        self._in_flight.clear()
        self._retries.clear()
        self.config = None
        self.last_error_date = None
        self.last_error_message = None
        self._last_success = None
        self._notify()

    async def close(self) -> None:
        await self._stop()
        if self._session is not None:
            await self._session.close()
            self._session = None

    # --- scheduling -----------------------------------------------------------------------

    def _on_queue_change(self) -> None:
        if self._kick is not None:
            self._kick.set()
        self._notify()

    def _notify(self) -> None:
        if self._changed is not None:
            self._changed.set()
        self._changed = asyncio.Event()

    async def _schedule_forever(self) -> None:
        try:
            while True:
                self._kick = kick = asyncio.Event()
                wait = self._dispatch(time.monotonic())
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(kick.wait(), wait)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # an emulator bug: keep it for the test to see
            self.errors.append(exc)
            raise

    def _queue_of(self, update: JSON) -> Hashable:
        kind = update_type(update)
        if self.in_chat_order and kind in _MESSAGE_KINDS:
            return ("chat", update[kind]["chat"]["id"])
        return ("update", update["update_id"])

    def _dispatch(self, now: float) -> float | None:
        """Start every delivery that may start now; the seconds until one more may."""
        config = self.config
        assert config is not None
        active = (
            self._last_success is not None and now - self._last_success <= self.timing.active_window
        )
        free = (config.max_connections if active else 1) - len(self._in_flight)
        busy: set[Hashable] = set()
        next_at = math.inf
        pending = self._updates.pending
        for gone in self._retries.keys() - {u["update_id"] for u in pending}:
            del self._retries[gone]  # dropped with drop_pending_updates
        for update in pending:
            update_id = update["update_id"]
            if not self._updates.is_allowed(update):
                self._updates.remove(update_id)  # Telegram would never have queued it
                continue
            retry = self._retries.setdefault(update_id, _Retry(first_seen=now, wakeup_at=now))
            queue = self._queue_of(update)
            if queue in busy:
                continue  # a message waits for the one before it in its chat
            busy.add(queue)
            if update_id in self._in_flight:
                continue
            if retry.wakeup_at > now:
                next_at = min(next_at, retry.wakeup_at)
            elif free > 0:
                free -= 1
                task = asyncio.create_task(self._deliver(config, update, retry))
                self._in_flight[update_id] = task
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)
        return None if next_at == math.inf else max(0.0, next_at - now)

    # --- delivering -----------------------------------------------------------------------

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None:
            connector = aiohttp.TCPConnector(limit=MAX_CONNECTIONS)
            self._session = aiohttp.ClientSession(connector=connector)
        return self._session

    async def _post(
        self, config: WebhookConfig, update: JSON
    ) -> tuple[int | None, str | None, int, bytes | None]:
        """One POST: (status, error, retry_after, reply body)."""
        headers = {"Content-Type": "application/json"}
        if config.secret_token:
            headers[SECRET_HEADER] = config.secret_token
        body = json.dumps(update, ensure_ascii=False).encode("utf-8")
        timeout = aiohttp.ClientTimeout(total=self.timing.timeout)
        try:
            async with self._client().post(
                config.target, data=body, headers=headers, timeout=timeout, allow_redirects=False
            ) as response:
                answer = await response.read()
                if 200 <= response.status <= 299:
                    is_json = response.content_type == "application/json"
                    return response.status, None, 0, answer if is_json else None
                reason = response.reason or ""
                error = f"Wrong response from the webhook: {response.status} {reason}"
                return response.status, error, _retry_after(response.headers), None
        except aiohttp.ConnectionTimeoutError:
            return None, "Connection timed out", 0, None
        except TimeoutError:
            return None, "Read timeout expired", 0, None
        except aiohttp.ClientConnectorError as exc:
            return None, _connection_error(exc), 0, None
        except aiohttp.ServerDisconnectedError:
            return None, "Webhook connection closed", 0, None
        except aiohttp.ClientError as exc:
            return None, str(exc) or type(exc).__name__, 0, None

    async def _deliver(self, config: WebhookConfig, update: JSON, retry: _Retry) -> None:
        try:
            await self._deliver_once(config, update, retry)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # an emulator bug: keep it for the test to see
            self.errors.append(exc)
            self._on_queue_change()

    async def _deliver_once(self, config: WebhookConfig, update: JSON, retry: _Retry) -> None:
        update_id = update["update_id"]
        started = time.monotonic()
        try:
            status, error, retry_after, answer = await self._post(config, update)
        finally:
            self._in_flight.pop(update_id, None)
        ended = time.monotonic()
        retry.attempts += 1
        attempt = WebhookAttempt(
            config.url, update_id, status, error, retry.attempts, started, ended - started
        )
        self.attempts.append(attempt)
        if error is None:
            self._last_success = ended
            self._retries.pop(update_id, None)
            self._updates.remove(update_id)  # wakes the scheduler and the waiters
        else:
            self.last_error_date = int(time.time())
            self.last_error_message = error
            self._back_off(update_id, retry, retry_after, ended)
            self._on_queue_change()
        if answer:
            await self._run_reply(answer)

    def _back_off(self, update_id: int, retry: _Retry, retry_after: int, now: float) -> None:
        """``WebhookActor::on_update_error``: when to send the update again, if ever."""
        delay, wait = retry.delay, retry_after
        if retry_after == 0 and retry.failures > 0:
            cap = random.randint(MAX_RESEND_DELAY, 2 * MAX_RESEND_DELAY)
            delay = min(cap, delay * 2)
            wait = delay
        wakeup_at = now + wait * self.timing.second
        if wakeup_at > retry.first_seen + self.timing.lifetime:
            self._retries.pop(update_id, None)
            self.dropped.append(update_id)
            self._updates.remove(update_id)
            return
        retry.delay, retry.wakeup_at = delay, wakeup_at
        retry.failures += 1

    async def _run_reply(self, answer: bytes) -> None:
        """Run the Bot API call a webhook answered with, as Telegram does."""
        try:
            body = json.loads(answer)
        except ValueError:
            return
        if not isinstance(body, dict) or self.reply is None:
            return
        method = str(body.pop("method", "") or "")
        name = method.lower()
        if not name or name in _NOT_RUN or name.startswith("get"):
            return
        try:
            params = decode_json_body(body)
        except ApiError:
            return  # Telegram answers nobody about a reply it can't read
        await self.reply(method, params)

    # --- waiting --------------------------------------------------------------------------

    async def wait_for_attempt(
        self, predicate: Callable[[WebhookAttempt], bool], timeout: float = 5.0
    ) -> WebhookAttempt:
        """The first attempt (already made or still to come) matching ``predicate``."""
        deadline = time.monotonic() + timeout
        seen = 0
        while True:
            if self._changed is None:
                self._changed = asyncio.Event()
            changed = self._changed
            for attempt in self.attempts[seen:]:
                if predicate(attempt):
                    return attempt
            seen = len(self.attempts)
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(
                    f"no matching webhook attempt within {timeout} s; attempts: {self.summary()}"
                )
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(changed.wait(), remaining)

    async def wait_drained(self, timeout: float = 5.0) -> None:
        """Until no update is pending (every one delivered, or dropped) or in flight."""
        deadline = time.monotonic() + timeout
        while True:
            if self._changed is None:
                self._changed = asyncio.Event()
            changed = self._changed
            if not self._updates.pending and not self._in_flight:
                return
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(
                    f"{len(self._updates.pending)} update(s) still pending after {timeout} s;"
                    f" webhook info: {self.info()}; attempts: {self.summary()}"
                )
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(changed.wait(), remaining)

    def summary(self) -> str:
        if not self.attempts:
            return "(none)"
        return "; ".join(
            f"{a.update_id}#{a.attempt} -> {'ok' if a.ok else a.error}" for a in self.attempts
        )


__all__ = [
    "ENDED_BY_SET_WEBHOOK",
    "GET_UPDATES_CONFLICT",
    "SECRET_HEADER",
    "TELEGRAM_TIMING",
    "TEST_TIMING",
    "WebhookAttempt",
    "WebhookConfig",
    "WebhookDispatcher",
    "WebhookTiming",
    "parse_webhook_url",
]
