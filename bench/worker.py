"""The measured side, one scenario per process: ``python -m bench.worker SCENARIO``.

Parameters arrive as JSON on standard input; the result leaves as one JSON line on standard
output. Each scenario warms up first (imports, first connection, database creation), then
measures only the work itself. The bot side is composed as ``bot.app.open_core`` composes
it: one ``httpx.AsyncClient`` from ``bot.httpclient``, a file-backed SQLite store, the
fetcher spooling to disk, the uploader and the rehost service.
"""

from __future__ import annotations

import asyncio
import json
import statistics
import sys
import time
from collections.abc import AsyncIterator, Callable, Coroutine
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx

from bench.common import API_KEY, MB, blob_url, image
from bench.probe import LagMonitor, MemoryProbe
from bot.database import SQLiteDatabase
from bot.fetch import Fetcher
from bot.hosts.base import HostClient, UploadSource
from bot.hosts.chevereto import CheveretoClient
from bot.hosts.imgbb import ImgbbClient
from bot.httpclient import new_http_client
from bot.ratelimit import RateLimit
from bot.requests import RehostRequest, RehostResult, SourceRef
from bot.service import RehostService
from bot.store import Store
from bot.uploader import RetryPolicy, Uploader

Params = dict[str, Any]
Result = dict[str, float | str]
WARM_SIZE = 4096


# --- uploading one file: the core against imgbbpy -------------------------------------------


def _imgbb_client(endpoint: str, http: httpx.AsyncClient) -> ImgbbClient:
    return ImgbbClient("bench", endpoint, API_KEY, http, max_bytes=32 * MB)


async def upload_core(params: Params) -> Result:
    endpoint, path = params["endpoint"], Path(params["path"])
    warm = UploadSource.from_bytes(image("warm", 99, WARM_SIZE), "warm.png")
    assert warm is not None
    async with new_http_client() as http:
        await _imgbb_client(endpoint, http).upload(warm, None)
    source = UploadSource.from_path(path)  # hashing is the fetcher's job, not the upload's
    assert source is not None
    async with new_http_client() as http:
        client = _imgbb_client(endpoint, http)
        probe = MemoryProbe()
        probe.start()
        cpu, started = time.process_time(), time.perf_counter()
        await client.upload(source, None)
        seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
        growth = probe.stop()
    return {"seconds": seconds, "cpu": cpu, "growth": growth, "memory_method": probe.method}


def _aim_imgbbpy(endpoint: str, workdir: Path) -> tuple[Any, Path]:
    import imgbbpy  # the reference client: an optional dependency (extra "bench")
    import imgbbpy.imgbb

    imgbbpy.imgbb._API_URL = endpoint  # its only notion of where ImgBB is
    warm = workdir / "imgbbpy-warm.png"
    warm.write_bytes(image("warm", 98, WARM_SIZE))
    return imgbbpy, warm


async def upload_imgbbpy_async(params: Params) -> Result:
    imgbbpy, warm = _aim_imgbbpy(params["endpoint"], Path(params["workdir"]))
    client = imgbbpy.AsyncClient(API_KEY)
    await client.upload(file=str(warm), name="warm")
    await client.close()
    client = imgbbpy.AsyncClient(API_KEY)
    probe = MemoryProbe()
    probe.start()
    cpu, started = time.process_time(), time.perf_counter()
    await client.upload(file=params["path"], name="bench")
    seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
    growth = probe.stop()
    await client.close()
    return {"seconds": seconds, "cpu": cpu, "growth": growth, "memory_method": probe.method}


def upload_imgbbpy_sync(params: Params) -> Result:
    imgbbpy, warm = _aim_imgbbpy(params["endpoint"], Path(params["workdir"]))
    imgbbpy.SyncClient(API_KEY).upload(file=str(warm), name="warm")
    client = imgbbpy.SyncClient(API_KEY)
    probe = MemoryProbe()
    probe.start()
    cpu, started = time.process_time(), time.perf_counter()
    client.upload(file=params["path"], name="bench")
    seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
    growth = probe.stop()
    return {"seconds": seconds, "cpu": cpu, "growth": growth, "memory_method": probe.method}


# --- rehosting through the service ----------------------------------------------------------


@asynccontextmanager
async def _service(params: Params, max_concurrency: int) -> AsyncIterator[RehostService]:
    workdir = Path(params["workdir"])
    store = await Store.open(params.get("storage_url") or workdir / "rehost.db")
    try:
        async with new_http_client() as http:
            kind = ImgbbClient if params["dialect"] == "imgbb" else CheveretoClient
            client: HostClient = kind("bench", params["endpoint"], API_KEY, http, max_bytes=32 * MB)
            uploader = Uploader([client], RetryPolicy(attempts=1))  # a failure must show
            fetcher = Fetcher(http, max_bytes=uploader.largest_accepted(), spool_dir=workdir)
            yield RehostService(
                store,
                uploader,
                fetcher,
                max_concurrency=max_concurrency,
                limit=RateLimit(1_000_000, 600.0),
            )
    finally:
        await store.close()


