"""Image links on Telegram, end to end: real python-telegram-bot against the Bot API
emulator, the real core (and its guarded link client, real httpx) against a stand-in web
site and the host emulator.

The refusals never send traffic beyond loopback: a spy below the guard records every
connection the bot attempts, and the stand-in sites record every request they receive.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

import httpcore
import pytest

from sandbox import samples
from sandbox.hostemu import HostEmulator
from sandbox.telegram_api import SentCall, TelegramEmulator
from sandbox.weblinks import WebSite
from tests.telegram_harness import (
    ANN,
    QUIET_GROUP,
    running_adapter,
    telegram_config,
)

CAT = samples.png(6, 4, (200, 120, 10))
DOG = samples.png(5, 5, (20, 60, 220))


@pytest.fixture
def connections(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, int]]:
    """Every TCP connection httpx (through httpcore) attempts in this test, in order."""
    attempts: list[tuple[str, int]] = []
    real = httpcore.AnyIOBackend.connect_tcp

    async def spy(self: httpcore.AnyIOBackend, host: str, port: int, *args: Any, **kw: Any) -> Any:
        attempts.append((host, port))
        return await real(self, host, port, *args, **kw)

    monkeypatch.setattr(httpcore.AnyIOBackend, "connect_tcp", spy)
    return attempts


def links_config(
    tmp_path: Path, host: HostEmulator, tg: TelegramEmulator, allowed: Iterable[str]
) -> Path:
    path = telegram_config(tmp_path, host, tg)
    networks = ", ".join(f'"{network}"' for network in allowed)
    path.write_text(path.read_text() + f"\n[links]\nallowed_networks = [{networks}]\n")
    return path


def sent_to(chat: int, after: int | None = None) -> Any:
    """A message the bot sent to ``chat`` (replying to a message later than ``after``)."""

    def match(call: SentCall) -> bool:
        if call.method != "sendMessage" or not call.ok or int(call.params["chat_id"]) != chat:
            return False
        replied = int(call.params.get("reply_parameters", {}).get("message_id", 0))
        return after is None or replied > after

    return match


async def test_a_link_sent_in_a_private_chat_is_rehosted(
    tmp_path: Path, host: HostEmulator, tg: TelegramEmulator
) -> None:
    async with WebSite("127.0.0.1") as site:
        site.add_image("/pics/cat.png", CAT)
        link = site.url("/pics/cat.png")
        async with running_adapter(links_config(tmp_path, host, tg, ["127.0.0.1/32"])):
            sent = tg.send_text(ANN, ANN, f"{link} 1d")
            reply = await tg.wait_for(sent_to(ANN), timeout=10)
    [image] = host.images.values()
    assert image.data == CAT and image.expiration_sent == "P1D"
    text = reply.params["text"]
    assert image.viewer_url in text and image.url in text and image.delete_url in text
    assert reply.params["link_preview_options"]["is_disabled"]
    assert reply.params["reply_parameters"]["message_id"] == sent["message_id"]
    assert site.paths() == ["/pics/cat.png"]


async def test_upload_with_a_link_in_a_group_posts_links_and_sends_the_delete_link_privately(
    tmp_path: Path, host: HostEmulator, tg: TelegramEmulator
) -> None:
    async with WebSite("127.0.0.1") as site:
        site.add_image("/cat.png", CAT)
        site.add_image("/dog", DOG, content_type="application/octet-stream")
        async with running_adapter(links_config(tmp_path, host, tg, ["127.0.0.1/32"])):
            tg.send_text(QUIET_GROUP, ANN, f"/upload {site.url('/cat.png')}")
            public = await tg.wait_for(sent_to(QUIET_GROUP), timeout=10)
            private = await tg.wait_for(sent_to(ANN))
            # /upload in reply to a message that holds a link
            quoted = tg.send_text(QUIET_GROUP, ANN, f"have a look: {site.url('/dog')}")
            tg.send_text(QUIET_GROUP, ANN, "/upload", reply_to_message_id=quoted["message_id"])
            second = await tg.wait_for(sent_to(QUIET_GROUP, quoted["message_id"] - 1), timeout=10)
    cat, dog = host.images.values()
    assert cat.data == CAT and dog.data == DOG
    assert cat.viewer_url in public.params["text"] and cat.url in public.params["text"]
    assert cat.delete_url and cat.delete_url not in str(public.params)
    assert cat.delete_url in private.params["text"]
    assert dog.viewer_url in second.params["text"]
    assert second.params["reply_parameters"]["message_id"] == quoted["message_id"]
    assert dog.delete_url and dog.delete_url not in str(second.params)


async def test_private_addresses_and_web_pages_are_refused_plainly_and_never_reached(
    tmp_path: Path,
    host: HostEmulator,
    tg: TelegramEmulator,
    connections: list[tuple[str, int]],
) -> None:
    # Only 127.0.0.2 (standing for a public site) is allowed: 127.0.0.1 is not.
    async with (
        WebSite("127.0.0.2") as site,
        WebSite("127.0.0.1") as inside,
        WebSite("::1") as inside6,
    ):
        for target in (inside, inside6):
            target.add_image("/secret.png", CAT)
        site.add_redirect("/to-loopback", inside.url("/secret.png"))
        site.add_redirect("/to-ten", "http://10.0.0.1/secret.png")
        site.add_redirect("/to-v6", inside6.url("/secret.png"))
        site.add_page("/gallery")
        config = links_config(tmp_path, host, tg, ["127.0.0.2/32"])
        replies = {}
        async with running_adapter(config):
            for path in ("/to-loopback", "/to-ten", "/to-v6", "/gallery"):
                sent = tg.send_text(ANN, ANN, site.url(path))
                reply = await tg.wait_for(sent_to(ANN, sent["message_id"] - 1), timeout=10)
                replies[path] = reply.params["text"]
            # a direct link to a refused address, too
            sent = tg.send_text(ANN, ANN, inside.url("/secret.png"))
            direct = await tg.wait_for(sent_to(ANN, sent["message_id"] - 1), timeout=10)
    private = "leads to a private or local network address"
    for path in ("/to-loopback", "/to-ten", "/to-v6"):
        assert private in replies[path], replies[path]
    assert private in direct.params["text"]
    assert "that link is a web page, not an image" in replies["/gallery"]
    assert "Error" not in str(replies) and "Traceback" not in str(replies)
    # Nothing reached the refused addresses: no request, and no connection attempted.
    assert inside.requests == [] and inside6.requests == []
    refused = {("10.0.0.1", 80), ("::1", inside6.port), ("127.0.0.1", inside.port)}
    assert not refused & set(connections)
    assert ("127.0.0.2", site.port) in connections  # the spy saw the allowed hops
    assert site.paths() == ["/to-loopback", "/to-ten", "/to-v6", "/gallery"]
    assert host.images == {}
