"""Files that hold secrets stay with their owner: the SQLite database (every delete link)
and the files SQLite keeps beside it are 0600, an existing one is tightened with a logged
line, and a configuration file holding a key that others can read gets a warning naming
the fix. Modes are checked, not their effect, so these run as root too."""

from __future__ import annotations

import logging
import os
import sqlite3
import stat
import tomllib
from collections.abc import Iterator
from pathlib import Path

import pytest

from bot.community import Communities
from bot.config import load_config
from bot.secretfiles import secret_keys
from bot.store import Store
from sandbox.hostemu import HostEmulator
from tests.conftest import CHEV_KEY, host_table, run_rehost, write_config


def mode(path: Path | str) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


@pytest.fixture
def open_umask() -> Iterator[None]:
    """The usual umask, under which files are made readable by everyone (0644)."""
    previous = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(previous)


@pytest.mark.usefixtures("open_umask")
async def test_a_new_database_and_its_wal_files_are_the_owners_alone(tmp_path: Path) -> None:
    path = tmp_path / "data" / "rehost.db"
    store = await Store.open(path)
    try:
        # Open and written to (the schema): the WAL and its index are there beside it.
        modes = {name: mode(f"{path}{name}") for name in ("", "-wal", "-shm")}
    finally:
        await store.close()
    assert modes == {"": 0o600, "-wal": 0o600, "-shm": 0o600}


async def test_a_cleared_secret_leaves_no_bytes_behind_in_the_database_file(
    tmp_path: Path,
) -> None:
    """A community's own host key, once cleared, is not left in the file's free space."""
    path = tmp_path / "rehost.db"
    sealed = "gAAAAABsealed-own-host-key-" + "k" * 40  # as Fernet writes one
    store = await Store.open(path)
    try:
        communities = Communities(store.db)
        for guild in ("g0", "g1", "g2"):  # neighbours in the same page
            await communities.change("discord", guild, "1", "Ann", language="es")
        await communities.change("discord", "g1", "1", "Ann", own_host=sealed)
        await store.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        assert sealed.encode() in path.read_bytes()  # the test can see it when it is there
        await communities.change("discord", "g1", "1", "Ann", own_host=None)
        await store.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        left = path.read_bytes() + Path(f"{path}-wal").read_bytes()
    finally:
        await store.close()
    assert sealed.encode() not in left


@pytest.mark.usefixtures("open_umask")
async def test_an_existing_database_others_can_read_is_tightened_with_one_line(
    host_emu: HostEmulator, tmp_path: Path
) -> None:
    config = write_config(tmp_path, [host_table("h", host_emu, "chevereto")], ["h"])
    path = tmp_path / "rehost.db"
    # A database an earlier version made (0644), open in another process at this moment:
    # its WAL and index are there too, with its mode.
    earlier = sqlite3.connect(path, isolation_level=None)
    try:
        earlier.execute("pragma journal_mode=wal")
        earlier.execute("create table earlier (x)")
        assert {mode(f"{path}{name}") for name in ("", "-wal", "-shm")} == {0o644}
        ran = await run_rehost("stats", "-c", str(config), env={"REHOST_LOG_LEVEL": "INFO"})
        again = await run_rehost("stats", "-c", str(config), env={"REHOST_LOG_LEVEL": "INFO"})
        modes = {name: mode(f"{path}{name}") for name in ("", "-wal", "-shm")}
    finally:
        earlier.close()
    assert ran.code == 0, ran.stderr
    assert modes == {"": 0o600, "-wal": 0o600, "-shm": 0o600}
    lines = [line for line in ran.stderr.splitlines() if str(path) in line]
    assert len(lines) == 1, ran.stderr
    assert " INFO " in lines[0] and "other users could read it" in lines[0]
    assert f"{path} (0644), {path}-wal (0644), {path}-shm (0644)" in lines[0]
    assert str(path) not in again.stderr  # once tightened, nothing more to say


def config_with_key(tmp_path: Path, host: HostEmulator, file_mode: int) -> Path:
    tmp_path.mkdir(exist_ok=True)
    config = write_config(tmp_path, [host_table("h", host, "chevereto")], ["h"])
    config.chmod(file_mode)
    return config


