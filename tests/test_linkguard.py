"""The address guard for users' links, and the fetcher's link path over real httpx.

Nothing here sends traffic anywhere but 127.0.0.x: a refused address is refused before
any connection attempt, which a spy on the network backend below the guard proves.
"""

from __future__ import annotations

import ipaddress
import shutil
import ssl
import subprocess
from collections.abc import AsyncIterator, Iterable, Sequence
from pathlib import Path

import httpcore
import httpx
import pytest

from bot.config import parse_config
from bot.errors import ConfigError
from bot.fetch import (
    DELETE_LINK,
    LINK_TOO_SLOW,
    MAX_REDIRECTS,
    NOT_PUBLIC,
    WEB_PAGE,
    Fetcher,
    FetchProblem,
)
from bot.hosts.base import UploadSource
from bot.linkguard import (
    AddressGuard,
    AddressRefused,
    GuardedBackend,
    Resolve,
    address_class,
    new_link_client,
)
from bot.links import find_links, link_filename, link_sources, without_links
from sandbox import samples
from sandbox.weblinks import WebSite

LOOPBACK_ONLY = AddressGuard((ipaddress.ip_network("127.0.0.1/32"),))
PNG = samples.png(4, 3, (10, 200, 30))


# --- which addresses are public ---------------------------------------------------------


@pytest.mark.parametrize(
    ("address", "kind"),
    [
        ("0.0.0.0", "unspecified"),
        ("::", "unspecified"),
        ("127.0.0.1", "loopback"),
        ("127.45.6.7", "loopback"),
        ("::1", "loopback"),
        ("10.0.0.1", "private"),
        ("172.16.5.4", "private"),
        ("192.168.1.1", "private"),
        ("100.64.0.1", "shared"),
        ("169.254.169.254", "link-local"),  # the cloud metadata service
        ("fe80::1", "link-local"),
        ("fe80::1%2", "link-local"),
        ("224.0.0.1", "multicast"),
        ("239.255.255.250", "multicast"),
        ("ff02::1", "multicast"),
        ("fc00::1", "unique-local"),
        ("fd12:3456:789a::1", "unique-local"),
        ("fec0::1", "site-local"),
        ("240.0.0.1", "reserved"),
        ("255.255.255.255", "reserved"),
        ("0.1.2.3", "private"),  # "this network"
        ("192.0.2.10", "private"),  # documentation
        ("2001:db8::1", "private"),  # documentation
        ("::7f00:1", "reserved"),  # IPv4-compatible, deprecated
        # IPv6 addresses that reach an IPv4 one are judged by it.
        ("::ffff:127.0.0.1", "loopback"),
        ("::ffff:10.0.0.1", "private"),
        ("::ffff:169.254.169.254", "link-local"),
        ("64:ff9b::a00:1", "private"),  # NAT64 of 10.0.0.1
        ("2002:a00:1::", "private"),  # 6to4 of 10.0.0.1
    ],
)
def test_addresses_that_are_not_public_are_named(address: str, kind: str) -> None:
    parsed = ipaddress.ip_address(address)
    assert address_class(parsed) == kind
    assert AddressGuard().refusal(parsed) == kind


@pytest.mark.parametrize(
    "address",
    ["93.184.215.14", "1.1.1.1", "2606:4700::1111", "::ffff:93.184.215.14", "64:ff9b::101:101"],
)
def test_public_addresses_pass(address: str) -> None:
    assert AddressGuard().refusal(ipaddress.ip_address(address)) is None


def test_allowed_networks_let_some_through_and_no_more() -> None:
    guard = AddressGuard((ipaddress.ip_network("127.0.0.0/8"), ipaddress.ip_network("fd00:1::/64")))
    assert guard.refusal(ipaddress.ip_address("127.0.0.1")) is None
    assert guard.refusal(ipaddress.ip_address("::ffff:127.0.0.1")) is None  # the same address
    assert guard.refusal(ipaddress.ip_address("fd00:1::5")) is None
    assert guard.refusal(ipaddress.ip_address("::1")) == "loopback"
    assert guard.refusal(ipaddress.ip_address("10.0.0.1")) == "private"
    assert guard.refusal(ipaddress.ip_address("fd00:2::5")) == "unique-local"