def _request(owner: str, urls: list[str], size: int, keyed: bool = False) -> RehostRequest:
    """Sources as a chat adapter makes them; ``keyed``: with a stable content id, as
    Telegram's file_unique_id gives, so a repeat needs no download."""
    sources = [
        SourceRef(
            f"image-{index}.png",
            url=url,
            declared_size=size,
            source_key=f"bench:{url}" if keyed else None,
        )
        for index, url in enumerate(urls)
    ]
    return RehostRequest(platform="bench", chat_id="bench-chat", owner_id=owner, sources=sources)


def _check(results: list[RehostResult], *, dedup: bool | None = None) -> None:
    for result in results:
        if not result.ok:
            raise RuntimeError(f"a rehost failed: {result.error}")
        if dedup is not None and result.dedup != dedup:
            raise RuntimeError(f"expected dedup={dedup}, got {result.dedup}")


async def _warm_up(service: RehostService, base: str) -> None:
    _check(await service.rehost(_request("warm-up", [blob_url(base, "warm", 0)], WARM_SIZE)))


async def _host_stats(stats_url: str) -> dict[str, Any]:
    async with httpx.AsyncClient() as http:
        stats: dict[str, Any] = (await http.get(stats_url)).json()
        return stats


async def _host_uploads(stats_url: str) -> int:
    return int((await _host_stats(stats_url))["uploads"])


async def rehost_memory(params: Params) -> Result:
    count, size, base = int(params["count"]), int(params["size"]), params["base"]
    urls = [blob_url(base, "big", index) for index in range(count)]
    async with _service(params, max_concurrency=count) as service:
        await _warm_up(service, base)
        monitor = LagMonitor()
        probe = MemoryProbe()
        probe.start()
        monitor.start()
        started = time.perf_counter()
        results = await service.rehost(_request("owner", urls, size))
        seconds = time.perf_counter() - started
        worst = await monitor.stop()
        growth = probe.stop()
        _check(results, dedup=False)
    return {
        "growth": growth,
        "seconds": seconds,
        "worst_lag": worst,
        "memory_method": probe.method,
    }


async def burst(params: Params) -> Result:
    count, size, base = int(params["count"]), int(params["size"]), params["base"]
    concurrency = int(params["concurrency"])
    async with _service(params, max_concurrency=concurrency) as service:
        await _warm_up(service, base)
        host_before = await _host_stats(params["stats"])
        requests = [
            _request(f"user-{index}", [blob_url(base, "burst", index)], size)
            for index in range(count)
        ]
        db = service.store.db
        transactions = db.write_transactions if isinstance(db, SQLiteDatabase) else 0
        monitor = LagMonitor()
        monitor.start()
        cpu = time.process_time()
        started = time.perf_counter()
        if params["arrival"] == "together":
            # All become runnable in one loop turn (a batch of updates dispatched at once).
            answers = await asyncio.gather(*(service.rehost(request) for request in requests))
        else:
            # Back to back, each in its own loop turn, as messages read off a socket.
            tasks = []
            for request in requests:
                tasks.append(asyncio.create_task(service.rehost(request)))
                await asyncio.sleep(0)
            answers = await asyncio.gather(*tasks)
        seconds = time.perf_counter() - started
        cpu = time.process_time() - cpu
        worst = await monitor.stop()
        if isinstance(db, SQLiteDatabase):
            transactions = db.write_transactions - transactions
        for answer in answers:
            _check(answer, dedup=False)
        host_after = await _host_stats(params["stats"])
    return {
        "seconds": seconds,
        "worst_lag": worst,
        "p99_lag": monitor.percentile(0.99),
        "cpu_per_request": cpu / count,
        "host_uploads": host_after["uploads"] - host_before["uploads"],
        "host_cpu_per_request": (host_after["cpu"] - host_before["cpu"]) / count,
        "transactions_per_request": transactions / count,
    }


async def _burst_requests(
    count: int, concurrency: int, one: Callable[[int], Coroutine[Any, Any, None]]
) -> tuple[float, float]:
    """``one(index)`` for every index, ``concurrency`` at a time, each started in its own
    loop turn as the service's burst is: (seconds, CPU seconds)."""
    slots = asyncio.Semaphore(concurrency)

    async def slot(index: int) -> None:
        async with slots:
            await one(index)

    cpu, started = time.process_time(), time.perf_counter()
    tasks = []
    for index in range(count):
        tasks.append(asyncio.create_task(slot(index)))
        await asyncio.sleep(0)
    await asyncio.gather(*tasks)
    return time.perf_counter() - started, time.process_time() - cpu


