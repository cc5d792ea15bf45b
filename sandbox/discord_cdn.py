"""A stand-in for Discord's attachment CDN: signed URLs, served bytes counted per file.

Discord attachment URLs look like
``https://cdn.discordapp.com/attachments/{channel}/{attachment}/{name}?ex=..&is=..&hm=..``;
since 2024 the CDN refuses a URL whose signature (``hm``) is missing, wrong or expired
("This content is no longer available."), so a fetcher must keep the query string. A
message served again carries freshly signed URLs, and ``POST /attachments/refresh-urls``
re-signs old ones (:meth:`AttachmentStore.refresh`).
"""

from __future__ import annotations

import copy
import hashlib
import hmac
import re
import secrets
import struct
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlsplit

from aiohttp import web

Json = dict[str, Any]

CHUNK = 64 * 1024
LINK_LIFETIME = 24 * 3600
GONE = "This content is no longer available."
_PATH = re.compile(r"^(?:/media)?/attachments/\d+/(\d+)/[^/]+$")


@dataclass
class StoredFile:
    data: bytes
    content_type: str | None
    served: int = 0


class AttachmentStore:
    """Holds attachment bytes and answers ``/attachments/...`` like the CDN would."""

    def __init__(self, lifetime: float = LINK_LIFETIME) -> None:
        self._secret = secrets.token_bytes(16)
        self._files: dict[int, StoredFile] = {}
        self.base_url = ""
        self.lifetime = lifetime  # seconds a signed URL works

    def add(
        self,
        attachment_id: int,
        channel_id: int,
        data: bytes,
        filename: str,
        content_type: str | None,
        *,
        declared_size: int | None = None,
        description: str | None = None,
        expires_in: float | None = None,
    ) -> Json:
        """Store the bytes and return the attachment object Discord would send.
        ``expires_in``: the lifetime of these first URLs (default :attr:`lifetime`)."""
        if not self.base_url:
            raise RuntimeError("start the emulator before adding attachments")
        self._files[attachment_id] = StoredFile(data, content_type)
        path = f"/attachments/{channel_id}/{attachment_id}/{quote(filename)}"
        query = self._signature(attachment_id, expires_in)
        out: Json = {
            "id": str(attachment_id),
            "filename": filename,
            "size": len(data) if declared_size is None else declared_size,
            "url": self.base_url + path + query,
            "proxy_url": self.base_url + "/media" + path + query,
            "flags": 0,
        }
        if content_type is not None:
            out["content_type"] = content_type
        if description is not None:
            out["description"] = description
        size = image_size(data)
        if size is not None:
            out["width"], out["height"] = size
        return out

    def bytes_served(self, attachment_id: int) -> int:
        stored = self._files.get(attachment_id)
        return 0 if stored is None else stored.served

    def expire_all(self) -> None:
        """Make every URL signed so far invalid (a new key), as if they were days old."""
        self._secret = secrets.token_bytes(16)

    def refresh(self, url: str) -> str:
        """``url`` signed anew, whatever its query; a URL that is not one of this CDN's
        attachments comes back unchanged, as ``POST /attachments/refresh-urls`` does."""
        parts = urlsplit(url)
        match = _PATH.match(parts.path)
        if match is None or not url.startswith(self.base_url + "/"):
            return url
        attachment_id = int(match.group(1))
        if attachment_id not in self._files:
            return url
        return url.split("?")[0] + self._signature(attachment_id)

    def fresh(self, attachment: Json) -> Json:
        """The attachment object as served again: ``url`` and ``proxy_url`` re-signed."""
        out = copy.deepcopy(attachment)
        for key in ("url", "proxy_url"):
            if isinstance(out.get(key), str):
                out[key] = self.refresh(out[key])
        return out

    def _signature(self, attachment_id: int, lifetime: float | None = None) -> str:
        issued = int(time.time())
        expires = int(issued + (self.lifetime if lifetime is None else lifetime))
        return f"?ex={expires:x}&is={issued:x}&hm={self._mac(attachment_id, expires, issued)}"

    def _mac(self, attachment_id: int, expires: int, issued: int) -> str:
        msg = f"{attachment_id}|{expires:x}|{issued:x}".encode()
        return hmac.new(self._secret, msg, hashlib.sha256).hexdigest()

    def _verified(self, request: web.Request, attachment_id: int) -> bool:
        query = request.query
        try:
            expires, issued = int(query["ex"], 16), int(query["is"], 16)
        except (KeyError, ValueError):
            return False
        expected = self._mac(attachment_id, expires, issued)
        return expires > time.time() and hmac.compare_digest(expected, query.get("hm", ""))

    async def handle(self, request: web.Request) -> web.StreamResponse:
        attachment_id = int(request.match_info["attachment_id"])
        stored = self._files.get(attachment_id)
        if stored is None or not self._verified(request, attachment_id):
            return web.Response(status=404, text=GONE)
        response = web.StreamResponse(headers={"Content-Length": str(len(stored.data))})
        response.content_type = stored.content_type or "application/octet-stream"
        await response.prepare(request)
        if request.method == "HEAD":
            return response
        # Count only what was written, so a reader that stops early shows a short count.
        for start in range(0, len(stored.data), CHUNK):
            chunk = stored.data[start : start + CHUNK]
            await response.write(chunk)
            stored.served += len(chunk)
        await response.write_eof()
        return response


def image_size(data: bytes) -> tuple[int, int] | None:
    """Width and height of PNG, GIF or JPEG bytes (Discord sets them for images)."""
    if data.startswith(b"\x89PNG\r\n\x1a\n") and len(data) >= 24:
        width, height = struct.unpack(">II", data[16:24])
        return int(width), int(height)
    if data[:6] in (b"GIF87a", b"GIF89a") and len(data) >= 10:
        width, height = struct.unpack("<HH", data[6:10])
        return int(width), int(height)
    if data.startswith(b"\xff\xd8"):
        return _jpeg_size(data)
    return None


def _jpeg_size(data: bytes) -> tuple[int, int] | None:
    pos = 2
    while pos + 9 < len(data):
        if data[pos] != 0xFF:
            return None
        marker = data[pos + 1]
        length = int.from_bytes(data[pos + 2 : pos + 4], "big")
        # SOF0..SOF15 carry the frame size, except DHT (C4), JPG (C8) and DAC (CC).
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
            height, width = struct.unpack(">HH", data[pos + 5 : pos + 9])
            return int(width), int(height)
        pos += 2 + length
    return None
