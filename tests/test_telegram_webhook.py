"""Telegram webhook mode, and the adapter split into intake and work: the real adapter and
the real ``rehost telegram`` commands against the Bot API emulator, which POSTs updates
to the webhook (retrying what is not answered 2xx), through a round-robin balancer when
several processes serve one URL."""

from __future__ import annotations

import asyncio
import dataclasses
import socket
from pathlib import Path
from typing import Any

import httpx
import pytest

from adapters.telegram import render
from bot.config import load_config
from bot.inbox import Inbox
from bot.store import Store
from sandbox import samples
from sandbox.balancer import Balancer
from sandbox.hostemu import HostEmulator
from sandbox.telegram_api import SentCall, TelegramEmulator
from sandbox.telegram_webhook import SECRET_HEADER
from tests.conftest import assert_no_secrets, run_rehost
from tests.telegram_harness import (
    ANN,
    BOB,
    free_port,
    running_adapter,
    settled,
    telegram_config,
    telegram_world,
    webhook_settings,
)

SECRET = "hook_secret-5f1c0a77d2"
PATH = "/tg/webhook"


def answers_in(tg: TelegramEmulator, chat: int) -> list[SentCall]:
    return [
        c
        for c in tg.calls_to("sendMessage")
        if c.ok and int(c.params["chat_id"]) == chat and "Rehosted" in c.params["text"]
    ]


def helps(tg: TelegramEmulator) -> list[SentCall]:
    return [c for c in tg.calls_to("sendMessage") if c.ok and c.params["text"] == render.HELP]


def postgres(storage: Path | str) -> str | None:
    return storage if isinstance(storage, str) else None


async def inbox_ids(target: Path | str) -> list[int]:
    async with Store.opened(target) as store:
        rows = await store.db.fetch("select update_id from inbox order by update_id")
    return [int(row["update_id"]) for row in rows]


async def test_webhook_mode_end_to_end(
    tmp_path: Path, host: HostEmulator, tg: TelegramEmulator, storage: Path | str
) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}{PATH}"
    webhook = telegram_config(
        tmp_path,
        host,
        tg,
        storage_url=postgres(storage),
        telegram_extra=webhook_settings(port, url, SECRET),
    )
    first, second = samples.png(41, 31), samples.png(42, 32)
    async with running_adapter(webhook) as adapter:
        registered = await run_rehost("telegram", "set-webhook", "-c", str(webhook))
        assert registered.code == 0, registered.stderr
        assert registered.stdout.strip() == f"webhook set: Telegram now sends updates to {url}"
        info = tg.webhook_info()
        assert info["url"] == url
        assert info["allowed_updates"] == ["message", "callback_query"]
        assert tg.world.webhook.config is not None
        assert tg.world.webhook.config.secret_token == SECRET

        message = tg.send_photo(ANN, ANN, first)
        delivered = await tg.wait_for_webhook(lambda a: a.ok, timeout=10)
        await settled(adapter, tg)
        [reply] = answers_in(tg, ANN)
        assert "/delete/" in reply.params["text"]

        help_text = tg.send_text(ANN, ANN, "/help")
        helped = await tg.wait_for_webhook(lambda a: a.update_id != delivered.update_id)
        await tg.wait_for(lambda c: c in helps(tg))

        photo_update = {"update_id": delivered.update_id, "message": message}
        help_update = {"update_id": helped.update_id, "message": help_text}
        stranger = {"update_id": helped.update_id + 100, "message": help_text}
        right = {SECRET_HEADER: SECRET}
        async with httpx.AsyncClient() as http:
            wrong = await http.post(url, json=stranger, headers={SECRET_HEADER: SECRET + "x"})
            missing = await http.post(url, json=stranger)
            not_json = await http.post(url, content=b"{", headers=right)
            no_id = await http.post(url, json={"message": help_text}, headers=right)
            fetched = await http.get(url, headers=right)
            elsewhere = await http.post(url.replace(PATH, "/other"), json=stranger, headers=right)
            # Telegram sends an update again when it missed the first answer.
            again = [
                await http.post(url, json=update, headers=right)
                for update in (photo_update, help_update)
            ]
        assert (wrong.status_code, missing.status_code) == (403, 403)
        assert (not_json.status_code, no_id.status_code) == (400, 400)
        assert (fetched.status_code, elsewhere.status_code) == (405, 404)
        assert [answer.status_code for answer in again] == [200, 200]
        await adapter.handling.idle()
        await settled(adapter, tg)
        assert [(a.status, a.attempt) for a in tg.webhook_attempts] == [(200, 1), (200, 1)]
    # Nothing refused was recorded; each repeated update was recorded, and handled, once.
    assert await inbox_ids(storage) == [delivered.update_id, helped.update_id]
    assert len(answers_in(tg, ANN)) == len(helps(tg)) == 1
    assert len(tg.calls_to("sendChatAction")) == 1  # the photo's "sending photo..."
    assert len(host.uploads) == 1

    deleted = await run_rehost("telegram", "delete-webhook", "-c", str(webhook))
    assert deleted.code == 0, deleted.stderr
    assert "webhook deleted" in deleted.stdout
    assert tg.webhook_info()["url"] == ""
    for ran in (registered, deleted):
        assert SECRET not in ran.stdout + ran.stderr
        assert tg.token.split(":")[1] not in ran.stdout + ran.stderr
        assert_no_secrets(ran.stdout, ran.stderr)

    # Back to polling: getUpdates works again, and the bot answers through it.
    polling = telegram_config(tmp_path, host, tg, storage_url=postgres(storage))
    async with running_adapter(polling) as adapter:
        tg.send_photo(ANN, ANN, second)
        await tg.wait_for(lambda c: c in answers_in(tg, ANN)[1:], timeout=20)
        await settled(adapter, tg)
    assert len(answers_in(tg, ANN)) == 2
    assert len(tg.webhook_attempts) == 2  # the second photo was polled


