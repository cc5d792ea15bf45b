"""Image links on Discord, end to end: real discord.py against the Discord emulator, the
real core (and its guarded link client, real httpx) against a stand-in web site and the
host emulator.

The refusals never send traffic beyond loopback: a spy below the guard records every
connection the bot attempts, and the stand-in sites record every request they receive.
"""

from __future__ import annotations

import dataclasses
import ipaddress
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpcore
import pytest

from adapters.discord.bot import DiscordAdapter
from bot.app import open_core
from bot.config import Config, LinkSettings
from sandbox import samples
from sandbox.discord_api import DiscordEmulator, RestCall
from sandbox.hostemu import HostEmulator
from sandbox.weblinks import WebSite
from tests.test_discord_adapter import (
    ANN,
    APP_ID,
    CAT,
    EPHEMERAL,
    GUILD,
    OTHER,
    SUPPRESS_EMBEDS,
    Json,
    _populate,
    assert_nothing_leaked,
    bot_messages,
    make_config,
    public_messages,
    running,
    upload_ids,
    webhook,
)

RED = samples.png(4, 4, (230, 10, 10))
GREEN = samples.png(4, 4, (10, 230, 10))
BLUE = samples.png(4, 4, (10, 10, 230))
PRIVATE = "leads to a private or local network address"


@pytest.fixture
async def dc() -> AsyncIterator[DiscordEmulator]:
    async with DiscordEmulator(application_id=APP_ID) as emulator:
        _populate(emulator)
        yield emulator
        assert emulator.internal_errors == []


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


def with_links(config: Config, allowed: Sequence[str]) -> Config:
    networks = tuple(ipaddress.ip_network(network) for network in allowed)
    return dataclasses.replace(config, links=LinkSettings(allowed_networks=networks))


@asynccontextmanager
async def bot_allowing(
    tmp_path: Path, host_emu: HostEmulator, dc: DiscordEmulator, allowed: Sequence[str]
) -> AsyncIterator[DiscordAdapter]:
    config = with_links(make_config(tmp_path, host_emu, dc), allowed)
    async with open_core(config) as core, running(core) as adapter:
        yield adapter


def answered(interaction: Json) -> Callable[[RestCall], bool]:
    """The interaction's callback (its immediate answer) was received."""
    prefix = f"/interactions/{interaction['id']}/"
    return lambda call: call.path.startswith(prefix)


def url_option(link: str) -> Json:
    return {"name": "url", "type": 3, "value": link}


async def upload_url(dc: DiscordEmulator, link: str) -> Json:
    """``/upload url:<link>``; returns the answer (the edited "thinking" message)."""
    interaction = await dc.slash_command("upload", ANN, OTHER, GUILD, options=[url_option(link)])
    await dc.wait_for(webhook("PATCH", interaction["token"], "/messages/@original"))
    return public_messages(dc, OTHER)[-1]  # commands run one after another here


async def test_upload_url_rehosts_an_image_link(
    tmp_path: Path, host_emu: HostEmulator, dc: DiscordEmulator
) -> None:
    async with WebSite("127.0.0.1") as site:
        site.add_image("/photos/red.png", RED)
        site.add_redirect("/r", "/photos/red.png", status=301)
        async with bot_allowing(tmp_path, host_emu, dc, ["127.0.0.1/32"]):
            interaction = await dc.slash_command(
                "upload", ANN, OTHER, GUILD, options=[url_option(site.url("/r"))]
            )
            await dc.wait_for(webhook("POST", interaction["token"]))
    [hosted] = host_emu.images.values()
    assert hosted.data == RED
    assert site.paths() == ["/r", "/photos/red.png"]
    public, private = bot_messages(dc, OTHER)
    assert public["flags"] == 0
    assert hosted.viewer_url in public["content"] and hosted.url in public["content"]
    assert private["flags"] == EPHEMERAL | SUPPRESS_EMBEDS
    assert f"<{hosted.delete_url}>" in private["content"]
    assert upload_ids(private) == upload_ids(public)
    assert_nothing_leaked(dc, host_emu)


async def test_the_context_menu_leaves_the_bots_own_answers_alone(
    tmp_path: Path, host_emu: HostEmulator, dc: DiscordEmulator
) -> None:
    """The bot's messages hold its uploads' links and, in DMs, delete links: a Chevereto
    delete link deletes the image when requested, so they are never fetched."""
    async with WebSite("127.0.0.1") as site:
        site.add_image("/red.png", RED)
        async with bot_allowing(tmp_path, host_emu, dc, ["127.0.0.1/32"]):
            answer = await upload_url(dc, site.url("/red.png"))
            served = len(host_emu.requests)
            interaction = await dc.message_command("Rehost images", ANN, OTHER, answer, GUILD)
            await dc.wait_for(answered(interaction))
            [refusal] = dc.interaction_responses(interaction["id"])
    assert refusal["data"]["content"] == "There is no image or image link to rehost there."
    assert refusal["flags"] == EPHEMERAL
    assert len(host_emu.images) == 1 and site.paths() == ["/red.png"]
    assert len(host_emu.requests) == served  # none of its links was requested


