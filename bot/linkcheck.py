"""Link health: is each live upload's image still served by its host?

Hosts lose images before their expiry (a purge, a moderator, a host closing down). The
checker probes every live upload's direct link (the image, never the delete link): a
``HEAD``, or a one-byte ranged ``GET`` where a host does not answer ``HEAD``. It runs a few
probes at once and paces each host politely. 404 or 410 means gone; a 2xx means alive;
anything else (5xx, a timeout) says nothing and leaves the last finding as it was. Uploads
that share one image (another owner's dedup hit) are probed once.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass

import httpx
from aiolimiter import AsyncLimiter

from bot.ownhost import OWN_HOST
from bot.states import UploadState
from bot.store import Store, now_utc, to_text

ALIVE, GONE, UNKNOWN = "alive", "gone", "unknown"
PROBE_TIMEOUT = httpx.Timeout(15.0, connect=5.0)


@dataclass(frozen=True)
class Probe:
    url: str
    host: str
    upload_ids: tuple[int, ...]


@dataclass(frozen=True)
class Finding:
    url: str
    host: str
    upload_ids: tuple[int, ...]
    state: str  # alive, gone, unknown
    status: int | None  # the HTTP status, None when there was no answer


class LinkChecker:
    def __init__(
        self,
        store: Store,
        http: httpx.AsyncClient,
        *,
        concurrency: int = 8,
        per_host: tuple[float, float] = (5, 1.0),  # probes per second per host
    ) -> None:
        self.store = store
        self.http = http
        self.concurrency = concurrency
        self.per_host = per_host

    async def probes(self, host: str | None = None) -> list[Probe]:
        """One probe per distinct image link of the live uploads (of ``host``)."""
        sql = (
            "select id, host, coalesce(url, viewer_url) as link from uploads where state = ?"
            " and (expires_at is null or expires_at > ?)"
        )
        # A community's own host gave those links: the operator's client does not follow
        # them (they could lead into the operator's network; see bot.ownhost).
        sql += " and host <> ?"
        params: list[object] = [UploadState.ACTIVE, to_text(now_utc()), OWN_HOST]
        if host is not None:
            sql += " and host = ?"
            params.append(host)
        grouped: dict[tuple[str, str], list[int]] = defaultdict(list)
        for row in await self.store.db.fetch(sql + " order by id", params):
            grouped[(row["link"], row["host"])].append(row["id"])
        return [Probe(url, name, tuple(ids)) for (url, name), ids in grouped.items()]

    async def run(
        self, host: str | None = None, progress: Callable[[Finding], None] = lambda f: None
    ) -> list[Finding]:
        """Probe every live upload (of ``host``), record what was found, and return it."""
        probes = await self.probes(host)
        gate = asyncio.Semaphore(self.concurrency)
        pacers: dict[str, AsyncLimiter] = {}

        async def one(probe: Probe) -> Finding:
            pacer = pacers.setdefault(probe.host, AsyncLimiter(*self.per_host))
            async with gate:
                await pacer.acquire()
                state, status = await self.probe(probe.url)
            finding = Finding(probe.url, probe.host, probe.upload_ids, state, status)
            await self.record(finding)
            progress(finding)
            return finding

        return list(await asyncio.gather(*(one(probe) for probe in probes)))

    async def probe(self, url: str) -> tuple[str, int | None]:
        try:
            response = await self.http.head(url, follow_redirects=True, timeout=PROBE_TIMEOUT)
            if response.status_code in (403, 405, 501):  # no HEAD here: ask for one byte
                async with self.http.stream(
                    "GET",
                    url,
                    headers={"Range": "bytes=0-0"},
                    follow_redirects=True,
                    timeout=PROBE_TIMEOUT,
                ) as streamed:
                    response = streamed
        except httpx.HTTPError:
            return UNKNOWN, None
        status = response.status_code
        if status in (404, 410):
            return GONE, status
        if 200 <= status < 300:
            return ALIVE, status
        return UNKNOWN, status

    async def record(self, finding: Finding) -> None:
        if finding.state == UNKNOWN:
            return
        marks = ",".join("?" for _ in finding.upload_ids)
        db = self.store.db
        async with db.transaction():
            await db.execute(
                f"update uploads set link_state = ?, checked_at = ? where id in ({marks})",
                (finding.state, to_text(now_utc()), *finding.upload_ids),
            )
            if finding.state == GONE:
                # An ImgBB-style upload whose owner was handed the delete link stays live
                # until the image is known gone: now it is (its reuses went with it).
                await db.execute(
                    f"update uploads set state = ?, updated_at = ? where id in ({marks})"
                    " and exists (select 1 from uploads handed where handed.id in"
                    f" ({marks}) and handed.delete_handed_at is not null)",
                    (
                        UploadState.DELETED,
                        to_text(now_utc()),
                        *finding.upload_ids,
                        *finding.upload_ids,
                    ),
                )
