"""Fetching links users give without letting them reach the operator's own network.

A user's link (``/upload url:``, a link in a private chat) is fetched by the bot, so a
link to ``http://10.0.0.5/admin`` or ``http://[::1]:6379`` would make the bot a way into
the networks it runs in. :class:`AddressGuard` says which addresses are public;
:func:`new_link_client` builds the one ``httpx.AsyncClient`` that fetches users' links,
whose every new connection goes through :class:`GuardedBackend`.

Why the check sits in the connection itself: httpx resolves names when it connects, so a
check made before the request (resolve, look, then let httpx connect) can be cheated by a
name whose DNS answer changes between the two lookups (DNS rebinding). httpcore, below
httpx, opens every TCP connection through a network backend's ``connect_tcp(host,
port)``. :class:`GuardedBackend` resolves the name once, checks every address it resolved
to, and connects to a checked address itself. httpcore then does TLS over that stream with
the URL's host name as SNI and for certificate checks, and httpx sends the URL's Host
header: only the address is pinned. The alternative, rewriting the URL to the address with
a Host header and the ``sni_hostname`` extension, would key httpcore's keep-alive pool by
address, so a TLS connection made for one name could carry requests for another. Redirects
are followed by the fetcher one hop at a time, each a request of its own, so every hop's
connection is checked too; a kept-alive connection is reused only for its own origin,
and its address was checked when it was opened.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import socket
import ssl
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from http.cookiejar import CookieJar, DefaultCookiePolicy

import httpcore
import httpx

from bot.httpclient import USER_AGENT

log = logging.getLogger(__name__)

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
# Turns a host name into the addresses it stands for (getaddrinfo by default).
Resolve = Callable[[str, int], Awaitable[Sequence[str]]]

# IPv6 prefixes that carry an IPv4 address in their last 32 bits and reach it: NAT64
# (RFC 6052). IPv4-mapped (::ffff:0:0/96) and 6to4 (2002::/16) are read by ipaddress.
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")
_SHARED = ipaddress.IPv4Network("100.64.0.0/10")  # carrier-grade NAT (RFC 6598)


class AddressRefused(httpx.ConnectError):
    """A link leads to an address that is not public: nothing was sent to it."""

    def __init__(self, host: str, address: str, reason: str) -> None:
        super().__init__(f"{host} resolves to {address} ({reason}): not a public address")
        self.host = host
        self.address = address
        self.reason = reason


def embedded_ipv4(address: IPAddress) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 address reaches (IPv4-mapped, NAT64, 6to4), if any."""
    if isinstance(address, ipaddress.IPv4Address):
        return None
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address in _NAT64:
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return address.sixtofour


def address_class(address: IPAddress) -> str | None:
    """Why ``address`` is not public (``"loopback"``, ``"private"``...), or ``None``.

    An IPv6 address that carries an IPv4 one (``::ffff:10.0.0.1``) is judged by it.
    """
    inner = embedded_ipv4(address)
    if inner is not None:
        return address_class(inner)
    checks: list[tuple[str, bool]] = [
        ("unspecified", address.is_unspecified),
        ("loopback", address.is_loopback),
        ("link-local", address.is_link_local),
        ("multicast", address.is_multicast),
        ("reserved", address.is_reserved),
    ]
    if isinstance(address, ipaddress.IPv6Address):
        checks += [
            ("unique-local", address in ipaddress.IPv6Network("fc00::/7")),
            ("site-local", address.is_site_local),
        ]
    else:
        checks.append(("shared", address in _SHARED))
    checks += [("private", address.is_private), ("not global", not address.is_global)]
    return next((name for name, hit in checks if hit), None)


@dataclass(frozen=True)
class AddressGuard:
    """Public addresses pass; others only inside ``allowed`` (``[links]
    allowed_networks``)."""

    allowed: tuple[IPNetwork, ...] = ()

    def refusal(self, address: IPAddress) -> str | None:
        """Why the bot must not connect to ``address``, or ``None`` when it may."""
        reason = address_class(address)
        if reason is None:
            return None
        inner = embedded_ipv4(address)
        candidates = [address] if inner is None else [address, inner]
        if any(a in network for a in candidates for network in self.allowed):
            return None
        return reason


async def resolve_host(host: str, port: int) -> list[str]:
    """Every address ``host`` resolves to (the system resolver, off the event loop)."""
    infos = await asyncio.get_running_loop().getaddrinfo(
        host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP
    )
    return [str(info[4][0]) for info in infos]


