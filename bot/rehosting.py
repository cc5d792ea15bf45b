"""Rehosting one job: resolve, fetch, dedup, upload. Nothing is written here: the outcome
goes back to the worker, which records it and the job's end in one transaction."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import time
from dataclasses import dataclass
from typing import Any

from bot import metrics, quotas
from bot.community import Communities, CommunitySettings
from bot.convert import ConversionError, convert, target_for
from bot.dedup import Dedup, Reuse
from bot.errors import ExpirationError, SourceUnavailable
from bot.expiration import Duration, parse_duration
from bot.fetch import Fetcher, FetchProblem
from bot.hosts.base import UploadSource, record_fields
from bot.i18n import N_, Said, joined
from bot.keyleases import KeyLeases
from bot.ownhost import OWN_HOST, OwnHosts
from bot.requests import Resolver, SourceRef
from bot.store import ChatSettings, JobRecord, Store, UploadRecord, now_utc
from bot.uploader import Uploader


@dataclass(frozen=True)
class JobOutcome:
    """What became of one job: an upload to record (``new``), an existing record the owner
    gets back (``existing``), or an error for the user."""

    source: SourceRef
    new: dict[str, Any] | None = None
    existing: UploadRecord | None = None
    dedup: bool = False
    error: Said | None = None
    note: Said | None = None  # how it was handled, for the answer ("converted ...")
    # The lease on the bytes' key (key, holder), released when the upload is recorded.
    held_key: tuple[str, str] | None = None


class Rehoster:
    def __init__(
        self,
        store: Store,
        uploader: Uploader,
        fetcher: Fetcher,
        dedup: Dedup,
        resolvers: dict[str, Resolver],
        keys: KeyLeases,
    ) -> None:
        self.store = store
        self.uploader = uploader
        self.fetcher = fetcher
        self.dedup = dedup
        self.resolvers = resolvers
        self.keys = keys
        self.communities = Communities(store.db)
        self.own_hosts: OwnHosts | None = None  # set when the operator allows own hosts

    async def run(self, job: JobRecord, holder: str) -> JobOutcome:
        """Rehost the job's image; ``holder`` names who works it (for the key lease)."""
        ref = SourceRef.from_json(job.source)
        try:
            duration = parse_duration(job.expiration) if job.expiration else None
        except ExpirationError as error:
            return JobOutcome(ref, error=error.said)
        chat = await self.store.chat_settings(job.platform, job.chat_id) if job.chat_id else None
        community = await self.communities.settings(job.platform, job.community_id)
        hosts = self._hosts(chat, community)
        uploader = self._uploader(community, hosts)
        duration, capped = _capped(duration, community)
        # Hidden by its sender (a spoiler), or from a chat or community marking all NSFW.
        hidden = ref.spoiler or bool(chat and chat.nsfw) or bool(community.nsfw)
        # An own host's uploads are the community's: never reused from elsewhere.
        reusable = uploader is self.uploader
        if ref.source_key is not None and reusable:
            known = await self.dedup.find(
                job.platform,
                job.owner_id,
                hosts,
                duration,
                source_key=ref.source_key,
                hidden=hidden,
            )
            if known is not None:
                metrics.DEDUP_HITS.labels(job.platform, "source").inc()
                return _reused(ref, known)
        fetched = await self._fetch(job.platform, ref)
        if isinstance(fetched, FetchProblem):
            return JobOutcome(ref, error=fetched.said)
        # The same bytes in another worker right now: wait for its record and reuse it.
        held = f"sha256:{fetched.sha256}"
        try:
            await self.keys.acquire(held, holder)
            reused = None
            if reusable:
                reused = await self.dedup.find(
                    job.platform,
                    job.owner_id,
                    hosts,
                    duration,
                    sha256=fetched.sha256,
                    hidden=hidden,
                )
            if reused is not None:
                metrics.DEDUP_HITS.labels(job.platform, "bytes").inc()
                await self.keys.release(held, holder)
                return _reused(ref, reused)
            refused = await quotas.bytes_refusal(
                self.store.db,
                job.platform,
                job.community_id,
                community.quota_bytes_per_day,
                fetched.size,
                time.time(),
            )
            if refused is not None:  # its size, now known, would pass the community's quota
                metrics.refused(job.platform, "quota_bytes", 1)
                await self.keys.release(held, holder)
                return JobOutcome(ref, error=refused)
            if hidden:
                fetched = dataclasses.replace(fetched, nsfw=True)
            if uploader is not self.uploader:
                hosts = (OWN_HOST, *hosts)
            outcome = await self._upload_or_convert(ref, fetched, duration, hosts, uploader)
        except BaseException:
            with contextlib.suppress(Exception):
                await asyncio.shield(self.keys.release(held, holder))
            raise
        finally:
            fetched.discard()
        if capped is not None and outcome.new is not None:
            outcome = dataclasses.replace(outcome, note=_join(capped, outcome.note))
        # Released by the transaction that records the upload (bot.worker.Answering).
        return dataclasses.replace(outcome, held_key=(held, holder))

    async def _upload_or_convert(
        self,
        ref: SourceRef,
        fetched: UploadSource,
        duration: Duration | None,
        hosts: tuple[str, ...],
        uploader: Uploader,
    ) -> JobOutcome:
        """Upload as it is, or converted when none of the hosts takes its format."""
        accepted = uploader.formats(hosts)
        target = None
        if fetched.image_type.name not in accepted:
            target = target_for(fetched.image_type, accepted)
        if target is None:
            return await self._upload(ref, fetched, duration, hosts, uploader)
        try:
            converted = await convert(fetched, target)
        except ConversionError as error:
            return JobOutcome(ref, error=error.said)
        try:
            outcome = await self._upload(ref, converted.source, duration, hosts, uploader)
        finally:
            converted.source.discard()
        if outcome.new is not None:  # recognised by the bytes the user sent
            outcome.new["sha256"] = fetched.sha256
        return dataclasses.replace(outcome, note=converted.note)

    async def _upload(
        self,
        ref: SourceRef,
        fetched: UploadSource,
        duration: Duration | None,
        hosts: tuple[str, ...],
        uploader: Uploader,
    ) -> JobOutcome:
        outcome = await uploader.upload(fetched, duration, hosts=hosts)
        if outcome.image is None:
            return JobOutcome(ref, error=outcome.reason())
        fields = record_fields(fetched, outcome.image)
        return JobOutcome(ref, new={**fields, "source_key": ref.source_key})

    async def _fetch(self, platform: str, ref: SourceRef) -> UploadSource | FetchProblem:
        resolver = self.resolvers.get(platform)
        url = ref.url
        if resolver is not None:
            try:
                url = await resolver(ref)
            except ValueError as error:
                reason = error.said if isinstance(error, SourceUnavailable) else str(error)
                return FetchProblem("unavailable", reason)
        if url is None:
            return FetchProblem("unavailable", N_("the file cannot be downloaded"))
        return await self.fetcher.fetch(
            url,
            filename=ref.filename,
            declared_size=ref.declared_size,
            user_link=bool(ref.user_link),  # a user's link: public addresses only
        )

    def _hosts(self, chat: ChatSettings | None, community: CommunitySettings) -> tuple[str, ...]:
        """The configured hosts, or the chat's own choice among them, else its
        community's."""
        configured = tuple(client.name for client in self.uploader.clients)
        for choice in (chat.hosts if chat else None, community.hosts):
            chosen = tuple(h for h in choice or () if h in configured)
            if chosen:
                return chosen
        return configured

    def _uploader(self, community: CommunitySettings, hosts: tuple[str, ...]) -> Uploader:
        """The shared uploader, or one trying the community's own host first."""
        if self.own_hosts is None or community.own_host is None:
            return self.uploader
        others = [c for c in self.uploader.clients if c.name in hosts]
        return self.own_hosts.uploader(community.own_host, others) or self.uploader


def _capped(
    duration: Duration | None, community: CommunitySettings
) -> tuple[Duration | None, Said | None]:
    """The expiry within the community's longest allowed, and the note saying it was
    shortened (None when it was not)."""
    if not community.max_expiration:
        return duration, None
    try:
        longest = parse_duration(community.max_expiration)
    except ExpirationError:
        return duration, None
    if longest is None:  # the longest allowed is "never": anything goes
        return duration, None
    start = now_utc()
    if duration is not None and duration.after(start) <= longest.after(start):
        return duration, None
    asked: object = duration if duration is not None else Said(N_("no expiry"))
    note = Said(
        N_("expires in {longest}, the longest this community allows (asked: {asked})"),
        {"longest": longest, "asked": asked},
    )
    return longest, note


def _join(first: Said, second: Said | None) -> Said:
    return first if second is None else joined([first, second])


def _reused(ref: SourceRef, reuse: Reuse) -> JobOutcome:
    return JobOutcome(ref, new=reuse.shared, existing=reuse.record, dedup=True)
