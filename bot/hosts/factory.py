"""Build host clients from configuration."""

from __future__ import annotations

import httpx

from bot.config import HostSettings
from bot.hosts.base import HostClient
from bot.hosts.chevereto import CheveretoClient
from bot.hosts.imgbb import ImgbbClient

_CLIENTS: dict[str, type[HostClient]] = {"imgbb": ImgbbClient, "chevereto": CheveretoClient}


def build_client(settings: HostSettings, http: httpx.AsyncClient) -> HostClient:
    """The client for one ``[hosts.NAME]`` table."""
    return _CLIENTS[settings.dialect](
        settings.name,
        settings.endpoint,
        settings.api_key,
        http,
        max_bytes=settings.max_bytes,
        timeout=settings.timeout,
    )