# --- resolution: names are judged by every address they resolve to ---------------------


class Spy(httpcore.AsyncNetworkBackend):
    """The backend below the guard: records each connection attempt, makes none."""

    def __init__(self) -> None:
        self.attempts: list[tuple[str, int]] = []

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        self.attempts.append((host, port))
        raise httpcore.ConnectError("the spy connects nowhere")


def stub_resolver(table: dict[str, Sequence[str]]) -> tuple[list[str], Resolve]:
    asked: list[str] = []

    async def resolve(host: str, port: int) -> Sequence[str]:
        asked.append(host)
        if host not in table:
            raise OSError("no such name")
        return table[host]

    return asked, resolve


@pytest.mark.parametrize(
    ("addresses", "kind"),
    [
        (["10.1.2.3"], "private"),
        (["127.0.0.1"], "loopback"),
        (["::1"], "loopback"),
        (["fd00::7"], "unique-local"),
        (["169.254.169.254"], "link-local"),
        (["::ffff:192.168.0.1"], "private"),
        (["93.184.215.14", "10.0.0.1"], "private"),  # one bad address spoils the name
    ],
)
async def test_a_name_resolving_to_a_private_address_is_refused_before_connecting(
    addresses: list[str], kind: str
) -> None:
    asked, resolve = stub_resolver({"images.example": addresses})
    spy = Spy()
    backend = GuardedBackend(AddressGuard(), resolve=resolve, inner=spy)
    with pytest.raises(AddressRefused) as refused:
        await backend.connect_tcp("images.example", 443)
    assert refused.value.reason == kind and refused.value.host == "images.example"
    assert asked == ["images.example"] and spy.attempts == []


async def test_the_connection_goes_to_the_address_that_was_checked() -> None:
    """Resolved once, checked, then connected to by address: a second DNS answer (a
    rebinding) is never asked for."""
    answers = iter([["93.184.215.14"], ["10.0.0.1"]])

    async def rebinding(host: str, port: int) -> Sequence[str]:
        return next(answers)

    spy = Spy()
    backend = GuardedBackend(AddressGuard(), resolve=rebinding, inner=spy)
    with pytest.raises(httpcore.ConnectError):
        await backend.connect_tcp("rebind.example", 80)
    assert spy.attempts == [("93.184.215.14", 80)]
    assert next(answers) == ["10.0.0.1"], "the name was resolved only once"


async def test_literal_addresses_are_not_resolved() -> None:
    asked, resolve = stub_resolver({})
    spy = Spy()
    backend = GuardedBackend(AddressGuard(), resolve=resolve, inner=spy)
    for host in ("10.0.0.1", "::1", "[::1]", "::ffff:127.0.0.1"):
        with pytest.raises(AddressRefused):
            await backend.connect_tcp(host, 80)
    assert asked == [] and spy.attempts == []


async def test_unknown_names_and_unix_sockets_do_not_connect() -> None:
    _, resolve = stub_resolver({})
    spy = Spy()
    backend = GuardedBackend(AddressGuard(), resolve=resolve, inner=spy)
    with pytest.raises(httpcore.ConnectError):
        await backend.connect_tcp("nowhere.example", 80)
    with pytest.raises(AddressRefused):
        await backend.connect_unix_socket("/var/run/docker.sock")
    assert spy.attempts == []


# --- the fetcher's link path, over real httpx and a real local web site ----------------


@pytest.fixture
async def site() -> AsyncIterator[WebSite]:
    async with WebSite("127.0.0.1") as web:
        yield web


