"""Upload one image through an ordered list of hosts: retry what is transient, fail over.

- Transient failures (5xx, timeouts, dropped connections, unreadable answers, flooding) are
  retried on the same host with exponential backoff and jitter, a bounded number of times,
  then the next host is tried.
- A refused key, a host that cannot honour the expiry or refuses for another reason: no
  retry, next host.
- The file's own fault (format, size, not an image): stop. Every host would say the same.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from bot.errors import ExpirationError, ExpiryUnsupported, FileRejected, HostError
from bot.expiration import Duration
from bot.hosts.base import HostClient, UploadedImage, UploadSource
from bot.media import human_size

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

    def reason(self) -> str:
        """One plain sentence for the user about why nothing was stored."""
        if not self.failures:
            return "no image host is configured"
        for failure in self.failures:
            if isinstance(failure, FileRejected) and not failure.fail_over:
                return failure.user_message
        if len({f.host for f in self.failures}) == 1:
            return self.failures[-1].user_message
        return "; ".join(_last_per_host(self.failures))


def _last_per_host(failures: Sequence[HostError]) -> list[str]:
    last: dict[str, str] = {}
    for failure in failures:
        last[failure.host] = failure.user_message
    return list(last.values())


class Uploader:
    def __init__(
        self,
        clients: Sequence[HostClient],
        policy: RetryPolicy | None = None,
        *,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        self.clients = list(clients)
        self.policy = policy or RetryPolicy()
        self._sleep = sleep

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
        outcome = UploadOutcome(image=None)
        for client in self.clients:
            if hosts is not None and client.name not in hosts:
                continue
            if source.size > client.max_bytes:
                outcome.failures.append(_too_large(client, source))
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
        for attempt in range(self.policy.attempts):
            try:
                return await client.upload(source, duration, now)
            except ExpirationError as error:
                outcome.failures.append(
                    ExpiryUnsupported(client.name, f"{client.name}: {error.user_message}")
                )
                return None
            except HostError as error:
                outcome.failures.append(error)
                log.warning(
                    "upload of %s to %s failed (%s, attempt %d/%d): %s %s",
                    source.sha256[:12],
                    client.name,
                    error.kind,
                    attempt + 1,
                    self.policy.attempts,
                    error.user_message,
                    error.detail,
                )
                if not error.retryable or attempt + 1 == self.policy.attempts:
                    return None
                await self._sleep(self.policy.delay(attempt))
        return None


def _too_large(client: HostClient, source: UploadSource) -> FileRejected:
    error = FileRejected(
        client.name,
        f"the file is {human_size(source.size)}; {client.name} accepts at most "
        f"{human_size(client.max_bytes)}",
    )
    # Another host may take larger files: this is not the file's fault everywhere.
    error.fail_over = True
    return error