@pytest.mark.parametrize("file_mode", [0o644, 0o640, 0o604])
def test_a_config_file_holding_a_key_that_others_can_read_is_warned_about(
    host_emu: HostEmulator, tmp_path: Path, caplog: pytest.LogCaptureFixture, file_mode: int
) -> None:
    config = config_with_key(tmp_path, host_emu, file_mode)
    with caplog.at_level(logging.WARNING):
        load_config(config, environ={})
    (record,) = [r for r in caplog.records if str(config) in r.getMessage()]
    assert record.levelno == logging.WARNING
    message = record.getMessage()
    assert f"chmod 600 {config}" in message and "hosts.h.api_key" in message
    assert f"mode {file_mode:04o}" in message
    assert CHEV_KEY not in message


def test_a_private_config_file_or_one_without_secrets_is_not_warned_about(
    host_emu: HostEmulator, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    private = config_with_key(tmp_path / "a", host_emu, 0o600)
    # The key comes from the environment: the file holds nothing secret.
    (tmp_path / "b").mkdir()
    public = write_config(tmp_path / "b", [host_table("h", host_emu, "chevereto")], ["h"])
    public.write_text(public.read_text().replace(f'api_key = "{CHEV_KEY}"', ""))
    public.chmod(0o644)
    with caplog.at_level(logging.WARNING):
        load_config(private, environ={})
        config = load_config(public, environ={"REHOST_HOST_H_API_KEY": CHEV_KEY})
    assert config.hosts["h"].api_key == CHEV_KEY
    assert caplog.records == []


def test_a_config_handed_over_as_a_systemd_credential_is_not_warned_about(
    host_emu: HostEmulator,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """systemd gives a credential to the service's user by an ACL, whose mask shows as
    group bits (0440): the file is not readable by others all the same."""
    config = config_with_key(tmp_path / "credentials", host_emu, 0o440)
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(tmp_path / "credentials"))
    with caplog.at_level(logging.WARNING):
        load_config(config, environ={})
    assert caplog.records == []


async def test_every_command_warns_through_its_log(host_emu: HostEmulator, tmp_path: Path) -> None:
    config = config_with_key(tmp_path, host_emu, 0o644)
    ran = await run_rehost("stats", "-c", str(config), env={"REHOST_LOG_LEVEL": "WARNING"})
    assert ran.code == 0, ran.stderr
    (line,) = [line for line in ran.stderr.splitlines() if str(config) in line]
    assert "WARNING" in line and f"run chmod 600 {config}" in line
    assert CHEV_KEY not in ran.stderr + ran.stdout


def test_every_secret_a_file_can_hold_is_found(tmp_path: Path) -> None:
    """The keys found are the file's share of Config.secrets(): all of it, when nothing
    comes from the environment."""
    path = tmp_path / "rehost.toml"
    path.write_text(
        '[upload]\nhosts = ["a", "b"]\n'
        '[hosts.a]\ndialect = "imgbb"\nendpoint = "https://a.example/1/upload"\n'
        'api_key = "key-of-a-123456"\n'
        '[hosts.b]\ndialect = "chevereto"\nendpoint = "https://b.example/api/1/upload"\n'
        'api_key = "key-of-b-123456"\n'
        '[storage]\nurl = "postgresql://rehost:pass-123456@db.example:5432/rehost"\n'
        '[telegram]\ntoken = "123:telegram-token"\nmode = "webhook"\n'
        'webhook_listen = "127.0.0.1:8443"\nwebhook_url = "https://bot.example/tg"\n'
        'webhook_secret = "webhook-secret"\n'
        '[discord]\ntoken = "discord-token"\n'
    )
    path.chmod(0o600)
    raw = tomllib.loads(path.read_text())
    assert secret_keys(raw) == [
        "hosts.a.api_key",
        "hosts.b.api_key",
        "telegram.token",
        "telegram.webhook_secret",
        "discord.token",
        "storage.url",
    ]
    assert len(secret_keys(raw)) == len(load_config(path, environ={}).secrets())
    raw["storage"]["url"] = "postgresql://rehost@db.example:5432/rehost"  # no password
    assert "storage.url" not in secret_keys(raw)