async def test_an_update_the_database_could_not_take_is_sent_again_and_answered(
    tmp_path: Path, host: HostEmulator, tg: TelegramEmulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}{PATH}"
    config = telegram_config(tmp_path, host, tg, telegram_extra=webhook_settings(port, url, SECRET))
    record = Inbox.record
    failures = [OSError("disk I/O error")]

    async def record_or_fail(self: Inbox, platform: str, updates: Any) -> list[int]:
        if failures:
            raise failures.pop()
        return await record(self, platform, updates)

    monkeypatch.setattr(Inbox, "record", record_or_fail)
    async with running_adapter(config) as adapter:
        registered = await run_rehost("telegram", "set-webhook", "-c", str(config))
        assert registered.code == 0, registered.stderr
        tg.send_photo(ANN, ANN, samples.png(43, 33))
        await tg.wait_for_webhook(lambda a: a.ok, timeout=10)
        await settled(adapter, tg)
    refused, delivered = tg.webhook_attempts
    assert refused.status == 500 and refused.update_id == delivered.update_id
    assert (delivered.status, delivered.attempt) == (200, 2)
    assert len(answers_in(tg, ANN)) == 1


async def test_set_webhook_refuses_polling_mode_and_reports_telegram_s_refusal(
    tmp_path: Path, host: HostEmulator, tg: TelegramEmulator
) -> None:
    polling = telegram_config(tmp_path, host, tg)
    refused = await run_rehost("telegram", "set-webhook", "-c", str(polling))
    assert refused.code == 2
    assert "telegram.mode" in refused.stderr and "webhook" in refused.stderr
    assert tg.calls_to("setWebhook") == []

    # Telegram refuses a URL it cannot reach: one line, exit 1, no secret.
    public = "https://bot.example.org/tg/webhook"
    config = telegram_config(
        tmp_path, host, tg, telegram_extra=webhook_settings(free_port(), public, SECRET)
    )
    failed = await run_rehost("telegram", "set-webhook", "-c", str(config))
    assert failed.code == 1
    [line] = failed.stderr.strip().splitlines()[-1:]
    assert line.startswith("rehost: could not set the webhook: Telegram said: "), failed.stderr
    assert "bad webhook" in line.lower()
    assert SECRET not in failed.stdout + failed.stderr
    assert tg.webhook_info()["url"] == ""


