"""Submit a batch and work it: the crash test kills this process in the middle of it.

Usage: python -m tests.crash_worker DB ENDPOINT_BASE URL...  (DB: a file or a postgresql:// URL)
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

from bot.requests import RehostRequest, SourceRef
from tests.service_harness import service_for


class _Endpoints:
    """Just what service_for reads from an emulator: its two endpoints."""

    def __init__(self, base: str) -> None:
        self.chevereto_endpoint = f"{base}/api/1/upload"
        self.imgbb_endpoint = f"{base}/1/upload"


async def main(db: str, base: str, urls: list[str]) -> None:
    refs = [SourceRef(filename=f"{i}.png", url=url) for i, url in enumerate(urls)]
    target = db if "://" in db else Path(db)  # a PostgreSQL URL, or a SQLite file
    async with service_for(_Endpoints(base), target, lease=1.0) as h:  # type: ignore[arg-type]
        print("started", flush=True)
        await h.service.submit(
            RehostRequest(
                platform="test", chat_id="chat-9", owner_id="ann", sources=refs, key="batch-1"
            )
        )
        h.service.worker.serve("test")
        await h.service.worker.run()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2], sys.argv[3:]))