async def fetch_link(
    url: str, guard: AddressGuard = LOOPBACK_ONLY, inner: httpcore.AsyncNetworkBackend | None = None
) -> UploadSource | FetchProblem:
    async with new_link_client(guard, inner=inner) as links:
        fetcher = Fetcher(links, max_bytes=1 << 20, links=links)
        return await fetcher.fetch(url, filename=link_filename(url), user_link=True)


class Recorder(httpcore.AsyncNetworkBackend):
    """The real backend, with every connection attempt recorded."""

    def __init__(self) -> None:
        self.attempts: list[tuple[str, int]] = []
        self._real = httpcore.AnyIOBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        self.attempts.append((host, port))
        return await self._real.connect_tcp(host, port, timeout, local_address, socket_options)


async def test_an_image_link_is_fetched_through_redirects(site: WebSite) -> None:
    site.add_image("/files/cat", PNG)
    site.add_redirect("/short", "/hop")
    site.add_redirect("/hop", site.url("/files/cat"), status=301)
    recorder = Recorder()
    fetched = await fetch_link(site.url("/short"), inner=recorder)
    assert isinstance(fetched, UploadSource)
    assert fetched.open().read() == PNG and fetched.filename == "short.png"
    assert site.paths() == ["/short", "/hop", "/files/cat"]
    assert site.requests[0].headers["User-Agent"].startswith("rehost/")
    # Every connection (one per hop: a redirect's body is not read) went through the guard.
    assert recorder.attempts == [("127.0.0.1", site.port)] * 3


def self_signed(tmp_path: Path, name: str) -> tuple[Path, Path]:
    """A certificate for ``name`` (and its key), made by the openssl command."""
    if shutil.which("openssl") is None:
        pytest.skip("needs the openssl command")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    command = ["openssl", "req", "-x509", "-nodes", "-days", "1", "-subj", f"/CN={name}"]
    command += ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1"]
    command += ["-addext", f"subjectAltName=DNS:{name}", "-keyout", str(key), "-out", str(cert)]
    subprocess.run(command, check=True, capture_output=True)
    return cert, key


async def test_https_is_pinned_to_the_checked_address_and_keeps_the_name(
    tmp_path: Path,
) -> None:
    """The connection goes to the address checked; TLS still names the host (SNI), the
    certificate is checked against that name, and the Host header is the link's."""
    cert, key = self_signed(tmp_path, "images.test")
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server.load_cert_chain(cert, key)
    names: list[str | None] = []

    def remember(sock: ssl.SSLObject, name: str | None, context: ssl.SSLContext) -> None:
        names.append(name)

    server.sni_callback = remember
    trusted = ssl.create_default_context(cafile=str(cert))
    _, resolve = stub_resolver({"images.test": ["127.0.0.1"], "other.test": ["127.0.0.1"]})
    async with WebSite("127.0.0.1", ssl_context=server) as site:
        site.add_image("/cat.png", PNG)
        recorder = Recorder()
        client = new_link_client(
            LOOPBACK_ONLY, resolve=resolve, inner=recorder, ssl_context=trusted
        )
        async with client as links:
            fetcher = Fetcher(links, max_bytes=1 << 20, links=links)
            good = await fetcher.fetch(
                f"https://images.test:{site.port}/cat.png", filename="cat.png", user_link=True
            )
            # The same address under a name the certificate does not hold: refused by TLS.
            wrong = await fetcher.fetch(
                f"https://other.test:{site.port}/cat.png", filename="cat.png", user_link=True
            )
    assert isinstance(good, UploadSource) and good.open().read() == PNG
    assert isinstance(wrong, FetchProblem) and wrong.kind == "unavailable"
    assert recorder.attempts == [("127.0.0.1", site.port)] * 2
    assert names == ["images.test", "other.test"]
    assert [seen.host for seen in site.requests] == [f"images.test:{site.port}"]


