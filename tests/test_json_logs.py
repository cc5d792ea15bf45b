"""Logs as an operator's log stack reads them: ``[logging] format = "json"`` (or
``REHOST_LOG_FORMAT``) gives one JSON object a line, with the context of the work, and
with no token, key or delete link in any field; ``REHOST_LOG_LEVEL`` sets the level of
every command."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import re
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bot.cli import main
from bot.jsonlog import JsonLineFormatter
from bot.logcontext import ContextFilter, log_context
from bot.logsafety import MASK, RedactingFormatter, Redactor
from sandbox import samples
from sandbox.hostemu import HostEmulator
from sandbox.telegram_api import TelegramEmulator
from tests.conftest import (
    assert_no_secrets,
    host_table,
    run_rehost,
    start_rehost_run,
    write_config,
)
from tests.telegram_harness import ANN, telegram_config, telegram_world

DELETE_LINK = re.compile(r"https?://\S+/delete/\S+")


def json_lines(stderr: str) -> list[dict[str, Any]]:
    """Every line of ``stderr`` as a JSON object with the four fields every line has."""
    records = []
    for line in stderr.splitlines():
        record = json.loads(line)  # a line that is not JSON fails the test here
        assert isinstance(record, dict), line
        assert {"time", "level", "logger", "message"} <= record.keys(), line
        assert record["time"].endswith("Z"), line  # ISO 8601, UTC
        records.append(record)
    return records


async def test_run_logs_json_lines_with_context_and_no_secrets(
    host_emu: HostEmulator, tmp_path: Path
) -> None:
    async with TelegramEmulator() as tg:
        telegram_world(tg)
        config = telegram_config(tmp_path, host_emu, tg)
        process = await start_rehost_run(config, REHOST_LOG_LEVEL="DEBUG", REHOST_LOG_FORMAT="json")
        try:
            tg.send_photo(ANN, ANN, samples.png(9, 9))
            reply = await tg.wait_for(lambda c: c.method == "sendMessage" and c.ok, timeout=30)
        finally:
            process.send_signal(signal.SIGTERM)
            out, err = await asyncio.wait_for(process.communicate(), 30)
    log = err.decode()
    assert process.returncode == 0, log
    records = json_lines(log)
    messages = [record["message"] for record in records]
    assert "telegram adapter started" in messages and "stopped" in messages
    assert {"DEBUG", "INFO"} <= {record["level"] for record in records}
    # The job's lines name its platform, chat and job; the upload's its configured host.
    in_job = [r for r in records if r.get("job") is not None]
    assert in_job and all(r["platform"] == "telegram" and r["chat"] == str(ANN) for r in in_job)
    assert any(r.get("host") == "chev" and r.get("job") is not None for r in records)
    assert not any(host_emu.chevereto_endpoint in str(r.get("host")) for r in records)
    # Nothing secret in any field, nor in the escaped text of one.
    delete_links = DELETE_LINK.findall(reply.params["text"])
    assert delete_links
    for secret in (tg.token, tg.token.split(":")[1], *delete_links):
        assert secret not in log and json.dumps(secret)[1:-1] not in log
    assert "/delete/" not in log.replace(f"/delete/{MASK}", "")
    assert_no_secrets(log, out.decode())


@pytest.fixture
def json_logger() -> Iterator[tuple[logging.Logger, io.StringIO, Redactor]]:
    """A logger writing JSON lines to a buffer, behind the redaction (as the root's is)."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    redactor = Redactor()
    handler.setFormatter(RedactingFormatter(JsonLineFormatter(), redactor))
    handler.addFilter(ContextFilter())
    logger = logging.getLogger("tests.json_logs")
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    logger.propagate = False
    try:
        yield logger, stream, redactor
    finally:
        logger.removeHandler(handler)


def test_secrets_with_json_special_characters_are_masked_and_lines_stay_json(
    json_logger: tuple[logging.Logger, io.StringIO, Redactor],
) -> None:
    logger, stream, redactor = json_logger
    secret = 'k"ey\\with/é\n\tand\u2028more'  # a quote, a backslash, controls, non-ASCII
    redactor.add([secret])
    with log_context(platform="discord", chat=12, job=7, host="local"):
        logger.info("key %s at https://h.example/delete/AbC123", secret, extra={"k": [secret]})
        try:
            raise RuntimeError(f"refused {secret}")
        except RuntimeError:
            logger.exception("upload with %r failed", secret)
    # Not a secret, but its JSON escape looks like one's start: "\n" + "abcdefgh" must not
    # be masked as "nabcdefgh" inside the escape sequence.
    redactor.add(["nabcdefgh"])
    logger.warning("line one\nabcdefgh")
    lines = stream.getvalue().splitlines()
    records = json_lines(stream.getvalue())
    assert len(records) == 3
    first, failure, last = records
    assert first["message"] == f"key {MASK} at https://h.example/delete/{MASK}"
    assert first["k"] == [MASK]
    assert (first["platform"], first["chat"], first["job"], first["host"]) == (
        "discord",
        "12",
        7,
        "local",
    )
    assert failure["message"] == f"upload with '{MASK}' failed"
    assert "RuntimeError: refused " + MASK in failure["exc_info"]
    assert last["message"] == "line one\nabcdefgh" and "job" not in last
    for line in lines:
        assert secret not in line and json.dumps(secret)[1:-1] not in line
    for record in records:
        assert secret not in json.dumps(record, ensure_ascii=False)


async def test_upload_logs_json_at_the_level_asked(host_emu: HostEmulator, tmp_path: Path) -> None:
    image = tmp_path / "a.png"
    image.write_bytes(samples.png(9, 9))
    config = write_config(tmp_path, [host_table("h", host_emu, "chevereto")], ["h"])
    upload = ("upload", str(image), "-c", str(config), "--no-record", "--json")
    ran = await run_rehost(*upload, env={"REHOST_LOG_LEVEL": "DEBUG", "REHOST_LOG_FORMAT": "json"})
    assert ran.code == 0, ran.stderr
    delete_url = json.loads(ran.stdout)["delete_url"]
    assert "/delete/" in delete_url
    # Request lines are logged at DEBUG only, with the host's configured name.
    requests = [r for r in json_lines(ran.stderr) if r["logger"] == "httpx"]
    assert requests and all(r["host"] == "h" for r in requests)
    assert delete_url not in ran.stderr
    assert_no_secrets(ran.stderr)
    quiet = await run_rehost(*upload, env={"REHOST_LOG_LEVEL": "INFO"})
    assert quiet.code == 0 and "httpx" not in quiet.stderr and "{" not in quiet.stderr


@pytest.mark.parametrize(
    "command",
    [
        ["run"],
        ["upload", "--no-record", "missing.png"],
        ["history"],
        ["delete", "1"],
        ["stats"],
        ["check"],
        ["migrate", "--from", "h", "--to", "g", "--dry-run"],
        ["telegram", "delete-webhook"],
    ],
)
def test_every_command_takes_the_log_level_from_the_environment(
    command: list[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Nothing is uploaded: an unreachable endpoint does.
    config = tmp_path / "rehost.toml"
    config.write_text(
        '[upload]\nhosts = ["h", "g"]\n'
        '[hosts.h]\ndialect = "chevereto"\nendpoint = "http://127.0.0.1:9/api/1/upload"\n'
        'api_key = "key-of-h-0123"\n'
        '[hosts.g]\ndialect = "imgbb"\nendpoint = "http://127.0.0.1:9/1/upload"\n'
        'api_key = "key-of-g-0123"\n'
        f'[storage]\npath = "{tmp_path / "rehost.db"}"\n'
    )
    root = logging.getLogger()
    before = root.level
    monkeypatch.setenv("REHOST_LOG_LEVEL", "DEBUG")
    unset = ("TELEGRAM_TOKEN", "DISCORD_TOKEN", "STORAGE_URL", "STORAGE_PATH", "LOG_FORMAT")
    for variable in unset:
        monkeypatch.delenv(f"REHOST_{variable}", raising=False)
    root.setLevel(logging.CRITICAL)
    try:
        main([*command, "-c", str(config)])
        assert root.level == logging.DEBUG
    finally:
        root.setLevel(before)
