"""What a log line is about: the platform, chat, job and host of the work under way.

The code doing the work says so once (``with log_context(platform=..., job=...)``) and
every line logged inside it, by any logger, carries those fields: :class:`ContextFilter`,
on each root handler, copies them onto the record, where the formatters find them (JSON
fields, or `` [platform=... job=...]`` at the end of a text line).

Context variables, not arguments: asyncio gives every task a copy of the context it was
created in, so concurrent jobs never see each other's fields, and tasks a job starts
inherit them. Only what is safe to log goes here: ids and configured names, never a
token, a key or a URL.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from types import MappingProxyType

FIELDS = ("platform", "chat", "job", "host")

Value = str | int
_CURRENT: ContextVar[Mapping[str, Value]] = ContextVar(
    "rehost_log_context", default=MappingProxyType({})
)


@contextmanager
def log_context(
    *,
    platform: str | None = None,
    chat: Value | None = None,
    job: int | None = None,
    host: str | None = None,
) -> Iterator[None]:
    """Add the given fields (those not None) to every line logged inside the block.
    ``chat`` is always written as a string (a field keeps one type in a log stack)."""
    given = {
        "platform": platform,
        "chat": None if chat is None else str(chat),
        "job": job,
        "host": host,
    }
    fields = {key: value for key, value in given.items() if value is not None}
    token = _CURRENT.set({**_CURRENT.get(), **fields})
    try:
        yield
    finally:
        _CURRENT.reset(token)


def current() -> Mapping[str, Value]:
    """The fields in force here."""
    return _CURRENT.get()


def fields_of(record: logging.LogRecord) -> dict[str, Value]:
    """The context fields a record carries, in :data:`FIELDS` order."""
    found = {key: getattr(record, key, None) for key in FIELDS}
    return {key: value for key, value in found.items() if isinstance(value, str | int)}


class ContextFilter(logging.Filter):
    """Copies the current context onto each record (what the caller passed in ``extra``
    wins); lets every record through."""

    def filter(self, record: logging.LogRecord) -> bool:
        for key, value in _CURRENT.get().items():
            if not hasattr(record, key):
                setattr(record, key, value)
        return True
