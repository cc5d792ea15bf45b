"""Formats no chosen host takes are converted: HEIC to JPEG, TIFF to PNG, AVIF to PNG; the
answer says so. Pillow (and pillow-heif) in a worker thread, within a pixel limit."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from PIL import Image
from pillow_heif import register_heif_opener

from bot import convert
from bot.hosts.base import UploadSource
from bot.media import JPEG, PNG, sniff
from bot.requests import RehostRequest, SourceRef
from sandbox import samples
from sandbox.hostemu import HostEmulator
from tests.service_harness import service_for

register_heif_opener()


def encoded(fmt: str, size: tuple[int, int] = (12, 8)) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", size, (200, 30, 40)).save(out, format=fmt)
    return out.getvalue()


async def rehost_one(emu: HostEmulator, tmp_path: Path, data: bytes, name: str, **extra: object):  # type: ignore[no-untyped-def]
    async with service_for(emu, tmp_path / "r.db", **extra) as h:  # type: ignore[arg-type]
        url = emu.add_blob(name, data)
        [result] = await h.service.rehost(
            RehostRequest("test", "c", "ann", [SourceRef(name, url=url)])
        )
    return result


@pytest.mark.parametrize(
    ("fmt", "name", "arrives_as"),
    [
        ("HEIF", "phone.heic", "image/jpeg"),
        ("TIFF", "scan.tiff", "image/png"),
        ("AVIF", "a.avif", None),
    ],
)
async def test_a_format_chevereto_refuses_arrives_converted_and_the_answer_says_so(
    host_emu: HostEmulator, tmp_path: Path, fmt: str, name: str, arrives_as: str | None
) -> None:
    result = await rehost_one(host_emu, tmp_path, encoded(fmt), name)
    assert result.ok, result.error
    [upload] = host_emu.uploads
    sent = upload.files[0]
    if arrives_as is None:  # Chevereto 4 takes AVIF as it is
        assert sniff(sent.data[:16]) is not None and sent.content_type == "image/avif"
        assert result.note is None
        return
    assert sent.content_type == arrives_as
    kind = sniff(sent.data[:16])
    assert kind is not None and kind.mime == arrives_as
    label = "HEIC" if fmt == "HEIF" else fmt
    assert str(result.note) == f"converted from {label} to {kind.label}"
    assert result.upload is not None and result.upload.mime == arrives_as


async def test_a_repeat_of_a_converted_image_is_recognised_by_what_the_user_sent(
    host_emu: HostEmulator, tmp_path: Path
) -> None:
    data = encoded("HEIF")
    async with service_for(host_emu, tmp_path / "r.db") as h:
        url = host_emu.add_blob("p.heic", data)
        request = RehostRequest("test", "c", "ann", [SourceRef("p.heic", url=url)])
        [first] = await h.service.rehost(request)
        [again] = await h.service.rehost(request)
    assert first.ok and again.dedup and len(host_emu.uploads) == 1


def test_an_image_over_the_pixel_limit_is_refused_before_decoding(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(convert, "MAX_PIXELS", 50)
    source = UploadSource.from_bytes(samples.tiff(10, 10), "big.tiff")
    assert source is not None
    with pytest.raises(convert.ConversionError, match="10x10 pixels"):
        convert._convert(source, PNG)


def test_the_target_follows_what_the_hosts_take() -> None:
    heic = UploadSource.from_bytes(encoded("HEIF"), "p.heic")
    assert heic is not None
    assert convert.target_for(heic.image_type, {"jpeg", "png"}) is JPEG
    assert convert.target_for(heic.image_type, {"png"}) is PNG
    assert convert.target_for(heic.image_type, {"gif"}) is None


def test_a_broken_file_is_a_plain_error() -> None:
    source = UploadSource.from_bytes(samples.heic(), "broken.heic")  # an ftyp box, no image
    assert source is not None
    with pytest.raises(convert.ConversionError, match="could not be read"):
        convert._convert(source, JPEG)


async def test_a_spoiler_reaches_chevereto_marked_nsfw(
    host_emu: HostEmulator, tmp_path: Path
) -> None:
    async with service_for(host_emu, tmp_path / "r.db") as h:
        hidden = host_emu.add_blob("s.png", samples.png(9, 9))
        plain = host_emu.add_blob("p.png", samples.png(8, 8))
        await h.service.rehost(
            RehostRequest("test", "c", "ann", [SourceRef("s.png", url=hidden, spoiler=True)])
        )
        await h.service.rehost(RehostRequest("test", "c", "ann", [SourceRef("p.png", url=plain)]))
    assert [upload.form.get("nsfw") for upload in host_emu.uploads] == ["1", None]


async def test_a_spoiler_never_reuses_an_upload_that_was_not_hidden(
    host_emu: HostEmulator, tmp_path: Path
) -> None:
    async with service_for(host_emu, tmp_path / "r.db") as h:
        url = host_emu.add_blob("same.png", samples.png(6, 6))
        plain = RehostRequest("test", "c", "ann", [SourceRef("same.png", url=url)])
        hidden = RehostRequest("test", "c", "ann", [SourceRef("same.png", url=url, spoiler=True)])
        [first] = await h.service.rehost(plain)
        [spoiler] = await h.service.rehost(hidden)
        [again] = await h.service.rehost(hidden)
    assert not spoiler.dedup and again.dedup
    assert again.upload is not None and spoiler.upload is not None
    assert again.upload.id == spoiler.upload.id != (first.upload.id if first.upload else None)
    assert [upload.form.get("nsfw") for upload in host_emu.uploads] == [None, "1"]