class GuardedBackend(httpcore.AsyncNetworkBackend):
    """Opens a TCP connection only to checked addresses: resolve once, check every
    address, connect to the checked one (see the module's docstring)."""

    def __init__(
        self,
        guard: AddressGuard,
        *,
        resolve: Resolve = resolve_host,
        inner: httpcore.AsyncNetworkBackend | None = None,
    ) -> None:
        self.guard = guard
        self._resolve = resolve
        self._inner = inner or httpcore.AnyIOBackend()

    async def checked_addresses(
        self, host: str, port: int, timeout: float | None = None
    ) -> list[IPAddress]:
        """The addresses to connect to; :class:`AddressRefused` if any is not allowed."""
        try:
            literal: IPAddress | None = ipaddress.ip_address(host.strip("[]"))
        except ValueError:
            literal = None
        if literal is not None:
            addresses = [literal]
        else:
            try:
                async with asyncio.timeout(timeout):
                    names = await self._resolve(host, port)
            except TimeoutError:
                raise httpcore.ConnectTimeout(f"resolving {host} took too long") from None
            except OSError:
                raise httpcore.ConnectError(f"{host} could not be resolved") from None
            addresses = _unique(ipaddress.ip_address(name) for name in names)
        if not addresses:
            raise httpcore.ConnectError(f"{host} resolves to no address")
        # All or nothing: a name that resolves to a private address is refused even when
        # it also has public ones (it is either misconfigured or a trap).
        for address in addresses:
            reason = self.guard.refusal(address)
            if reason is not None:
                log.info("refused a link: %s resolves to %s (%s)", host, address, reason)
                raise AddressRefused(host, str(address), reason)
        return addresses

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        addresses = await self.checked_addresses(host, port, timeout)
        failure: Exception | None = None
        for address in addresses:
            try:
                return await self._inner.connect_tcp(
                    str(address),
                    port,
                    timeout=timeout,
                    local_address=local_address,
                    socket_options=socket_options,
                )
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as error:
                failure = error  # try the next checked address
        assert failure is not None
        raise failure

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        raise AddressRefused(path, path, "unix socket")

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


def _unique(addresses: Iterable[IPAddress]) -> list[IPAddress]:
    return list(dict.fromkeys(addresses))


class GuardedTransport(httpx.AsyncHTTPTransport):
    """httpx's own transport (request and exception mapping, response streams) over a
    connection pool whose connections are opened by a :class:`GuardedBackend`.

    httpx does not pass a network backend through to httpcore, so the pool it built is
    replaced by one that has it; a test checks that every connection goes through it.
    """

    def __init__(
        self,
        backend: GuardedBackend,
        *,
        limits: httpx.Limits,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        super().__init__(limits=limits, trust_env=False)
        self._pool = httpcore.AsyncConnectionPool(
            ssl_context=ssl_context or httpx.create_ssl_context(trust_env=False),
            max_connections=limits.max_connections,
            max_keepalive_connections=limits.max_keepalive_connections,
            keepalive_expiry=limits.keepalive_expiry,
            network_backend=backend,
        )


def new_link_client(
    guard: AddressGuard,
    *,
    resolve: Resolve = resolve_host,
    inner: httpcore.AsyncNetworkBackend | None = None,
    ssl_context: ssl.SSLContext | None = None,
) -> httpx.AsyncClient:
    """The client for users' links. It follows no redirect itself (the fetcher checks each
    hop) and ignores proxy settings from the environment: through a proxy, the address
    checked would be the proxy's, not the link's. ``ssl_context``: the certificates to
    trust (default: the system's)."""
    backend = GuardedBackend(guard, resolve=resolve, inner=inner)
    limits = httpx.Limits(max_connections=16, max_keepalive_connections=4)
    # No cookies kept: a cookie one user's link set must not go with another user's fetch.
    no_cookies = CookieJar(policy=DefaultCookiePolicy(allowed_domains=[]))
    return httpx.AsyncClient(
        transport=GuardedTransport(backend, limits=limits, ssl_context=ssl_context),
        cookies=no_cookies,
        follow_redirects=False,
        trust_env=False,
        headers={"User-Agent": USER_AGENT, "Accept": "image/*"},
        timeout=httpx.Timeout(60.0, connect=10.0),
    )