async def test_redirects_stop_after_the_limit(site: WebSite) -> None:
    for hop in range(MAX_REDIRECTS + 1):
        site.add_redirect(f"/r{hop}", f"/r{hop + 1}")
    site.add_image(f"/r{MAX_REDIRECTS + 1}", PNG)
    fetched = await fetch_link(site.url("/r0"))
    assert isinstance(fetched, FetchProblem) and "redirects more than" in str(fetched.said)
    assert len(site.requests) == MAX_REDIRECTS + 1


@pytest.mark.parametrize(
    ("target", "kind"),
    [("http://10.0.0.1/cat.png", "private"), ("http://[::1]:{port}/cat.png", "loopback")],
)
async def test_a_redirect_to_a_private_address_is_refused_before_connecting(
    site: WebSite, target: str, kind: str
) -> None:
    site.add_redirect("/go", target.format(port=site.port))
    recorder = Recorder()
    fetched = await fetch_link(site.url("/go"), inner=recorder)
    assert fetched == FetchProblem("not_public", NOT_PUBLIC)
    assert recorder.attempts == [("127.0.0.1", site.port)]  # only the allowed first hop


async def test_a_redirect_to_loopback_is_refused_when_only_another_address_is_allowed() -> None:
    async with WebSite("127.0.0.2") as outside, WebSite("127.0.0.1") as inside:
        inside.add_image("/secret.png", PNG)
        outside.add_redirect("/go", inside.url("/secret.png"))
        recorder = Recorder()
        allowed = AddressGuard((ipaddress.ip_network("127.0.0.2/32"),))
        fetched = await fetch_link(outside.url("/go"), allowed, inner=recorder)
    assert fetched == FetchProblem("not_public", NOT_PUBLIC)
    assert inside.requests == [] and recorder.attempts == [("127.0.0.2", outside.port)]


async def test_with_no_allowance_even_the_first_hop_is_refused(site: WebSite) -> None:
    site.add_image("/cat.png", PNG)
    recorder = Recorder()
    fetched = await fetch_link(site.url("/cat.png"), AddressGuard(), inner=recorder)
    assert isinstance(fetched, FetchProblem) and fetched.kind == "not_public"
    assert site.requests == [] and recorder.attempts == []


async def test_a_web_page_is_named_as_such(site: WebSite) -> None:
    page = site.add_page("/gallery")
    assert await fetch_link(page) == FetchProblem("web_page", WEB_PAGE)
    site.add_image("/untyped", b"  <html><body>hi</body></html>", content_type=None)
    assert await fetch_link(site.url("/untyped")) == FetchProblem("web_page", WEB_PAGE)
    site.add_image("/notes.pdf", b"%PDF-1.4\n" + b"x" * 64, "application/pdf")
    other = await fetch_link(site.url("/notes.pdf"))
    assert isinstance(other, FetchProblem) and other.kind == "not_image"


async def test_links_that_are_not_web_links_or_not_there(site: WebSite) -> None:
    site.add_redirect("/ftp", "ftp://files.example/cat.png")
    for url in ("ftp://files.example/cat.png", site.url("/ftp")):
        fetched = await fetch_link(url)
        assert isinstance(fetched, FetchProblem) and fetched.kind == "bad_link"
    missing = await fetch_link(site.url("/missing.png"))
    assert isinstance(missing, FetchProblem) and "HTTP 404" in str(missing.said)


async def test_a_delete_link_is_never_requested(site: WebSite) -> None:
    """A Chevereto delete link deletes on the first GET: given, or reached by a redirect."""
    delete = site.add_image("/image/AbC1/delete/0123abcd", PNG)
    site.add_redirect("/innocent", delete)
    for url in (delete, site.url("/innocent")):
        assert await fetch_link(url) == FetchProblem("delete_link", DELETE_LINK)
    assert site.paths() == ["/innocent"]


