"""RehostService: the one thing adapters call to rehost images.

An adapter turns a chat event into a :class:`RehostRequest` and posts the
:class:`RehostResult` list it gets back. Everything else happens here, the same for every
platform: rate limiting, writing job rows before any work (so a crash loses nothing),
fetching, deduplication, upload with retry and failover, and recording the upload before
the adapter posts anything.
"""

from __future__ import annotations

import asyncio
import json
import logging
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from typing import Literal

from bot.errors import ExpirationError
from bot.expiration import Duration, chevereto_interval, parse_duration
from bot.fetch import Fetcher, FetchProblem
from bot.hosts.base import UploadSource
from bot.ratelimit import SlidingWindowLimiter
from bot.store import ChatSettings, JobRecord, Store, UploadRecord, now_utc
from bot.uploader import Uploader

log = logging.getLogger(__name__)

# A recovered job is given up after this many starts (it may be what crashes the bot).
MAX_JOB_ATTEMPTS = 3
# Dedup accepts an earlier upload whose remaining life is at least this share of what a
# fresh upload would get: an identical request a minute later still reuses it.
DEDUP_LIFETIME_SHARE = 0.9
GENERIC_FAILURE = "something went wrong while rehosting this image"
# What another owner's dedup hit copies from the first upload: everything public.
SHARED_FIELDS = (
    "sha256",
    "size",
    "mime",
    "host",
    "dialect",
    "host_image_id",
    "viewer_url",
    "url",
    "expires_at",
    "source_key",
)


@dataclass(frozen=True)
class SourceRef:
    """Where an attachment's bytes are, and what the platform says about them."""

    filename: str
    url: str | None = None  # fetchable as is (a Discord attachment)
    file_id: str | None = None  # resolved to a URL by the platform's resolver (Telegram)
    declared_size: int | None = None
    declared_mime: str | None = None
    # The platform's stable id for these exact bytes (Telegram's file_unique_id), so a
    # repeat is recognised without downloading it again.
    source_key: str | None = None

    def to_json(self) -> dict[str, object]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, object]) -> SourceRef:
        return cls(**{key: data.get(key) for key in cls.__dataclass_fields__})  # type: ignore[arg-type]


# Turns a platform reference (e.g. a Telegram file_id) into a download URL, or raises
# ValueError with a user-fit message (e.g. the file is over the platform's download limit).
Resolver = Callable[[SourceRef], Awaitable[str]]


@dataclass(frozen=True)
class RehostRequest:
    platform: str
    chat_id: str
    owner_id: str
    sources: Sequence[SourceRef]
    message_id: str | None = None
    expiration: Duration | None = None
    use_default_expiration: bool = True  # False: ``expiration`` was given (None = never)


@dataclass(frozen=True)
class RehostResult:
    source: SourceRef
    upload: UploadRecord | None = None
    dedup: bool = False
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.upload is not None

    @property
    def delete_url(self) -> str | None:
        """The owner's delete link (never set for links reused from another owner)."""
        return self.upload.delete_url if self.upload else None


@dataclass
class RecoveredBatch:
    """An interrupted rehost finished after a restart, for the adapter to post."""

    platform: str
    chat_id: str | None
    owner_id: str
    message_id: str | None
    results: list[RehostResult] = field(default_factory=list)


