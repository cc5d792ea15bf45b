"""Keeping leases alive: a worker renews the rows it holds every few seconds, so that a
process that dies loses its claims quickly and one that lives keeps them."""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import uuid
from collections.abc import Callable, Iterable

log = logging.getLogger(__name__)
DEFAULT_LEASE = 15.0  # seconds; renewed every third of it


def worker_name(role: str) -> str:
    """Unique per process and role: ``host:pid:role:random``."""
    return f"{socket.gethostname()}:{os.getpid()}:{role}:{uuid.uuid4().hex[:6]}"


async def keep_renewing(
    renew: Callable[[Iterable[int]], None], held: Callable[[], Iterable[int]], lease: float
) -> None:
    """Renew ``held()`` every third of ``lease`` until cancelled."""
    while True:
        await asyncio.sleep(lease / 3)
        try:
            renew(list(held()))
        except Exception:
            log.exception("renewing leases failed")
