"""The connection to the database, for both engines: SQLite (embedded, the default) and
PostgreSQL (shared by many processes).

Every call is a coroutine. PostgreSQL's go through psycopg's async connection pool.
SQLite's run in one thread of their own: a lock held by another process (SQLite waits up
to ``busy_timeout`` for it) never stalls the event loop, and with it a gateway heartbeat.

The store's SQL is written once, with ``?`` placeholders; what differs between the engines
is in :mod:`bot.dialects`. A transaction is ``async with db.transaction():``; statements
the same task runs inside it, through any code using this database, join it.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import os
import sqlite3
import time
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import sqlite_utils

from bot.dialects import POSTGRES, SQLITE, Dialect
from bot.errors import StorageError
from bot.secretfiles import make_private
from bot.storageurl import is_postgres_url, redact_url

if TYPE_CHECKING:
    from psycopg import AsyncConnection
    from psycopg_pool import AsyncConnectionPool

Row = dict[str, Any]
Params = Sequence[Any]
T = TypeVar("T")

log = logging.getLogger(__name__)

BUSY_TIMEOUT_MS = 30_000  # how long a SQLite statement waits for another writer
# SQLite's own automatic checkpoint comes at 1,000 pages of WAL; a commit writes a few.
CHECKPOINT_EVERY = 200


class Database(ABC):
    dialect: Dialect
    where: str  # for messages: the file, or the server's URL without its password

    @abstractmethod
    async def _statement(self, sql: str, params: Params) -> tuple[list[Row], int]:
        """Run one statement (in the task's transaction, if it has one): its rows, and
        how many rows it changed."""

    async def fetch(self, sql: str, params: Params = ()) -> list[Row]:
        return (await self._statement(sql, params))[0]

    async def execute(self, sql: str, params: Params = ()) -> int:
        """Run a statement; returns how many rows it changed."""
        return (await self._statement(sql, params))[1]

    @abstractmethod
    def transaction(self) -> Any:
        """``async with`` it: one transaction, which nested calls join. SQLite takes the
        write lock at once (``BEGIN IMMEDIATE``), so a read-then-write cannot interleave
        with another writer; PostgreSQL's claims lock their rows instead."""

    @abstractmethod
    async def close(self) -> None: ...

    async def fetchrow(self, sql: str, params: Params = ()) -> Row | None:
        rows = await self.fetch(sql, params)
        return rows[0] if rows else None

    async def fetchval(self, sql: str, params: Params = ()) -> Any:
        """The first column of the first row (None when there is no row)."""
        row = await self.fetchrow(sql, params)
        return None if row is None else next(iter(row.values()))

    async def lock_key(self, key: str) -> None:
        """Inside a transaction: hold a lock on ``key`` until it ends, against every other
        process (two workers handling the same bytes at once, say)."""
        statement = self.dialect.lock_key_sql()
        if statement is not None:
            await self.fetch(statement, (key,))


def _switch_to_wal(conn: sqlite3.Connection) -> None:
    """WAL mode, waiting for other processes opening the same new file at the same moment:
    SQLite answers "locked" at once here, without waiting ``busy_timeout``."""
    deadline = time.monotonic() + BUSY_TIMEOUT_MS / 1000
    while True:
        try:
            conn.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as error:
            if "locked" not in str(error) or time.monotonic() > deadline:
                raise
            time.sleep(0.01)  # in the database's own thread, not on the event loop


def _reads_only(sql: str) -> bool:
    """Whether a statement only reads (so, in WAL mode, never waits for a lock)."""
    head = sql.lstrip()[:7].lower()
    return head.startswith("select") or (head.startswith("pragma") and "=" not in sql)


def _dict_row(cursor: sqlite3.Cursor, row: tuple[Any, ...]) -> Row:
    return {column[0]: value for column, value in zip(cursor.description, row, strict=True)}


class SQLiteDatabase(Database):
    """One connection; statements from other tasks wait their turn (an ``asyncio.Lock``),
    and a transaction holds the connection until it ends.

    Statements run on the event loop, which costs far less than a hand-off to a thread: in
    WAL mode a read never waits for a writer, and inside our own transaction the write lock
    is already ours. Taking the write lock (``BEGIN IMMEDIATE``, a write on its own,
    ``COMMIT``) is tried at once without waiting; only when another process holds the lock
    does it go to the database's own thread, to wait there for up to ``busy_timeout``.
    Checkpoints (which write the WAL back into the file and sync it) run in that thread
    too, every ``CHECKPOINT_EVERY`` commits, rather than inside whichever commit crosses
    SQLite's automatic threshold.
    """

    dialect = SQLITE

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self.where = ":memory:" if path is None else str(path)
        self._thread = ThreadPoolExecutor(1, thread_name_prefix="sqlite")
        self._lock = asyncio.Lock()
        # The task whose transaction is open (tasks it starts do not join it).
        self._owner: contextvars.ContextVar[asyncio.Task[Any] | None] = contextvars.ContextVar(
            f"sqlite-transaction-{id(self)}", default=None
        )
        self.sqlite: sqlite_utils.Database | None = None
        # Called with every statement and its parameters (the query-plan test uses it).
        self.trace: Callable[[str, Params], None] | None = None
        self._commits = 0
        # Write transactions begun: each BEGIN IMMEDIATE, and each write on its own.
        self.write_transactions = 0

    async def open(self) -> None:
        self.sqlite = await self.call(self._connect)

    def _connect(self) -> sqlite_utils.Database:
        tightened = None  # what make_private did, said once the database has opened
        if self.path is None:
            conn = sqlite3.connect(":memory:", check_same_thread=False, isolation_level=None)
        else:
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
            except OSError as error:
                raise StorageError(self.path, _unmakeable(self.path.parent, error)) from None
            tightened = make_private(self.path)
            try:
                conn = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
            except (sqlite3.Error, OSError) as error:
                raise StorageError(self.path, storage_problem(self.path, error)) from None
        try:
            conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
            if self.path is not None:
                _switch_to_wal(conn)
                conn.execute("PRAGMA synchronous=NORMAL")  # safe with WAL; fsync at checkpoints
                conn.execute("PRAGMA wal_autocheckpoint=0")  # ours run in the thread
            conn.execute("PRAGMA foreign_keys=ON")
            # A deleted or overwritten value (a community's sealed API key, a delete link)
            # is zeroed in its page rather than left in free space, at no extra I/O.
            conn.execute("PRAGMA secure_delete=FAST")
        except (sqlite3.Error, OSError) as error:
            conn.close()
            raise StorageError(self.where, storage_problem(Path(self.where), error)) from None
        if tightened:
            log.info("%s", tightened)
        return sqlite_utils.Database(conn)

    @property
    def conn(self) -> sqlite3.Connection:
        assert self.sqlite is not None, "open() first"
        return self.sqlite.conn

    async def call(self, function: Callable[[], T]) -> T:
        """Run ``function`` in the database's thread."""
        return await asyncio.get_running_loop().run_in_executor(self._thread, function)

    def _run(self, sql: str, params: Params) -> tuple[list[Row], int]:
        if self.trace is not None:
            self.trace(sql, params)
        cursor = self.conn.cursor()
        cursor.row_factory = _dict_row  # the connection's own stays as sqlite-utils needs it
        cursor.execute(sql, tuple(params))
        rows = cursor.fetchall() if cursor.description else []
        return rows, cursor.rowcount

    def _mine(self) -> bool:
        owner = self._owner.get()
        return owner is not None and owner is asyncio.current_task()

    async def _statement(self, sql: str, params: Params) -> tuple[list[Row], int]:
        if self._mine():
            return self._run(sql, params)
        async with self._lock:
            if _reads_only(sql):
                return self._run(sql, params)
            self.write_transactions += 1
            done = await self._locking(lambda: self._run(sql, params))
            await self._checkpoint_now_and_then()
            return done

    async def _locking(self, action: Callable[[], T]) -> T:
        """Run ``action``, which takes the write lock: at once if the lock is free, else in
        the thread, waiting for it there. A statement refused as busy did nothing, so it can
        run again (SQLite: a busy ``COMMIT`` leaves the transaction open to retry)."""
        conn = self.conn
        conn.execute("PRAGMA busy_timeout = 0")
        try:
            return action()
        except sqlite3.OperationalError as error:
            if error.sqlite_errorcode != sqlite3.SQLITE_BUSY:
                raise
        finally:
            conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        return await self.call(action)

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[None]:
        if self._mine():
            yield
            return
        async with self._lock:
            # One loop turn with the lock held: tasks that arrive in the same turn queue on
            # the lock, so they run one transaction per turn, not all in one long turn.
            await asyncio.sleep(0)
            if self.trace is not None:
                self.trace("BEGIN IMMEDIATE", ())
            await self._locking(lambda: self.conn.execute("BEGIN IMMEDIATE"))
            self.write_transactions += 1
            token = self._owner.set(asyncio.current_task())
            try:
                yield
            except BaseException:
                # The thread runs in order: the rollback comes after any statement still
                # running for a cancelled task.
                await asyncio.shield(self.call(self._rollback))
                raise
            else:
                if self.trace is not None:
                    self.trace("COMMIT", ())
                try:
                    await self._locking(lambda: self.conn.execute("COMMIT"))
                except BaseException:
                    await asyncio.shield(self.call(self._rollback))
                    raise
                await self._checkpoint_now_and_then()
            finally:
                self._owner.reset(token)

    async def _checkpoint_now_and_then(self) -> None:
        self._commits += 1
        if self.path is not None and self._commits % CHECKPOINT_EVERY == 0:
            # PASSIVE: as much as no reader in another process still needs; never waits.
            await self.call(lambda: self.conn.execute("PRAGMA wal_checkpoint(PASSIVE)"))

    def _rollback(self) -> None:
        if self.conn.in_transaction:
            self.conn.rollback()

    async def close(self) -> None:
        if self.sqlite is not None:
            await self.call(self.sqlite.close)
            self.sqlite = None
        self._thread.shutdown(wait=False)


class PostgresDatabase(Database):
    """A psycopg async connection pool; each transaction holds one connection."""

    dialect = POSTGRES

    def __init__(self, url: str, *, max_size: int = 10) -> None:
        self.url = url
        self.where = redact_url(url)
        self._max_size = max_size
        self._pool: AsyncConnectionPool[Any] | None = None
        self._current: contextvars.ContextVar[
            tuple[asyncio.Task[Any], AsyncConnection[Any]] | None
        ] = contextvars.ContextVar(f"pg-transaction-{id(self)}", default=None)

    async def open(self) -> None:
        try:
            import psycopg
            from psycopg.rows import dict_row
            from psycopg_pool import AsyncConnectionPool
        except ImportError:
            raise StorageError(
                self.where,
                "PostgreSQL needs the postgres extra: pip install 'rehost-bot[postgres]'",
            ) from None
        try:  # once, so that a wrong address or password fails at once, with its reason
            probe = await psycopg.AsyncConnection.connect(self.url, connect_timeout=10)
        except psycopg.Error as error:
            raise StorageError(self.where, f"cannot connect ({_first_line(error)})") from None
        await probe.close()
        pool: AsyncConnectionPool[Any] = AsyncConnectionPool(
            self.url,
            min_size=1,
            max_size=self._max_size,
            kwargs={"autocommit": True, "row_factory": dict_row},
            open=False,
            name="rehost",
        )
        try:
            await pool.open(wait=True, timeout=15.0)
        except Exception as error:
            await pool.close()
            raise StorageError(self.where, f"cannot connect ({_first_line(error)})") from None
        self._pool = pool

    def _held(self) -> AsyncConnection[Any] | None:
        current = self._current.get()
        if current is not None and current[0] is asyncio.current_task():
            return current[1]
        return None

    async def _run(
        self, conn: AsyncConnection[Any], sql: str, params: Params
    ) -> tuple[list[Row], int]:
        cursor = await conn.execute(self.dialect.placeholders(sql), tuple(params))
        rows = await cursor.fetchall() if cursor.description else []
        return rows, cursor.rowcount

    async def _statement(self, sql: str, params: Params) -> tuple[list[Row], int]:
        held = self._held()
        if held is not None:
            return await self._run(held, sql, params)
        assert self._pool is not None, "open() first"
        async with self._pool.connection() as conn:
            return await self._run(conn, sql, params)

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[None]:
        if self._held() is not None:
            yield
            return
        assert self._pool is not None, "open() first"
        task = asyncio.current_task()
        assert task is not None
        async with self._pool.connection() as conn, conn.transaction():
            token = self._current.set((task, conn))
            try:
                yield
            finally:
                self._current.reset(token)

    async def close(self) -> None:
        if self._pool is not None:
            await self._pool.close()
            self._pool = None


async def open_database(target: str | Path | None) -> Database:
    """Connect: a ``postgresql://`` URL, a SQLite file path, or None (SQLite in memory)."""
    if isinstance(target, str) and is_postgres_url(target):
        database: Database = PostgresDatabase(target)
        await database.open()  # type: ignore[attr-defined]
        return database
    sqlite = SQLiteDatabase(None if target is None else Path(target))
    try:
        await sqlite.open()
    except BaseException:
        await sqlite.close()
        raise
    return sqlite


def _first_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return text[0] if text else type(error).__name__


def storage_problem(path: Path, error: BaseException) -> str:
    """What is wrong with the SQLite database at ``path``, in words, from the error."""
    name = getattr(error, "sqlite_errorname", "")
    if path.is_dir():
        return "is a directory, not a database file (set [storage] path to a file)"
    if isinstance(error, OSError):
        return f"cannot be used ({error.strerror or type(error).__name__})"
    if name in ("SQLITE_NOTADB", "SQLITE_CORRUPT"):
        return f"is not a rehost database or is corrupt (sqlite: {error})"
    if name == "SQLITE_READONLY" or (path.exists() and not os.access(path, os.R_OK | os.W_OK)):
        return "cannot be written (no permission)"
    if not path.exists() and not os.access(path.parent, os.W_OK | os.X_OK):
        return f"cannot be created (no permission to write in {path.parent})"
    if name == "SQLITE_FULL":
        return "cannot be written (the disk is full)"
    return f"cannot be opened (sqlite: {error})"


def _unmakeable(directory: Path, error: OSError) -> str:
    """Why ``directory`` cannot be created: a file in the way, or the system's reason."""
    for ancestor in (directory, *directory.parents):
        if ancestor.exists():
            if not ancestor.is_dir():
                return f"its directory {directory} cannot be created: {ancestor} is a file"
            break
    why = error.strerror or type(error).__name__
    return f"its directory {directory} cannot be created ({why})"
