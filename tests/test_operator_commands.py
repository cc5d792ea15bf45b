"""The operator's record: ``rehost upload`` records what it uploads; ``rehost history``,
``rehost delete`` and ``rehost stats`` see it; bad storage, bad arguments and a closed stdout
are one line each."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import sqlite3
import sys
from dataclasses import dataclass, replace
from pathlib import Path

import httpx
import pytest

from bot.cli import printable
from bot.deletion import DeleteStatus
from bot.presenting import delete_warning, delete_warning_for
from bot.requests import RehostRequest, SourceRef
from bot.store import ACTIVE, DELETED, SCHEMA_VERSION, Store
from sandbox import samples
from sandbox.hostemu import Fault, HostEmulator
from tests.conftest import (
    ALL_KEYS,
    ROOT,
    Ran,
    assert_no_secrets,
    host_table,
    run_rehost,
    write_config,
)
from tests.service_harness import service_for

QUIET = {"REHOST_LOG_LEVEL": ""}  # what an operator gets without asking for logs


async def run_in(
    cwd: Path, *args: str, stdout: int | None = None, env: dict[str, str] | None = None
) -> Ran:
    """``rehost`` run in ``cwd``, its stdout optionally an already open descriptor."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bot",
        *args,
        stdout=asyncio.subprocess.PIPE if stdout is None else stdout,
        stderr=asyncio.subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": str(ROOT), **QUIET, **(env or {})},
        cwd=cwd,
    )
    out, err = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode is not None
    return Ran(process.returncode, (out or b"").decode(), err.decode())


def one_line(text: str) -> str:
    lines = text.splitlines()
    assert len(lines) == 1, text
    assert "Traceback" not in text
    return lines[0]


def history(ran: Ran) -> list[dict[str, object]]:
    assert ran.code == 0, ran.stderr
    return [json.loads(line) for line in ran.stdout.splitlines()]


# --- history, delete and stats over the bot's own uploads ----------------------------------


async def test_history_delete_and_stats(host_emu: HostEmulator, tmp_path: Path) -> None:
    config = write_config(tmp_path, [host_table("chev", host_emu, "chevereto")], ["chev"])
    data = samples.png(3, 3)
    url = host_emu.add_blob("a.png", data)
    async with service_for(host_emu, tmp_path / "rehost.db") as h:
        for owner in ("ann", "ann", "bob"):
            await h.service.rehost(RehostRequest("test", "c", owner, [SourceRef("a.png", url=url)]))
        await h.service.rehost(
            RehostRequest(
                "test", "c", "bob", [SourceRef("x.png", url=host_emu.add_blob("x", b"nope"))]
            )
        )

    listed = await run_rehost("history", "-c", str(config), "--owner", "ann", "--json")
    [ann] = history(listed)
    assert ann["owner_id"] == "ann" and ann["state"] == "active" and "delete_url" not in ann

    stats = await run_rehost("stats", "-c", str(config), "--json")
    numbers = json.loads(stats.stdout)
    assert numbers["uploads"] == 1 and numbers["bytes"] == len(data)
    assert numbers["dedup_hits"] == 2 and numbers["failures"] == 1
    assert numbers["hosts"]["chev"]["uploads"] == 1

    deleted = await run_rehost("delete", str(ann["id"]), "-c", str(config))
    assert deleted.code == 0, deleted.stderr
    assert f"Deleted #{ann['id']}" in deleted.stdout
    assert all(image.deleted for image in host_emu.images.values())
    missing = await run_rehost("delete", "9999", "-c", str(config))
    assert missing.code == 1 and "No upload #9999" in missing.stdout

    listing = await run_rehost("history", "-c", str(config))
    assert listing.stdout.count("deleted") == 2  # ann's upload and bob's reuse of it
    assert_no_secrets(listed.stdout, stats.stdout, deleted.stdout, listing.stdout)
    assert "/delete/" not in listing.stdout + listed.stdout


# --- rehost upload records what it uploads ---------------------------------------------------


