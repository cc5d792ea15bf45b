"""The two shapes of a log line: ``text`` for people, ``json`` for log stacks.

Both carry the context fields of :mod:`bot.logcontext`. Neither masks anything itself:
:class:`bot.logsafety.RedactingFormatter` stands in front of both and hands them records
whose every field is already masked. The JSON formatter (:mod:`bot.jsonlog`) is imported
only when asked for.
"""

from __future__ import annotations

import logging
from typing import ClassVar

from bot.logcontext import fields_of

FORMATS = ("text", "json")
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


class TextFormatter(logging.Formatter):
    """``2026-01-02 10:00:00,123 INFO bot.worker: message [platform=telegram job=42]``:
    the context at the end of the first line, so that a traceback stays below it."""

    structured: ClassVar[bool] = False

    def __init__(self) -> None:
        super().__init__(TEXT_FORMAT)

    def formatMessage(self, record: logging.LogRecord) -> str:
        line = super().formatMessage(record)
        context = " ".join(f"{key}={value}" for key, value in fields_of(record).items())
        return f"{line} [{context}]" if context else line


def formatter_for(name: str) -> logging.Formatter:
    """The formatter of format ``name`` (``text`` or ``json``)."""
    if name == "json":
        from bot.jsonlog import JsonLineFormatter

        return JsonLineFormatter()
    if name == "text":
        return TextFormatter()
    raise ValueError(f"{name!r} is not a log format ({' or '.join(FORMATS)})")
