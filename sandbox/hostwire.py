"""The wire format of the two image-host dialects, for the emulator in hostemu.py.

How requests are read (PHP's rules: a multipart part with a filename is a
file, anything else a text field; the body wins over the query string), how
answers are written (PHP-style JSON, the hosts' error bodies and codes, canned
fault pages), and the date arithmetic of Chevereto's expiration values.
"""

from __future__ import annotations

import base64
import binascii
import calendar
import http
import json
import re
import secrets
import string
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Literal, TypeAlias
from urllib.parse import parse_qsl

import aiohttp
from aiohttp import web

IMGBB_MIN_EXPIRATION = 60
IMGBB_MAX_EXPIRATION = 15_552_000  # 180 days
CHEVERETO_EXPIRATIONS = (
    "PT5M", "PT15M", "PT30M", "PT1H", "PT3H", "PT6H", "PT12H",
    "P1D", "P2D", "P3D", "P4D", "P5D", "P6D", "P1W", "P2W", "P3W",
    "P1M", "P2M", "P3M", "P4M", "P5M", "P6M", "P1Y",
)  # fmt: skip


# --- What the server received ----------------------------------------------------------


@dataclass
class ReceivedFile:
    field: str
    filename: str | None
    content_type: str | None
    data: bytes


@dataclass
class ReceivedRequest:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]  # names lowercased
    form: dict[str, str]  # non-file multipart or urlencoded fields
    files: list[ReceivedFile]
    remote: str | None = None  # the peer's address, as the server saw it
    # The peer's (address, port): one per TCP connection, so a client's connects count.
    peer: tuple[str, int] | None = None
    # The body was over the server's post limit and thrown away, as PHP does
    # past post_max_size: `form` and `files` are then empty.
    body_dropped: bool = False

    def file(self, field_name: str) -> ReceivedFile | None:
        """The last file part named `field_name`, if any."""
        found = [f for f in self.files if f.field == field_name]
        return found[-1] if found else None

    def param(self, name: str) -> str | None:
        """A text parameter as PHP's $_REQUEST sees it: the body wins over the query."""
        if name in self.form:
            return self.form[name]
        return self.query.get(name)


# --- Reading requests -----------------------------------------------------------


class BodyTooLarge(Exception):
    """The request body is over the emulator's limit (answered 413, like a front proxy)."""


def envelope(request: web.BaseRequest) -> ReceivedRequest:
    """The request line and headers, before (or without) the body."""
    return ReceivedRequest(
        method=request.method,
        path=request.path,
        query={name: value for name, value in request.query.items()},  # last one wins
        headers={name.lower(): value for name, value in request.headers.items()},
        form={},
        files=[],
        remote=request.remote,
        peer=_peer(request),
    )


def _peer(request: web.BaseRequest) -> tuple[str, int] | None:
    name = request.transport.get_extra_info("peername") if request.transport else None
    return (str(name[0]), int(name[1])) if isinstance(name, tuple) else None


async def _read_part(part: aiohttp.BodyPartReader, budget: int) -> bytes:
    chunks = bytearray()
    while chunk := await part.read_chunk():
        chunks += chunk
        if len(chunks) > budget:
            raise BodyTooLarge
    return bytes(part.decode(bytes(chunks)))


async def _read_multipart(request: web.BaseRequest, limit: int, into: ReceivedRequest) -> None:
    reader = await request.multipart()
    budget = limit
    while (part := await reader.next()) is not None:
        if not isinstance(part, aiohttp.BodyPartReader) or part.name is None:
            continue  # nested multipart or unnamed part: PHP ignores these too
        data = await _read_part(part, budget)
        budget -= len(data)
        # PHP's rule: a part with a filename is a file, anything else a text field.
        if part.filename is not None:
            content_type = part.headers.get(aiohttp.hdrs.CONTENT_TYPE)
            into.files.append(ReceivedFile(part.name, part.filename, content_type, data))
        else:
            into.form[part.name] = data.decode("utf-8", errors="replace")


async def _read_urlencoded(request: web.BaseRequest, limit: int, into: ReceivedRequest) -> None:
    body = bytearray()
    while chunk := await request.content.read(64 * 1024):
        body += chunk
        if len(body) > limit:
            raise BodyTooLarge
    pairs = parse_qsl(body.decode("utf-8", errors="replace"), keep_blank_values=True)
    into.form.update(pairs)


async def discard_body(request: web.BaseRequest) -> None:
    """Read what is left of the body and throw it away (so the client reads the answer)."""
    while await request.content.read(64 * 1024):
        pass


