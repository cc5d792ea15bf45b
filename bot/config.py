"""Configuration: a TOML file (plus secrets from the environment) -> frozen dataclasses.

Every mistake is reported as a :class:`~bot.errors.ConfigError` naming the exact key, e.g.
``hosts.zg.api_kye: unknown key (expected one of: api_key, dialect, ...)``.

Secrets may stay out of the file: ``REHOST_HOST_<NAME>_API_KEY`` supplies or overrides
``hosts.<name>.api_key`` (NAME upper-cased, anything but letters and digits turned into
``_``), ``REHOST_TELEGRAM_TOKEN`` / ``REHOST_DISCORD_TOKEN`` the bot tokens, and
``REHOST_TELEGRAM_WEBHOOK_SECRET`` the Telegram webhook's secret token.

Where things are may come from the environment too, as a container image sets them:
``REHOST_STORAGE_PATH`` the SQLite file, ``REHOST_OBSERVABILITY_LISTEN`` the address of
/healthz and /metrics. Every one of these variables wins over the file.
"""

from __future__ import annotations

import ipaddress
import os
import re
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit

from bot.errors import ConfigError, ExpirationError
from bot.expiration import Duration, parse_duration
from bot.hosts.presets import DEFAULT_FORMATS, DEFAULT_MAX_BYTES, DIALECTS, PRESETS
from bot.media import BY_NAME
from bot.secretfiles import warn_if_exposed
from bot.storageurl import is_postgres_url, redact_url

T = TypeVar("T")


@dataclass(frozen=True)
class HostSettings:
    name: str
    dialect: str
    endpoint: str
    api_key: str = field(repr=False)
    max_bytes: int
    timeout: float
    preset: str | None = None
    formats: frozenset[str] = frozenset()  # image formats it takes (bot.media names)
    time_budget: float | None = None  # seconds for all tries on it (None: [upload]'s)


@dataclass(frozen=True)
class UploadSettings:
    hosts: tuple[str, ...]
    default_expiration: Duration | None = None
    retry_attempts: int = 3
    retry_backoff: float = 0.5
    max_concurrency: int = 4
    user_rate_limit: int = 20
    user_rate_window: float = 600.0
    # Seconds one host gets for all its tries of one file before the next host is tried.
    host_time_budget: float = 30.0


@dataclass(frozen=True)
class StorageSettings:
    path: Path
    # A PostgreSQL server shared by several processes (``postgresql://...``); None: the
    # SQLite file at ``path``. Kept out of repr: it may hold a password.
    url: str | None = field(default=None, repr=False)
    # How long a claim on a job or an outgoing answer lasts unless renewed (every third of
    # it): work of a process that died is taken over after at most this long.
    lease_seconds: float = 15.0

    @property
    def target(self) -> str | Path:
        """What :meth:`bot.store.Store.open` opens: the server's URL, else the file."""
        return self.url if self.url is not None else self.path

    @property
    def where(self) -> str:
        """The database, for messages (a URL without its password)."""
        return redact_url(self.url) if self.url is not None else str(self.path)


@dataclass(frozen=True)
class TelegramSettings:
    token: str = field(repr=False)
    base_url: str | None = None  # a self-hosted Bot API server, e.g. http://host:8081/bot
    base_file_url: str | None = None  # its file URL, e.g. http://host:8081/file/bot
    auto_rehost_chats: tuple[int, ...] = ()
    # The public Bot API serves files up to 20 MB; a self-hosted server lifts that.
    max_download_bytes: int = 20 * 1024 * 1024
    # "polling" (getUpdates), or "webhook": Telegram POSTs updates to webhook_url, which
    # a load balancer (or Telegram directly) sends to webhook_listen of each process.
    mode: str = "polling"
    webhook_listen: tuple[str, int] | None = None  # host, port
    webhook_url: str | None = None
    webhook_secret: str | None = field(default=None, repr=False)

    @property
    def webhook_path(self) -> str:
        """The path of ``webhook_url``, which the webhook answers on (``/tg/webhook``)."""
        return urlsplit(self.webhook_url).path if self.webhook_url else ""


@dataclass(frozen=True)
class DiscordSettings:
    token: str = field(repr=False)
    auto_rehost_channels: tuple[int, ...] = ()
    guild_ids: tuple[int, ...] = ()  # sync commands to these guilds at once (else global)
    api_base_url: str | None = None  # a REST proxy, e.g. http://proxy:8080/api/v10
    gateway_url: str | None = None  # a gateway proxy, e.g. ws://proxy:8081


