"""Host clients in process: the variations real servers show, deletion, and log hygiene."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from bot.errors import CredentialsError, ExpirationError, HostLimit
from bot.expiration import Duration
from bot.hosts.base import UploadSource
from bot.hosts.chevereto import CheveretoClient, DeleteOutcome, delete_by_link
from bot.hosts.imgbb import ImgbbClient
from bot.logsafety import Redactor, configure_logging
from sandbox import samples
from sandbox.hostemu import HostEmulator
from tests.conftest import ALL_KEYS, CHEV_KEY, IMGBB_KEY


def source(data: bytes | None = None) -> UploadSource:
    made = UploadSource.from_bytes(data or samples.png(2, 2), "shot.png")
    assert made is not None
    return made


def chevereto(emu: HostEmulator, http: httpx.AsyncClient) -> CheveretoClient:
    return CheveretoClient("chev", emu.chevereto_endpoint, CHEV_KEY, http, max_bytes=1 << 20)


def imgbb(emu: HostEmulator, http: httpx.AsyncClient) -> ImgbbClient:
    return ImgbbClient("zg", emu.imgbb_endpoint, IMGBB_KEY, http, max_bytes=1 << 20)


async def test_moderated_upload_has_no_direct_link() -> None:
    async with HostEmulator(api_keys=ALL_KEYS, moderation=True) as emu, httpx.AsyncClient() as http:
        image = await chevereto(emu, http).upload(source(), None)
    assert image.url is None
    assert image.viewer_url.startswith(emu.base_url)


async def test_chevereto_free_gives_no_delete_link() -> None:
    async with (
        HostEmulator(api_keys=ALL_KEYS, chevereto_delete_links=False) as emu,
        httpx.AsyncClient() as http,
    ):
        image = await chevereto(emu, http).upload(source(), None)
    assert image.delete_url is None
    assert image.url is not None


@pytest.mark.parametrize("as_strings", [True, False])
async def test_imgbb_numbers_as_strings_or_integers(as_strings: bool) -> None:
    async with (
        HostEmulator(api_keys=ALL_KEYS, imgbb_numbers_as_strings=as_strings) as emu,
        httpx.AsyncClient() as http,
    ):
        before = datetime.now(UTC).replace(microsecond=0)
        image = await imgbb(emu, http).upload(source(), Duration(seconds=600))
    assert image.expires_at is not None
    assert before + timedelta(seconds=600) <= image.expires_at
    assert image.expires_at <= before + timedelta(seconds=602)


async def test_expiry_the_host_cannot_honour_is_refused_before_sending(
    host_emu: HostEmulator,
) -> None:
    async with httpx.AsyncClient() as http:
        with pytest.raises(ExpirationError, match="5 minutes"):
            await chevereto(host_emu, http).upload(source(), Duration(seconds=120))
        with pytest.raises(ExpirationError, match="180 days"):
            await imgbb(host_emu, http).upload(source(), Duration(months=7))
    assert host_emu.uploads == []


async def test_the_client_refuses_files_over_its_limit_locally(host_emu: HostEmulator) -> None:
    async with httpx.AsyncClient() as http:
        small = CheveretoClient("c", host_emu.chevereto_endpoint, CHEV_KEY, http, max_bytes=10)
        with pytest.raises(HostLimit, match="accepts at most 10 B"):
            await small.upload(source(), None)
    assert host_emu.uploads == []


async def test_denied_key_is_a_credentials_error() -> None:
    async with (
        HostEmulator(api_keys=ALL_KEYS, denied_keys=(CHEV_KEY,)) as emu,
        httpx.AsyncClient() as http,
    ):
        with pytest.raises(CredentialsError, match="does not allow uploads"):
            await chevereto(emu, http).upload(source(), None)


async def test_delete_link_deletes_once_then_reports_gone(host_emu: HostEmulator) -> None:
    async with httpx.AsyncClient() as http:
        image = await chevereto(host_emu, http).upload(source(), None)
        assert image.delete_url is not None and image.url is not None
        assert await delete_by_link(http, image.delete_url, "chev") is DeleteOutcome.DELETED
        assert (await http.get(image.url)).status_code == 404
        assert await delete_by_link(http, image.delete_url, "chev") is DeleteOutcome.ALREADY_GONE
    assert host_emu.images[image.image_id].deleted


async def test_no_secret_reaches_the_logs_even_at_debug(
    host_emu: HostEmulator, caplog: pytest.LogCaptureFixture
) -> None:
    redactor = configure_logging(logging.DEBUG, secrets=ALL_KEYS)
    caplog.handler.setFormatter(logging.Formatter("%(name)s %(message)s"))
    from bot.logsafety import protect_handlers

    protect_handlers([caplog.handler], ALL_KEYS)
    caplog.set_level(logging.DEBUG)
    async with httpx.AsyncClient() as http:
        image = await chevereto(host_emu, http).upload(source(), None)
        await imgbb(host_emu, http).upload(source(), None)
        assert image.delete_url is not None
        logging.getLogger("test").warning("leak attempt %s %s", CHEV_KEY, image.delete_url)
        await delete_by_link(http, image.delete_url, "chev")
    text = "\n".join(caplog.handler.format(r) for r in caplog.records)
    assert "HTTP Request: POST" in text, "httpx's own request lines are captured"
    assert CHEV_KEY not in text and IMGBB_KEY not in text
    token = image.delete_url.rsplit("/", 1)[1]
    assert token not in text
    assert redactor("/bot123456:AAabc_def-ghi/getMe") == "/bot[redacted]/getMe"
    logging.getLogger().setLevel(logging.WARNING)


def test_redactor_masks_imgbb_delete_links() -> None:
    redactor = Redactor()
    link = "https://zg.is/i/2ndCYJK/670a7e48ddcb85ac340c717a41047e5c"
    assert "670a7e48" not in redactor(f"see {link} now")
