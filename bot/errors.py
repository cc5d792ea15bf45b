"""Every exception rehost raises on purpose, in one tree.

    RehostError
    ├── ConfigError ............ the configuration file or environment is wrong (names the key)
    ├── ExpirationError ........ a duration cannot be parsed or a host cannot honour it
    └── HostError .............. an image host did not store the image
        ├── CredentialsError ... the host refused the API key (fail over, never retry)
        ├── FileRejected ....... the file's own fault: format, size, not an image (never retry
        │                        or fail over: every host would say the same)
        ├── TransientHostError . worth retrying with backoff, then failing over
        │   ├── RateLimited .... flooding or rate limiting
        │   └── HostUnavailable  5xx, timeout, connection error, an answer that is not the
        │                        expected JSON
        ├── HostRefused ........ any other refusal (duplicate, unknown code): fail over
        └── ExpiryUnsupported .. this host cannot honour the asked expiry: try the next one

Every error carries ``user_message``: a plain sentence fit to show in a chat or a terminal.
It never contains an API key, a token or a delete link; ``str(error)`` is the same text.
"""

from __future__ import annotations


class RehostError(Exception):
    """Base class of every error rehost raises on purpose."""

    def __init__(self, user_message: str) -> None:
        super().__init__(user_message)
        self.user_message = user_message


class ConfigError(RehostError):
    """A configuration value is missing, unknown or malformed.

    ``key`` is the dotted path of the offending setting, e.g. ``hosts.zg.api_key``.
    """

    def __init__(self, key: str, problem: str) -> None:
        super().__init__(f"{key}: {problem}" if key else problem)
        self.key = key
        self.problem = problem


class ExpirationError(RehostError):
    """A duration is malformed, or no configured host can honour it."""


class HostError(RehostError):
    """An image host did not store the image.

    ``host`` is the configured host name; ``detail`` is the host's own message, with secrets
    removed, kept for logs and operators.
    """

    retryable = False
    fail_over = True
    kind = "unknown"

    def __init__(self, host: str, user_message: str, detail: str = "") -> None:
        super().__init__(user_message)
        self.host = host
        self.detail = detail


class CredentialsError(HostError):
    """The host refused the API key, or uploads are denied for it."""

    kind = "credentials"


class FileRejected(HostError):
    """The file itself is unacceptable: wrong format, too large, not an image."""

    fail_over = False
    kind = "file"


class TransientHostError(HostError):
    """A failure that may go away: retry with backoff, then fail over."""

    retryable = True
    kind = "transient"


class RateLimited(TransientHostError):
    """The host is throttling us (Chevereto flooding, ImgBB rate limit)."""

    kind = "rate_limited"


class HostUnavailable(TransientHostError):
    """The host is down, slow, unreachable, or answered something unreadable."""

    kind = "unavailable"


class HostRefused(HostError):
    """The host refused for a reason that is neither the key nor the file."""

    kind = "refused"


class ExpiryUnsupported(HostError):
    """This host cannot honour the expiry asked for (e.g. shorter than it allows)."""

    kind = "expiration"
