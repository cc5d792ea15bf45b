"""The real ``rehost upload`` command against the local host emulator."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import httpx
import pytest

from sandbox import samples
from sandbox.hostemu import Fault, HostEmulator
from tests.conftest import (
    ALL_KEYS,
    CHEV_KEY,
    IMGBB_KEY,
    assert_no_secrets,
    host_table,
    run_rehost,
    write_config,
)

JSON_KEYS = {
    "file", "host", "id", "viewer_url", "url", "delete_url", "expires_at", "sha256", "record"
}  # fmt: skip
HOST_KINDS = [
    "zg.is",
    "imgz.io",
    "imagehosting.me",
    "uploadimage.io",
    "images-uploader.com",
    "chevereto",
    "imgbb",
]


def image_files(tmp_path: Path) -> dict[str, bytes]:
    images = {
        "photo.png": samples.png(3, 2),
        "photo.jpg": samples.jpeg(4, 4),
        "anim.gif": samples.gif(2, 2),
        "pic.webp": samples.webp(5, 3),
    }
    for name, data in images.items():
        (tmp_path / name).write_bytes(data)
    return images


@pytest.mark.parametrize("kind", HOST_KINDS)
async def test_uploads_each_format_to_each_host(
    tmp_path: Path, host_emu: HostEmulator, kind: str
) -> None:
    images = image_files(tmp_path)
    config = write_config(tmp_path, [host_table("h", host_emu, kind)], ["h"])
    files = [str(tmp_path / name) for name in images]

    ran = await run_rehost("upload", *files, "-c", str(config), "--expire", "1h", "--json")

    assert ran.code == 0, ran.stderr
    assert_no_secrets(ran.stdout, ran.stderr)
    lines = [json.loads(line) for line in ran.stdout.splitlines()]
    assert [Path(line["file"]).name for line in lines] == list(images)
    async with httpx.AsyncClient() as http:
        for line, (name, data) in zip(lines, images.items(), strict=True):
            assert set(line) == JSON_KEYS
            assert line["host"] == "h"
            assert line["sha256"] == hashlib.sha256(data).hexdigest()
            assert line["expires_at"].endswith("Z")
            assert (await http.get(line["url"])).content == data, name
            assert (await http.get(line["viewer_url"])).status_code == 200
            assert line["delete_url"]
            assert host_emu.images[line["id"]].data == data

    assert len(host_emu.uploads) == 4
    chevereto = kind not in ("zg.is", "imgbb")
    for received in host_emu.uploads:
        assert received.query == {}, "nothing may travel in the URL"
        if chevereto:
            # Chevereto 4 reads the header, Chevereto Free only the field: both, never the URL.
            assert received.headers["x-api-key"] == CHEV_KEY
            assert received.form["key"] == CHEV_KEY
            assert received.form["format"] == "json"
            assert received.form["expiration"] == "PT1H"
            assert [f.field for f in received.files] == ["source"]
        else:
            assert received.form["key"] == IMGBB_KEY
            assert received.form["expiration"] == "3600"
            assert [f.field for f in received.files] == ["image"]


async def test_readable_summary_without_json(tmp_path: Path, host_emu: HostEmulator) -> None:
    (tmp_path / "a.png").write_bytes(samples.png())
    config = write_config(tmp_path, [host_table("chev", host_emu, "chevereto")], ["chev"])
    ran = await run_rehost("upload", str(tmp_path / "a.png"), "-c", str(config))
    assert ran.code == 0, ran.stderr
    image = next(iter(host_emu.images.values()))
    assert "uploaded to chev" in ran.stdout
    assert "viewer:" in ran.stdout and "expires: never" in ran.stdout
    assert "/delete/" in ran.stdout
    assert image.expires_at is None
    assert "expiration" not in host_emu.uploads[0].form


async def test_expiry_off_the_chevereto_list_is_sent_as_a_list_value(
    tmp_path: Path, host_emu: HostEmulator
) -> None:
    (tmp_path / "a.png").write_bytes(samples.png())
    config = write_config(tmp_path, [host_table("chev", host_emu, "chevereto")], ["chev"])
    ran = await run_rehost(
        "upload", str(tmp_path / "a.png"), "-c", str(config), "--expire", "10d", "--json"
    )
    assert ran.code == 0, ran.stderr
    assert host_emu.uploads[0].form["expiration"] == "P1W"
    image = next(iter(host_emu.images.values()))
    assert image.expires_at is not None  # the emulator honoured it: it was on the list
    expires = json.loads(ran.stdout)["expires_at"]
    assert expires == image.expires_at.strftime("%Y-%m-%dT%H:%M:%SZ")


# --- failures the user must understand ------------------------------------------------------


async def failing_run(tmp_path: Path, emu: HostEmulator, kind: str, *extra: str, **host: object):
    (tmp_path / "a.png").write_bytes(samples.png())
    config = write_config(
        tmp_path, [host_table("h", emu, kind, **host)], ["h"], "retry_attempts = 2\n"
    )
    ran = await run_rehost("upload", str(tmp_path / "a.png"), "-c", str(config), *extra)
    assert_no_secrets(ran.stdout, ran.stderr)
    assert "Traceback" not in ran.stderr
    return ran


@pytest.mark.parametrize(
    ("kind", "fault", "message", "requests"),
    [
        ("chevereto", Fault("status", status=503), "h is having trouble (HTTP 503)", 2),
        ("imgbb", Fault("status", status=500), "h is having trouble (HTTP 500)", 2),
        ("chevereto", Fault("html"), "h is having trouble (HTTP 502)", 2),
        ("imgbb", Fault("garbled"), "h answered something unreadable", 2),
        ("chevereto", Fault("drop"), "h could not be reached", 2),
        ("chevereto", Fault("slow", delay=3.0), "h did not answer in time", 2),
        # A retry within seconds fails again: rate limiting is never retried on the host.
        ("chevereto", Fault("flood"), "h is rate limiting uploads", 1),
        ("imgbb", Fault("ratelimit"), "h is rate limiting uploads", 1),
    ],
)
async def test_transient_failures_are_retried_then_explained(
    tmp_path: Path,
    host_emu: HostEmulator,
    kind: str,
    fault: Fault,
    message: str,
    requests: int,
) -> None:
    host_emu.script(fault, times=10)
    ran = await failing_run(tmp_path, host_emu, kind, timeout=1)
    assert ran.code == 1
    assert ran.stdout == ""
    failure_lines = [line for line in ran.stderr.splitlines() if line.startswith("rehost: ")]
    assert failure_lines == [f"rehost: {tmp_path / 'a.png'}: {message}"] or (
        len(failure_lines) == 1 and message in failure_lines[0] and "a.png" in failure_lines[0]
    )
    assert len(host_emu.uploads) == requests


@pytest.mark.parametrize("kind", ["chevereto", "imgbb", "zg.is"])
async def test_a_bad_key_is_reported_and_not_retried(
    tmp_path: Path, host_emu: HostEmulator, kind: str
) -> None:
    host_emu.api_keys = ("some-other-key-entirely",)
    ran = await failing_run(tmp_path, host_emu, kind)
    assert ran.code == 1
    assert "h refused the API key" in ran.stderr
    assert len(host_emu.uploads) == 1


async def test_imgbb_error_flavour_is_read_too(tmp_path: Path) -> None:
    async with HostEmulator(api_keys=ALL_KEYS, imgbb_errors="imgbb") as emu:
        emu.api_keys = ("another-key-123456",)
        ran = await failing_run(tmp_path, emu, "imgbb")
    assert ran.code == 1
    assert "h refused the API key" in ran.stderr


async def test_a_file_too_large_for_one_host_fails_over_to_the_next(tmp_path: Path) -> None:
    """``400 File too big - max 2 MB`` is that host's setting, not the file's fault."""
    async with HostEmulator(api_keys=ALL_KEYS, chevereto_max_bytes=2048) as emu:
        (tmp_path / "big.png").write_bytes(samples.png(pad_to=4096))
        tables = [
            host_table("chev", emu, "chevereto", max_bytes=1 << 20),
            host_table("zg", emu, "imgbb"),
        ]
        config = write_config(tmp_path, tables, ["chev", "zg"])
        ran = await run_rehost("upload", str(tmp_path / "big.png"), "-c", str(config))
    assert ran.code == 0, ran.stderr
    assert "uploaded to zg" in ran.stdout
    assert [request.path for request in emu.uploads] == ["/api/1/upload", "/1/upload"]


async def test_a_file_no_host_can_take_is_refused_before_sending(
    tmp_path: Path, host_emu: HostEmulator
) -> None:
    (tmp_path / "big.png").write_bytes(samples.png(pad_to=4096))
    tables = [
        host_table("chev", host_emu, "chevereto", max_bytes=1024),
        host_table("zg", host_emu, "imgbb", max_bytes=2048),
    ]
    config = write_config(tmp_path, tables, ["chev", "zg"])
    ran = await run_rehost("upload", str(tmp_path / "big.png"), "-c", str(config))
    assert ran.code == 1
    assert "too large (4 KB); the configured hosts accept at most 2 KB" in ran.stderr
    assert "nothing was sent" in ran.stderr and host_emu.requests == []


async def test_a_non_image_is_refused_before_sending(
    tmp_path: Path, host_emu: HostEmulator
) -> None:
    (tmp_path / "report.png").write_bytes(b"%PDF-1.7\n" + b"0" * 100)
    config = write_config(tmp_path, [host_table("h", host_emu, "chevereto")], ["h"])
    ran = await run_rehost("upload", str(tmp_path / "report.png"), "-c", str(config))
    assert ran.code == 1
    assert "report.png: not a supported image" in ran.stderr
    assert host_emu.requests == []


async def test_a_file_over_every_limit_is_refused_before_sending(
    tmp_path: Path, host_emu: HostEmulator
) -> None:
    (tmp_path / "big.png").write_bytes(samples.png(pad_to=5000))
    config = write_config(tmp_path, [host_table("h", host_emu, "imgbb", max_bytes=4096)], ["h"])
    ran = await run_rehost("upload", str(tmp_path / "big.png"), "-c", str(config))
    assert ran.code == 1
    assert "too large (4.9 KB)" in ran.stderr and "at most 4 KB" in ran.stderr
    assert host_emu.requests == []


async def test_a_duplicate_refusal_is_reported(tmp_path: Path) -> None:
    async with HostEmulator(api_keys=ALL_KEYS, reject_duplicates=True) as emu:
        (tmp_path / "a.png").write_bytes(samples.png())
        config = write_config(tmp_path, [host_table("h", emu, "chevereto")], ["h"])
        first = await run_rehost("upload", str(tmp_path / "a.png"), "-c", str(config))
        second = await run_rehost("upload", str(tmp_path / "a.png"), "-c", str(config))
    assert first.code == 0, first.stderr
    assert second.code == 1
    assert "h already has this file" in second.stderr


async def test_some_files_failing_gives_exit_1_and_keeps_the_rest(
    tmp_path: Path, host_emu: HostEmulator
) -> None:
    (tmp_path / "good.png").write_bytes(samples.png())
    config = write_config(tmp_path, [host_table("h", host_emu, "chevereto")], ["h"])
    ran = await run_rehost(
        "upload", str(tmp_path / "good.png"), str(tmp_path / "missing.png"), "-c", str(config),
        "--json",
    )  # fmt: skip
    assert ran.code == 1
    assert len(ran.stdout.splitlines()) == 1
    assert "missing.png: no such file" in ran.stderr


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["--host", "nope"], "--host nope: no such host"),
        (["--expire", "soonish"], "'soonish' is not a duration"),
    ],
)
async def test_usage_errors_exit_2(
    tmp_path: Path, host_emu: HostEmulator, args: list[str], words: str
) -> None:
    (tmp_path / "a.png").write_bytes(samples.png())
    config = write_config(tmp_path, [host_table("h", host_emu, "chevereto")], ["h"])
    ran = await run_rehost("upload", str(tmp_path / "a.png"), "-c", str(config), *args)
    assert ran.code == 2
    assert words in ran.stderr
    assert "Traceback" not in ran.stderr
    assert host_emu.requests == []


# --- failover -------------------------------------------------------------------------------


async def test_failover_after_a_host_keeps_answering_503(tmp_path: Path) -> None:
    async with (
        HostEmulator(api_keys=ALL_KEYS) as down,
        HostEmulator(api_keys=ALL_KEYS) as up,
    ):
        down.script(Fault("status", status=503), times=100)
        (tmp_path / "a.png").write_bytes(samples.png())
        tables = [host_table("first", down, "imgbb"), host_table("second", up, "chevereto")]
        config = write_config(tmp_path, tables, ["first", "second"], "retry_attempts = 3\n")
        ran = await run_rehost("upload", str(tmp_path / "a.png"), "-c", str(config), "--json")
    assert ran.code == 0, ran.stderr
    line = json.loads(ran.stdout)
    assert line["host"] == "second"
    assert line["viewer_url"].startswith(up.base_url)
    assert len(down.uploads) == 3, "retried with backoff before failing over"
    assert len(up.uploads) == 1
    assert_no_secrets(ran.stdout, ran.stderr)


async def test_failover_after_a_refused_key_reports_it(tmp_path: Path) -> None:
    async with (
        HostEmulator(api_keys=("not-our-key-000000",)) as refusing,
        HostEmulator(api_keys=ALL_KEYS) as up,
    ):
        (tmp_path / "a.png").write_bytes(samples.png())
        tables = [host_table("first", refusing, "chevereto"), host_table("second", up, "imgbb")]
        config = write_config(tmp_path, tables, ["first", "second"])
        ran = await run_rehost("upload", str(tmp_path / "a.png"), "-c", str(config), "--json")
    assert ran.code == 0, ran.stderr
    assert json.loads(ran.stdout)["host"] == "second"
    assert len(refusing.uploads) == 1, "a refused key is never retried"
    assert "warning" in ran.stderr and "first refused the API key" in ran.stderr
    assert_no_secrets(ran.stdout, ran.stderr)