@dataclass(frozen=True)
class LinkSettings:
    # How often ``rehost run`` probes every live upload's image link (seconds; 0: never).
    check_every: float = 86400.0
    # Networks users' image links may reach although they are not public (loopback,
    # private...); everything else that is not public is refused.
    allowed_networks: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...] = ()


@dataclass(frozen=True)
class ObservabilitySettings:
    # Where /healthz and /metrics are served ("127.0.0.1:9464"); None: not served.
    listen: tuple[str, int] | None = None


LOG_FORMATS = ("text", "json")


@dataclass(frozen=True)
class LoggingSettings:
    format: str = "text"  # "text" or "json" (JSON lines); REHOST_LOG_FORMAT wins


SECRET_KEY_VARIABLE = "REHOST_SECRET_KEY"


@dataclass(frozen=True)
class CommunityConfig:
    # Whether a server or group may bring its own image host (bot/ownhost.py).
    allow_own_host: bool = False
    # The Fernet key sealing own hosts' API keys at rest (REHOST_SECRET_KEY).
    secret_key: str | None = field(default=None, repr=False)


@dataclass(frozen=True)
class Config:
    upload: UploadSettings
    hosts: Mapping[str, HostSettings]
    storage: StorageSettings
    telegram: TelegramSettings | None = None
    discord: DiscordSettings | None = None
    links: LinkSettings = LinkSettings()
    observability: ObservabilitySettings = ObservabilitySettings()
    logging: LoggingSettings = LoggingSettings()
    communities: CommunityConfig = CommunityConfig()

    def ordered_hosts(self) -> list[HostSettings]:
        """The hosts of ``upload.hosts``, in the order they are tried."""
        return [self.hosts[name] for name in self.upload.hosts]

    def secrets(self) -> list[str]:
        """Every secret value, so logging can make sure none is ever written."""
        values = [host.api_key for host in self.hosts.values() if host.api_key]
        values += [chat.token for chat in (self.telegram, self.discord) if chat is not None]
        if self.telegram is not None and self.telegram.webhook_secret:
            values.append(self.telegram.webhook_secret)
        password = urlsplit(self.storage.url).password if self.storage.url else None
        if password:
            values.append(password)
        if self.communities.secret_key:
            values.append(self.communities.secret_key)
        return values


class _Table:
    """One TOML table being read: typed getters, then a check that nothing else is in it."""

    def __init__(self, data: Mapping[str, Any], path: str, allowed: Sequence[str] = ()) -> None:
        self._data = data
        self._path = path
        self._seen: set[str] = set()
        # Unknown keys are reported before missing ones: a typo explains the missing key.
        unknown = sorted(set(data) - set(allowed)) if allowed else []
        if unknown:
            expected = ", ".join(sorted(allowed))
            raise ConfigError(self.key(unknown[0]), f"unknown key (expected one of: {expected})")

    def key(self, name: str) -> str:
        return f"{self._path}.{name}" if self._path else name

    def get(self, name: str, kind: type[T], default: T | None = None) -> T | None:
        self._seen.add(name)
        if name not in self._data:
            return default
        value = self._data[name]
        # bool is an int in Python; a setting that wants a number must not take `true`.
        if isinstance(value, bool) and kind is not bool:
            raise ConfigError(self.key(name), f"expected {_KIND_WORDS[kind]}, got a boolean")
        if kind is float and isinstance(value, int):
            value = float(value)
        if not isinstance(value, kind):
            raise ConfigError(
                self.key(name), f"expected {_KIND_WORDS[kind]}, got {_describe(value)}"
            )
        return value

    def require(self, name: str, kind: type[T]) -> T:
        value = self.get(name, kind)
        if value is None:
            raise ConfigError(self.key(name), f"missing (expected {_KIND_WORDS[kind]})")
        return value

    def positive(self, name: str, kind: type[T], default: T) -> T:
        value = self.get(name, kind, default)
        assert value is not None
        if value <= 0:  # type: ignore[operator]
            raise ConfigError(self.key(name), "must be greater than zero")
        return value

    def table(self, name: str, allowed: Sequence[str] = ()) -> _Table:
        value = self.get(name, dict, {})
        return _Table(value or {}, self.key(name), allowed)

    def names(self) -> list[str]:
        self._seen.update(self._data)
        return list(self._data)

    def finish(self) -> None:
        """Fail on any key nobody read (a safety net behind ``allowed``)."""
        unknown = sorted(set(self._data) - self._seen)
        if unknown:
            expected = ", ".join(sorted(self._seen)) or "nothing"
            raise ConfigError(self.key(unknown[0]), f"unknown key (expected one of: {expected})")