async def test_a_cli_upload_is_in_history_and_rehost_delete_deletes_it(
    host_emu: HostEmulator, tmp_path: Path
) -> None:
    (tmp_path / "a.png").write_bytes(samples.png(4, 3))
    config = write_config(tmp_path, [host_table("chev", host_emu, "chevereto")], ["chev"])

    uploaded = await run_rehost("upload", str(tmp_path / "a.png"), "-c", str(config), "--json")
    assert uploaded.code == 0, uploaded.stderr
    line = json.loads(uploaded.stdout)

    [record] = history(await run_rehost("history", "-c", str(config), "--json"))
    assert record["id"] == line["record"]
    assert (record["platform"], record["owner_id"], record["host"]) == ("cli", "cli", "chev")
    assert (record["viewer_url"], record["url"], record["state"]) == (
        line["viewer_url"],
        line["url"],
        "active",
    )
    assert record["sha256"] == line["sha256"]

    deleted = await run_rehost("delete", str(record["id"]), "-c", str(config))
    assert deleted.code == 0, deleted.stderr
    assert f"Deleted #{record['id']}" in deleted.stdout
    async with httpx.AsyncClient() as http:
        assert (await http.get(line["url"])).status_code == 404
    [after] = history(await run_rehost("history", "-c", str(config), "--json"))
    assert after["state"] == "deleted"
    assert_no_secrets(uploaded.stdout, uploaded.stderr, deleted.stdout)


async def test_owner_option_stats_and_no_record(host_emu: HostEmulator, tmp_path: Path) -> None:
    (tmp_path / "a.png").write_bytes(samples.png(2, 2))
    (tmp_path / "b.png").write_bytes(samples.png(3, 3))
    config = write_config(tmp_path, [host_table("chev", host_emu, "chevereto")], ["chev"])

    mine = await run_rehost("upload", str(tmp_path / "a.png"), "-c", str(config), "--owner", "ops")
    assert mine.code == 0, mine.stderr
    assert "record:  #1" in mine.stdout
    skipped = await run_rehost(
        "upload", str(tmp_path / "b.png"), "-c", str(config), "--no-record", "--json"
    )
    assert skipped.code == 0, skipped.stderr
    assert json.loads(skipped.stdout)["record"] is None

    records = history(await run_rehost("history", "-c", str(config), "--json"))
    assert [(r["platform"], r["owner_id"]) for r in records] == [("cli", "ops")]
    assert (
        len(history(await run_rehost("history", "-c", str(config), "--owner", "ops", "--json")))
        == 1
    )
    numbers = json.loads((await run_rehost("stats", "-c", str(config), "--json")).stdout)
    assert numbers["uploads"] == 1 and numbers["hosts"]["chev"]["uploads"] == 1
    assert len(host_emu.uploads) == 2


@pytest.mark.parametrize("stdout_kind", ["closed pipe", "full disk"])
async def test_links_are_recorded_before_printing_fails(
    host_emu: HostEmulator, tmp_path: Path, stdout_kind: str
) -> None:
    for name in ("a.png", "b.png"):
        (tmp_path / name).write_bytes(samples.png(2, 5 if name == "a.png" else 6))
    config = write_config(tmp_path, [host_table("chev", host_emu, "chevereto")], ["chev"])
    files = [str(tmp_path / "a.png"), str(tmp_path / "b.png")]
    if stdout_kind == "closed pipe":
        reader, writer = os.pipe()
        os.close(reader)  # `rehost upload ... | head -0`: nobody reads
    else:
        writer = os.open("/dev/full", os.O_WRONLY)
    try:
        ran = await run_in(ROOT, "upload", *files, "-c", str(config), stdout=writer)
    finally:
        os.close(writer)

    assert ran.code == 1
    line = one_line(ran.stderr)
    assert line.startswith("rehost: could not print the links (")
    assert "recorded as #1, #2: see rehost history" in line
    records = history(await run_rehost("history", "-c", str(config), "--json"))
    assert sorted(str(r["viewer_url"]) for r in records) == sorted(
        image.viewer_url for image in host_emu.images.values()
    )
    assert_no_secrets(ran.stderr)


# --- ImgBB-style deletion: the link is handed over, the upload stays live --------------------


