"""Uploading as a real Chevereto 4.2 (and an ImgBB-style host) needs: the key both ways,
each host's own formats, cooldowns after flooding, a host's own size limit failed over,
a time budget per host, and only listed expiration values. Real clients and uploader over
HTTP against the host emulator in its real-server-like behaviour."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from bot.cooldowns import Cooldowns
from bot.errors import CoolingDown, HostTimedOut, RateLimited
from bot.expiration import Duration
from bot.hosts.base import HostClient, UploadSource
from bot.hosts.chevereto import CheveretoClient
from bot.hosts.imgbb import ImgbbClient
from bot.store import Store
from bot.uploader import RetryPolicy, Uploader
from sandbox import samples
from sandbox.hostemu import Fault, HostEmulator
from tests.conftest import ALL_KEYS, CHEV_KEY, IMGBB_KEY

NOW = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient() as client:
        yield client


def chev(emu: HostEmulator, http: httpx.AsyncClient, **options: Any) -> HostClient:
    endpoint = emu.chevereto_endpoint
    return CheveretoClient("chev", endpoint, CHEV_KEY, http, max_bytes=10 << 20, **options)


def zg(emu: HostEmulator, http: httpx.AsyncClient, **options: Any) -> HostClient:
    return ImgbbClient("zg", emu.imgbb_endpoint, IMGBB_KEY, http, max_bytes=32 << 20, **options)


def png(seed: int = 1, pad_to: int = 0) -> UploadSource:
    source = UploadSource.from_bytes(samples.png(seed, seed, pad_to=pad_to), f"{seed}.png")
    assert source is not None
    return source


def paths(emu: HostEmulator) -> list[str]:
    return [request.path for request in emu.uploads]


async def test_a_chevereto_free_site_reading_only_the_key_field_takes_the_upload(
    http: httpx.AsyncClient,
) -> None:
    async with HostEmulator(api_keys=ALL_KEYS, chevereto_key_from_header=False) as emu:
        image = await chev(emu, http).upload(png(), None)
    assert image.viewer_url
    assert "key" not in emu.uploads[0].query, "never in the URL"


async def test_each_host_gets_only_the_formats_it_takes(http: httpx.AsyncClient) -> None:
    tiff = UploadSource.from_bytes(samples.tiff(), "scan.tiff")
    avif = UploadSource.from_bytes(samples.avif(), "photo.avif")
    heic = UploadSource.from_bytes(samples.heic(), "photo.heic")
    assert tiff is not None and avif is not None and heic is not None
    async with HostEmulator(api_keys=ALL_KEYS) as emu:
        uploader = Uploader([chev(emu, http), zg(emu, http)], RetryPolicy(2, 0.01))
        tiff_outcome = await uploader.upload(tiff, None)
        avif_outcome = await uploader.upload(avif, None)
        heic_outcome = await uploader.upload(heic, None)
    # Chevereto 4 refuses TIFF: it goes to the ImgBB-style host without a try on Chevereto.
    assert tiff_outcome.image is not None and tiff_outcome.image.host == "zg"
    assert avif_outcome.image is not None and avif_outcome.image.host == "chev"
    assert heic_outcome.image is None
    assert "HEIC files are not taken by any configured host" in str(heic_outcome.reason())
    assert paths(emu) == ["/1/upload", "/api/1/upload"], "nothing sent that would be refused"


async def test_an_operator_can_say_which_formats_a_host_takes(http: httpx.AsyncClient) -> None:
    tiff = UploadSource.from_bytes(samples.tiff(), "scan.tiff")
    assert tiff is not None
    formats = ["jpeg", "png", "tiff"]
    async with HostEmulator(api_keys=ALL_KEYS, chevereto_formats=formats) as emu:
        client = chev(emu, http, formats=frozenset(formats))
        outcome = await Uploader([client]).upload(tiff, None)
    assert outcome.image is not None and outcome.image.host == "chev"


async def test_a_flooded_host_cools_down_and_the_work_goes_on_elsewhere(
    http: httpx.AsyncClient, tmp_path: Path
) -> None:
    store = await Store.open(tmp_path / "rehost.db")
    async with HostEmulator(api_keys=ALL_KEYS, flood_per_minute=1) as emu:
        uploader = Uploader(
            [chev(emu, http), zg(emu, http)], RetryPolicy(3, 0.01), cooldowns=Cooldowns(store)
        )
        first = await uploader.upload(png(1), None)
        flooded = await uploader.upload(png(2), None)
        after = await uploader.upload(png(3), None)
        # Another process on the same database leaves the host alone too.
        other = Uploader([chev(emu, http), zg(emu, http)], cooldowns=Cooldowns(store))
        elsewhere = await other.upload(png(4), None)
    assert first.image is not None and first.image.host == "chev"
    assert flooded.image is not None and flooded.image.host == "zg"
    assert [type(f) for f in flooded.failures] == [RateLimited], "no retry on the flood"
    assert after.image is not None and after.image.host == "zg"
    assert elsewhere.image is not None and elsewhere.image.host == "zg"
    assert isinstance(after.failures[0], CoolingDown)
    # The flooded request was the last one the cooling host saw.
    assert paths(emu) == ["/api/1/upload", "/api/1/upload", "/1/upload", "/1/upload", "/1/upload"]
    stats = await store.stats()
    assert set(stats["cooldowns"]) == {"chev"}
    assert stats["cooldowns"]["chev"]["until"] - time.time() > 50  # "per minute"
    await store.close()


async def test_when_every_host_is_cooling_down_the_answer_says_when_to_try_again(
    http: httpx.AsyncClient,
) -> None:
    async with HostEmulator(api_keys=ALL_KEYS) as emu:
        cooldowns = Cooldowns()
        await cooldowns.cool("chev", 300, "flooding")
        await cooldowns.cool("zg", 120, "rate limit")
        outcome = await Uploader([chev(emu, http), zg(emu, http)], cooldowns=cooldowns).upload(
            png(), None
        )
    assert outcome.image is None
    assert str(outcome.reason()) == (
        "every image host is resting after rate limiting; try again in 2 minutes"
    )
    assert emu.uploads == []


async def test_a_hosts_own_size_limit_fails_over(http: httpx.AsyncClient) -> None:
    async with HostEmulator(api_keys=ALL_KEYS, chevereto_max_bytes=2048) as emu:
        outcome = await Uploader([chev(emu, http), zg(emu, http)]).upload(png(5, 4096), None)
    assert outcome.image is not None and outcome.image.host == "zg"
    assert "too large for chev" in outcome.failures[0].user_message


async def test_an_empty_source_after_sending_a_file_means_its_size_and_fails_over(
    http: httpx.AsyncClient,
) -> None:
    async with HostEmulator(api_keys=ALL_KEYS, chevereto_post_max_bytes=1024) as emu:
        outcome = await Uploader([chev(emu, http), zg(emu, http)]).upload(png(6, 4096), None)
    assert outcome.image is not None and outcome.image.host == "zg"
    assert "probably refused its size" in outcome.failures[0].user_message


async def test_a_hung_host_gets_its_time_budget_and_two_tries_at_most(
    http: httpx.AsyncClient,
) -> None:
    async with HostEmulator(api_keys=ALL_KEYS) as emu:
        emu.script(Fault("slow", delay=30), times=5, dialect="chevereto")
        slow = chev(emu, http, timeout=0.3, time_budget=5.0)
        outcome = await Uploader([slow, zg(emu, http)], RetryPolicy(5, 0.01)).upload(png(7), None)
    assert outcome.image is not None and outcome.image.host == "zg"
    timeouts = [f for f in outcome.failures if isinstance(f, HostTimedOut)]
    assert len(timeouts) == 2
    assert paths(emu).count("/api/1/upload") == 2, "a timed-out upload is retried once at most"


async def test_the_time_budget_bounds_a_host_that_keeps_failing(http: httpx.AsyncClient) -> None:
    async with HostEmulator(api_keys=ALL_KEYS) as emu:
        emu.script(Fault("slow", delay=30), times=5, dialect="chevereto")
        slow = chev(emu, http, timeout=60.0, time_budget=0.5)
        outcome = await Uploader([slow, zg(emu, http)], RetryPolicy(5, 0.01)).upload(png(8), None)
    assert outcome.image is not None and outcome.image.host == "zg"
    assert paths(emu).count("/api/1/upload") == 1
    assert "did not answer in time" in outcome.failures[0].user_message


@pytest.mark.parametrize("version", ["4.1", "4.2"])
async def test_only_listed_expiration_values_are_sent_so_every_version_agrees(
    http: httpx.AsyncClient, version: str
) -> None:
    async with HostEmulator(api_keys=ALL_KEYS, chevereto_version=version) as emu:  # type: ignore[arg-type]
        image = await chev(emu, http).upload(png(9), Duration(seconds=10 * 3600), NOW)
    # 10 hours is not on Chevereto's list: the longest listed value not longer is 6 hours,
    # which both 4.1 (list only) and 4.2 (any ISO duration) honour the same way.
    assert emu.uploads[0].form["expiration"] == "PT6H"
    [hosted] = emu.images.values()
    assert hosted.expires_at is not None and image.expires_at is not None
