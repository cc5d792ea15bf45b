"""Database URLs: which engine one names, and how to show it without its password.

Kept apart from :mod:`bot.database` so that reading the configuration imports no driver.
"""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit


def is_postgres_url(text: str) -> bool:
    return urlsplit(text).scheme in ("postgresql", "postgres")


def redact_url(url: str) -> str:
    """The URL without its password (for messages and logs)."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.rsplit("@", 1)
    user = netloc[0].split(":", 1)[0]
    return urlunsplit(parts._replace(netloc=f"{user}:***@{netloc[1]}"))
