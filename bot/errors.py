"""Every exception rehost raises on purpose, in one tree.

    RehostError
    ├── ConfigError ............ the configuration file or environment is wrong (names the key)
    ├── ExpirationError ........ a duration cannot be parsed or a host cannot honour it
    ├── SourceUnavailable ...... the platform will not hand over the file (also a
    │                            ValueError, what a resolver raises)
    └── HostError .............. an image host did not store the image
        ├── CredentialsError ... the host refused the API key (fail over, never retry)
        ├── FileRejected ....... the file's own fault: not an image (never retry or fail
        │                        over: every host would say the same)
        ├── HostLimit .......... this host's own limits: its formats, its size limit (fail
        │                        over: another host may take the file)
        ├── RateLimited ........ flooding or rate limiting: fail over at once, and leave the
        │                        host alone for ``cooldown`` seconds
        ├── CoolingDown ........ not tried: the host is cooling down after rate limiting
        ├── TransientHostError . worth retrying with backoff, then failing over
        │   └── HostUnavailable  5xx, connection error, an answer that is not the expected
        │       │                JSON
        │       └── HostTimedOut no answer in time (retried once at most: the upload may
        │                        still complete on the host)
        ├── HostRefused ........ any other refusal (duplicate, unknown code): fail over
        └── ExpiryUnsupported .. this host cannot honour the asked expiry: try the next one

Every error carries ``said``: what to tell the user, as a msgid of the catalogues and its
parameters (:class:`bot.said.Said`), written out in each reader's language where it is
shown; ``user_message`` (and ``str(error)``) is its English text, for a terminal or a log.
It never contains an API key, a token or a delete link.
"""

from __future__ import annotations

from bot.said import N_, Said, said


class RehostError(Exception):
    """Base class of every error rehost raises on purpose."""

    def __init__(self, user_message: str | Said) -> None:
        self.said = said(user_message)
        self.user_message = str(self.said)
        super().__init__(self.user_message)


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


class SourceUnavailable(RehostError, ValueError):
    """The platform will not hand over the file: too large for it, a link that has
    expired and cannot be renewed (raised by an adapter's resolver)."""


class HostError(RehostError):
    """An image host did not store the image.

    ``host`` is the configured host name; ``detail`` is the host's own message, with secrets
    removed, kept for logs and operators.
    """

    retryable = False
    fail_over = True
    kind = "unknown"

    def __init__(self, host: str, user_message: str | Said, detail: str = "") -> None:
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


class HostLimit(HostError):
    """This host will not take this file (its formats, its size limit); another may."""

    kind = "host_limit"


class RateLimited(HostError):
    """The host is throttling us (Chevereto flooding, ImgBB rate limit). Retrying within
    seconds fails again: fail over, and leave the host alone for ``cooldown`` seconds."""

    kind = "rate_limited"

    def __init__(
        self, host: str, user_message: str | Said, detail: str = "", cooldown: float = 60.0
    ) -> None:
        super().__init__(host, user_message, detail)
        self.cooldown = cooldown


class CoolingDown(HostError):
    """Not tried: the host is cooling down after rate limiting, for ``remaining`` s."""

    kind = "cooldown"

    def __init__(self, host: str, remaining: float) -> None:
        super().__init__(host, Said(N_("{host} is resting after rate limiting"), {"host": host}))
        self.remaining = remaining


class TransientHostError(HostError):
    """A failure that may go away: retry with backoff, then fail over."""

    retryable = True
    kind = "transient"


class HostUnavailable(TransientHostError):
    """The host is down, slow, unreachable, or answered something unreadable."""

    kind = "unavailable"


class HostTimedOut(HostUnavailable):
    """No answer in time. The upload may still complete on the host, so it is retried on
    the same host once at most."""

    kind = "timeout"


class HostRefused(HostError):
    """The host refused for a reason that is neither the key nor the file."""

    kind = "refused"


class ExpiryUnsupported(HostError):
    """This host cannot honour the expiry asked for (e.g. shorter than it allows)."""

    kind = "expiration"


class StorageError(RehostError):
    """The database cannot be used: the path, the file, the server, or its version is
    wrong. The message names the database (never a password) and what is wrong, in one
    line; the command line prints it as it is and exits 2."""

    def __init__(self, where: object, problem: str) -> None:
        super().__init__(f"{where}: {problem}")
        self.where = str(where)
        self.problem = problem
