"""A community's own image host: its record sealed at rest, and the client that uses it.

A server or group may bring its own Chevereto or ImgBB-compatible endpoint and API key
when the operator allows it (``[communities] allow_own_host``). The record (dialect,
endpoint, key) is stored in ``community_settings.own_host`` sealed with Fernet under the
operator's ``REHOST_SECRET_KEY``: a copy of the database alone does not give the keys
away. Once opened, the key is added to the log redaction, so no log line can carry it; it
is never shown back to anyone, and uploads record the host's name (:data:`OWN_HOST`),
never its endpoint or key.

The endpoint is the community's choice, so the bot must not let it reach the operator's
own network: its client is built on the users'-links client (:mod:`bot.linkguard`),
whose every connection goes to public addresses only (or ``[links] allowed_networks``).
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import httpcore
import httpx
from cryptography.fernet import Fernet, InvalidToken

from bot.config import HostSettings
from bot.hosts.base import HostClient
from bot.hosts.factory import build_client
from bot.i18n import N_, Said
from bot.linkguard import AddressGuard, AddressRefused, GuardedBackend
from bot.logsafety import protect_handlers
from bot.uploader import RetryPolicy, Uploader

log = logging.getLogger(__name__)

OWN_HOST = "own"  # the host name an own host's uploads are recorded under
DIALECTS = ("chevereto", "imgbb")
OWN_MAX_BYTES = 32 * 1024 * 1024  # what the bot will send to an own host at most


class OwnHostError(ValueError):
    """A record a manager gave cannot be used; ``said`` says why, for them."""

    def __init__(self, said: Said) -> None:
        super().__init__(str(said))
        self.said = said


# Why an address is not public (bot.linkguard.address_class), as the refusal names it.
ADDRESS_KINDS = {
    "unspecified": N_("an unspecified address"),
    "loopback": N_("a loopback address"),
    "link-local": N_("a link-local address"),
    "multicast": N_("a multicast address"),
    "reserved": N_("a reserved address"),
    "unique-local": N_("a unique-local address"),
    "site-local": N_("a site-local address"),
    "shared": N_("a shared (carrier-grade NAT) address"),
    "private": N_("a private address"),
    "not global": N_("an address that is not globally reachable"),
}


@dataclass(frozen=True)
class OwnHost:
    dialect: str
    endpoint: str
    api_key: str = field(repr=False)

    def check(self) -> OwnHost:
        """This record, tidied, if it can be used (raises :class:`OwnHostError`)."""
        dialect = self.dialect.strip().lower()
        endpoint = self.endpoint.strip()
        key = self.api_key.strip()
        if dialect not in DIALECTS:
            raise OwnHostError(Said(N_("The dialect must be chevereto or imgbb.")))
        parts = urlsplit(endpoint)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise OwnHostError(Said(N_("The endpoint must be an http:// or https:// URL.")))
        if not key:
            raise OwnHostError(Said(N_("The API key is missing.")))
        return OwnHost(dialect, endpoint, key)

    @property
    def shown(self) -> Said:
        """What may be shown of it: the dialect and the endpoint's host, never the key."""
        return Said(
            N_("{dialect} at {host}"),
            {"dialect": self.dialect, "host": urlsplit(self.endpoint).hostname or ""},
        )


class Sealer:
    """Seals and opens own-host records with the operator's Fernet key."""

    def __init__(self, secret_key: str) -> None:
        self._fernet = Fernet(secret_key.encode())

    def seal(self, host: OwnHost) -> str:
        protect([host.api_key])
        data = {"dialect": host.dialect, "endpoint": host.endpoint, "api_key": host.api_key}
        return self._fernet.encrypt(json.dumps(data).encode()).decode()

    def open(self, sealed: str) -> OwnHost | None:
        """The record, or None when it cannot be opened (another key, damaged)."""
        try:
            data = json.loads(self._fernet.decrypt(sealed.encode()))
        except (InvalidToken, ValueError):
            log.warning("a community's own host record cannot be opened with this key")
            return None
        host = OwnHost(str(data["dialect"]), str(data["endpoint"]), str(data["api_key"]))
        protect([host.api_key])
        return host


async def endpoint_refusal(host: OwnHost, guard: AddressGuard) -> Said | None:
    """Why the bot will not send to this endpoint (it is not a public address, or cannot
    be resolved), for the manager; None when it may. The upload's own connection is
    checked again (DNS may change), this only answers at once."""
    parts = urlsplit(host.endpoint)
    name = parts.hostname or ""
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        await GuardedBackend(guard).checked_addresses(name, port, timeout=10.0)
    except AddressRefused as refused:
        kind = ADDRESS_KINDS.get(refused.reason, N_("an address that is not public"))
        return Said(
            N_("The endpoint {name} is {kind}: only public ones are allowed."),
            {"name": name, "kind": Said(kind)},
        )
    except httpcore.ConnectError:
        return Said(N_("The endpoint {name} cannot be resolved."), {"name": name})
    except httpcore.ConnectTimeout:
        return Said(N_("Resolving {name} took too long."), {"name": name})
    return None


def protect(secrets: list[str]) -> None:
    """No log line from now on carries these values."""
    protect_handlers(logging.getLogger().handlers, secrets)


class OwnHosts:
    """Uploaders for communities' own hosts, one per sealed record (kept while it is the
    same: its cooldowns are its own, not shared with other communities')."""

    def __init__(
        self,
        sealer: Sealer | None,
        links: httpx.AsyncClient,
        policy: RetryPolicy,
        time_budget: float = 30.0,
    ) -> None:
        self.sealer = sealer  # None: the operator allows no own hosts
        self._links = links  # the guarded client (bot.linkguard.new_link_client)
        self._policy = policy
        self._time_budget = time_budget
        self._uploaders: dict[str, Uploader] = {}

    @property
    def allowed(self) -> bool:
        return self.sealer is not None

    def client(self, host: OwnHost) -> HostClient:
        settings = HostSettings(
            name=OWN_HOST,
            dialect=host.dialect,
            endpoint=host.endpoint,
            api_key=host.api_key,
            max_bytes=OWN_MAX_BYTES,
            timeout=60.0,
        )
        return build_client(settings, self._links, self._time_budget)

    def uploader(self, sealed: str | None, others: list[HostClient]) -> Uploader | None:
        """The uploader trying the community's own host first, then ``others``; None when
        it has none (or own hosts are not allowed, or its record cannot be opened)."""
        if sealed is None or self.sealer is None:
            return None
        known = self._uploaders.get(sealed)
        if known is None:
            host = self.sealer.open(sealed)
            if host is None:
                return None
            if len(self._uploaders) > 256:
                self._uploaders.clear()
            known = Uploader([self.client(host)], self._policy)
            self._uploaders[sealed] = known
        own = known.clients[0]
        return Uploader([own, *others], self._policy, cooldowns=known.cooldowns, sleep=known._sleep)
