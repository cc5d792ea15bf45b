"""Logging that cannot leak: secrets and delete links are masked in every line written.

httpx logs each request URL at INFO, and python-telegram-bot's URLs carry the bot token, so
masking happens in the formatter of every root handler, whatever logger produced the
record: each field of the record is masked (message, traceback, extras) before it is
formatted as text or as JSON (:mod:`bot.logformat`), and a text line once more, whole.
"""

from __future__ import annotations

import copy
import json
import logging
import os
import re
from collections.abc import Iterable, Mapping

from bot.logcontext import ContextFilter
from bot.logformat import FORMATS, TextFormatter, formatter_for

MASK = "[redacted]"
# Chevereto: <short viewer url>/delete/<48 chars>; ImgBB: /i/<id>/<32 hex>.
_DELETE_LINKS = (
    re.compile(r"(/delete/)[A-Za-z0-9]+"),
    re.compile(r"(/i/[A-Za-z0-9]+/)[0-9a-f]{32}(?![0-9a-f])"),
)
# Telegram Bot API paths: /bot<token>/method and /file/bot<token>/path.
_TELEGRAM_TOKEN = re.compile(r"(/bot)\d+:[A-Za-z0-9_-]+")
# Discord interaction tokens (kept for 15 minutes to answer a command) in the paths
# discord.py logs: /webhooks/<application id>/<token>, /interactions/<id>/<token>/callback.
_INTERACTION_TOKEN = re.compile(r"(/(?:webhooks|interactions)/\d+/)[A-Za-z0-9_.-]+")


