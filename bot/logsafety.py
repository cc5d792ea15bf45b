"""Logging that cannot leak: secrets and delete links are masked in every line written.

httpx logs each request URL at INFO, and python-telegram-bot's URLs carry the bot token, so
masking happens in the formatter of every root handler: it sees the final text, tracebacks
included, whatever logger produced it.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Iterable

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
        self._secrets.update(s for s in secrets if s and len(s) >= 6)

    def __call__(self, text: str) -> str:
        for secret in sorted(self._secrets, key=len, reverse=True):
            text = text.replace(secret, MASK)
        for pattern in _DELETE_LINKS:
            text = pattern.sub(rf"\g<1>{MASK}", text)
        text = _INTERACTION_TOKEN.sub(rf"\g<1>{MASK}", text)
        return _TELEGRAM_TOKEN.sub(rf"\g<1>{MASK}", text)


class RedactingFormatter(logging.Formatter):
    """Formats with ``inner`` and then masks the whole text."""

    def __init__(self, inner: logging.Formatter, redactor: Redactor) -> None:
        super().__init__()
        self._inner = inner
        self.redactor = redactor

    def format(self, record: logging.LogRecord) -> str:
        return self.redactor(self._inner.format(record))


DEFAULT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def level_from_environment(default: int = logging.WARNING) -> int:
    """``REHOST_LOG_LEVEL`` (DEBUG, INFO, WARNING, ERROR) or ``default``."""
    name = os.environ.get("REHOST_LOG_LEVEL", "").strip().upper()
    value = logging.getLevelName(name) if name else default
    return value if isinstance(value, int) else default


def configure_logging(level: int | None = None, secrets: Iterable[str] = ()) -> Redactor:
    """Set up root logging once, masking ``secrets``; returns the redactor to add more."""
    level = level_from_environment() if level is None else level
    root = logging.getLogger()
    if not root.handlers:
        logging.basicConfig(level=level, format=DEFAULT_FORMAT)
    root.setLevel(level)
    # Request lines carry URLs: out of ordinary logs; at DEBUG they show, masked.
    for noisy in ("httpx", "httpcore"):
        logging.getLogger(noisy).setLevel(level if level <= logging.DEBUG else logging.WARNING)
    return protect_handlers(root.handlers, secrets)


def protect_handlers(handlers: Iterable[logging.Handler], secrets: Iterable[str]) -> Redactor:
    """Wrap each handler's formatter in a :class:`RedactingFormatter` (once)."""
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
            inner = handler.formatter or logging.Formatter(DEFAULT_FORMAT)
            handler.setFormatter(RedactingFormatter(inner, redactor))
    return redactor