_KIND_WORDS: dict[type, str] = {
    str: "a string",
    int: "a whole number",
    float: "a number",
    bool: "true or false",
    list: "a list",
    dict: "a table",
}


def _describe(value: Any) -> str:
    for kind, words in _KIND_WORDS.items():
        if isinstance(value, kind):
            return words
    return type(value).__name__


ROOT_KEYS = (
    "upload", "hosts", "storage", "telegram", "discord", "links", "observability", "logging",
    "communities",
)  # fmt: skip
COMMUNITY_KEYS = ("allow_own_host",)
LINK_KEYS = ("check_every", "allowed_networks")
OBSERVABILITY_KEYS = ("listen",)
OBSERVABILITY_LISTEN_VARIABLE = "REHOST_OBSERVABILITY_LISTEN"
STORAGE_PATH_VARIABLE = "REHOST_STORAGE_PATH"
LOGGING_KEYS = ("format",)
TELEGRAM_KEYS = (
    "token",
    "base_url",
    "base_file_url",
    "auto_rehost_chats",
    "max_download_bytes",
    "mode",
    "webhook_listen",
    "webhook_url",
    "webhook_secret",
)
TELEGRAM_MODES = ("polling", "webhook")
WEBHOOK_SECRET_VARIABLE = "REHOST_TELEGRAM_WEBHOOK_SECRET"
# What Telegram takes as a webhook's secret token (setWebhook's secret_token).
_WEBHOOK_SECRET = re.compile(r"[A-Za-z0-9_-]{1,256}")
DISCORD_KEYS = ("token", "auto_rehost_channels", "guild_ids", "api_base_url", "gateway_url")
HOST_KEYS = (
    "preset",
    "dialect",
    "endpoint",
    "api_key",
    "max_bytes",
    "timeout",
    "formats",
    "time_budget",
)
UPLOAD_KEYS = (
    "hosts",
    "default_expiration",
    "retry_attempts",
    "retry_backoff",
    "max_concurrency",
    "user_rate_limit",
    "user_rate_window",
    "host_time_budget",
)
STORAGE_KEYS = ("path", "url", "lease_seconds")


def env_name(host: str) -> str:
    """The environment variable that may hold a host's API key."""
    return "REHOST_HOST_" + re.sub(r"[^A-Za-z0-9]", "_", host).upper() + "_API_KEY"


def load_config(path: Path, environ: Mapping[str, str] | None = None) -> Config:
    """Read and check a configuration file; raise :class:`ConfigError` on any mistake."""
    environ = os.environ if environ is None else environ
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError("", f"{path}: no such configuration file") from None
    except (OSError, UnicodeDecodeError) as error:
        raise ConfigError("", f"{path}: cannot be read ({type(error).__name__})") from None
    except tomllib.TOMLDecodeError as error:
        raise ConfigError("", f"{path}: not valid TOML ({error})") from None
    config = parse_config(raw, base_dir=path.parent, environ=environ)
    warn_if_exposed(path, raw)  # a key or token in a file others can read
    return config


def parse_config(raw: Mapping[str, Any], *, base_dir: Path, environ: Mapping[str, str]) -> Config:
    root = _Table(raw, "", ROOT_KEYS)
    hosts_table = root.table("hosts")
    hosts = {
        name: _host(hosts_table.table(name, HOST_KEYS), name, environ)
        for name in hosts_table.names()
    }
    upload = _upload(root.table("upload", UPLOAD_KEYS), hosts)
    storage = _storage(root.table("storage", STORAGE_KEYS), base_dir, environ)
    telegram = _telegram(root.table("telegram", TELEGRAM_KEYS), environ)
    discord = _discord(root.table("discord", DISCORD_KEYS), environ)
    links = _links(root.table("links", LINK_KEYS))
    observability = _observability(root.table("observability", OBSERVABILITY_KEYS), environ)
    logging_settings = _logging(root.table("logging", LOGGING_KEYS), environ)
    communities = _communities(root.table("communities", COMMUNITY_KEYS), environ)
    root.finish()
    return Config(
        upload,
        hosts,
        storage,
        telegram,
        discord,
        links,
        observability,
        logging_settings,
        communities,
    )