async def test_imgbb_delete_hands_over_the_link_and_keeps_the_upload_live(
    host_emu: HostEmulator, tmp_path: Path
) -> None:
    data = samples.png(7, 7)
    url = host_emu.add_blob("a.png", data)

    def asked(owner: str) -> RehostRequest:
        return RehostRequest("test", "c", owner, [SourceRef("a.png", url=url)])

    async with service_for(host_emu, tmp_path / "r.db", hosts=("zg",)) as h:
        [ann] = await h.service.rehost(asked("ann"))
        [bob] = await h.service.rehost(asked("bob"))  # a reuse of ann's image
        assert ann.upload is not None and bob.upload is not None and ann.delete_url
        assert bob.upload.reused_from == ann.upload.id

        first = await h.deleter.delete(ann.upload.id, "test", "ann")
        assert first.status is DeleteStatus.OPEN_LINK and not first.removed
        assert first.delete_url == ann.delete_url and not first.bot_messages
        assert "confirm" in first.message and "stays in your list" in first.message
        record = await h.store.upload(ann.upload.id)
        assert record is not None and record.state == ACTIVE
        assert record.delete_handed_at is not None
        assert [u.id for u in await h.service.library.live_uploads("test", "ann")] == [
            ann.upload.id
        ]
        assert [u.id for u in await h.service.library.live_uploads("test", "bob")] == [
            bob.upload.id
        ]
        assert (await h.store.stats())["delete_links_handed_over"] == 1

        # Asked again: the same link, saying when it was first handed over.
        second = await h.deleter.delete(ann.upload.id, "test", "ann")
        assert second.status is DeleteStatus.OPEN_LINK
        assert second.delete_url == ann.delete_url and "still on zg" in second.message
        again = await h.store.upload(ann.upload.id)
        assert again is not None and again.delete_handed_at == record.delete_handed_at

        # Someone else's same image is not hung on an image about to go: a fresh upload.
        [carl] = await h.service.rehost(asked("carl"))
        assert carl.upload is not None and carl.upload.reused_from is None
        assert carl.upload.host_image_id != ann.upload.host_image_id

        # The owner confirms on the page; the next request finds the image gone.
        assert (await h.http.post(ann.delete_url)).status_code == 200
        gone = await h.deleter.delete(ann.upload.id, "test", "ann")
        assert gone.status is DeleteStatus.ALREADY_GONE and gone.removed
        states = {
            u: await h.store.upload(u) for u in (ann.upload.id, bob.upload.id, carl.upload.id)
        }

    assert [s.state if s else None for s in states.values()] == [DELETED, DELETED, ACTIVE]
    token_path = ann.delete_url.split("://", 1)[1].split("/", 1)[1]
    to_link = [r.method for r in host_emu.requests if r.path.lstrip("/") == token_path]
    assert to_link == ["POST"], "only the owner opened the delete link; the bot never did"


async def test_operator_delete_on_imgbb_shows_the_link_and_history_says_so(
    host_emu: HostEmulator, tmp_path: Path
) -> None:
    (tmp_path / "a.png").write_bytes(samples.png(5, 2))
    config = write_config(tmp_path, [host_table("zg", host_emu, "zg.is")], ["zg"])
    uploaded = await run_rehost("upload", str(tmp_path / "a.png"), "-c", str(config), "--json")
    line = json.loads(uploaded.stdout)
    assert "(private:" not in uploaded.stdout

    readable = await run_rehost("upload", str(tmp_path / "a.png"), "-c", str(config))
    assert "(private: it opens a page where you confirm the deletion)" in readable.stdout

    for _ in range(2):
        handed = await run_rehost("delete", str(line["record"]), "-c", str(config))
        assert handed.code == 0, handed.stderr
        assert f"open to confirm: {line['delete_url']}" in handed.stdout
    records = history(await run_rehost("history", "-c", str(config), "--json"))
    handed_over = [r for r in records if r["id"] == line["record"]]
    assert handed_over[0]["state"] == "active" and handed_over[0]["delete_link_handed_over_at"]
    text = await run_rehost("history", "-c", str(config))
    assert "delete link handed over" in text.stdout and "/i/" in text.stdout
    stats = json.loads((await run_rehost("stats", "-c", str(config), "--json")).stdout)
    assert stats["states"] == {"active": 2} and stats["delete_links_handed_over"] == 1
    assert not any(image.deleted for image in host_emu.images.values())


async def test_delete_wording_says_what_each_dialect_does() -> None:
    assert "deletes the image at once" in delete_warning("chevereto")
    assert "page where you confirm" in delete_warning("imgbb")
    store = await Store.open()
    upload_id = await store.add_upload(
        platform="t", owner_id="o", sha256="s", size=1, host="chev", dialect="chevereto",
        viewer_url="v", delete_url="d",
    )  # fmt: skip
    chev = await store.upload(upload_id)
    assert chev is not None
    zg = replace(chev, host="zg", dialect="imgbb")
    assert delete_warning_for([chev]) == delete_warning("chevereto")
    assert delete_warning_for([zg, None]) == delete_warning("imgbb")
    both = delete_warning_for([chev, zg])
    assert both is not None
    assert "on chev opening it deletes the image at once" in both
    assert "on zg it opens a page where you confirm" in both
    assert delete_warning_for([replace(chev, delete_url=None)]) is None
    await store.close()


# --- bad storage is one line, from every command ---------------------------------------------


@dataclass(frozen=True)
class BadStorage:
    name: str
    words: str


