"""The bot's metrics: every one defined here, in a registry of its own (not
prometheus-client's global one, so that nothing an imported library registers leaks in).

Counters and the reply histogram are counted where things happen, by small calls from the
core and the adapters. What is a state rather than an event (the queue, the outbox, host
cooldowns, the event loop's lag) is read at each scrape (:mod:`bot.observability` sets
:data:`STATE` before the registry is rendered).

Label values only ever come from fixed sets: a platform name from the code, an outcome, a
configured host name, a kind of failure. Never a token, a key, a user or chat id, or a URL.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily, Metric

REGISTRY = CollectorRegistry(auto_describe=True)

# How a job (one image) ended: uploaded, an earlier upload reused, or no link.
OK, DEDUP, FAILED = "ok", "dedup", "failed"

REHOSTS = Counter(
    "rehost_rehosts",
    "Images worked on, by platform and how they ended: ok (uploaded), dedup (an earlier"
    " upload reused), failed (answered with an error)",
    ["platform", "outcome"],
    registry=REGISTRY,
)
UPLOADS = Counter("rehost_uploads", "Images stored, by host", ["host"], registry=REGISTRY)
UPLOAD_FAILURES = Counter(
    "rehost_upload_failures",
    "Hosts that did not store an image, by host and kind (each try counts; cooldown and"
    " host_limit: passed over without sending)",
    ["host", "kind"],
    registry=REGISTRY,
)
COOLDOWNS = Counter(
    "rehost_host_cooldowns",
    "Cooldowns started because a host was rate limiting, by host",
    ["host"],
    registry=REGISTRY,
)
DEDUP_HITS = Counter(
    "rehost_dedup_hits",
    "Images answered with an earlier upload, by platform and what recognised them (source:"
    " the platform's file id, before downloading; bytes: the sha256 of the download)",
    ["platform", "by"],
    registry=REGISTRY,
)
REPLY_SECONDS = Histogram(
    "rehost_reply_seconds",
    "From a message's arrival to its answer's first message delivered, by platform",
    ["platform"],
    buckets=(0.25, 0.5, 1.0, 2.0, 3.0, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0),
    registry=REGISTRY,
)
RATE_LIMITED = Counter(
    "rehost_platform_rate_limited",
    "429 (Too Many Requests) answers from a chat platform's API, by platform",
    ["platform"],
    registry=REGISTRY,
)
REFUSED = Counter(
    "rehost_refused",
    "Images refused before any work, by platform and why: rate_limit (the member's own"
    " limit), quota_images (the community's images per member), quota_bytes (the"
    " community's bytes per day)",
    ["platform", "reason"],
    registry=REGISTRY,
)
EXPIRED_TOKENS = Counter(
    "rehost_discord_interaction_tokens_expired",
    "Discord command answers that could not use the command's interaction token (expired,"
    " nearly expired, or refused as invalid) and went to the channel instead",
    registry=REGISTRY,
)


@dataclass
class State:
    """What the gauges show, as read at the last scrape."""

    queue: dict[str, tuple[int, float]] = field(default_factory=dict)  # platform: n, age
    outbox: dict[str, int] = field(default_factory=dict)  # platform: rows to send
    cooldowns: dict[str, float] = field(default_factory=dict)  # host: seconds left
    loop_lag: float | None = None  # seconds; None: not watched in this process


class StateCollector:
    """Renders :attr:`state` as gauges; the scrape handler refreshes it first."""

    def __init__(self) -> None:
        self.state = State()

    def collect(self) -> Iterable[Metric]:
        state = self.state
        jobs = GaugeMetricFamily(
            "rehost_queue_jobs",
            "Jobs (images) waiting or being worked, by platform",
            labels=["platform"],
        )
        age = GaugeMetricFamily(
            "rehost_queue_oldest_job_age_seconds",
            "Age of the oldest job waiting or being worked, by platform",
            labels=["platform"],
        )
        for platform, (count, oldest) in sorted(state.queue.items()):
            jobs.add_metric([platform], count)
            age.add_metric([platform], oldest)
        outbox = GaugeMetricFamily(
            "rehost_outbox_messages",
            "Answer messages not yet sent, by platform",
            labels=["platform"],
        )
        for platform, count in sorted(state.outbox.items()):
            outbox.add_metric([platform], count)
        cooling = GaugeMetricFamily(
            "rehost_host_cooldown_seconds",
            "Seconds a host is still left alone after rate limiting (0: usable)",
            labels=["host"],
        )
        for host, seconds in sorted(state.cooldowns.items()):
            cooling.add_metric([host], seconds)
        yield from (jobs, age, outbox, cooling)
        if state.loop_lag is not None:
            yield GaugeMetricFamily(
                "rehost_event_loop_lag_seconds",
                "Worst lag of the event loop over the last 5 to 10 seconds",
                value=state.loop_lag,
            )

    def describe(self) -> Iterable[Metric]:
        """The families, for the registry's duplicate check (no scrape needed)."""
        saved, self.state = self.state, State(loop_lag=0.0)
        try:
            return list(self.collect())
        finally:
            self.state = saved


STATE = StateCollector()
REGISTRY.register(STATE)


def rehost_ended(platform: str, *, stored: bool, dedup: bool = False) -> None:
    """A job's end was recorded: ``stored``, an upload answers it (``dedup``: an earlier
    one)."""
    REHOSTS.labels(platform, (DEDUP if dedup else OK) if stored else FAILED).inc()


def refused(platform: str, reason: str, count: int) -> None:
    """``count`` images refused at admission (``reason``: a name from :data:`REFUSED`)."""
    if count > 0:
        REFUSED.labels(platform, reason).inc(count)


def rate_limited(platform: str) -> None:
    RATE_LIMITED.labels(platform).inc()
