"""Shared fixtures: local host emulators, configuration files, and running the command."""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import AsyncIterator, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from bot.store import Store
from sandbox.hostemu import HostEmulator
from sandbox.telegram_api import TelegramEmulator

if TYPE_CHECKING:
    from sandbox.postgres import PostgresServer

# Keys that look real enough to be noticed if they ever leak into output.
IMGBB_KEY = "imgbb-test-key-7c1e94d2a0b35f68"
CHEV_KEY = "chv_test_key_5d2f8a61c09b43e7aa"
ALL_KEYS = (IMGBB_KEY, CHEV_KEY)
ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
async def host_emu() -> AsyncIterator[HostEmulator]:
    async with HostEmulator(api_keys=ALL_KEYS) as emu:
        yield emu


@pytest.fixture
def host(host_emu: HostEmulator) -> HostEmulator:
    """The host emulator, by the name the chat adapter tests use."""
    return host_emu


@pytest.fixture
async def tg() -> AsyncIterator[TelegramEmulator]:
    """The Telegram emulator with the test world, fetching link previews as Telegram does
    (so a delete link in a message with previews on would be opened, and caught)."""
    from tests.telegram_harness import telegram_world

    async with TelegramEmulator(fetch_link_previews=True) as emulator:
        telegram_world(emulator)
        yield emulator
        assert emulator.server_errors == []


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """One throwaway PostgreSQL server for the session, started when a test first asks for
    it (or the one REHOST_TEST_POSTGRES_URL names); see sandbox/postgres.py."""
    from sandbox.postgres import start_server

    server = start_server()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def postgres_url(postgres_server: PostgresServer) -> Iterator[str]:
    """The URL of a fresh, empty database of its own, dropped after the test."""
    from sandbox.postgres import drop_database, new_database

    url = new_database(postgres_server)
    yield url
    drop_database(postgres_server, url)


def host_table(name: str, emu: HostEmulator, kind: str, **extra: object) -> str:
    """A ``[hosts.NAME]`` table aimed at ``emu``: ``kind`` is a preset name or a dialect."""
    dialect = "imgbb" if kind in ("imgbb", "zg.is") else "chevereto"
    endpoint = emu.imgbb_endpoint if dialect == "imgbb" else emu.chevereto_endpoint
    key = IMGBB_KEY if dialect == "imgbb" else CHEV_KEY
    lines = [f"[hosts.{name}]"]
    lines.append(f'dialect = "{kind}"' if kind in ("imgbb", "chevereto") else f'preset = "{kind}"')
    lines += [f'endpoint = "{endpoint}"', f'api_key = "{key}"']
    for option, value in extra.items():
        lines.append(f"{option} = {value!r}".replace("'", '"'))
    return "\n".join(lines) + "\n"


def write_config(
    tmp_path: Path, tables: Sequence[str], order: Sequence[str], upload_extra: str = ""
) -> Path:
    hosts = ", ".join(f'"{name}"' for name in order)
    text = f"[upload]\nhosts = [{hosts}]\nretry_backoff = 0.01\n{upload_extra}\n"
    text += "\n".join(tables)
    # Short leases: work of a stopped or killed bot is taken over within two seconds.
    text += f'\n[storage]\npath = "{tmp_path / "rehost.db"}"\nlease_seconds = 2.0\n'
    path = tmp_path / "rehost.toml"
    path.write_text(text)
    path.chmod(0o600)  # it holds API keys: as an operator keeps it (else rehost warns)
    return path


@dataclass
class Ran:
    code: int
    stdout: str
    stderr: str


async def run_rehost(*args: str, env: dict[str, str] | None = None, timeout: float = 60) -> Ran:
    """Run the real ``rehost`` command (as ``python -m bot``) without blocking the loop, so
    emulators in this process keep answering."""
    environment = {**os.environ, "REHOST_LOG_LEVEL": "DEBUG", **(env or {})}
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bot",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=environment,
        cwd=ROOT,
    )
    out, err = await asyncio.wait_for(process.communicate(), timeout)
    assert process.returncode is not None
    return Ran(process.returncode, out.decode(), err.decode())


async def start_rehost_run(config: Path, **env: str) -> asyncio.subprocess.Process:
    """``rehost run -c CONFIG`` as a process of its own (``python -m bot``), with its output
    piped and ``env`` added to this process's environment."""
    return await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bot", "run", "-c", str(config),
        cwd=ROOT, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        env={**os.environ, **env},
    )  # fmt: skip


def assert_no_secrets(*texts: str) -> None:
    for text in texts:
        for key in ALL_KEYS:
            assert key not in text, "an API key leaked"


@pytest.fixture(params=["sqlite", "postgresql"])
def storage(request: pytest.FixtureRequest, tmp_path: Path) -> Path | str:
    """Where a test's database is, once per engine: a SQLite file, or a fresh database
    on the PostgreSQL server the tests start (see sandbox/postgres.py)."""
    if request.param == "sqlite":
        return tmp_path / "rehost.db"
    url: str = request.getfixturevalue("postgres_url")
    return url


@pytest.fixture(params=["sqlite", "postgresql"])
def engine(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Run a test once per engine. On PostgreSQL, ``REHOST_STORAGE_URL`` (which wins over
    ``[storage] path``) points the bot, and every ``rehost`` it runs, at a fresh database."""
    if request.param == "postgresql":
        monkeypatch.setenv("REHOST_STORAGE_URL", request.getfixturevalue("postgres_url"))
    return str(request.param)


def storage_target(tmp_path: Path) -> Path | str:
    """Where the bot's database is in a test run by ``engine``."""
    return os.environ.get("REHOST_STORAGE_URL") or tmp_path / "rehost.db"


# Work the bot has not finished: updates not handled, jobs, answers, open batches.
UNFINISHED = (
    "select (select count(*) from inbox where state = 'new')"
    " + (select count(*) from jobs where state in ('pending', 'held'))"
    " + (select count(*) from outbox where state = 'pending')"
    " + (select count(*) from batches where state = 'open') as unfinished"
)


async def unfinished(store: Store) -> int:
    """How much recorded work is left (0: every answer sent or given up)."""
    return int(await store.db.fetchval(UNFINISHED))
