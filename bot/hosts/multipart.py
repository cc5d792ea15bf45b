"""The multipart/form-data body of an upload, streamed from the file in large chunks.

httpx's own encoder reads a file part 64 KB at a time, and each chunk costs a trip through
httpcore and the event loop: a 20 MB upload took about 1.5 times the CPU of aiohttp's.
Reading 256 KB at a time cuts that by half while each upload still holds at most one chunk.
The wire format is the one httpx writes (same part headers and quoting), and the
Content-Length is always sent: PHP hosts may not read a chunked multipart body.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import AsyncIterator, Mapping
from typing import IO

CHUNK = 256 * 1024

# HTML5 form-data quoting, as browsers and httpx apply it to names and file names.
_QUOTE = {'"': "%22", "\\": "\\\\"} | {chr(c): f"%{c:02X}" for c in range(0x20) if c != 0x1B}
_QUOTE_RE = re.compile("|".join(re.escape(c) for c in _QUOTE))


def _param(name: str, value: str) -> str:
    return f'{name}="{_QUOTE_RE.sub(lambda m: _QUOTE[m.group(0)], value)}"'


def multipart(
    fields: Mapping[str, str],
    file_field: str,
    filename: str,
    content_type: str,
    stream: IO[bytes],
    size: int,
) -> tuple[dict[str, str], AsyncIterator[bytes]]:
    """Headers and body for ``fields`` then one file part of ``size`` bytes from ``stream``."""
    boundary = secrets.token_hex(16)
    head = "".join(
        f"--{boundary}\r\nContent-Disposition: form-data; {_param('name', name)}\r\n\r\n{value}\r\n"
        for name, value in fields.items()
    )
    head += (
        f"--{boundary}\r\nContent-Disposition: form-data; {_param('name', file_field)}; "
        f"{_param('filename', filename)}\r\nContent-Type: {content_type}\r\n\r\n"
    )
    first, last = head.encode(), f"\r\n--{boundary}--\r\n".encode()
    headers = {
        "Content-Type": f"multipart/form-data; boundary={boundary}",
        "Content-Length": str(len(first) + size + len(last)),
    }
    return headers, _body(first, stream, last)


async def _body(first: bytes, stream: IO[bytes], last: bytes) -> AsyncIterator[bytes]:
    yield first
    while chunk := stream.read(CHUNK):
        yield chunk
    yield last
