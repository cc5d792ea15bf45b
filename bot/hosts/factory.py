"""Build host clients from configuration."""

from __future__ import annotations

import httpx

from bot.config import HostSettings
from bot.hosts.base import HostClient
from bot.hosts.chevereto import CheveretoClient
from bot.hosts.imgbb import ImgbbClient

_CLIENTS: dict[str, type[HostClient]] = {"imgbb": ImgbbClient, "chevereto": CheveretoClient}


def build_client(
    settings: HostSettings, http: httpx.AsyncClient, default_budget: float = 30.0
) -> HostClient:
    """The client for one ``[hosts.NAME]`` table (``default_budget``: ``[upload]``'s
    ``host_time_budget``, unless the host sets its own)."""
    return _CLIENTS[settings.dialect](
        settings.name,
        settings.endpoint,
        settings.api_key,
        http,
        max_bytes=settings.max_bytes,
        timeout=settings.timeout,
        formats=settings.formats or None,
        time_budget=settings.time_budget or default_budget,
    )
