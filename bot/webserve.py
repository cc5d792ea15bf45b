"""Serving a small aiohttp application on a ``(host, port)`` of the configuration (the
Telegram webhook, the health and metrics endpoint)."""

from __future__ import annotations

from aiohttp import web


async def listen(
    app: web.Application, address: tuple[str, int], *, shutdown_grace: float
) -> web.AppRunner:
    """Serve ``app`` on ``address`` (port 0: any free one); the runner, to clean up when
    stopping (``shutdown_grace``: seconds a request in flight gets to finish). Raises
    OSError when the address cannot be used (in use, no permission), having cleaned up."""
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=shutdown_grace)
    await runner.setup()
    host, port = address
    try:
        await web.TCPSite(runner, host, port).start()
    except BaseException:
        await runner.cleanup()
        raise
    return runner
