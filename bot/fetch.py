"""Bounded, streaming download of chat attachments.

The platform's declared size is checked before any byte is fetched; the cap is enforced
again while streaming (declared sizes and Content-Length can lie) and the download is
aborted the moment it is exceeded. The first bytes decide whether it is an image at all.
Small files stay in memory; past ``spool_threshold`` the bytes go to a temporary file, so
memory stays bounded however large or numerous the attachments are.

A link a user gave (``user_link``) is fetched the same way, but only through the guarded
client of :mod:`bot.linkguard` (public addresses only), following at most
:data:`MAX_REDIRECTS` redirects one hop at a time, so that every hop is checked.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import httpx

from bot.hosts.base import UploadSource
from bot.i18n import N_, Said, Size, said
from bot.linkguard import AddressRefused
from bot.media import SNIFF_BYTES, SUPPORTED, ImageType, sniff

FORMATS = ", ".join(t.extension.upper() for t in SUPPORTED)
_FORMATS = {"formats": FORMATS}
MAX_REDIRECTS = 5
REDIRECT_CODES = frozenset({301, 302, 303, 307, 308})
WEB_PAGE = N_("that link is a web page, not an image")
NOT_PUBLIC = N_(
    "that link leads to a private or local network address; the bot fetches only public ones"
)
NOT_WEB = N_("only http:// and https:// links can be rehosted")
DELETE_LINK = N_("that is an image's delete link, and opening it would delete the image")
LINK_TOO_SLOW = N_("downloading the link took too long")
# Seconds a link may take in all, redirects and body: a site sending a byte now and then
# would otherwise hold a download slot for as long as each read stays under its timeout.
LINK_DEADLINE = 120.0
_PAGE_TYPES = ("text/html", "application/xhtml+xml")


@dataclass(frozen=True)
class FetchProblem:
    """Why an attachment was not fetched, in words fit for the user."""

    # too_large, not_image, unavailable; for links also web_page, not_public, bad_link,
    # delete_link
    kind: str
    message: str | Said  # a msgid (the module's constants), or one with parameters

    @property
    def said(self) -> Said:
        return said(self.message)


class Fetcher:
    def __init__(
        self,
        http: httpx.AsyncClient,
        *,
        max_bytes: int,
        spool_threshold: int = 1024 * 1024,
        spool_dir: Path | None = None,
        timeout: httpx.Timeout | None = None,
        links: httpx.AsyncClient | None = None,
        link_deadline: float = LINK_DEADLINE,
    ) -> None:
        self._http = http
        # Users' links go only through this client (bot.linkguard.new_link_client); with
        # none, they are refused.
        self._links = links
        self.link_deadline = link_deadline
        self.max_bytes = max_bytes
        self._spool_threshold = spool_threshold
        self._spool_dir = spool_dir
        self._timeout = timeout or httpx.Timeout(60.0, connect=10.0)

    def too_large(self, size: int) -> FetchProblem:
        return FetchProblem(
            "too_large",
            Said(
                N_("the file is {size}; the limit is {limit}"),
                {"size": Size(size), "limit": Size(self.max_bytes)},
            ),
        )

    def not_image(self) -> FetchProblem:
        return FetchProblem(
            "not_image", Said(N_("the file is not a supported image ({formats})"), _FORMATS)
        )

    async def fetch(
        self,
        url: str,
        *,
        filename: str,
        declared_size: int | None = None,
        user_link: bool = False,
    ) -> UploadSource | FetchProblem:
        """Download ``url`` into an :class:`UploadSource`, or say why not."""
        if declared_size is not None and declared_size > self.max_bytes:
            return self.too_large(declared_size)
        if user_link:
            return await self._fetch_link(url, filename)
        try:
            async with self._http.stream("GET", url, timeout=self._timeout) as response:
                if response.status_code != 200:
                    return FetchProblem(
                        "unavailable",
                        Said(
                            N_("the file could not be downloaded (HTTP {status})"),
                            {"status": response.status_code},
                        ),
                    )
                length = response.headers.get("content-length", "")
                if length.isdigit() and int(length) > self.max_bytes:
                    return self.too_large(int(length))
                return await self._read(response, filename)
        except httpx.TimeoutException:
            return FetchProblem("unavailable", N_("downloading the file took too long"))
        except httpx.TransportError:
            return FetchProblem("unavailable", N_("the file could not be downloaded"))

    async def _fetch_link(self, url: str, filename: str) -> UploadSource | FetchProblem:
        if self._links is None:
            return FetchProblem("not_public", N_("the bot does not fetch links here"))
        deadline = asyncio.get_running_loop().time() + self.link_deadline
        try:
            for _ in range(MAX_REDIRECTS + 1):
                if asyncio.get_running_loop().time() > deadline:
                    return FetchProblem("unavailable", LINK_TOO_SLOW)
                parsed = httpx.URL(url)
                if parsed.scheme not in ("http", "https"):
                    return FetchProblem("bad_link", NOT_WEB)
                if "delete" in parsed.path.lower().split("/"):
                    # Chevereto deletes an image on the first GET of its delete link
                    # (``/image/<id>/delete/<token>``): never request one, whoever gave it.
                    return FetchProblem("delete_link", DELETE_LINK)
                async with self._links.stream("GET", url, timeout=self._timeout) as response:
                    location = response.headers.get("location")
                    if response.status_code in REDIRECT_CODES and location:
                        url = str(response.url.join(location))
                        continue
                    if response.status_code != 200:
                        return FetchProblem(
                            "unavailable",
                            Said(
                                N_("the link could not be downloaded (HTTP {status})"),
                                {"status": response.status_code},
                            ),
                        )
                    length = response.headers.get("content-length", "")
                    if length.isdigit() and int(length) > self.max_bytes:
                        return self.too_large(int(length))
                    return await self._read(response, filename, deadline=deadline)
            return FetchProblem(
                "unavailable",
                Said(N_("that link redirects more than {n} times"), {"n": MAX_REDIRECTS}),
            )
        except AddressRefused:
            return FetchProblem("not_public", NOT_PUBLIC)
        except (httpx.InvalidURL, httpx.UnsupportedProtocol):
            return FetchProblem("bad_link", NOT_WEB)
        except httpx.TimeoutException:
            return FetchProblem("unavailable", LINK_TOO_SLOW)
        except httpx.TransportError:
            return FetchProblem("unavailable", N_("the link could not be downloaded"))

    def _not_image(self, response: httpx.Response, head: bytes, link: bool) -> FetchProblem:
        if not link:
            return self.not_image()
        content_type = response.headers.get("content-type", "").split(";")[0].strip().lower()
        start = head.lstrip().lower()
        if content_type in _PAGE_TYPES or start.startswith((b"<!doctype html", b"<html")):
            return FetchProblem("web_page", WEB_PAGE)
        return FetchProblem(
            "not_image", Said(N_("that link is not a supported image ({formats})"), _FORMATS)
        )

    async def _read(
        self, response: httpx.Response, filename: str, *, deadline: float | None = None
    ) -> UploadSource | FetchProblem:
        """``deadline`` (loop time): a user's link, which must be read by then."""
        link = deadline is not None
        clock = asyncio.get_running_loop().time
        spool = _Spool(self._spool_threshold, self._spool_dir)
        digest = hashlib.sha256()
        head = b""
        image_type = None
        try:
            async for chunk in response.aiter_bytes():  # as received: no re-chunking copy
                if spool.size + len(chunk) > self.max_bytes:
                    return self.too_large(spool.size + len(chunk))  # closing aborts the download
                if deadline is not None and clock() > deadline:
                    return FetchProblem("unavailable", LINK_TOO_SLOW)
                if image_type is None:
                    head = (head + chunk)[:SNIFF_BYTES]
                    if len(head) >= SNIFF_BYTES:
                        image_type = sniff(head)
                        if image_type is None:
                            return self._not_image(response, head, link)
                digest.update(chunk)
                spool.write(chunk)
            image_type = image_type or sniff(head)
            if image_type is None:
                return self._not_image(response, head, link)
            if link and "." not in filename:  # a link's name often has no extension
                filename = f"{filename}.{image_type.extension}"
            source = spool.source(filename, image_type, digest.hexdigest())
            spool.keep()
            return source
        finally:
            spool.close()