async def test_an_album_spread_over_two_intake_processes_gets_one_reply(
    tmp_path: Path, host: HostEmulator, tg: TelegramEmulator, postgres_url: str
) -> None:
    ports = free_port(), free_port()
    backends = [f"http://127.0.0.1:{port}" for port in ports]
    photos = [samples.png(70 + i, 50) for i in range(3)]
    async with Balancer(backends) as lb:
        config = telegram_config(
            tmp_path,
            host,
            tg,
            storage_url=postgres_url,
            telegram_extra=webhook_settings(ports[0], lb.url + PATH, SECRET),
        )
        settings = load_config(config).telegram
        assert settings is not None
        other = dataclasses.replace(settings, webhook_listen=("127.0.0.1", ports[1]))
        intake: dict[str, Any] = {"intake": True, "work": False, "album_wait": 1.0}
        async with (
            running_adapter(config, **intake),
            running_adapter(config, settings=other, **intake),
            running_adapter(config, intake=False, work=True) as worker,
        ):
            registered = await run_rehost("telegram", "set-webhook", "-c", str(config))
            assert registered.code == 0, registered.stderr
            for photo in photos:
                tg.send_photo(ANN, ANN, photo, media_group_id="spread-album")
            await tg.wait_webhook_drained(timeout=10)
            await settled(worker, tg, timeout=30)
    [reply] = answers_in(tg, ANN)
    album = [image for image in host.images.values() if image.data in photos]
    assert len(album) == 3
    for image in album:
        assert image.viewer_url in reply.params["text"]
    posts = [f for f in lb.forwarded if f.method == "POST" and f.path == PATH]
    assert [f.status for f in posts] == [200, 200, 200]
    assert {f.backend for f in posts} == set(backends)


async def test_a_work_only_adapter_answers_what_an_intake_only_one_recorded(
    tmp_path: Path, host: HostEmulator, storage: Path | str
) -> None:
    async with TelegramEmulator(record_polling=True) as tg:
        telegram_world(tg)
        config = telegram_config(tmp_path, host, tg, storage_url=postgres(storage))
        async with running_adapter(config, intake=True, work=False) as intake:
            tg.send_photo(ANN, ANN, samples.png(33, 22))
            tg.send_photo(BOB, BOB, samples.png(34, 22))
            store = intake.core.store
            async with asyncio.timeout(10):
                # Recorded as jobs, and confirmed to Telegram (a later getUpdates offset).
                while tg.pending_updates or await store.db.fetchval(
                    "select count(*) from inbox where state = 'new'"
                ):
                    await asyncio.sleep(0.02)
            jobs = await store.db.fetchval("select count(*) from jobs where state = 'pending'")
        assert jobs == 2, "the intake-only adapter did no work"
        assert tg.calls_to("getUpdates") and not tg.calls_to("getFile")
        assert answers_in(tg, ANN) == []
        before = len(tg.calls)
        async with running_adapter(config, intake=False, work=True) as worker:
            await settled(worker, tg)
            polling = tg.world.updates.polling  # a getUpdates call waiting now
        done = tg.calls[before:]
        assert tg.server_errors == []
    assert not polling
    assert len(answers_in(tg, ANN)) == len(answers_in(tg, BOB)) == 1
    methods = {call.method for call in done}
    assert "getFile" in methods
    assert not methods & {"getUpdates", "setMyCommands", "getWebhookInfo"}, methods


async def test_a_work_only_adapter_does_not_listen(
    tmp_path: Path, host: HostEmulator, tg: TelegramEmulator
) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}{PATH}"
    config = telegram_config(tmp_path, host, tg, telegram_extra=webhook_settings(port, url, SECRET))
    async with running_adapter(config, intake=False, work=True):
        with socket.socket() as probe:  # the port is still free
            probe.bind(("127.0.0.1", port))
    async with running_adapter(config, intake=True, work=False):
        with socket.socket() as probe, pytest.raises(OSError):
            probe.bind(("127.0.0.1", port))