class RehostService:
    def __init__(
        self,
        store: Store,
        uploader: Uploader,
        fetcher: Fetcher,
        *,
        default_expiration: Duration | None = None,
        max_concurrency: int = 4,
        limiter: SlidingWindowLimiter | None = None,
        resolvers: dict[str, Resolver] | None = None,
        clock: Callable[[], datetime] = now_utc,
    ) -> None:
        self.store = store
        self.uploader = uploader
        self.fetcher = fetcher
        self.default_expiration = default_expiration
        self.limiter = limiter or SlidingWindowLimiter(20, 600.0)
        self.resolvers = resolvers or {}
        self._gate = asyncio.Semaphore(max_concurrency)
        self._admission = asyncio.Lock()
        self._clock = clock

    # --- the main path -------------------------------------------------------------------

    async def rehost(self, request: RehostRequest) -> list[RehostResult]:
        """One result per source, in order; each failure carries a message for the user."""
        async with self._admission:
            batch = self.enqueue(request)
            # Requests arriving together would otherwise all write their jobs to SQLite in
            # one turn of the event loop; admitting one per turn keeps the loop responsive.
            await asyncio.sleep(0)
        return await self.run_batch(batch)

    def enqueue(self, request: RehostRequest, batch: str | None = None) -> str:
        """Record the sources as jobs (nothing is lost from here on) and return the batch.

        Adapters that gather several messages into one reply (a Telegram album) enqueue
        each message into the same batch as it arrives, then run the batch once.
        """
        batch = batch or uuid.uuid4().hex
        duration = self._duration(request)
        user_key = f"{request.platform}:{request.owner_id}"
        granted = self.limiter.take(user_key, len(request.sources))
        allowed, refused = request.sources[:granted], request.sources[granted:]
        common = {
            "platform": request.platform,
            "chat_id": request.chat_id,
            "message_id": request.message_id,
            "owner_id": request.owner_id,
            "expiration": duration.label() if duration else None,
        }
        self.store.add_jobs(batch, common, [s.to_json() for s in allowed])
        if refused:
            wait = _minutes(self.limiter.retry_after(user_key))
            refusal = f"you have rehosted {self.limiter.limit} images recently; try again in {wait}"
            self.store.add_jobs(batch, common, [s.to_json() for s in refused], refusal)
        return batch

    async def run_batch(self, batch: str) -> list[RehostResult]:
        """Run the batch's pending jobs; results for all its sources, in order."""
        await asyncio.gather(*(self._resume(job) for job in self.store.pending_jobs(batch=batch)))
        return [self._stored_result(row) for row in self.store.job_results(batch)]

    def _duration(self, request: RehostRequest) -> Duration | None:
        if not request.use_default_expiration:
            return request.expiration
        chat = self.store.chat_settings(request.platform, request.chat_id)
        if chat.default_expiration:
            try:
                return parse_duration(chat.default_expiration)
            except ExpirationError:
                log.warning("ignoring a bad stored expiration for chat %s", request.chat_id)
        return self.default_expiration

    async def _run_job(self, job: JobRecord, duration: Duration | None) -> RehostResult:
        ref = SourceRef.from_json(job.source)
        self.store.job_attempted(job.id)
        try:
            async with self._gate:
                result = await self._rehost_one(job, ref, duration)
        except Exception:
            log.exception("rehosting job %d failed unexpectedly", job.id)
            self.store.finish_job(job.id, "failed", error=GENERIC_FAILURE)
            return RehostResult(ref, error=GENERIC_FAILURE)
        if result.upload is not None:
            self.store.finish_job(job.id, "dedup" if result.dedup else "uploaded", result.upload.id)
        else:
            self.store.finish_job(job.id, "failed", error=result.error)
        return result

    async def _rehost_one(
        self, job: JobRecord, ref: SourceRef, duration: Duration | None
    ) -> RehostResult:
        hosts = self._hosts(job.platform, job.chat_id)
        if ref.source_key is not None:
            known = self._reuse(job, hosts, duration, ref, source_key=ref.source_key)
            if known is not None:
                return known
        fetched = await self._fetch(job.platform, ref)
        if isinstance(fetched, FetchProblem):
            return RehostResult(ref, error=fetched.message)
        try:
            reused = self._reuse(job, hosts, duration, ref, sha256=fetched.sha256)
            if reused is not None:
                return reused
            outcome = await self.uploader.upload(fetched, duration, hosts=hosts)
            if outcome.image is None:
                return RehostResult(ref, error=outcome.reason())
            image = outcome.image
            record = self._record(
                job,
                sha256=fetched.sha256,
                size=fetched.size,
                mime=fetched.image_type.mime,
                host=image.host,
                dialect=image.dialect,
                host_image_id=image.image_id,
                viewer_url=image.viewer_url,
                url=image.url,
                delete_url=image.delete_url,
                expires_at=image.expires_at,
                source_key=ref.source_key,
            )
            return RehostResult(ref, upload=record)
        finally:
            fetched.discard()

    async def _fetch(self, platform: str, ref: SourceRef) -> UploadSource | FetchProblem:
        url = ref.url
        if url is None:
            resolver = self.resolvers.get(platform)
            if resolver is None or ref.file_id is None:
                return FetchProblem("unavailable", "the file cannot be downloaded")
            try:
                url = await resolver(ref)
            except ValueError as error:
                return FetchProblem("unavailable", str(error))
        return await self.fetcher.fetch(url, filename=ref.filename, declared_size=ref.declared_size)

    def _hosts(self, platform: str, chat_id: str | None) -> tuple[str, ...]:
        configured = tuple(client.name for client in self.uploader.clients)
        if chat_id is None:
            return configured
        override = self.store.chat_settings(platform, chat_id).hosts
        chosen = tuple(h for h in override or () if h in configured)
        return chosen or configured

    # --- dedup ---------------------------------------------------------------------------

    def _reuse(
        self,
        job: JobRecord,
        hosts: tuple[str, ...],
        duration: Duration | None,
        ref: SourceRef,
        *,
        sha256: str | None = None,
        source_key: str | None = None,
    ) -> RehostResult | None:
        now = self._clock()
        candidates = self.store.reusable(
            hosts, now, forever=duration is None, sha256=sha256, source_key=source_key
        )
        for record in candidates:
            if duration is not None and not self._lasts(record, duration, now):
                continue
            if record.platform == job.platform and record.owner_id == job.owner_id:
                return RehostResult(ref, upload=record, dedup=True)
            shared = self._record(
                job,
                **{name: getattr(record, name) for name in SHARED_FIELDS},
                delete_url=None,  # the first owner's, never handed on
                reused_from=record.reused_from or record.id,
            )
            return RehostResult(ref, upload=shared, dedup=True)
        return None

    def _record(self, job: JobRecord, **fields: object) -> UploadRecord:
        """Store an upload made for ``job``'s owner, chat and message."""
        upload_id = self.store.add_upload(
            platform=job.platform,
            chat_id=job.chat_id,
            message_id=job.message_id,
            owner_id=job.owner_id,
            **fields,
        )
        record = self.store.upload(upload_id)
        assert record is not None
        return record

    def _lasts(self, record: UploadRecord, duration: Duration, now: datetime) -> bool:
        """Whether ``record`` lives about as long as a fresh upload for ``duration`` would."""
        if record.expires_at is None:
            return False  # asked to expire; a never-expiring copy would outlive the wish
        effective = duration
        if record.dialect == "chevereto":
            try:
                effective = chevereto_interval(duration, now)[1]
            except ExpirationError:
                return False
        fresh = effective.after(now) - now
        return record.expires_at - now >= timedelta(
            seconds=fresh.total_seconds() * DEDUP_LIFETIME_SHARE
        )

    # --- after the upload ----------------------------------------------------------------

    def remember_reply(
        self, upload_id: int, platform: str, chat_id: str, message_id: str, *, public: bool
    ) -> None:
        """Record a bot message showing this upload, so deleting can remove or edit it."""
        self.store.add_bot_message(
            upload_id, platform, chat_id, message_id, "public" if public else "private"
        )

    def uploads_in_message(
        self, platform: str, chat_id: str, message_id: str
    ) -> list[UploadRecord]:
        """What a bot message shows, to re-render it after a deletion."""
        return self.store.uploads_in_message(platform, chat_id, message_id)

    def owned_upload(self, upload_id: int, platform: str, owner_id: str) -> UploadRecord | None:
        """The upload if it belongs to this user on this platform, else ``None``."""
        upload = self.store.upload(upload_id)
        if upload is None or upload.platform != platform or upload.owner_id != owner_id:
            return None
        return upload

    def live_uploads(self, platform: str, owner_id: str, limit: int = 25) -> list[UploadRecord]:
        return self.store.live_uploads(platform, owner_id, self._clock(), limit)

    def chat_settings(self, platform: str, chat_id: str) -> ChatSettings:
        return self.store.chat_settings(platform, chat_id)

    def set_auto_rehost(
        self,
        platform: str,
        chat_id: str,
        enabled: bool,
        expiration: Duration | Literal["keep"] | None = "keep",
    ) -> ChatSettings:
        """Switch auto-rehost; ``expiration`` sets the chat's default (``None``: never),
        or ``"keep"`` leaves it as it is."""
        current = self.store.chat_settings(platform, chat_id)
        if expiration == "keep":
            label = current.default_expiration
        else:
            label = expiration.label() if expiration else "never"
        updated = ChatSettings(auto_rehost=enabled, default_expiration=label, hosts=current.hosts)
        self.store.set_chat_settings(platform, chat_id, updated)
        return updated

    def sweep_expired(self) -> int:
        """Mark uploads whose expiry has passed (run periodically)."""
        return self.store.expire_due(self._clock())

    # --- crash recovery ------------------------------------------------------------------

    async def recover(self, platform: str) -> list[RecoveredBatch]:
        """Finish the jobs a previous run left pending, grouped per original message.

        Each batch carries results for all its sources, including those finished before the
        crash, so the adapter can post one complete reply.
        """
        first_jobs: dict[str, JobRecord] = {}
        for job in self.store.pending_jobs(platform):
            first_jobs.setdefault(job.batch, job)
        recovered = []
        for batch, first in first_jobs.items():
            done = RecoveredBatch(platform, first.chat_id, first.owner_id, first.message_id)
            done.results = await self.run_batch(batch)
            recovered.append(done)
        return recovered

    async def _resume(self, job: JobRecord) -> RehostResult:
        if job.attempts >= MAX_JOB_ATTEMPTS:
            self.store.abandon_job(job.id, GENERIC_FAILURE)
            return RehostResult(SourceRef.from_json(job.source), error=GENERIC_FAILURE)
        duration = parse_duration(job.expiration) if job.expiration else None
        return await self._run_job(job, duration)

    def _stored_result(self, row: dict[str, object]) -> RehostResult:
        ref = SourceRef.from_json(json.loads(str(row["source"])))
        upload_id = row.get("upload_id")
        record = self.store.upload(int(upload_id)) if isinstance(upload_id, int) else None
        if record is None:
            return RehostResult(ref, error=str(row.get("error") or GENERIC_FAILURE))
        return RehostResult(ref, upload=record, dedup=row.get("outcome") == "dedup")


def _minutes(seconds: float) -> str:
    minutes = max(1, round(seconds / 60))
    return "1 minute" if minutes == 1 else f"{minutes} minutes"