class Redactor:
    """Masks known secrets and anything shaped like a delete link, a bot token or a
    Discord interaction token in URLs."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        self._secrets: set[str] = set()
        self.add(secrets)

    def add(self, secrets: Iterable[str]) -> None:
        # Very short values would mask ordinary words; real keys and tokens are long.
        for secret in secrets:
            if secret and len(secret) >= 6:
                self._secrets.update(_written_forms(secret))

    def __call__(self, text: str) -> str:
        for secret in sorted(self._secrets, key=len, reverse=True):
            text = text.replace(secret, MASK)
        for pattern in _DELETE_LINKS:
            text = pattern.sub(rf"\g<1>{MASK}", text)
        text = _INTERACTION_TOKEN.sub(rf"\g<1>{MASK}", text)
        return _TELEGRAM_TOKEN.sub(rf"\g<1>{MASK}", text)


def _written_forms(secret: str) -> set[str]:
    """``secret`` as it is, and as a log line may hold it escaped: in a ``%r`` (its repr)
    or in a JSON body (a quote, a backslash, a control character or non-ASCII text in
    it is written otherwise there)."""
    forms = {secret, repr(secret)[1:-1], json.dumps(secret)[1:-1]}
    forms.add(json.dumps(secret, ensure_ascii=False)[1:-1])
    return forms


class RedactingFormatter(logging.Formatter):
    """Masks every field of a record before ``inner`` formats it: the message (with its
    arguments), the traceback, the stack and whatever was passed in ``extra``; then masks
    a text line once more, whole (what the format adds included).

    A structured format (JSON, ``inner.structured``) is not masked again once serialized:
    its fields already are, and a secret holding a character JSON escapes (a quote, a
    backslash) would not match its escaped form, while masking a match that starts
    inside an escape sequence would break the line.
    """

    def __init__(self, inner: logging.Formatter, redactor: Redactor) -> None:
        super().__init__()
        self.inner = inner
        self.redactor = redactor

    def format(self, record: logging.LogRecord) -> str:
        text = self.inner.format(self._masked(record))
        return text if getattr(self.inner, "structured", False) else self.redactor(text)

    def _masked(self, record: logging.LogRecord) -> logging.LogRecord:
        """A copy of ``record`` with every field masked (the record itself is left as it
        is, for the other handlers)."""
        masked = copy.copy(record)
        masked.msg, masked.args = self.redactor(record.getMessage()), None
        if record.exc_info or record.exc_text:
            trace = record.exc_text or (
                self.formatException(record.exc_info) if record.exc_info else ""
            )
            masked.exc_info, masked.exc_text = None, self.redactor(trace)
        if record.stack_info:
            masked.stack_info = self.redactor(record.stack_info)
        for key, value in vars(record).items():
            if key not in _RECORD_FIELDS:
                setattr(masked, key, self._masked_value(value))
        return masked

    def _masked_value(self, value: object) -> object:
        if isinstance(value, str):
            return self.redactor(value)
        if value is None or isinstance(value, bool | int | float):
            return value
        if isinstance(value, Mapping):
            return {self.redactor(str(k)): self._masked_value(v) for k, v in value.items()}
        if isinstance(value, list | tuple | set | frozenset):
            return [self._masked_value(item) for item in value]
        return self.redactor(str(value))


# What every record has; anything else came from ``extra`` or a filter.
_RECORD_FIELDS = frozenset(vars(logging.makeLogRecord({}))) | {"message", "asctime", "taskName"}


class _StderrHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """The root handler :func:`configure_logging` installs (its format can change)."""

    def __init__(self, format_name: str, redactor: Redactor) -> None:
        super().__init__()  # sys.stderr
        self.format_name = format_name
        self.setFormatter(RedactingFormatter(formatter_for(format_name), redactor))

    def use(self, format_name: str) -> None:
        if format_name != self.format_name and isinstance(self.formatter, RedactingFormatter):
            self.formatter.inner = formatter_for(format_name)
            self.format_name = format_name


def level_from_environment(default: int = logging.WARNING) -> int:
    """``REHOST_LOG_LEVEL`` (DEBUG, INFO, WARNING, ERROR) or ``default``."""
    name = os.environ.get("REHOST_LOG_LEVEL", "").strip().upper()
    value = logging.getLevelName(name) if name else default
    return value if isinstance(value, int) else default


def format_from_environment() -> str:
    """``REHOST_LOG_FORMAT`` (text or json), or text (a wrong value is the configuration
    loader's to report)."""
    name = os.environ.get("REHOST_LOG_FORMAT", "").strip().lower()
    return name if name in FORMATS else "text"


def configure_logging(
    level: int | None = None, secrets: Iterable[str] = (), format: str | None = None
) -> Redactor:
    """Set up root logging on stderr, masking ``secrets``; returns the redactor to add
    more. Called again (a command once its configuration is loaded), it sets the level,
    switches the format and adds the secrets.

    ``level``: None for ``REHOST_LOG_LEVEL``, else WARNING. ``format``: ``text`` or
    ``json``; None keeps the format set up, or takes ``REHOST_LOG_FORMAT`` (else text).
    Commands pass their configuration's ``[logging] format``, where the environment
    variable already wins.
    """
    level = level_from_environment() if level is None else level
    root = logging.getLogger()
    if not root.handlers:
        root.addHandler(_StderrHandler(format or format_from_environment(), Redactor()))
        # Warnings as log lines too: masked, and in the format (a JSON stream stays JSON).
        logging.captureWarnings(True)
    elif format is not None:
        for handler in root.handlers:
            if isinstance(handler, _StderrHandler):
                handler.use(format)
    root.setLevel(level)
    # Request lines carry URLs: out of ordinary logs; at DEBUG they show, masked.
    for noisy in ("httpx", "httpcore"):
        logging.getLogger(noisy).setLevel(level if level <= logging.DEBUG else logging.WARNING)
    return protect_handlers(root.handlers, secrets)


def protect_handlers(handlers: Iterable[logging.Handler], secrets: Iterable[str]) -> Redactor:
    """Wrap each handler's formatter in a :class:`RedactingFormatter` (once), and give
    each the context fields of :mod:`bot.logcontext`."""
    redactor: Redactor | None = None
    handlers = list(handlers)
    for handler in handlers:
        current = handler.formatter
        if isinstance(current, RedactingFormatter):
            redactor = current.redactor
    redactor = redactor or Redactor()
    redactor.add(secrets)
    for handler in handlers:
        if not isinstance(handler.formatter, RedactingFormatter):
            inner = handler.formatter or TextFormatter()
            handler.setFormatter(RedactingFormatter(inner, redactor))
        if not any(isinstance(f, ContextFilter) for f in handler.filters):
            handler.addFilter(ContextFilter())
    return redactor
