"""Compose the core from configuration: one store, one HTTP client, the services, and the
job worker (running for as long as the core is open)."""

from __future__ import annotations

import asyncio
import contextlib
import functools
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

import httpx

from bot.communityadmins import CommunityAdmins
from bot.config import Config
from bot.cooldowns import Cooldowns
from bot.deletion import DeleteService
from bot.fetch import Fetcher
from bot.hosts.factory import build_client
from bot.httpclient import new_http_client
from bot.library import Library
from bot.linkguard import AddressGuard, new_link_client
from bot.moderation import Moderation
from bot.ownhost import OwnHosts, Sealer
from bot.ratelimit import RateLimit
from bot.service import RehostService
from bot.store import Store
from bot.uploader import RetryPolicy, Uploader
from bot.userlanguages import UserLanguages


@dataclass
class Core:
    """Everything an adapter needs: it submits to ``rehost``, delivers ``rehost.outbox``,
    reads and changes ``library``, and deletes through ``deleter``."""

    config: Config
    store: Store
    http: httpx.AsyncClient
    rehost: RehostService
    deleter: DeleteService

    @property
    def library(self) -> Library:
        return self.rehost.library

    @property
    def moderation(self) -> Moderation:
        return Moderation(self.store, self.deleter, self.rehost.outbox, self.rehost.wake_sender)

    @functools.cached_property
    def languages(self) -> UserLanguages:
        """The language each user last used (this process's cache of it)."""
        return UserLanguages(self.store.db)

    @functools.cached_property
    def community_admins(self) -> CommunityAdmins:
        """Where each user was last seen as an admin (this process's writer of it)."""
        return CommunityAdmins(self.store.db)

    def configured_auto_rehost(self, platform: str) -> tuple[int, ...]:
        """The chats (Telegram) or channels (Discord) the operator's configuration sets to
        rehost every image; read at each use, so a reloaded configuration applies at once."""
        if platform == "telegram" and self.config.telegram is not None:
            return self.config.telegram.auto_rehost_chats
        if platform == "discord" and self.config.discord is not None:
            return self.config.discord.auto_rehost_channels
        return ()


@asynccontextmanager
async def open_core(config: Config) -> AsyncIterator[Core]:
    store = await Store.open(config.storage.target)
    try:
        guard = AddressGuard(config.links.allowed_networks)
        # Users' image links get a client of their own, which reaches public addresses only.
        upload = config.upload
        async with (
            new_http_client(concurrency=upload.max_concurrency) as http,
            new_link_client(guard) as links,
        ):
            uploader = Uploader(
                [
                    build_client(host, http, upload.host_time_budget)
                    for host in config.ordered_hosts()
                ],
                RetryPolicy(upload.retry_attempts, upload.retry_backoff),
                cooldowns=Cooldowns(store),
            )
            fetcher = Fetcher(http, max_bytes=uploader.largest_accepted(), links=links)
            service = RehostService(
                store,
                uploader,
                fetcher,
                default_expiration=upload.default_expiration,
                max_concurrency=upload.max_concurrency,
                limit=RateLimit(upload.user_rate_limit, upload.user_rate_window),
                lease=config.storage.lease_seconds,
            )
            secret = config.communities.secret_key
            service.rehoster.own_hosts = OwnHosts(
                Sealer(secret) if secret and config.communities.allow_own_host else None,
                links,  # an own host's endpoint: public addresses only, as users' links
                uploader.policy,
                upload.host_time_budget,
            )
            worker = asyncio.create_task(service.worker.run(), name="job-worker")
            try:
                yield Core(config, store, http, service, DeleteService(store, http, links))
            finally:
                worker.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await worker
    finally:
        await store.close()
