"""A real RehostService over a temporary database, aimed at host emulators."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

from bot.deletion import DeleteService
from bot.fetch import Fetcher
from bot.hosts.base import HostClient
from bot.hosts.chevereto import CheveretoClient
from bot.hosts.imgbb import ImgbbClient
from bot.ratelimit import RateLimit
from bot.service import RehostService
from bot.store import Store
from bot.uploader import RetryPolicy, Uploader
from sandbox.hostemu import HostEmulator
from tests.conftest import CHEV_KEY, IMGBB_KEY


@dataclass
class Harness:
    service: RehostService
    deleter: DeleteService
    store: Store
    http: httpx.AsyncClient


def clients_for(
    emu: HostEmulator, http: httpx.AsyncClient, names: tuple[str, ...]
) -> list[HostClient]:
    made: dict[str, HostClient] = {
        "chev": CheveretoClient("chev", emu.chevereto_endpoint, CHEV_KEY, http, max_bytes=8 << 20),
        "zg": ImgbbClient("zg", emu.imgbb_endpoint, IMGBB_KEY, http, max_bytes=8 << 20),
    }
    return [made[name] for name in names]


@asynccontextmanager
async def service_for(
    emu: HostEmulator,
    db_path: Path | str | None,
    *,
    hosts: tuple[str, ...] = ("chev",),
    max_bytes: int = 8 << 20,
    rate_limit: int = 100,
    spool_threshold: int = 1 << 20,
    spool_dir: Path | None = None,
    lease: float = 15.0,
) -> AsyncIterator[Harness]:
    store = await Store.open(db_path)
    async with httpx.AsyncClient() as http:
        uploader = Uploader(clients_for(emu, http, hosts), RetryPolicy(2, 0.01))
        fetcher = Fetcher(
            http, max_bytes=max_bytes, spool_threshold=spool_threshold, spool_dir=spool_dir
        )
        service = RehostService(
            store, uploader, fetcher, limit=RateLimit(rate_limit, 600.0), lease=lease
        )
        try:
            yield Harness(service, DeleteService(store, http), store, http)
        finally:
            await store.close()