async def test_upload_without_a_file_or_a_link_is_answered_plainly(
    tmp_path: Path, host_emu: HostEmulator, dc: DiscordEmulator
) -> None:
    async with bot_allowing(tmp_path, host_emu, dc, []):
        commands = {c["name"]: c for c in dc.registered_commands(GUILD)}
        options = {o["name"]: o for o in commands["upload"]["options"]}
        assert not options["file"].get("required") and not options["url"].get("required")
        answers = []
        for options_given in ([], [url_option("not a link")]):
            interaction = await dc.slash_command("upload", ANN, OTHER, GUILD, options=options_given)
            await dc.wait_for(answered(interaction))
            [answer] = dc.interaction_responses(interaction["id"])
            answers.append(answer)
    nothing, not_a_link = answers
    assert nothing["type"] == 4 and nothing["flags"] == EPHEMERAL
    assert nothing["data"]["content"] == "Give /upload a file, or a url: a link to an image."
    assert not_a_link["data"]["content"].startswith("That url is not a web link.")
    assert host_emu.images == {}


async def test_the_context_menu_rehosts_image_links_in_the_text_and_embeds(
    tmp_path: Path, host_emu: HostEmulator, dc: DiscordEmulator
) -> None:
    """A pasted Discord attachment link that has expired is renewed first; an image embed
    of a link in the text is the same image; a rich embed's image is one more."""
    async with WebSite("127.0.0.1") as site:
        red, green = site.add_image("/red.png", RED), site.add_image("/green", GREEN)
        async with bot_allowing(tmp_path, host_emu, dc, ["127.0.0.1/32"]) as bot:
            # Posted long ago: the pasted link has expired.
            old = dc.add_attachment(BLUE, "blue.png", "image/png", channel_id=OTHER, expires_in=-60)
            image_embed = {"type": "image", "url": red, "thumbnail": {"url": red}}
            rich = {"type": "rich", "title": "G", "image": {"url": green}}
            posted = await dc.send_message(
                OTHER,
                CAT,
                f"look {red} and this old one: {old['url']}",
                guild_id=GUILD,
                embeds=[image_embed, rich],
            )
            interaction = await dc.message_command("Rehost images", ANN, OTHER, posted, GUILD)
            await dc.wait_for(webhook("POST", interaction["token"]))
            mine = await bot.client.core.library.live_uploads("discord", str(ANN))
    assert sorted(image.data for image in host_emu.images.values()) == sorted([RED, GREEN, BLUE])
    assert site.paths() == ["/red.png", "/green"]
    assert any(call.path == "/attachments/refresh-urls" for call in dc.calls)
    public, private = bot_messages(dc, OTHER)
    assert public["content"].startswith("Rehosted 3 images:")
    assert len(upload_ids(public)) == 3 and private["flags"] & EPHEMERAL
    assert len(mine) == 3  # the one who asked owns them
    assert_nothing_leaked(dc, host_emu)


async def test_private_addresses_and_web_pages_are_refused_plainly_and_never_reached(
    tmp_path: Path,
    host_emu: HostEmulator,
    dc: DiscordEmulator,
    connections: list[tuple[str, int]],
) -> None:
    # Only 127.0.0.2 (standing for a public site) is allowed: 127.0.0.1 is not.
    async with (
        WebSite("127.0.0.2") as site,
        WebSite("127.0.0.1") as inside,
        WebSite("::1") as inside6,
    ):
        for target in (inside, inside6):
            target.add_image("/secret.png", RED)
        site.add_redirect("/to-loopback", inside.url("/secret.png"))
        site.add_redirect("/to-ten", "http://10.0.0.1/secret.png")
        site.add_redirect("/to-v6", inside6.url("/secret.png"), status=307)
        site.add_page("/gallery")
        answers = {}
        async with bot_allowing(tmp_path, host_emu, dc, ["127.0.0.2/32"]):
            for path in ("/to-loopback", "/to-ten", "/to-v6", "/gallery"):
                answers[path] = await upload_url(dc, site.url(path))
    for path in ("/to-loopback", "/to-ten", "/to-v6"):
        assert PRIVATE in answers[path]["content"], answers[path]["content"]
    assert "that link is a web page, not an image" in answers["/gallery"]["content"]
    # Nothing reached the refused addresses: no request, and no connection attempted.
    assert inside.requests == [] and inside6.requests == []
    refused = {("10.0.0.1", 80), ("::1", inside6.port), ("127.0.0.1", inside.port)}
    assert not refused & set(connections)
    assert ("127.0.0.2", site.port) in connections
    assert site.paths() == ["/to-loopback", "/to-ten", "/to-v6", "/gallery"]
    assert host_emu.images == {}
