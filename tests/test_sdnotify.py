"""systemd's notify protocol: ``rehost run`` tells a local ``NOTIFY_SOCKET`` it is ready
once its adapters are up, pings the watchdog from its event loop, and says when it stops."""

from __future__ import annotations

import asyncio
import os
import secrets
import signal
import socket
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from bot import sdnotify
from sandbox.hostemu import HostEmulator
from sandbox.telegram_api import TelegramEmulator
from tests.conftest import start_rehost_run
from tests.telegram_harness import telegram_config, telegram_world


@dataclass
class Notification:
    fields: dict[str, str]
    at: float  # time.monotonic() when it arrived
    seen_calls: list[str]  # the Bot API methods the emulator had answered by then


@dataclass
class Listener:
    """A notify socket, as systemd binds it: every datagram is kept, with what the
    Telegram emulator (if any) had seen when it arrived."""

    sock: socket.socket
    calls: Callable[[], list[str]] = list
    received: list[Notification] = field(default_factory=list)
    _changed: asyncio.Event = field(default_factory=asyncio.Event)

    def start(self) -> None:
        self.sock.setblocking(False)
        asyncio.get_running_loop().add_reader(self.sock.fileno(), self.read)

    def stop(self) -> None:
        asyncio.get_running_loop().remove_reader(self.sock.fileno())
        self.sock.close()

    def read(self) -> None:
        for text in drain(self.sock):
            pairs = (line.partition("=") for line in text.splitlines())
            fields = {key: value for key, _, value in pairs}
            self.received.append(Notification(fields, time.monotonic(), self.calls()))
        self._changed.set()

    def having(self, key: str) -> list[Notification]:
        return [n for n in self.received if key in n.fields]

    async def wait_until(self, done: Callable[[], bool], timeout: float = 30) -> None:
        async with asyncio.timeout(timeout):
            while not done():
                self._changed.clear()
                await self._changed.wait()


def drain(sock: socket.socket) -> Iterator[str]:
    """Every datagram waiting on ``sock`` (non-blocking), now."""
    while True:
        try:
            yield sock.recv(4096).decode()
        except BlockingIOError:
            return


def bound(address: str) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(address)
    return sock


async def test_rehost_run_notifies_ready_watchdog_and_stopping(
    host_emu: HostEmulator, tmp_path: Path
) -> None:
    async with TelegramEmulator() as tg:
        telegram_world(tg)
        config = telegram_config(tmp_path, host_emu, tg)
        listener = Listener(bound(str(tmp_path / "notify")), lambda: [c.method for c in tg.calls])
        listener.start()
        process = await start_rehost_run(
            config,
            NOTIFY_SOCKET=str(tmp_path / "notify"),
            WATCHDOG_USEC="200000",
            REHOST_LOG_LEVEL="INFO",
        )  # WATCHDOG_USEC: a ping every 0.1 s
        try:
            await listener.wait_until(lambda: bool(listener.having("READY")))
            ready = listener.having("READY")[0]
            # Ready only once the adapter is up: it has met the bot and set its commands.
            assert {"getMe", "setMyCommands"} <= set(ready.seen_calls), ready.seen_calls
            assert ready.fields["STATUS"] == "serving: telegram"
            # The watchdog keeps being fed while the bot serves.
            await listener.wait_until(
                lambda: sum(n.at > ready.at for n in listener.having("WATCHDOG")) >= 3
            )
            assert all(n.fields["WATCHDOG"] == "1" for n in listener.having("WATCHDOG"))
            assert not listener.having("STOPPING")
            # A reload (SIGHUP) is announced, and READY=1 follows once it is done.
            process.send_signal(signal.SIGHUP)
            await listener.wait_until(lambda: len(listener.having("READY")) == 2)
            [reloading] = listener.having("RELOADING")
            assert reloading.at <= listener.having("READY")[1].at
            assert int(reloading.fields["MONOTONIC_USEC"]) > 0
            assert listener.having("READY")[1].fields["STATUS"] == "serving: telegram"
        finally:
            process.send_signal(signal.SIGTERM)
            _, err = await asyncio.wait_for(process.communicate(), 30)
            listener.read()  # whatever came just before the exit
            listener.stop()
    assert process.returncode == 0, err.decode()
    assert [n.fields["STOPPING"] for n in listener.having("STOPPING")] == ["1"]
    assert len(listener.having("READY")) == 2
    assert "configuration reloaded" in err.decode()


async def test_a_stalled_event_loop_stops_the_watchdog_pings(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """The pings come from the loop itself: while it is blocked, systemd hears nothing."""
    sock = bound(str(tmp_path / "notify"))
    sock.setblocking(False)
    loop = asyncio.get_running_loop()
    monkeypatch.setenv("NOTIFY_SOCKET", str(tmp_path / "notify"))
    monkeypatch.setenv("WATCHDOG_USEC", "40000")  # a ping every 20 ms
    monkeypatch.delenv("WATCHDOG_PID", raising=False)
    with sock:
        async with sdnotify.watchdog():
            assert await loop.sock_recv(sock, 100) == b"WATCHDOG=1"
            list(drain(sock))
            time.sleep(0.3)  # the stall: fifteen intervals with the loop blocked
            assert list(drain(sock)) == []
            assert await asyncio.wait_for(loop.sock_recv(sock, 100), 5) == b"WATCHDOG=1"
        list(drain(sock))
        await asyncio.sleep(0.1)  # five intervals after the block ended: no more pings
        assert list(drain(sock)) == []


def test_an_abstract_socket_name_is_sent_to_in_the_abstract_namespace() -> None:
    name = f"rehost-test-{secrets.token_hex(6)}"
    with bound("\0" + name) as sock:
        sock.settimeout(5)
        environ = {"NOTIFY_SOCKET": "@" + name}
        assert sdnotify.socket_address(environ) == "\0" + name
        assert sdnotify.notify("READY=1", "STATUS=up", environ=environ)
        assert sock.recv(100) == b"READY=1\nSTATUS=up"


def test_a_path_socket_gets_each_kind_of_notification(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("NOTIFY_SOCKET", str(tmp_path / "notify"))
    with bound(str(tmp_path / "notify")) as sock:
        sock.settimeout(5)
        assert sdnotify.ready("serving:\ntelegram")  # a newline would start a new field
        assert sock.recv(100) == b"READY=1\nSTATUS=serving: telegram"
        assert sdnotify.reloading()
        lines = sock.recv(100).decode().splitlines()
        assert lines[0] == "RELOADING=1" and lines[1].startswith("MONOTONIC_USEC=")
        assert (
            0
            < int(lines[1].partition("=")[2])
            <= time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
        )
        assert sdnotify.stopping()
        assert sock.recv(100) == b"STOPPING=1"


def test_nothing_is_sent_without_a_notify_socket(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    assert sdnotify.socket_address() is None
    assert not sdnotify.ready("serving")
    assert sdnotify.socket_address({"NOTIFY_SOCKET": "vsock:2:1234"}) is None


def test_a_watchdog_meant_for_another_process_is_not_fed() -> None:
    assert sdnotify.watchdog_interval({"WATCHDOG_USEC": "30000000"}) == 15.0
    mine = {"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": str(os.getpid())}
    assert sdnotify.watchdog_interval(mine) == 15.0
    other = {"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": str(os.getpid() + 1)}
    assert sdnotify.watchdog_interval(other) is None
    assert sdnotify.watchdog_interval({}) is None
    assert sdnotify.watchdog_interval({"WATCHDOG_USEC": "0"}) is None