def _communities(table: _Table, environ: Mapping[str, str]) -> CommunityConfig:
    """``[communities] allow_own_host``: only with a Fernet key in ``REHOST_SECRET_KEY``,
    which seals each own host's API key in the database."""
    allow = bool(table.get("allow_own_host", bool, False))
    table.finish()
    key = environ.get(SECRET_KEY_VARIABLE, "").strip() or None
    if allow and key is None:
        raise ConfigError(
            table.key("allow_own_host"),
            f"needs {SECRET_KEY_VARIABLE} in the environment (a Fernet key, made with"
            " `python -c 'from cryptography.fernet import Fernet;"
            " print(Fernet.generate_key().decode())'`) to keep their API keys sealed",
        )
    if key is not None:
        from cryptography.fernet import Fernet

        try:
            Fernet(key)
        except ValueError:
            raise ConfigError(
                SECRET_KEY_VARIABLE, "not a Fernet key (32 url-safe base64-encoded bytes)"
            ) from None
    return CommunityConfig(allow_own_host=allow, secret_key=key)


def _observability(table: _Table, environ: Mapping[str, str]) -> ObservabilitySettings:
    """``[observability] listen``; ``REHOST_OBSERVABILITY_LISTEN`` wins over the file (the
    container image sets it, so that its HEALTHCHECK finds /healthz)."""
    listen = _listen_address(table, "listen")
    from_environment = environ.get(OBSERVABILITY_LISTEN_VARIABLE, "").strip()
    if from_environment:
        listen = parse_listen(from_environment, OBSERVABILITY_LISTEN_VARIABLE)
    table.finish()
    return ObservabilitySettings(listen=listen)


def _logging(table: _Table, environ: Mapping[str, str]) -> LoggingSettings:
    """``[logging] format``; ``REHOST_LOG_FORMAT`` wins over the file."""
    name = environ.get("REHOST_LOG_FORMAT", "").strip().lower()
    key = "REHOST_LOG_FORMAT"
    if not name:
        name = (table.get("format", str, "text") or "text").strip().lower()
        key = table.key("format")
    table.finish()
    if name not in LOG_FORMATS:
        raise ConfigError(key, f"{name!r} is not a log format (text or json)")
    return LoggingSettings(format=name)


def _links(table: _Table) -> LinkSettings:
    every = table.get("check_every", float, 86400.0)
    assert every is not None
    if every < 0:
        raise ConfigError(table.key("check_every"), "must be 0 (never) or more seconds")
    networks = []
    for index, value in enumerate(table.get("allowed_networks", list, []) or []):
        key = f"{table.key('allowed_networks')}[{index}]"
        if not isinstance(value, str):
            raise ConfigError(key, 'expected a network as a string, e.g. "127.0.0.0/8"')
        try:
            networks.append(ipaddress.ip_network(value.strip(), strict=False))
        except ValueError:
            raise ConfigError(
                key, f'{value!r} is not a network in CIDR notation, e.g. "127.0.0.0/8"'
            ) from None
    table.finish()
    return LinkSettings(check_every=every, allowed_networks=tuple(networks))


def _host(table: _Table, name: str, environ: Mapping[str, str]) -> HostSettings:
    preset_name = table.get("preset", str)
    dialect = table.get("dialect", str)
    endpoint = table.get("endpoint", str)
    preset = None
    if preset_name is not None:
        preset = PRESETS.get(preset_name)
        if preset is None:
            raise ConfigError(
                table.key("preset"),
                f"unknown preset '{preset_name}' (expected one of: {', '.join(PRESETS)})",
            )
        if dialect is not None and dialect != preset.dialect:
            raise ConfigError(
                table.key("dialect"), f"preset '{preset_name}' speaks '{preset.dialect}'"
            )
        dialect = preset.dialect
        endpoint = endpoint or preset.endpoint
    elif dialect is None:
        raise ConfigError(
            table.key("dialect"),
            f"missing: give a preset ({', '.join(PRESETS)}) or a dialect ({', '.join(DIALECTS)})",
        )
    if dialect not in DIALECTS:
        raise ConfigError(
            table.key("dialect"), f"unknown dialect '{dialect}' (expected imgbb or chevereto)"
        )
    if endpoint is None:
        raise ConfigError(table.key("endpoint"), "missing: the upload URL of this host")
    if urlsplit(endpoint).scheme not in ("http", "https") or not urlsplit(endpoint).netloc:
        raise ConfigError(table.key("endpoint"), "expected an http:// or https:// URL")
    in_file = table.get("api_key", str)
    api_key = environ.get(env_name(name)) or in_file
    if not api_key:
        raise ConfigError(
            table.key("api_key"), f"missing: set it here or in the environment as {env_name(name)}"
        )
    default_max = preset.max_bytes if preset else DEFAULT_MAX_BYTES[dialect]
    max_bytes = table.positive("max_bytes", int, default_max)
    timeout = table.positive("timeout", float, 60.0)
    formats = _formats(table, dialect)
    budget = table.get("time_budget", float)
    if budget is not None and budget <= 0:
        raise ConfigError(table.key("time_budget"), "must be greater than zero")
    table.finish()
    return HostSettings(
        name, dialect, endpoint, api_key, max_bytes, timeout, preset_name, formats, budget
    )


