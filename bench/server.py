"""The host emulator in its own process, so its memory and CPU are not the bot's.

``python -m bench.server --latency S --blobs JSON`` serves both host dialects and the CDN
stand-in blobs named in JSON (a list of ``[prefix, count, size]``), prints one JSON line
(``{"base": ..., "stats": ...}``) once listening, and runs until its standard input closes.
``GET <stats>`` answers how many upload requests the emulator has received so far, and the
CPU seconds it has used.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import socket
import sys
import time

from aiohttp import web

from bench.common import API_KEY, MB, blob_name, image
from sandbox.hostemu import HostEmulator


async def _serve(latency: float, blobs: list[tuple[str, int, int]]) -> None:
    emulator = HostEmulator(
        api_keys=(API_KEY,),
        latency=latency,
        imgbb_max_bytes=32 * MB,
        chevereto_max_bytes=32 * MB,
        keep_bytes=False,
    )
    await emulator.start()

    async def stats(_: web.Request) -> web.Response:
        return web.json_response(
            {
                "uploads": len(emulator.uploads),
                "requests": len(emulator.requests),
                "cpu": time.process_time(),  # so a reader can tell it is not the bottleneck
            }
        )

    app = web.Application()
    app.router.add_get("/stats", stats)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    await web.SockSite(runner, sock).start()
    try:
        for prefix, count, size in blobs:
            for index in range(count):
                emulator.add_blob(blob_name(prefix, index), image(prefix, index, size))
        port = sock.getsockname()[1]
        ready = {"base": emulator.base_url, "stats": f"http://127.0.0.1:{port}/stats"}
        print(json.dumps(ready), flush=True)
        # Serve until the parent closes our standard input (or dies).
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)
    finally:
        await runner.cleanup()
        await emulator.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.server")
    parser.add_argument("--latency", type=float, default=0.0)
    parser.add_argument("--blobs", default="[]", help="JSON list of [prefix, count, size]")
    args = parser.parse_args(argv)
    blobs = [(str(p), int(c), int(s)) for p, c, s in json.loads(args.blobs)]
    asyncio.run(_serve(args.latency, blobs))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
