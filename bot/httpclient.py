"""The one place the shared ``httpx.AsyncClient`` is configured."""

from __future__ import annotations

import httpx

USER_AGENT = "rehost/0.1"


def new_http_client(**overrides: object) -> httpx.AsyncClient:
    """A client that never follows redirects on its own: a Chevereto delete link answers a
    redirect that must be seen, not followed."""
    options: dict[str, object] = {
        "follow_redirects": False,
        "headers": {"User-Agent": USER_AGENT},
        "limits": httpx.Limits(max_connections=32, max_keepalive_connections=8),
        "timeout": httpx.Timeout(60.0, connect=10.0),
    }
    options.update(overrides)
    return httpx.AsyncClient(**options)  # type: ignore[arg-type]