async def test_a_link_that_never_ends_is_given_up_at_its_deadline(site: WebSite) -> None:
    """Every read is quick, so no read times out: the deadline for the whole link ends it
    (long before the size cap)."""
    endless = site.add_endless("/endless.png", PNG[:16])
    async with new_link_client(LOOPBACK_ONLY) as links:
        fetcher = Fetcher(links, max_bytes=1 << 30, links=links, link_deadline=0.2)
        fetched = await fetcher.fetch(endless, filename="endless.png", user_link=True)
    assert fetched == FetchProblem("unavailable", LINK_TOO_SLOW)
    assert site.paths() == ["/endless.png"]


async def test_without_a_link_client_links_are_refused(site: WebSite) -> None:
    site.add_image("/cat.png", PNG)
    async with new_link_client(LOOPBACK_ONLY) as http:
        fetcher = Fetcher(http, max_bytes=1 << 20)
        fetched = await fetcher.fetch(site.url("/cat.png"), filename="cat", user_link=True)
    assert isinstance(fetched, FetchProblem) and site.requests == []


# --- finding links in what people write ---------------------------------------------------


def test_links_are_found_in_prose() -> None:
    text = (
        "look: https://a.example/cat.png, and <https://b.example/x.jpg> (see "
        "https://en.wikipedia.org/wiki/Cat_(film)) https://a.example/cat.png ftp://c/d "
        "||https://d.example/s.png||"
    )
    assert find_links(text) == [
        "https://a.example/cat.png",
        "https://b.example/x.jpg",
        "https://en.wikipedia.org/wiki/Cat_(film)",
        "https://d.example/s.png",
    ]
    assert without_links("https://a.example/cat.png 1d") == "1d"
    assert find_links("http://[::1") == []


def test_link_sources_are_marked_as_users_links() -> None:
    refs = link_sources(["https://x.example/a/b%20c.png?s=1", "https://x.example/", "https://y/"])
    assert [r.filename for r in refs] == ["b c.png", "x.example", "y"]
    assert all(r.user_link for r in refs)
    assert [r.item_key for r in refs] == ["link:0", "link:1", "link:2"]
    assert refs[0].from_json(refs[0].to_json()) == refs[0]


# --- the setting ------------------------------------------------------------------------


def _config(tmp_path: Path, links: dict[str, object]) -> object:
    raw = {
        "upload": {"hosts": ["h"]},
        "hosts": {"h": {"dialect": "chevereto", "endpoint": "http://h/api", "api_key": "k"}},
        "links": links,
    }
    return parse_config(raw, base_dir=tmp_path, environ={})


def test_allowed_networks_are_read_and_a_bad_one_names_its_key(tmp_path: Path) -> None:
    config = _config(tmp_path, {"allowed_networks": ["127.0.0.0/8", "fd00::/8", "10.1.2.3"]})
    assert [str(n) for n in config.links.allowed_networks] == [  # type: ignore[attr-defined]
        "127.0.0.0/8",
        "fd00::/8",
        "10.1.2.3/32",
    ]
    with pytest.raises(ConfigError) as error:
        _config(tmp_path, {"allowed_networks": ["127.0.0.0/8", "10.0.0.0/33"]})
    assert str(error.value).startswith("links.allowed_networks[1]")
    with pytest.raises(ConfigError, match=r"links\.allowed_networks\[0\]"):
        _config(tmp_path, {"allowed_networks": [8]})
    with pytest.raises(ConfigError, match=r"links\.allowed_networks"):
        _config(tmp_path, {"allowed_networks": "127.0.0.0/8"})


async def test_the_link_client_keeps_no_cookie_for_the_next_users_fetch() -> None:
    """A cookie a site set while fetching one user's link is not sent with the next."""
    request = httpx.Request("GET", "https://images.example.org/a.png")
    response = httpx.Response(200, headers={"set-cookie": "sid=ann; Path=/"}, request=request)
    async with new_link_client(AddressGuard(())) as client, httpx.AsyncClient() as plain:
        client.cookies.extract_cookies(response)
        plain.cookies.extract_cookies(response)
        assert len(plain.cookies) == 1, "an ordinary client would keep it"
        assert len(client.cookies) == 0
