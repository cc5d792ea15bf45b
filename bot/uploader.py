"""Upload one image through an ordered list of hosts: retry what is transient, fail over.

- Before anything is sent, a host that does not take the file's format or size, or that is
  cooling down after rate limiting, is passed over.
- Transient failures (5xx, dropped connections, unreadable answers) are retried on the same
  host with exponential backoff and jitter, a bounded number of times; a timeout at most
  once (the upload may still complete on the host, leaving an orphan copy). All tries on
  one host share its time budget; then the next host is tried.
- Rate limiting or flooding: no retry; the host cools down for the window it named, and the
  next host is tried at once. When every host is cooling down, the answer says when to try
  again.
- A refused key, an expiry the host cannot honour, a host's own format or size limit, any
  other refusal: next host.
- The file's own fault (not an image): stop. Every host would say the same.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from bot import metrics
from bot.cooldowns import Cooldowns
from bot.errors import (
    CoolingDown,
    CredentialsError,
    ExpirationError,
    ExpiryUnsupported,
    FileRejected,
    HostError,
    HostTimedOut,
    RateLimited,
)
from bot.expiration import Duration, minutes_phrase
from bot.hosts.base import HostClient, UploadedImage, UploadSource, did_not_answer
from bot.i18n import N_, Said, joined
from bot.logcontext import log_context
from bot.media import BY_NAME

log = logging.getLogger(__name__)

Sleep = Callable[[float], Awaitable[None]]


@dataclass(frozen=True)
class RetryPolicy:
    attempts: int = 3  # per host, the first try included
    backoff: float = 0.5  # seconds before the first retry, doubled each time
    max_backoff: float = 8.0

    def delay(self, retry: int) -> float:
        """Seconds to wait before retry number ``retry`` (0-based): full jitter, capped."""
        ceiling = min(self.max_backoff, self.backoff * 2**retry)
        return random.uniform(ceiling / 2, ceiling)


@dataclass
class UploadOutcome:
    """The stored image, if any host took it, and every failure met on the way."""

    image: UploadedImage | None
    failures: list[HostError] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.image is not None

    def reason(self) -> Said:
        """One plain sentence for the user about why nothing was stored."""
        if not self.failures:
            return Said(N_("no image host is configured"))
        for failure in self.failures:
            if isinstance(failure, FileRejected) and not failure.fail_over:
                return failure.said
        resting = [f for f in self.failures if isinstance(f, CoolingDown)]
        if resting and len(resting) == len({f.host for f in self.failures}):
            wait = minutes_phrase(min(f.remaining for f in resting))
            return Said(
                N_("every image host is resting after rate limiting; try again in {wait}"),
                {"wait": wait},
            )
        if len({f.host for f in self.failures}) == 1:
            return self.failures[-1].said
        return joined(_last_per_host(self.failures))

    @property
    def refused_keys(self) -> list[str]:
        """Hosts that refused the API key on the way (the operator must hear of these)."""
        return [f.host for f in self.failures if isinstance(f, CredentialsError)]


def _last_per_host(failures: Sequence[HostError]) -> list[Said]:
    last: dict[str, Said] = {}
    for failure in failures:
        last[failure.host] = failure.said
    return list(last.values())


def _count(outcome: UploadOutcome) -> None:
    """The metrics of one upload: every host that did not store it and why (each try),
    and the one that did."""
    for failure in outcome.failures:
        metrics.UPLOAD_FAILURES.labels(failure.host, failure.kind).inc()
    if outcome.image is not None:
        metrics.UPLOADS.labels(outcome.image.host).inc()


class Uploader:
    def __init__(
        self,
        clients: Sequence[HostClient],
        policy: RetryPolicy | None = None,
        *,
        sleep: Sleep = asyncio.sleep,
        cooldowns: Cooldowns | None = None,
    ) -> None:
        self.clients = list(clients)
        self.policy = policy or RetryPolicy()
        self.cooldowns = cooldowns or Cooldowns()
        self._sleep = sleep

    def formats(self, hosts: Sequence[str] | None = None) -> frozenset[str]:
        """The image formats some of these hosts (or any) take."""
        clients = [c for c in self.clients if hosts is None or c.name in hosts]
        return frozenset(name for c in clients for name in c.formats)

    def refusal(self, source: UploadSource, hosts: Sequence[str] | None = None) -> Said | None:
        """Why no configured host would take ``source`` (format, size), if none would."""
        clients = [c for c in self.clients if hosts is None or c.name in hosts]
        reasons = [c.refusal(source) for c in clients]
        if not clients or any(reason is None for reason in reasons):
            return None
        if not any(c.accepts(source.image_type) for c in clients):
            taken = sorted({name for c in clients for name in c.formats})
            return Said(
                N_("{format} files are not taken by any configured host (they take {formats})"),
                {
                    "format": source.image_type.label,
                    "formats": [BY_NAME[n].label for n in taken if n in BY_NAME],
                },
            )
        return joined([reason.said for reason in reasons if reason is not None])

    def largest_accepted(self) -> int:
        return max((c.max_bytes for c in self.clients), default=0)

    async def upload(
        self,
        source: UploadSource,
        duration: Duration | None,
        *,
        hosts: Sequence[str] | None = None,
        now: datetime | None = None,
    ) -> UploadOutcome:
        """Try each host (all, or only ``hosts``, in configured order) until one stores it."""
        outcome = await self._upload(source, duration, hosts, now)
        _count(outcome)
        return outcome

    async def _upload(
        self,
        source: UploadSource,
        duration: Duration | None,
        hosts: Sequence[str] | None,
        now: datetime | None,
    ) -> UploadOutcome:
        outcome = UploadOutcome(image=None)
        refused = self.refusal(source, hosts)
        if refused is not None:  # no host would take it: nothing is sent
            outcome.failures.append(FileRejected("all", refused))
            return outcome
        for client in self.clients:
            if hosts is not None and client.name not in hosts:
                continue
            refusal = client.refusal(source)
            if refusal is not None:
                outcome.failures.append(refusal)
                continue
            resting = await self.cooldowns.remaining(client.name)
            if resting > 0:
                outcome.failures.append(CoolingDown(client.name, resting))
                continue
            image = await self._try_host(client, source, duration, now, outcome)
            if image is not None:
                outcome.image = image
                return outcome
            if not outcome.failures[-1].fail_over:
                break
        return outcome

    async def _try_host(
        self,
        client: HostClient,
        source: UploadSource,
        duration: Duration | None,
        now: datetime | None,
        outcome: UploadOutcome,
    ) -> UploadedImage | None:
        """Every try on one host, within its time budget."""
        with log_context(host=client.name):  # the configured name, never the endpoint
            try:
                async with asyncio.timeout(client.time_budget):
                    return await self._tries(client, source, duration, now, outcome)
            except TimeoutError:
                log.warning("%s used up its %g s for one upload", client.name, client.time_budget)
                outcome.failures.append(HostTimedOut(client.name, did_not_answer(client.name)))
                return None

    async def _tries(
        self,
        client: HostClient,
        source: UploadSource,
        duration: Duration | None,
        now: datetime | None,
        outcome: UploadOutcome,
    ) -> UploadedImage | None:
        timeouts = 0
        for attempt in range(self.policy.attempts):
            try:
                return await client.upload(source, duration, now)
            except ExpirationError as error:
                outcome.failures.append(
                    ExpiryUnsupported(
                        client.name,
                        Said(N_("{host}: {reason}"), {"host": client.name, "reason": error.said}),
                    )
                )
                return None
            except RateLimited as error:
                outcome.failures.append(error)
                log.warning(
                    "%s is rate limiting (%s); leaving it alone for %.0f s",
                    client.name,
                    error.detail or error.user_message,
                    error.cooldown,
                )
                await self.cooldowns.cool(
                    client.name, error.cooldown, error.detail or "rate limited"
                )
                return None
            except HostError as error:
                outcome.failures.append(error)
                log.info(
                    "upload of %s to %s failed (%s, attempt %d/%d): %s %s",
                    source.sha256[:12],
                    client.name,
                    error.kind,
                    attempt + 1,
                    self.policy.attempts,
                    error.user_message,
                    error.detail,
                )
                timeouts += isinstance(error, HostTimedOut)
                if not error.retryable or attempt + 1 == self.policy.attempts or timeouts > 1:
                    return None
                await self._sleep(self.policy.delay(attempt))
        return None