BAD_STORAGE = [
    BadStorage("directory", "is a directory"),
    BadStorage("corrupt", "is not a rehost database or is corrupt"),
    BadStorage("newer", "was written by a newer rehost"),
    BadStorage("parent is a file", "cannot be created"),
    BadStorage("no permission", "no permission"),
]
COMMANDS = [["history"], ["stats"], ["delete", "1"], ["upload", "IMAGE"], ["run"]]


def spoil(tmp_path: Path, kind: str) -> Path:
    """A storage path that cannot be used, the way ``kind`` says."""
    path = tmp_path / "rehost.db"
    if kind == "directory":
        path.mkdir()
    elif kind == "corrupt":
        path.write_bytes(b"SQLite format 3\0" + b"\xa5" * 4096)
    elif kind == "newer":
        with sqlite3.connect(path) as conn:
            conn.execute("create table uploads (id integer primary key)")
            conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 100}")
        conn.close()
        path.chmod(0o600)  # as the newer rehost that wrote it made it
    elif kind == "parent is a file":
        (tmp_path / "data").write_text("not a directory")
        path = tmp_path / "data" / "rehost.db"
    elif kind == "no permission":
        locked = tmp_path / "locked"
        locked.mkdir()
        locked.chmod(0o500)
        path = locked / "rehost.db"
    return path


@pytest.mark.parametrize("bad", BAD_STORAGE, ids=lambda bad: bad.name)
@pytest.mark.parametrize("command", COMMANDS, ids=lambda command: command[0])
async def test_bad_storage_is_one_line_and_exit_2(
    host_emu: HostEmulator, tmp_path: Path, bad: BadStorage, command: list[str]
) -> None:
    if bad.name == "no permission" and os.geteuid() == 0:
        pytest.skip("root may write anywhere")
    path = spoil(tmp_path, bad.name)
    config = write_config(tmp_path, [host_table("chev", host_emu, "chevereto")], ["chev"])
    text = config.read_text().replace(str(tmp_path / "rehost.db"), str(path))
    config.write_text(text)
    image = tmp_path / "a.png"
    image.write_bytes(samples.png())
    args = [str(image) if arg == "IMAGE" else arg for arg in command]

    ran = await run_in(
        tmp_path, *args, "-c", str(config), env={"REHOST_TELEGRAM_TOKEN": "123:not-a-real-token"}
    )

    assert ran.code == 2, ran.stderr
    line = one_line(ran.stderr)
    assert line.startswith(f"rehost: storage error: {path}: "), line
    assert bad.words in line
    assert ran.stdout == ""
    assert host_emu.uploads == [], "nothing is uploaded where it cannot be recorded"


async def test_an_upload_that_is_not_recorded_still_works_on_bad_storage(
    host_emu: HostEmulator, tmp_path: Path
) -> None:
    path = spoil(tmp_path, "corrupt")
    (tmp_path / "a.png").write_bytes(samples.png())
    config = write_config(tmp_path, [host_table("chev", host_emu, "chevereto")], ["chev"])
    assert str(path) in config.read_text()
    ran = await run_rehost("upload", str(tmp_path / "a.png"), "-c", str(config), "--no-record")
    assert ran.code == 0, ran.stderr
    assert "uploaded to chev" in ran.stdout


# --- a quiet, parseable command line ---------------------------------------------------------


async def test_retries_are_logged_only_when_asked(host_emu: HostEmulator, tmp_path: Path) -> None:
    (tmp_path / "a.png").write_bytes(samples.png())
    config = write_config(tmp_path, [host_table("h", host_emu, "chevereto")], ["h"])
    upload = ["upload", str(tmp_path / "a.png"), "-c", str(config)]

    host_emu.script(Fault("status", status=503), times=1)
    quiet = await run_rehost(*upload, env=QUIET)
    assert quiet.code == 0 and quiet.stderr == ""

    host_emu.script(Fault("status", status=503), times=1)
    verbose = await run_rehost(*upload, "-v", env=QUIET)
    assert verbose.code == 0 and "503" in verbose.stderr
    assert len(host_emu.uploads) == 4
    assert_no_secrets(quiet.stderr, verbose.stderr)


async def test_a_refused_key_is_one_warning_line_without_asking(tmp_path: Path) -> None:
    async with (
        HostEmulator(api_keys=("not-our-key-000000",)) as refusing,
        HostEmulator(api_keys=ALL_KEYS) as up,
    ):
        files = []
        for name, data in (("a.png", samples.png(1, 2)), ("b.png", samples.png(2, 1))):
            (tmp_path / name).write_bytes(data)
            files.append(str(tmp_path / name))
        tables = [host_table("zg", refusing, "imgbb"), host_table("mychev", up, "chevereto")]
        config = write_config(tmp_path, tables, ["zg", "mychev"])
        ran = await run_rehost("upload", *files, "-c", str(config), "--json", env=QUIET)
    assert ran.code == 0, ran.stderr
    assert len(ran.stdout.splitlines()) == 2
    assert one_line(ran.stderr) == (
        "rehost: warning: zg refused the API key; uploaded to mychev instead"
    )