async def burst_http(params: Params) -> Result:
    """The burst's HTTP work alone, through the bot's own parts (the fetcher and the host
    client over ``new_http_client``): no queue, no store. Where the bot's CPU goes."""
    count, size, base = int(params["count"]), int(params["size"]), params["base"]
    async with new_http_client() as http:
        client = CheveretoClient("bench", params["endpoint"], API_KEY, http, max_bytes=32 * MB)
        fetcher = Fetcher(http, max_bytes=32 * MB, spool_dir=Path(params["workdir"]))

        async def one(index: int, prefix: str = "burst") -> None:
            url = blob_url(base, prefix, index)
            source = await fetcher.fetch(url, filename=f"image-{index}.png", declared_size=size)
            if not isinstance(source, UploadSource):
                raise RuntimeError(f"a download failed: {source.message}")
            try:
                await client.upload(source, None)
            finally:
                source.discard()

        for index in range(4):
            await one(index, "warm")
        seconds, cpu = await _burst_requests(count, int(params["concurrency"]), one)
    return {"seconds": seconds, "cpu_per_request": cpu / count}


async def burst_aiohttp(params: Params) -> Result:
    """The reference for the burst's CPU: a minimal aiohttp client doing the same download
    and the same Chevereto upload (one session, its default pool), nothing else."""
    import aiohttp

    count, base, endpoint = int(params["count"]), params["base"], params["endpoint"]
    async with aiohttp.ClientSession() as session:

        async def one(index: int, prefix: str = "burst") -> None:
            async with session.get(blob_url(base, prefix, index)) as got:
                got.raise_for_status()
                data = await got.read()
            form = aiohttp.FormData()
            form.add_field("key", API_KEY)
            form.add_field("format", "json")
            form.add_field("source", data, filename=f"image-{index}.png", content_type="image/png")
            async with session.post(endpoint, data=form) as answer:
                if answer.status != 200 or "image" not in await answer.json():
                    raise RuntimeError(f"an upload failed: HTTP {answer.status}")

        for index in range(4):
            await one(index, "warm")
        seconds, cpu = await _burst_requests(count, int(params["concurrency"]), one)
    return {"seconds": seconds, "cpu_per_request": cpu / count}


async def _download(http: httpx.AsyncClient, url: str) -> None:
    async with http.stream("GET", url) as response:
        async for _ in response.aiter_raw():
            pass


async def dedup(params: Params) -> Result:
    size, base, repeats = int(params["size"]), params["base"], int(params["repeats"])
    url = blob_url(base, params["prefix"], 0)
    request = _request("owner", [url], size, keyed=bool(params.get("keyed")))
    async with _service(params, max_concurrency=4) as service, new_http_client() as http:
        await _warm_up(service, base)
        _check(await service.rehost(request), dedup=False)  # the one real upload
        await _download(http, url)
        before = await _host_uploads(params["stats"])
        monitor = LagMonitor()
        monitor.start()
        times, downloads = [], []
        for _ in range(repeats):
            started = time.perf_counter()
            results = await service.rehost(request)
            times.append(time.perf_counter() - started)
            _check(results, dedup=True)
            # The reference: only moving the same bytes, with the same HTTP client setup.
            started = time.perf_counter()
            await _download(http, url)
            downloads.append(time.perf_counter() - started)
        worst = await monitor.stop()
        uploads = await _host_uploads(params["stats"]) - before
    return {
        "median": statistics.median(times),
        "worst": max(times),
        "download": statistics.median(downloads),
        "worst_lag": worst,
        "host_uploads": uploads,
    }


ASYNC_SCENARIOS: dict[str, Callable[[Params], Coroutine[Any, Any, Result]]] = {
    "upload-core": upload_core,
    "upload-imgbbpy-async": upload_imgbbpy_async,
    "rehost-memory": rehost_memory,
    "burst": burst,
    "burst-http": burst_http,
    "burst-aiohttp": burst_aiohttp,
    "dedup": dedup,
}
SYNC_SCENARIOS: dict[str, Callable[[Params], Result]] = {
    "upload-imgbbpy-sync": upload_imgbbpy_sync,
}


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1 or args[0] not in {*ASYNC_SCENARIOS, *SYNC_SCENARIOS}:
        names = ", ".join(sorted({*ASYNC_SCENARIOS, *SYNC_SCENARIOS}))
        print(f"usage: python -m bench.worker SCENARIO < params.json ({names})", file=sys.stderr)
        return 2
    params: Params = json.load(sys.stdin)
    name = args[0]
    if name in SYNC_SCENARIOS:
        result = SYNC_SCENARIOS[name](params)
    else:
        result = asyncio.run(ASYNC_SCENARIOS[name](params))
    print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
