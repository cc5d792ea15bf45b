"""systemd's notification protocol (``sd_notify(3)``), written out: readiness, reloading,
stopping and watchdog pings for a ``Type=notify`` service (``deploy/rehost.service``).

The protocol is one ``AF_UNIX`` datagram of newline-separated ``KEY=VALUE`` lines, sent
to the socket ``$NOTIFY_SOCKET`` names (a name starting with ``@`` is in Linux's abstract
namespace: a NUL byte in its place). That is a few lines, so no library is needed. When
the variable is unset (the process was not started by systemd, or not as ``Type=notify``)
every function here does nothing, so callers need not check.

The watchdog pings (``WatchdogSec=``: systemd sets ``WATCHDOG_USEC``) are sent by a task
on the event loop, not by a thread: when the loop stalls (a blocking call, a busy loop)
the pings stop with it, and systemd kills and restarts the process.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import time
from collections.abc import AsyncIterator, Mapping

log = logging.getLogger(__name__)

# A send waits at most this long for systemd to take the datagram (it reads at once; a
# full queue must not hold the event loop for longer).
SEND_TIMEOUT = 1.0


def socket_address(environ: Mapping[str, str] | None = None) -> str | None:
    """Where notifications go: a path, or an abstract name (leading NUL); None: nowhere.

    Only ``/path`` and ``@name`` are understood: other forms (systemd's ``vsock:``, for
    virtual machines) are not for a service on the host, and are ignored."""
    environ = os.environ if environ is None else environ
    name = environ.get("NOTIFY_SOCKET", "")
    if name.startswith("@"):
        return "\0" + name[1:]
    if name.startswith("/"):
        return name
    return None


def notify(*lines: str, environ: Mapping[str, str] | None = None) -> bool:
    """Send ``lines`` (``"READY=1"``, ``"STATUS=..."``) in one datagram; True when sent."""
    address = socket_address(environ)
    if address is None:
        return False
    message = "\n".join(lines).encode()
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
            sock.settimeout(SEND_TIMEOUT)
            sock.sendto(message, address)
    except OSError as error:
        log.warning("could not notify systemd (%s): %s", lines[0], error)
        return False
    return True


def ready(status: str | None = None) -> bool:
    """The service is up: systemd finishes ``systemctl start`` (and a reload) here."""
    return notify("READY=1", *([f"STATUS={_one_line(status)}"] if status else []))


def reloading(status: str | None = None) -> bool:
    """A reload (SIGHUP) has begun; send :func:`ready` when it is done, refused or not.

    ``MONOTONIC_USEC`` lets systemd (``Type=notify-reload``, since v253) tell this reload
    from an older one; earlier versions ignore it."""
    now = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
    extra = [f"STATUS={_one_line(status)}"] if status else []
    return notify("RELOADING=1", f"MONOTONIC_USEC={now}", *extra)


def stopping(status: str | None = None) -> bool:
    """The service is shutting down (systemd shows "deactivating" until it exits)."""
    return notify("STOPPING=1", *([f"STATUS={_one_line(status)}"] if status else []))


def watchdog_interval(environ: Mapping[str, str] | None = None) -> float | None:
    """Seconds between pings: half of ``WATCHDOG_USEC``, as ``sd_watchdog_enabled(3)``
    advises; None when no watchdog is asked of this process (``WATCHDOG_PID`` names
    another one, or there is no value)."""
    environ = os.environ if environ is None else environ
    pid = environ.get("WATCHDOG_PID", "")
    if pid and pid != str(os.getpid()):
        return None
    try:
        usec = int(environ.get("WATCHDOG_USEC", ""))
    except ValueError:
        return None
    return usec / 2 / 1_000_000 if usec > 0 else None


@contextlib.asynccontextmanager
async def watchdog() -> AsyncIterator[None]:
    """Ping systemd's watchdog from the running loop for as long as the block runs."""
    interval = watchdog_interval()
    if interval is None or socket_address() is None:
        yield
        return
    task = asyncio.create_task(_ping(interval), name="systemd-watchdog")
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def _ping(interval: float) -> None:
    log.debug("pinging the systemd watchdog every %.3g s", interval)
    while True:
        notify("WATCHDOG=1")
        await asyncio.sleep(interval)


def _one_line(text: str) -> str:
    """A ``STATUS=`` value: a newline would start another assignment."""
    return " ".join(text.split())
