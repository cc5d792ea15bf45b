"""Deduplication: an image rehosted before is not uploaded again.

The same bytes are recognised by sha256 after downloading, or before downloading by the
platform's stable id for a file (Telegram's ``file_unique_id``). The same owner gets their
own upload back; another owner gets a record of their own that reuses the public links,
never the first owner's delete link.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from bot.errors import ExpirationError
from bot.expiration import Duration, chevereto_interval
from bot.store import Store, UploadRecord

# Dedup accepts an earlier upload whose remaining life is at least this share of what a
# fresh upload would get: an identical request a minute later still reuses it.
DEDUP_LIFETIME_SHARE = 0.9
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
class Reuse:
    """An earlier upload that answers this one: the owner's own (``record``), or the
    fields of a new record for another owner that shares its links (``shared``)."""

    record: UploadRecord | None = None
    shared: dict[str, Any] | None = None


class Dedup:
    def __init__(self, store: Store, clock: Callable[[], datetime]) -> None:
        self.store = store
        self._clock = clock

    async def find(
        self,
        platform: str,
        owner_id: str,
        hosts: tuple[str, ...],
        duration: Duration | None,
        *,
        sha256: str | None = None,
        source_key: str | None = None,
        hidden: bool = False,
    ) -> Reuse | None:
        """An earlier upload to reuse. ``hidden``: the image must stay hidden (a spoiler,
        an NSFW chat), so only an upload that was made hidden will do."""
        now = self._clock()
        candidates = await self.store.reusable(
            hosts, now, forever=duration is None, sha256=sha256, source_key=source_key
        )
        if hidden:
            made_hidden = await self.store.hidden_uploads(r.reused_from or r.id for r in candidates)
            candidates = [r for r in candidates if (r.reused_from or r.id) in made_hidden]
        for record in candidates:
            if duration is not None and not self._lasts(record, duration, now):
                continue
            if record.platform == platform and record.owner_id == owner_id:
                return Reuse(record=record)
            shared = {name: getattr(record, name) for name in SHARED_FIELDS}
            shared["delete_url"] = None  # the first owner's, never handed on
            shared["reused_from"] = record.reused_from or record.id
            return Reuse(shared=shared)
        return None

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