async def read_body(request: web.BaseRequest, limit: int, into: ReceivedRequest) -> None:
    """Fill `into` with the form fields and files of a multipart or urlencoded body.

    Raises BodyTooLarge past `limit` bytes and ValueError for a malformed body;
    `into` then keeps whatever was read before.
    """
    if request.content_type.startswith("multipart/"):
        try:
            await _read_multipart(request, limit, into)
        except (AssertionError, LookupError) as error:  # aiohttp's parser on bad framing
            raise ValueError(f"malformed multipart body: {error}") from error
    elif request.content_type == "application/x-www-form-urlencoded":
        await _read_urlencoded(request, limit, into)


# --- Small helpers ------------------------------------------------------------

_ID_ALPHABET = string.ascii_letters + string.digits


def random_id(length: int) -> str:
    return "".join(secrets.choice(_ID_ALPHABET) for _ in range(length))


def human_size(size: int) -> str:
    for unit, factor in (("GB", 1 << 30), ("MB", 1 << 20), ("KB", 1 << 10)):
        if size >= factor:
            text = f"{size / factor:.1f}".rstrip("0").rstrip(".")
            return f"{text} {unit}"
    return f"{size} B"


def gmt(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")


def slugify(text: str, keep_case: bool = False) -> str:
    slug = re.sub(r"[^A-Za-z0-9_-]+", "-", text).strip("-")
    return slug[:80] if keep_case else slug.lower()[:80]


def stem(filename: str | None) -> str:
    if not filename:
        return ""
    base = filename.replace("\\", "/").rsplit("/", 1)[-1]
    return base.rsplit(".", 1)[0] if "." in base else base


def php_json(payload: object) -> str:
    # PHP's json_encode escapes "/" by default; "/" only occurs inside strings.
    return json.dumps(payload).replace("/", "\\/")


def json_response(payload: object, status: int = 200) -> web.Response:
    return web.Response(
        status=status, text=php_json(payload), content_type="application/json", charset="UTF-8"
    )


def html_response(title: str, body: str, status: int = 200) -> web.Response:
    page = f"<!DOCTYPE html><html><head><title>{title}</title></head><body>{body}</body></html>"
    return web.Response(status=status, text=page, content_type="text/html")


def not_found() -> web.Response:
    return html_response("404 Not Found", "<h1>404 Not Found</h1>", status=404)


def decode_base64(text: str) -> bytes | None:
    compact = re.sub(r"\s+", "", text)
    if compact.startswith("data:") and ";base64," in compact:
        compact = compact.split(";base64,", 1)[1]
    try:
        return base64.b64decode(compact, validate=True)
    except (binascii.Error, ValueError):
        return None


def is_url(text: str) -> bool:
    return re.match(r"(?i)^https?://", text.strip()) is not None


# --- Durations (Chevereto expiration) ------------------------------------------

_ISO_DURATION = re.compile(
    r"^P(?!$)(?:(\d+)Y)?(?:(\d+)M)?(?:(\d+)W)?(?:(\d+)D)?(?:T(?=\d)(?:(\d+)H)?(?:(\d+)M)?(?:(\d+)S)?)?$"
)


def add_months(moment: datetime, months: int) -> datetime:
    years, month_index = divmod(moment.month - 1 + months, 12)
    year = moment.year + years
    month = month_index + 1
    day = min(moment.day, calendar.monthrange(year, month)[1])
    return moment.replace(year=year, month=month, day=day)


def add_iso_duration(moment: datetime, duration: str) -> datetime | None:
    """`moment` plus an ISO-8601 duration (calendar months and years); None if unparsable."""
    match = _ISO_DURATION.match(duration)
    if match is None:
        return None
    years, months, weeks, days, hours, minutes, seconds = (int(g or 0) for g in match.groups())
    shifted = add_months(moment, 12 * years + months)
    return shifted + timedelta(
        weeks=weeks, days=days, hours=hours, minutes=minutes, seconds=seconds
    )


# --- Upload rejections --------------------------------------------------------

Cause: TypeAlias = Literal[
    "no_key",
    "bad_key",
    "denied",
    "no_source",
    "base64_by_get",
    "bad_base64",
    "unreachable",
    "not_image",
    "unsupported",
    "too_big",
    "duplicate",
    "bad_expiration",
    "flood",
]


class Rejected(Exception):
    """An upload refused for `cause`; `detail` completes the message where useful."""

    def __init__(self, cause: Cause, detail: str = "") -> None:
        super().__init__(cause, detail)
        self.cause: Cause = cause
        self.detail = detail


_CHEVERETO_ERRORS: dict[Cause, tuple[int, str]] = {
    "no_key": (100, "No key provided"),
    "bad_key": (100, "Invalid API key."),
    "denied": (401, "Request denied"),
    "no_source": (130, "Empty upload source"),
    "base64_by_get": (130, "Upload using base64 source must be done using POST method."),
    "flood": (130, "Flooding detected. You can only upload {detail} images per minute"),
    "bad_base64": (120, "Invalid base64 string"),
    "unreachable": (610, "Can't get target upload source info"),
    "not_image": (610, "Can't get target upload source info"),
    "unsupported": (613, "Unavailable image format"),
    "too_big": (400, "File too big - max {detail}"),
    "duplicate": (101, "Duplicated upload"),
}

# Where Chevereto 4.0 and 4.1 answer otherwise than 4.2.
_CHEVERETO_41_ERRORS: dict[Cause, tuple[int, str]] = {
    "not_image": (400, "Invalid image"),
}

_IMGBB_ERRORS: dict[Cause, tuple[int, str]] = {
    "no_key": (100, "Invalid API v1 key."),
    "bad_key": (100, "Invalid API v1 key."),
    "no_source": (130, "Empty upload source."),
    "bad_base64": (120, "Invalid base64 string."),
    "unreachable": (310, "Can't get target upload source info."),
    "not_image": (310, "Invalid image source."),
    "unsupported": (310, "Unsupported image format ({detail})."),
    "too_big": (400, "File too big - max {detail}."),
    "bad_expiration": (400, "Invalid expiration value (60 - 15552000 seconds)."),
    "flood": (100, "Rate limit reached."),
}

_ZG_REASONS: dict[Cause, str] = {
    "bad_base64": "invalid base64 data",
    "unreachable": "can't fetch the image URL",
    "not_image": "not an image",
    "unsupported": "unsupported format: {detail}",
    "too_big": "file too big - max {detail}",
    "bad_expiration": "expiration must be whole seconds from 60 to 15552000",
}


def _error_body(status: int, code: int, message: str, context: str | None = None) -> object:
    error: dict[str, object] = {"message": message, "code": code}
    if context is not None:
        error["context"] = context
    status_txt = http.HTTPStatus(status).phrase
    return {"status_code": status, "error": error, "status_txt": status_txt}


def chevereto_error(rejection: Rejected, output: str = "json", older: bool = False) -> web.Response:
    """Chevereto's answer to `rejection`: always HTTP 400 with a JSON body, except that
    with ``format=txt`` (`output` "txt") it is HTTP 200 with the bare message as text.
    `older`: answer as 4.0 and 4.1 do rather than 4.2."""
    code, message = _CHEVERETO_ERRORS[rejection.cause]
    if older:
        code, message = _CHEVERETO_41_ERRORS.get(rejection.cause, (code, message))
    text = message.format(detail=rejection.detail)
    if output == "txt":
        return web.Response(text=text, content_type="text/plain")
    return json_response(_error_body(400, code, text), 400)


def imgbb_error(rejection: Rejected, flavour: str) -> web.Response:
    cause = rejection.cause
    if flavour == "imgbb" or cause == "flood":
        code, message = _IMGBB_ERRORS[cause]
        body = _error_body(400, code, message.format(detail=rejection.detail), "Exception")
        return json_response(body, 400)
    if cause in ("no_key", "bad_key"):
        return json_response(_error_body(401, 100, "Invalid API key."), 401)
    if cause == "no_source":
        return json_response(_error_body(400, 200, "Image is required."), 400)
    reason = _ZG_REASONS[cause].format(detail=rejection.detail)
    return json_response(_error_body(400, 300, f"Upload failed ({reason})."), 400)


# --- Canned fault bodies -------------------------------------------------------

PROXY_502 = (
    "<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n"
    "<center><h1>502 Bad Gateway</h1></center>\r\n<hr><center>nginx</center>\r\n"
    "</body>\r\n</html>\r\n"
)
# A PHP warning printed ahead of a truncated JSON answer: looks close, is not JSON.
GARBLED = (
    '<br />\n<b>Warning</b>:  Undefined array key "source" in '
    "<b>/var/www/html/app/src/Legacy/Classes/Upload.php</b> on line <b>42</b><br />\n"
    '{"status_code":200,"success":{"message":"file uplo'
)


def status_response(status: int) -> web.Response:
    try:
        phrase = http.HTTPStatus(status).phrase
    except ValueError:
        phrase = "Error"
    if status in (204, 304):  # no body allowed
        return web.Response(status=status)
    return web.Response(status=status, text=phrase, content_type="text/plain")
