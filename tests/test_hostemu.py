"""The image-host emulator, exercised over real HTTP with httpx."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import re
import time
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from sandbox import samples
from sandbox.hostemu import (
    CHEVERETO_EXPIRATIONS,
    CHEVERETO_FORMATS,
    Fault,
    HostEmulator,
    add_iso_duration,
    main,
    serve_forever,
)
from sandbox.imagesniff import ImageInfo, Unsupported, sniff

KEY = "test-key"
SVG = b'<?xml version="1.0"?><svg xmlns="http://www.w3.org/2000/svg" width="1" height="1"/>'


class FakeClock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
async def emu() -> AsyncIterator[HostEmulator]:
    async with HostEmulator(api_keys=(KEY,), denied_keys=("denied-key",)) as emulator:
        yield emulator


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=5.0) as http_client:
        yield http_client


async def imgbb_upload(
    client: httpx.AsyncClient,
    emu: HostEmulator,
    image: bytes | None = None,
    filename: str = "cat.png",
    **fields: str,
) -> httpx.Response:
    data = {"key": KEY, **fields}
    files = {"image": (filename, image, "application/octet-stream")} if image else None
    return await client.post(emu.imgbb_endpoint, data=data, files=files)


async def chevereto_upload(
    client: httpx.AsyncClient,
    emu: HostEmulator,
    image: bytes | None = None,
    key: str | None = KEY,
    field: str = "source",
    filename: str = "cat.png",
    **fields: str,
) -> httpx.Response:
    headers = {"X-API-Key": key} if key else {}
    files = {field: (filename, image, "application/octet-stream")} if image else None
    return await client.post(emu.chevereto_endpoint, headers=headers, data=fields, files=files)


def error_of(response: httpx.Response) -> tuple[int, int, str]:
    body = response.json()
    assert body["status_code"] == response.status_code
    return response.status_code, body["error"]["code"], body["error"]["message"]


# --- samples and sniffing -------------------------------------------------------------

BUILDERS: dict[str, tuple[Callable[[int, int], bytes], str, str]] = {
    "png": (samples.png, "image/png", "png"),
    "gif": (samples.gif, "image/gif", "gif"),
    "jpeg": (samples.jpeg, "image/jpeg", "jpg"),
    "webp": (samples.webp, "image/webp", "webp"),
    "bmp": (samples.bmp, "image/bmp", "bmp"),
    "tiff": (samples.tiff, "image/tiff", "tiff"),
    "avif": (samples.avif, "image/avif", "avif"),
    "heic": (samples.heic, "image/heic", "heic"),
}


@pytest.mark.parametrize("kind", sorted(BUILDERS))
def test_samples_sniff_with_their_real_size(kind: str) -> None:
    build, mime, extension = BUILDERS[kind]
    info = sniff(build(37, 5))
    assert info == ImageInfo(mime, extension, 37, 5)
    assert info.format == kind


def test_sniff_tells_unsupported_from_not_an_image() -> None:
    assert sniff(SVG) == Unsupported("svg", "image/svg+xml")
    assert sniff(b"\x00\x00\x00\x18ftypisom\x00\x00\x02\x00isomavc1") == Unsupported(
        "mp4", "video/mp4"
    )
    assert sniff(b"hello, world") is None
    assert sniff(b"\x89PNG\r\n\x1a\n") is None  # signature alone: a broken file


@pytest.mark.parametrize(
    ("ftyp", "mime"),
    [
        (b"\x00\x00\x00\x1cftypavif\x00\x00\x00\x00avifmif1miaf", "image/avif"),
        (b"\x00\x00\x00\x14ftypavis\x00\x00\x00\x00avis", "image/avif"),
        (b"\x00\x00\x00\x14ftypmif1\x00\x00\x00\x00avif", "image/avif"),  # brand listed later
        (b"\x00\x00\x00\x14ftypheic\x00\x00\x00\x00mif1", "image/heic"),
        (b"\x00\x00\x00\x14ftypheix\x00\x00\x00\x00", "image/heic"),
        (b"\x00\x00\x00\x14ftypmif1\x00\x00\x00\x00heic", "image/heic"),
        (b"\x00\x00\x00\x14ftypmsf1\x00\x00\x00\x00", "image/heic"),
        (b"\x00\x00\x00\x1cftypavif\x00\x00", "image/avif"),  # truncated box
        (b"\x00\x00\x00\x20ftypmif1\x00\x00\x00\x00av", "image/heic"),  # no whole "avif"
        (b"\x00\x00\x00\x20ftypmif1\x00\x00\x00\x00avif", "image/avif"),
    ],
)
def test_sniff_reads_avif_and_heic_from_the_ftyp_box_alone(ftyp: bytes, mime: str) -> None:
    found = sniff(ftyp)
    assert isinstance(found, ImageInfo)
    assert (found.mime, found.width, found.height) == (mime, 0, 0)  # no ispe: size unknown


def test_sniff_takes_the_largest_ispe_of_a_tiled_heic() -> None:
    whole = samples.heic(4032, 3024)
    tile = b"\x00\x00\x00\x14ispe\x00\x00\x00\x00" + (512).to_bytes(4, "big") * 2
    # Put a tile-sized ispe ahead of the whole picture's, as cameras do.
    at = whole.index(b"ispe") - 4
    tiled = bytearray(whole[:at] + tile + whole[at:])
    for box in (b"meta", b"iprp", b"ipco"):  # grow the enclosing boxes by the tile's 20 bytes
        start = bytes(tiled).index(box) - 4
        size = int.from_bytes(tiled[start : start + 4], "big") + len(tile)
        tiled[start : start + 4] = size.to_bytes(4, "big")
    assert sniff(bytes(tiled)) == ImageInfo("image/heic", "heic", 4032, 3024)


def test_png_padding_reaches_the_requested_size() -> None:
    padded = samples.png(2, 2, pad_to=5000)
    assert len(padded) >= 5000
    assert sniff(padded) == ImageInfo("image/png", "png", 2, 2)


# --- imgbb dialect: success -------------------------------------------------------------


async def test_imgbb_success_shape_and_real_values(
    emu: HostEmulator, client: httpx.AsyncClient
) -> None:
    before = int(time.time())
    image = samples.png(3, 2)
    response = await imgbb_upload(client, emu, image, expiration="600")
    assert response.status_code == 200
    assert "\\/" in response.text  # PHP escapes slashes, like the real hosts
    body = response.json()
    assert body["success"] is True and body["status"] == 200
    data = body["data"]
    assert set(data) == {
        "id", "title", "url_viewer", "url", "display_url", "width", "height", "size",
        "time", "expiration", "image", "thumb", "medium", "delete_url",
    }  # fmt: skip
    image_id = data["id"]
    assert re.fullmatch(r"[A-Za-z0-9]{7}", image_id)
    assert data["url_viewer"] == f"{emu.base_url}/i/{image_id}"
    assert data["url"] == data["display_url"] == f"{emu.base_url}/i/{image_id}/cat.png"
    assert re.fullmatch(
        rf"{re.escape(emu.base_url)}/i/{image_id}/[0-9a-f]{{32}}", data["delete_url"]
    )
    assert (data["width"], data["height"], data["size"]) == ("3", "2", str(len(image)))
    assert data["expiration"] == "600"
    assert before <= int(data["time"]) <= int(time.time())
    for variant in ("image", "thumb", "medium"):
        assert data[variant] == {
            "filename": "cat.png",
            "name": "cat",
            "mime": "image/png",
            "extension": "png",
            "url": data["url"],
        }
    hosted = emu.images[image_id]
    assert (hosted.dialect, hosted.data, hosted.width, hosted.height) == ("imgbb", image, 3, 2)
    assert hosted.expiration_sent == "600"
    assert hosted.expires_at == hosted.uploaded_at + timedelta(seconds=600)

    direct = await client.get(data["url"])
    assert direct.status_code == 200 and direct.content == image
    assert direct.headers["content-type"] == "image/png"
    assert (await client.get(data["url_viewer"])).status_code == 200


async def test_imgbb_integers_and_no_expiration(client: httpx.AsyncClient) -> None:
    async with HostEmulator(imgbb_numbers_as_strings=False) as emu:
        response = await imgbb_upload(client, emu, samples.gif(4, 9), name="holiday")
    data = response.json()["data"]
    assert (data["width"], data["height"], data["expiration"]) == (4, 9, 0)
    assert isinstance(data["time"], int) and isinstance(data["size"], int)
    assert data["url"].endswith("/holiday.gif") and data["title"] == "holiday"
    assert emu.images[data["id"]].expires_at is None


async def test_imgbb_key_and_expiration_recorded_where_sent(
    emu: HostEmulator, client: httpx.AsyncClient
) -> None:
    files = {"image": ("a.png", samples.png(), "image/png")}
    in_query = await client.post(
        emu.imgbb_endpoint, params={"key": KEY, "expiration": "60"}, files=files
    )
    in_body = await client.post(
        emu.imgbb_endpoint, data={"key": KEY, "expiration": "60"}, files=files
    )
    assert in_query.status_code == in_body.status_code == 200
    first, second = emu.uploads
    assert first.query == {"key": KEY, "expiration": "60"} and "key" not in first.form
    assert second.form == {"key": KEY, "expiration": "60"} and second.query == {}
    part = second.file("image")
    assert part is not None and part.filename == "a.png"
    assert second.headers["content-type"].startswith("multipart/form-data")


async def test_imgbb_accepts_base64_and_own_cdn_urls(
    emu: HostEmulator, client: httpx.AsyncClient
) -> None:
    gif = samples.gif()
    as_text = await client.post(
        emu.imgbb_endpoint, data={"key": KEY, "image": base64.b64encode(gif).decode()}
    )
    assert as_text.status_code == 200 and as_text.json()["data"]["width"] == "1"
    blob_url = emu.add_blob("attachments/1/2/photo.jpg", samples.jpeg(16, 8), "image/jpeg")
    by_url = await client.post(emu.imgbb_endpoint, data={"key": KEY, "image": blob_url})
    assert by_url.status_code == 200
    assert by_url.json()["data"]["image"]["mime"] == "image/jpeg"
    assert emu.bytes_served(blob_url) == len(samples.jpeg(16, 8))
    outside = await client.post(
        emu.imgbb_endpoint, data={"key": KEY, "image": "https://example.invalid/a.png"}
    )
    assert error_of(outside) == (400, 300, "Upload failed (can't fetch the image URL).")


# --- imgbb dialect: errors ----------------------------------------------------------------


async def test_zg_error_flavour(emu: HostEmulator, client: httpx.AsyncClient) -> None:
    no_key = await client.post(emu.imgbb_endpoint, files={"image": ("a.png", samples.png())})
    assert error_of(no_key) == (401, 100, "Invalid API key.")
    assert no_key.json()["status_txt"] == "Unauthorized"
    bad_key = await imgbb_upload(client, emu, samples.png(), key="wrong")
    assert error_of(bad_key) == (401, 100, "Invalid API key.")
    assert error_of(await imgbb_upload(client, emu)) == (400, 200, "Image is required.")
    not_image = await imgbb_upload(client, emu, b"just some text")
    assert error_of(not_image) == (400, 300, "Upload failed (not an image).")
    svg = await imgbb_upload(client, emu, SVG, filename="a.svg")
    assert error_of(svg) == (400, 300, "Upload failed (unsupported format: svg).")
    bad_base64 = await client.post(emu.imgbb_endpoint, data={"key": KEY, "image": "@@@"})
    assert error_of(bad_base64) == (400, 300, "Upload failed (invalid base64 data).")
    assert emu.images == {}


@pytest.mark.parametrize("value", ["59", "15552001", "soon", "1.5", "-60", "0"])
async def test_imgbb_expiration_out_of_range_is_an_error(
    emu: HostEmulator, client: httpx.AsyncClient, value: str
) -> None:
    status, code, message = error_of(
        await imgbb_upload(client, emu, samples.png(), expiration=value)
    )
    assert (status, code) == (400, 300)
    assert "60 to 15552000" in message


async def test_imgbb_expiration_bounds_are_accepted(
    emu: HostEmulator, client: httpx.AsyncClient
) -> None:
    for value in ("60", "15552000"):
        response = await imgbb_upload(client, emu, samples.png(), expiration=value)
        assert response.json()["data"]["expiration"] == value


async def test_imgbb_too_big(client: httpx.AsyncClient) -> None:
    async with HostEmulator(imgbb_max_bytes=2048) as emu:
        response = await imgbb_upload(client, emu, samples.png(pad_to=4096))
    assert error_of(response) == (400, 300, "Upload failed (file too big - max 2 KB).")


async def test_imgbb_own_error_flavour(client: httpx.AsyncClient) -> None:
    async with HostEmulator(imgbb_errors="imgbb") as emu:
        bad_key = await imgbb_upload(client, emu, samples.png(), key="wrong")
        empty = await imgbb_upload(client, emu)
        not_image = await imgbb_upload(client, emu, b"text")
    assert error_of(bad_key) == (400, 100, "Invalid API v1 key.")
    assert bad_key.json()["status_txt"] == "Bad Request"
    assert "context" in bad_key.json()["error"]
    assert error_of(empty) == (400, 130, "Empty upload source.")
    assert error_of(not_image)[:2] == (400, 310)


async def test_imgbb_delete_page_get_does_not_delete(
    emu: HostEmulator, client: httpx.AsyncClient
) -> None:
    data = (await imgbb_upload(client, emu, samples.png())).json()["data"]
    page = await client.get(data["delete_url"])
    assert page.status_code == 200 and "text/html" in page.headers["content-type"]
    assert "<form" in page.text and 'method="post"' in page.text
    assert not emu.images[data["id"]].deleted
    assert (await client.get(data["url"])).status_code == 200
    confirmed = await client.post(data["delete_url"], data={"confirm": "1"})
    assert confirmed.status_code == 200 and emu.images[data["id"]].deleted
    assert (await client.get(data["url"])).status_code == 404
    assert (await client.get(data["url_viewer"])).status_code == 404
    assert (await client.post(data["delete_url"])).status_code == 404


# --- chevereto dialect: success ---------------------------------------------------------


@pytest.mark.parametrize("kind", CHEVERETO_FORMATS)
async def test_chevereto_accepts_the_stock_formats(
    emu: HostEmulator, client: httpx.AsyncClient, kind: str
) -> None:
    build, mime, extension = BUILDERS[kind]
    image = await chevereto_upload(client, emu, build(21, 13))
    answer = image.json()["image"]
    assert (answer["width"], answer["height"], answer["mime"]) == (21, 13, mime)
    assert answer["url"].endswith(f".{extension}")
    direct = await client.get(answer["url"])
    assert direct.headers["content-type"] == mime


@pytest.mark.parametrize("kind", ["tiff", "heic"])
async def test_chevereto_refuses_tiff_and_heic_by_default(
    emu: HostEmulator, client: httpx.AsyncClient, kind: str
) -> None:
    build, _, _ = BUILDERS[kind]
    response = await chevereto_upload(client, emu, build(2, 2), filename=f"a.{kind}")
    assert error_of(response) == (400, 613, "Unavailable image format")
    assert emu.images == {}


async def test_chevereto_formats_are_set_per_emulator(client: httpx.AsyncClient) -> None:
    async with HostEmulator(chevereto_formats=("PNG", "tif", "heic")) as emu:
        for build in (samples.png, samples.tiff, samples.heic):
            assert (await chevereto_upload(client, emu, build(3, 4))).status_code == 200
        for build in (samples.jpeg, samples.avif):
            refused = await chevereto_upload(client, emu, build(3, 4))
            assert error_of(refused) == (400, 613, "Unavailable image format")
    assert sorted(image.extension for image in emu.images.values()) == ["heic", "png", "tiff"]
    with pytest.raises(ValueError, match="svg"):
        HostEmulator(chevereto_formats=("png", "svg"))


async def test_imgbb_formats_stay_as_they_were(
    emu: HostEmulator, client: httpx.AsyncClient
) -> None:
    assert (await imgbb_upload(client, emu, samples.tiff(2, 2), filename="a.tiff")).is_success
    avif = await imgbb_upload(client, emu, samples.avif(2, 2), filename="a.avif")
    assert error_of(avif) == (400, 300, "Upload failed (unsupported format: avif).")


async def test_chevereto_success_shape_and_real_values(
    emu: HostEmulator, client: httpx.AsyncClient
) -> None:
    image = samples.jpeg(40, 30)
    response = await chevereto_upload(
        client, emu, image, filename="Holiday Photo.jpg", title="Sunny day", tags="sea, sun"
    )
    assert response.status_code == 200
    body = response.json()
    assert body["status_code"] == 200 and body["status_txt"] == "OK"
    assert body["success"] == {"message": "file uploaded", "code": 200}
    answer = body["image"]
    image_id = answer["id_encoded"]
    base = emu.base_url
    assert answer["url_viewer"] == f"{base}/image/sunny-day.{image_id}"
    assert answer["path_viewer"] == f"/image/sunny-day.{image_id}"
    assert answer["url_short"] == f"{base}/image/{image_id}"
    assert answer["url"] == answer["display_url"] == f"{base}/images/{image_id}.jpg"
    assert answer["image"]["url"] == answer["url"]
    assert re.fullmatch(
        rf"{re.escape(answer['url_short'])}/delete/[0-9a-f]{{48}}", answer["delete_url"]
    )
    assert (answer["width"], answer["height"], answer["size"]) == (40, 30, len(image))
    assert answer["expiration_date_gmt"] is None
    assert answer["medium"] == dict.fromkeys(("filename", "name", "mime", "extension", "url"))
    assert answer["thumb"]["url"].startswith(f"{base}/images/{image_id}.th.")
    assert answer["title"] == "Sunny day" and answer["tags"] == ["sea", "sun"]
    hosted = emu.images[image_id]
    assert hosted.data == image and hosted.delete_token == answer["delete_url"][-48:]
    direct = await client.get(answer["url"])
    assert direct.content == image and direct.headers["content-type"] == "image/jpeg"
    assert (await client.get(answer["thumb"]["url"])).status_code == 200
    assert (await client.get(answer["url_viewer"])).status_code == 200
    short = await client.get(answer["url_short"])
    assert short.status_code == 302 and short.headers["location"] == answer["url_viewer"]


async def test_chevereto_key_field_and_base64_source(
    emu: HostEmulator, client: httpx.AsyncClient
) -> None:
    encoded = base64.b64encode(samples.webp(5, 6)).decode()
    response = await client.post(emu.chevereto_endpoint, data={"key": KEY, "source": encoded})
    assert response.status_code == 200
    assert (response.json()["image"]["width"], response.json()["image"]["height"]) == (5, 6)
    by_get = await client.get(emu.chevereto_endpoint, params={"key": KEY, "source": encoded})
    assert error_of(by_get)[:2] == (400, 130)


async def test_chevereto_ignores_a_file_part_named_image(
    emu: HostEmulator, client: httpx.AsyncClient
) -> None:
    response = await chevereto_upload(client, emu, samples.png(), field="image")
    assert error_of(response) == (400, 130, "Empty upload source")
    assert emu.uploads[0].file("image") is not None


async def test_chevereto_txt_and_redirect_formats(
    emu: HostEmulator, client: httpx.AsyncClient
) -> None:
    txt = await chevereto_upload(client, emu, samples.png(), format="txt")
    assert txt.status_code == 200 and txt.headers["content-type"].startswith("text/plain")
    (hosted,) = emu.images.values()
    assert txt.text == hosted.url == f"{emu.base_url}/images/{hosted.id}.png"
    redirect = await chevereto_upload(
        client, emu, samples.gif(), filename="dog.gif", format="redirect"
    )
    assert redirect.status_code == 302
    new_id = next(i for i in emu.images if i != hosted.id)
    assert redirect.headers["location"] == f"/image/dog.{new_id}"


async def test_chevereto_free_and_moderation_variants(client: httpx.AsyncClient) -> None:
    async with HostEmulator(chevereto_delete_links=False, moderation=True) as emu:
        response = await chevereto_upload(client, emu, samples.png())
    answer = response.json()["image"]
    assert response.status_code == 200
    assert "delete_url" not in answer
    assert "url" not in answer and "display_url" not in answer
    assert answer["url_viewer"].startswith(emu.base_url)


# --- chevereto dialect: errors -------------------------------------------------------------


def svg_part() -> dict[str, Any]:
    return {"image": SVG}


CHEVERETO_ERRORS: list[tuple[str, dict[str, Any], int, str]] = [
    ("no key", {"key": None}, 100, "No key provided"),
    ("bad key", {"key": "wrong"}, 100, "Invalid API key."),
    ("denied key", {"key": "denied-key"}, 401, "Request denied"),
    ("missing source", {"image": None}, 130, "Empty upload source"),
    ("bad base64", {"image": None, "source": "not base64!"}, 120, "Invalid base64 string"),
    ("not an image", {"image": b"plain text"}, 610, "Can't get target upload source info"),
    ("unsupported format", {"image": SVG}, 613, "Unavailable image format"),
    ("unreachable url", {"image": None, "source": "https://example.invalid/a.png"}, 610,
     "Can't get target upload source info"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("options", "code", "message"),
    [case[1:] for case in CHEVERETO_ERRORS],
    ids=[case[0] for case in CHEVERETO_ERRORS],
)
async def test_chevereto_error_table(
    emu: HostEmulator, client: httpx.AsyncClient, options: dict[str, Any], code: int, message: str
) -> None:
    arguments: dict[str, Any] = {"image": samples.png(), **options}
    response = await chevereto_upload(client, emu, **arguments)
    assert error_of(response) == (400, code, message)
    assert response.json()["status_txt"] == "Bad Request"
    assert emu.images == {}


async def test_chevereto_too_big_names_the_configured_limit(client: httpx.AsyncClient) -> None:
    async with HostEmulator(chevereto_max_bytes=3 * 1024 * 1024) as emu:
        response = await chevereto_upload(client, emu, samples.png(pad_to=3 * 1024 * 1024 + 1))
    assert error_of(response) == (400, 400, "File too big - max 3 MB")


async def test_chevereto_default_limit_text(emu: HostEmulator, client: httpx.AsyncClient) -> None:
    response = await chevereto_upload(client, emu, samples.png(pad_to=10 * 1024 * 1024 + 1))
    assert error_of(response) == (400, 400, "File too big - max 10 MB")


async def test_chevereto_duplicates_only_when_asked(client: httpx.AsyncClient) -> None:
    image = samples.png(7, 7)
    async with HostEmulator() as lenient:
        for _ in range(2):
            assert (await chevereto_upload(client, lenient, image)).status_code == 200
    async with HostEmulator(reject_duplicates=True) as strict:
        assert (await chevereto_upload(client, strict, image)).status_code == 200
        again = await chevereto_upload(client, strict, image)
    assert error_of(again) == (400, 101, "Duplicated upload")


async def test_chevereto_41_calls_a_non_image_invalid(client: httpx.AsyncClient) -> None:
    async with HostEmulator(chevereto_version="4.1") as emu:
        response = await chevereto_upload(client, emu, b"plain text")
    assert error_of(response) == (400, 400, "Invalid image")


async def test_chevereto_txt_format_errors_are_200_text(
    emu: HostEmulator, client: httpx.AsyncClient
) -> None:
    answers = [
        await chevereto_upload(client, emu, samples.png(), key="wrong", format="txt"),
        await chevereto_upload(client, emu, b"plain text", format="TXT"),
        await chevereto_upload(client, emu, samples.tiff(), format="txt"),
        await chevereto_upload(client, emu, format="txt"),
    ]
    assert [(r.status_code, r.text) for r in answers] == [
        (200, "Invalid API key."),
        (200, "Can't get target upload source info"),
        (200, "Unavailable image format"),
        (200, "Empty upload source"),
    ]
    assert all(r.headers["content-type"].startswith("text/plain") for r in answers)
    assert emu.images == {}
    emu.script(Fault("flood"))
    flooded = await chevereto_upload(client, emu, samples.png(), format="txt")
    assert (flooded.status_code, flooded.text) == (
        200,
        "Flooding detected. You can only upload 50 images per minute",
    )
    # json (the default) is unchanged: HTTP 400 with a JSON body.
    assert error_of(await chevereto_upload(client, emu, samples.png(), key="wrong"))[0] == 400


# --- chevereto key ---------------------------------------------------------------------------


async def chevereto_keyed(
    client: httpx.AsyncClient, emu: HostEmulator, header: str | None, field: str | None
) -> httpx.Response:
    headers = {"X-API-Key": header} if header is not None else {}
    data = {"key": field} if field is not None else {}
    files = {"source": ("a.png", samples.png(), "image/png")}
    return await client.post(emu.chevereto_endpoint, headers=headers, data=data, files=files)


@pytest.mark.parametrize(
    ("header", "field", "outcome"),
    [
        (KEY, None, 200),
        (None, KEY, 200),
        (KEY, "wrong", 200),  # the header wins
        ("wrong", KEY, "Invalid API key."),
        (None, None, "No key provided"),
    ],
)
async def test_chevereto_key_from_header_or_field(
    emu: HostEmulator,
    client: httpx.AsyncClient,
    header: str | None,
    field: str | None,
    outcome: int | str,
) -> None:
    response = await chevereto_keyed(client, emu, header, field)
    if outcome == 200:
        assert response.status_code == 200
    else:
        assert error_of(response) == (400, 100, outcome)


@pytest.mark.parametrize(
    ("header", "field", "outcome"),
    [
        (KEY, None, "No key provided"),  # Free 1.x never reads the header
        (None, KEY, 200),
        ("wrong", KEY, 200),
        (KEY, "wrong", "Invalid API key."),
    ],
)
async def test_chevereto_free_reads_only_the_key_field(
    client: httpx.AsyncClient, header: str | None, field: str | None, outcome: int | str
) -> None:
    async with HostEmulator(chevereto_key_from_header=False) as emu:
        response = await chevereto_keyed(client, emu, header, field)
    if outcome == 200:
        assert response.status_code == 200
    else:
        assert error_of(response) == (400, 100, outcome)


# --- chevereto sizes and the post limit ----------------------------------------------------


async def test_chevereto_file_over_the_site_limit(client: httpx.AsyncClient) -> None:
    async with HostEmulator(chevereto_max_bytes=2 * 1024 * 1024) as emu:
        response = await chevereto_upload(client, emu, samples.png(pad_to=2 * 1024 * 1024 + 1))
    assert error_of(response) == (400, 400, "File too big - max 2 MB")
    assert emu.uploads[0].file("source") is not None  # it did arrive


async def test_chevereto_body_over_the_post_limit_arrives_empty(client: httpx.AsyncClient) -> None:
    options = {"chevereto_max_bytes": 16 * 1024, "chevereto_post_max_bytes": 64 * 1024}
    async with HostEmulator(**options) as emu:
        too_big = await chevereto_upload(client, emu, samples.png(pad_to=20 * 1024))
        over_post = await chevereto_upload(client, emu, samples.png(pad_to=100 * 1024))
        # With the key only in the body, PHP saw no key either.
        key_in_body = await client.post(
            emu.chevereto_endpoint,
            data={"key": KEY},
            files={"source": ("a.png", samples.png(pad_to=100 * 1024), "image/png")},
        )
        query = await client.post(
            emu.chevereto_endpoint,
            params={"key": KEY, "format": "txt"},  # the query string survives
            files={"source": ("a.png", samples.png(pad_to=100 * 1024), "image/png")},
        )
        fits = await chevereto_upload(client, emu, samples.png(pad_to=8 * 1024))
    assert error_of(too_big) == (400, 400, "File too big - max 16 KB")
    assert error_of(over_post) == (400, 130, "Empty upload source")
    assert error_of(key_in_body) == (400, 100, "No key provided")
    assert (query.status_code, query.text) == (200, "Empty upload source")
    assert fits.status_code == 200
    dropped = [(r.body_dropped, r.files == [] and r.form == {}) for r in emu.uploads]
    assert dropped == [(False, False), (True, True), (True, True), (True, True), (False, False)]


async def test_chevereto_post_limit_applies_to_a_chunked_body(client: httpx.AsyncClient) -> None:
    boundary = "rehost-test-boundary"
    body = (
        (
            f"--{boundary}\r\n"
            'Content-Disposition: form-data; name="source"; filename="a.png"\r\n'
            "Content-Type: image/png\r\n\r\n"
        ).encode()
        + samples.png(pad_to=100 * 1024)
        + f"\r\n--{boundary}--\r\n".encode()
    )

    async def chunks() -> AsyncIterator[bytes]:  # no Content-Length: sent chunked
        for start in range(0, len(body), 8192):
            yield body[start : start + 8192]

    async with HostEmulator(chevereto_post_max_bytes=64 * 1024) as emu:
        response = await client.post(
            emu.chevereto_endpoint,
            headers={"X-API-Key": KEY, "Content-Type": f"multipart/form-data; boundary={boundary}"},
            content=chunks(),
        )
    assert error_of(response) == (400, 130, "Empty upload source")
    assert "content-length" not in emu.uploads[0].headers
    assert emu.uploads[0].body_dropped


# --- flooding and rate limits ------------------------------------------------------------


async def test_chevereto_flooding_per_minute(client: httpx.AsyncClient) -> None:
    clock = FakeClock(NOW)
    async with HostEmulator(flood_per_minute=2, clock=clock) as emu:
        assert (await chevereto_upload(client, emu, samples.png())).status_code == 200
        # Refused uploads do not count.
        assert error_of(await chevereto_upload(client, emu, b"text"))[1] == 610
        assert error_of(await chevereto_upload(client, emu, samples.png(), key="wrong"))[1] == 100
        clock.now = NOW + timedelta(seconds=30)
        assert (await chevereto_upload(client, emu, samples.png())).status_code == 200
        flooded = [await chevereto_upload(client, emu, samples.png()) for _ in range(3)]
        clock.now = NOW + timedelta(seconds=60)  # the first upload leaves the window
        after_first = await chevereto_upload(client, emu, samples.png())
        again = await chevereto_upload(client, emu, samples.png())
        clock.now = NOW + timedelta(seconds=150)
        later = await chevereto_upload(client, emu, samples.png())
    message = "Flooding detected. You can only upload 2 images per minute"
    assert [error_of(r) for r in flooded] == [(400, 130, message)] * 3
    assert after_first.status_code == 200
    assert error_of(again) == (400, 130, message)
    assert later.status_code == 200
    assert len(emu.images) == 4


async def test_chevereto_flooding_is_counted_per_address(client: httpx.AsyncClient) -> None:
    transport = httpx.AsyncHTTPTransport(local_address="127.0.0.2")
    async with (
        HostEmulator(flood_per_minute=1) as emu,
        httpx.AsyncClient(transport=transport, timeout=5.0) as neighbour,
    ):
        assert (await chevereto_upload(client, emu, samples.png())).status_code == 200
        assert error_of(await chevereto_upload(client, emu, samples.png()))[1] == 130
        assert (await chevereto_upload(neighbour, emu, samples.png())).status_code == 200
    assert [r.remote for r in emu.uploads] == ["127.0.0.1", "127.0.0.1", "127.0.0.2"]


async def test_flood_limits_are_off_by_default(
    emu: HostEmulator, client: httpx.AsyncClient
) -> None:
    for _ in range(60):
        assert (await chevereto_upload(client, emu, samples.png())).status_code == 200
    with pytest.raises(ValueError, match="flood_per_minute"):
        HostEmulator(flood_per_minute=0)


@pytest.mark.parametrize("flavour", ["zg", "imgbb"])
async def test_imgbb_rate_limit_per_minute(client: httpx.AsyncClient, flavour: Any) -> None:
    clock = FakeClock(NOW)
    async with HostEmulator(imgbb_rate_per_minute=1, imgbb_errors=flavour, clock=clock) as emu:
        refused = await imgbb_upload(client, emu, b"not an image")  # does not count
        first = await imgbb_upload(client, emu, samples.png())
        limited = await imgbb_upload(client, emu, samples.png())
        chevereto = await chevereto_upload(client, emu, samples.png())  # counted apart
        clock.now = NOW + timedelta(minutes=1)
        later = await imgbb_upload(client, emu, samples.png())
    assert error_of(refused)[0] == 400
    assert first.status_code == 200 and later.status_code == 200
    assert error_of(limited) == (400, 100, "Rate limit reached.")
    assert limited.json()["status_txt"] == "Bad Request"
    assert chevereto.status_code == 200


# --- chevereto expiration ----------------------------------------------------------------

NOW = datetime(2024, 1, 31, 12, 0, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("sent", "expected"),
    [
        ("PT5M", NOW + timedelta(minutes=5)),
        ("PT12H", NOW + timedelta(hours=12)),
        ("P1W", NOW + timedelta(weeks=1)),
        ("P1M", datetime(2024, 2, 29, 12, 0, 0, tzinfo=UTC)),  # calendar month, day clamped
        ("P1Y", datetime(2025, 1, 31, 12, 0, 0, tzinfo=UTC)),
    ],
)
async def test_chevereto_expiration_list_values(
    client: httpx.AsyncClient, sent: str, expected: datetime
) -> None:
    async with HostEmulator(clock=FakeClock(NOW)) as emu:
        response = await chevereto_upload(client, emu, samples.png(), expiration=sent)
    answer = response.json()["image"]
    assert answer["expiration_date_gmt"] == expected.strftime("%Y-%m-%d %H:%M:%S")
    hosted = emu.images[answer["id_encoded"]]
    assert (hosted.expiration_sent, hosted.expires_at) == (sent, expected)


def test_every_listed_expiration_parses() -> None:
    for value in CHEVERETO_EXPIRATIONS:
        later = add_iso_duration(NOW, value)
        assert later is not None and later > NOW


DAY = timedelta(days=1)


@pytest.mark.parametrize(
    ("sent", "expected"),
    [
        ("PT10M", NOW + timedelta(minutes=10)),  # any duration, honoured exactly
        ("P10D", NOW + 10 * DAY),
        ("P1DT2H30M", NOW + DAY + timedelta(hours=2, minutes=30)),
        ("P13M", NOW + 365 * DAY),  # clamped to 365 days
        ("P2Y", NOW + 365 * DAY),
        ("P99999999Y", NOW + 365 * DAY),  # beyond any calendar: still the clamp
        ("PT1M", NOW + timedelta(minutes=5)),  # clamped to 5 minutes
        ("PT0S", NOW + timedelta(minutes=5)),
        ("600", NOW + timedelta(minutes=10)),  # an integer is seconds
        ("60", NOW + timedelta(minutes=5)),
        ("99999999999999999999", NOW + 365 * DAY),
        ("0", None),  # no expiry
        ("", None),
        ("3d", NOW + timedelta(minutes=5)),  # unparseable: 5 minutes
        ("never", NOW + timedelta(minutes=5)),
        ("p1d", NOW + timedelta(minutes=5)),
        ("-60", NOW + timedelta(minutes=5)),
        ("P1Y", datetime(2025, 1, 31, 12, 0, 0, tzinfo=UTC)),  # list values stay calendar ones
    ],
)
async def test_chevereto_42_expiration(
    client: httpx.AsyncClient, sent: str, expected: datetime | None
) -> None:
    async with HostEmulator(clock=FakeClock(NOW)) as emu:
        response = await chevereto_upload(client, emu, samples.png(), expiration=sent)
    assert response.status_code == 200  # never an error
    (hosted,) = emu.images.values()
    assert (hosted.expiration_sent, hosted.expires_at) == (sent, expected)
    shown = expected.strftime("%Y-%m-%d %H:%M:%S") if expected else None
    assert response.json()["image"]["expiration_date_gmt"] == shown


@pytest.mark.parametrize("version", ["4.0", "4.1"])
@pytest.mark.parametrize(
    ("sent", "expected"),
    [
        ("PT10M", None),  # off the list: silently ignored, never expires
        ("P2Y", None),
        ("600", None),
        ("3d", None),
        ("0", None),
        ("PT5M", NOW + timedelta(minutes=5)),  # list values as on 4.2
        ("P1M", datetime(2024, 2, 29, 12, 0, 0, tzinfo=UTC)),
    ],
)
async def test_chevereto_41_expiration(
    client: httpx.AsyncClient, version: Any, sent: str, expected: datetime | None
) -> None:
    async with HostEmulator(chevereto_version=version, clock=FakeClock(NOW)) as emu:
        response = await chevereto_upload(client, emu, samples.png(), expiration=sent)
    assert response.status_code == 200
    (hosted,) = emu.images.values()
    assert hosted.expires_at == expected


def test_chevereto_version_is_checked() -> None:
    with pytest.raises(ValueError, match="chevereto_version"):
        HostEmulator(chevereto_version="5.0")  # type: ignore[arg-type]


async def test_expired_images_are_gone(client: httpx.AsyncClient) -> None:
    clock = FakeClock(NOW)
    async with HostEmulator(clock=clock) as emu:
        answer = (await chevereto_upload(client, emu, samples.png(), expiration="PT5M")).json()
        url = answer["image"]["url"]
        assert (await client.get(url)).status_code == 200
        clock.now = NOW + timedelta(minutes=5)
        assert (await client.get(url)).status_code == 404
        assert (await client.get(answer["image"]["url_viewer"])).status_code == 404


# --- chevereto delete links ----------------------------------------------------------------


def is_404_page(response: httpx.Response) -> bool:
    return response.status_code == 404 and response.headers["content-type"].startswith("text/html")


@pytest.mark.parametrize("method", ["GET", "HEAD"])
async def test_chevereto_delete_link_answers_301_to_the_viewer_and_deletes(
    emu: HostEmulator, client: httpx.AsyncClient, method: str
) -> None:
    answer = (await chevereto_upload(client, emu, samples.png(), title="Bye")).json()["image"]
    hosted = emu.images[answer["id_encoded"]]
    assert answer["delete_url"].startswith(f"{answer['url_short']}/delete/")

    deleted = await client.request(method, answer["delete_url"])
    assert deleted.status_code == 301
    location = deleted.headers["location"]
    assert location == f"{answer['url_viewer']}?deleted"
    assert location.startswith(f"{emu.base_url}/image/bye.")  # absolute
    assert hosted.deleted
    assert emu.requests[-1].method == method
    for gone in (location, answer["url_viewer"], answer["url_short"], answer["url"]):
        assert is_404_page(await client.get(gone)), gone
    assert emu.image_by_url(answer["url"]) is hosted  # still recorded, as deleted


async def test_a_used_or_wrong_chevereto_delete_link_is_a_404_page(
    emu: HostEmulator, client: httpx.AsyncClient
) -> None:
    answer = (await chevereto_upload(client, emu, samples.png())).json()["image"]
    link = answer["delete_url"]
    wrong_token = link[:-48] + "0" * 48
    wrong_image = link.replace(f"/image/{answer['id_encoded']}/", "/image/nope/")
    for wrong in (wrong_token, wrong_image):
        assert is_404_page(await client.get(wrong))
        assert is_404_page(await client.head(wrong))
    assert not emu.images[answer["id_encoded"]].deleted
    assert (await client.get(answer["url"])).status_code == 200

    assert (await client.get(link)).status_code == 301
    assert is_404_page(await client.get(link))  # used
    assert (await client.head(link)).status_code == 404


async def test_chevereto_short_url_redirects_to_the_viewer(
    emu: HostEmulator, client: httpx.AsyncClient
) -> None:
    titled = (await chevereto_upload(client, emu, samples.png(), title="Sea")).json()["image"]
    short = await client.get(titled["url_short"])
    assert short.status_code == 302
    assert (
        short.headers["location"]
        == titled["url_viewer"]
        == (f"{emu.base_url}/image/sea.{titled['id_encoded']}")
    )
    # Without a title or a file name the viewer URL is the short one: a page, no loop.
    encoded = base64.b64encode(samples.png()).decode()
    untitled = (
        await client.post(emu.chevereto_endpoint, data={"key": KEY, "source": encoded})
    ).json()["image"]
    assert untitled["url_viewer"] == untitled["url_short"]
    assert (await client.get(untitled["url_short"])).status_code == 200


# --- faults -----------------------------------------------------------------------------------


async def test_fault_status(emu: HostEmulator, client: httpx.AsyncClient) -> None:
    emu.script(Fault("status", status=503))
    response = await chevereto_upload(client, emu, samples.png())
    assert response.status_code == 503 and response.text == "Service Unavailable"
    with pytest.raises(json.JSONDecodeError):
        response.json()
    assert (await chevereto_upload(client, emu, samples.png())).status_code == 200


async def test_fault_slow_lets_the_client_time_out(emu: HostEmulator) -> None:
    started = time.monotonic()
    emu.script(Fault("slow", delay=2.0))
    async with httpx.AsyncClient(timeout=0.2) as impatient:
        with pytest.raises(httpx.ReadTimeout):
            await imgbb_upload(impatient, emu, samples.png())
    async with httpx.AsyncClient(timeout=5.0) as patient:
        assert (await imgbb_upload(patient, emu, samples.png())).status_code == 200
    assert time.monotonic() - started < 1.5  # the abandoned slow answer did not hold us up


async def test_fault_slow_then_answers_normally(
    emu: HostEmulator, client: httpx.AsyncClient
) -> None:
    emu.script(Fault("slow", delay=0.1))
    started = time.monotonic()
    response = await imgbb_upload(client, emu, samples.png())
    assert response.status_code == 200 and time.monotonic() - started >= 0.1


async def test_fault_drop(emu: HostEmulator, client: httpx.AsyncClient) -> None:
    emu.script(Fault("drop"))
    with pytest.raises(httpx.TransportError):
        await chevereto_upload(client, emu, samples.png())
    assert len(emu.uploads) == 1  # the dropped request was still received
    assert (await chevereto_upload(client, emu, samples.png())).status_code == 200


async def test_fault_html_and_garbled(emu: HostEmulator, client: httpx.AsyncClient) -> None:
    emu.script(Fault("html"))
    emu.script(Fault("garbled"))
    proxy = await imgbb_upload(client, emu, samples.png())
    assert proxy.status_code == 502 and "text/html" in proxy.headers["content-type"]
    assert "502 Bad Gateway" in proxy.text
    garbled = await imgbb_upload(client, emu, samples.png())
    assert garbled.status_code == 200
    with pytest.raises(json.JSONDecodeError):
        garbled.json()


@pytest.mark.parametrize("kind", ["flood", "ratelimit"])
async def test_fault_flood_per_dialect(
    emu: HostEmulator, client: httpx.AsyncClient, kind: Any
) -> None:
    emu.script(Fault(kind), times=2)
    chevereto = await chevereto_upload(client, emu, samples.png())
    assert error_of(chevereto) == (
        400,
        130,
        "Flooding detected. You can only upload 50 images per minute",
    )
    imgbb = await imgbb_upload(client, emu, samples.png())
    assert error_of(imgbb) == (400, 100, "Rate limit reached.")
    assert (await imgbb_upload(client, emu, samples.png())).status_code == 200


async def test_fault_can_target_one_dialect(emu: HostEmulator, client: httpx.AsyncClient) -> None:
    emu.script(Fault("status", status=500), dialect="chevereto")
    assert (await imgbb_upload(client, emu, samples.png())).status_code == 200
    assert (await chevereto_upload(client, emu, samples.png())).status_code == 500


async def test_latency_delays_upload_answers(client: httpx.AsyncClient) -> None:
    async with HostEmulator(latency=0.05) as emu:
        started = time.monotonic()
        await imgbb_upload(client, emu, samples.png())
        assert time.monotonic() - started >= 0.05


# --- CDN blobs and recording -----------------------------------------------------------------


async def test_cdn_blob_full_download(emu: HostEmulator, client: httpx.AsyncClient) -> None:
    data = bytes(range(256)) * 1000  # 256,000 bytes: several 64 KiB chunks
    url = emu.add_blob("att/9/photo.png", data)
    response = await client.get(url + "?ex=1&hm=2")
    assert response.content == data
    assert response.headers["content-type"] == "image/png"
    assert response.headers["content-length"] == str(len(data))
    await emu.wait_downloads()
    assert emu.bytes_served(url) == len(data)
    assert emu.bytes_served("/cdn/att/9/photo.png") == len(data)
    assert emu.bytes_served("att/9/photo.png") == len(data)
    assert (await client.get(f"{emu.base_url}/cdn/missing.png")).status_code == 404


async def test_cdn_counts_an_aborted_download(emu: HostEmulator, client: httpx.AsyncClient) -> None:
    size = 32 * 1024 * 1024  # far more than the socket buffers can absorb
    url = emu.add_blob("big.bin", b"\x00" * size, "application/octet-stream")
    async with client.stream("GET", url) as response:
        async for _chunk in response.aiter_raw():
            break  # read one piece, then hang up
    await emu.wait_downloads()
    assert 0 < emu.bytes_served(url) < size


async def test_requests_are_recorded_and_unknown_paths_404(
    emu: HostEmulator, client: httpx.AsyncClient
) -> None:
    missing = await client.post(
        f"{emu.base_url}/nowhere?x=1", data={"a": "b"}, headers={"X-Y": "z"}
    )
    assert missing.status_code == 404
    await chevereto_upload(client, emu, samples.png())
    assert [r.path for r in emu.requests] == ["/nowhere", "/api/1/upload"]
    assert [r.path for r in emu.uploads] == ["/api/1/upload"]
    first = emu.requests[0]
    assert (first.method, first.query, first.form) == ("POST", {"x": "1"}, {"a": "b"})
    assert first.headers["x-y"] == "z"
    upload = emu.uploads[0]
    part = upload.file("source")
    assert part is not None and part.data == samples.png() and part.filename == "cat.png"
    assert upload.headers["x-api-key"] == KEY


async def test_serve_forever_prints_endpoints(capsys: pytest.CaptureFixture[str]) -> None:
    task = asyncio.create_task(serve_forever("127.0.0.1", 0, api_keys=("cli-key",)))
    output = ""
    for _ in range(100):
        await asyncio.sleep(0.01)
        output += capsys.readouterr().out
        if "Ctrl-C" in output:
            break
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    assert re.search(r"http://127\.0\.0\.1:\d+/1/upload", output)
    assert re.search(r"http://127\.0\.0\.1:\d+/api/1/upload", output)
    assert "cli-key" in output


def test_command_line_refuses_an_unknown_format(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["--chevereto-formats", "png,svg"])
    assert exit_info.value.code == 2
    assert "unknown image format" in capsys.readouterr().err


async def test_malformed_and_oversized_bodies(client: httpx.AsyncClient) -> None:
    async with HostEmulator(imgbb_max_bytes=1024, chevereto_max_bytes=1024) as emu:
        malformed = await client.post(
            emu.chevereto_endpoint,
            headers={"X-API-Key": KEY, "Content-Type": "multipart/form-data; boundary=x"},
            content=b"not multipart at all",
        )
        # Like PHP, the server carries on with an empty form.
        assert error_of(malformed) == (400, 130, "Empty upload source")
        huge = await client.post(
            emu.imgbb_endpoint, data={"key": KEY, "image": "A" * (2 * 1024 * 1024)}
        )
        assert huge.status_code == 413
    assert len(emu.uploads) == 2


def test_fault_arguments_are_checked() -> None:
    with pytest.raises(ValueError):
        Fault("explode")  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        Fault("status", status=100)
