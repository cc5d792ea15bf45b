"""The bot's HTTP client (httpx's API over aiohttp): connections kept alive, bodies
streamed in bounded memory, and httpx's timeouts and exceptions, over real sockets."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import tracemalloc
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from aiohttp import web

from bot.errors import HostUnavailable
from bot.fetch import Fetcher
from bot.hosts.base import UploadSource
from bot.hosts.chevereto import CheveretoClient
from bot.hosts.imgbb import ImgbbClient
from bot.httpclient import new_http_client
from sandbox import samples
from sandbox.hostemu import Fault, HostEmulator
from tests.conftest import CHEV_KEY, IMGBB_KEY

MB = 1 << 20


def image(index: int) -> UploadSource:
    made = UploadSource.from_bytes(samples.png(1 + index % 5, 1, pad_to=8192), f"{index}.png")
    assert made is not None
    return made


def connections(emu: HostEmulator) -> set[tuple[str, int]]:
    """The TCP connections the emulator was sent requests on."""
    return {r.peer for r in emu.requests if r.peer is not None}


async def test_sequential_rehosts_use_one_connection(
    host_emu: HostEmulator, tmp_path: Path
) -> None:
    """Download then upload, ten times over: one TCP connection for all twenty requests."""
    for index in range(10):
        host_emu.add_blob(f"b{index}.png", samples.png(2, 1 + index, pad_to=4096))
    async with new_http_client() as http:
        client = CheveretoClient("c", host_emu.chevereto_endpoint, CHEV_KEY, http, max_bytes=MB)
        fetcher = Fetcher(http, max_bytes=MB, spool_dir=tmp_path)
        for index in range(10):
            fetched = await fetcher.fetch(f"{host_emu.base_url}/cdn/b{index}.png", filename="b.png")
            assert isinstance(fetched, UploadSource)
            await client.upload(fetched, None)
    assert len(host_emu.uploads) == 10
    assert len(host_emu.requests) == 20
    assert len(connections(host_emu)) == 1


async def test_as_many_connections_stay_open_as_run_at_once(host_emu: HostEmulator) -> None:
    """Sixteen uploads at once, three times: the second and third wave connect no more."""
    async with new_http_client(concurrency=16) as http:
        client = ImgbbClient("z", host_emu.imgbb_endpoint, IMGBB_KEY, http, max_bytes=MB)
        host_emu.latency = 0.05  # all sixteen are in flight together
        for wave in range(3):
            await asyncio.gather(*(client.upload(image(wave * 16 + i), None) for i in range(16)))
    assert len(host_emu.uploads) == 48
    assert len(connections(host_emu)) <= 16


async def test_an_upload_is_sent_with_its_length_not_chunked(host_emu: HostEmulator) -> None:
    async with new_http_client() as http:
        client = ImgbbClient("z", host_emu.imgbb_endpoint, IMGBB_KEY, http, max_bytes=MB)
        await client.upload(image(0), None)
    headers = host_emu.uploads[0].headers
    assert "transfer-encoding" not in headers
    assert int(headers["content-length"]) > 8192
    assert headers["user-agent"].startswith("rehost/")


@contextlib.asynccontextmanager
async def server(app: web.Application) -> AsyncIterator[str]:
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.1)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


async def test_a_large_upload_streams_in_bounded_memory(tmp_path: Path) -> None:
    """A 24 MB file goes out while Python holds at most a few chunks of it at a time."""
    size = 24 * MB
    path = tmp_path / "big.png"
    with path.open("wb") as out:
        out.write(samples.png(2, 2))
        out.truncate(size)
    source = UploadSource.from_path(path)
    assert source is not None
    received = 0

    async def drain(request: web.Request) -> web.Response:
        nonlocal received
        async for chunk in request.content.iter_any():
            received += len(chunk)
        return web.json_response({"data": {"id": "x", "url_viewer": "http://v/x"}})

    app = web.Application(client_max_size=64 * MB)
    app.router.add_post("/1/upload", drain)
    async with server(app) as base, new_http_client() as http:
        client = ImgbbClient("z", f"{base}/1/upload", IMGBB_KEY, http, max_bytes=32 * MB)
        await client.upload(image(0), None)  # warm: connection, imports
        received = 0
        tracemalloc.start()
        try:
            await client.upload(source, None)
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
    assert received > size
    assert peak < 4 * MB, f"{peak / MB:.1f} MB held for a {size // MB} MB upload"


async def test_a_host_that_stops_reading_times_out_writing() -> None:
    """aiohttp has no write timeout of its own: httpx's is kept, as WriteTimeout."""
    stalled: list[asyncio.StreamWriter] = []

    async def never_read(_: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        stalled.append(writer)  # accepted, never read, never answered

    listener = await asyncio.start_server(never_read, "127.0.0.1", 0)
    port = listener.sockets[0].getsockname()[1]
    chunk = bytes(MB)

    async def body() -> AsyncIterator[bytes]:
        for _ in range(256):  # far more than the sockets' buffers hold
            yield chunk

    try:
        async with new_http_client() as http:
            loop = asyncio.get_running_loop()
            started = loop.time()
            with pytest.raises(httpx.WriteTimeout):
                await http.post(
                    f"http://127.0.0.1:{port}/upload",
                    content=body(),
                    headers={"Content-Length": str(256 * MB)},
                    timeout=httpx.Timeout(10.0, write=0.5),
                )
            assert loop.time() - started < 5.0
    finally:
        for writer in stalled:
            writer.close()
        listener.close()
        await listener.wait_closed()


async def test_a_slow_answer_is_a_read_timeout() -> None:
    async def slow(_: web.Request) -> web.Response:
        await asyncio.sleep(5)
        return web.Response(text="late")

    app = web.Application()
    app.router.add_get("/slow", slow)
    async with server(app) as base, new_http_client() as http:
        with pytest.raises(httpx.ReadTimeout):
            await http.get(f"{base}/slow", timeout=httpx.Timeout(10.0, read=0.2))


async def test_failures_keep_httpx_exceptions(host_emu: HostEmulator) -> None:
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        port = unused.getsockname()[1]
    async with new_http_client() as http:
        with pytest.raises(httpx.ConnectError):
            await http.get(f"http://127.0.0.1:{port}/")
        # A connection dropped before the answer: the host is unavailable, not slow.
        host_emu.script(Fault("drop"))
        client = ImgbbClient("z", host_emu.imgbb_endpoint, IMGBB_KEY, http, max_bytes=MB)
        with pytest.raises(HostUnavailable, match="could not be reached"):
            await client.upload(image(0), None)
        # And the client goes on working.
        assert (await client.upload(image(1), None)).image_id


async def test_redirects_are_seen_and_the_url_is_sent_as_given() -> None:
    seen: list[str] = []

    async def echo(request: web.Request) -> web.Response:
        seen.append(request.raw_path)
        if request.path == "/moved":
            raise web.HTTPFound("/echo?to=here")
        return web.Response(text=request.raw_path, headers={"Set-Cookie": "session=abc"})

    app = web.Application()
    app.router.add_get("/echo", echo)
    app.router.add_get("/moved", echo)
    # Discord's signed attachment links: the query must reach the server byte for byte.
    signed = "/echo?ex=6a1b2c3d&is=%2F%2Bx%3D&hm=ab%20cd&"
    async with server(app) as base, new_http_client() as http:
        answer = await http.get(base + signed)
        assert answer.text == signed
        moved = await http.get(f"{base}/moved")
        assert moved.status_code == 302 and moved.headers["location"] == "/echo?to=here"
        followed = await http.get(f"{base}/moved", follow_redirects=True)
        assert followed.text == "/echo?to=here"
        assert not http.cookies  # nothing is kept from what hosts set
    assert seen == [signed, "/moved", "/moved", "/echo?to=here"]


async def test_a_download_given_up_midway_leaves_the_pool_sound(host_emu: HostEmulator) -> None:
    """A body not read to its end closes its connection: the next request, which may take
    another from the pool, gets its own whole answer."""
    big, small = bytes(range(256)) * (8 * 4096), samples.png(3, 3)
    host_emu.add_blob("big.bin", big, content_type="application/octet-stream")
    host_emu.add_blob("small.png", small)
    async with new_http_client() as http:
        for _ in range(3):
            async with http.stream("GET", f"{host_emu.base_url}/cdn/big.bin") as response:
                async for _chunk in response.aiter_bytes():
                    break
            answer = await http.get(f"{host_emu.base_url}/cdn/small.png")
            assert answer.content == small