async def test_failures_are_one_line_each_with_odd_file_names_escaped(
    host_emu: HostEmulator, tmp_path: Path
) -> None:
    odd = tmp_path / "two\nlines\x1b[31m.png"
    odd.write_bytes(b"%PDF-1.7 not an image")
    good = tmp_path / "good\tname.png"
    good.write_bytes(samples.png())
    config = write_config(tmp_path, [host_table("h", host_emu, "chevereto")], ["h"])
    ran = await run_rehost(
        "upload", str(odd), str(tmp_path / "missing.png"), str(good), "-c", str(config),
        env=QUIET,
    )  # fmt: skip
    assert ran.code == 1
    lines = ran.stderr.splitlines()
    assert len(lines) == 2, ran.stderr
    assert lines[0] == f"rehost: {tmp_path}/two\\nlines\\x1b[31m.png: " + lines[0].split(": ")[-1]
    assert "not a supported image" in lines[0] and "\x1b" not in ran.stderr
    assert lines[1] == f"rehost: {tmp_path}/missing.png: no such file"
    assert ran.stdout.splitlines()[0] == f"{tmp_path}/good\\tname.png: uploaded to h"


def test_printable_escapes_what_would_break_a_line() -> None:
    assert printable("plain café 😀.png") == "plain café 😀.png"
    assert printable("a\nb\rc\td") == "a\\nb\\rc\\td"
    assert printable("\x1b[2J\x7f") == "\\x1b[2J\\x7f"
    assert printable("cat\u202egnp.exe") == "cat\\u202egnp.exe"
    assert printable(b"\xff.png".decode("utf-8", "surrogateescape")) == "\\xff.png"
    assert printable("x\u2028y") == "x\\u2028y"


@pytest.mark.parametrize(
    ("value", "words"),
    [
        ("", "--expire: '' is not a duration"),
        ("0m", "--expire: '0m' is zero"),
        ("0 days", "--expire: '0 days' is zero"),
    ],
)
async def test_empty_or_zero_expiry_is_an_error_naming_it(
    host_emu: HostEmulator, tmp_path: Path, value: str, words: str
) -> None:
    (tmp_path / "a.png").write_bytes(samples.png())
    config = write_config(tmp_path, [host_table("h", host_emu, "chevereto")], ["h"])
    ran = await run_rehost("upload", str(tmp_path / "a.png"), "-c", str(config), "--expire", value)
    assert ran.code == 2
    line = one_line(ran.stderr)
    assert words in line and "'never'" in line
    assert host_emu.requests == []


async def test_a_zero_default_expiration_names_the_key(
    host_emu: HostEmulator, tmp_path: Path
) -> None:
    (tmp_path / "a.png").write_bytes(samples.png())
    tables = [host_table("h", host_emu, "chevereto")]
    config = write_config(tmp_path, tables, ["h"], 'default_expiration = "0m"\n')
    ran = await run_rehost("upload", str(tmp_path / "a.png"), "-c", str(config))
    assert ran.code == 2
    line = one_line(ran.stderr)
    assert "upload.default_expiration: '0m' is zero" in line
    assert host_emu.requests == []


async def test_without_a_configuration_the_error_points_at_c_and_the_example(
    tmp_path: Path,
) -> None:
    (tmp_path / "a.png").write_bytes(samples.png())
    for args in (["upload", "a.png"], ["history"], ["stats"], ["run"]):
        ran = await run_in(tmp_path, *args)
        assert ran.code == 2
        line = one_line(ran.stderr)
        assert "no rehost.toml in this directory" in line
        assert "-c FILE" in line and "config.example.toml" in line


async def test_a_rehost_toml_in_the_working_directory_is_used(
    host_emu: HostEmulator, tmp_path: Path
) -> None:
    (tmp_path / "a.png").write_bytes(samples.png())
    write_config(tmp_path, [host_table("h", host_emu, "chevereto")], ["h"])
    ran = await run_in(tmp_path, "upload", "a.png")
    assert ran.code == 0, ran.stderr
    assert "a.png: uploaded to h" in ran.stdout


async def test_emulate_host_on_a_port_in_use_says_so(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        ran = await run_in(tmp_path, "emulate-host", "--port", str(port))
    assert ran.code == 2
    line = one_line(ran.stderr)
    assert f"port {port} is already in use" in line