def _formats(table: _Table, dialect: str) -> frozenset[str]:
    names = table.get("formats", list)
    if names is None:
        return DEFAULT_FORMATS[dialect]
    known = ", ".join(BY_NAME)
    for index, name in enumerate(names):
        if not isinstance(name, str) or name.lower() not in BY_NAME:
            raise ConfigError(
                f"{table.key('formats')}[{index}]", f"unknown format {name!r} (expected: {known})"
            )
    if not names:
        raise ConfigError(table.key("formats"), f"empty: list the formats it takes ({known})")
    return frozenset(name.lower() for name in names)


def _upload(table: _Table, hosts: Mapping[str, HostSettings]) -> UploadSettings:
    names = table.get("hosts", list)
    if not names:
        raise ConfigError(table.key("hosts"), "missing: list the [hosts.*] tables to use, in order")
    for index, name in enumerate(names):
        if not isinstance(name, str):
            raise ConfigError(f"{table.key('hosts')}[{index}]", "expected a host name (string)")
        if name not in hosts:
            raise ConfigError(table.key("hosts"), f"'{name}' has no [hosts.{name}] table")
    if len(set(names)) != len(names):
        raise ConfigError(table.key("hosts"), "a host is listed twice")
    text = table.get("default_expiration", str, "never")
    assert text is not None
    try:
        default_expiration = parse_duration(text)
    except ExpirationError as error:
        raise ConfigError(table.key("default_expiration"), error.user_message) from None
    settings = UploadSettings(
        hosts=tuple(names),
        default_expiration=default_expiration,
        retry_attempts=table.positive("retry_attempts", int, 3),
        retry_backoff=table.positive("retry_backoff", float, 0.5),
        max_concurrency=table.positive("max_concurrency", int, 4),
        user_rate_limit=table.positive("user_rate_limit", int, 20),
        user_rate_window=table.positive("user_rate_window", float, 600.0),
        host_time_budget=table.positive("host_time_budget", float, 30.0),
    )
    table.finish()
    return settings


def _ids(table: _Table, name: str) -> tuple[int, ...]:
    values = table.get(name, list, []) or []
    for index, value in enumerate(values):
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{table.key(name)}[{index}]", "expected a numeric id")
    return tuple(values)


def _url(table: _Table, name: str, schemes: tuple[str, ...]) -> str | None:
    value = table.get(name, str)
    if value is not None and (urlsplit(value).scheme not in schemes or not urlsplit(value).netloc):
        raise ConfigError(table.key(name), f"expected a {' or '.join(schemes)} URL")
    return value


def _token(table: _Table, environ: Mapping[str, str], variable: str) -> str | None:
    """The token from the environment or the file; ``None`` when the section is unused."""
    in_file = table.get("token", str)
    return environ.get(variable) or in_file or None


