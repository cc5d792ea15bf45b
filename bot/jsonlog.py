"""JSON lines for log stacks, through python-json-logger (``[logging] format = "json"``)."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import ClassVar

from pythonjsonlogger.json import JsonFormatter


class JsonLineFormatter(JsonFormatter):
    """One JSON object a line: ``time`` (ISO 8601, UTC), ``level``, ``logger``,
    ``message``, then the context fields that are known (``platform``, ``chat``, ``job``,
    ``host``; see :mod:`bot.logcontext`), ``exc_info`` (the traceback, one string) when
    there is one, and whatever a caller passed in ``extra``."""

    # Its output is JSON: masking the serialized text could cut an escape sequence in
    # two, so bot.logsafety masks the record's fields before they are serialized.
    structured: ClassVar[bool] = True

    def __init__(self) -> None:
        super().__init__(
            "%(asctime)s %(levelname)s %(name)s %(message)s",
            rename_fields={"asctime": "time", "levelname": "level", "name": "logger"},
        )

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
        moment = datetime.fromtimestamp(record.created, tz=UTC)
        return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")