class _Spool:
    """Bytes in memory until ``threshold``, then in a temporary file."""

    def __init__(self, threshold: int, directory: Path | None) -> None:
        self._threshold = threshold
        self._directory = directory
        # Chunks are kept as received and joined once: growing a bytearray and copying it
        # out costs about a millisecond per MB in page faults, more than hashing it.
        self._chunks: list[bytes] | None = []
        self._file: IO[bytes] | None = None
        self._path: Path | None = None
        self._kept = False
        self.size = 0

    def write(self, chunk: bytes) -> None:
        self.size += len(chunk)
        if self._chunks is not None:
            self._chunks.append(chunk)
            if self.size <= self._threshold:
                return
            descriptor, name = tempfile.mkstemp(prefix="rehost-", dir=self._directory)
            self._file = os.fdopen(descriptor, "wb")
            self._path = Path(name)
            self._file.writelines(self._chunks)
            self._chunks = None
            return
        assert self._file is not None
        self._file.write(chunk)

    def source(self, filename: str, image_type: ImageType, sha256: str) -> UploadSource:
        if self._chunks is not None:
            data = b"".join(self._chunks)
            return UploadSource(filename, image_type, self.size, sha256, data=data)
        assert self._file is not None and self._path is not None
        self._file.flush()
        return UploadSource(
            filename, image_type, self.size, sha256, path=self._path, temporary=True
        )

    def keep(self) -> None:
        self._kept = True

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
        if not self._kept and self._path is not None:
            self._path.unlink(missing_ok=True)