def _telegram(table: _Table, environ: Mapping[str, str]) -> TelegramSettings | None:
    token = _token(table, environ, "REHOST_TELEGRAM_TOKEN")
    mode = table.get("mode", str, "polling")
    if mode is None or mode not in TELEGRAM_MODES:
        raise ConfigError(
            table.key("mode"), f"unknown mode {mode!r} (expected {' or '.join(TELEGRAM_MODES)})"
        )
    listen = _listen_address(table, "webhook_listen")
    webhook_url = _url(table, "webhook_url", ("http", "https"))
    if webhook_url is not None and not urlsplit(webhook_url).path:
        raise ConfigError(
            table.key("webhook_url"),
            "needs a path, the one the bot answers on (e.g. https://bot.example.org/tg/webhook)",
        )
    secret = _webhook_secret(table, environ)
    settings = TelegramSettings(
        token=token or "",
        base_url=_url(table, "base_url", ("http", "https")),
        base_file_url=_url(table, "base_file_url", ("http", "https")),
        auto_rehost_chats=_ids(table, "auto_rehost_chats"),
        max_download_bytes=table.positive("max_download_bytes", int, 20 * 1024 * 1024),
        mode=mode,
        webhook_listen=listen,
        webhook_url=webhook_url,
        webhook_secret=secret,
    )
    table.finish()
    if (settings.base_url is None) != (settings.base_file_url is None):
        raise ConfigError(table.key("base_file_url"), "set base_url and base_file_url together")
    if mode == "webhook":
        if listen is None:
            raise ConfigError(
                table.key("webhook_listen"),
                'missing: the address this process listens on for updates, e.g. "0.0.0.0:8443"',
            )
        if webhook_url is None:
            raise ConfigError(
                table.key("webhook_url"),
                "missing: the public URL registered with Telegram, e.g."
                " https://bot.example.org/tg/webhook",
            )
        if secret is None:
            raise ConfigError(
                table.key("webhook_secret"),
                f"missing: set it here or in the environment as {WEBHOOK_SECRET_VARIABLE}",
            )
    return settings if token else None


def _listen_address(table: _Table, name: str) -> tuple[str, int] | None:
    """``"HOST:PORT"`` (an IPv6 address in brackets: ``"[::1]:8443"``)."""
    value = table.get(name, str)
    return None if value is None else parse_listen(value, table.key(name))


def parse_listen(value: str, key: str) -> tuple[str, int]:
    """``"HOST:PORT"`` -> ``(host, port)``; a mistake is a ConfigError naming ``key``."""
    host, colon, port_text = value.strip().rpartition(":")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    if not colon or not host or not port_text.isdigit():
        raise ConfigError(key, f'{value!r} is not "HOST:PORT", e.g. "0.0.0.0:8443"')
    port = int(port_text)
    if not 1 <= port <= 65535:
        raise ConfigError(key, f"port {port} is out of range (1-65535)")
    return host, port


def _webhook_secret(table: _Table, environ: Mapping[str, str]) -> str | None:
    """The environment wins, so that the secret need never be in the file."""
    in_file = table.get("webhook_secret", str)
    from_environment = environ.get(WEBHOOK_SECRET_VARIABLE)
    secret = from_environment or in_file or None
    if secret is not None and not _WEBHOOK_SECRET.fullmatch(secret):
        where = WEBHOOK_SECRET_VARIABLE if from_environment else table.key("webhook_secret")
        # The value itself is never shown: it is a secret.
        raise ConfigError(where, "expected 1 to 256 characters, each a letter, a digit, _ or -")
    return secret


def _discord(table: _Table, environ: Mapping[str, str]) -> DiscordSettings | None:
    token = _token(table, environ, "REHOST_DISCORD_TOKEN")
    settings = DiscordSettings(
        token=token or "",
        auto_rehost_channels=_ids(table, "auto_rehost_channels"),
        guild_ids=_ids(table, "guild_ids"),
        api_base_url=_url(table, "api_base_url", ("http", "https")),
        gateway_url=_url(table, "gateway_url", ("ws", "wss")),
    )
    table.finish()
    return settings if token else None


def _storage(table: _Table, base_dir: Path, environ: Mapping[str, str]) -> StorageSettings:
    # The environment wins: a container image keeps the database on its volume with it.
    in_file = table.get("path", str, "rehost.db") or "rehost.db"
    path = Path(environ.get(STORAGE_PATH_VARIABLE, "").strip() or in_file).expanduser()
    lease = table.positive("lease_seconds", float, 15.0)
    # The environment wins, so that the password need never be in the file.
    url = environ.get("REHOST_STORAGE_URL") or table.get("url", str, None) or None
    if url is not None and not is_postgres_url(url):
        where = "REHOST_STORAGE_URL" if environ.get("REHOST_STORAGE_URL") else table.key("url")
        raise ConfigError(
            where,
            "not a PostgreSQL URL (postgresql://user:password@host:5432/database);"
            " for SQLite set [storage] path instead",
        )
    table.finish()
    return StorageSettings(
        path=path if path.is_absolute() else base_dir / path, url=url, lease_seconds=lease
    )
